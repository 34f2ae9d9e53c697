"""The change feed and the follower, in process, on each kind of store (conftest.py: make_store):
two HashLists on one store stand for two processes (replicas on PostgreSQL, workers on SQLite)."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.index import HashLists, NewEntry, SQLiteStore

PDQ, MD5 = Algorithm.PDQ, Algorithm.MD5


def value(rng: random.Random, algorithm: Algorithm = PDQ) -> bytes:
    return rng.getrandbits(algorithm.spec.bits).to_bytes(algorithm.spec.nbytes, "big")


def exact_ids(lists: HashLists, values: list[bytes], algorithm: Algorithm = PDQ) -> list[str]:
    """Entry ids of the exact hits, sorted (a duplicate would show twice)."""
    return sorted(h.entry_id for h in lists.match([Hash(algorithm, v) for v in values]).hits if h.distance == 0)


def eventually(check, seconds: float = 2.0) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not true within {seconds}s"
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def pair(make_store):
    writer = HashLists(make_store(), background=False, use_snapshot=False)
    follower = HashLists(make_store(), background=False, use_snapshot=False)
    yield writer, follower
    follower.close()
    writer.close()


def test_a_follower_applies_every_kind_of_change_as_a_delta(pair) -> None:
    writer, follower = pair
    rng = random.Random(1)
    follower.follow(0.05)
    writer.create_list("l", thresholds={PDQ: 8})
    values = [value(rng) for _ in range(300)]
    writer.add_entries("l", [NewEntry(PDQ, v, entry_id=f"e{i}", label="a") for i, v in enumerate(values)])
    eventually(lambda: exact_ids(follower, values[:3]) == ["e0", "e1", "e2"])
    writer.remove_entries("l", entry_ids=["e1"])
    writer.add_entries("l", [NewEntry(PDQ, values[2], label="relabelled")])
    eventually(lambda: exact_ids(follower, values[:3]) == ["e0", "e2"])
    eventually(lambda: {h.label for h in follower.match([Hash(PDQ, values[2])]).hits} == {"relabelled"})
    # List settings: a threshold and enabled reach the follower too.
    near = Hash(PDQ, bytes(b ^ 0xFF if i == 0 else b for i, b in enumerate(values[0])))  # 8 bits away
    assert follower.match([near]).hits[0].distance == 8
    writer.update_list("l", thresholds={PDQ: 7})
    eventually(lambda: follower.match([near]).hits == [])
    writer.update_list("l", enabled=False)
    eventually(lambda: exact_ids(follower, values) == [])
    writer.update_list("l", enabled=True)
    writer.delete_list("l")
    eventually(lambda: follower.list_lists() == [] and follower.entry_count(PDQ) == 0)
    assert follower.follower_stats["reloads"] == 0
    assert follower.follower_stats["changes"] >= 8
    assert follower.generation == writer.generation == writer.store.generation()
    assert follower.store_connected and follower.stale_seconds < 2.0


def test_interleaved_writers_apply_each_change_once(pair) -> None:
    first, second = pair
    rng = random.Random(2)
    first.create_list("l")
    kept: dict[str, bytes] = {}
    lock = threading.Lock()

    def write(lists: HashLists, tag: str) -> None:
        for round_ in range(15):
            batch = {f"{tag}{round_}-{i}": value(rng, MD5) for i in range(20)}
            lists.add_entries("l", [NewEntry(MD5, v, entry_id=k) for k, v in batch.items()])
            gone = sorted(batch)[:5]
            lists.remove_entries("l", entry_ids=gone)
            with lock:
                kept.update({k: v for k, v in batch.items() if k not in gone})

    threads = [threading.Thread(target=write, args=(lists, tag)) for lists, tag in ((first, "a"), (second, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lists in (first, second):
        lists.sync()
        # Every kept entry exactly once, nothing removed left: no change applied twice or lost.
        assert exact_ids(lists, list(kept.values()), MD5) == sorted(kept)
        assert lists.entry_count(MD5) == len(kept) == lists.get_list("l").counts[MD5]
        assert lists.follower_stats["reloads"] == 0


def test_a_follower_behind_the_pruned_feed_rebuilds(pair) -> None:
    writer, follower = pair
    rng = random.Random(3)
    writer.create_list("l")
    values = [value(rng) for _ in range(20)]
    writer.add_entries("l", [NewEntry(PDQ, v, entry_id=f"e{i}") for i, v in enumerate(values)])
    writer.remove_entries("l", entry_ids=["e3"])
    _prune_feed(writer.store)
    assert follower.sync() == 3
    assert follower.follower_stats["reloads"] == 1
    assert exact_ids(follower, values) == sorted(f"e{i}" for i in range(20) if i != 3)


def _prune_feed(store) -> None:
    """What the store's retention does after an hour, now."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as db:
            db.execute("DELETE FROM changes")
    else:
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as db:
            db.execute("DELETE FROM changes")


def test_a_sqlite_store_from_before_the_feed_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    rng = random.Random(4)
    old = HashLists(SQLiteStore(path), background=False, use_snapshot=False)
    old.create_list("l")
    values = [value(rng) for _ in range(10)]
    old.add_entries("l", [NewEntry(PDQ, v, entry_id=f"e{i}") for i, v in enumerate(values)])
    old.close()
    with sqlite3.connect(path) as db:  # as version 4 left it: no feed
        db.execute("DROP TABLE changes")
        db.execute("PRAGMA user_version=4")
    writer = HashLists(SQLiteStore(path), background=False, use_snapshot=False)
    follower = HashLists(SQLiteStore(path), background=False, use_snapshot=False)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 6
    writer.add_entries("l", [NewEntry(PDQ, values[0], label="new label")])
    writer.remove_entries("l", entry_ids=["e1"])
    assert follower.sync() == 2
    assert follower.follower_stats == {"deltas": 1, "changes": 2, "reloads": 0, "failures": 0}
    assert exact_ids(follower, values) == sorted(f"e{i}" for i in range(10) if i != 1)
    follower.close()
    writer.close()


def test_lookup_entries_finds_listed_hashes_and_every_hash_of_their_entries(make_store) -> None:
    store = make_store()
    rng = random.Random(5)
    try:
        store.create_list("l", "", {}, True)
        pdq_value, md5_value, other = value(rng), value(rng, MD5), value(rng)
        store.add_entries("l", [NewEntry(PDQ, pdq_value, entry_id="img1"), NewEntry(MD5, md5_value, entry_id="img1")])
        by_hash, held = store.lookup_entries("l", [Hash(PDQ, pdq_value), Hash(PDQ, other)], ["img9"])
        assert by_hash == {(PDQ, pdq_value): "img1"}
        assert held == {"img1": {PDQ: pdq_value, MD5: md5_value}, "img9": {}}
    finally:
        store.close()
