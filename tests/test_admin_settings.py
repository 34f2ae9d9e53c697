"""AdminService.GetSettings over a real server: an admin key reads the effective settings the server
was started with (flags and config, never hard-coded values, never a secret); other roles and
anonymous callers are refused; the SDK (sync and async) and the CLI (table and --json) show them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from authkit import ServerProcess, admin_key, bearer, new_key, rpc_error, secure_server
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hashmatch import __version__
from hashmatch.client import AsyncClient, Client, PermissionDenied, ServerSettings, Unauthenticated, Unavailable
from hashmatch.client.cli import main as cli_main
from hashmatch.hashing.algorithms import Algorithm
from hashmatch.server.app import ServerConfig, create_server, open_lists
from hashmatch.server.hashing_slots import default_slots
from hashmatch.server.limits import Limits
from hashmatch.v1 import admin_pb2, admin_pb2_grpc, hashes_pb2

# Every value differs from ServerConfig's and Limits' defaults, so a hard-coded answer fails.
LIMITS = Limits(
    match_requests_per_second=7.5, match_request_burst=11.0, match_bytes_per_second=3 * 1024 * 1024,
    match_bytes_burst=5 * 1024 * 1024, max_concurrent_per_key=3, max_upload_entries=4321, max_lists=17,
)
OVERRIDES: dict[str, Any] = dict(
    max_pixels=1_234_567, max_message_bytes=5 * 1024 * 1024, log_hashes=True, fast=True, match_regions=False,
    threads=5, hashing_slots=3, workers=2, reflection=False, selftest_interval_seconds=42.5, grace_seconds=2.5,
    follow_interval_seconds=0.25, max_staleness_seconds=90.0, max_concurrent_rpcs=77, max_query_hashes=99,
    limits=LIMITS,
)
DEFAULT_THRESHOLDS = {Algorithm.PDQ: 31, Algorithm.PHASH: 10, Algorithm.DHASH: 10, Algorithm.AHASH: 10,
                      Algorithm.WHASH: 10, Algorithm.MD5: 0, Algorithm.SHA1: 0, Algorithm.SHA256: 0}


def get_settings_raw(address: str, key: str | None) -> admin_pb2.GetSettingsResponse:
    with grpc.insecure_channel(address) as channel:
        return admin_pb2_grpc.AdminServiceStub(channel).GetSettings(
            admin_pb2.GetSettingsRequest(), metadata=bearer(key) if key else (), timeout=10)


def assert_overrides(s: ServerSettings) -> None:
    assert s.version == __version__
    assert s.store == "sqlite"
    assert (s.auth, s.tls, s.client_certificate_required, s.client_certificate_roles) == (True, False, False, 0)
    assert (s.reflection, s.workers, s.hashing_slots, s.threads) == (False, 2, 3, 5)
    assert (s.max_pixels, s.max_message_bytes) == (1_234_567, 5 * 1024 * 1024)
    assert (s.fast, s.match_regions, s.log_hashes, s.selftest) == (True, False, True, False)
    assert (s.selftest_interval_seconds, s.grace_seconds, s.follow_interval_seconds, s.max_staleness_seconds) == (
        42.5, 2.5, 0.25, 90.0)
    assert (s.metrics, s.health_port) == (False, False)
    limits = s.limits
    assert (limits.match_requests_per_second, limits.match_request_burst) == (7.5, 11.0)
    assert (limits.match_bytes_per_second, limits.match_bytes_burst) == (3 * 1024 * 1024, 5 * 1024 * 1024)
    assert (limits.max_concurrent_per_key, limits.max_concurrent_rpcs) == (3, 77)
    assert (limits.max_upload_entries, limits.max_lists, limits.max_query_hashes) == (4321, 17, 99)
    assert s.default_thresholds == DEFAULT_THRESHOLDS


@pytest.fixture
def tuned(server_factory: Any) -> Any:
    return secure_server(server_factory, **OVERRIDES)


# -- who may read them ---------------------------------------------------------------------------

def test_an_admin_key_reads_the_settings_the_server_started_with(tuned: Any) -> None:
    with Client(tuned.address, api_key=admin_key(tuned.data_dir), timeout=10) as c:
        settings = c.get_settings()
    assert_overrides(settings)
    # The wire form, as other languages see it: typed enums and durations.
    raw = get_settings_raw(tuned.address, admin_key(tuned.data_dir)).settings
    assert raw.store_kind == admin_pb2.STORE_KIND_SQLITE
    assert raw.selftest_interval.ToNanoseconds() == 42_500_000_000
    assert raw.max_staleness.ToSeconds() == 90
    assert {(t.algorithm, t.threshold) for t in raw.default_thresholds} >= {
        (hashes_pb2.ALGORITHM_PDQ, 31), (hashes_pb2.ALGORITHM_PHASH, 10), (hashes_pb2.ALGORITHM_SHA256, 0)}


def test_defaults_are_reported_as_defaults(server_factory: Any) -> None:
    srv = secure_server(server_factory)
    with Client(srv.address, api_key=admin_key(srv.data_dir), timeout=10) as c:
        s = c.get_settings()
    defaults, limits = ServerConfig(), Limits()
    assert (s.max_pixels, s.log_hashes, s.fast, s.reflection) == (defaults.max_pixels, False, False, True)
    assert s.limits.max_lists == limits.max_lists and s.limits.max_query_hashes == defaults.max_query_hashes
    assert s.max_staleness_seconds is None
    # --hashing-slots 0 (automatic) is reported resolved: what the Matcher really uses.
    assert s.hashing_slots == srv.server.hashing_slots.slots == default_slots(1) >= 1


def test_match_and_curate_keys_are_refused(tuned: Any) -> None:
    for role in ("match", "curate"):
        key = new_key(tuned.address, tuned.data_dir, f"only-{role}", [role])
        with Client(tuned.address, api_key=key, timeout=10) as c, pytest.raises(PermissionDenied) as denied:
            c.get_settings()
        assert denied.value.reason == "ROLE_REQUIRED"
        assert "'admin' role" in denied.value.details and "AdminService/GetSettings" in denied.value.details
        with grpc.insecure_channel(tuned.address) as channel:
            error = rpc_error(admin_pb2_grpc.AdminServiceStub(channel).GetSettings, admin_pb2.GetSettingsRequest(),
                              metadata=bearer(key), timeout=10)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # A key holding admin among other roles is enough.
    several = new_key(tuned.address, tuned.data_dir, "ops", ["match", "admin"])
    with Client(tuned.address, api_key=several, timeout=10) as c:
        assert c.get_settings().max_pixels == 1_234_567


def test_no_key_or_a_bad_key_is_unauthenticated(tuned: Any) -> None:
    with Client(tuned.address, api_key=None, timeout=10) as c, pytest.raises(Unauthenticated):
        c.get_settings()
    wrong = "hm_000000000000_" + "0" * 64
    with Client(tuned.address, api_key=wrong, timeout=10) as c, pytest.raises(Unauthenticated) as bad:
        c.get_settings()
    assert wrong not in str(bad.value)
    with grpc.insecure_channel(tuned.address) as channel:
        error = rpc_error(admin_pb2_grpc.AdminServiceStub(channel).GetSettings, admin_pb2.GetSettingsRequest(),
                          timeout=10)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_revoked_admin_key_is_refused(tuned: Any) -> None:
    key = new_key(tuned.address, tuned.data_dir, "short-lived", ["admin"])
    with Client(tuned.address, api_key=key, timeout=10) as c:
        assert c.get_settings().threads == 5
        c.revoke_key("short-lived")
        with pytest.raises(Unauthenticated):
            c.get_settings()


def test_without_auth_everyone_reads_them_and_sees_auth_off(server_factory: Any) -> None:
    # --insecure-no-auth: every caller holds every role, this one included; the answer says so.
    srv = server_factory(auth=False, limits=replace(Limits(), max_lists=5))
    with Client(srv.address, api_key=None, timeout=10) as c:
        s = c.get_settings()
    assert (s.auth, s.limits.max_lists) == (False, 5)


# -- never a secret ------------------------------------------------------------------------------

def _assert_no_secret(response: admin_pb2.GetSettingsResponse, settings: ServerSettings, secrets: list[str]) -> None:
    wire = response.SerializeToString()
    text = str(response) + json.dumps(repr(settings))
    for secret in secrets:
        assert secret.encode() not in wire and secret not in text, secret


def test_the_answer_holds_no_key_and_no_path_to_one(tuned: Any) -> None:
    key = admin_key(tuned.data_dir)
    other = new_key(tuned.address, tuned.data_dir, "pipeline", ["match"])
    response = get_settings_raw(tuned.address, key)
    with Client(tuned.address, api_key=key, timeout=10) as c:
        settings = c.get_settings()
    _assert_no_secret(response, settings, [key, key.rsplit("_", 1)[1], other, other.rsplit("_", 1)[1],
                                           str(tuned.data_dir), "admin.key"])


def test_a_postgresql_store_is_named_by_kind_never_by_url(server_factory: Any, pg_cluster: Any) -> None:
    # A password in the URL (the throwaway cluster trusts loopback, so it is never checked).
    url = pg_cluster.database().replace("postgresql://postgres@", "postgresql://postgres:pw-not-for-eyes@")
    srv = secure_server(server_factory, store_url=url)
    key = admin_key(srv.data_dir)
    response = get_settings_raw(srv.address, key)
    with Client(srv.address, api_key=key, timeout=10) as c:
        settings = c.get_settings()
    assert response.settings.store_kind == admin_pb2.STORE_KIND_POSTGRESQL and settings.store == "postgresql"
    host_port = url.rsplit("@", 1)[1].split("/", 1)[0]
    _assert_no_secret(response, settings, ["pw-not-for-eyes", url, host_port, "postgresql://", key])


def test_tls_settings_report_modes_not_files(server_factory: Any, tmp_path: Path) -> None:
    from throwaway_ca import CA

    from hashmatch.server.tls import TlsConfig

    server_ca, client_ca = CA("server"), CA("clients")
    cert, tls_key = server_ca.issue("localhost", dns=("localhost",), ips=("127.0.0.1",), server=True).write(
        tmp_path / "pki", "server")
    client_cert, client_key = client_ca.issue("ops-1").write(tmp_path / "pki", "client")
    ca_file, client_ca_file = server_ca.write(tmp_path / "pki", "server-ca"), client_ca.write(tmp_path / "pki", "cca")
    srv = secure_server(server_factory, tls=TlsConfig(cert, tls_key, client_ca_file, {"ops-1": frozenset({"admin"})}))
    # The mapped certificate alone carries the admin role: no key needed.
    with Client(srv.address, api_key=None, timeout=10, tls_ca=ca_file, tls_cert=client_cert,
                tls_key=client_key) as c:
        s = c.get_settings()
    assert (s.tls, s.client_certificate_required, s.client_certificate_roles) == (True, True, 1)
    private_key = tls_key.read_text()
    assert private_key.strip().splitlines()[1] not in repr(s)
    assert str(tls_key) not in repr(s) and "ops-1" not in repr(s)


# -- the other interceptors ----------------------------------------------------------------------

def test_settings_answer_while_the_index_loads(tmp_path: Path) -> None:
    """Settings do not come from the index, so an operator can read them while a large index
    loads (lists calls are UNAVAILABLE meanwhile); auth still applies."""
    release = threading.Event()

    def slow_load(config: ServerConfig) -> Any:
        release.wait(30)
        return open_lists(config)

    config = ServerConfig(data_dir=tmp_path / "data", selftest=False, max_pixels=2_000_001)
    srv, port = create_server("127.0.0.1:0", config, load=slow_load)
    srv.start(wait_until_loaded=False)
    try:
        address, key = f"127.0.0.1:{port}", admin_key(config.data_dir)
        with Client(address, api_key=key, timeout=10) as c:
            assert c.get_settings().max_pixels == 2_000_001
            with pytest.raises(Unavailable) as loading:
                c.list_lists()
            assert loading.value.reason == "INDEX_LOADING"
        with Client(address, api_key=None, timeout=10) as c, pytest.raises(Unauthenticated):
            c.get_settings()
    finally:
        release.set()
        srv.stop(None)


def test_reflection_offers_the_admin_service(server_factory: Any) -> None:
    srv = secure_server(server_factory)
    with grpc.insecure_channel(srv.address) as channel:
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert {"hashmatch.v1.AdminService", "hashmatch.v1.KeysService", "hashmatch.v1.MatcherService"} <= names


# -- the SDKs and the CLI ------------------------------------------------------------------------

def test_async_client_reads_the_same_settings(tuned: Any) -> None:
    async def read() -> tuple[ServerSettings, Exception]:
        async with AsyncClient(tuned.address, api_key=admin_key(tuned.data_dir), timeout=10) as c:
            settings = await c.get_settings()
        async with AsyncClient(tuned.address, api_key=None, timeout=10) as anonymous:
            try:
                await anonymous.get_settings()
            except Unauthenticated as exc:
                return settings, exc
        raise AssertionError("an anonymous call was answered")

    settings, refused = asyncio.run(read())
    assert_overrides(settings)
    assert refused.reason == "MISSING_CREDENTIALS"
    with Client(tuned.address, api_key=admin_key(tuned.data_dir), timeout=10) as c:
        assert settings == c.get_settings()
    with pytest.raises(Exception):  # frozen
        settings.max_pixels = 1  # type: ignore[misc]


def test_cli_shows_a_table_and_json(tuned: Any, capsys: pytest.CaptureFixture[str]) -> None:
    key_args = ["--server", tuned.address, "--api-key-file", str(tuned.data_dir / "admin.key")]
    assert cli_main([*key_args, "settings"]) == 0
    out = capsys.readouterr().out
    rows = {line[:24].strip(): line[24:].strip() for line in out.splitlines()[1:]}
    assert out.splitlines()[0].split() == ["SETTING", "VALUE"]
    assert rows["max pixels"] == "1234567"
    assert rows["match log (log hashes)"] == "on"
    assert rows["fast mode"] == "on" and rows["reflection"] == "off"
    assert rows["hashing slots"] == "3 (per process)"
    assert rows["match rate per key"] == "7.5/s, burst 11"
    assert rows["match bytes per key"] == "3 MiB/s, burst 5 MiB"
    assert rows["max lists"] == "17" and rows["max concurrent RPCs"] == "77"
    assert rows["self-test"] == "off" and rows["max staleness"] == "90s"
    assert rows["default thresholds"].startswith("pdq 31, phash 10")

    assert cli_main([*key_args, "settings", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["max_pixels"] == 1_234_567 and document["log_hashes"] is True
    assert document["store"] == "sqlite" and document["version"] == __version__
    assert document["limits"] == {
        "match_requests_per_second": 7.5, "match_request_burst": 11.0, "match_bytes_per_second": 3145728.0,
        "match_bytes_burst": 5242880.0, "max_concurrent_per_key": 3, "max_concurrent_rpcs": 77,
        "max_upload_entries": 4321, "max_lists": 17, "max_query_hashes": 99}
    assert document["default_thresholds"]["pdq"] == 31 and document["default_thresholds"]["sha256"] == 0


def test_cli_without_the_admin_role_fails_naming_the_role(tuned: Any, capsys: pytest.CaptureFixture[str]) -> None:
    key = new_key(tuned.address, tuned.data_dir, "curator", ["curate"])
    assert cli_main(["--server", tuned.address, "--api-key", key, "settings", "--json"]) == 1
    captured = capsys.readouterr()
    assert "PERMISSION_DENIED" in captured.err and "'admin' role" in captured.err
    assert json.loads(captured.out)["error"]["code"] == "PERMISSION_DENIED"
    assert key not in captured.out + captured.err


def test_server_flags_reach_the_settings_of_a_real_process(tmp_path: Path) -> None:
    """`python -m hashmatch.server` with non-default flags; `hashmatch settings --json` (a subprocess,
    the key from HASHMATCH_API_KEY) reports them."""
    flags = ["--max-pixels", "3000000", "--log-hashes", "--match-rate", "7", "--match-burst", "9",
             "--match-bytes-rate", "1048576", "--max-message-bytes", "2097152", "--max-concurrent-per-key", "4",
             "--max-concurrent-rpcs", "40", "--max-upload-entries", "1234", "--max-lists", "12",
             "--max-query-hashes", "77", "--threads", "6", "--hashing-slots", "2", "--selftest-interval", "0",
             "--no-reflection", "--grace", "1.5", "--max-staleness", "30"]
    process = ServerProcess(tmp_path / "data", *flags)
    try:
        env = {**os.environ, "HASHMATCH_API_KEY": admin_key(tmp_path / "data")}
        result = subprocess.run([sys.executable, "-m", "hashmatch.client", "--server", process.address,
                                 "settings", "--json"], capture_output=True, text=True, env=env, timeout=60)
    finally:
        process.stop()
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    assert (s["max_pixels"], s["log_hashes"], s["reflection"], s["threads"], s["hashing_slots"]) == (
        3_000_000, True, False, 6, 2)
    assert (s["selftest"], s["selftest_interval_seconds"], s["grace_seconds"], s["max_staleness_seconds"]) == (
        True, 0.0, 1.5, 30.0)
    assert (s["max_message_bytes"], s["auth"], s["workers"], s["metrics"]) == (2_097_152, True, 1, False)
    # The byte bucket holds at least one whole message (server/security_flags.py).
    assert s["limits"] == {
        "match_requests_per_second": 7.0, "match_request_burst": 9.0, "match_bytes_per_second": 1048576.0,
        "match_bytes_burst": 2097152.0, "max_concurrent_per_key": 4, "max_concurrent_rpcs": 40,
        "max_upload_entries": 1234, "max_lists": 12, "max_query_hashes": 77}
