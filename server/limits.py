"""Abuse limits: per-key token buckets and concurrency bounds, deadlines, upload and list counts.

- Match role (MatcherService): per-key token buckets of requests per second and request bytes per
  second. A unary call over either limit is refused with RESOURCE_EXHAUSTED, reason RATE_LIMITED,
  and ``retry-after`` (seconds, decimal) in the trailing metadata. A MatchImageStream is slowed
  instead (each image waits for its tokens), unless the wait would outlast its deadline.
- Every authenticated call: at most ``max_concurrent_per_key`` at once per key (reason
  TOO_MANY_CONCURRENT). The overall bound is gRPC's own ``maximum_concurrent_rpcs`` (set in app.py).
- A call whose deadline passed, or whose client left, while it waited for a worker is not started.
- UploadHashes: at most ``max_upload_entries`` entries (reason UPLOAD_TOO_LARGE); CreateList: at
  most ``max_lists`` lists (reason LIST_LIMIT).

Limits count per server process: with several worker processes each has its own buckets.
With authentication off there are no keys, hence no per-key limits.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import grpc

from hashmatch.index import HashLists

from .auth import Principal, current_principal
from .errors import RequestError, classify
from .handlers import Release, gated, refuse, split_method
from .shortcut import RateLimitShortcut, RecentRefusals

MATCHER = "hashmatch.v1.MatcherService"
UPLOAD = "/hashmatch.v1.ListsService/UploadHashes"
CREATE_LIST = "/hashmatch.v1.ListsService/CreateList"
CONCURRENCY_RETRY_AFTER = 0.1
# A started call needs at least this much of its deadline left to be worth starting.
MIN_TIME_LEFT = 0.005


@dataclass(frozen=True)
class Limits:
    match_requests_per_second: float = 100.0  # 0: no limit
    match_request_burst: float = 200.0
    match_bytes_per_second: float = 64 * 1024 * 1024  # 0: no limit
    # A single request may be as large as the message limit: the bucket holds at least that.
    match_bytes_burst: float = 64 * 1024 * 1024
    max_concurrent_per_key: int = 8  # 0: no limit
    max_upload_entries: int = 5_000_000
    max_lists: int = 1000


class TokenBucket:
    """``rate`` tokens a second up to ``capacity``. Not thread-safe: the caller holds a lock."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` can be taken (0: now). More than the capacity counts as all
        of it, and is then taken as debt, so one large request is slow, not impossible."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        needed = min(amount, self.capacity)
        return 0.0 if self.tokens >= needed else (needed - self.tokens) / self.rate

    def take(self, amount: float) -> None:
        self.tokens -= amount


class KeyBudget:
    """One principal's buckets and in-flight count."""

    def __init__(self, limits: Limits, now: float) -> None:
        self.requests = (
            TokenBucket(limits.match_requests_per_second, limits.match_request_burst, now)
            if limits.match_requests_per_second > 0 else None
        )
        self.bytes = (
            TokenBucket(limits.match_bytes_per_second, limits.match_bytes_burst, now)
            if limits.match_bytes_per_second > 0 else None
        )
        self.in_flight = 0

    def wait_for(self, size: int, now: float) -> tuple[float, float]:
        """(seconds until one request of ``size`` bytes fits both buckets, of which the wait for
        any request at all); the request is taken when the first is 0."""
        any_request = self.requests.wait_for(1, now) if self.requests else 0.0
        wait = max(any_request, self.bytes.wait_for(size, now) if self.bytes else 0.0)
        if wait == 0.0:
            if self.requests:
                self.requests.take(1)
            if self.bytes:
                self.bytes.take(size)
        return wait, any_request


class LimitsInterceptor(grpc.ServerInterceptor):
    """Applies ``Limits``; sits inside AuthInterceptor, whose principal it reads.

    ``stats`` counts what it refused, by reason (for tests and operators).
    """

    def __init__(self, limits: Limits, lists: HashLists, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._lists = lists
        self._clock = clock
        self._lock = threading.Lock()
        self._budgets: dict[str, KeyBudget] = {}
        self._create_lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        self._rates = self._describe_rates()  # for refusal messages, made once
        self.recent = RecentRefusals(clock)
        self.shortcut = RateLimitShortcut(self.recent, self._rates, MATCHER)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None:
            return None
        service, _ = split_method(details.method)
        if service.startswith("grpc."):  # health and reflection: open, cheap, never limited
            return handler
        return gated(handler, functools.partial(self._admit, details.method, service == MATCHER))

    def _count(self, reason: str) -> None:
        with self._lock:
            self.stats[reason] += 1

    # -- the gate ---------------------------------------------------------------------------------

    def _admit(self, method: str, is_match: bool, request: Any, context: grpc.ServicerContext) -> tuple[Any, Release]:
        self._check_still_wanted(context)
        principal = current_principal()
        keyed = principal is not None and principal.via != "no-auth"
        budget = self._budget(principal) if keyed else None
        if budget is not None:
            self._enter(budget, context)
        try:
            if budget is not None and is_match:
                request = self._charge(budget, request, context)
            if method == UPLOAD:
                request = self._count_entries(request)
            if method == CREATE_LIST:
                return request, self._create_list_slot(budget, context)
        except BaseException:
            self._leave(budget)
            raise
        return request, functools.partial(self._release, budget)

    def _check_still_wanted(self, context: grpc.ServicerContext) -> None:
        if not context.is_active():
            self._count("CLIENT_GONE")
            refuse(context, grpc.StatusCode.CANCELLED, "the client left before the call started")
        remaining = context.time_remaining()
        if remaining is not None and remaining < MIN_TIME_LEFT:
            self._count("DEADLINE_PASSED")
            refuse(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                   "the call's deadline passed while it waited for a worker; it was not started")

    def _budget(self, principal: Principal) -> KeyBudget:
        with self._lock:
            budget = self._budgets.get(principal.bucket_id)
            if budget is None:
                budget = self._budgets[principal.bucket_id] = KeyBudget(self.limits, self._clock())
            return budget

    def _enter(self, budget: KeyBudget, context: grpc.ServicerContext) -> None:
        limit = self.limits.max_concurrent_per_key
        with self._lock:
            if limit and budget.in_flight >= limit:
                refused = True
            else:
                budget.in_flight += 1
                refused = False
        if refused:
            self._count("TOO_MANY_CONCURRENT")
            refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                   f"this key already has {limit} calls in progress (the server's per-key limit); "
                   "wait for one to finish", "TOO_MANY_CONCURRENT", CONCURRENCY_RETRY_AFTER)

    def _leave(self, budget: KeyBudget | None) -> None:
        if budget is not None:
            with self._lock:
                budget.in_flight -= 1

    def _release(self, budget: KeyBudget | None, _error: BaseException | None) -> None:
        self._leave(budget)

    # -- match role: rates ------------------------------------------------------------------------

    def _charge(self, budget: KeyBudget, request: Any, context: grpc.ServicerContext) -> Any:
        if hasattr(request, "ByteSize"):
            with self._lock:
                wait, any_request = budget.wait_for(request.ByteSize(), self._clock())
            if wait:
                self._count("RATE_LIMITED")
                principal = current_principal()
                # Over the request rate, every call is refused alike; over the byte rate, a
                # smaller request may still fit, so only the former is remembered.
                if any_request and principal is not None and principal.credential_digest:
                    self.recent.note(principal.credential_digest, any_request)
                refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"over this key's match rate limit ({self._rates}); retry in {wait:.2f}s",
                       "RATE_LIMITED", wait)
            return request
        return self._paced(budget, request, context)

    def _paced(self, budget: KeyBudget, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        """A stream's requests, each let through once the key's buckets allow it."""
        for message in requests:
            while True:
                with self._lock:
                    wait, _ = budget.wait_for(message.ByteSize(), self._clock())
                if not wait:
                    break
                remaining = context.time_remaining()
                if remaining is not None and wait > remaining:
                    self._count("RATE_LIMITED")
                    raise RequestError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"over this key's match rate limit ({self._rates}), "
                        "and the stream's deadline ends before the next image may start",
                        "RATE_LIMITED",
                    )
                if not context.is_active():
                    return
                time.sleep(min(wait, 0.25))
            yield message

    def _describe_rates(self) -> str:
        parts = []
        if self.limits.match_requests_per_second > 0:
            parts.append(f"{self.limits.match_requests_per_second:g} requests/s")
        if self.limits.match_bytes_per_second > 0:
            parts.append(f"{self.limits.match_bytes_per_second / 1024 / 1024:g} MiB/s")
        return ", ".join(parts)

    # -- curate role: sizes -----------------------------------------------------------------------

    def _count_entries(self, requests: Iterator[Any]) -> Iterator[Any]:
        limit = self.limits.max_upload_entries
        seen = 0
        for message in requests:
            seen += len(message.entries)
            if limit and seen > limit:
                self._count("UPLOAD_TOO_LARGE")
                raise RequestError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the upload has more than {limit} entries, the server's limit per upload "
                    "(--max-upload-entries); nothing was stored: split the file into several uploads",
                    "UPLOAD_TOO_LARGE",
                )
            yield message

    def _create_list_slot(self, budget: KeyBudget | None, context: grpc.ServicerContext) -> Release:
        # Creating lists one at a time makes count-then-create exact.
        self._create_lock.acquire()
        try:
            count = len(self._lists.list_lists())
        except BaseException as exc:
            self._create_lock.release()
            known = classify(exc)  # e.g. the shared store is away: UNAVAILABLE, not a crash
            if known is None:
                raise
            refuse(context, known[0], known[2], known[1])
        if self.limits.max_lists and count >= self.limits.max_lists:
            self._create_lock.release()
            self._count("LIST_LIMIT")
            refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                   f"the server already has {count} lists, its limit (--max-lists); delete one first",
                   "LIST_LIMIT")

        def release(error: BaseException | None) -> None:
            self._create_lock.release()
            self._release(budget, error)

        return release


def ensure_active(context: grpc.ServicerContext) -> None:
    """For servicers between two costly steps: stop if the client left or the deadline passed."""
    if not context.is_active():
        raise RequestError(grpc.StatusCode.CANCELLED, "the client cancelled the call")
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise RequestError(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed")
