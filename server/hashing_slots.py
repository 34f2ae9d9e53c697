"""How many images one server process hashes at once.

Hashing is CPU work, much of it Python that holds the GIL. When more requests hash at once than
the process has cores to itself, they do not finish sooner: they take turns on the GIL, and every
turn is a thread switch (futex calls, cold caches) that costs CPU the next image needed. With
``--workers 2`` on 2 cores, each worker has one core, so eight concurrent uploads hashed side by
side in one worker cost measurably more CPU per image than the same eight hashed one after another
(bench/load.py; the README's Throughput section). So each process hashes at most ``slots`` images
at a time and the rest wait here, off the GIL. A waiting request
still honours its deadline and its client's cancellation.
"""

from __future__ import annotations

import os
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from .errors import RequestError

# How often a waiting request looks at its deadline and its client.
_POLL_SECONDS = 0.05


def cores_available() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_slots(workers: int) -> int:
    """One image per core a worker has to itself; at least one."""
    return max(1, cores_available() // max(1, workers))


class HashingSlots:
    """At most ``slots`` holders at once; waiters get a slot in the order they came (a plain
    semaphore lets a newcomer overtake requests that have waited longer, so under load an old
    request could wait past its deadline while new ones are served)."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"hashing slots must be at least 1, got {slots}")
        self.slots = slots
        self._lock = threading.Lock()
        self._free = slots
        self._waiting: deque[threading.Event] = deque()
        # Requests that left the queue without hashing, by reason (read by tests and metrics).
        self.gave_up: Counter[str] = Counter()

    @contextmanager
    def held(self, context: grpc.ServicerContext | None = None) -> Iterator[None]:
        """Hold one slot for the duration; wait for one first, as long as the call is alive."""
        self._acquire(context)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, context: grpc.ServicerContext | None) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Event()  # set by _release when this waiter's slot is handed over
            self._waiting.append(turn)
        while not turn.wait(_POLL_SECONDS):
            if context is None:
                continue
            # The deadline first: once it passes, gRPC reports the call inactive as well.
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                error = ("DEADLINE_PASSED", grpc.StatusCode.DEADLINE_EXCEEDED,
                         "the call's deadline passed while the image waited for a hashing slot")
            elif not context.is_active():
                error = ("CLIENT_GONE", grpc.StatusCode.CANCELLED, "the client cancelled the call")
            else:
                continue
            with self._lock:
                if turn.is_set():  # handed a slot just now: pass it on instead
                    self._release_locked()
                else:
                    self._waiting.remove(turn)
                self.gave_up[error[0]] += 1
            raise RequestError(error[1], error[2])

    def _release(self) -> None:
        with self._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        if self._waiting:
            self._waiting.popleft().set()  # the slot goes straight to the longest waiter
        else:
            self._free += 1
