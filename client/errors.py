"""One exception tree for every failed call, keeping the gRPC status code and details.

The class is chosen first by the machine-readable reason the server puts in the trailing
metadata key ``hashmatch-reason`` (e.g. ``INVALID_IMAGE`` -> :class:`InvalidImage`), then by
the status code (``NOT_FOUND`` -> :class:`NotFound`), falling back to :class:`Internal`.
Callers can therefore catch as broadly (``HashmatchError``) or as narrowly
(``ListNotFound``) as they need, and ``.code`` / ``.details`` are always there.
"""

from __future__ import annotations

from typing import Any, Iterable

import grpc

from hashmatch.client.credentials import retry_after

REASON_METADATA_KEY = "hashmatch-reason"


class HashmatchError(Exception):
    """A hashmatch call failed. ``code`` is the gRPC status, ``details`` the server's message.

    ``retry_after`` is the wait, in seconds, the server asked for before a retry (rate limits), if any.
    """

    retry_after: float | None = None

    def __init__(self, code: grpc.StatusCode, details: str, reason: str | None = None) -> None:
        self.code = code
        self.details = details
        self.reason = reason
        super().__init__(code, details, reason)

    @property
    def code_name(self) -> str:
        """The status code's name as gRPC spells it, e.g. ``INVALID_ARGUMENT``."""
        return self.code.name

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}" if self.details else self.code.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.name}, details={self.details!r}, reason={self.reason!r})"


class InvalidArgument(HashmatchError):
    """INVALID_ARGUMENT: the request itself is wrong (bad name, bad hash, undecodable image)."""


class NotFound(HashmatchError):
    """NOT_FOUND."""


class AlreadyExists(HashmatchError):
    """ALREADY_EXISTS."""


class ResourceExhausted(HashmatchError):
    """RESOURCE_EXHAUSTED: too large, too many, or over a quota."""


class PermissionDenied(HashmatchError):
    """PERMISSION_DENIED."""


class Unauthenticated(HashmatchError):
    """UNAUTHENTICATED."""


class Unavailable(HashmatchError):
    """UNAVAILABLE: the server could not be reached (idempotent calls were already retried)."""


class DeadlineExceeded(HashmatchError):
    """DEADLINE_EXCEEDED: the call's timeout ran out."""


class FailedPrecondition(HashmatchError):
    """FAILED_PRECONDITION: the system is not in a state the call needs."""


class Internal(HashmatchError):
    """Any other status (INTERNAL, UNKNOWN, UNIMPLEMENTED, CANCELLED, ...); ``code`` says which."""


class InvalidImage(InvalidArgument):
    """The image could not be decoded (reason ``INVALID_IMAGE``)."""


class InvalidHash(InvalidArgument):
    """A hash is not the hex form its algorithm uses (reason ``INVALID_HASH``)."""


class ImageTooLarge(ResourceExhausted):
    """The image exceeds the server's size or pixel limit (reason ``IMAGE_TOO_LARGE``)."""


class ListNotFound(NotFound):
    """No list has that name (reason ``LIST_NOT_FOUND``)."""


class ListExists(AlreadyExists):
    """A list with that name already exists (reason ``LIST_EXISTS``)."""


class RateLimited(ResourceExhausted):
    """Over the key's match rate (reason ``RATE_LIMITED``); the SDK already retried per retry-after."""


class TooManyConcurrent(ResourceExhausted):
    """The key has as many calls in progress as the server allows (reason ``TOO_MANY_CONCURRENT``)."""


class KeyNotFound(NotFound):
    """No API key has that id or name (reason ``KEY_NOT_FOUND``)."""


class KeyExists(AlreadyExists):
    """An active API key already has that name (reason ``KEY_EXISTS``)."""


_BY_CODE: dict[grpc.StatusCode, type[HashmatchError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}

_BY_REASON: dict[str, type[HashmatchError]] = {
    "INVALID_IMAGE": InvalidImage,
    "INVALID_HASH": InvalidHash,
    "IMAGE_TOO_LARGE": ImageTooLarge,
    "LIST_NOT_FOUND": ListNotFound,
    "LIST_EXISTS": ListExists,
    "RATE_LIMITED": RateLimited,
    "TOO_MANY_CONCURRENT": TooManyConcurrent,
    "KEY_NOT_FOUND": KeyNotFound,
    "KEY_EXISTS": KeyExists,
}

# Stream items carry the status as a bare number (hashmatch.v1.Error.code).
_CODE_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def error_class(code: grpc.StatusCode, reason: str | None = None) -> type[HashmatchError]:
    base = _BY_CODE.get(code, Internal)
    finer = _BY_REASON.get(reason or "")
    # A reason only refines the class its code implies: a server that sent, say,
    # INTERNAL with reason INVALID_IMAGE must not be reported as a client mistake.
    if finer is not None and issubclass(finer, base):
        return finer
    return base


def make_error(code: grpc.StatusCode, details: str, reason: str | None = None) -> HashmatchError:
    return error_class(code, reason)(code, details, reason)


def status_code_from_number(number: int) -> grpc.StatusCode:
    return _CODE_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def error_from_status(number: int, message: str) -> HashmatchError:
    """An error for a stream item's ``hashmatch.v1.Error`` (code number, message, no reason)."""
    return make_error(status_code_from_number(number), message)


def _reason(metadata: Iterable[Any] | None) -> str | None:
    # Sync calls give a tuple of _Metadatum(key, value); grpc.aio gives a Metadata whose
    # iteration yields (key, value) pairs. Both unpack as pairs.
    for key, value in metadata or ():
        if key == REASON_METADATA_KEY:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def from_rpc_error(error: grpc.RpcError) -> HashmatchError:
    """Translate a grpc (sync or aio) RpcError into the matching HashmatchError."""
    code_fn = getattr(error, "code", None)
    code = code_fn() if callable(code_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details_fn = getattr(error, "details", None)
    details = (details_fn() if callable(details_fn) else None) or ""
    trailing_fn = getattr(error, "trailing_metadata", None)
    trailing = trailing_fn() if callable(trailing_fn) else None
    made = make_error(code, details, _reason(trailing))
    made.retry_after = retry_after(trailing)
    return made
