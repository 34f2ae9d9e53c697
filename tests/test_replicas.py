"""Replicas on one PostgreSQL: real server processes (python -m hashmatch.server --store URL).

A change made through one replica is matched by the others within 2 seconds, applied as a delta
(the follower's counters say so, with no rebuild); a replica that loses the database keeps
answering from its last index, reports itself stale, and catches up once the database is back.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authkit import ServerProcess
from hashmatch.client import Client, HashEntry
from hashmatch.client.errors import Unavailable

pytestmark = pytest.mark.slow

FRESHNESS = "hashmatch.v1.Freshness"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    def __init__(self, data_dir: Path, url: str, auth: bool = False, flags: tuple[str, ...] = ()) -> None:
        self.url = url
        self.metrics_port = free_port()
        self.process = ServerProcess(
            data_dir, "--store", url, *(() if auth else ("--insecure-no-auth",)),
            "--metrics", f"127.0.0.1:{self.metrics_port}", "--selftest-interval", "0", *flags,
        )
        self.address = self.process.address
        self.client = Client(self.address, timeout=10)

    def metric(self, name: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert found, f"{name} not in /metrics"
        return float(found.group(1))

    def health(self, service: str = "") -> int:
        with grpc.insecure_channel(self.address) as channel:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            ).status

    def stop(self) -> None:
        self.client.close()
        self.process.stop()


@pytest.fixture
def replicas(pg_cluster, tmp_path: Path):
    url = pg_cluster.database()
    started: list[Replica] = []

    def start(n: int, auth: bool = False, flags: tuple[str, ...] = ()) -> list[Replica]:
        for _ in range(n):
            started.append(Replica(tmp_path / f"replica{len(started)}", url, auth, flags))
        return started

    yield start
    for replica in started:
        replica.stop()


def pdq(rng: random.Random) -> str:
    return rng.getrandbits(256).to_bytes(32, "big").hex()


def within(seconds: float, check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` holds, polled every 20 ms; fails past ``seconds``."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not true within {seconds}s")
        time.sleep(0.02)


def matched(replica: Replica, value: str, list_name: str = "shared") -> set[str]:
    return {m.entry_id for m in replica.client.match_hashes([("pdq", value)]) if m.list_name == list_name}


def test_a_change_through_one_replica_is_matched_by_the_others_within_2_seconds(replicas) -> None:
    rng = random.Random(7)
    a, b, c = replicas(3)
    a.client.create_list("shared")
    first = [pdq(rng) for _ in range(200)]
    a.client.upload_hashes("shared", [HashEntry("pdq", v, id=f"e{i}", label="cat") for i, v in enumerate(first)])
    # Uploaded through A: matched by B and C, each within 2 seconds of A's answer.
    seconds = [within(2.0, lambda r=r: matched(r, first[5]) == {"e5"}) for r in (b, c)]
    assert max(seconds) < 2.0, seconds
    hit = next(iter(b.client.match_hashes([("pdq", first[5])])))
    assert (hit.entry_id, hit.label, hit.distance) == ("e5", "cat", 0)

    # Removed through B: A and C stop matching. Relabelled through C: A reports the new label.
    b.client.remove_hashes("shared", entry_ids=["e5"])
    seconds += [within(2.0, lambda r=r: matched(r, first[5]) == set()) for r in (a, c)]
    c.client.upload_hashes("shared", [HashEntry("pdq", first[6], id="e6", label="dog")])
    seconds.append(within(2.0, lambda: {m.label for m in a.client.match_hashes([("pdq", first[6])])} == {"dog"}))

    # A list setting (disabled through A) reaches B and C too.
    a.client.update_list("shared", enabled=False)
    seconds += [within(2.0, lambda r=r: matched(r, first[7]) == set()) for r in (b, c)]
    a.client.update_list("shared", enabled=True)
    seconds += [within(2.0, lambda r=r: matched(r, first[7]) == {"e7"}) for r in (b, c)]
    print(f"replica propagation seconds: max {max(seconds):.3f}, all {[round(s, 3) for s in seconds]}")
    assert max(seconds) < 2.0

    for replica in (a, b, c):
        assert replica.metric("hashmatch_follower_reloads_total") == 0, "no replica may rebuild its index"
        assert replica.metric("hashmatch_index_entries{algorithm=\"pdq\"}") == 199
        assert replica.metric("hashmatch_store_connected") == 1
    # B applied A's upload, C's relabel and A's setting changes as deltas from the feed.
    assert b.metric("hashmatch_follower_changes_total") >= 4
    assert b.metric("hashmatch_follower_deltas_total") >= 1


def test_a_replica_without_its_database_serves_the_last_index_and_catches_up(replicas, pg_cluster) -> None:
    rng = random.Random(8)
    a, b = replicas(2)
    strict = replicas(1, flags=("--max-staleness", "1.5"))[-1]  # overall NOT_SERVING once 1.5 s stale
    a.client.create_list("shared")
    values = [pdq(rng) for _ in range(50)]
    a.client.upload_hashes("shared", [HashEntry("pdq", v, id=f"e{i}", label="x") for i, v in enumerate(values)])
    within(2.0, lambda: matched(b, values[1]) == {"e1"})
    assert b.health(FRESHNESS) == health_pb2.HealthCheckResponse.SERVING

    pg_cluster.stop()
    try:
        # Both keep answering from their last index, and say they are stale.
        for replica in (a, b):
            within(5.0, lambda r=replica: r.health(FRESHNESS) == health_pb2.HealthCheckResponse.NOT_SERVING)
            assert replica.metric("hashmatch_store_connected") == 0
            hits = list(replica.client.match_hashes([("pdq", values[1])]))
            assert [(h.list_name, h.entry_id, h.label, h.distance) for h in hits] == [("shared", "e1", "x", 0)]
            # Matching goes on: overall health stays SERVING (no --max-staleness given).
            assert replica.health() == health_pb2.HealthCheckResponse.SERVING
        # A change cannot be made meanwhile: UNAVAILABLE (worth a retry), saying why, not INTERNAL.
        with pytest.raises(Unavailable) as refused:
            a.client.create_list("during-the-outage")
        assert refused.value.reason == "STORE_UNAVAILABLE" and "cannot be reached" in refused.value.details
        time.sleep(1.0)
        assert b.metric("hashmatch_index_stale_seconds") >= 1.0
        # With --max-staleness the replica takes itself out of the load balancer, yet still answers.
        within(5.0, lambda: strict.health() == health_pb2.HealthCheckResponse.NOT_SERVING)
        assert matched(strict, values[1]) == {"e1"}
    finally:
        pg_cluster.start()

    # Back: a change through A reaches B, which reports itself fresh again.
    late = pdq(rng)
    within(10.0, lambda: _try(lambda: a.client.upload_hashes("shared", [HashEntry("pdq", late, id="late")])))
    within(5.0, lambda: matched(b, late) == {"late"})
    within(5.0, lambda: b.health(FRESHNESS) == health_pb2.HealthCheckResponse.SERVING)
    assert b.metric("hashmatch_store_connected") == 1
    assert b.metric("hashmatch_index_stale_seconds") < 2.0
    assert b.metric("hashmatch_follower_reloads_total") == 0
    within(5.0, lambda: strict.health() == health_pb2.HealthCheckResponse.SERVING and matched(strict, late) == {"late"})


def _try(call: Callable[[], object]) -> bool:
    try:
        call()
        return True
    except Exception:  # noqa: BLE001 - the database is still starting
        time.sleep(0.2)
        return False


def test_replicas_share_their_api_keys(replicas, tmp_path: Path) -> None:
    a, b = replicas(2, auth=True)
    # The first replica to start made the one admin key; the second found keys and made none.
    assert admin_key_file(tmp_path / "replica0").exists() and not admin_key_file(tmp_path / "replica1").exists()
    admin = admin_key_file(tmp_path / "replica0").read_text().strip()
    with Client(b.address, api_key=admin, timeout=10) as on_b:
        created = on_b.create_key("matcher", ["match"])
    with Client(a.address, api_key=created.secret, timeout=10) as on_a:
        assert on_a.match_hashes([("pdq", "00" * 32)]) == ()
        with pytest.raises(Exception, match="PERMISSION_DENIED|permission|role"):
            on_a.create_list("not-allowed")
    with Client(a.address, api_key=admin, timeout=10) as admin_a:
        assert admin_a.revoke_key(created.key.id).revoked is not None
    with Client(b.address, api_key=created.secret, timeout=10) as on_b:
        with pytest.raises(Exception, match="revoked"):
            on_b.match_hashes([("pdq", "00" * 32)])


def test_keys_are_made_offline_in_the_shared_store(replicas, pg_cluster) -> None:
    a, b = replicas(2, auth=True)
    url = a.url
    # The URL from the environment, as a deployment passes it (its password off the command line).
    made = subprocess.run([sys.executable, "-m", "hashmatch.server", "keys", "create", "pipeline", "--role", "match"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "HASHMATCH_STORE_URL": url})
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    for replica in (a, b):
        with Client(replica.address, api_key=secret, timeout=10) as client:
            assert client.match_hashes([("pdq", "00" * 32)]) == ()
    listed = subprocess.run([sys.executable, "-m", "hashmatch.server", "keys", "ls", "--json", "--store", url],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert {"pipeline", "admin"} <= {k["name"] for k in json.loads(listed.stdout)}
    assert secret not in listed.stdout

    unseen = subprocess.run([sys.executable, "-m", "hashmatch.server", "keys", "create", "unseen", "--role", "match",
                             "--store", url], capture_output=True, text=True, timeout=60).stdout.strip()
    pg_cluster.stop()
    try:
        # Database away: a key this replica verified before still works; one it never saw may
        # be valid, so it hears UNAVAILABLE (retry), not UNAUTHENTICATED.
        with Client(a.address, api_key=secret, timeout=10) as client:
            assert client.match_hashes([("pdq", "00" * 32)]) == ()
        with Client(a.address, api_key=unseen, timeout=10) as client:
            with pytest.raises(Unavailable) as refused:
                client.match_hashes([("pdq", "00" * 32)])
        assert refused.value.reason == "STORE_UNAVAILABLE"
    finally:
        pg_cluster.start()


def admin_key_file(data_dir: Path) -> Path:
    return data_dir / "admin.key"
