"""Two independent halves of hashing one image, on two cores when one is free.

After the decode, the greyscale branch (Pillow's "L" conversion and LANCZOS resizes: imagehash's
algorithms) and the luminance branch (PDQ, and the file digests) share nothing but the decoded
image, which neither modifies. Both spend their time in C code that releases the GIL (Pillow's
convert/resize, BLAS, hashlib), so on two cores the wall time is the longer branch, not the sum.

The first callable goes to a small process-wide pool; the caller runs the second. If no pool thread
has picked the first up by the time the second is done (the pool is busy with other requests'
work), the caller cancels it and runs it itself: a request never waits behind another's work, and
a server's request threads cannot deadlock on the pool.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

A = TypeVar("A")
B = TypeVar("B")

#: Pool threads; 0 (one core) means both halves always run in the caller.
WORKERS = min(4, (os.cpu_count() or 1) - 1)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="hashmatch-hash")
        return _pool


class Pending(Generic[A]):
    """``work()`` started on the pool if a thread is free; :meth:`result` runs it here instead if no
    pool thread has picked it up by then, so a caller never waits behind other requests' work."""

    def __init__(self, work: Callable[[], A], *, parallel: bool = True) -> None:
        self._work = work
        self._future: Future | None = None
        self._outcome: tuple[bool, object] | None = None
        if parallel and WORKERS >= 1:
            # The pool thread sees the caller's context variables (e.g. hashing.decode's pixel limit).
            self._future = _get_pool().submit(contextvars.copy_context().run, work)

    def settle(self) -> None:
        """Make sure the work is under way or done: if it is still queued, run it here, now."""
        if self._outcome is None and (self._future is None or self._future.cancel()):
            self._future = None
            try:
                self._outcome = (True, self._work())
            except BaseException as exc:  # re-raised by result(), in the caller's order of events
                self._outcome = (False, exc)

    def cancel(self) -> None:
        """Drop the work if no thread has started it (the caller is failing anyway)."""
        if self._future is not None:
            self._future.cancel()

    def result(self) -> A:
        self.settle()
        if self._outcome is None:
            return self._future.result()
        ok, value = self._outcome
        if not ok:
            raise value  # type: ignore[misc]
        return value  # type: ignore[return-value]


def both(first: Callable[[], A], second: Callable[[], B], *, parallel: bool = True) -> tuple[A, B]:
    """``(first(), second())``, the first on a pool thread when ``parallel`` and a core is free.

    An exception from either is raised here, as if they had run one after the other.
    """
    pending = Pending(first, parallel=parallel)
    try:
        second_result = second()
    except BaseException:
        pending.cancel()
        raise
    return pending.result(), second_result
