"""API keys as the SDK shows them (KeysService, admin role), and the list export's entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from hashmatch.client.convert import algorithm_from_proto
from hashmatch.client.models import HashEntry
from hashmatch.v1 import keys_pb2, lists_pb2

ROLES = ("match", "curate", "admin")
_ROLE_VALUES = {"match": keys_pb2.ROLE_MATCH, "curate": keys_pb2.ROLE_CURATE, "admin": keys_pb2.ROLE_ADMIN}
_ROLE_NAMES = {value: name for name, value in _ROLE_VALUES.items()}


@dataclass(frozen=True)
class ApiKey:
    """A key's public facts; the secret is never readable after creation."""

    id: str
    name: str
    roles: frozenset[str]
    created: datetime
    expires: datetime | None
    revoked: datetime | None
    created_by: str

    @property
    def state(self) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= datetime.now(timezone.utc):
            return "expired"
        return "active"


@dataclass(frozen=True)
class CreatedKey:
    """A key just created. ``secret`` is the whole key to send (``hm_<id>_<secret>``): shown once."""

    key: ApiKey
    secret: str

    def __repr__(self) -> str:
        return f"CreatedKey(key={self.key!r}, secret=<hidden>)"


def roles_to_proto(roles: Iterable[str]) -> list[int]:
    values = []
    for role in roles:
        name = role.strip().lower()
        if name not in _ROLE_VALUES:
            raise ValueError(f"unknown role {role!r}: roles are {', '.join(ROLES)}")
        values.append(_ROLE_VALUES[name])
    return values


def _when(stamp: Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=timezone.utc) if present else None


def api_key(message: keys_pb2.ApiKey) -> ApiKey:
    return ApiKey(
        id=message.id,
        name=message.name,
        roles=frozenset(_ROLE_NAMES[r] for r in message.roles if r in _ROLE_NAMES),
        created=message.create_time.ToDatetime(tzinfo=timezone.utc),
        expires=_when(message.expire_time, message.HasField("expire_time")),
        revoked=_when(message.revoke_time, message.HasField("revoke_time")),
        created_by=message.created_by,
    )


def create_key_request(name: str, roles: Iterable[str], expires: datetime | None) -> keys_pb2.CreateKeyRequest:
    request = keys_pb2.CreateKeyRequest(name=name, roles=roles_to_proto(roles))
    if expires is not None:
        if expires.tzinfo is None:
            raise ValueError("expires must be timezone-aware (e.g. datetime.now(timezone.utc) + timedelta(days=30))")
        request.expire_time.FromDatetime(expires)
    return request


def exported_entry(message: lists_pb2.HashEntry) -> HashEntry:
    """An exported entry, ready to upload again (label and source as they were)."""
    return HashEntry(
        algorithm=algorithm_from_proto(message.algorithm),
        hash=message.hash,
        label=message.label if message.HasField("label") else None,
        id=message.id,
        source=message.source if message.HasField("source") else None,
    )
