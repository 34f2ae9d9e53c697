"""Shared fixtures: a real hashmatch server on an ephemeral loopback port, on a real SQLite file."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED = ROOT.parent / "shared"

# tests/ is not a package; let test modules import the helpers beside them (imagegen).
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@dataclass
class RunningServer:
    address: str
    port: int
    data_dir: Path
    config: Any
    server: Any


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with config overrides: ``server_factory(max_pixels=1000)``; stopped at teardown."""
    from hashmatch.server.app import ServerConfig, create_server

    started: list[RunningServer] = []

    def start(data_dir: Path | None = None, **overrides: Any) -> RunningServer:
        # The known-answer self-test has tests of its own; skipping it keeps each server start fast.
        overrides.setdefault("selftest", False)
        # Most tests are about matching, not about keys: their servers run without auth.
        # The security tests (tests/test_security*.py, test_auth*.py, test_tls*.py) pass auth=True.
        overrides.setdefault("auth", False)
        config = replace(ServerConfig(data_dir=data_dir or tmp_path / f"data{len(started)}"), **overrides)
        srv, port = create_server("127.0.0.1:0", config)
        srv.start()
        running = RunningServer(f"127.0.0.1:{port}", port, config.data_dir, config, srv)
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.server.stop(grace=None)


@pytest.fixture
def server(server_factory: Callable[..., RunningServer]) -> RunningServer:
    return server_factory()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster on loopback for the whole session (tests/pgcluster.py);
    skips the test, saying why, where PostgreSQL or psycopg is not installed."""
    from pgcluster import Cluster, find_binaries

    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'hashmatch[server]')")
    binaries, why = find_binaries()
    if binaries is None:
        pytest.skip(why)
    try:
        cluster = Cluster(binaries)
    except RuntimeError as exc:
        pytest.skip(f"cannot start a throwaway PostgreSQL: {exc}")
    yield cluster
    cluster.destroy()


STORE_KINDS = ("sqlite", "postgresql")


@pytest.fixture(params=STORE_KINDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    """``make_store()``: a store on this test's own database, for each kind of store (every call
    opens the same database again, as a restart would)."""
    if request.param == "sqlite":
        from hashmatch.index import SQLiteStore

        return lambda: SQLiteStore(tmp_path / "store.sqlite3")
    from hashmatch.index.postgres_store import PostgresStore

    url = request.getfixturevalue("pg_cluster").database()
    return lambda: PostgresStore(url)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (shared test data lives beside the project)")
    return SHARED
