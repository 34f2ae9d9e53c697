"""Metrics and request logs, read the way operators read them: a /metrics scrape and JSON log lines."""

from __future__ import annotations

import json
import logging
import re
import urllib.request

import grpc
import pytest
from imagegen import encode, photo

from hashmatch.v1 import hashes_pb2, lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc
from hashmatch.server.observability import JsonFormatter

PDQ = hashes_pb2.ALGORITHM_PDQ


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_move_with_requests(server_factory) -> None:
    srv = server_factory(metrics_address="127.0.0.1:0")
    port = srv.server.metrics_port
    assert port
    before = scrape(port)
    assert before['hashmatch_index_entries{algorithm="pdq"}'] == 0
    with grpc.insecure_channel(srv.address) as channel:
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        lists = lists_pb2_grpc.ListsServiceStub(channel)
        image = encode(photo(4), "JPEG")
        pdq = matcher.HashImage(matcher_pb2.HashImageRequest(image=image, algorithms=[PDQ])).hashes[0].value
        lists.CreateList(lists_pb2.CreateListRequest(name="watch"))
        lists.UploadHashes(iter([lists_pb2.UploadHashesRequest(
            list_name="watch", entries=[lists_pb2.HashEntry(algorithm=PDQ, hash=pdq)], commit=True)]))
        for _ in range(3):
            assert len(matcher.MatchImage(matcher_pb2.MatchImageRequest(image=image)).matches) == 1
        matcher.MatchImage(matcher_pb2.MatchImageRequest(image=encode(photo(9), "PNG")))
        with pytest.raises(grpc.RpcError):
            matcher.MatchImage(matcher_pb2.MatchImageRequest(image=b"not an image"))
    after = scrape(port)
    match_ok = 'hashmatch_requests_total{code="OK",method="/hashmatch.v1.MatcherService/MatchImage"}'
    match_bad = 'hashmatch_requests_total{code="INVALID_ARGUMENT",method="/hashmatch.v1.MatcherService/MatchImage"}'
    assert after[match_ok] == 4 and after[match_bad] == 1
    assert after['hashmatch_matches_total{algorithm="pdq",list="watch"}'] == 3
    assert after['hashmatch_match_requests_total{matched="true"}'] == 3
    assert after['hashmatch_match_requests_total{matched="false"}'] == 1
    assert after['hashmatch_index_entries{algorithm="pdq"}'] == 1
    assert after["hashmatch_index_generation"] > before["hashmatch_index_generation"]
    assert after["hashmatch_entries_added_total"] == 1 and after["hashmatch_uploads_total"] == 1
    assert after["hashmatch_image_bytes_count"] == 5  # the HashImage and 4 good MatchImage uploads
    assert after['hashmatch_request_seconds_count{method="/hashmatch.v1.MatcherService/MatchImage"}'] == 5


def test_one_json_log_line_per_request_without_image_or_hash(server, caplog) -> None:
    caplog.set_level(logging.INFO, logger="hashmatch.requests")
    image = encode(photo(8), "PNG")
    with grpc.insecure_channel(server.address) as channel:
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        reply = matcher.MatchImage(matcher_pb2.MatchImageRequest(image=image), metadata=[("x-request-id", "req-42")])
    records = [r for r in caplog.records if r.name == "hashmatch.requests"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    fields = json.loads(line)
    assert fields["method"] == "/hashmatch.v1.MatcherService/MatchImage"
    assert fields["code"] == "OK" and fields["request_id"] == "req-42" and fields["matches"] == 0
    assert fields["duration_ms"] > 0
    for h in reply.hashes:
        assert h.value not in line
    assert not re.search(r"[0-9a-f]{32}", line)


def test_selftest_passes_and_a_changed_hash_turns_health_not_serving(server_factory, tmp_path, caplog) -> None:
    import shutil

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from hashmatch.server.selftest import DATA_DIR, run_selftest

    good = run_selftest()
    assert good.ok, good.problems
    srv = server_factory(metrics_address="127.0.0.1:0", selftest=True)
    with grpc.insecure_channel(srv.address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    assert scrape(srv.server.metrics_port)["hashmatch_selftest_ok"] == 1

    # A known answer that no longer holds (as after an upgrade that changes a hash).
    tampered = tmp_path / "selftest"
    shutil.copytree(DATA_DIR, tampered)
    expected = json.loads((tampered / "expected.json").read_text())
    first = sorted(expected)[0]
    expected[first]["phash"] = "0" * 16
    (tampered / "expected.json").write_text(json.dumps(expected))
    caplog.set_level(logging.ERROR, logger="hashmatch.selftest")
    bad = server_factory(metrics_address="127.0.0.1:0", selftest=True, selftest_data_dir=tampered)
    with grpc.insecure_channel(bad.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "hashmatch.v1.MatcherService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert scrape(bad.server.metrics_port)["hashmatch_selftest_ok"] == 0
    assert any(f"{first}: PHASH is" in r.getMessage() for r in caplog.records)


def test_hashing_time_by_algorithm_is_scraped(server_factory) -> None:
    srv = server_factory(metrics_address="127.0.0.1:0")
    port = srv.server.metrics_port
    assert port
    image = encode(photo(5, (1200, 900)), "JPEG")
    with grpc.insecure_channel(srv.address) as channel:
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        matcher.HashImage(matcher_pb2.HashImageRequest(image=image, algorithms=[PDQ, hashes_pb2.ALGORITHM_PHASH]))
        matcher.MatchImage(matcher_pb2.MatchImageRequest(image=image))  # the defaults: PDQ, pHash, MD5, SHA-256
        with pytest.raises(grpc.RpcError):
            matcher.MatchImage(matcher_pb2.MatchImageRequest(image=b"not an image"))
    after = scrape(port)
    count = 'hashmatch_hashing_seconds_count{algorithm="%s"}'
    total = 'hashmatch_hashing_seconds_sum{algorithm="%s"}'
    assert after[count % "pdq"] == 2 and after[count % "phash"] == 2
    assert after[count % "md5"] == 1 and after[count % "sha256"] == 1
    assert count % "dhash" not in after  # never asked for
    # PDQ of a 1.1-megapixel photo: milliseconds, not zero and not seconds.
    assert 0.001 < after[total % "pdq"] / 2 < 2.0
    assert after["hashmatch_image_decode_seconds_count"] == 2  # the bad upload never got decoded
    assert after["hashmatch_image_decode_seconds_sum"] > 0
