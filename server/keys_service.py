"""KeysService: administrators create, list and revoke API keys (admin role; see auth.py)."""

from __future__ import annotations

import logging
from datetime import timezone

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from hashmatch.index.keys import ApiKeyInfo, InvalidKeySpec, KeyNameTaken, KeyNotFound, KeyStore, LastAdminKey
from hashmatch.v1 import keys_pb2, keys_pb2_grpc

from .auth import current_actor
from .errors import RequestError, unary

audit_log = logging.getLogger("hashmatch.audit")

_ROLE_NAMES = {keys_pb2.ROLE_MATCH: "match", keys_pb2.ROLE_CURATE: "curate", keys_pb2.ROLE_ADMIN: "admin"}
_ROLE_VALUES = {name: value for value, name in _ROLE_NAMES.items()}


def roles_from_proto(values) -> list[str]:
    roles = []
    for i, value in enumerate(values):
        if value not in _ROLE_NAMES:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"roles[{i}]: {value} is not a role (ROLE_MATCH, ROLE_CURATE, ROLE_ADMIN)", "INVALID_KEY")
        roles.append(_ROLE_NAMES[value])
    return roles


def _stamp(value) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def key_to_proto(info: ApiKeyInfo) -> keys_pb2.ApiKey:
    return keys_pb2.ApiKey(
        id=info.key_id,
        name=info.name,
        roles=sorted(_ROLE_VALUES[r] for r in info.roles),
        create_time=_stamp(info.created),
        expire_time=_stamp(info.expires),
        revoke_time=_stamp(info.revoked),
        created_by=info.created_by,
    )


class KeysServicer(keys_pb2_grpc.KeysServiceServicer):
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    @unary
    def CreateKey(self, request: keys_pb2.CreateKeyRequest, context: grpc.ServicerContext):
        expires = (
            request.expire_time.ToDatetime(tzinfo=timezone.utc) if request.HasField("expire_time") else None
        )
        try:
            new = self._keys.create(request.name, roles_from_proto(request.roles), expires, current_actor())
        except InvalidKeySpec as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(exc), "INVALID_KEY") from None
        except KeyNameTaken as exc:
            raise RequestError(grpc.StatusCode.ALREADY_EXISTS, str(exc), "KEY_EXISTS") from None
        audit_log.info("key %s (%s) created with roles %s by %s", new.info.key_id, new.info.name,
                       ",".join(sorted(new.info.roles)), current_actor())
        return keys_pb2.CreateKeyResponse(key=key_to_proto(new.info), secret=new.secret)

    @unary
    def ListKeys(self, request: keys_pb2.ListKeysRequest, context: grpc.ServicerContext):
        return keys_pb2.ListKeysResponse(keys=[key_to_proto(k) for k in self._keys.list(request.include_revoked)])

    @unary
    def RevokeKey(self, request: keys_pb2.RevokeKeyRequest, context: grpc.ServicerContext):
        if not request.key:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "key: give the key's id or name", "INVALID_KEY")
        try:
            info = self._keys.revoke(request.key)
        except KeyNotFound as exc:
            raise RequestError(grpc.StatusCode.NOT_FOUND, str(exc), "KEY_NOT_FOUND") from None
        except LastAdminKey as exc:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, str(exc), "LAST_ADMIN_KEY") from None
        audit_log.info("key %s (%s) revoked by %s", info.key_id, info.name, current_actor())
        return keys_pb2.RevokeKeyResponse(key=key_to_proto(info))
