"""What a client proves and how it talks: the API key, TLS files, and the server's retry-after.

The key travels as ``authorization: Bearer <key>`` metadata on every call. It is never part of
a repr, an error message or a log line. Without TLS it crosses the network in clear: use TLS
(``tls_ca=``, or ``tls=True`` for the system's CAs) for anything but loopback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final, Iterable

import grpc

API_KEY_ENV: Final = "HASHMATCH_API_KEY"
RETRY_AFTER_KEY: Final = "retry-after"
# The longest wait the SDK accepts from a server's retry-after before giving up instead.
MAX_RETRY_AFTER: Final = 30.0

# A PEM file's path, or its contents as bytes.
PemSource = str | os.PathLike[str] | bytes


def resolve_api_key(api_key: str | None) -> str | None:
    """The key given, else $HASHMATCH_API_KEY, else None; surrounding whitespace dropped."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if key is None:
        return None
    key = key.strip()
    if not key:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        # Never quote the key: this message may end up in a log.
        raise ValueError("the API key contains whitespace or control characters; check where it was read from")
    return key


def read_api_key_file(path: str | os.PathLike[str]) -> str:
    """The key in a file such as the data folder's admin.key (first line, trimmed)."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.strip().splitlines()
    if not lines:
        raise ValueError(f"{path} holds no API key")
    return lines[0].strip()


def read_pem(source: PemSource | None) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


def channel_credentials(
    tls: bool | None, ca: PemSource | None, cert: PemSource | None, key: PemSource | None
) -> grpc.ChannelCredentials | None:
    """TLS credentials when TLS is asked for (``tls=True`` or any TLS file), else None (plaintext)."""
    if (cert is None) != (key is None):
        raise ValueError("a client certificate and its key go together: give both tls_cert and tls_key")
    if tls is False:
        if ca is not None or cert is not None:
            raise ValueError("tls=False but TLS files were given")
        return None
    if not tls and ca is None and cert is None:
        return None
    # root_certificates=None: the system's CAs (grpc's bundled roots).
    return grpc.ssl_channel_credentials(read_pem(ca), read_pem(key), read_pem(cert))


def retry_after(metadata: Iterable[Any] | None) -> float | None:
    """The server's retry-after, in seconds, from trailing metadata; None when absent or unusable."""
    for name, value in metadata or ():
        if name == RETRY_AFTER_KEY:
            try:
                seconds = float(value.decode() if isinstance(value, bytes) else value)
            except ValueError:
                return None
            return seconds if 0 <= seconds <= MAX_RETRY_AFTER else None
    return None
