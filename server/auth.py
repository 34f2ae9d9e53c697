"""Who is calling, and may they: API keys and client certificates -> a principal with roles.

Every RPC except health and reflection needs a principal holding its service's role:

    hashmatch.v1.MatcherService  match     upload pipelines
    hashmatch.v1.ListsService    curate    trust-and-safety staff
    hashmatch.v1.KeysService     admin     API keys
    hashmatch.v1.AdminService    admin     reading the server's settings (read-only)

A service not in that table needs ``admin``: a service added later is closed until it is given a
role. No credentials or a bad key: UNAUTHENTICATED. A valid key without the role:
PERMISSION_DENIED. The principal of the running RPC is ``current_principal()``, for the audit
trail. Error messages and logs never contain a presented key.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import grpc

from hashmatch.index.errors import StoreUnavailable
from hashmatch.index.keys import ROLES, AuthenticationFailed, KeyStore, redact_keys

from .handlers import Release, gated, refuse, refusing, split_method
from .tls import peer_identities

log = logging.getLogger("hashmatch.auth")
audit_log = logging.getLogger("hashmatch.audit")

ROLE_OF_SERVICE: Mapping[str, str] = {
    "hashmatch.v1.MatcherService": "match",
    "hashmatch.v1.ListsService": "curate",
    "hashmatch.v1.KeysService": "admin",
    "hashmatch.v1.AdminService": "admin",
}
OPEN_SERVICES = frozenset({
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
})
DEFAULT_ROLE = "admin"
# Methods whose every call goes to the audit log: changes, and the one read of listed values.
AUDITED_METHODS = frozenset({
    "/hashmatch.v1.ListsService/CreateList",
    "/hashmatch.v1.ListsService/UpdateList",
    "/hashmatch.v1.ListsService/DeleteList",
    "/hashmatch.v1.ListsService/UploadHashes",
    "/hashmatch.v1.ListsService/AddImages",
    "/hashmatch.v1.ListsService/RemoveHashes",
    "/hashmatch.v1.ListsService/ExportHashes",
    "/hashmatch.v1.KeysService/CreateKey",
    "/hashmatch.v1.KeysService/RevokeKey",
})
# Our keys are 80 characters; anything much longer is refused without a lookup.
MAX_CREDENTIAL_CHARS = 256
REASON_NO_CREDENTIALS = "MISSING_CREDENTIALS"
REASON_BAD_CREDENTIALS = "INVALID_CREDENTIALS"
REASON_ROLE = "ROLE_REQUIRED"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a key, a client certificate, or everyone when auth is off."""

    name: str
    roles: frozenset[str]
    key_id: str | None = None
    via: str = "api-key"  # "api-key", "certificate" or "no-auth"
    # SHA-256 of the key as sent: lets limits.py recognise the same credentials again cheaply.
    credential_digest: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def actor(self) -> str:
        """How the audit trail names the caller: unambiguous over time (names can be reused)."""
        if self.via == "api-key":
            return f"{self.name} (key {self.key_id})"
        if self.via == "certificate":
            return f"certificate {self.name}"
        return "anonymous (auth off)"

    @property
    def bucket_id(self) -> str:
        """What rate limits count against: one key, or one certificate identity."""
        return self.key_id or f"{self.via}:{self.name}"


NO_AUTH = Principal("anonymous", frozenset(ROLES), None, "no-auth")

_current: ContextVar[Principal | None] = ContextVar("hashmatch_principal", default=None)


def current_principal() -> Principal | None:
    """The principal of the RPC running in this context; None outside one (or on open services)."""
    return _current.get()


def current_actor() -> str:
    """The audit trail's name for the caller of the running RPC ("" outside one)."""
    principal = _current.get()
    return principal.actor if principal else ""


def credential_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def required_role(service: str) -> str | None:
    """The role a service needs; None for the open ones."""
    if service in OPEN_SERVICES:
        return None
    return ROLE_OF_SERVICE.get(service, DEFAULT_ROLE)


class Refusal(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def bearer_token(metadata: Sequence[Any] | None) -> str | None:
    """The key in ``authorization: Bearer <key>``; None when there is no such header.

    Raises Refusal for a header that is there but unusable. Messages never quote the value.
    """
    values = [value for key, value in (metadata or ()) if key == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "send one authorization header, not several",
                      REASON_BAD_CREDENTIALS)
    value = values[0]
    if not isinstance(value, str):
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "the authorization header must be text",
                      REASON_BAD_CREDENTIALS)
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED,
                      "the authorization header must be 'Bearer <API key>'", REASON_BAD_CREDENTIALS)
    token = token.strip()
    if len(token) > MAX_CREDENTIAL_CHARS:
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED,
                      f"the API key is malformed ({len(token)} characters; keys are far shorter)",
                      REASON_BAD_CREDENTIALS)
    return token


class Authenticator:
    """Turns a key (or, under mTLS, a mapped client certificate) into a principal."""

    def __init__(self, keys: KeyStore, certificate_roles: Mapping[str, frozenset[str]] | None = None) -> None:
        self.keys = keys
        self.certificate_roles = dict(certificate_roles or {})

    def authenticate(self, token: str | None, context: grpc.ServicerContext) -> Principal:
        # A key, when sent, decides: a client with a mapped certificate may still act as a key.
        if token is not None:
            digest = credential_digest(token)
            try:
                info = self.keys.authenticate(token, digest=digest)
            except AuthenticationFailed as exc:
                raise Refusal(grpc.StatusCode.UNAUTHENTICATED, str(exc), REASON_BAD_CREDENTIALS) from None
            except StoreUnavailable:
                # A key this replica has not verified before, while the shared key store is away.
                raise Refusal(grpc.StatusCode.UNAVAILABLE,
                              "the key store cannot be reached to check this key; retry later",
                              "STORE_UNAVAILABLE") from None
            return Principal(info.name, info.roles, info.key_id, "api-key", digest)
        for identity in peer_identities(context) if self.certificate_roles else ():
            roles = self.certificate_roles.get(identity)
            if roles:
                return Principal(identity, roles, None, "certificate")
        raise _no_credentials()


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates and authorises every RPC; sets current_principal(); writes the audit log.

    ``authenticator=None`` turns authentication off: every call runs as NO_AUTH (all roles).
    """

    def __init__(self, authenticator: Authenticator | None) -> None:
        self._auth = authenticator

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None:
            return None
        service, _ = split_method(details.method)
        role = required_role(service)
        if role is None:
            return handler
        if self._auth is None:
            return gated(handler, functools.partial(self._admit_no_auth, details.method))
        # What needs no database is checked here, on the polling thread: a call without usable
        # credentials is refused before its request is even parsed.
        try:
            token = bearer_token(details.invocation_metadata)
        except Refusal as refusal:
            return refusing(handler, refusal.code, str(refusal), refusal.reason)
        if token is None and not self._auth.certificate_roles:
            refusal = _no_credentials()
            return refusing(handler, refusal.code, str(refusal), refusal.reason)
        return gated(handler, functools.partial(self._admit, token, role, details.method))

    def _admit_no_auth(self, method: str, request: Any, context: grpc.ServicerContext) -> tuple[Any, Release]:
        _current.set(NO_AUTH)
        return _audited(method, NO_AUTH, request, context)

    def _admit(
        self, token: str | None, role: str, method: str, request: Any, context: grpc.ServicerContext
    ) -> tuple[Any, Release]:
        assert self._auth is not None
        try:
            principal = self._auth.authenticate(token, context)
        except Refusal as refusal:
            log.info("refused %s: %s (peer %s)", method, refusal.reason, context.peer())
            refuse(context, refusal.code, str(refusal), refusal.reason)
        if role not in principal.roles:
            log.info("refused %s to %s: lacks the %s role", method, principal.actor, role)
            refuse(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{principal.actor} lacks the '{role}' role that {method.lstrip('/')} needs "
                f"(it has: {', '.join(sorted(principal.roles))})",
                REASON_ROLE,
            )
        _current.set(principal)
        return _audited(method, principal, request, context)


def _no_credentials() -> Refusal:
    return Refusal(
        grpc.StatusCode.UNAUTHENTICATED,
        "this call needs an API key: send metadata 'authorization: Bearer <key>' "
        "(hashmatch --api-key-file FILE, or HASHMATCH_API_KEY)",
        REASON_NO_CREDENTIALS,
    )


def _audited(method: str, principal: Principal, request: Any, context: grpc.ServicerContext) -> tuple[Any, Release]:
    """Pass the request on; for audited methods, log who did what to which target, and how it ended."""
    if method not in AUDITED_METHODS:
        return request, _nothing
    target = _Target(request)

    def release(error: BaseException | None) -> None:
        if error is None:
            outcome = "OK"
        else:
            code = context.code()
            outcome = code.name if isinstance(code, grpc.StatusCode) else type(error).__name__
        audit_log.info("%s by %s on %s: %s", method.rsplit("/", 1)[-1], principal.actor, target.name or "-", outcome)

    return target.request, release


def _nothing(_error: BaseException | None) -> None:
    pass


class _Target:
    """The list or key a request is about; for a stream, taken from its first message as it passes."""

    def __init__(self, request: Any) -> None:
        self.name = ""
        if hasattr(request, "DESCRIPTOR"):
            self.name = _target_of(request)
            self.request = request
        else:
            self.request = self._watch(request)

    def _watch(self, requests: Iterator[Any]) -> Iterator[Any]:
        for message in requests:
            if not self.name:
                self.name = _target_of(message)
            yield message


def _target_of(message: Any) -> str:
    for field in ("list_name", "name", "key"):
        value = getattr(message, field, "")
        if isinstance(value, str) and value:
            # Names are validated elsewhere; cut here so a hostile one cannot flood the log. A
            # whole API key (RevokeKey given a leaked key itself) never reaches the audit log.
            return redact_keys(value[:256])[:128]
    return ""
