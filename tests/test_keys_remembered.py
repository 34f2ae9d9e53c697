"""The SQLite key store remembers verified keys between calls, and forgets them the moment anything
could have changed them: a revocation by another connection or process (the offline CLI), its own
writes, and expiry, which is compared with the clock on every call."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hashmatch.index import SQLiteStore
from hashmatch.index.keys import AuthenticationFailed, KeyStore


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "hashmatch.sqlite3"


def test_a_revocation_through_another_connection_counts_on_the_next_call(path: Path) -> None:
    serving, offline = KeyStore(path), KeyStore(path)
    try:
        new = serving.create("pipeline", ["match"])
        for _ in range(3):  # verified, then answered from memory
            assert serving.authenticate(new.secret).key_id == new.info.key_id
        offline.revoke(new.info.key_id)
        with pytest.raises(AuthenticationFailed, match="revoked"):
            serving.authenticate(new.secret)
    finally:
        serving.close()
        offline.close()


def test_a_revocation_by_another_process_counts_on_the_next_call(path: Path) -> None:
    keys = KeyStore(path)
    try:
        new = keys.create("pipeline", ["match"])
        assert keys.authenticate(new.secret).name == "pipeline"
        code = (
            "import sys; from pathlib import Path; from hashmatch.index.keys import KeyStore; "
            "k = KeyStore(Path(sys.argv[1])); k.revoke(sys.argv[2]); k.close()"
        )
        subprocess.run([sys.executable, "-c", code, str(path), new.info.key_id], check=True, timeout=60)
        with pytest.raises(AuthenticationFailed, match="revoked"):
            keys.authenticate(new.secret)
    finally:
        keys.close()


def test_its_own_revocation_counts_on_the_next_call(path: Path) -> None:
    keys = KeyStore(path)
    try:
        keep = keys.create("keep", ["match"])
        gone = keys.create("gone", ["match"])
        assert keys.authenticate(gone.secret).name == "gone"
        assert keys.authenticate(keep.secret).name == "keep"
        keys.revoke("gone")
        with pytest.raises(AuthenticationFailed, match="revoked"):
            keys.authenticate(gone.secret)
        assert keys.authenticate(keep.secret).name == "keep"
    finally:
        keys.close()


def test_expiry_is_checked_on_every_call(path: Path) -> None:
    keys = KeyStore(path)
    try:
        expires = datetime.now(timezone.utc) + timedelta(hours=1)
        new = keys.create("short-lived", ["match"], expires=expires)
        assert keys.authenticate(new.secret).name == "short-lived"
        assert keys.authenticate(new.secret, now=expires.timestamp() - 1).name == "short-lived"
        with pytest.raises(AuthenticationFailed, match="expired"):
            keys.authenticate(new.secret, now=expires.timestamp())
    finally:
        keys.close()


def test_a_wrong_secret_is_refused_even_right_after_the_right_one(path: Path) -> None:
    keys = KeyStore(path)
    try:
        new = keys.create("pipeline", ["match"])
        assert keys.authenticate(new.secret).name == "pipeline"
        wrong = new.secret[:-1] + ("0" if new.secret[-1] != "0" else "1")
        with pytest.raises(AuthenticationFailed, match="not valid"):
            keys.authenticate(wrong)
        with pytest.raises(AuthenticationFailed, match="malformed"):
            keys.authenticate(new.secret + "0")
    finally:
        keys.close()


def test_writes_to_the_lists_in_the_same_file_leave_keys_working(path: Path) -> None:
    keys = KeyStore(path)
    store = SQLiteStore(path)
    try:
        new = keys.create("pipeline", ["match"])
        assert keys.authenticate(new.secret).name == "pipeline"
        store.create_list("csam", "", {}, True)
        assert keys.authenticate(new.secret).name == "pipeline"
    finally:
        store.close()
        keys.close()


def test_remembering_makes_a_repeat_check_cheaper(path: Path) -> None:
    """What the memory is for: a repeat call skips the row read and the salted HMAC."""
    keys = KeyStore(path)
    try:
        new = keys.create("pipeline", ["match"])
        keys.authenticate(new.secret)

        def best(check) -> float:
            times = []
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(300):
                    check()
                times.append(time.perf_counter() - start)
            return min(times)

        remembered = best(lambda: keys.authenticate(new.secret))
        verified = best(lambda: keys._verify(new.secret, None))
        assert remembered < verified, (remembered, verified)
    finally:
        keys.close()
