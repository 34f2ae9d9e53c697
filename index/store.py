"""The durable store: lists and their entries. It is the source of truth; search indexes derive from it.

``Store`` is the interface a store offers; ``SQLiteStore`` is the embedded default.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
import weakref
from array import array
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence

import numpy as np

from hashmatch.hashing.algorithms import Algorithm, Hash

from .changefeed import PRUNE_EVERY, RETENTION_SECONDS, FeedBatch, FeedRecord, collect, encode
from .errors import InvalidEntry, ListExists, ListNotFound
from .records import ListInfo, NewEntry, UploadOutcome
from .validation import (
    check_description,
    check_list_name,
    check_confirmed_thresholds,
    check_thresholds,
    default_thresholds,
    entry_problem,
)

# Who made a change when the caller does not say (a script using the library directly).
UNKNOWN_ACTOR = "unknown"
log = logging.getLogger("hashmatch.index")


class StoredEntry(NamedTuple):
    """An entry as the search index needs it. ``row_id`` is unique across all lists. A named
    tuple, not a frozen dataclass: a 100k load makes 100k of them, and a frozen dataclass's
    constructor costs ~2 us each (0.2 s of a load that must match within 2 s)."""

    row_id: int
    list_id: int
    algorithm: Algorithm
    value: bytes
    entry_id: str
    label: str


@dataclass(frozen=True)
class EntryArrays:
    """All entries of one algorithm, in row id order, and the entries generation they are from."""

    row_ids: np.ndarray  # int64
    list_ids: np.ndarray  # int64
    values: np.ndarray  # (n, nbytes) uint8, the hash bytes as the hex reads
    entries_generation: int


class Reader:
    """A held read transaction (see SQLiteStore.reader). Shared by the matches of one index view;
    released by ``close`` when that view is dropped."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._lock = threading.Lock()
        # Views share a reader; the last one to go releases it (and its hold on the WAL).
        self._release = weakref.finalize(self, _release_reader, db, self._lock)
        db.execute("BEGIN")
        # The first read starts the transaction: from here on this connection sees a fixed state.
        self.generation = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
        self.entries_generation = _entries_generation(db)
        folds = db.execute("SELECT value FROM meta WHERE key = 'folds'").fetchone()
        self.folds = folds[0] if folds else 0  # see SQLiteStore.fold_recent

    def changes_since(self, since: int, skip: int = 0) -> FeedBatch:
        """The change feed from generation ``since`` to this reader's state, read in its own
        transaction, as one delta (``skip``: a generation the caller applies itself)."""
        with self._lock:
            if since >= self.generation:
                return FeedBatch(since, self.generation, self.entries_generation)
            records = [
                FeedRecord.decode(g, payload) for g, payload in self._db.execute(
                    "SELECT generation, payload FROM changes WHERE generation > ? AND generation <= ? "
                    "ORDER BY generation", (since, self.generation),
                )
            ]
            if len(records) != self.generation - since:
                return FeedBatch(since, self.generation, self.entries_generation, complete=False)

            def read_range(low: int, high: int) -> list[StoredEntry]:
                return [StoredEntry(r, lst, Algorithm(a), v, e, label) for r, lst, a, v, e, label in self._db.execute(
                    "SELECT id, list_id, algorithm, hash, entry_id, label FROM all_entries WHERE id BETWEEN ? AND ?",
                    (low, high),
                )]

            added, relabelled, removed = collect(records, skip, read_range)
        return FeedBatch(since, self.generation, self.entries_generation, True, len(records),
                         added, relabelled, removed)

    def entries(self, row_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """row id -> (entry id, label) as of this reader's state."""
        out: dict[int, tuple[str, str]] = {}
        with self._lock:
            for at in range(0, len(row_ids), 500):
                chunk = row_ids[at : at + 500]
                marks = ",".join("?" * len(chunk))
                for row_id, entry_id, label in self._db.execute(
                    f"SELECT id, entry_id, label FROM all_entries WHERE id IN ({marks})", chunk
                ):
                    out[row_id] = (entry_id, label)
        return out

    def close(self) -> None:
        self._release()


def _release_reader(db: sqlite3.Connection, lock: threading.Lock) -> None:
    with lock:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        finally:
            db.close()


@dataclass(frozen=True)
class AuditRecord:
    """One committed change to a list: who, when, what, and how many entries it added or removed."""

    seq: int
    at: datetime
    actor: str
    list_name: str
    action: str  # create, update, delete, load, remove
    added: int
    removed: int
    detail: str


@dataclass(frozen=True)
class Change:
    """What a write did, for the search index to apply as a delta."""

    added: tuple[StoredEntry, ...] = ()
    relabelled: tuple[StoredEntry, ...] = ()
    removed: tuple[tuple[Algorithm, int], ...] = ()  # (algorithm, row_id)
    # The generation this write committed (its change feed record); 0: the write changed nothing.
    seq: int = 0


class Store(Protocol):
    def create_list(
        self,
        name: str,
        description: str,
        thresholds: Mapping[Algorithm, int],
        enabled: bool,
        match_orientations: bool = True,
        actor: str = UNKNOWN_ACTOR,
        confirmed_thresholds: Mapping[Algorithm, int] | None = None,
    ) -> ListInfo: ...
    def get_list(self, name: str) -> ListInfo: ...
    def list_lists(self) -> list[ListInfo]: ...
    def update_list(
        self,
        name: str,
        description: str | None,
        thresholds: Mapping[Algorithm, int] | None,
        enabled: bool | None,
        match_orientations: bool | None = None,
        actor: str = UNKNOWN_ACTOR,
        confirmed_thresholds: Mapping[Algorithm, int] | None = None,
    ) -> ListInfo: ...
    def delete_list(self, name: str, actor: str = UNKNOWN_ACTOR) -> tuple[int, Change]: ...
    def add_entries(
        self, name: str, entries: Sequence[NewEntry], rejected: Sequence[InvalidEntry] = (),
        actor: str = UNKNOWN_ACTOR,
    ) -> tuple[UploadOutcome, Change]: ...
    def remove_entries(
        self, name: str, entry_ids: Sequence[str], hashes: Sequence[Hash], actor: str = UNKNOWN_ACTOR
    ) -> tuple[int, Change]: ...
    def lookup_entries(
        self, name: str, hashes: Sequence[Hash], entry_ids: Sequence[str] = ()
    ) -> tuple[dict[tuple[Algorithm, bytes], str], dict[str, dict[Algorithm, bytes]]]: ...
    def iter_entries(self) -> Iterator[StoredEntry]: ...
    def scan_entries(self) -> dict[Algorithm, EntryArrays]: ...
    def reader(self) -> "Reader": ...  # also offers changes_since(since, skip) -> FeedBatch
    def audit_trail(self, list_name: str | None = None, limit: int = 1000) -> list[AuditRecord]: ...
    def generation(self) -> int: ...
    def entries_generation(self) -> int: ...
    def close(self) -> None: ...


# Every column of an entry, in table order; entries and recent_entries (schema 6) share them.
_ENTRY_COLUMNS = "id, list_id, entry_id, algorithm, hash, label, source, added_at"
_ENTRY_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    id        INTEGER PRIMARY KEY,
    list_id   INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    entry_id  TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    hash      BLOB NOT NULL,
    label     TEXT NOT NULL DEFAULT '',
    source    TEXT NOT NULL DEFAULT '',
    added_at  REAL NOT NULL,
    UNIQUE (list_id, algorithm, hash),
    UNIQUE (list_id, entry_id, algorithm)
);
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS lists (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    enabled     INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    match_orientations INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0);
CREATE TABLE IF NOT EXISTS thresholds (
    list_id   INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    algorithm TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    PRIMARY KEY (list_id, algorithm)
);
"""
_SCHEMA += _ENTRY_TABLE.format(table="entries")
_AUDIT = """
CREATE TABLE IF NOT EXISTS audit (
    id        INTEGER PRIMARY KEY,
    at        REAL NOT NULL,
    actor     TEXT NOT NULL,
    list_name TEXT NOT NULL,
    action    TEXT NOT NULL,
    added     INTEGER NOT NULL DEFAULT 0,
    removed   INTEGER NOT NULL DEFAULT 0,
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_by_list ON audit (list_name, id);
-- Entries per list and algorithm, kept in each write's transaction: counting 10M rows per
-- GetList would take seconds.
CREATE TABLE IF NOT EXISTS counts (
    list_id   INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    algorithm TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (list_id, algorithm)
);
INSERT OR IGNORE INTO counts (list_id, algorithm, n) SELECT list_id, algorithm, count(*) FROM entries GROUP BY list_id, algorithm;
-- Grows only when entries change: an index snapshot built from the entries stays valid across
-- threshold or description edits, which bump only 'generation'.
INSERT OR IGNORE INTO meta (key, value) VALUES ('entries_generation', 0);
"""
_SCHEMA += _AUDIT
# A list's confirmation policy: per algorithm, the looser threshold a hit may reach when another
# algorithm of the same entry confirms it. No row: no confirmation for that algorithm.
_CONFIRMED = """
CREATE TABLE IF NOT EXISTS confirmed_thresholds (
    list_id   INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    algorithm TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    PRIMARY KEY (list_id, algorithm)
);
"""
_SCHEMA += _CONFIRMED
# The change feed (changefeed.py): one row per committed write, keyed by the generation it made,
# so other processes sharing the store apply writes as deltas. A store upgraded to it starts with
# an empty feed: a follower older than the upgrade rebuilds once.
_CHANGES = """
CREATE TABLE IF NOT EXISTS changes (
    generation         INTEGER PRIMARY KEY,
    entries_generation INTEGER NOT NULL,
    at                 REAL NOT NULL,
    payload            TEXT NOT NULL
);
"""
_SCHEMA += _CHANGES
# Loads insert here, not into entries (schema 6). A load of 100k random hashes into entries at
# 10M rows touches most leaf pages of its two unique indexes, whose keys (hashes, random ids)
# are random: ~70k pages rewritten and ~330 MB of WAL per commit. The same rows go into this
# small table's indexes in a few thousand pages; fold_recent moves them into entries later, in
# the background and in bulk, where one pass over those pages serves many loads. Every read
# goes through all_entries; a row is in exactly one of the two tables, under the same id. Ids
# never overlap: a recent row's id is counted up from the largest in either table, so every id
# in recent_entries is above every id in entries (the start-up read and the fold rely on it).
# The unique constraints hold per table; loads check both tables before inserting.
_RECENT = _ENTRY_TABLE.format(table="recent_entries") + """
-- Folds done so far: a process whose view predates one renews its read transaction.
INSERT OR IGNORE INTO meta (key, value) VALUES ('folds', 0);
CREATE VIEW IF NOT EXISTS all_entries AS
    SELECT {columns} FROM entries
    UNION ALL
    SELECT {columns} FROM recent_entries;
""".replace("{columns}", _ENTRY_COLUMNS)
_SCHEMA += _RECENT
_SCHEMA_VERSION = 6
# Each step upgrades a store from the version before it.
_MIGRATIONS = {
    2: "ALTER TABLE lists ADD COLUMN match_orientations INTEGER NOT NULL DEFAULT 1;"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0);",
    3: _AUDIT,
    4: _CONFIRMED,
    5: _CHANGES,
    6: _RECENT,
}
# Both tables that hold entries, for writes by id or by list (reads use the all_entries view).
_ENTRY_TABLES = ("entries", "recent_entries")
# The largest row id SQLite can store; new ids are counted up from the largest in use.
_MAX_ROW_ID = 2**63 - 1
_WRITE_WAIT_SECONDS = 120.0



_LIST_COLUMNS = "id, name, description, enabled, created_at, updated_at, match_orientations"


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


class SQLiteStore:
    """One SQLite file in WAL mode. Writes are serialised by a lock and run in one transaction each."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        # A write waits this long for another process's (a worker's) write to finish: a fold of
        # recent_entries (fold_recent) holds the write lock for seconds at 10M entries.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=_WRITE_WAIT_SECONDS)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=FULL")
        # 64 MiB of page cache (default 2 MiB): a big upload's index inserts stay in memory.
        self._db.execute("PRAGMA cache_size=-65536")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise RuntimeError(f"{path} has schema version {version}; this hashmatch knows up to {_SCHEMA_VERSION}")
        if version == 0:
            self._db.executescript(_SCHEMA)
        else:
            for step in range(version + 1, _SCHEMA_VERSION + 1):
                self._db.executescript(_MIGRATIONS[step])
        self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- lists ---------------------------------------------------------------------------------

    def _list_row(self, name: str) -> tuple:
        row = self._db.execute(
            f"SELECT {_LIST_COLUMNS} FROM lists WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            raise ListNotFound(name)
        return row

    def _info(self, row: tuple) -> ListInfo:
        list_id = row[0]

        def table(name: str, column: str) -> dict[str, int]:
            return dict(self._db.execute(f"SELECT algorithm, {column} FROM {name} WHERE list_id = ?", (list_id,)))

        return _list_info(row, table("thresholds", "threshold"), table("counts", "n"),
                          table("confirmed_thresholds", "threshold"))

    def create_list(
        self,
        name: str,
        description: str,
        thresholds: Mapping[Algorithm, int],
        enabled: bool,
        match_orientations: bool = True,
        actor: str = UNKNOWN_ACTOR,
        confirmed_thresholds: Mapping[Algorithm, int] | None = None,
    ) -> ListInfo:
        check_list_name(name)
        check_description(description)
        merged = default_thresholds() | check_thresholds(thresholds)
        confirmed = check_confirmed_thresholds(confirmed_thresholds or {}, merged)
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO lists (name, description, enabled, created_at, updated_at, match_orientations) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (name, description, int(enabled), now, now, int(match_orientations)),
                )
                self._db.executemany(
                    "INSERT INTO thresholds (list_id, algorithm, threshold) VALUES (?, ?, ?)",
                    [(cur.lastrowid, a.value, t) for a, t in merged.items()],
                )
                self._db.executemany(
                    "INSERT INTO confirmed_thresholds (list_id, algorithm, threshold) VALUES (?, ?, ?)",
                    [(cur.lastrowid, a.value, t) for a, t in confirmed.items()],
                )
                self._audit(actor, name, "create", detail=_describe(description, thresholds, enabled, match_orientations,
                                                                    confirmed))
                self._bump_generation()
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                raise ListExists(name) from None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return self._info(self._list_row(name))

    def get_list(self, name: str) -> ListInfo:
        with self._lock:
            return self._info(self._list_row(name))

    def list_lists(self) -> list[ListInfo]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_LIST_COLUMNS} FROM lists ORDER BY name"
            ).fetchall()
            return [self._info(row) for row in rows]

    def update_list(
        self,
        name: str,
        description: str | None,
        thresholds: Mapping[Algorithm, int] | None,
        enabled: bool | None,
        match_orientations: bool | None = None,
        actor: str = UNKNOWN_ACTOR,
        confirmed_thresholds: Mapping[Algorithm, int] | None = None,
    ) -> ListInfo:
        """``confirmed_thresholds`` changes the algorithms it names; 0 turns one's confirmation off."""
        if description is not None:
            check_description(description)
        if thresholds:
            check_thresholds(thresholds)
        with self._lock, self._transaction():
            list_id = self._list_row(name)[0]
            if description is not None:
                self._db.execute("UPDATE lists SET description = ? WHERE id = ?", (description, list_id))
            if enabled is not None:
                self._db.execute("UPDATE lists SET enabled = ? WHERE id = ?", (int(enabled), list_id))
            if match_orientations is not None:
                self._db.execute(
                    "UPDATE lists SET match_orientations = ? WHERE id = ?", (int(match_orientations), list_id)
                )
            for algorithm, threshold in (thresholds or {}).items():
                self._db.execute(
                    "INSERT INTO thresholds (list_id, algorithm, threshold) VALUES (?, ?, ?) "
                    "ON CONFLICT (list_id, algorithm) DO UPDATE SET threshold = excluded.threshold",
                    (list_id, algorithm.value, threshold),
                )
            for algorithm, threshold in (confirmed_thresholds or {}).items():
                self._db.execute(
                    "DELETE FROM confirmed_thresholds WHERE list_id = ? AND algorithm = ?", (list_id, algorithm.value)
                )
                if threshold:
                    self._db.execute(
                        "INSERT INTO confirmed_thresholds (list_id, algorithm, threshold) VALUES (?, ?, ?)",
                        (list_id, algorithm.value, threshold),
                    )
            if thresholds or confirmed_thresholds:
                # Checked on the list as it will be: raising a threshold past its confirmed one is refused too.
                after = self._info(self._list_row(name))
                check_confirmed_thresholds(after.confirmed_thresholds, after.thresholds)
            self._db.execute("UPDATE lists SET updated_at = ? WHERE id = ?", (time.time(), list_id))
            self._audit(actor, name, "update", detail=_describe(description, thresholds, enabled, match_orientations,
                                                                confirmed_thresholds))
            self._bump_generation()
        with self._lock:
            return self._info(self._list_row(name))

    def delete_list(self, name: str, actor: str = UNKNOWN_ACTOR) -> tuple[int, Change]:
        with self._lock, self._transaction():
            list_id = self._list_row(name)[0]
            removed = tuple(
                (Algorithm(a), row_id)
                for row_id, a in self._db.execute("SELECT id, algorithm FROM all_entries WHERE list_id = ?", (list_id,))
            )
            for table in _ENTRY_TABLES:
                self._db.execute(f"DELETE FROM {table} WHERE list_id = ?", (list_id,))
            self._db.execute("DELETE FROM lists WHERE id = ?", (list_id,))
            self._audit(actor, name, "delete", removed=len(removed))
            seq = self._bump_generation(entries=bool(removed), change=Change(removed=removed))
        return len(removed), Change(removed=removed, seq=seq)

    # -- entries -------------------------------------------------------------------------------

    def add_entries(
        self, name: str, entries: Sequence[NewEntry], rejected: Sequence[InvalidEntry] = (),
        actor: str = UNKNOWN_ACTOR,
    ) -> tuple[UploadOutcome, Change]:
        """All or nothing. Raises InvalidEntry for the first line that cannot be stored, counting
        ``rejected``: lines the caller could not even parse.

        Made for 100k-entry loads into a 10M-entry store (a load must match within 2 s): the
        upload is staged once, in (algorithm, hash) order, so the look-up of what is listed
        walks the (list, algorithm, hash) indexes from one end to the other, a page at a time,
        instead of jumping to a random page per entry; the new rows go into the small
        recent_entries table (see _RECENT) by one INSERT ... SELECT from the staging table,
        under row ids counted up from the largest in use (see _insert_staged)."""
        unique, problems = _dedupe(entries)
        problems.extend(rejected)
        staged = _staging_rows(unique)
        with self._lock, _foreign_keys_off(self._db), self._transaction():
            list_id = self._list_row(name)[0]
            db = self._db
            db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS upload (pos INTEGER PRIMARY KEY, k INTEGER NOT NULL, "
                "algorithm TEXT NOT NULL, hash BLOB NOT NULL, entry_id TEXT NOT NULL, new_id TEXT NOT NULL, "
                "label TEXT NOT NULL, source TEXT NOT NULL)"
            )
            db.execute("DELETE FROM upload")
            db.executemany("INSERT INTO upload VALUES (?, ?, ?, ?, ?, ?, ?, ?)", staged)
            # What is listed already, matched by hash and by id. CROSS JOIN keeps the upload the
            # outer loop (in pos order, so in index order); the planner may otherwise scan the list.
            listed: dict[int, tuple[int, int]] = {}  # k -> (pos, row id)
            by_hash: dict[int, tuple[str, str, str]] = {}
            for pos, k, row_id, entry_id, label, source in db.execute(
                "SELECT u.pos, u.k, e.id, e.entry_id, e.label, e.source FROM upload u CROSS JOIN all_entries e "
                "ON e.list_id = ? AND e.algorithm = u.algorithm AND e.hash = u.hash",
                (list_id,),
            ):
                listed[k] = (pos, row_id)
                by_hash[k] = (entry_id, label, source)
            by_id = {
                k for (k,) in db.execute(
                    "SELECT u.k FROM upload u CROSS JOIN all_entries e "
                    "ON e.list_id = ? AND e.algorithm = u.algorithm AND e.entry_id = u.entry_id "
                    "WHERE u.entry_id != ''",
                    (list_id,),
                )
            }
            new, relabel = _plan_upload(unique, by_hash, by_id, problems)
            if problems:
                raise min(problems, key=lambda p: p.line)
            # Every staged entry not listed yet is new (any other would have been a problem).
            db.executemany("DELETE FROM upload WHERE pos = ?", [(pos,) for pos, _ in listed.values()])
            now = time.time()
            row_ids = self._insert_staged(list_id, len(new), now)
            fresh = [row for row in staged if row[1] not in listed]
            algorithms = {a.value: a for a in Algorithm}
            added = [StoredEntry(row_id, list_id, algorithms[algorithm], value, new_id, label)
                     for row_id, (_pos, _k, algorithm, value, _id, new_id, label, _source) in zip(row_ids, fresh)]
            self._count(list_id, Counter(row[2] for row in fresh))
            relabelled = _relabelled(list_id, unique, listed, relabel)
            for table in _ENTRY_TABLES:
                db.executemany(
                    f"UPDATE {table} SET label = ?, source = ? WHERE id = ?",
                    [(e.label, source, e.row_id) for e, source in relabelled],
                )
            relabelled = [e for e, _source in relabelled]
            db.execute("DELETE FROM upload")
            if new or relabel:
                db.execute("UPDATE lists SET updated_at = ? WHERE id = ?", (now, list_id))
                self._audit(actor, name, "load", added=len(new), detail=f"{len(relabel)} relabelled" if relabel else "")
                seq = self._bump_generation(entries=bool(new), change=Change(tuple(added), tuple(relabelled)))
        outcome = UploadOutcome(received=len(entries), added=len(new), unchanged=len(entries) - len(new))
        return outcome, Change(added=tuple(added), relabelled=tuple(relabelled), seq=seq if new or relabel else 0)

    def _insert_staged(self, list_id: int, count: int, now: float) -> Sequence[int]:
        """Inserts the ``count`` rows left in the ``upload`` staging table into recent_entries,
        with the next row ids in pos order; returns those ids. In the write's transaction."""
        db = self._db
        if count == 0:
            return range(0)
        last = db.execute(
            "SELECT max(coalesce((SELECT max(id) FROM entries), 0), coalesce((SELECT max(id) FROM recent_entries), 0))"
        ).fetchone()[0]
        if last + count <= _MAX_ROW_ID:
            # OR FAIL, not the default ABORT: a statement that may abort half way makes SQLite copy
            # every page it changes to a statement journal first, to undo just that statement.
            # Nothing here needs that: any error (none is expected: the plan left no conflict)
            # rolls the whole transaction back.
            db.execute(
                f"INSERT OR FAIL INTO recent_entries ({_ENTRY_COLUMNS}) "
                "SELECT ? + row_number() OVER (ORDER BY pos), ?, new_id, algorithm, hash, label, source, ? "
                "FROM upload ORDER BY pos",
                (last, list_id, now),
            )
            return range(last + 1, last + count + 1)
        # Ids used up to the top: only SQLite can find unused ones (at random, in entries), and
        # those must not collide with recent rows, so the recent rows move first.
        self._move_recent()
        db.execute(
            "INSERT OR FAIL INTO entries (list_id, entry_id, algorithm, hash, label, source, added_at) "
            "SELECT ?, new_id, algorithm, hash, label, source, ? FROM upload ORDER BY pos",
            (list_id, now),
        )
        return _inserted_ids(db, last, count, list_id)

    def recent_rows(self) -> int:
        """How many entries wait in recent_entries for fold_recent."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM recent_entries").fetchone()[0]

    def fold_recent(self, wait: bool = True) -> int | None:
        """Moves every row of recent_entries into entries, ids and all, in one transaction (a
        reader sees each row in one table or the other, never both or neither); returns how
        many moved. The entries do not change, so neither does any generation: index views
        and snapshots stay valid (the 'folds' count in meta tells other processes to move
        their views to a read transaction after it). Costs about what the loads saved, once
        for all of them: run in the background (the compactor does, when the store is idle or
        the table large). ``wait=False``: None at once if another process holds the write
        lock (writing, or folding the same rows), instead of waiting for it."""
        with self._lock, _foreign_keys_off(self._db):
            try:
                if not wait:
                    self._db.execute("PRAGMA busy_timeout=0")
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                if wait:
                    raise
                return None
            finally:
                if not wait:
                    self._db.execute(f"PRAGMA busy_timeout={int(_WRITE_WAIT_SECONDS * 1000)}")
            try:
                moved = self._move_recent()
                if moved:
                    self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'folds'")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return moved

    def _move_recent(self) -> int:
        """fold_recent's moves, in the caller's transaction (also used by a load that must
        leave the id space's top to SQLite); returns how many rows moved."""
        columns = _ENTRY_COLUMNS  # the two tables' columns, in the same order
        db = self._db
        db.execute("SAVEPOINT fold")
        try:
            # In (list, algorithm, hash) order, so the large hash index takes them page by page.
            moved = db.execute(
                f"INSERT OR FAIL INTO entries ({columns}) SELECT {columns} FROM recent_entries "
                "ORDER BY list_id, algorithm, hash"
            ).rowcount
            db.execute("DELETE FROM recent_entries")
        except sqlite3.IntegrityError as error:
            # A row that conflicts with one in entries: loads check both tables, so only two
            # random 64-bit entry ids colliding could cause it. Move every other row and leave
            # that one where it is (still matched, through all_entries), rather than never fold.
            db.execute("ROLLBACK TO fold")
            moved = db.execute(
                f"INSERT OR IGNORE INTO entries ({columns}) SELECT {columns} FROM recent_entries "
                "ORDER BY list_id, algorithm, hash"
            ).rowcount
            db.execute("DELETE FROM recent_entries WHERE id IN (SELECT r.id FROM recent_entries r JOIN entries e ON e.id = r.id)")
            left = db.execute("SELECT count(*) FROM recent_entries").fetchone()[0]
            log.warning("fold: %d recent rows conflict with the main table (%s) and stay in recent_entries", left, error)
        db.execute("RELEASE fold")
        return moved

    def remove_entries(
        self, name: str, entry_ids: Sequence[str], hashes: Sequence[Hash], actor: str = UNKNOWN_ACTOR
    ) -> tuple[int, Change]:
        with self._lock, self._transaction():
            list_id = self._list_row(name)[0]
            rows: dict[int, Algorithm] = {}
            for entry_id in entry_ids:
                for row_id, a in self._db.execute(
                    "SELECT id, algorithm FROM all_entries WHERE list_id = ? AND entry_id = ?", (list_id, entry_id)
                ):
                    rows[row_id] = Algorithm(a)
            for h in hashes:
                for row_id, a in self._db.execute(
                    "SELECT id, algorithm FROM all_entries WHERE list_id = ? AND algorithm = ? AND hash = ?",
                    (list_id, h.algorithm.value, h.value),
                ):
                    rows[row_id] = Algorithm(a)
            for table in _ENTRY_TABLES:
                self._db.executemany(f"DELETE FROM {table} WHERE id = ?", [(r,) for r in rows])
            self._count(list_id, Counter(a.value for a in rows.values()), sign=-1)
            if rows:
                self._db.execute("UPDATE lists SET updated_at = ? WHERE id = ?", (time.time(), list_id))
                self._audit(actor, name, "remove", removed=len(rows))
                seq = self._bump_generation(entries=True, change=Change(removed=tuple((a, r) for r, a in rows.items())))
        return len(rows), Change(removed=tuple((a, r) for r, a in rows.items()), seq=seq if rows else 0)

    def lookup_entries(
        self, name: str, hashes: Sequence[Hash], entry_ids: Sequence[str] = ()
    ) -> tuple[dict[tuple[Algorithm, bytes], str], dict[str, dict[Algorithm, bytes]]]:
        """Of one list: the entry id of each of ``hashes`` that is listed, and every hash (per
        algorithm) of those entries and of ``entry_ids``. Raises ListNotFound."""
        by_hash: dict[tuple[Algorithm, bytes], str] = {}
        held: dict[str, dict[Algorithm, bytes]] = {}
        with self._lock:
            list_id = self._list_row(name)[0]
            for h in hashes:
                row = self._db.execute(
                    "SELECT entry_id FROM all_entries WHERE list_id = ? AND algorithm = ? AND hash = ?",
                    (list_id, h.algorithm.value, h.value),
                ).fetchone()
                if row is not None:
                    by_hash[(h.algorithm, h.value)] = row[0]
            for entry_id in dict.fromkeys([*by_hash.values(), *entry_ids]):
                held[entry_id] = {
                    Algorithm(a): value
                    for a, value in self._db.execute(
                        "SELECT algorithm, hash FROM all_entries WHERE list_id = ? AND entry_id = ?", (list_id, entry_id)
                    )
                }
        return by_hash, held

    def iter_entries(self) -> Iterator[StoredEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, list_id, algorithm, hash, entry_id, label FROM all_entries ORDER BY id"
            ).fetchall()
        for row_id, list_id, algorithm, value, entry_id, label in rows:
            yield StoredEntry(row_id, list_id, Algorithm(algorithm), value, entry_id, label)

    def scan_entries(self) -> dict[Algorithm, EntryArrays]:
        """Every entry as arrays per algorithm, in row id order: what a full index build reads.

        Runs on a connection of its own inside one read transaction, so it sees one committed
        state and never holds up a writer (WAL)."""
        with closing(self._connect_reader()) as db:
            db.execute("BEGIN")
            generation = _entries_generation(db)
            arrays = _bulk_entry_arrays(db, generation, self._connect_reader)
            if arrays is None:  # a store _bulk_entry_arrays cannot read: row by row
                cursor = db.execute("SELECT id, list_id, algorithm, hash FROM all_entries ORDER BY id")
                arrays = _entry_arrays((row for rows in iter(lambda: cursor.fetchmany(65536), []) for row in rows),
                                       generation)
            db.execute("ROLLBACK")
        return arrays

    def reader(self) -> "Reader":
        """A read transaction opened now and held: it sees exactly the state committed so far,
        whatever is written after (WAL), so matches answered from one index view read the
        entries' ids and labels as of that same view."""
        return Reader(self._connect_reader())

    def _connect_reader(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA query_only=1")
        return db

    def audit_trail(self, list_name: str | None = None, limit: int = 1000) -> list[AuditRecord]:
        """The newest ``limit`` list changes (of one list, or of all), newest first."""
        where, args = ("WHERE list_name = ?", (list_name,)) if list_name is not None else ("", ())
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, at, actor, list_name, action, added, removed, detail FROM audit {where} "
                "ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [AuditRecord(i, _utc(at), actor, name, action, added, removed, detail)
                for i, at, actor, name, action, added, removed, detail in rows]

    def generation(self) -> int:
        """Grows with every committed change to any list."""
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]

    def entries_generation(self) -> int:
        """Grows with every committed change to the set of entries (not to labels or list settings)."""
        with self._lock:
            return _entries_generation(self._db)

    # -- plumbing ------------------------------------------------------------------------------

    def _bump_generation(self, entries: bool = False, change: Change | None = None) -> int:
        """Counts a write and records it in the change feed, in the write's transaction; returns
        the new generation. No ``change``: only list settings changed."""
        self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
        if entries:
            self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'entries_generation'")
        generation = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]
        change = change or Change()
        now = time.time()
        self._db.execute(
            "INSERT OR REPLACE INTO changes (generation, entries_generation, at, payload) VALUES (?, ?, ?, ?)",
            (generation, _entries_generation(self._db), now,
             encode((e.row_id for e in change.added), (e.row_id for e in change.relabelled), change.removed)),
        )
        if generation % PRUNE_EVERY == 0:
            self._db.execute("DELETE FROM changes WHERE at < ? AND generation < ?", (now - RETENTION_SECONDS, generation))
        return generation

    def _count(self, list_id: int, added: Counter, sign: int = 1) -> None:
        self._db.executemany(
            "INSERT INTO counts (list_id, algorithm, n) VALUES (?, ?, ?) "
            "ON CONFLICT (list_id, algorithm) DO UPDATE SET n = n + excluded.n",
            [(list_id, algorithm, sign * n) for algorithm, n in added.items() if n],
        )

    def _audit(self, actor: str, list_name: str, action: str, added: int = 0, removed: int = 0, detail: str = "") -> None:
        # In the change's own transaction: the trail holds exactly the changes that were committed.
        self._db.execute(
            "INSERT INTO audit (at, actor, list_name, action, added, removed, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), actor or UNKNOWN_ACTOR, list_name, action, added, removed, detail),
        )

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)


@contextmanager
def _foreign_keys_off(db: sqlite3.Connection) -> Iterator[None]:
    """Foreign key checks off for one write (around its transaction: the pragma does nothing
    inside one), for a bulk load. The checks are redundant there: the list's row is read inside
    the write's own transaction, which holds the store's write lock, so the list exists until
    it commits. And an immediate foreign key check makes SQLite keep a statement journal (a
    copy of every page the INSERT changes) for as long as the statement runs."""
    db.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if db.in_transaction:  # a COMMIT that failed: no later write may commit part of this one
            db.execute("ROLLBACK")
        db.execute("PRAGMA foreign_keys=ON")


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _entries_generation(db: sqlite3.Connection) -> int:
    return db.execute("SELECT value FROM meta WHERE key = 'entries_generation'").fetchone()[0]


def _describe(description: str | None, thresholds: Mapping[Algorithm, int] | None, enabled: bool | None,
              match_orientations: bool | None, confirmed: Mapping[Algorithm, int] | None = None) -> str:
    """What a create or update set, for the audit trail (never a hash value)."""
    parts = []
    if thresholds:
        parts.append("thresholds " + ",".join(f"{a.value}={t}" for a, t in sorted(thresholds.items(), key=lambda x: x[0].value)))
    if confirmed:
        parts.append("confirmed thresholds " + ",".join(
            f"{a.value}={t}" for a, t in sorted(confirmed.items(), key=lambda x: x[0].value)))
    if enabled is not None:
        parts.append("enabled" if enabled else "disabled")
    if match_orientations is not None:
        parts.append(f"match_orientations={match_orientations}")
    if description:
        parts.append("description set")
    return "; ".join(parts)


def _or(given: str | None, kept: str | None) -> str | None:
    """A field that was given wins; one that was not keeps what is there."""
    return kept if given is None else given


def _new_entry_ids(count: int) -> list[str]:
    # Random, so an id never reveals the listed hash to a client that only matches. One call
    # to the system's generator for the whole upload: per-id calls cost seconds at 100k.
    pool = secrets.token_bytes(8 * count).hex()
    return [pool[i : i + 16] for i in range(0, 16 * count, 16)]


# -- the SQLite store's bulk load (add_entries) ------------------------------------------------

def _staging_rows(unique: Sequence[NewEntry]) -> list[tuple[int, int, str, bytes, str, str, str, str]]:
    """An upload's (deduplicated) entries as the ``upload`` staging table holds them, in
    (algorithm, hash) order: (pos, position in ``unique``, algorithm, hash, id as given, id if
    it is new (the given one, or a fresh random one), label, source), with a new entry's label
    and source ("" where none was given)."""
    # _value_, not .value: Enum.value is a property (~0.4 us a call: 0.1 s at 100k entries).
    keys = [(e.algorithm._value_, e.value) for e in unique]
    fresh = _new_entry_ids(len(unique))
    order = sorted(range(len(unique)), key=keys.__getitem__)
    return [
        (pos, k, keys[k][0], keys[k][1], e.entry_id, e.entry_id or fresh[k], e.label or "", e.source or "")
        for pos, (k, e) in enumerate((k, unique[k]) for k in order)
    ]


def _inserted_ids(db: sqlite3.Connection, last: int, count: int, list_id: int) -> Sequence[int]:
    """The row ids that the INSERT ... SELECT ... ORDER BY pos just gave its ``count`` rows, in
    pos order; ``last`` is the largest row id before it.

    SQLite gives a new row of a rowid table without AUTOINCREMENT the largest row id in the
    table plus one, unless that largest is already 2**63-1, when it picks an unused one at
    random (sqlite.org/autoinc.html). So if the largest is ``last + count`` now, every row took
    the next id in turn: ``last+1 .. last+count`` in insert order, and no join is needed to read
    them back. Otherwise (a store that reached 2**63-1) they are read back by hash."""
    if count == 0:
        return range(0)
    if db.execute("SELECT max(id) FROM entries").fetchone()[0] == last + count:
        return range(last + 1, last + count + 1)
    return [row_id for _pos, row_id in db.execute(
        "SELECT u.pos, e.id FROM upload u CROSS JOIN entries e "
        "ON e.list_id = ? AND e.algorithm = u.algorithm AND e.hash = u.hash ORDER BY u.pos",
        (list_id,),
    )]


def _relabelled(
    list_id: int, unique: Sequence[NewEntry], listed: Mapping[int, tuple[int, int]], relabel: Sequence[NewEntry],
) -> list[tuple[StoredEntry, str]]:
    """(entry as it will be stored, its new source) for each of ``relabel`` (from _plan_upload);
    ``listed``: position in ``unique`` -> (staging pos, row id) of the entries already listed."""
    if not relabel:
        return []
    position = {(unique[k].algorithm, unique[k].value): k for k in listed}
    out = []
    for e in relabel:
        row_id = listed[position[(e.algorithm, e.value)]][1]
        out.append((StoredEntry(row_id, list_id, e.algorithm, e.value, e.entry_id, e.label or ""), e.source or ""))
    return out


# -- what both stores do alike, whatever their SQL ---------------------------------------------

def _list_info(row: tuple, thresholds: Mapping[str, int], counts: Mapping[str, int],
               confirmed: Mapping[str, int]) -> ListInfo:
    """A list's row (``_LIST_COLUMNS``) and its per-algorithm tables (algorithm name -> value)."""
    list_id, name, description, enabled, created, updated, orientations = row
    return ListInfo(
        list_id=list_id,
        name=name,
        description=description,
        thresholds={a: thresholds.get(a.value, a.spec.default_threshold) for a in Algorithm},
        enabled=bool(enabled),
        created=_utc(created),
        updated=_utc(updated),
        counts={a: int(counts.get(a.value, 0)) for a in Algorithm},
        match_orientations=bool(orientations),
        confirmed_thresholds={Algorithm(a): t for a, t in confirmed.items()},
    )


def _entry_arrays(rows: Iterable[tuple[int, int, str, bytes]], generation: int) -> dict[Algorithm, EntryArrays]:
    """(row id, list id, algorithm, hash) rows, in row id order -> arrays per algorithm."""
    raw: dict[str, tuple[array, array, list[bytes]]] = {}
    for row_id, list_id, algorithm, value in rows:
        ids, lists, values = raw.get(algorithm) or raw.setdefault(algorithm, (array("q"), array("q"), []))
        ids.append(row_id)
        lists.append(list_id)
        values.append(value)
    out = {}
    for name, (ids, lists, values) in raw.items():
        algorithm = Algorithm(name)
        out[algorithm] = EntryArrays(
            np.frombuffer(ids, np.int64).copy(),
            np.frombuffer(lists, np.int64).copy(),
            np.frombuffer(b"".join(values), np.uint8).reshape(len(values), algorithm.spec.nbytes),
            generation,
        )
    return out


# Rows per bulk read: ~4 MB of text per aggregate, few enough round trips to cost nothing.
_BULK_ROWS = 65536
# A table with more rows than this is read in two halves at once, on two connections: SQLite
# runs without the GIL, so the halves take both cores (a store this size takes seconds to read).
_SPLIT_READ_ROWS = 1_000_000

_Runs = tuple[list[bytes], list[np.ndarray], list[np.ndarray]]  # hashes, row ids, list ids
# One aggregated run as a store's SQL returns it: row count, largest id, the hashes joined, and
# the row ids and list ids already parsed (None: they did not parse).
_Run = tuple[int, int, bytes, "np.ndarray | None", "np.ndarray | None"]


def _bulk_entry_arrays(
    db: sqlite3.Connection, generation: int, connect: Callable[[], sqlite3.Connection] | None = None,
) -> dict[Algorithm, EntryArrays] | None:
    """Every entry as arrays per algorithm, read without a Python object per row (None: this store
    holds something it cannot read so, and the caller reads row by row).

    A start-up without a snapshot reads every row; one Python tuple per row made that ~1.7 us a
    row (17 s at 10M). Here SQLite itself joins each run of rows of one algorithm into three
    values: the hashes into one blob (group_concat copies a blob's bytes unchanged in a UTF-8
    database; CAST keeps them a blob), the row ids and the list ids into decimal text that numpy
    parses. (One pass per algorithm: a CASE per aggregate to split one pass measured 2-3x slower.)
    The shape checks and the assembly are _runs_of and _read_in_halves, shared with PostgreSQL.

    ``db`` is in a read transaction; with ``connect``, a large table's upper half is read at the
    same time on a second connection, used only if it sees the same entries generation (so the
    same entries: the generation grows with every change to them)."""
    if db.execute("PRAGMA encoding").fetchone()[0] != "UTF-8":
        return None  # group_concat would convert the hash bytes to the database's encoding
    try:
        algorithms = [Algorithm(name) for (name,) in db.execute("SELECT DISTINCT algorithm FROM counts WHERE n > 0")]
    except ValueError:
        return None
    total = db.execute("SELECT count(*) FROM entries").fetchone()[0]
    low, high = db.execute("SELECT min(id), max(id) FROM entries").fetchone()
    recent = db.execute("SELECT count(*), min(id), max(id) FROM recent_entries").fetchone()
    if not total and not recent[0]:
        return {}

    def read_range(conn: sqlite3.Connection, lo: int, hi: int, table: str = "entries") -> list[_Runs | None]:
        return [_read_runs(conn, algorithm, lo, hi, table) for algorithm in algorithms]

    def read_elsewhere(lo: int, hi: int) -> list[_Runs | None] | None:
        with closing(connect()) as other:  # type: ignore[misc]
            other.execute("BEGIN")
            if _entries_generation(other) != generation:
                return None  # a write landed in between: the caller reads this range itself
            return read_range(other, lo, hi)

    parts = []
    if total:
        ranges = _halves(total, low, high) if connect is not None else [(low, high)]
        parts = _read_in_halves(ranges, lambda lo, hi: read_range(db, lo, hi), read_elsewhere)
    if recent[0]:  # the loads not folded yet (_assemble_runs puts rows back in id order)
        parts.append(read_range(db, recent[1], recent[2], "recent_entries"))
    return _assemble_runs(algorithms, parts, total + recent[0], generation)


def _halves(total: int, low: int, high: int) -> list[tuple[int, int]]:
    """The id ranges a bulk read covers: two halves for a large table (read at once on two
    connections, each keeping a core busy), else the one range."""
    if total > _SPLIT_READ_ROWS and high > low:
        middle = low + (high - low) // 2
        return [(low, middle), (middle + 1, high)]
    return [(low, high)]


def _read_in_halves(
    ranges: list[tuple[int, int]],
    read_range: Callable[[int, int], list[_Runs | None]],
    read_elsewhere: Callable[[int, int], list[_Runs | None] | None],
) -> list[list[_Runs | None]]:
    """Each range's runs per algorithm: the first read here, a second one meanwhile on another
    thread by ``read_elsewhere``, which may decline (None): then it is read here after all."""
    if len(ranges) == 1:
        return [read_range(*ranges[0])]
    with ThreadPoolExecutor(1, thread_name_prefix="store-scan") as pool:
        upper = pool.submit(read_elsewhere, *ranges[1])
        lower = read_range(*ranges[0])
        return [lower, upper.result() or read_range(*ranges[1])]


def _runs_of(fetch: Callable[[int], _Run], nbytes: int, low: int, high: int) -> _Runs | None:
    """The rows with ids in [low, high], one aggregated run at a time (``fetch(first id)``), each
    run's sizes checked against its row count (None: a run of a wrong shape)."""
    blobs: list[bytes] = []
    row_arrays: list[np.ndarray] = []
    list_arrays: list[np.ndarray] = []
    start = low
    while start <= high:
        count, top, hashes, rows, lists = fetch(start)
        if not count:
            break
        if rows is None or lists is None or len(rows) != count or len(lists) != count or len(hashes) != count * nbytes:
            return None
        blobs.append(hashes)
        row_arrays.append(rows)
        list_arrays.append(lists)
        if top >= high:
            break
        start = top + 1
    return blobs, row_arrays, list_arrays


def _assemble_runs(
    algorithms: Sequence[Algorithm], parts: list[list[_Runs | None]], total: int, generation: int,
) -> dict[Algorithm, EntryArrays] | None:
    """The runs of every range joined into one EntryArrays per algorithm, in row id order (None:
    a range could not be read in bulk, or the rows read are not the table's ``total``)."""
    out, read = {}, 0
    for k, algorithm in enumerate(algorithms):
        runs = [part[k] for part in parts]
        if any(run is None for run in runs):
            return None
        blobs = [blob for run in runs for blob in run[0]]  # type: ignore[index]
        if not blobs:
            continue
        row_ids = np.concatenate([ids for run in runs for ids in run[1]])  # type: ignore[index]
        list_ids = np.concatenate([ids for run in runs for ids in run[2]])  # type: ignore[index]
        values = np.frombuffer(b"".join(blobs), np.uint8).reshape(len(row_ids), algorithm.spec.nbytes)
        if np.any(row_ids[1:] <= row_ids[:-1]):  # a run came out of id order: put it back
            order = np.argsort(row_ids, kind="stable")
            row_ids, list_ids, values = row_ids[order], list_ids[order], values[order]
        read += len(row_ids)
        out[algorithm] = EntryArrays(row_ids, list_ids, values, generation)
    if read != total:
        return None  # rows of an algorithm the counts table does not name
    return out


def _read_runs(db: sqlite3.Connection, algorithm: Algorithm, low: int, high: int, table: str = "entries") -> _Runs | None:
    """The rows of one algorithm in ``table`` with ids in [low, high], run by run (None: a run of
    a wrong shape)."""
    sql = ("SELECT count(*), max(id), CAST(group_concat(hash, '') AS BLOB), group_concat(id), group_concat(list_id) "
           f"FROM (SELECT id, list_id, hash FROM {table} WHERE algorithm = ? AND id >= ? AND id <= ? ORDER BY id LIMIT ?)")

    def fetch(start: int) -> _Run:
        count, top, hashes, row_ids, list_ids = db.execute(sql, (algorithm.value, start, high, _BULK_ROWS)).fetchone()
        return count, top, hashes, _parse_ids(row_ids), _parse_ids(list_ids)

    return _runs_of(fetch, algorithm.spec.nbytes, low, high)


def _parse_ids(text: str | None) -> np.ndarray | None:
    """Comma-separated decimal integers -> int64 (None: no text, or trailing garbage; the caller
    checks the count)."""
    if text is None:
        return None
    try:
        return np.fromstring(text, dtype=np.int64, sep=",")
    except ValueError:  # with warnings as errors, numpy raises on trailing garbage
        return None


def _plan_upload(
    unique: Sequence[NewEntry], by_hash: Mapping[int, tuple[str, str, str]], by_id: Collection[int],
    problems: list[InvalidEntry],
) -> tuple[list[tuple[int, NewEntry]], list[NewEntry]]:
    """Which of an upload's (deduplicated) entries are new and which relabel a listed one.

    ``by_hash``: position -> (entry id, label, source) of the entry already listed with that
    hash; ``by_id``: positions whose id is already listed with another hash. Conflicts are
    appended to ``problems``."""
    new: list[tuple[int, NewEntry]] = []
    relabel: list[NewEntry] = []
    for k, entry in enumerate(unique):
        listed = by_hash.get(k)
        if listed is not None:
            listed_id, label, source = listed
            if entry.entry_id and entry.entry_id != listed_id:
                problems.append(InvalidEntry(
                    entry.line,
                    f"this {entry.algorithm.name} hash is already listed as entry {listed_id!r}, "
                    f"not {entry.entry_id!r}",
                ))
            else:
                wanted = (_or(entry.label, label), _or(entry.source, source))
                if wanted != (label, source):
                    relabel.append(NewEntry(entry.algorithm, entry.value, wanted[0], listed_id, wanted[1]))
            continue
        if k in by_id:
            problems.append(InvalidEntry(
                entry.line,
                f"entry {entry.entry_id!r} already has a different {entry.algorithm.name} hash",
            ))
            continue
        new.append((k, entry))
    return new, relabel


def _entry_rows(list_id: int, new: Sequence[tuple[int, NewEntry]], now: float) -> list[tuple]:
    """The rows to insert for ``new``, random ids given where none was, in (algorithm, hash)
    order: the (list, algorithm, hash) index is then filled in order, not at random pages."""
    fresh = iter(_new_entry_ids(sum(1 for _, e in new if not e.entry_id)))
    rows = [
        (list_id, e.entry_id or next(fresh), e.algorithm.value, e.value, e.label or "", e.source or "", now)
        for _, e in new
    ]
    rows.sort(key=lambda r: (r[2], r[3]))
    return rows


def _stored(
    list_id: int, rows: Iterable[tuple[int, int, str, bytes, str, str]],
    new: Sequence[tuple[int, NewEntry]], relabel: Sequence[NewEntry],
) -> tuple[list[StoredEntry], list[StoredEntry]]:
    """(added, relabelled) from the upload's rows as stored: (position, row id, algorithm,
    hash, entry id, label)."""
    new_keys = {k for k, _ in new}
    relabel_keys = {(e.algorithm.value, e.value) for e in relabel}
    added: list[StoredEntry] = []
    relabelled: list[StoredEntry] = []
    for k, row_id, algorithm, value, entry_id, label in rows:
        value = bytes(value)
        stored = StoredEntry(row_id, list_id, Algorithm(algorithm), value, entry_id, label)
        if k in new_keys:
            added.append(stored)
        elif (algorithm, value) in relabel_keys:
            relabelled.append(stored)
    return added, relabelled

def _dedupe(entries: Sequence[NewEntry]) -> tuple[list[NewEntry], list[InvalidEntry]]:
    """One entry per (algorithm, hash); later lines win for label/source. Conflicting ids and bad
    text fields are returned as problems, not raised, so the caller can report the first line."""
    problems: list[InvalidEntry] = []
    seen: dict[tuple[Algorithm, bytes], int] = {}
    ids: dict[tuple[Algorithm, str], NewEntry] = {}
    unique: list[NewEntry] = []
    for entry in entries:
        # An entry with no id, label or source (most of a bulk load) has no text to check.
        problem = (entry.entry_id or entry.label is not None or entry.source is not None) and entry_problem(
            entry.entry_id, entry.label, entry.source)
        if problem:
            problems.append(InvalidEntry(entry.line, problem))
            continue
        if entry.entry_id:
            other = ids.setdefault((entry.algorithm, entry.entry_id), entry)
            if other.value != entry.value:
                problems.append(InvalidEntry(
                    entry.line,
                    f"entry {entry.entry_id!r} is given two different {entry.algorithm.name} hashes "
                    f"(lines {other.line} and {entry.line})",
                ))
                continue
        key = (entry.algorithm, entry.value)
        if key in seen:
            first = unique[seen[key]]
            if entry.entry_id and first.entry_id and entry.entry_id != first.entry_id:
                problems.append(InvalidEntry(
                    entry.line,
                    f"this {entry.algorithm.name} hash is given ids {first.entry_id!r} (line {first.line}) "
                    f"and {entry.entry_id!r}",
                ))
                continue
            unique[seen[key]] = NewEntry(
                entry.algorithm, entry.value, _or(entry.label, first.label), first.entry_id or entry.entry_id,
                _or(entry.source, first.source), first.line,
            )
        else:
            seen[key] = len(unique)
            unique.append(entry)
    return unique, problems
