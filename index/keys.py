"""API keys: who may call the service, in which roles, until when. No gRPC here.

A key is ``hm_<id>_<secret>``: the id (12 hex digits) is public and finds the row; the secret
(256 random bits, 64 hex digits) is verified, never scanned for. The store keeps only a per-key
salt and HMAC-SHA256(salt, secret).

Why HMAC-SHA256 and not scrypt or PBKDF2: slow hashes exist to make guessing low-entropy
passwords expensive. A 256-bit random secret cannot be guessed however fast the hash is, so a
slow hash would buy nothing but a CPU cost on every request (a lever for denial of service).
The per-key salt still makes digests of equal secrets differ and rules out precomputed tables.

The keys live in their own table of the data folder's SQLite file, on a connection of their own,
so the list store and the key store can change independently. Replicas sharing a PostgreSQL store
share their keys too: ``KeyStore(url=...)`` keeps the same table there (same salted HMAC, roles,
expiry, revocation), and remembers the keys it verified so a replica that loses the database
still recognises them (a revocation reaches it when the database is back).

Every call presents its key, so the SQLite store remembers the keys it verified (by the SHA-256
of the key as presented, never the key itself) for as long as the file is unchanged: SQLite's
``PRAGMA data_version`` (one cheap statement) changes whenever another connection, in this
process or another (the offline ``keys`` command, a worker), commits to the file, and this
store's own writes forget everything at once, so a revocation counts from the very next call.
Expiry is still compared with the clock on every call.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .errors import StoreUnavailable

ROLES = ("match", "curate", "admin")
KEY_PREFIX = "hm_"
_ID_HEX = 12
_SECRET_BYTES = 32
# The whole key, for cheap rejection before any lookup: anything else is not one of ours.
_KEY_PATTERN = re.compile(rf"^hm_([0-9a-f]{{{_ID_HEX}}})_([0-9a-f]{{{_SECRET_BYTES * 2}}})$")
KEY_LENGTH = len(KEY_PREFIX) + _ID_HEX + 1 + _SECRET_BYTES * 2
MAX_NAME_LENGTH = 100
# The first start's key holds every role, so the embedded default works end to end with one key.
BOOTSTRAP_NAME = "admin"
BOOTSTRAP_ROLES = frozenset(ROLES)
ADMIN_KEY_FILE = "admin.key"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id     TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    roles      TEXT NOT NULL,
    salt       BLOB NOT NULL,
    digest     BLOB NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL,
    created_by TEXT NOT NULL DEFAULT ''
);
-- A name names one key at a time: revoke the old key before reusing its name.
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
"""
_COLUMNS = "key_id, name, roles, created_at, expires_at, revoked_at, created_by"
_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id     TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    roles      TEXT NOT NULL,
    salt       BYTEA NOT NULL,
    digest     BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    created_by TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
"""
# Advisory lock keys (any constants): schema creation, and SQLite's BEGIN IMMEDIATE.
_PG_SCHEMA_LOCK = 0x686B6579
_PG_WRITE_LOCK = 0x686B657A


class ApiKeyError(Exception):
    """Base of the key store's errors; messages never contain a secret."""


class InvalidKeySpec(ApiKeyError, ValueError):
    """A name, role or expiry that cannot be stored."""


class KeyNotFound(ApiKeyError):
    def __init__(self, selector: str) -> None:
        # A whole key given as the selector (a leaked key pasted to revoke it) is never echoed.
        super().__init__(f"no API key has the id or name {redact_keys(selector)!r}")
        self.selector = redact_keys(selector)  # as shown to the caller: never a key's secret


class KeyNameTaken(ApiKeyError):
    def __init__(self, name: str) -> None:
        super().__init__(f"an active API key is already named {name!r}; revoke it first or pick another name")
        self.name = name


class LastAdminKey(ApiKeyError):
    """Revoking it would leave no active admin key (only the offline command may do that)."""


class AuthenticationFailed(ApiKeyError):
    """The presented key is not a valid key. The message is safe to send to the caller."""


@dataclass(frozen=True)
class ApiKeyInfo:
    key_id: str
    name: str
    roles: frozenset[str]
    created: datetime
    expires: datetime | None
    revoked: datetime | None
    created_by: str

    def state(self, now: float | None = None) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires.timestamp() <= (time.time() if now is None else now):
            return "expired"
        return "active"


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``secret`` is the whole key, shown this once and never stored."""

    info: ApiKeyInfo
    secret: str


# A whole key anywhere in a text: what redact_keys() hides before the text reaches a log or a reply.
# Any length from 8 hex digits: a key cut short or run on when pasted still hides its secret.
_KEY_IN_TEXT = re.compile(rf"hm_([0-9a-f]{{{_ID_HEX}}})_[0-9a-f]{{8,}}", re.IGNORECASE)


def redact_keys(text: str) -> str:
    """``text`` with the secret of any whole API key in it replaced (the public id stays)."""
    return _KEY_IN_TEXT.sub(lambda found: f"hm_{found.group(1)}_<secret hidden>", text)


def parse_key(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    found = _KEY_PATTERN.match(token)
    return (found.group(1), found.group(2)) if found else None


def check_roles(roles: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(r.strip().lower() for r in roles)
    if not wanted:
        raise InvalidKeySpec(f"a key needs at least one role ({', '.join(ROLES)})")
    unknown = sorted(wanted - set(ROLES))
    if unknown:
        raise InvalidKeySpec(f"unknown role {unknown[0]!r}: roles are {', '.join(ROLES)}")
    return wanted


def check_name(name: str) -> str:
    if not name or not name.strip():
        raise InvalidKeySpec("a key needs a name (it appears in the audit log)")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidKeySpec(f"a key name has at most {MAX_NAME_LENGTH} characters")
    if any(not ch.isprintable() for ch in name):
        raise InvalidKeySpec("a key name must be printable text (it appears in the audit log)")
    return name


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


# Compared against when the id is unknown, so an unknown id costs what a wrong secret costs.
_DUMMY_SALT = secrets.token_bytes(16)
_DUMMY_DIGEST = _digest(_DUMMY_SALT, "0" * (_SECRET_BYTES * 2))


class KeyStore:
    """The API keys of one data folder. Thread-safe; one SQLite connection of its own."""

    def __init__(self, path: Path | None = None, *, url: str | None = None) -> None:
        """The keys in the SQLite file at ``path``, or in the PostgreSQL database at ``url``."""
        self.path = path
        self._lock = threading.Lock()
        # Keys verified here, by id: what a replica still accepts while its database is away.
        self._verified: dict[str, tuple] = {}
        # SQLite only: keys verified while (the file's data_version, this store's own write
        # count) was _checked_version, by the SHA-256 of the key as presented -> (info, expiry
        # timestamp). Only verified keys get in, so it holds at most one entry per key.
        self._checked: dict[bytes, tuple[ApiKeyInfo, float | None]] = {}
        self._checked_version: tuple[int, int] | None = None
        self._own_writes = 0
        self._remembers = url is None
        if url is not None:
            self._db = _PostgresKeys(url)
            return
        assert path is not None, "KeyStore needs a path or a url"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        # The list store may hold the write lock for a big upload: wait for it rather than fail.
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reads ----------------------------------------------------------------------------------

    def authenticate(self, token: str, now: float | None = None, digest: bytes | None = None) -> ApiKeyInfo:
        """The key's info if ``token`` is a valid, active key; else AuthenticationFailed.

        Only a caller who knows the secret learns that a key is revoked or expired; a wrong or
        unknown key gets the same answer in about the same time. ``digest``: the SHA-256 of
        ``token``, when the caller has it already.
        """
        if not self._remembers:
            return self._verify(token, now)
        if digest is None:
            digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            version = (self._db.execute("PRAGMA data_version").fetchone()[0], self._own_writes)
            if version != self._checked_version:
                # Someone else committed to the file since: any key may have been revoked.
                self._checked.clear()
                self._checked_version = version
            known = self._checked.get(digest)
        if known is not None:
            info, expires = known
            if expires is not None and expires <= (time.time() if now is None else now):
                raise AuthenticationFailed(f"the API key {info.key_id} ({info.name}) is expired")
            return info
        info = self._verify(token, now)
        with self._lock:
            # Remembered only if nothing was committed since the version read before the lookup:
            # the row read then is at least as new as that version.
            if self._checked_version == version:
                expires = info.expires.timestamp() if info.expires is not None else None
                self._checked[digest] = (info, expires)
        return info

    def _forget_checked(self) -> None:
        """Before this store's own writes (under the lock, held until they commit), which do not
        change its own connection's data_version; a verification begun before is not remembered."""
        self._own_writes += 1
        self._checked.clear()
        self._checked_version = None

    def _verify(self, token: str, now: float | None) -> ApiKeyInfo:
        """authenticate() against the stored row: the lookup and the salted HMAC."""
        parsed = parse_key(token)
        if parsed is None:
            raise AuthenticationFailed("the API key is malformed (expected hm_<id>_<secret>)")
        key_id, secret = parsed
        with self._lock:
            try:
                row = self._db.execute(
                    f"SELECT {_COLUMNS}, salt, digest FROM api_keys WHERE key_id = ?", (key_id,)
                ).fetchone()
            except StoreUnreachable:
                # Shared keys, database away: only a key verified before is recognised; any
                # other may well be valid, so the caller hears "unavailable", not "invalid".
                row = self._verified.get(key_id)
                if row is None:
                    raise
            else:
                if row is not None and isinstance(self._db, _PostgresKeys):
                    self._verified[key_id] = tuple(row)
        salt, expected = (row[-2], row[-1]) if row else (_DUMMY_SALT, _DUMMY_DIGEST)
        matches = hmac.compare_digest(_digest(salt, secret), expected)
        if row is None or not matches:
            raise AuthenticationFailed("the API key is not valid")
        info = self._info(row[:-2])
        state = info.state(now)
        if state != "active":
            raise AuthenticationFailed(f"the API key {info.key_id} ({info.name}) is {state}")
        return info

    def get(self, selector: str) -> ApiKeyInfo:
        """A key by id, or the active key of that name (else the latest of that name); a whole
        key (``hm_<id>_<secret>``, e.g. a leaked one pasted to revoke it) names the key of its id."""
        parsed = parse_key(selector.strip())
        if parsed is not None:
            selector = parsed[0]
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (selector,)).fetchone()
            if row is None:
                row = self._db.execute(
                    f"SELECT {_COLUMNS} FROM api_keys WHERE name = ? "
                    "ORDER BY revoked_at IS NOT NULL, created_at DESC LIMIT 1",
                    (selector,),
                ).fetchone()
        if row is None:
            raise KeyNotFound(selector)
        return self._info(row)

    def list(self, include_revoked: bool = False) -> list[ApiKeyInfo]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id").fetchall()
        return [self._info(r) for r in rows]

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM api_keys").fetchone()[0]

    # -- writes ---------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        roles: Iterable[str],
        expires: datetime | None = None,
        created_by: str = "",
    ) -> NewKey:
        name = check_name(name)
        wanted = check_roles(roles)
        now = time.time()
        if expires is not None and expires.timestamp() <= now:
            raise InvalidKeySpec("the expiry must be in the future")
        with self._lock:
            self._forget_checked()
            return self._insert(name, wanted, expires, created_by, now)

    def revoke(self, selector: str, keep_an_admin: bool = True) -> ApiKeyInfo:
        """Revoke a key by id or active name; revoking twice is harmless (keeps the first time)."""
        info = self.get(selector)
        with self._lock:
            self._forget_checked()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if keep_an_admin and info.revoked is None and "admin" in info.roles:
                    others = [
                        k for k in self._active_rows() if k.key_id != info.key_id and "admin" in k.roles
                    ]
                    if not others:
                        raise LastAdminKey(
                            f"{info.key_id} ({info.name}) is the last active admin key; create another "
                            "admin key first, or revoke it offline (hashmatch keys revoke --data-dir)"
                        )
                self._db.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                    (time.time(), info.key_id),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return self.get(info.key_id)

    def bootstrap_admin(self, key_file: Path) -> NewKey | None:
        """On a store with no keys at all, create the first admin key and write it to ``key_file``.

        Runs in one write transaction, so several processes starting on one data folder create
        one key between them. A store whose keys were all revoked gets no new key: that would
        undo the revocation. The file is the only copy; it is created readable by its owner only.
        """
        with self._lock:
            self._forget_checked()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._db.execute("SELECT count(*) FROM api_keys").fetchone()[0]:
                    self._db.execute("ROLLBACK")
                    return None
                new = self._insert(BOOTSTRAP_NAME, BOOTSTRAP_ROLES, None, "first start", time.time())
                write_secret_file(key_file, new.secret)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return new

    # -- plumbing -------------------------------------------------------------------------------

    def _insert(
        self,
        name: str,
        roles: frozenset[str],
        expires: datetime | None,
        created_by: str,
        now: float,
    ) -> NewKey:
        key_id = secrets.token_hex(_ID_HEX // 2)
        secret = secrets.token_hex(_SECRET_BYTES)
        salt = secrets.token_bytes(16)
        try:
            self._db.execute(
                "INSERT INTO api_keys (key_id, name, roles, salt, digest, created_at, expires_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    name,
                    ",".join(sorted(roles)),
                    salt,
                    _digest(salt, secret),
                    now,
                    None if expires is None else expires.timestamp(),
                    created_by,
                ),
            )
        except sqlite3.IntegrityError:
            raise KeyNameTaken(name) from None
        info = ApiKeyInfo(key_id, name, roles, _utc(now), _utc(expires.timestamp()) if expires else None, None,
                          created_by)
        return NewKey(info, f"{KEY_PREFIX}{key_id}_{secret}")

    def _active_rows(self) -> list[ApiKeyInfo]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE revoked_at IS NULL").fetchall()
        return [i for i in map(self._info, rows) if i.state() == "active"]

    @staticmethod
    def _info(row: tuple) -> ApiKeyInfo:
        key_id, name, roles, created, expires, revoked, created_by = row
        return ApiKeyInfo(
            key_id, name, frozenset(roles.split(",")), _utc(created), _utc(expires), _utc(revoked), created_by
        )


class StoreUnreachable(ApiKeyError, StoreUnavailable):
    """The shared (PostgreSQL) key store cannot be reached."""


class _PostgresKeys:
    """The statements KeyStore runs, on PostgreSQL: ``?`` placeholders become ``%s``; SQLite's
    ``BEGIN IMMEDIATE`` (one writer at a time) becomes a transaction holding an advisory lock; a
    unique violation is raised as sqlite3.IntegrityError, as KeyStore expects. Reconnects when
    the connection broke; raises StoreUnreachable while it cannot."""

    def __init__(self, url: str) -> None:
        import psycopg  # only a server with a PostgreSQL store needs it

        self._psycopg = psycopg
        self._url = url
        self._conn = None
        self.execute("BEGIN IMMEDIATE")
        try:
            self._connection().execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
            self._connection().execute(_PG_SCHEMA)
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def _connection(self):
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = self._psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            except self._psycopg.OperationalError as exc:
                raise StoreUnreachable("the PostgreSQL key store cannot be reached") from exc
        return self._conn

    def execute(self, sql: str, args: tuple = ()):
        psycopg = self._psycopg
        try:
            if sql == "BEGIN IMMEDIATE":
                conn = self._connection()
                conn.execute("BEGIN")
                return conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_WRITE_LOCK,))
            conn = self._connection()
            idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            try:
                return conn.execute(sql.replace("?", "%s"), args)
            except psycopg.OperationalError:
                if not idle:
                    raise
                # Outside a transaction nothing was done: the connection may just have been cut
                # (a database restart), so try once more on a new one.
                self.close()
                return self._connection().execute(sql.replace("?", "%s"), args)
        except psycopg.errors.UniqueViolation as exc:
            raise sqlite3.IntegrityError(str(exc).splitlines()[0]) from None
        except psycopg.OperationalError as exc:
            self.close()
            raise StoreUnreachable("the PostgreSQL key store cannot be reached") from exc

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except self._psycopg.Error:
                pass
        self._conn = None


def write_secret_file(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` readable and writable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # O_EXCL and the mode at creation: the secret is never in a file others could open.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
