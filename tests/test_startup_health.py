"""The server listens while its index loads: health NOT_SERVING, matching refused with UNAVAILABLE
(never answered from an empty index: that would be a silent miss), then SERVING once loaded."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import grpc
import numpy as np
import pytest
from authkit import rpc_error, trailing
from grpc_health.v1 import health_pb2, health_pb2_grpc
from imagegen import encode, photo

from hashmatch.hashing import Algorithm
from hashmatch.index import HashLists, NewEntry, SQLiteStore
from hashmatch.server.app import ServerConfig, create_server, open_lists
from hashmatch.v1 import hashes_pb2, lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
PDQ_VALUE = bytes(range(32))


def listed_store(data_dir: Path) -> None:
    lists = HashLists(SQLiteStore(data_dir / "hashmatch.sqlite3"))
    lists.create_list("known")
    lists.add_entries("known", [NewEntry(Algorithm.PDQ, PDQ_VALUE, entry_id="k1")])
    lists.close()


def held_until(release: threading.Event) -> Callable[[ServerConfig], HashLists]:
    """The real load, started only once ``release`` is set: the server is seen mid-load."""

    def load(config: ServerConfig) -> HashLists:
        assert release.wait(60)
        return open_lists(config)

    return load


def pdq_query() -> matcher_pb2.MatchHashesRequest:
    return matcher_pb2.MatchHashesRequest(hashes=[hashes_pb2.Hash(algorithm=hashes_pb2.ALGORITHM_PDQ,
                                                                  value=PDQ_VALUE.hex())])


def test_health_and_matching_while_the_index_loads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    listed_store(data)
    release = threading.Event()
    held_load = held_until(release)
    config = ServerConfig(data_dir=data, auth=False, selftest=True, metrics_address="127.0.0.1:0")
    srv, port = create_server("127.0.0.1:0", config, load=held_load)
    srv.start(wait_until_loaded=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
            lists = lists_pb2_grpc.ListsServiceStub(channel)
            for service in ("", "hashmatch.v1.MatcherService", "hashmatch.v1.ListsService"):
                assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status == NOT_SERVING

            error = rpc_error(matcher.MatchHashes, pdq_query(), timeout=10)
            assert error.code() is grpc.StatusCode.UNAVAILABLE
            assert "index loading" in error.details()
            assert trailing(error)["hashmatch-reason"] == "INDEX_LOADING"
            assert float(trailing(error)["retry-after"]) > 0
            image = encode(photo(3), "JPEG")
            for call, request in (
                (matcher.MatchImage, matcher_pb2.MatchImageRequest(image=image)),
                (lists.ListLists, lists_pb2.ListListsRequest()),
                (lists.CreateList, lists_pb2.CreateListRequest(name="early")),
            ):
                assert rpc_error(call, request, timeout=10).code() is grpc.StatusCode.UNAVAILABLE
            # Hashing needs no index: served while loading.
            hashed = matcher.HashImage(matcher_pb2.HashImageRequest(image=image), timeout=30).hashes
            assert hashes_pb2.ALGORITHM_PDQ in [h.algorithm for h in hashed] and len(hashed[0].value) == 64
            scraped = _scrape(srv.metrics_port)
            assert scraped["hashmatch_index_loaded"] == 0
            assert 'hashmatch_requests_total{code="UNAVAILABLE",method="/hashmatch.v1.MatcherService/MatchHashes"}' in scraped

            release.set()
            srv.lists.wait(60)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
            found = matcher.MatchHashes(pdq_query(), timeout=10).matches
            assert [(m.list_name, m.entry_id, m.distance) for m in found] == [("known", "k1", 0)]
            assert "early" not in [info.name for info in lists.ListLists(lists_pb2.ListListsRequest()).lists]
            scraped = _scrape(srv.metrics_port)
            assert scraped["hashmatch_index_loaded"] == 1
            assert scraped['hashmatch_index_entries{algorithm="pdq"}'] == 1
    finally:
        release.set()
        srv.stop(None)


def test_a_failed_load_is_refused_not_served_empty(tmp_path: Path) -> None:
    def broken_load(config: ServerConfig) -> HashLists:
        raise OSError("disk gone")

    config = ServerConfig(data_dir=tmp_path / "data", auth=False, selftest=False)
    srv, port = create_server("127.0.0.1:0", config, load=broken_load)
    srv.start(wait_until_loaded=False)
    try:
        with pytest.raises(OSError):
            srv.lists.wait(30)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == NOT_SERVING
            error = rpc_error(matcher_pb2_grpc.MatcherServiceStub(channel).MatchHashes, pdq_query(), timeout=10)
            assert error.code() is grpc.StatusCode.UNAVAILABLE
            assert "failed to load" in error.details()
    finally:
        srv.stop(None)


def test_server_process_answers_health_before_a_large_index_is_loaded(tmp_path: Path) -> None:
    """A real process on a store of 400k entries (no snapshot yet): bound at once, health says
    NOT_SERVING and matching UNAVAILABLE until the index is built, then SERVING; the "listening"
    line (what scripts wait for) comes once it is served."""
    data = tmp_path / "data"
    fill(data / "hashmatch.sqlite3", 400_000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hashmatch.server", "--listen", "127.0.0.1:0", "--data-dir", str(data),
         "--metrics", "off", "--log-format", "text", "--insecure-no-auth"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        # The log says where it is bound at once; "hashmatch listening on" (stdout) waits for the index.
        for line in proc.stderr:
            found = re.search(r"bound (\S+:\d+); loading the index", line)
            if found:
                address = found.group(1)
                break
        else:
            raise AssertionError(f"the server exited with {proc.wait()} before it was bound")
        threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()  # never a full pipe
        seen: list[int] = []
        refused: list[grpc.StatusCode] = []
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
                seen.append(status)
                if status == SERVING:
                    break
                try:
                    matcher.MatchHashes(pdq_query(), timeout=10)
                except grpc.RpcError as error:
                    refused.append(error.code())
                time.sleep(0.05)
            assert seen[0] == NOT_SERVING and seen[-1] == SERVING
            # Every refusal while loading was UNAVAILABLE (the self-test after the load may pass some calls).
            assert refused and set(refused) == {grpc.StatusCode.UNAVAILABLE}
            found = matcher.MatchHashes(matcher_pb2.MatchHashesRequest(hashes=[hashes_pb2.Hash(
                algorithm=hashes_pb2.ALGORITHM_PDQ, value=first_value(data / "hashmatch.sqlite3").hex())]),
                timeout=10).matches
            assert any(m.entry_id == "e0" and m.distance == 0 for m in found)
        assert proc.stdout.readline().startswith(f"hashmatch listening on {address} ")
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0


def fill(path: Path, n: int) -> None:
    """n random PDQ entries in one list, written with plain SQL: set-up, not what is tested."""
    store = SQLiteStore(path)
    store.create_list("bulk", "", {}, True)
    store.close()
    values = np.random.default_rng(7).integers(0, 256, size=(n, 32), dtype=np.uint8)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    now = time.time()
    db.executemany(
        "INSERT INTO entries (list_id, entry_id, algorithm, hash, label, added_at) VALUES (1, ?, 'pdq', ?, '', ?)",
        ((f"e{i}", values[i].tobytes(), now) for i in range(n)),
    )
    db.execute("INSERT OR REPLACE INTO counts (list_id, algorithm, n) "
               "SELECT list_id, algorithm, count(*) FROM entries GROUP BY list_id, algorithm")
    db.execute("UPDATE meta SET value = value + 1 WHERE key IN ('generation', 'entries_generation')")
    db.execute("COMMIT")
    db.close()


def first_value(path: Path) -> bytes:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT hash FROM entries WHERE entry_id = 'e0'").fetchone()[0]
    finally:
        db.close()


def _scrape(port: int | None) -> dict[str, float]:
    from test_observability import scrape

    assert port
    return scrape(port)


def test_a_plaintext_health_port_for_probes_that_cannot_speak_tls(tmp_path: Path) -> None:
    data = tmp_path / "data"
    listed_store(data)
    release = threading.Event()
    held_load = held_until(release)
    config = ServerConfig(data_dir=data, auth=False, selftest=False, health_address="127.0.0.1:0")
    srv, port = create_server("127.0.0.1:0", config, load=held_load)
    srv.start(wait_until_loaded=False)
    try:
        assert srv.health_port and srv.health_port != port
        with grpc.insecure_channel(f"127.0.0.1:{srv.health_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def status(service: str) -> int:
                return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status

            # Loading: alive (restarting would not help) but not ready.
            assert status("liveness") == SERVING
            assert status("") == NOT_SERVING
            release.set()
            end = time.monotonic() + 30
            while status("") != SERVING:
                assert time.monotonic() < end, "never turned SERVING on the health port"
                time.sleep(0.05)
            assert status("hashmatch.v1.MatcherService") == SERVING
            # Only health is served there: nothing about lists or uploads.
            with pytest.raises(grpc.RpcError) as refused:
                matcher_pb2_grpc.MatcherServiceStub(channel).MatchHashes(pdq_query(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # The main port answers the same.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            assert check(health_pb2.HealthCheckRequest(service="liveness"), timeout=5).status == SERVING
            assert check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == SERVING
    finally:
        release.set()
        srv.stop(None)
    # Drained: neither port answers any more.
    with grpc.insecure_channel(f"127.0.0.1:{srv.health_port}") as channel:
        with pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=2)
