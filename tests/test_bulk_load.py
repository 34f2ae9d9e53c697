"""The SQLite store's bulk load: row ids known from the insert itself, in one transaction with
relabels, and what the change feed and a following process see of it."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.index import HashLists, InvalidEntry, NewEntry, SQLiteStore

PDQ, MD5 = Algorithm.PDQ, Algorithm.MD5


def values(rng: random.Random, algorithm: Algorithm, n: int) -> list[bytes]:
    return [rng.getrandbits(algorithm.spec.bits).to_bytes(algorithm.spec.nbytes, "big") for _ in range(n)]


def stored(path: Path) -> dict[int, tuple[str, bytes, str, str]]:
    db = sqlite3.connect(path)
    try:
        return {r: (a, bytes(h), e, label) for r, a, h, e, label in db.execute(
            "SELECT id, algorithm, hash, entry_id, label FROM entries")}
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
