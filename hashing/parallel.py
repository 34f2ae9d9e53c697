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
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

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


def both(first: Callable[[], A], second: Callable[[], B], *, parallel: bool = True) -> tuple[A, B]:
    """``(first(), second())``, the first on a pool thread when ``parallel`` and a core is free.

    An exception from either is raised here, as if they had run one after the other.
    """
    if not parallel or WORKERS < 1:
        return first(), second()
    # The pool thread sees the caller's context variables (e.g. hashing.decode's pixel limit).
    future = _get_pool().submit(contextvars.copy_context().run, first)
    try:
        second_result = second()
    except BaseException:
        future.cancel()
        raise
    if future.cancel():  # not started: do it here rather than wait for a busy pool
        return first(), second_result
    return future.result(), second_result
