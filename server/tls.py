"""TLS and mutual TLS, by configuration.

- ``cert_file`` + ``key_file``: the server speaks TLS only; a plaintext client cannot connect.
- ``client_ca_file`` as well: mutual TLS. Every client must present a certificate signed by that
  CA, or the handshake fails before any RPC. (gRPC Python cannot ask for a certificate without
  requiring it: its servers either require and verify one or never request one.)
- ``client_roles``: a verified certificate whose common name or a subject alternative name is a
  key of this mapping is a principal with those roles, no API key needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import grpc

from hashmatch.index.keys import check_roles


@dataclass(frozen=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    # Certificate identity (CN or SAN) -> roles.
    client_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def mutual(self) -> bool:
        return self.client_ca_file is not None

    def __post_init__(self) -> None:
        if self.client_roles and not self.mutual:
            raise ValueError("mapping client certificates to roles needs a client CA (--tls-client-ca)")


class TlsFileError(ValueError):
    """A certificate or key file that cannot be used; the message names the file, not its contents."""


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsFileError(f"{what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TlsFileError(f"{what} {path} is not PEM (no -----BEGIN line)")
    return data


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    key = _read(tls.key_file, "TLS key")
    cert = _read(tls.cert_file, "TLS certificate")
    client_ca = _read(tls.client_ca_file, "TLS client CA") if tls.client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca, require_client_auth=tls.mutual)


def peer_identities(context: grpc.ServicerContext) -> list[str]:
    """The verified client certificate's common name and subject alternative names (none without mTLS)."""
    auth = context.auth_context()
    names: list[str] = []
    for prop in ("x509_common_name", "x509_subject_alternative_name"):
        for value in auth.get(prop, ()):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if text not in names:
                names.append(text)
    return names


def parse_client_role(text: str) -> tuple[str, frozenset[str]]:
    """``IDENTITY=ROLE[,ROLE]`` (the --tls-client-role flag) -> (identity, roles)."""
    identity, sep, roles = text.rpartition("=")
    if not sep or not identity:
        raise ValueError(f"expected IDENTITY=ROLE[,ROLE] (e.g. pipeline.example.com=match), got {text!r}")
    return identity, check_roles(r for r in roles.split(",") if r.strip())
