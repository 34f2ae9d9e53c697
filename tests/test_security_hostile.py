"""The hostile client: malformed credentials, oversized keys, keys of other roles, revoked and expired
keys, replays after revocation. Each is refused with the right code, the refusal never echoes what
was sent, and the server keeps serving."""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from authkit import admin_key, bearer, new_key, rpc_error, secure_server, trailing
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hashmatch.client import Client, KeyNotFound
from hashmatch.v1 import keys_pb2, keys_pb2_grpc, lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

PDQ_ZERO = matcher_pb2.MatchHashesRequest(hashes=[{"algorithm": 1, "value": "0" * 64}])
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture
def secure(server_factory: Any, caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    return secure_server(server_factory)


@pytest.fixture
def channel(secure: Any) -> Any:
    with grpc.insecure_channel(secure.address) as ch:
        yield ch


def match_hashes(channel: grpc.Channel, metadata: Any) -> grpc.RpcError:
    return rpc_error(matcher_pb2_grpc.MatcherServiceStub(channel).MatchHashes, PDQ_ZERO, metadata=metadata, timeout=10)


def assert_serving(channel: grpc.Channel, key: str) -> None:
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    reply = matcher_pb2_grpc.MatcherServiceStub(channel).MatchHashes(PDQ_ZERO, metadata=bearer(key), timeout=10)
    assert list(reply.matches) == []


def assert_not_echoed(secret_text: str, *places: str) -> None:
    """Neither the text nor any 24-character piece of it appears anywhere (short texts: skipped)."""
    if len(secret_text) < 12:
        return
    pieces = [secret_text] + [secret_text[i:i + 24] for i in range(0, len(secret_text) - 23, 12)]
    for place in places:
        for piece in pieces:
            assert piece not in place


MALFORMED = {
    "basic scheme": [("authorization", "Basic dXNlcjpwYXNzd29yZA==")],
    "bearer, no key": [("authorization", "Bearer ")],
    "no scheme": [("authorization", "hm_0123456789ab_" + "c" * 64)],
    "two headers": [("authorization", "Bearer a"), ("authorization", "Bearer b")],
    "injection": [("authorization", "Bearer ' OR 1=1; DROP TABLE api_keys; --")],
    "path": [("authorization", "Bearer ../../../../etc/passwd")],
    "not hex": [("authorization", "Bearer hm_zzzzzzzzzzzz_" + "z" * 64)],
    "wrong shape": [("authorization", "Bearer hm_0123456789ab")],
    "binary header only": [("authorization-bin", b"\x00\xffBearer\x00")],
    "nothing": [],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_credentials_are_unauthenticated(
    secure: Any, channel: grpc.Channel, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    error = match_hashes(channel, MALFORMED[case])
    assert error.code() == UNAUTHENTICATED, error.details()
    assert trailing(error)["hashmatch-reason"] in ("MISSING_CREDENTIALS", "INVALID_CREDENTIALS")
    for _name, value in MALFORMED[case]:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        token = text.partition(" ")[2] or text
        assert_not_echoed(token, error.details(), caplog.text)
    assert_serving(channel, admin_key(secure.data_dir))


def test_a_ten_thousand_character_key_is_refused_without_echo(
    secure: Any, channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    import secrets

    huge = "hm_" + secrets.token_hex(5000)[:9997]
    assert len(huge) == 10_000
    for _ in range(20):  # certain, not by luck: gRPC's random soft-limit rejection is off
        error = match_hashes(channel, bearer(huge))
        assert error.code() == UNAUTHENTICATED and "malformed" in error.details()
    assert_not_echoed(huge, error.details(), caplog.text)
    # Past the metadata limit gRPC itself refuses, as RESOURCE_EXHAUSTED, never INTERNAL.
    error = match_hashes(channel, bearer("k" * 20_000))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_serving(channel, admin_key(secure.data_dir))


def test_keys_of_other_roles_are_permission_denied(secure: Any, channel: grpc.Channel) -> None:
    match = new_key(secure.address, secure.data_dir, "m", ["match"])
    curate = new_key(secure.address, secure.data_dir, "c", ["curate"])
    lists = lists_pb2_grpc.ListsServiceStub(channel)
    keys = keys_pb2_grpc.KeysServiceStub(channel)
    cases = [
        (lists.CreateList, lists_pb2.CreateListRequest(name="x"), match),
        (lists.ExportHashes, lists_pb2.ExportHashesRequest(list_name="x"), match),
        (keys.CreateKey, keys_pb2.CreateKeyRequest(name="escalate", roles=[keys_pb2.ROLE_ADMIN]), match),
        (keys.CreateKey, keys_pb2.CreateKeyRequest(name="escalate", roles=[keys_pb2.ROLE_ADMIN]), curate),
        (keys.ListKeys, keys_pb2.ListKeysRequest(), curate),
        (matcher_pb2_grpc.MatcherServiceStub(channel).MatchHashes, PDQ_ZERO, curate),
    ]
    for call, request, key in cases:
        error = rpc_error(call, request, metadata=bearer(key), timeout=10)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (call, error.details())
        assert trailing(error)["hashmatch-reason"] == "ROLE_REQUIRED"
    with Client(secure.address, api_key=admin_key(secure.data_dir)) as admin:
        assert {k.name for k in admin.list_keys()} == {"admin", "m", "c"}  # no escalation happened


def test_wrong_secret_and_unknown_id_look_the_same(secure: Any, channel: grpc.Channel,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    real = new_key(secure.address, secure.data_dir, "real", ["match"])
    key_id = real.split("_")[1]
    wrong_secret = f"hm_{key_id}_" + ("0" * 64 if not real.endswith("0" * 64) else "1" * 64)
    unknown_id = "hm_ffffffffffff_" + real.rsplit("_", 1)[1]
    answers = {match_hashes(channel, bearer(k)).details() for k in (wrong_secret, unknown_id)}
    assert answers == {"the API key is not valid"}
    assert_not_echoed(real, caplog.text)
    assert_not_echoed(wrong_secret.rsplit("_", 1)[1], caplog.text)


def test_revoked_key_and_replay_after_revocation(secure: Any, channel: grpc.Channel) -> None:
    key = new_key(secure.address, secure.data_dir, "leaked", ["match"])
    recorded = bearer(key)
    matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
    assert list(matcher.MatchHashes(PDQ_ZERO, metadata=recorded, timeout=10).matches) == []
    with Client(secure.address, api_key=admin_key(secure.data_dir)) as admin:
        admin.revoke_key("leaked")
    for _ in range(3):  # the very metadata that worked a moment ago
        error = match_hashes(channel, recorded)
        assert error.code() == UNAUTHENTICATED and "revoked" in error.details()
    # A streaming call with the replayed key is refused before any image is read.
    stream = matcher.MatchImageStream(iter([matcher_pb2.MatchImageStreamRequest(request_id="1")]),
                                      metadata=recorded, timeout=10)
    with pytest.raises(grpc.RpcError) as refused:
        list(stream)
    assert refused.value.code() == UNAUTHENTICATED


def test_expired_key(secure: Any, channel: grpc.Channel) -> None:
    expires = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    key = new_key(secure.address, secure.data_dir, "short-lived", ["match"], expires=expires)
    assert list(matcher_pb2_grpc.MatcherServiceStub(channel).MatchHashes(
        PDQ_ZERO, metadata=bearer(key), timeout=10).matches) == []
    time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.2)
    error = match_hashes(channel, bearer(key))
    assert error.code() == UNAUTHENTICATED and "expired" in error.details()
    with Client(secure.address, api_key=admin_key(secure.data_dir)) as admin:
        assert {k.name: k.state for k in admin.list_keys()}["short-lived"] == "expired"


def test_refusals_never_reach_the_servicer(secure: Any, channel: grpc.Channel) -> None:
    """An unauthenticated upload stores nothing, even with a commit marker."""
    upload = lists_pb2_grpc.ListsServiceStub(channel).UploadHashes
    error = rpc_error(upload, iter([lists_pb2.UploadHashesRequest(list_name="x", commit=True)]),
                      metadata=bearer("hm_0123456789ab_" + "0" * 64), timeout=10)
    assert error.code() == UNAUTHENTICATED
    with Client(secure.address, api_key=admin_key(secure.data_dir)) as admin:
        assert admin.list_lists() == ()


def test_a_leaked_key_pasted_to_revoke_it_is_revoked_and_never_echoed(
    secure: Any, channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    """An admin revoking a leaked key by pasting the key itself: it is revoked (online and offline),
    and neither the audit log nor an error message repeats its secret."""
    leaked = new_key(secure.address, secure.data_dir, "leaked-pasted", ["match"])
    offline = new_key(secure.address, secure.data_dir, "leaked-offline", ["match"])
    unknown = "hm_ffffffffffff_" + secrets.token_hex(32)
    with Client(secure.address, api_key=admin_key(secure.data_dir)) as admin:
        revoked = admin.revoke_key(leaked)
        assert revoked.name == "leaked-pasted" and revoked.state == "revoked"
        with pytest.raises(KeyNotFound) as missing:
            admin.revoke_key(unknown)
    assert match_hashes(channel, bearer(leaked)).code() == UNAUTHENTICATED
    key_id = leaked.split("_")[1]
    audit = [r.getMessage() for r in caplog.records if r.name == "hashmatch.audit"]
    assert any(line.startswith("RevokeKey by admin") and f"hm_{key_id}_" in line and line.endswith(": OK")
               for line in audit), audit
    assert_not_echoed(leaked, caplog.text)
    assert_not_echoed(unknown, caplog.text, str(missing.value), repr(missing.value))

    def keys_offline(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hashmatch.server", "keys", *args,
                               "--data-dir", str(secure.data_dir)], capture_output=True, text=True, timeout=60)

    done = keys_offline("revoke", offline)
    assert done.returncode == 0 and "leaked-offline" in done.stdout, done.stderr
    assert_not_echoed(offline, done.stdout, done.stderr)
    assert match_hashes(channel, bearer(offline)).code() == UNAUTHENTICATED
    failed = keys_offline("revoke", unknown)
    assert failed.returncode == 1 and "no API key" in failed.stderr
    assert_not_echoed(unknown, failed.stdout, failed.stderr)


@pytest.mark.parametrize("cut", ["short", "long"])
def test_a_key_pasted_cut_short_or_run_on_is_never_echoed(cut: str) -> None:
    from hashmatch.index.keys import redact_keys

    key = f"hm_{secrets.token_hex(6)}_{secrets.token_hex(32)}"
    pasted = key[:-1] if cut == "short" else key + "ff"
    shown = redact_keys(f"no API key has the id or name {pasted!r}")
    assert key.split("_")[1] in shown  # the public id stays, to tell which key it was
    secret = key.split("_")[2]
    assert not any(secret[i : i + 8] in shown for i in range(0, len(secret) - 8))
