"""No data loss: a real server process killed with SIGKILL and restarted on the same data folder;
uploads cut short store nothing; the index snapshot is verified and never trusted blindly."""

from __future__ import annotations

import logging
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.index import HashLists, NewEntry, SQLiteStore
import numpy as np

from hashmatch.index.segment import Segment
from hashmatch.index.snapshot import MAGIC, read_snapshot, write_snapshot
from hashmatch.index.view import AlgorithmIndex
from hashmatch.v1 import hashes_pb2, lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

PDQ = Algorithm.PDQ


class Server:
    """``python -m hashmatch.server`` on a loopback port, as operators run it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hashmatch.server", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
             "--metrics", "off"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.log: list[str] = []
        for line in self.proc.stdout:
            self.log.append(line)
            found = re.search(r"hashmatch listening on (\S+)", line)
            if found:
                self.address = found.group(1)
                break
        else:
            raise AssertionError(f"server exited with {self.proc.wait()}: {''.join(self.log)}")
        # Keep draining its output so it never blocks on a full pipe.
        threading.Thread(target=lambda: self.log.extend(self.proc.stdout), daemon=True).start()
        self.channel = grpc.insecure_channel(self.address)
        self.lists = lists_pb2_grpc.ListsServiceStub(self.channel)
        self.matcher = matcher_pb2_grpc.MatcherServiceStub(self.channel)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        key = self.data_dir / "admin.key"  # present when the server runs with API keys
        return (("authorization", "Bearer " + key.read_text().strip()),) if key.exists() else ()

    def kill(self) -> None:
        self.channel.close()
        self.proc.kill()  # SIGKILL: no handler runs, nothing is flushed
        self.proc.wait(timeout=30)


@pytest.fixture
def servers(tmp_path: Path):
    started: list[Server] = []

    def start() -> Server:
        server = Server(tmp_path / "data")
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.kill()


def upload_messages(name: str, values: list[bytes], commit: bool = True, per_message: int = 50, prefix: str = "e"):
    for at in range(0, len(values), per_message):
        yield lists_pb2.UploadHashesRequest(
            list_name=name,
            entries=[lists_pb2.HashEntry(algorithm=hashes_pb2.ALGORITHM_PDQ, hash=v.hex(), id=f"{prefix}{at + i}")
                     for i, v in enumerate(values[at : at + per_message])],
        )
    if commit:
        yield lists_pb2.UploadHashesRequest(commit=True)


def matched(server: Server, values: list[bytes]) -> set[str]:
    response = server.matcher.MatchHashes(
        matcher_pb2.MatchHashesRequest(hashes=[hashes_pb2.Hash(algorithm=hashes_pb2.ALGORITHM_PDQ, value=v.hex()) for v in values]),
        timeout=30, metadata=server.metadata,
    )
    return {m.entry_id for m in response.matches if m.distance == 0}


def test_a_load_that_returned_ok_survives_kill_9(servers) -> None:
    rng = random.Random(1)
    server = servers()
    server.lists.CreateList(lists_pb2.CreateListRequest(name="kept"), timeout=10, metadata=server.metadata)
    first = [rng.getrandbits(256).to_bytes(32, "big") for _ in range(300)]
    server.lists.UploadHashes(upload_messages("kept", first), timeout=30, metadata=server.metadata)
    server.kill()  # the moment after OK

    server = servers()
    assert matched(server, first) == {f"e{i}" for i in range(300)}
    second = [rng.getrandbits(256).to_bytes(32, "big") for _ in range(200)]
    server.lists.UploadHashes(upload_messages("kept", second, prefix="s"), timeout=30, metadata=server.metadata)
    server.lists.RemoveHashes(lists_pb2.RemoveHashesRequest(list_name="kept", entry_ids=["e0", "e1"]),
                              timeout=10, metadata=server.metadata)
    server.kill()

    server = servers()
    assert matched(server, first + second) == {f"e{i}" for i in range(2, 300)} | {f"s{i}" for i in range(200)}


def test_an_upload_cancelled_part_way_leaves_nothing(servers) -> None:
    rng = random.Random(2)
    server = servers()
    server.lists.CreateList(lists_pb2.CreateListRequest(name="l"), timeout=10, metadata=server.metadata)
    values = [rng.getrandbits(256).to_bytes(32, "big") for _ in range(500)]
    sent_half = threading.Event()
    never = threading.Event()

    def stream():
        for i, message in enumerate(upload_messages("l", values, commit=False)):
            yield message
            if i == 4:
                sent_half.set()
                never.wait(10)  # the client stalls here, then gives up
                return

    call = server.lists.UploadHashes.future(stream(), timeout=30, metadata=server.metadata)
    assert sent_half.wait(10)
    time.sleep(0.3)  # let the server read what was sent
    call.cancel()
    never.set()
    with pytest.raises(grpc.FutureCancelledError):
        call.result()
    time.sleep(0.3)
    assert matched(server, values) == set()
    # Ending the stream without the commit marker stores nothing either.
    with pytest.raises(grpc.RpcError) as err:
        server.lists.UploadHashes(upload_messages("l", values, commit=False), timeout=30, metadata=server.metadata)
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert matched(server, values) == set()


def test_an_upload_cut_by_killing_the_server_leaves_nothing(servers) -> None:
    rng = random.Random(3)
    server = servers()
    server.lists.CreateList(lists_pb2.CreateListRequest(name="l"), timeout=10, metadata=server.metadata)
    values = [rng.getrandbits(256).to_bytes(32, "big") for _ in range(500)]
    sent = threading.Event()
    release = threading.Event()

    def stream():
        for i, message in enumerate(upload_messages("l", values, commit=True)):
            if i == 6:
                sent.set()
                release.wait(10)
            yield message

    call = server.lists.UploadHashes.future(stream(), timeout=30, metadata=server.metadata)
    assert sent.wait(10)
    time.sleep(0.3)
    server.kill()
    release.set()
    with pytest.raises(grpc.RpcError):
        call.result()
    server = servers()
    assert matched(server, values) == set()


# -- the snapshot beside the store --------------------------------------------------------------

def make_lists(path: Path, **kwargs) -> HashLists:
    return HashLists(SQLiteStore(path), **kwargs)


def fill(path: Path, n: int = 400) -> list[Hash]:
    rng = random.Random(5)
    lists = make_lists(path)
    lists.create_list("l", thresholds={PDQ: 12})
    values = [rng.getrandbits(256).to_bytes(32, "big") for _ in range(n)]
    lists.add_entries("l", [NewEntry(PDQ, v, entry_id=f"e{i}") for i, v in enumerate(values)])
    lists.remove_entries("l", entry_ids=["e0"])
    lists.close()  # a clean stop writes the snapshot
    return [Hash(PDQ, v) for v in values]


def answers(lists: HashLists, queries: list[Hash]) -> set[tuple[str, int]]:
    return {(h.entry_id, h.distance) for h in lists.match(queries).hits}


def test_a_clean_start_uses_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    queries = fill(path)
    snapshot = path.with_suffix(".index")
    assert snapshot.read_bytes()[:8] == MAGIC
    lists = make_lists(path)
    assert lists.startup["source"] == "snapshot"
    assert answers(lists, queries) == {(f"e{i}", 0) for i in range(1, 400)}
    lists.close()


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "garbage", "empty", "future version", "bad toc"])
def test_a_damaged_snapshot_is_rebuilt_from_the_store_with_a_warning(tmp_path: Path, damage: str, caplog) -> None:
    path = tmp_path / "s.sqlite3"
    queries = fill(path)
    snapshot = path.with_suffix(".index")
    data = bytearray(snapshot.read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "garbage":
        data = bytearray(random.Random(1).randbytes(len(data)))
    elif damage == "empty":
        data = bytearray()
    elif damage == "future version":
        data[8] += 1
    else:  # a toc that claims more than the file holds
        data[64:72] = (2**40).to_bytes(8, "little")
    snapshot.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="hashmatch.index"):
        lists = make_lists(path)
    assert lists.startup["source"] == "store"
    assert any("rebuilding from the store" in r.getMessage() for r in caplog.records)
    assert answers(lists, queries) == {(f"e{i}", 0) for i in range(1, 400)}
    lists.close()
    # The rebuilt index was written back: the next start uses it again.
    again = make_lists(path)
    assert again.startup["source"] == "snapshot"
    again.close()


def test_a_stale_snapshot_is_not_trusted(tmp_path: Path, caplog) -> None:
    path = tmp_path / "s.sqlite3"
    queries = fill(path)
    # Another change reaches the store while the snapshot is not updated (as after a kill -9).
    store = SQLiteStore(path)
    store.remove_entries("l", ["e1"], [])
    store.close()
    with caplog.at_level(logging.WARNING, logger="hashmatch.index"):
        lists = make_lists(path)
    assert lists.startup["source"] == "store"
    assert any("stale" in r.getMessage() for r in caplog.records)
    assert answers(lists, queries) == {(f"e{i}", 0) for i in range(2, 400)}
    lists.close()


@pytest.mark.parametrize("top, dtype", [(3, np.uint8), (255, np.uint8), (256, np.uint16), (70_000, np.uint32), (2**33, np.int64)])
def test_list_ids_take_the_narrowest_type_and_survive_the_snapshot(tmp_path: Path, top: int, dtype) -> None:
    rng = np.random.default_rng(top % 1000)
    n = 5000
    codes = rng.integers(0, 2**63, size=(n, 1), dtype=np.uint64)
    list_ids = rng.integers(1, top + 1, size=n, dtype=np.int64)
    list_ids[0] = top
    segment = Segment.build(64, codes, np.arange(n, dtype=np.int64), list_ids)
    assert segment.list_ids.dtype == dtype and segment.row_ids.dtype == np.uint32
    path = tmp_path / "narrow.index"
    write_snapshot(path, 7, {Algorithm.PHASH: AlgorithmIndex.of(Algorithm.PHASH, segment)})
    generation, loaded = read_snapshot(path)
    back = loaded[Algorithm.PHASH].main
    assert generation == 7 and back.list_ids.dtype == dtype
    assert np.array_equal(back.list_ids.astype(np.int64), list_ids)
    assert np.array_equal(back.codes, codes)


def test_a_version_1_snapshot_is_still_read(tmp_path: Path) -> None:
    # Version 2 only added the u1/u2 dtypes for list ids: a version 1 file (u4 ids) loads as it is.
    n = 3000
    codes = np.random.default_rng(5).integers(0, 2**63, size=(n, 1), dtype=np.uint64)
    segment = Segment.build(64, codes, np.arange(n, dtype=np.int64), np.full(n, 70_000, np.int64))
    path = tmp_path / "v1.index"
    write_snapshot(path, 3, {Algorithm.PHASH: AlgorithmIndex.of(Algorithm.PHASH, segment)})
    data = bytearray(path.read_bytes())
    assert int.from_bytes(data[8:12], "little") == 2
    data[8:12] = (1).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    generation, loaded = read_snapshot(path)
    assert generation == 3 and np.array_equal(loaded[Algorithm.PHASH].main.codes, codes)


def test_threshold_edits_keep_the_snapshot_valid(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    queries = fill(path)
    lists = make_lists(path)
    lists.update_list("l", thresholds={PDQ: 3}, description="tighter")
    lists.close()
    lists = make_lists(path)
    assert lists.startup["source"] == "snapshot"
    assert {h.threshold for h in lists.match(queries[1:5]).hits} == {3}
    lists.close()


# -- the audit trail ------------------------------------------------------------------------------

def test_the_audit_trail_records_who_did_what_to_which_list(make_store) -> None:
    lists = HashLists(make_store())
    lists.create_list("a", thresholds={PDQ: 20}, actor="alice")
    lists.add_entries("a", [NewEntry(PDQ, bytes([i]) * 32, entry_id=f"x{i}") for i in range(5)], actor="bob")
    lists.add_entries("a", [NewEntry(PDQ, bytes([1]) * 32, entry_id="x1")], actor="bob")  # no change: no record
    lists.remove_entries("a", entry_ids=["x1", "x2"], actor="carol")
    lists.update_list("a", enabled=False, actor="alice")
    lists.create_list("b")
    lists.delete_list("a", actor="dave")
    trail = lists.audit_trail("a")
    assert [(r.actor, r.action, r.added, r.removed) for r in trail] == [
        ("dave", "delete", 0, 3),
        ("alice", "update", 0, 0),
        ("carol", "remove", 0, 2),
        ("bob", "load", 5, 0),
        ("alice", "create", 0, 0),
    ]
    assert "disabled" in trail[1].detail and "pdq=20" in trail[-1].detail
    assert trail[0].at >= trail[-1].at
    assert [r.list_name for r in lists.audit_trail()][:2] == ["a", "b"]
    assert lists.audit_trail()[1].actor == "unknown"
    # A failed upload leaves no record.
    lists.create_list("c")
    with pytest.raises(Exception):
        lists.add_entries("c", [NewEntry(PDQ, bytes(32), entry_id="x" * 300)], actor="eve")
    assert [r.action for r in lists.audit_trail("c")] == ["create"]
    lists.close()


def test_the_server_records_the_caller_in_the_audit_trail(servers, tmp_path: Path) -> None:
    server = servers()
    server.lists.CreateList(lists_pb2.CreateListRequest(name="p"), timeout=10, metadata=server.metadata)
    server.lists.UploadHashes(upload_messages("p", [bytes(32)]), timeout=30, metadata=server.metadata)
    server.kill()
    store = SQLiteStore(tmp_path / "data" / "hashmatch.sqlite3")
    trail = store.audit_trail("p")
    store.close()
    assert [(r.action, r.added) for r in trail] == [("load", 1), ("create", 0)]
    assert all(r.actor and r.actor != "unknown" for r in trail), [r.actor for r in trail]
