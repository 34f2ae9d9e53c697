"""The SQLite store's bulk load: row ids known from the insert itself, in one transaction with
relabels, and what the change feed and a following process see of it."""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from pathlib import Path

import pytest

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.index import CompactionPolicy, HashLists, InvalidEntry, NewEntry, SQLiteStore

PDQ, MD5 = Algorithm.PDQ, Algorithm.MD5


def values(rng: random.Random, algorithm: Algorithm, n: int) -> list[bytes]:
    return [rng.getrandbits(algorithm.spec.bits).to_bytes(algorithm.spec.nbytes, "big") for _ in range(n)]


def stored(path: Path) -> dict[int, tuple[str, bytes, str, str]]:
    db = sqlite3.connect(path)
    try:
        return {r: (a, bytes(h), e, label) for r, a, h, e, label in db.execute(
            "SELECT id, algorithm, hash, entry_id, label FROM all_entries")}
    finally:
        db.close()


def test_a_load_reports_the_rows_as_stored_new_and_relabelled_together(tmp_path: Path) -> None:
    rng = random.Random(7)
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path)
    store.create_list("l", "", {}, True)
    old = values(rng, PDQ, 30)
    store.add_entries("l", [NewEntry(PDQ, v, label="old") for v in old])
    pdq, md5 = values(rng, PDQ, 200), values(rng, MD5, 50)
    upload = ([NewEntry(PDQ, v, label="new") for v in pdq] + [NewEntry(MD5, v, entry_id=f"m{i}") for i, v in enumerate(md5)]
              + [NewEntry(PDQ, v, label="relabelled") for v in old[:10]] + [NewEntry(PDQ, v) for v in old[10:]])
    rng.shuffle(upload)
    outcome, change = store.add_entries("l", upload)
    assert (outcome.received, outcome.added, outcome.unchanged) == (280, 250, 30)
    rows = stored(path)
    assert len(rows) == 280
    # Every reported row is the row as stored, under the id the store gave it.
    for entry in change.added + change.relabelled:
        assert rows[entry.row_id] == (entry.algorithm.value, entry.value, entry.entry_id, entry.label)
    assert {(e.algorithm, e.value) for e in change.added} == {(PDQ, v) for v in pdq} | {(MD5, v) for v in md5}
    assert sorted(e.value for e in change.relabelled) == sorted(old[:10])
    assert {e.label for e in change.relabelled} == {"relabelled"}
    assert {e.entry_id for e in change.added if e.algorithm is MD5} == {f"m{i}" for i in range(50)}
    store.close()


def test_row_ids_not_consecutive_are_read_back(tmp_path: Path) -> None:
    # Once a store's largest row id is 2**63-1, SQLite gives new rows unused ids at random:
    # the load must then read its rows' ids back instead of counting them.
    rng = random.Random(8)
    path = tmp_path / "s.sqlite3"
    lists = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    lists.create_list("l")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO entries (id, list_id, entry_id, algorithm, hash, label, added_at) "
               "VALUES (?, 1, 'top', 'md5', ?, '', 0)", (2**63 - 1, b"\0" * 16))
    db.close()
    new = values(rng, PDQ, 300)
    _outcome, change = lists.store.add_entries("l", [NewEntry(PDQ, v, label=f"x{i}") for i, v in enumerate(new)])
    rows = stored(path)
    assert len(change.added) == 300
    for entry in change.added:
        assert rows[entry.row_id] == ("pdq", entry.value, entry.entry_id, entry.label)
    lists.close()


def test_a_failed_load_leaves_nothing_and_the_next_one_works(tmp_path: Path) -> None:
    rng = random.Random(9)
    path = tmp_path / "s.sqlite3"
    lists = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    lists.create_list("l")
    first = values(rng, PDQ, 100)
    lists.add_entries("l", [NewEntry(PDQ, v, entry_id=f"e{i}") for i, v in enumerate(first)])
    with pytest.raises(InvalidEntry, match="already has a different PDQ hash"):
        lists.add_entries("l", [NewEntry(PDQ, v) for v in values(rng, PDQ, 50)]
                          + [NewEntry(PDQ, values(rng, PDQ, 1)[0], entry_id="e3", line=51)])
    assert len(stored(path)) == 100
    # The connection is left as it was: foreign keys on, no transaction open.
    assert lists.store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert not lists.store._db.in_transaction
    more = values(rng, PDQ, 100)
    outcome, _info = lists.add_entries("l", [NewEntry(PDQ, v) for v in more])
    assert outcome.added == 100
    hits = lists.match([Hash(PDQ, more[-1]), Hash(PDQ, first[0])]).hits
    assert sorted((h.query_index, h.distance) for h in hits if h.distance == 0) == [(0, 0), (1, 0)]
    lists.close()


# -- recent_entries: loads land in a small side table, folded into entries later ----------------

def table_ids(path: Path) -> tuple[set[int], set[int]]:
    db = sqlite3.connect(path)
    try:
        return ({r for (r,) in db.execute("SELECT id FROM entries")},
                {r for (r,) in db.execute("SELECT id FROM recent_entries")})
    finally:
        db.close()


def exact_answers(lists: HashLists, queries: list[bytes]) -> set[tuple[int, str, str]]:
    return {(h.query_index, h.entry_id, h.label) for h in lists.match([Hash(PDQ, v) for v in queries]).hits
            if h.distance == 0}


def test_loads_go_to_the_side_table_and_every_operation_sees_both_tables(tmp_path: Path) -> None:
    rng = random.Random(21)
    path = tmp_path / "s.sqlite3"
    lists = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    lists.create_list("l")
    lists.create_list("gone")
    old, new = values(rng, PDQ, 60), values(rng, PDQ, 40)
    lists.add_entries("l", [NewEntry(PDQ, v, entry_id=f"old{i}", label="o") for i, v in enumerate(old)])
    lists.add_entries("gone", [NewEntry(PDQ, v) for v in values(rng, PDQ, 5)])
    main, recent = table_ids(path)
    assert main == set() and len(recent) == 65
    assert lists.fold_store() == 65
    lists.add_entries("l", [NewEntry(PDQ, v, entry_id=f"new{i}", label="n") for i, v in enumerate(new)])
    lists.add_entries("gone", [NewEntry(PDQ, v) for v in values(rng, PDQ, 5)])
    main, recent = table_ids(path)
    assert len(main) == 65 and len(recent) == 45 and not main & recent
    assert min(recent) > max(main)  # new ids count up past every id in use
    # Reloading rows of either table is idempotent; a conflicting id is found in either.
    outcome, _ = lists.add_entries("l", [NewEntry(PDQ, old[0], entry_id="old0"), NewEntry(PDQ, new[0], entry_id="new0")])
    assert (outcome.added, outcome.unchanged) == (0, 2)
    for listed_id in ("old1", "new1"):
        with pytest.raises(InvalidEntry, match="already has a different PDQ hash"):
            lists.add_entries("l", [NewEntry(PDQ, values(rng, PDQ, 1)[0], entry_id=listed_id)])
    # Relabels and removals, by id and by hash, reach rows in both tables.
    lists.add_entries("l", [NewEntry(PDQ, old[2], label="o2"), NewEntry(PDQ, new[2], label="n2")])
    assert lists.remove_entries("l", entry_ids=["old3", "new3"]) == 2
    assert lists.remove_entries("l", hashes=[Hash(PDQ, old[4]), Hash(PDQ, new[4])]) == 2
    by_hash, held = lists.store.lookup_entries("l", [Hash(PDQ, old[5]), Hash(PDQ, new[5])])
    assert set(by_hash.values()) == {"old5", "new5"} and held["new5"] == {PDQ: new[5]}
    assert lists.delete_list("gone") == 10
    expected = ({(i, f"old{i}", "o2" if i == 2 else "o") for i in range(60) if i not in (3, 4)}
                | {(60 + i, f"new{i}", "n2" if i == 2 else "n") for i in range(40) if i not in (3, 4)})
    assert exact_answers(lists, old + new) == expected
    generation = lists.store.entries_generation()
    lists.close()
    # A fresh start reads both tables; the fold moves every row, ids and all, and changes no
    # generation, so what matches is the same before and after it.
    lists = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    assert exact_answers(lists, old + new) == expected
    before = table_ids(path)
    assert lists.fold_store() == 38 and lists.fold_store() == 0
    assert table_ids(path) == (before[0] | before[1], set())
    assert lists.store.entries_generation() == generation
    assert exact_answers(lists, old + new) == expected
    lists.close()
    lists = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    assert exact_answers(lists, old + new) == expected
    lists.close()


def test_a_snapshot_stays_valid_across_a_fold(tmp_path: Path) -> None:
    rng = random.Random(22)
    path = tmp_path / "s.sqlite3"
    lists = HashLists(SQLiteStore(path), background=False)
    lists.create_list("l")
    listed = values(rng, PDQ, 50)
    lists.add_entries("l", [NewEntry(PDQ, v, entry_id=f"e{i}") for i, v in enumerate(listed)])
    lists.close()  # writes the snapshot
    lists = HashLists(SQLiteStore(path), background=False)
    assert lists.startup["source"] == "snapshot"
    assert lists.fold_store() == 50
    lists.close()
    lists = HashLists(SQLiteStore(path), background=False)
    assert lists.startup["source"] == "snapshot"
    assert {h.entry_id for h in lists.match([Hash(PDQ, v) for v in listed]).hits} == {f"e{i}" for i in range(50)}
    lists.close()


@pytest.mark.parametrize("trigger", ["idle", "size"])
def test_the_compactor_folds_the_side_table_when_idle_or_large(tmp_path: Path, trigger: str) -> None:
    policy = (CompactionPolicy(store_fold_idle_seconds=0.3, interval_seconds=0.05) if trigger == "idle"
              else CompactionPolicy(store_fold_idle_seconds=3600, store_fold_rows=100, interval_seconds=0.05))
    rng = random.Random(23)
    path = tmp_path / "s.sqlite3"
    lists = HashLists(SQLiteStore(path), policy=policy, use_snapshot=False)
    lists.create_list("l")
    lists.add_entries("l", [NewEntry(PDQ, v) for v in values(rng, PDQ, 60)])
    if trigger == "size":
        time.sleep(0.5)  # under the size, far from idle long enough: nothing moves
        assert lists.store.recent_rows() == 60
        lists.add_entries("l", [NewEntry(PDQ, v) for v in values(rng, PDQ, 60)])
    deadline = time.monotonic() + 10
    while lists.store.recent_rows() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lists.store.recent_rows() == 0
    assert len(table_ids(path)[0]) == (60 if trigger == "idle" else 120)
    lists.close()


def test_a_store_of_schema_5_gains_the_side_table(tmp_path: Path) -> None:
    rng = random.Random(24)
    path = tmp_path / "s.sqlite3"
    lists = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    lists.create_list("l")
    listed = values(rng, PDQ, 20)
    lists.add_entries("l", [NewEntry(PDQ, v, entry_id=f"e{i}") for i, v in enumerate(listed)])
    lists.fold_store()
    lists.close()
    with sqlite3.connect(path) as db:  # as schema 5 left a store: no side table, no view
        db.execute("DROP VIEW all_entries")
        db.execute("DROP TABLE recent_entries")
        db.execute("PRAGMA user_version=5")
    lists = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 6
    more = values(rng, PDQ, 5)
    lists.add_entries("l", [NewEntry(PDQ, v) for v in more])
    assert len({h.query_index for h in lists.match([Hash(PDQ, v) for v in listed + more]).hits}) == 25
    lists.close()


def wal_backfill(path: Path) -> tuple[int, int]:
    """(frames in the WAL, frames a passive checkpoint could copy into the database)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        _busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        db.close()
    return frames, copied


def test_after_a_fold_the_write_ahead_log_can_be_checkpointed(tmp_path: Path) -> None:
    """The view's read transaction is renewed after a fold: SQLite cannot copy into the database
    the WAL frames written after a reader's snapshot, so one opened before the fold would keep
    the fold's pages (hundreds of MB at 10M) in the WAL until the next write."""
    rng = random.Random(25)
    path = tmp_path / "s.sqlite3"
    lists = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    lists.create_list("l")
    listed = values(rng, PDQ, 2000)
    lists.add_entries("l", [NewEntry(PDQ, v) for v in listed])
    before = lists.view
    assert lists.fold_store() == 2000
    assert lists.view.generation == before.generation and lists.view.reader is not before.reader
    frames, copied = wal_backfill(path)
    assert copied < frames  # the control: the old view's reader, still held here, pins the fold
    del before
    frames, copied = wal_backfill(path)
    assert frames > 0 and copied == frames
    assert len({h.query_index for h in lists.match([Hash(PDQ, v) for v in listed[:50]]).hits}) == 50
    lists.close()


def test_a_fold_moves_every_row_but_one_that_conflicts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two random entry ids colliding (the one conflict the loads' checks cannot see coming):
    the fold moves the other rows and leaves that one in the side table, still matched."""
    rng = random.Random(26)
    path = tmp_path / "s.sqlite3"
    lists = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    lists.create_list("l")
    first, second = values(rng, PDQ, 30), values(rng, PDQ, 30)
    lists.add_entries("l", [NewEntry(PDQ, v, entry_id=f"a{i}") for i, v in enumerate(first)])
    lists.fold_store()
    lists.add_entries("l", [NewEntry(PDQ, v) for v in second])
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE recent_entries SET entry_id = 'a0' WHERE id = (SELECT min(id) FROM recent_entries)")
    db.close()
    with caplog.at_level(logging.WARNING, logger="hashmatch.index"):
        assert lists.fold_store() == 29
    assert any("1 recent rows conflict" in r.getMessage() for r in caplog.records)
    main, recent = table_ids(path)
    assert len(main) == 59 and len(recent) == 1
    assert len({h.query_index for h in lists.match([Hash(PDQ, v) for v in first + second]).hits
                if h.distance == 0}) == 60
    lists.close()


def test_another_process_renews_its_view_after_a_fold_and_a_busy_fold_does_not_wait(tmp_path: Path) -> None:
    rng = random.Random(27)
    path = tmp_path / "s.sqlite3"
    writer = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    writer.create_list("l")
    listed = values(rng, PDQ, 2000)
    writer.add_entries("l", [NewEntry(PDQ, v) for v in listed])
    follower = HashLists(SQLiteStore(path), use_snapshot=False, background=False)
    follower.sync()
    old_reader = follower.view.reader
    # A fold that would have to wait for another process's write returns at once, moving nothing.
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    assert writer.store.fold_recent(wait=False) is None
    assert time.monotonic() - started < 1 and writer.store.recent_rows() == 2000
    blocker.execute("ROLLBACK")
    blocker.close()
    assert writer.fold_store() == 2000
    assert follower.sync() == 0  # no change to any entry: no new generation ...
    assert follower.view.reader is not old_reader  # ... but a read transaction after the fold
    del old_reader
    frames, copied = wal_backfill(path)
    assert frames > 0 and copied == frames
    assert len({h.query_index for h in follower.match([Hash(PDQ, v) for v in listed[:40]]).hits}) == 40
    follower.close()
    writer.close()
