"""The rate-limit shortcut: credentials just refused for rate are refused again on sight.

A flood keeps resending what was just refused. Remembering the refusal for a moment lets the
shortcut refuse the next call on the polling thread's first look at it, before its request is
parsed or its key looked up, so a refused call costs a fraction of a normal one.
"""

from __future__ import annotations

import threading
from typing import Callable

import grpc

from .auth import Refusal, bearer_token, credential_digest
from .handlers import refusing

# How long the same credentials, once refused for rate, are refused again without any work.
SHORTCUT_SECONDS = 1.0
SHORTCUT_ENTRIES = 10_000


class RecentRefusals:
    """Credentials (their digest) recently refused for rate, and until when the refusal stands.

    It only ever refuses; what it admits still goes through authentication and the buckets. Keyed
    by the digest of the exact credentials the server verified, so no one can get another's calls
    refused.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[bytes, float] = {}

    def note(self, digest: bytes, wait: float) -> None:
        now = self._clock()
        with self._lock:
            if len(self._until) >= SHORTCUT_ENTRIES:
                self._until = {d: t for d, t in self._until.items() if t > now}
                if len(self._until) >= SHORTCUT_ENTRIES:
                    return
            self._until[digest] = now + min(wait, SHORTCUT_SECONDS)

    def wait_for(self, digest: bytes) -> float:
        """Seconds the refusal of these credentials still stands (0: none)."""
        until = self._until.get(digest)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            with self._lock:
                self._until.pop(digest, None)
            return 0.0
        return left


class RateLimitShortcut(grpc.ServerInterceptor):
    """Refuses a match call at once when its credentials were refused for rate a moment ago.

    Sits before AuthInterceptor (see RecentRefusals for why this is safe).
    """

    def __init__(self, recent: RecentRefusals, describe: str, service: str) -> None:
        self._recent = recent
        self._message = f"over this key's match rate limit ({describe})"
        self._prefix = f"/{service}/"

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or not details.method.startswith(self._prefix) or handler.request_streaming:
            return handler
        try:
            token = bearer_token(details.invocation_metadata)
        except Refusal:
            return handler
        wait = self._recent.wait_for(credential_digest(token)) if token else 0.0
        if not wait:
            return handler
        return refusing(handler, grpc.StatusCode.RESOURCE_EXHAUSTED, f"{self._message}; retry in {wait:.2f}s",
                        "RATE_LIMITED", wait)
