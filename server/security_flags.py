"""The server's command-line flags for authentication, TLS and abuse limits, and the config they make."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .limits import Limits
from .tls import TlsConfig, TlsFileError, parse_client_role, server_credentials


def _client_role(text: str) -> tuple[str, frozenset[str]]:
    try:
        return parse_client_role(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    limits = Limits()
    auth = parser.add_argument_group("authentication and TLS (docs/security.md)")
    auth.add_argument(
        "--insecure-no-auth", action="store_true",
        help="serve without API keys: every caller may do everything (logs a warning at every start)",
    )
    auth.add_argument("--tls-cert", type=Path, metavar="PEM", help="server certificate chain: serve TLS only")
    auth.add_argument("--tls-key", type=Path, metavar="PEM", help="the server certificate's private key")
    auth.add_argument(
        "--tls-client-ca", type=Path, metavar="PEM",
        help="mutual TLS: every client must present a certificate signed by this CA",
    )
    auth.add_argument(
        "--tls-require-client-cert", action="store_true",
        help="state that client certificates are required (they always are with --tls-client-ca)",
    )
    auth.add_argument(
        "--tls-client-role", dest="tls_client_roles", action="append", type=_client_role, default=[],
        metavar="IDENTITY=ROLE[,ROLE]",
        help="a client certificate with this common name or SAN acts with these roles, no key needed (repeatable)",
    )
    abuse = parser.add_argument_group("abuse limits (per key, per server process)")
    abuse.add_argument("--match-rate", type=float, default=limits.match_requests_per_second, metavar="N",
                       help="match requests a second per key (0: no limit; default %(default)g)")
    abuse.add_argument("--match-burst", type=float, default=limits.match_request_burst, metavar="N",
                       help="match requests a key may send at once after a pause (default %(default)g)")
    abuse.add_argument("--match-bytes-rate", type=float, default=limits.match_bytes_per_second, metavar="BYTES",
                       help="image bytes a second per key (0: no limit; default %(default)g)")
    abuse.add_argument("--max-concurrent-per-key", type=int, default=limits.max_concurrent_per_key, metavar="N",
                       help="calls in progress per key (0: no limit; default %(default)s)")
    abuse.add_argument("--max-concurrent-rpcs", type=int, default=256, metavar="N",
                       help="calls in progress or waiting, all callers together (default %(default)s)")
    abuse.add_argument("--max-upload-entries", type=int, default=limits.max_upload_entries, metavar="N",
                       help="entries in one upload (default %(default)s)")
    abuse.add_argument("--max-lists", type=int, default=limits.max_lists, metavar="N",
                       help="lists on the server (default %(default)s)")
    abuse.add_argument("--max-query-hashes", type=int, default=1024, metavar="N",
                       help="hashes in one MatchHashes call (default %(default)s)")


def config_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """ServerConfig keyword arguments from the flags above; a bad combination is a usage error."""
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if (args.tls_client_ca or args.tls_client_roles) and not args.tls_cert:
        parser.error("--tls-client-ca and --tls-client-role need --tls-cert and --tls-key")
    if args.tls_require_client_cert and not args.tls_client_ca:
        parser.error("--tls-require-client-cert needs --tls-client-ca (the CA client certificates must chain to)")
    if args.tls_client_roles and not args.tls_client_ca:
        parser.error("--tls-client-role needs --tls-client-ca: only verified certificates may carry roles")
    if args.insecure_no_auth and args.tls_client_roles:
        parser.error("--tls-client-role grants roles, which --insecure-no-auth turns off")
    tls = (
        TlsConfig(args.tls_cert, args.tls_key, args.tls_client_ca, dict(args.tls_client_roles))
        if args.tls_cert else None
    )
    if tls is not None:
        try:
            server_credentials(tls)  # unreadable or non-PEM files: a usage error now, not a traceback
        except TlsFileError as exc:
            parser.error(str(exc))
    burst = max(args.match_burst, 1.0)
    limits = Limits(
        match_requests_per_second=args.match_rate,
        match_request_burst=burst,
        match_bytes_per_second=args.match_bytes_rate,
        match_bytes_burst=max(args.match_bytes_rate, float(args.max_message_bytes)),
        max_concurrent_per_key=args.max_concurrent_per_key,
        max_upload_entries=args.max_upload_entries,
        max_lists=args.max_lists,
    )
    return {
        "auth": not args.insecure_no_auth,
        "tls": tls,
        "limits": limits,
        "max_concurrent_rpcs": args.max_concurrent_rpcs,
        "max_query_hashes": args.max_query_hashes,
    }
