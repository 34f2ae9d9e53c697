"""What operators watch: Prometheus metrics and one structured log line per request.

Both come from one interceptor that sees each request and response, so the servicers stay free of
bookkeeping. Never recorded: image bytes, hash values, API keys.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Callable, Iterator, Mapping

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from hashmatch.hashing import Algorithm
from hashmatch.hashing.compute import timing_sink
from hashmatch.index import HashLists
from hashmatch.v1 import hashes_pb2

log = logging.getLogger("hashmatch.requests")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BYTES_BUCKETS = tuple(2**k for k in range(10, 27, 2))  # 1 KiB .. 64 MiB
_PIXEL_BUCKETS = tuple(10**k for k in range(3, 9))  # 1 kpx .. 100 Mpx
# Hashing one algorithm of one image: from well under a millisecond (a digest of a small file) to
# about a second (PDQ of a 50-megapixel photo).
_HASHING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_ALGORITHM_NAMES = {hashes_pb2.Algorithm.Value(f"ALGORITHM_{a.name}"): a.value for a in Algorithm}


class Metrics:
    """The service's metrics, in a registry of their own (several servers can share a process)."""

    def __init__(self, lists: HashLists) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("hashmatch_requests", "RPCs handled", ["method", "code"], registry=r)
        self.latency = Histogram(
            "hashmatch_request_seconds", "RPC latency", ["method"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.image_bytes = Histogram("hashmatch_image_bytes", "Uploaded image sizes", buckets=_BYTES_BUCKETS, registry=r)
        self.image_pixels = Histogram(
            "hashmatch_image_pixels", "Decoded image sizes", buckets=_PIXEL_BUCKETS, registry=r
        )
        self.matched_requests = Counter(
            "hashmatch_match_requests", "Match requests answered, by whether anything matched", ["matched"],
            registry=r,
        )
        self.matches = Counter(
            "hashmatch_matches", "Matches returned, by list and algorithm", ["list", "algorithm"], registry=r
        )
        self.entries_added = Counter("hashmatch_entries_added", "Entries added by uploads", registry=r)
        self.entries_removed = Counter("hashmatch_entries_removed", "Entries removed", registry=r)
        self.loads = Counter("hashmatch_uploads", "Uploads committed", registry=r)
        self.selftest_ok = Gauge(
            "hashmatch_selftest_ok", "1 when the last known-answer self-test passed, else 0", registry=r
        )
        self.selftest_time = Gauge(
            "hashmatch_selftest_last_run_timestamp_seconds", "When the last self-test finished", registry=r
        )
        self.hashing = Histogram(
            "hashmatch_hashing_seconds", "Time hashing one image, by algorithm (its region variants included)",
            ["algorithm"], buckets=_HASHING_BUCKETS, registry=r,
        )
        self.decoding = Histogram(
            "hashmatch_image_decode_seconds", "Time opening and decoding one image", buckets=_HASHING_BUCKETS,
            registry=r,
        )
        r.register(_IndexCollector(lists))
        # Labelled children, looked up once: labels() validates its arguments and takes a lock on
        # every call. Labels come from bounded sets (methods served, status codes, algorithms,
        # list names), and the registry keeps every child it made anyway.
        self._rpc_children: dict[tuple[str, grpc.StatusCode], tuple[Any, Any]] = {}
        self._hashing_children: dict[str, Any] = {}
        self._matched_children = {True: self.matched_requests.labels("true"),
                                  False: self.matched_requests.labels("false")}
        self._match_children: dict[tuple[str, int], Any] = {}

    def observe_hashing(self, timings: Mapping[str, float]) -> None:
        """One image's hashing.compute timings: "decode", then seconds by algorithm name."""
        for step, seconds in timings.items():
            if step == "decode":
                self.decoding.observe(seconds)
            else:
                _child(self._hashing_children, step, lambda: self.hashing.labels(step)).observe(seconds)

    def observe_rpc(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        count, latency = _child(self._rpc_children, (method, code),
                                lambda: (self.requests.labels(method, code.name), self.latency.labels(method)))
        count.inc()
        latency.observe(seconds)

    def observe_result(self, method: str, request: Any, response: Any) -> None:
        """What a successful response says: image sizes, matches, list changes."""
        image = getattr(request, "image", None)
        if isinstance(image, bytes) and image:
            self.image_bytes.observe(len(image))
        info = getattr(response, "image", None)
        if info is not None and info.width:
            self.image_pixels.observe(info.width * info.height)
        matches = getattr(response, "matches", None)
        if matches is not None:
            self._matched_children[len(matches) > 0].inc()
            for m in matches:
                _child(self._match_children, (m.list_name, m.algorithm),
                       lambda: self.matches.labels(m.list_name, _ALGORITHM_NAMES.get(m.algorithm, "unknown"))).inc()
        if method.endswith("/UploadHashes"):
            self.loads.inc()
            self.entries_added.inc(response.added)
        elif method.endswith("/RemoveHashes"):
            self.entries_removed.inc(response.removed)
        elif method.endswith("/DeleteList"):
            self.entries_removed.inc(response.entries_removed)


class _IndexCollector:
    """Read at scrape time, so the numbers are never stale."""

    def __init__(self, lists: HashLists) -> None:
        self._lists = lists

    def collect(self) -> Iterator[GaugeMetricFamily]:
        loaded = getattr(self._lists, "loaded", True)  # a LoadingLists until the index is loaded
        yield GaugeMetricFamily("hashmatch_index_loaded", "1 once the index is loaded, else 0", value=int(loaded))
        if not loaded:
            return
        entries = GaugeMetricFamily("hashmatch_index_entries", "Entries searchable, by algorithm", labels=["algorithm"])
        for algorithm in Algorithm:
            entries.add_metric([algorithm.value], self._lists.entry_count(algorithm))
        yield entries
        yield GaugeMetricFamily("hashmatch_index_generation", "Generation of the lists served", value=self._lists.generation)
        yield GaugeMetricFamily(
            "hashmatch_index_age_seconds", "Seconds since the index last changed or was loaded",
            value=time.time() - self._lists.last_change_time,
        )
        # Replicas and workers: is the shared store reachable, how long since this index was last
        # confirmed current, and how other processes' writes were applied (deltas, not reloads).
        yield GaugeMetricFamily("hashmatch_store_connected", "1 while the store can be read, else 0",
                                value=int(self._lists.store_connected))
        yield GaugeMetricFamily("hashmatch_index_stale_seconds",
                                "Seconds since the index was last confirmed to be the store's latest",
                                value=self._lists.stale_seconds)
        stats = self._lists.follower_stats
        yield CounterMetricFamily("hashmatch_follower_deltas", "Rounds that applied other processes' writes as deltas",
                                  value=stats["deltas"])
        yield CounterMetricFamily("hashmatch_follower_changes", "Other processes' writes applied as deltas",
                                  value=stats["changes"])
        yield CounterMetricFamily("hashmatch_follower_reloads",
                                  "Whole index rebuilds because the change feed did not reach back far enough",
                                  value=stats["reloads"])


class RequestObserver(grpc.ServerInterceptor):
    """Times every RPC, records its metrics and logs one line for it."""

    def __init__(self, metrics: Metrics, *, log_hashes: bool = False) -> None:
        self._metrics = metrics
        self._log_hashes = log_hashes

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(("/grpc.health", "/grpc.reflection")):
            return handler
        # The request id is for the log line alone: read (or made) only when that line is written.
        request_id = _RequestId(handler_call_details.invocation_metadata)
        if handler.unary_unary:
            return handler._replace(unary_unary=self._unary(method, request_id, handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=self._unary(method, request_id, handler.stream_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=self._streaming(method, request_id, handler.unary_stream))
        return handler._replace(stream_stream=self._streaming(method, request_id, handler.stream_stream))

    def _unary(self, method: str, request_id: _RequestId, behavior: Callable) -> Callable:
        def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            response = None
            token = timing_sink.set(self._metrics.observe_hashing)
            try:
                response = behavior(request, context)
            except BaseException:
                self._done(method, request_id, context, start, request, None, failed=True)
                raise
            finally:
                timing_sink.reset(token)
            self._done(method, request_id, context, start, request, response)
            return response

        return wrapper

    def _streaming(self, method: str, request_id: _RequestId, behavior: Callable) -> Callable:
        def wrapper(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            count = 0
            failed = True
            # Not reset: a generator's steps may run in different contexts; this one ends with the RPC.
            timing_sink.set(self._metrics.observe_hashing)
            try:
                for response in behavior(request, context):
                    count += 1
                    if method.endswith("/MatchImageStream") and response.HasField("response"):
                        self._metrics.observe_result(method, None, response.response)
                        if self._log_hashes and log.isEnabledFor(logging.INFO):
                            # The match log of a stream: a line per image, by the client's request id.
                            log.info("stream image", extra={"fields": {
                                "method": method, "request_id": request_id.value(),
                                "image_request_id": response.request_id[:128],
                                "matches": len(response.response.matches),
                                "hashes": _hashes_of(response.response.hashes)}})
                    yield response
                failed = False
            finally:
                self._done(method, request_id, context, start, None, None, failed=failed, responses=count)

        return wrapper

    def _done(
        self,
        method: str,
        request_id: _RequestId,
        context: grpc.ServicerContext,
        start: float,
        request: Any,
        response: Any,
        failed: bool = False,
        **extra: Any,
    ) -> None:
        seconds = time.perf_counter() - start
        code = _code_of(context, failed)
        self._metrics.observe_rpc(method, code, seconds)
        if code is grpc.StatusCode.OK and response is not None:
            self._metrics.observe_result(method, request, response)
        if not log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "method": method,
            "code": code.name,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": request_id.value(),
            **extra,
        }
        matches = getattr(response, "matches", None)
        if matches is not None:
            fields["matches"] = len(matches)
            fields["lists_matched"] = len({m.list_name for m in matches})
        if self._log_hashes and code is grpc.StatusCode.OK and method.startswith(_MATCHER):
            # The upload's hashes: computed (HashImage, MatchImage) or sent (MatchHashes). Only
            # for a call that was answered: a refused one (no key, wrong role, over its rate, a
            # bad value) would let anyone who reaches the port write what it likes to the log.
            uploaded = getattr(response, "hashes", None) if response is not None else None
            if uploaded is None and request is not None:
                uploaded = getattr(request, "hashes", None)
            if uploaded:
                fields["hashes"] = _hashes_of(uploaded)
        log.info("request", extra={"fields": fields})


_MATCHER = "/hashmatch.v1.MatcherService/"


def _hashes_of(hashes: Any) -> list[str]:
    """``algorithm:hex`` of each hash (``@orientation`` for a variant), for the match log."""
    out = []
    for h in hashes:
        name = _ALGORITHM_NAMES.get(h.algorithm, "unknown")
        orientation = getattr(h, "orientation", 0)
        out.append(f"{name}:{h.value}" + (f"@{orientation}" if orientation else ""))
    return out


def _child(children: dict, key: Any, make: Callable[[], Any]) -> Any:
    """The labelled child (or children) kept under ``key``, made by ``make()`` the first time."""
    child = children.get(key)
    return child if child is not None else children.setdefault(key, make())


class _RequestId:
    """The caller's x-request-id (cut to 128 characters), else a random one, made when first asked."""

    __slots__ = ("_metadata", "_value")

    def __init__(self, metadata: Any) -> None:
        self._metadata = metadata
        self._value: str | None = None

    def value(self) -> str:
        if self._value is None:
            given = ""
            for key, value in self._metadata or ():
                if key == "x-request-id":
                    given = value  # the last one, if sent several times
            self._value = str(given)[:128] or uuid.uuid4().hex[:16]
        return self._value


def _code_of(context: grpc.ServicerContext, failed: bool) -> grpc.StatusCode:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code
    # An exception that escaped without a status reaches the client as UNKNOWN.
    return grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and a record's ``fields``."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__()
        # One line a request: the date and time to the second are formatted once a second.
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S"))
        line: dict[str, Any] = {
            "time": f"{self._second[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
