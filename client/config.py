"""What Client and AsyncClient share: address, default timeout, channel options, service config.

Retries are gRPC's own (a service config in the channel option ``grpc.service_config``), so
they work the same in the sync and async clients and respect the call's deadline: an
idempotent call that meets UNAVAILABLE (server restarting, connection refused) is retried
with exponential backoff; calls that change state are never retried by the client.
"""

from __future__ import annotations

import enum
import json
import time
from typing import Any, Final, Sequence

import grpc

from hashmatch.client.credentials import PemSource, channel_credentials, resolve_api_key, retry_after

DEFAULT_ADDRESS: Final = "127.0.0.1:50051"
DEFAULT_TIMEOUT: Final = 30.0

# Read-only or idempotent methods: safe to send again after UNAVAILABLE.
RETRYABLE_METHODS: Final = (
    ("hashmatch.v1.MatcherService", "HashImage"),
    ("hashmatch.v1.MatcherService", "MatchImage"),
    ("hashmatch.v1.MatcherService", "MatchHashes"),
    ("hashmatch.v1.ListsService", "GetList"),
    ("hashmatch.v1.ListsService", "ListLists"),
)
SERVICES: Final = ("hashmatch.v1.MatcherService", "hashmatch.v1.ListsService")

RETRY_POLICY: Final = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

# Images are sent whole in one message; gRPC can only retry a call whose request it still
# holds, so the retry buffer must fit a large image (the defaults, 256 KiB per call, would
# make retries silently stop for most photos).
PER_RPC_RETRY_BUFFER: Final = 64 * 1024 * 1024
CHANNEL_RETRY_BUFFER: Final = 256 * 1024 * 1024
MAX_MESSAGE: Final = 64 * 1024 * 1024


class UseClientDefault(enum.Enum):
    """The type of USE_CLIENT_DEFAULT (as in httpx): "no per-call value, use the client's"."""

    USE_CLIENT_DEFAULT = "USE_CLIENT_DEFAULT"

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Final = UseClientDefault.USE_CLIENT_DEFAULT

# A per-call timeout: seconds, None for no deadline, or USE_CLIENT_DEFAULT.
Timeout = float | None | UseClientDefault


def service_config() -> dict[str, Any]:
    """The gRPC service config: retries on the idempotent methods, waitForReady off everywhere.

    There is deliberately no ``timeout`` in it: gRPC applies a service-config timeout as a
    cap (the earlier of it and the call's deadline wins), so it would stop a per-call
    ``timeout=`` from ever being longer than the default. The default timeout is instead
    set as every call's deadline by the client (see :meth:`ClientConfig.deadline`).
    """
    return {
        "methodConfig": [
            {
                "name": [{"service": service, "method": method} for service, method in RETRYABLE_METHODS],
                "retryPolicy": RETRY_POLICY,
            },
            {
                # The services' other methods: named so they are covered explicitly, no retry.
                "name": [{"service": service} for service in SERVICES],
            },
        ]
    }


class ClientConfig:
    """The configuration base of :class:`Client` and :class:`AsyncClient`."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        options: Sequence[tuple[str, Any]] = (),
        api_key: str | None = None,
        tls: bool | None = None,
        tls_ca: PemSource | None = None,
        tls_cert: PemSource | None = None,
        tls_key: PemSource | None = None,
        rate_limit_retries: int = 3,
    ) -> None:
        """``api_key``: default $HASHMATCH_API_KEY. TLS is on with ``tls=True`` (system CAs) or
        ``tls_ca`` (a PEM path or bytes); ``tls_cert``/``tls_key`` add a client certificate
        (mutual TLS). A call refused with a retry-after (rate limits) is tried again up to
        ``rate_limit_retries`` times, each after the wait the server asked for, within its deadline."""
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive, or None for no deadline")
        if rate_limit_retries < 0:
            raise ValueError("rate_limit_retries must not be negative")
        self.address = address
        self.timeout = timeout
        self.options = tuple(options)
        self.rate_limit_retries = rate_limit_retries
        self._api_key = resolve_api_key(api_key)
        self._credentials = channel_credentials(tls, tls_ca, tls_cert, tls_key)

    @property
    def uses_tls(self) -> bool:
        return self._credentials is not None

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials for the channel; None for plaintext."""
        return self._credentials

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata every call carries: the API key, when there is one."""
        return (("authorization", f"Bearer {self._api_key}"),) if self._api_key else ()

    def rate_limit_delay(self, error: grpc.RpcError, attempt: int, deadline_at: float | None) -> float | None:
        """Seconds to wait before trying a refused call again, or None to give up.

        Only a RESOURCE_EXHAUSTED that carries a retry-after qualifies: the server sends one when it
        refused the call before doing any of it, so sending it again is safe for every method.
        """
        if attempt >= self.rate_limit_retries or error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
            return None
        delay = retry_after(error.trailing_metadata())
        if delay is None:
            return None
        if deadline_at is not None and time.monotonic() + delay >= deadline_at:
            return None
        return delay

    @staticmethod
    def deadline_at(seconds: float | None) -> float | None:
        return None if seconds is None else time.monotonic() + seconds

    @staticmethod
    def remaining(deadline_at: float | None) -> float | None:
        """The timeout for the next attempt of a call that must end by ``deadline_at``."""
        return None if deadline_at is None else max(deadline_at - time.monotonic(), 0.001)

    def channel_options(self) -> list[tuple[str, Any]]:
        """gRPC channel options: ours first, the caller's after so theirs win on a clash."""
        ours: dict[str, Any] = {
            "grpc.service_config": json.dumps(service_config()),
            "grpc.enable_retries": 1,
            # Our service config is the one in force, not one a DNS TXT record might carry.
            "grpc.service_config_disable_resolution": 1,
            "grpc.per_rpc_retry_buffer_size": PER_RPC_RETRY_BUFFER,
            "grpc.retry_buffer_size": CHANNEL_RETRY_BUFFER,
            "grpc.max_send_message_length": MAX_MESSAGE,
            "grpc.max_receive_message_length": MAX_MESSAGE,
            "grpc.primary_user_agent": "hashmatch-client",
        }
        ours.update(dict(self.options))
        return list(ours.items())

    def deadline(self, timeout: Timeout) -> float | None:
        """Seconds for a call: the per-call value when given (None: no deadline), else the default."""
        if timeout is USE_CLIENT_DEFAULT:
            return self.timeout
        return timeout

    def __repr__(self) -> str:
        # Never the key itself.
        return (f"{type(self).__name__}({self.address!r}, timeout={self.timeout!r}, "
                f"api_key={'set' if self._api_key else None}, tls={self.uses_tls})")
