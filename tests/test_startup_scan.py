"""The bulk read a start-up without a snapshot does (SQLite: aggregated runs; PostgreSQL: binary
COPY), against the row-by-row read of the same store, and the multi-index built on threads
against the one built on one thread.

Stores hold every algorithm (SHA-1's 20 bytes among them), several lists, and gaps in the row ids
left by removals; hashes are random bytes, so NUL bytes and invalid UTF-8 are everywhere."""

from __future__ import annotations

import random
import sqlite3

import numpy as np
import pytest

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.index import HashLists, NewEntry, SQLiteStore, store as store_module
from hashmatch.index.mih import MultiIndex, Plan, substring
from hashmatch.index.store import EntryArrays

try:
    from hashmatch.index import postgres_store
except ImportError:  # without psycopg the PostgreSQL runs of make_store skip
    postgres_store = None

# Algorithms of each kind; within a store every algorithm's rows are interleaved with the others'.
ALGORITHMS = list(Algorithm)


def row_by_row(store) -> dict[Algorithm, tuple[list[int], list[int], list[bytes]]]:
    out: dict[Algorithm, tuple[list[int], list[int], list[bytes]]] = {}
    for entry in store.iter_entries():
        rows, lists, values = out.setdefault(entry.algorithm, ([], [], []))
        rows.append(entry.row_id)
        lists.append(entry.list_id)
        values.append(entry.value)
    return out


def assert_same(scanned: dict[Algorithm, EntryArrays], expected) -> None:
    assert set(scanned) == set(expected)
    for algorithm, (rows, lists, values) in expected.items():
        got = scanned[algorithm]
        assert got.row_ids.dtype == np.int64 and got.list_ids.dtype == np.int64
        assert got.row_ids.tolist() == rows, algorithm
        assert got.list_ids.tolist() == lists, algorithm
        assert got.values.shape == (len(values), algorithm.spec.nbytes)
        assert [bytes(v) for v in got.values] == values, algorithm


def fill(store, rng: random.Random, per_list: int) -> None:
    for name in ("a", "b", "c"):
        store.create_list(name, "", {}, True)
    for round_ in range(3):
        for name in ("a", "b", "c"):
            entries = [NewEntry(rng.choice(ALGORITHMS), b"", entry_id=f"{name}{round_}-{i}") for i in range(per_list)]
            entries = [NewEntry(e.algorithm, rng.randbytes(e.algorithm.spec.nbytes), entry_id=e.entry_id)
                       for e in entries]
            store.add_entries(name, entries)
        if round_ == 1 and hasattr(store, "fold_recent"):
            # SQLite: the first two rounds' rows in entries, the last round's in recent_entries.
            assert store.fold_recent() > 0
    # Gaps in the ids, inside runs and across them.
    store.remove_entries("b", [f"b1-{i}" for i in range(0, per_list, 3)], [])
    store.remove_entries("a", [f"a0-{i}" for i in range(per_list // 2)], [])


def test_bulk_scan_equals_row_by_row(make_store) -> None:
    store = make_store()
    assert store.scan_entries() == {}
    fill(store, random.Random(7), 400)
    assert_same(store.scan_entries(), row_by_row(store))


@pytest.mark.parametrize("split", [False, True])
def test_bulk_scan_spans_many_runs(make_store, monkeypatch, split: bool) -> None:
    # Runs of 64 rows: the scan stitches dozens of runs per algorithm back together, from one
    # connection or from two reading a half each (PostgreSQL: in one exported snapshot).
    for module in (store_module, postgres_store):
        if module is None:
            continue
        monkeypatch.setattr(module, "_BULK_ROWS", 64)
    monkeypatch.setattr(store_module, "_SPLIT_READ_ROWS", 0 if split else 10**9)  # both stores' _halves
    store = make_store()
    fill(store, random.Random(8), 300)
    assert_same(store.scan_entries(), row_by_row(store))


def test_sqlite_split_read_sees_one_state_when_a_write_lands_meanwhile(tmp_path, monkeypatch) -> None:
    """The second connection opens after a write: it sees other entries, so its half is read
    again on the first connection, and the whole read is of the state the first one holds."""
    monkeypatch.setattr(store_module, "_SPLIT_READ_ROWS", 0)
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path)
    fill(store, random.Random(11), 100)
    before = row_by_row(store)
    db = store._connect_reader()
    db.execute("BEGIN")
    generation = store_module._entries_generation(db)
    store.remove_entries("c", [f"c2-{i}" for i in range(50)], [])
    store.add_entries("a", [NewEntry(Algorithm.PDQ, bytes(range(32)), entry_id="late")])
    assert row_by_row(store) != before
    assert_same(store_module._bulk_entry_arrays(db, generation, store._connect_reader), before)
    db.close()


def test_sqlite_scan_of_rows_the_bulk_read_cannot_take(tmp_path) -> None:
    """A hash of the wrong length or an algorithm the counts table does not name: the bulk read
    declines and the row-by-row read answers, as before it."""
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(path)
    fill(store, random.Random(9), 50)
    expected = row_by_row(store)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DELETE FROM counts WHERE algorithm = 'md5'")  # md5 rows exist, the counts do not say so
    assert_same(store.scan_entries(), expected)
    with sqlite3.connect(path) as db2:
        db2.execute("UPDATE entries SET hash = x'00ff' WHERE id = (SELECT min(id) FROM entries WHERE algorithm = 'pdq')")
    with pytest.raises(ValueError):  # the row-by-row read cannot shape a 2-byte PDQ hash either
        store.scan_entries()
    db.close()


def test_start_up_without_snapshot_matches_what_was_listed(make_store) -> None:
    store = make_store()
    rng = random.Random(10)
    fill(store, rng, 200)
    listed = row_by_row(store)
    lists = HashLists(make_store(), background=False, use_snapshot=False)
    try:
        assert lists.startup["source"] == "store"
        for algorithm, (_rows, _lists, values) in listed.items():
            assert lists.entry_count(algorithm) == len(values)
            found = lists.match([Hash(algorithm, values[-1])]).hits
            assert any(hit.distance == 0 and hit.algorithm is algorithm for hit in found)
    finally:
        lists.close()


@pytest.mark.parametrize("bits, m", [(256, 12), (64, 4), (256, 16)])
def test_threaded_build_equals_one_thread(bits: int, m: int) -> None:
    rng = np.random.default_rng(bits + m)
    n = 30_000
    codes = rng.integers(0, 2**64, size=(n, bits // 64), dtype=np.uint64)
    codes[n // 2 :] = codes[: n - n // 2]  # equal substrings: buckets with many positions
    plan = Plan.split(bits, m)
    one = MultiIndex._build(codes, plan, workers=1)
    two = MultiIndex._build(codes, plan, workers=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    # Each table: positions grouped by substring value, ascending within a value.
    index = MultiIndex(codes, plan, tables=two)
    for j, (start, length) in enumerate(zip(plan.starts, plan.lengths)):
        perm = index.perm[j * n : (j + 1) * n].astype(np.int64)
        keys = substring(codes, start, length)[perm]
        assert np.all((keys[1:] > keys[:-1]) | ((keys[1:] == keys[:-1]) & (perm[1:] > perm[:-1])))
