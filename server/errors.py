"""How the server's errors become gRPC statuses.

Every caller mistake gets its proper code and a message naming what was wrong; the machine-readable
reason travels in the trailing metadata key ``hashmatch-reason`` so SDKs can raise a precise error.
Anything else is INTERNAL, logged here with a reference id, and never echoes request data.
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Any, Callable, TypeVar

import grpc

from hashmatch.hashing import HashFormatError, ImageTooLarge, InvalidImage
from hashmatch.index import InvalidEntry, InvalidListSpec, ListExists, ListNotFound
from hashmatch.index.errors import StoreUnavailable

from .convert import BadField

REASON_KEY = "hashmatch-reason"
log = logging.getLogger("hashmatch.server")

F = TypeVar("F", bound=Callable[..., Any])


class RequestError(Exception):
    """A caller mistake found by the server itself (not by hashing or the index)."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def classify(exc: BaseException) -> tuple[grpc.StatusCode, str | None, str] | None:
    """(code, reason, message) for a caller's mistake; None for a fault of ours."""
    match exc:
        case grpc.RpcError():
            # Raised by a request iterator when the client cancels or the connection drops.
            return grpc.StatusCode.CANCELLED, None, "the client cancelled the call or the connection was lost"
        case RequestError():
            return exc.code, exc.reason, str(exc)
        case InvalidImage():
            return grpc.StatusCode.INVALID_ARGUMENT, "INVALID_IMAGE", str(exc)
        case ImageTooLarge():
            return grpc.StatusCode.RESOURCE_EXHAUSTED, "IMAGE_TOO_LARGE", str(exc)
        case HashFormatError():
            return grpc.StatusCode.INVALID_ARGUMENT, "INVALID_HASH", str(exc)
        case BadField():
            return grpc.StatusCode.INVALID_ARGUMENT, exc.reason, str(exc)
        case InvalidEntry():
            return grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ENTRY", str(exc)
        case InvalidListSpec():
            return grpc.StatusCode.INVALID_ARGUMENT, "INVALID_LIST", str(exc)
        case ListNotFound():
            return grpc.StatusCode.NOT_FOUND, "LIST_NOT_FOUND", str(exc)
        case ListExists():
            return grpc.StatusCode.ALREADY_EXISTS, "LIST_EXISTS", str(exc)
        case StoreUnavailable():
            # Not the caller's mistake, but not a bug either: the database is away for now;
            # UNAVAILABLE tells clients a retry may succeed (matching keeps working meanwhile).
            return grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE", f"{exc}; the change was not made, retry later"
    return None


def status_of(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str | None, str]:
    known = classify(exc)
    if known is not None:
        return known
    ref = uuid.uuid4().hex[:12]
    # The traceback names code locations, not request contents.
    log.error("internal error in %s (ref %s): %s", method, ref, type(exc).__name__, exc_info=exc)
    return grpc.StatusCode.INTERNAL, None, f"internal error (ref {ref}); the server log has the details"


def _abort(context: grpc.ServicerContext, exc: BaseException, method: str) -> None:
    code, reason, message = status_of(exc, method)
    if reason:
        context.set_trailing_metadata(((REASON_KEY, reason),))
    context.abort(code, message)


# Handlers raise (RequestError or a library error) instead of calling context.abort themselves:
# abort raises a bare Exception, which these wrappers could not tell from a fault.


def unary(fn: F) -> F:
    """For handlers that return one response."""

    @functools.wraps(fn)
    def wrapper(self, request_or_iterator, context):
        try:
            return fn(self, request_or_iterator, context)
        except Exception as exc:  # noqa: BLE001 - every exception becomes a status
            _abort(context, exc, fn.__name__)

    return wrapper  # type: ignore[return-value]


def streaming(fn: F) -> F:
    """For handlers that yield responses."""

    @functools.wraps(fn)
    def wrapper(self, request_or_iterator, context):
        try:
            yield from fn(self, request_or_iterator, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, exc, fn.__name__)

    return wrapper  # type: ignore[return-value]
