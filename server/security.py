"""Security wiring at start-up: the key store (and the first admin key), TLS or plaintext binding,
and the warnings an operator must see at every start."""

from __future__ import annotations

import logging
import stat

import grpc

from hashmatch.index.keys import KeyStore

from .config import ServerConfig
from .tls import server_credentials

log = logging.getLogger("hashmatch.server")


def open_keys(config: ServerConfig) -> KeyStore | None:
    """The key store when auth is on (creating the first admin key on a new store); else None."""
    warn_if_others_can_read(config)
    if not config.auth:
        log.warning(
            "authentication is OFF (--insecure-no-auth): anyone who can reach this port can read "
            "match results, change and delete lists; use it only on a trusted loopback"
        )
        return None
    # Replicas on one PostgreSQL store share its keys too (index/keys.py).
    keys = KeyStore(url=config.store_url) if config.store_url else KeyStore(config.database_path)
    try:
        created = keys.bootstrap_admin(config.admin_key_path)
    except BaseException:
        keys.close()
        raise
    if created is not None:
        # Where, never what: the key itself is only in the file.
        log.warning(
            "created the first admin key %s (roles admin, curate, match) and wrote it to %s, readable "
            "only by you; use it with: export HASHMATCH_API_KEY=\"$(cat %s)\"",
            created.info.key_id, config.admin_key_path, config.admin_key_path,
        )
    return keys


def bind(grpc_server: grpc.Server, address: str, config: ServerConfig) -> int:
    """Bind with TLS when configured; returns the port (raises when it cannot bind)."""
    if config.tls is not None:
        port = grpc_server.add_secure_port(address, server_credentials(config.tls))
    else:
        port = grpc_server.add_insecure_port(address)
        host = address.rsplit(":", 1)[0].strip("[]")
        if config.auth and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("unix"):
            log.warning(
                "serving %s without TLS: API keys and images cross the network in clear; "
                "use --tls-cert/--tls-key, or a TLS proxy in front", address,
            )
    if port == 0:
        raise OSError(f"could not bind {address}")
    return port


def warn_if_others_can_read(config: ServerConfig) -> None:
    """The data folder holds the lists (hash values) and admin.key: other users should not read it."""
    try:
        mode = config.data_dir.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "the data folder %s is open to other users (mode %o); it holds the hash lists: chmod 700 it",
            config.data_dir, stat.S_IMODE(mode),
        )
