"""Abuse limits over a real server: per-key token buckets with retry-after (and the SDK honouring it),
paced streams, per-key and overall concurrency bounds, deadlines, upload and list counts."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from authkit import ServerProcess, admin_key, bearer, new_key, rpc_error, secure_server, trailing
from imagegen import encode, photo

from hashmatch.client import Client, HashEntry, RateLimited, ResourceExhausted, TooManyConcurrent
from hashmatch.server.limits import Limits
from hashmatch.v1 import lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

PDQ_ZERO = matcher_pb2.MatchHashesRequest(hashes=[{"algorithm": 1, "value": "0" * 64}])
SMALL = encode(photo(5, (96, 72)), "PNG")


def limited(server_factory: Any, **limits: Any) -> Any:
    base = dict(match_requests_per_second=0, match_bytes_per_second=0, max_concurrent_per_key=0)
    return secure_server(server_factory, limits=Limits(**{**base, **limits}))


def test_request_rate_refuses_with_retry_after_per_key(server_factory: Any) -> None:
    srv = limited(server_factory, match_requests_per_second=2, match_request_burst=3)
    a = new_key(srv.address, srv.data_dir, "a", ["match"])
    b = new_key(srv.address, srv.data_dir, "b", ["match"])
    with grpc.insecure_channel(srv.address) as channel:
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        for _ in range(3):
            matcher.MatchHashes(PDQ_ZERO, metadata=bearer(a), timeout=10)
        error = rpc_error(matcher.MatchHashes, PDQ_ZERO, metadata=bearer(a), timeout=10)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        meta = trailing(error)
        assert meta["hashmatch-reason"] == "RATE_LIMITED" and "2 requests/s" in error.details()
        wait = float(meta["retry-after"])
        assert 0 < wait <= 0.5
        # Sent again at once, the same key is refused on sight (the shortcut: not even looked up) ...
        again = rpc_error(matcher.MatchHashes, PDQ_ZERO, metadata=bearer(a), timeout=10)
        assert again.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and trailing(again)["hashmatch-reason"] == "RATE_LIMITED"
        assert 0 < float(trailing(again)["retry-after"]) <= wait
        assert srv.server.limits.stats["RATE_LIMITED"] == 1
        # ... but only those exact credentials: a forged secret on the same key id is still unauthenticated.
        forged = a.rsplit("_", 1)[0] + "_" + "0" * 64
        assert rpc_error(matcher.MatchHashes, PDQ_ZERO, metadata=bearer(forged), timeout=10).code() == (
            grpc.StatusCode.UNAUTHENTICATED)
        matcher.MatchHashes(PDQ_ZERO, metadata=bearer(b), timeout=10)  # another key has its own bucket
        time.sleep(wait + 0.02)
        matcher.MatchHashes(PDQ_ZERO, metadata=bearer(a), timeout=10)
        # Curation is not rate limited.
        for i in range(6):
            lists_pb2_grpc.ListsServiceStub(channel).ListLists(
                lists_pb2.ListListsRequest(), metadata=bearer(admin_key(srv.data_dir)), timeout=10)
    assert srv.server.limits.stats["RATE_LIMITED"] == 1


def test_byte_rate_counts_image_bytes(server_factory: Any) -> None:
    image = encode(photo(6, (320, 240)), "PNG")
    srv = limited(server_factory, match_bytes_per_second=len(image), match_bytes_burst=len(image) * 1.5)
    key = new_key(srv.address, srv.data_dir, "bytes", ["match"])
    with grpc.insecure_channel(srv.address) as channel:
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        matcher.MatchImage(matcher_pb2.MatchImageRequest(image=image), metadata=bearer(key), timeout=30)
        error = rpc_error(matcher.MatchImage, matcher_pb2.MatchImageRequest(image=image), metadata=bearer(key),
                          timeout=30)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "MiB/s" in error.details()
        assert 0.3 < float(trailing(error)["retry-after"]) <= 0.6
        matcher.MatchHashes(PDQ_ZERO, metadata=bearer(key), timeout=10)  # small requests still fit


def test_sdk_waits_as_told_and_gives_up_when_the_deadline_is_short(server_factory: Any) -> None:
    srv = limited(server_factory, match_requests_per_second=5, match_request_burst=1)
    key = new_key(srv.address, srv.data_dir, "sdk", ["match"])
    with Client(srv.address, api_key=key) as c:
        start = time.monotonic()
        for _ in range(4):
            assert c.match_hashes([("pdq", "0" * 64)]) == ()
        assert time.monotonic() - start >= 0.5  # three waits of about 0.2 s
        with pytest.raises(RateLimited) as short:
            c.match_hashes([("pdq", "0" * 64)], timeout=0.05)
        assert short.value.retry_after is not None and short.value.retry_after > 0.05
    with Client(srv.address, api_key=key, rate_limit_retries=0) as c:
        time.sleep(0.3)  # a full bucket again: one call passes, the next is refused
        c.match_hashes([("pdq", "0" * 64)])
        with pytest.raises(RateLimited) as refused:
            c.match_hashes([("pdq", "0" * 64)])
        assert 0 < refused.value.retry_after <= 0.2


def test_async_sdk_honours_retry_after(server_factory: Any) -> None:
    import asyncio

    from hashmatch.client import AsyncClient

    srv = limited(server_factory, match_requests_per_second=5, match_request_burst=1)
    key = new_key(srv.address, srv.data_dir, "async", ["match"])

    async def run() -> float:
        async with AsyncClient(srv.address, api_key=key) as c:
            start = time.monotonic()
            for _ in range(3):
                assert await c.match_hashes([("pdq", "0" * 64)]) == ()
            return time.monotonic() - start

    assert asyncio.run(run()) >= 0.3


def test_a_stream_is_paced_not_refused(server_factory: Any) -> None:
    srv = limited(server_factory, match_requests_per_second=5, match_request_burst=1)
    key = new_key(srv.address, srv.data_dir, "stream", ["match"])
    with Client(srv.address, api_key=key) as c:
        start = time.monotonic()
        results = list(c.match_image_stream([(str(i), SMALL) for i in range(6)]))
        took = time.monotonic() - start
    assert sorted(r.request_id for r in results) == [str(i) for i in range(6)] and all(r.ok for r in results)
    assert took >= 0.9  # five waits of 0.2 s


class HeldStream:
    """A MatchImageStream that sends one image, gets its answer, then stays open until released."""

    def __init__(self, channel: grpc.Channel, key: str) -> None:
        self._release = threading.Event()
        self._call = matcher_pb2_grpc.MatcherServiceStub(channel).MatchImageStream(
            self._requests(), metadata=bearer(key), timeout=60)
        first = next(self._call)
        assert first.request_id == "held"

    def _requests(self) -> Iterator[matcher_pb2.MatchImageStreamRequest]:
        yield matcher_pb2.MatchImageStreamRequest(request_id="held", request=matcher_pb2.MatchImageRequest(image=SMALL))
        self._release.wait(60)

    def release(self) -> None:
        self._release.set()
        list(self._call)


def test_concurrent_calls_per_key_are_bounded(server_factory: Any) -> None:
    srv = limited(server_factory, max_concurrent_per_key=2)
    a = new_key(srv.address, srv.data_dir, "a", ["match"])
    b = new_key(srv.address, srv.data_dir, "b", ["match"])
    with grpc.insecure_channel(srv.address) as channel:
        held = [HeldStream(channel, a), HeldStream(channel, a)]
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        error = rpc_error(matcher.MatchHashes, PDQ_ZERO, metadata=bearer(a), timeout=10)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert trailing(error)["hashmatch-reason"] == "TOO_MANY_CONCURRENT" and "retry-after" in trailing(error)
        matcher.MatchHashes(PDQ_ZERO, metadata=bearer(b), timeout=10)  # others are not starved
        with Client(srv.address, api_key=a, rate_limit_retries=0) as c, pytest.raises(TooManyConcurrent):
            c.match_hashes([("pdq", "0" * 64)])
        for stream in held:
            stream.release()
        matcher.MatchHashes(PDQ_ZERO, metadata=bearer(a), timeout=10)


def test_overall_concurrency_is_bounded(server_factory: Any) -> None:
    srv = secure_server(server_factory, threads=8, max_concurrent_rpcs=3,
                        limits=Limits(match_requests_per_second=0, match_bytes_per_second=0, max_concurrent_per_key=0))
    keys = [new_key(srv.address, srv.data_dir, f"k{i}", ["match"]) for i in range(4)]
    with grpc.insecure_channel(srv.address) as channel:
        held = [HeldStream(channel, keys[i]) for i in range(3)]
        error = rpc_error(matcher_pb2_grpc.MatcherServiceStub(channel).MatchHashes, PDQ_ZERO,
                          metadata=bearer(keys[3]), timeout=10)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for stream in held:
            stream.release()
        matcher_pb2_grpc.MatcherServiceStub(channel).MatchHashes(PDQ_ZERO, metadata=bearer(keys[3]), timeout=10)


def test_a_call_whose_client_gave_up_while_queued_is_not_started(server_factory: Any) -> None:
    srv = secure_server(server_factory, threads=1)
    key = new_key(srv.address, srv.data_dir, "q", ["match"])
    with grpc.insecure_channel(srv.address) as channel:
        busy = HeldStream(channel, key)  # the only worker thread is taken
        stream = matcher_pb2_grpc.MatcherServiceStub(channel).MatchImageStream(
            iter([matcher_pb2.MatchImageStreamRequest(request_id="late",
                                                      request=matcher_pb2.MatchImageRequest(image=SMALL))]),
            metadata=bearer(key), timeout=0.3)
        with pytest.raises(grpc.RpcError) as gave_up:
            list(stream)
        assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        busy.release()
        end = time.monotonic() + 10
        while time.monotonic() < end and not (srv.server.limits.stats["DEADLINE_PASSED"]
                                             + srv.server.limits.stats["CLIENT_GONE"]):
            time.sleep(0.05)
    assert srv.server.limits.stats["DEADLINE_PASSED"] + srv.server.limits.stats["CLIENT_GONE"] == 1


def test_hashes_per_upload_are_bounded(server_factory: Any) -> None:
    srv = limited(server_factory, max_upload_entries=10)
    with Client(srv.address, api_key=admin_key(srv.data_dir)) as c:
        c.create_list("small")
        entries = [HashEntry("md5", f"{i:032x}") for i in range(11)]
        with pytest.raises(ResourceExhausted) as over:
            c.upload_hashes("small", entries, batch_size=4)
        assert over.value.reason == "UPLOAD_TOO_LARGE" and "more than 10 entries" in over.value.details
        assert c.get_list("small").entry_count == 0
        assert c.upload_hashes("small", entries[:10], batch_size=4).added == 10


def test_list_count_is_bounded_even_when_creates_race(server_factory: Any) -> None:
    srv = limited(server_factory, max_lists=3)
    with Client(srv.address, api_key=admin_key(srv.data_dir)) as c:
        def create(i: int) -> str:
            try:
                c.create_list(f"l{i}")
                return "ok"
            except ResourceExhausted as exc:
                assert exc.reason == "LIST_LIMIT" and "limit" in exc.details
                return "refused"

        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(create, range(6)))
        assert outcomes.count("ok") == 3 and len(c.list_lists()) == 3
        c.delete_list(c.list_lists()[0].name)
        c.create_list("again")


def test_query_hashes_and_message_size_limits_are_clear(server_factory: Any) -> None:
    srv = secure_server(server_factory, max_query_hashes=2, max_message_bytes=64 * 1024)
    key = admin_key(srv.data_dir)
    with grpc.insecure_channel(srv.address, options=[("grpc.max_send_message_length", 1 << 22)]) as channel:
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        many = matcher_pb2.MatchHashesRequest(hashes=[{"algorithm": 1, "value": "0" * 64}] * 3)
        error = rpc_error(matcher.MatchHashes, many, metadata=bearer(key), timeout=10)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "over the limit of 2" in error.details()
        big = matcher_pb2.MatchImageRequest(image=b"\0" * (128 * 1024))
        error = rpc_error(matcher.MatchImage, big, metadata=bearer(key), timeout=10)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in error.details()


def test_limits_come_from_the_command_line(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "d", "--match-rate", "1", "--match-burst", "1", "--max-lists", "1")
    try:
        key = admin_key(tmp_path / "d")
        with grpc.insecure_channel(proc.address) as channel:
            matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
            matcher.MatchHashes(PDQ_ZERO, metadata=bearer(key), timeout=10)
            error = rpc_error(matcher.MatchHashes, PDQ_ZERO, metadata=bearer(key), timeout=10)
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and float(trailing(error)["retry-after"]) > 0.5
        with Client(proc.address, api_key=key) as c:
            c.create_list("one")
            with pytest.raises(ResourceExhausted, match="limit"):
                c.create_list("two")
    finally:
        assert proc.stop() == 0
    bad = subprocess.run([sys.executable, "-m", "hashmatch.server", "--tls-cert", "x.pem"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--tls-cert and --tls-key go together" in bad.stderr
