"""API keys and roles over a real server: who may call what, the first start's admin key, key
management through KeysService, the SDK and the CLI (online and offline), and the audit trail."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest
from authkit import ServerProcess, admin_key, bearer, new_key, secure_server
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hashmatch.client import Client, KeyExists, KeyNotFound, PermissionDenied, Unauthenticated
from hashmatch.client.cli import main as cli_main
from hashmatch.client.errors import FailedPrecondition, InvalidArgument
from hashmatch.v1 import keys_pb2, lists_pb2, matcher_pb2

SERVICES = {
    "match": matcher_pb2.DESCRIPTOR.services_by_name["MatcherService"],
    "curate": lists_pb2.DESCRIPTOR.services_by_name["ListsService"],
    "admin": keys_pb2.DESCRIPTOR.services_by_name["KeysService"],
}
KEY_SHAPE = r"hm_[0-9a-f]{12}_[0-9a-f]{64}"


def call_raw(channel: grpc.Channel, service: Any, method: Any, metadata: Any = ()) -> grpc.StatusCode:
    """Call any method with an empty request of its kind; the status code it ends with."""
    path = f"/{service.full_name}/{method.name}"
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path)(iter([]), metadata=metadata, timeout=10))
        elif method.client_streaming:
            channel.stream_unary(path)(iter([]), metadata=metadata, timeout=10)
        elif method.server_streaming:
            list(channel.unary_stream(path)(b"", metadata=metadata, timeout=10))
        else:
            channel.unary_unary(path)(b"", metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture
def secure(server_factory: Any) -> Any:
    return secure_server(server_factory)


# -- the first start -----------------------------------------------------------------------------

def test_first_start_writes_an_owner_only_admin_key_and_logs_where_not_what(
    server_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "fresh"
    with caplog.at_level(logging.INFO):
        srv = secure_server(server_factory, data_dir=data)
    key_file = data / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = admin_key(data)
    assert re.fullmatch(KEY_SHAPE, key)
    assert str(key_file) in caplog.text and key not in caplog.text
    assert key.split("_")[2] not in caplog.text
    with Client(srv.address, api_key=key) as c:
        assert {k.name: k.roles for k in c.list_keys()} == {"admin": frozenset({"admin", "curate", "match"})}
    srv.server.stop(None)

    # A restart on the same folder keeps the key and makes no other.
    again = secure_server(server_factory, data_dir=data)
    assert admin_key(data) == key
    with Client(again.address, api_key=key) as c:
        assert len(c.list_keys()) == 1


def test_keys_are_stored_only_as_salted_hashes(secure: Any) -> None:
    one = new_key(secure.address, secure.data_dir, "one", ["match"])
    two = new_key(secure.address, secure.data_dir, "two", ["match"])
    secure.server.stop(None)  # checkpoint the WAL into the main file
    stored = b"".join(p.read_bytes() for p in secure.data_dir.glob("hashmatch.sqlite3*"))
    for key in (one, two, admin_key(secure.data_dir)):
        secret = key.rsplit("_", 1)[1]
        assert secret.encode() not in stored and bytes.fromhex(secret) not in stored
    with sqlite3.connect(secure.data_dir / "hashmatch.sqlite3") as db:
        rows = db.execute("SELECT salt, digest FROM api_keys").fetchall()
    assert len({salt for salt, _ in rows}) == len(rows) == 3
    assert all(len(digest) == 32 for _, digest in rows)


# -- roles ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", sorted(SERVICES))
def test_every_method_needs_a_key(secure: Any, role: str) -> None:
    service = SERVICES[role]
    with grpc.insecure_channel(secure.address) as channel:
        for method in service.methods:
            assert call_raw(channel, service, method) == grpc.StatusCode.UNAUTHENTICATED, method.name


def test_each_role_reaches_its_own_service_only(secure: Any) -> None:
    keys = {role: new_key(secure.address, secure.data_dir, f"only-{role}", [role]) for role in SERVICES}
    with grpc.insecure_channel(secure.address) as channel:
        for key_role, key in keys.items():
            for service_role, service in SERVICES.items():
                for method in service.methods:
                    code = call_raw(channel, service, method, bearer(key))
                    if key_role == service_role:
                        assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), (
                            key_role, method.name, code)
                    else:
                        assert code == grpc.StatusCode.PERMISSION_DENIED, (key_role, method.name, code)


def test_permission_denied_names_the_missing_role_and_reason(secure: Any) -> None:
    key = new_key(secure.address, secure.data_dir, "pipeline", ["match"])
    with Client(secure.address, api_key=key) as c:
        with pytest.raises(PermissionDenied) as denied:
            c.create_list("nope")
    assert denied.value.reason == "ROLE_REQUIRED"
    assert "'curate' role" in denied.value.details and "pipeline" in denied.value.details
    assert key not in str(denied.value) and key.rsplit("_", 1)[1] not in repr(denied.value)


def test_a_key_may_hold_several_roles(secure: Any) -> None:
    key = new_key(secure.address, secure.data_dir, "staff", ["match", "curate"])
    with Client(secure.address, api_key=key) as c:
        c.create_list("both")
        assert c.match_hashes([("pdq", "0" * 64)]) == ()
        with pytest.raises(PermissionDenied):
            c.list_keys()


def test_health_and_reflection_stay_open(secure: Any, server_factory: Any) -> None:
    with grpc.insecure_channel(secure.address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert {"hashmatch.v1.MatcherService", "hashmatch.v1.ListsService", "hashmatch.v1.KeysService"} <= names

    closed = secure_server(server_factory, reflection=False)
    with grpc.insecure_channel(closed.address) as channel:
        with pytest.raises(grpc.RpcError) as off:
            list(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    assert off.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- KeysService through the SDK -------------------------------------------------------------------

def test_keys_create_list_revoke(secure: Any) -> None:
    with Client(secure.address, api_key=admin_key(secure.data_dir)) as admin:
        soon = datetime.now(timezone.utc) + timedelta(days=30)
        created = admin.create_key("pipeline-eu", ["match"], expires=soon)
        assert created.key.roles == frozenset({"match"}) and created.key.state == "active"
        assert abs((created.key.expires - soon).total_seconds()) < 1
        assert created.key.created_by.startswith("admin (key ")
        assert created.secret not in repr(created)
        with pytest.raises(KeyExists):
            admin.create_key("pipeline-eu", ["match"])
        with pytest.raises(InvalidArgument, match="at least one role"):
            admin.create_key("no-roles", [])
        with pytest.raises(InvalidArgument, match="future"):
            admin.create_key("past", ["match"], expires=datetime.now(timezone.utc) - timedelta(days=1))

        with Client(secure.address, api_key=created.secret) as pipeline:
            assert pipeline.match_hashes([("pdq", "0" * 64)]) == ()
            revoked = admin.revoke_key("pipeline-eu")
            assert revoked.id == created.key.id and revoked.state == "revoked"
            with pytest.raises(Unauthenticated, match="revoked"):
                pipeline.match_hashes([("pdq", "0" * 64)])
        listed = {k.id: k for k in admin.list_keys()}
        assert created.key.id not in listed
        assert admin.list_keys(include_revoked=True)[-1].state == "revoked"
        # The name is free again once its key is revoked.
        assert admin.create_key("pipeline-eu", ["match"]).key.id != created.key.id
        with pytest.raises(KeyNotFound):
            admin.revoke_key("nobody")
        with pytest.raises(FailedPrecondition, match="last active admin key"):
            admin.revoke_key("admin")


def test_sdk_takes_the_key_from_the_environment(secure: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHMATCH_API_KEY", admin_key(secure.data_dir) + "\n")
    with Client(secure.address) as c:
        assert c.list_lists() == ()
        assert "hm_" not in repr(c) and "api_key=set" in repr(c)
    monkeypatch.delenv("HASHMATCH_API_KEY")
    with Client(secure.address) as c, pytest.raises(Unauthenticated):
        c.list_lists()


def test_audit_log_names_the_key_behind_each_change(secure: Any, caplog: pytest.LogCaptureFixture) -> None:
    key = new_key(secure.address, secure.data_dir, "curator-ann", ["curate"])
    key_id = key.split("_")[1]
    with caplog.at_level(logging.INFO, logger="hashmatch.audit"), Client(secure.address, api_key=key) as c:
        c.create_list("audited")
        c.delete_list("audited")
        with pytest.raises(Exception):
            c.delete_list("audited")
    lines = [r.getMessage() for r in caplog.records if r.name == "hashmatch.audit"]
    assert f"CreateList by curator-ann (key {key_id}) on audited: OK" in lines
    assert f"DeleteList by curator-ann (key {key_id}) on audited: OK" in lines
    assert f"DeleteList by curator-ann (key {key_id}) on audited: NOT_FOUND" in lines


# -- the CLI ---------------------------------------------------------------------------------------

def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hashmatch.client.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_cli_keys_offline_while_the_server_runs_and_online(
    secure: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(secure.data_dir)
    created = cli("keys", "create", "batch-job", "--role", "match,curate", "--expires", "30d", "--data-dir", data)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert re.fullmatch(KEY_SHAPE, key) and "shown only now" in created.stderr
    listed = cli("--json", "keys", "ls", "--data-dir", data)
    assert listed.returncode == 0, listed.stderr
    by_name = {k["name"]: k for k in json.loads(listed.stdout)}
    assert by_name["batch-job"]["roles"] == ["curate", "match"] and by_name["batch-job"]["created_by"] == "offline"
    assert key not in listed.stdout

    # The running server accepts the key made offline, and refuses it once revoked offline.
    with Client(secure.address, api_key=key) as c:
        c.create_list("from-offline-key")
        assert cli("keys", "revoke", "batch-job", "--data-dir", data).returncode == 0
        with pytest.raises(Unauthenticated, match="revoked"):
            c.list_lists()

    # Online, with the admin key from its file.
    key_file = str(secure.data_dir / "admin.key")
    code = cli_main(["--server", secure.address, "--api-key-file", key_file, "keys", "create", "web", "--role", "match"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.fullmatch(KEY_SHAPE, out.strip())
    code = cli_main(["--server", secure.address, "--api-key-file", key_file, "--json", "keys", "ls"])
    out, err = capsys.readouterr()
    assert code == 0 and {k["name"] for k in json.loads(out)} == {"admin", "web"}
    code = cli_main(["--server", secure.address, "keys", "ls"])  # no key
    out, err = capsys.readouterr()
    assert code == 1 and "UNAUTHENTICATED" in err


def test_cli_takes_the_key_from_the_environment_or_an_argument(
    secure: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = admin_key(secure.data_dir)
    monkeypatch.setenv("HASHMATCH_API_KEY", key)
    assert cli_main(["--server", secure.address, "--json", "keys", "ls"]) == 0
    assert [k["name"] for k in json.loads(capsys.readouterr().out)] == ["admin"]
    # An argument wins over the environment.
    monkeypatch.setenv("HASHMATCH_API_KEY", "hm_0123456789ab_" + "0" * 64)
    assert cli_main(["--server", secure.address, "--api-key", key, "--json", "keys", "ls"]) == 0
    capsys.readouterr()
    assert cli_main(["--server", secure.address, "keys", "ls"]) == 1
    err = capsys.readouterr().err
    assert "UNAUTHENTICATED" in err and "0" * 24 not in err


def test_cli_offline_revoke_may_remove_the_last_admin_key(secure: Any) -> None:
    data = str(secure.data_dir)
    done = cli("keys", "revoke", "admin", "--data-dir", data)
    assert done.returncode == 0, done.stderr
    with Client(secure.address, api_key=admin_key(secure.data_dir)) as c, pytest.raises(Unauthenticated):
        c.list_keys()
    # The way back in: a new admin key, offline.
    fresh = cli("keys", "create", "admin2", "--role", "admin", "--data-dir", data)
    assert fresh.returncode == 0, fresh.stderr
    with Client(secure.address, api_key=fresh.stdout.strip()) as c:
        assert [k.name for k in c.list_keys()] == ["admin2"]
    bad = cli("keys", "create", "x", "--role", "superuser", "--data-dir", data)
    assert bad.returncode == 2 and "unknown role 'superuser'" in bad.stderr


def test_running_without_auth_needs_the_flag_and_warns_at_every_start(tmp_path: Path) -> None:
    data = tmp_path / "open"
    for _ in range(2):
        proc = ServerProcess(data, "--insecure-no-auth")
        try:
            with Client(proc.address, api_key=None) as c:
                c.create_list(f"l{len(c.list_lists())}")
        finally:
            assert proc.stop() == 0
        assert "authentication is OFF (--insecure-no-auth)" in proc.stderr
    assert not (data / "admin.key").exists()

    secured = ServerProcess(data)  # the same folder, auth back on: a first admin key appears
    try:
        with Client(secured.address) as c, pytest.raises(Unauthenticated):
            c.list_lists()
        with Client(secured.address, api_key=admin_key(data)) as c:
            assert [hl.name for hl in c.list_lists()] == ["l0", "l1"]
    finally:
        secured.stop()
    assert "authentication is OFF" not in secured.stderr
    assert str(data / "admin.key") in secured.stderr and admin_key(data) not in secured.stderr
    # The server process writes everything for its own user only (umask 077).
    opened = [p for p in [data, *data.rglob("*")] if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert opened == []
