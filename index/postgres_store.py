"""PostgreSQL as the store several replicas share (psycopg 3).

The same tables as the SQLite store (lists, thresholds, confirmed thresholds, entries, counts,
audit, meta generations, the change feed) and the same behaviour, so one test suite runs on both.
What differs, and why:

- Writes take one transaction-scoped advisory lock first, so writes from every replica are
  serialised as SQLite's are: generations, and so the change feed, grow in commit order, and the
  rows one write inserts get consecutive ids (the feed records them as ranges).
- Each write sends NOTIFY in its transaction; a follower LISTENs, so other replicas apply a
  change within milliseconds of its commit instead of at their next poll.
- A view does not pin a read transaction (that would hold a server connection per view): labels
  are read as they are now. Ids are never reused (BIGSERIAL), so a removed row is simply absent.
- If the database cannot be reached, label look-ups are answered from a bounded cache of the
  rows this process has seen, so a replica keeps answering matches from its last index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import numpy as np
import psycopg
import psycopg.sql

from hashmatch.hashing.algorithms import Algorithm, Hash

from .changefeed import PRUNE_EVERY, RETENTION_SECONDS, FeedBatch, FeedRecord, collect, encode
from .errors import InvalidEntry, ListExists, ListNotFound, StoreUnavailable
from .records import ListInfo, NewEntry, UploadOutcome
from .store import (
    UNKNOWN_ACTOR,
    AuditRecord,
    Change,
    EntryArrays,
    StoredEntry,
    _dedupe,
    _describe,
    _entry_arrays,
    _entry_rows,
    _list_info,
    _BULK_ROWS,
    _assemble_runs,
    _halves,
    _plan_upload,
    _read_in_halves,
    _Run,
    _Runs,
    _runs_of,
    _stored,
    _utc,
)
from .validation import check_confirmed_thresholds, check_description, check_list_name, check_thresholds, default_thresholds

log = logging.getLogger("hashmatch.index")

CHANNEL = "hashmatch_changes"
# Any constant: the key of the advisory lock every write holds until it commits.
_WRITE_LOCK = 0x6861736D
_SCHEMA_LOCK = 0x6861736E
# Rows whose id and label a replica keeps for answering while the database is away.
LABEL_CACHE_ROWS = 200_000
# A connection unused for this long is checked before use.
_IDLE_CHECK_SECONDS = 0.25

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lists (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    enabled     BOOLEAN NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    match_orientations BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('generation', 0), ('entries_generation', 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS thresholds (
    list_id   BIGINT NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    algorithm TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    PRIMARY KEY (list_id, algorithm)
);
CREATE TABLE IF NOT EXISTS confirmed_thresholds (
    list_id   BIGINT NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    algorithm TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    PRIMARY KEY (list_id, algorithm)
);
CREATE TABLE IF NOT EXISTS entries (
    id        BIGSERIAL PRIMARY KEY,
    list_id   BIGINT NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    entry_id  TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    hash      BYTEA NOT NULL,
    label     TEXT NOT NULL DEFAULT '',
    source    TEXT NOT NULL DEFAULT '',
    added_at  DOUBLE PRECISION NOT NULL,
    UNIQUE (list_id, algorithm, hash),
    UNIQUE (list_id, entry_id, algorithm)
);
CREATE TABLE IF NOT EXISTS audit (
    id        BIGSERIAL PRIMARY KEY,
    at        DOUBLE PRECISION NOT NULL,
    actor     TEXT NOT NULL,
    list_name TEXT NOT NULL,
    action    TEXT NOT NULL,
    added     BIGINT NOT NULL DEFAULT 0,
    removed   BIGINT NOT NULL DEFAULT 0,
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_by_list ON audit (list_name, id);
CREATE TABLE IF NOT EXISTS counts (
    list_id   BIGINT NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    algorithm TEXT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (list_id, algorithm)
);
CREATE TABLE IF NOT EXISTS changes (
    generation         BIGINT PRIMARY KEY,
    entries_generation BIGINT NOT NULL,
    at                 DOUBLE PRECISION NOT NULL,
    payload            TEXT NOT NULL
);
"""
_LIST_COLUMNS = "id, name, description, enabled, created_at, updated_at, match_orientations"


class _Connection:
    """One connection used under a lock, opened again after it breaks."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection | None = None
        self._used = 0.0
        self.lock = threading.RLock()

    @contextmanager
    def __call__(self) -> Iterator[psycopg.Connection]:
        with self.lock:
            try:
                yield self._live()
            except psycopg.OperationalError as exc:
                self.close()
                raise StoreUnavailable(f"the PostgreSQL store cannot be reached: {_first_line(exc)}") from exc
            finally:
                self._used = time.monotonic()

    def _live(self) -> psycopg.Connection:
        # A connection idle for a while may have been cut (a database restart): one round trip
        # tells, so the caller's statement does not fail on a connection known to be dead.
        if self._conn is not None and not self._conn.closed and time.monotonic() - self._used > _IDLE_CHECK_SECONDS:
            try:
                self._conn.execute("SELECT 1")
            except psycopg.Error:
                self.close()
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        return self._conn

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except psycopg.Error:
                    pass
            self._conn = None


def _bulk_entry_arrays(db: psycopg.Connection, generation: int, url: str | None = None) -> dict[Algorithm, EntryArrays] | None:
    """Every entry as arrays per algorithm, read without a Python object per row (None: something
    is not in the expected shape, and the caller reads row by row).

    Row by row, psycopg made a Python tuple per row (and COPY, a message per row: ~1 us each in
    psycopg's loop). Here PostgreSQL joins each run of rows of one algorithm into three byteas:
    the hashes, and the row ids and list ids each as 8-byte big-endian integers (int8send, the
    binary wire form of a bigint), so numpy reads them straight. The runs, their checks and the
    halves are the SQLite store's (store._runs_of, _read_in_halves, _assemble_runs).

    ``db`` is in a REPEATABLE READ transaction. With ``url``, a large table's upper half is read
    meanwhile on a second connection that imports ``db``'s snapshot (pg_export_snapshot), so both
    halves are of one state; if that connection fails, ``db`` reads the half itself."""
    try:
        algorithms = [Algorithm(name) for (name,) in db.execute("SELECT DISTINCT algorithm FROM counts WHERE n > 0")]
    except ValueError:
        return None
    total, low, high = db.execute("SELECT count(*), min(id), max(id) FROM entries").fetchone()
    if not total:
        return {}
    ranges = _halves(total, low, high) if url is not None else [(low, high)]
    snapshot = db.execute("SELECT pg_export_snapshot()").fetchone()[0] if len(ranges) > 1 else None

    def read_range(conn: psycopg.Connection, lo: int, hi: int) -> list[_Runs | None]:
        return [_read_runs(conn, algorithm, lo, hi) for algorithm in algorithms]

    def read_elsewhere(lo: int, hi: int) -> list[_Runs | None] | None:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as other, other.transaction():  # type: ignore[arg-type]
                other.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                other.execute(psycopg.sql.SQL("SET TRANSACTION SNAPSHOT {}").format(psycopg.sql.Literal(snapshot)))
                return read_range(other, lo, hi)
        except psycopg.Error as exc:
            log.info("reading the entries on a second connection failed (%s): reading them on one", _first_line(exc))
            return None

    parts = _read_in_halves(ranges, lambda lo, hi: read_range(db, lo, hi), read_elsewhere)
    return _assemble_runs(algorithms, parts, total, generation)


def _read_runs(db: psycopg.Connection, algorithm: Algorithm, low: int, high: int) -> _Runs | None:
    """The rows of one algorithm with ids in [low, high], run by run (None: a run of a wrong shape)."""
    sql = ("SELECT count(*), max(id), string_agg(hash, ''::bytea), string_agg(int8send(id), ''::bytea), "
           "string_agg(int8send(list_id), ''::bytea) FROM (SELECT id, list_id, hash FROM entries "
           "WHERE algorithm = %s AND id >= %s AND id <= %s ORDER BY id LIMIT %s) AS run")

    def fetch(start: int) -> _Run:
        count, top, hashes, row_ids, list_ids = db.execute(
            sql, (algorithm.value, start, high, _BULK_ROWS), binary=True).fetchone()
        return count, top, hashes, _big_endian_ids(row_ids), _big_endian_ids(list_ids)

    return _runs_of(fetch, algorithm.spec.nbytes, low, high)


def _big_endian_ids(data: bytes | None) -> np.ndarray | None:
    """int8send's 8-byte big-endian integers -> int64 (None: no data, or not whole integers)."""
    if data is None or len(data) % 8:
        return None
    return np.frombuffer(data, ">i8").astype(np.int64)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PostgresReader:
    """What a view reads at match time: the generations it was made at and the rows' ids and labels."""

    def __init__(self, store: "PostgresStore") -> None:
        self._store = store
        self.generation, self.entries_generation = store._generations()

    def entries(self, row_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        return self._store._entries(row_ids)

    def changes_since(self, since: int, skip: int = 0) -> FeedBatch:
        batch = self._store._changes_since(since, skip)
        self.generation, self.entries_generation = batch.generation, batch.entries_generation
        return batch

    def close(self) -> None:
        pass


class PostgresStore:
    """Lists and entries in a PostgreSQL database given by a ``postgresql://`` URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._write = _Connection(url)
        self._read = _Connection(url)
        self._listen = _Connection(url)
        self._listening: psycopg.Connection | None = None
        self._labels: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self._labels_lock = threading.Lock()
        with self._write() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            db.execute(_SCHEMA)

    def close(self) -> None:
        for connection in (self._write, self._read, self._listen):
            connection.close()

    # -- lists ---------------------------------------------------------------------------------

    def _list_row(self, db: psycopg.Connection, name: str) -> tuple:
        row = db.execute(f"SELECT {_LIST_COLUMNS} FROM lists WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise ListNotFound(name)
        return row

    def _info(self, db: psycopg.Connection, row: tuple) -> ListInfo:
        list_id = row[0]

        def table(name: str, column: str) -> dict[str, int]:
            return dict(db.execute(f"SELECT algorithm, {column} FROM {name} WHERE list_id = %s", (list_id,)))

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
        with self._write() as db:
            try:
                with self._writing(db):
                    list_id = db.execute(
                        "INSERT INTO lists (name, description, enabled, created_at, updated_at, match_orientations) "
                        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                        (name, description, enabled, now, now, match_orientations),
                    ).fetchone()[0]
                    with db.cursor() as cur:
                        cur.executemany(
                            "INSERT INTO thresholds (list_id, algorithm, threshold) VALUES (%s, %s, %s)",
                            [(list_id, a.value, t) for a, t in merged.items()],
                        )
                        cur.executemany(
                            "INSERT INTO confirmed_thresholds (list_id, algorithm, threshold) VALUES (%s, %s, %s)",
                            [(list_id, a.value, t) for a, t in confirmed.items()],
                        )
                    self._audit(db, actor, name, "create",
                                detail=_describe(description, thresholds, enabled, match_orientations, confirmed))
                    self._bump_generation(db)
            except psycopg.errors.UniqueViolation:
                raise ListExists(name) from None
            return self._info(db, self._list_row(db, name))

    def get_list(self, name: str) -> ListInfo:
        with self._read() as db:
            return self._info(db, self._list_row(db, name))

    def list_lists(self) -> list[ListInfo]:
        with self._read() as db:
            rows = db.execute(f"SELECT {_LIST_COLUMNS} FROM lists ORDER BY name").fetchall()
            return [self._info(db, row) for row in rows]

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
        if description is not None:
            check_description(description)
        if thresholds:
            check_thresholds(thresholds)
        with self._write() as db:
            with self._writing(db):
                list_id = self._list_row(db, name)[0]
                if description is not None:
                    db.execute("UPDATE lists SET description = %s WHERE id = %s", (description, list_id))
                if enabled is not None:
                    db.execute("UPDATE lists SET enabled = %s WHERE id = %s", (enabled, list_id))
                if match_orientations is not None:
                    db.execute("UPDATE lists SET match_orientations = %s WHERE id = %s", (match_orientations, list_id))
                for algorithm, threshold in (thresholds or {}).items():
                    db.execute(
                        "INSERT INTO thresholds (list_id, algorithm, threshold) VALUES (%s, %s, %s) "
                        "ON CONFLICT (list_id, algorithm) DO UPDATE SET threshold = excluded.threshold",
                        (list_id, algorithm.value, threshold),
                    )
                for algorithm, threshold in (confirmed_thresholds or {}).items():
                    db.execute("DELETE FROM confirmed_thresholds WHERE list_id = %s AND algorithm = %s",
                               (list_id, algorithm.value))
                    if threshold:
                        db.execute(
                            "INSERT INTO confirmed_thresholds (list_id, algorithm, threshold) VALUES (%s, %s, %s)",
                            (list_id, algorithm.value, threshold),
                        )
                if thresholds or confirmed_thresholds:
                    after = self._info(db, self._list_row(db, name))
                    check_confirmed_thresholds(after.confirmed_thresholds, after.thresholds)
                db.execute("UPDATE lists SET updated_at = %s WHERE id = %s", (time.time(), list_id))
                self._audit(db, actor, name, "update", detail=_describe(
                    description, thresholds, enabled, match_orientations, confirmed_thresholds))
                self._bump_generation(db)
            return self._info(db, self._list_row(db, name))

    def delete_list(self, name: str, actor: str = UNKNOWN_ACTOR) -> tuple[int, Change]:
        with self._write() as db, self._writing(db):
            list_id = self._list_row(db, name)[0]
            removed = tuple(
                (Algorithm(a), row_id)
                for row_id, a in db.execute("SELECT id, algorithm FROM entries WHERE list_id = %s", (list_id,))
            )
            db.execute("DELETE FROM entries WHERE list_id = %s", (list_id,))
            db.execute("DELETE FROM lists WHERE id = %s", (list_id,))
            self._audit(db, actor, name, "delete", removed=len(removed))
            seq = self._bump_generation(db, entries=bool(removed), change=Change(removed=removed))
        self._forget(r for _, r in removed)
        return len(removed), Change(removed=removed, seq=seq)

    # -- entries -------------------------------------------------------------------------------

    def add_entries(
        self, name: str, entries: Sequence[NewEntry], rejected: Sequence[InvalidEntry] = (),
        actor: str = UNKNOWN_ACTOR,
    ) -> tuple[UploadOutcome, Change]:
        """All or nothing, as SQLiteStore.add_entries."""
        unique, problems = _dedupe(entries)
        problems.extend(rejected)
        seq = 0
        with self._write() as db, self._writing(db):
            list_id = self._list_row(db, name)[0]
            db.execute(
                "CREATE TEMP TABLE staging (k BIGINT PRIMARY KEY, algorithm TEXT, hash BYTEA, entry_id TEXT) "
                "ON COMMIT DROP"
            )
            with db.cursor().copy("COPY staging (k, algorithm, hash, entry_id) FROM STDIN") as copy:
                for k, e in enumerate(unique):
                    copy.write_row((k, e.algorithm.value, e.value, e.entry_id))
            db.execute("ANALYZE staging")
            by_hash = {
                k: (entry_id, label, source)
                for k, entry_id, label, source in db.execute(
                    "SELECT s.k, e.entry_id, e.label, e.source FROM staging s JOIN entries e "
                    "ON e.list_id = %s AND e.algorithm = s.algorithm AND e.hash = s.hash",
                    (list_id,),
                )
            }
            by_id = {
                k for (k,) in db.execute(
                    "SELECT s.k FROM staging s JOIN entries e "
                    "ON e.list_id = %s AND e.algorithm = s.algorithm AND e.entry_id = s.entry_id "
                    "WHERE s.entry_id != ''",
                    (list_id,),
                )
            }
            new, relabel = _plan_upload(unique, by_hash, by_id, problems)
            if problems:
                raise min(problems, key=lambda p: p.line)
            now = time.time()
            rows = _entry_rows(list_id, new, now)
            db.execute(
                "CREATE TEMP TABLE fresh (list_id BIGINT, entry_id TEXT, algorithm TEXT, hash BYTEA, label TEXT, "
                "source TEXT, added_at DOUBLE PRECISION, position BIGSERIAL) ON COMMIT DROP"
            )
            with db.cursor().copy(
                "COPY fresh (list_id, entry_id, algorithm, hash, label, source, added_at) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            db.execute(
                "INSERT INTO entries (list_id, entry_id, algorithm, hash, label, source, added_at) "
                "SELECT list_id, entry_id, algorithm, hash, label, source, added_at FROM fresh ORDER BY position"
            )
            self._count(db, list_id, Counter(e.algorithm.value for _, e in new))
            if relabel:
                with db.cursor() as cur:
                    cur.executemany(
                        "UPDATE entries SET label = %s, source = %s WHERE list_id = %s AND algorithm = %s AND hash = %s",
                        [(e.label, e.source, list_id, e.algorithm.value, e.value) for e in relabel],
                    )
            added, relabelled = _stored(list_id, db.execute(
                "SELECT s.k, e.id, e.algorithm, e.hash, e.entry_id, e.label FROM staging s JOIN entries e "
                "ON e.list_id = %s AND e.algorithm = s.algorithm AND e.hash = s.hash",
                (list_id,),
            ), new, relabel)
            if new or relabel:
                db.execute("UPDATE lists SET updated_at = %s WHERE id = %s", (now, list_id))
                self._audit(db, actor, name, "load", added=len(new), detail=f"{len(relabel)} relabelled" if relabel else "")
                seq = self._bump_generation(db, entries=bool(new), change=Change(tuple(added), tuple(relabelled)))
        self._remember(added)
        self._remember(relabelled)
        outcome = UploadOutcome(received=len(entries), added=len(new), unchanged=len(entries) - len(new))
        return outcome, Change(added=tuple(added), relabelled=tuple(relabelled), seq=seq)

    def remove_entries(
        self, name: str, entry_ids: Sequence[str], hashes: Sequence[Hash], actor: str = UNKNOWN_ACTOR
    ) -> tuple[int, Change]:
        seq = 0
        with self._write() as db, self._writing(db):
            list_id = self._list_row(db, name)[0]
            rows: dict[int, Algorithm] = {}
            if entry_ids:
                for row_id, a in db.execute(
                    "SELECT id, algorithm FROM entries WHERE list_id = %s AND entry_id = ANY(%s)",
                    (list_id, list(entry_ids)),
                ):
                    rows[row_id] = Algorithm(a)
            for h in hashes:
                for row_id, a in db.execute(
                    "SELECT id, algorithm FROM entries WHERE list_id = %s AND algorithm = %s AND hash = %s",
                    (list_id, h.algorithm.value, h.value),
                ):
                    rows[row_id] = Algorithm(a)
            if rows:
                db.execute("DELETE FROM entries WHERE id = ANY(%s)", (list(rows),))
                self._count(db, list_id, Counter(a.value for a in rows.values()), sign=-1)
                db.execute("UPDATE lists SET updated_at = %s WHERE id = %s", (time.time(), list_id))
                self._audit(db, actor, name, "remove", removed=len(rows))
                seq = self._bump_generation(db, entries=True,
                                            change=Change(removed=tuple((a, r) for r, a in rows.items())))
        self._forget(rows)
        return len(rows), Change(removed=tuple((a, r) for r, a in rows.items()), seq=seq)

    def lookup_entries(
        self, name: str, hashes: Sequence[Hash], entry_ids: Sequence[str] = ()
    ) -> tuple[dict[tuple[Algorithm, bytes], str], dict[str, dict[Algorithm, bytes]]]:
        """As SQLiteStore.lookup_entries: the entry id of each listed hash, and every hash of
        those entries and of ``entry_ids``."""
        by_hash: dict[tuple[Algorithm, bytes], str] = {}
        held: dict[str, dict[Algorithm, bytes]] = {}
        with self._read() as db:
            list_id = self._list_row(db, name)[0]
            for h in hashes:
                row = db.execute(
                    "SELECT entry_id FROM entries WHERE list_id = %s AND algorithm = %s AND hash = %s",
                    (list_id, h.algorithm.value, h.value),
                ).fetchone()
                if row is not None:
                    by_hash[(h.algorithm, h.value)] = row[0]
            for entry_id in dict.fromkeys([*by_hash.values(), *entry_ids]):
                held[entry_id] = {
                    Algorithm(a): bytes(value)
                    for a, value in db.execute(
                        "SELECT algorithm, hash FROM entries WHERE list_id = %s AND entry_id = %s", (list_id, entry_id)
                    )
                }
        return by_hash, held

    def iter_entries(self) -> Iterator[StoredEntry]:
        with self._read() as db:
            rows = db.execute(
                "SELECT id, list_id, algorithm, hash, entry_id, label FROM entries ORDER BY id"
            ).fetchall()
        for row_id, list_id, algorithm, value, entry_id, label in rows:
            yield StoredEntry(row_id, list_id, Algorithm(algorithm), bytes(value), entry_id, label)

    def scan_entries(self) -> dict[Algorithm, EntryArrays]:
        """Every entry as arrays per algorithm, in row id order, from one consistent snapshot."""
        with self._read() as db, db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            generation = db.execute("SELECT value FROM meta WHERE key = 'entries_generation'").fetchone()[0]
            arrays = _bulk_entry_arrays(db, generation, self.url)
            if arrays is not None:
                return arrays
            with db.cursor(name="hashmatch_scan") as cursor:  # a shape the binary read does not take
                cursor.itersize = 65536
                cursor.execute("SELECT id, list_id, algorithm, hash FROM entries ORDER BY id")
                return _entry_arrays(cursor, generation)

    def reader(self) -> PostgresReader:
        return PostgresReader(self)

    def audit_trail(self, list_name: str | None = None, limit: int = 1000) -> list[AuditRecord]:
        where, args = ("WHERE list_name = %s", (list_name,)) if list_name is not None else ("", ())
        with self._read() as db:
            rows = db.execute(
                f"SELECT id, at, actor, list_name, action, added, removed, detail FROM audit {where} "
                "ORDER BY id DESC LIMIT %s",
                (*args, limit),
            ).fetchall()
        return [AuditRecord(i, _utc(at), actor, name, action, added, removed, detail)
                for i, at, actor, name, action, added, removed, detail in rows]

    def generation(self) -> int:
        return self._generations()[0]

    def entries_generation(self) -> int:
        return self._generations()[1]

    # -- the change feed -----------------------------------------------------------------------

    def wait_for_change(self, timeout: float) -> None:
        """Blocks until another process commits a write (NOTIFY) or ``timeout`` passes."""
        with self._listen() as db:
            if self._listening is not db:  # a new connection (first use, or after a reconnect)
                db.execute(f"LISTEN {CHANNEL}")
                self._listening = db
            for _ in db.notifies(timeout=timeout, stop_after=1):
                break

    def _changes_since(self, since: int, skip: int) -> FeedBatch:
        with self._read() as db, db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            generation, entries_generation = self._generations_in(db)
            if since >= generation:
                return FeedBatch(since, generation, entries_generation)
            records = [
                FeedRecord.decode(g, payload) for g, payload in db.execute(
                    "SELECT generation, payload FROM changes WHERE generation > %s AND generation <= %s "
                    "ORDER BY generation", (since, generation),
                )
            ]
            if len(records) != generation - since:
                return FeedBatch(since, generation, entries_generation, complete=False)

            def read_range(low: int, high: int) -> list[StoredEntry]:
                return [StoredEntry(r, lst, Algorithm(a), bytes(v), e, label) for r, lst, a, v, e, label in db.execute(
                    "SELECT id, list_id, algorithm, hash, entry_id, label FROM entries WHERE id BETWEEN %s AND %s",
                    (low, high),
                )]

            added, relabelled, removed = collect(records, skip, read_range)
        self._forget(r for _, r in removed)
        self._remember(added)
        self._remember(relabelled)
        return FeedBatch(since, generation, entries_generation, True, len(records), added, relabelled, removed)

    # -- plumbing ------------------------------------------------------------------------------

    def _generations(self) -> tuple[int, int]:
        with self._read() as db:
            return self._generations_in(db)

    @staticmethod
    def _generations_in(db: psycopg.Connection) -> tuple[int, int]:
        values = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'entries_generation')"))
        return values["generation"], values["entries_generation"]

    def _entries(self, row_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """row id -> (entry id, label), from the database; from the cache while it is away."""
        try:
            with self._read() as db:
                out = {
                    row_id: (entry_id, label)
                    for row_id, entry_id, label in db.execute(
                        "SELECT id, entry_id, label FROM entries WHERE id = ANY(%s)", (list(row_ids),)
                    )
                }
        except StoreUnavailable:
            with self._labels_lock:
                known = {r: self._labels[r] for r in row_ids if r in self._labels}
            missing = len(row_ids) - len(known)
            if missing:
                # Still a match: report it with what is known rather than drop it.
                log.warning("store unreachable: %d matched row(s) reported without entry id and label", missing)
            return {r: known.get(r, ("", "")) for r in row_ids}
        with self._labels_lock:
            for row_id, names in out.items():
                self._labels[row_id] = names
                self._labels.move_to_end(row_id)
            while len(self._labels) > LABEL_CACHE_ROWS:
                self._labels.popitem(last=False)
        return out

    def _remember(self, rows: Sequence[StoredEntry]) -> None:
        with self._labels_lock:
            for row in rows[-LABEL_CACHE_ROWS:]:
                self._labels[row.row_id] = (row.entry_id, row.label)
                self._labels.move_to_end(row.row_id)
            while len(self._labels) > LABEL_CACHE_ROWS:
                self._labels.popitem(last=False)

    def _forget(self, row_ids) -> None:
        with self._labels_lock:
            for row_id in row_ids:
                self._labels.pop(row_id, None)

    @contextmanager
    def _writing(self, db: psycopg.Connection) -> Iterator[None]:
        """One write transaction, serialised with every other replica's writes."""
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield

    def _bump_generation(self, db: psycopg.Connection, entries: bool = False, change: Change | None = None) -> int:
        generation = db.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'generation' RETURNING value"
        ).fetchone()[0]
        if entries:
            db.execute("UPDATE meta SET value = value + 1 WHERE key = 'entries_generation'")
        entries_generation = db.execute("SELECT value FROM meta WHERE key = 'entries_generation'").fetchone()[0]
        change = change or Change()
        now = time.time()
        db.execute(
            "INSERT INTO changes (generation, entries_generation, at, payload) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (generation) DO UPDATE SET payload = excluded.payload, at = excluded.at, "
            "entries_generation = excluded.entries_generation",
            (generation, entries_generation, now,
             encode((e.row_id for e in change.added), (e.row_id for e in change.relabelled), change.removed)),
        )
        if generation % PRUNE_EVERY == 0:
            db.execute("DELETE FROM changes WHERE at < %s AND generation < %s", (now - RETENTION_SECONDS, generation))
        # Delivered at commit, to every replica LISTENing.
        db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(generation)))
        return generation

    def _count(self, db: psycopg.Connection, list_id: int, added: Counter, sign: int = 1) -> None:
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO counts (list_id, algorithm, n) VALUES (%s, %s, %s) "
                "ON CONFLICT (list_id, algorithm) DO UPDATE SET n = counts.n + excluded.n",
                [(list_id, algorithm, sign * n) for algorithm, n in added.items() if n],
            )

    def _audit(self, db: psycopg.Connection, actor: str, list_name: str, action: str, added: int = 0,
               removed: int = 0, detail: str = "") -> None:
        db.execute(
            "INSERT INTO audit (at, actor, list_name, action, added, removed, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (time.time(), actor or UNKNOWN_ACTOR, list_name, action, added, removed, detail),
        )
