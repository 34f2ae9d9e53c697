"""The CLI's credentials and TLS options, ``hashmatch keys ...`` and ``hashmatch lists export``.

``hashmatch keys ... --data-dir DIR`` works on the data folder directly, by running
``python -m hashmatch.server keys ...`` (the server package does it; this thin client must not
import it). Without --data-dir the keys commands go through the server's KeysService (admin key).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from hashmatch.client import output
from hashmatch.client.credentials import API_KEY_ENV, read_api_key_file
from hashmatch.client.keys import ROLES, ApiKey

# Global options that take a value (cli._serve_args skips them when looking for the command).
VALUE_OPTIONS = ("--api-key", "--api-key-file", "--tls-ca", "--tls-cert", "--tls-key")
FLAG_OPTIONS = ("--tls",)

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def add_global_options(group: argparse._ArgumentGroup, default: Any) -> None:
    group.add_argument("--api-key", metavar="KEY", default=default,
                       help=f"API key (default: ${API_KEY_ENV}; prefer --api-key-file: arguments show in ps)")
    group.add_argument("--api-key-file", metavar="FILE", type=Path, default=default,
                       help="read the API key from FILE, e.g. the data folder's admin.key")
    group.add_argument("--tls", action="store_true", default=default,
                       help="connect with TLS, trusting the system's CAs")
    group.add_argument("--tls-ca", metavar="PEM", type=Path, default=default,
                       help="connect with TLS, trusting this CA")
    group.add_argument("--tls-cert", metavar="PEM", type=Path, default=default,
                       help="client certificate, for mutual TLS (with --tls-key)")
    group.add_argument("--tls-key", metavar="PEM", type=Path, default=default, help="the client certificate's key")


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """Client(...) keyword arguments from the global options. ValueError for a bad combination."""
    api_key = getattr(args, "api_key", None)
    key_file = getattr(args, "api_key_file", None)
    if api_key and key_file:
        raise ValueError("give --api-key or --api-key-file, not both")
    if key_file:
        api_key = read_api_key_file(key_file)
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if (cert is None) != (key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    return {
        "api_key": api_key,
        "tls": True if getattr(args, "tls", None) else None,
        "tls_ca": getattr(args, "tls_ca", None),
        "tls_cert": cert,
        "tls_key": key,
    }


# -- keys --

def expiry_arg(text: str) -> datetime:
    """``30d``, ``12h``, ``90m``, ``2w`` from now, or an ISO 8601 time (UTC unless it says otherwise)."""
    found = _DURATION.match(text.strip())
    if found:
        return datetime.now(timezone.utc) + timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration (30d, 12h, 90m) or an ISO time, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def roles_arg(text: str) -> list[str]:
    roles = [r.strip().lower() for r in text.split(",") if r.strip()]
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown role {unknown[0]!r}: roles are {', '.join(ROLES)}")
    return roles


def add_keys_commands(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    keys = command(commands, "keys", cmd_keys_help, "manage API keys (admin key, or --data-dir offline)")
    sub_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND")

    def keys_command(name: str, handler: Callable[..., int], summary: str) -> argparse.ArgumentParser:
        sub = command(sub_commands, name, handler, summary)
        sub.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                         help="work on this data folder directly (server stopped or not), not through the server")
        sub.add_argument("--store", default=None, metavar="URL",
                         help="work on this postgresql:// store directly (replicas' shared keys); "
                              "--store env reads $HASHMATCH_STORE_URL, keeping the password off the command line")
        return sub

    sub = keys_command("create", cmd_keys_create, "create a key; it is printed once, on stdout")
    sub.add_argument("name", metavar="NAME", help="who holds the key (shown in the audit log)")
    sub.add_argument("--role", dest="roles", action="extend", type=roles_arg, required=True, metavar="ROLE",
                     help=f"repeatable or comma-separated: {', '.join(ROLES)}")
    sub.add_argument("--expires", default=None, metavar="WHEN",
                     help="30d, 12h, 90m, 2w from now, or an ISO 8601 time (default: never)")
    sub = keys_command("ls", cmd_keys_ls, "list keys (never their secrets)")
    sub.add_argument("--all", action="store_true", help="include revoked keys")
    sub = keys_command("revoke", cmd_keys_revoke, "revoke a key at once")
    sub.add_argument("key", metavar="KEY", help="the key's id, or the name of an active key")


def add_export_command(lists_commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    sub = command(lists_commands, "export", cmd_lists_export,
                  "write a list's entries, hash values included, as CSV (curate role; audited)")
    sub.add_argument("list_name", metavar="LIST")
    sub.add_argument("--output", "-o", type=Path, default=None, metavar="FILE", help="default: stdout")


def _offline(args: argparse.Namespace, *extra: str) -> int:
    """Run the server package's offline key command on args.data_dir or args.store; its output is ours."""
    where = ["--data-dir", str(args.data_dir)] if args.data_dir is not None else (
        [] if args.store == "env" else ["--store", args.store])
    argv = [sys.executable, "-m", "hashmatch.server", "keys", args.keys_command, *extra, *where]
    if args.json:
        argv.append("--json")
    return subprocess.run(argv, check=False).returncode


def _key_row(k: ApiKey) -> tuple[str, ...]:
    return (k.id, k.name, ",".join(sorted(k.roles)), k.state, output.timestamp(k.created),
            output.timestamp(k.expires) if k.expires else "never", k.created_by or "-")


def _key_json(k: ApiKey) -> dict[str, Any]:
    return {**output.jsonable(k), "roles": sorted(k.roles), "state": k.state}


def cmd_keys_help(args: argparse.Namespace, client: Any, console: Any) -> int:
    from hashmatch.client.cli import UsageError

    raise UsageError("a keys command is required (create, ls, revoke)")


def cmd_keys_create(args: argparse.Namespace, client: Any, console: Any) -> int:
    if args.data_dir is not None or args.store is not None:
        extra = [args.name, "--role", ",".join(args.roles)]
        return _offline(args, *extra, *(["--expires", args.expires] if args.expires else []))
    try:
        expires = expiry_arg(args.expires) if args.expires else None
    except argparse.ArgumentTypeError as exc:
        from hashmatch.client.cli import UsageError

        raise UsageError(str(exc)) from None
    created = client.create_key(args.name, args.roles, expires=expires)
    if console.json:
        console.print(json.dumps({"key": _key_json(created.key), "secret": created.secret}, indent=2))
    else:
        console.error(f"created key {created.key.id} ({created.key.name}), roles "
                      f"{','.join(sorted(created.key.roles))}; it is shown only now:")
        console.print(created.secret)
    return 0


def cmd_keys_ls(args: argparse.Namespace, client: Any, console: Any) -> int:
    if args.data_dir is not None or args.store is not None:
        return _offline(args, *(["--all"] if args.all else []))
    found = client.list_keys(include_revoked=args.all)
    if console.json:
        console.print(json.dumps([_key_json(k) for k in found], indent=2))
    else:
        console.print(output.table(("ID", "NAME", "ROLES", "STATE", "CREATED", "EXPIRES", "CREATED BY"),
                                   [_key_row(k) for k in found]) if found else "no keys")
    return 0


def cmd_keys_revoke(args: argparse.Namespace, client: Any, console: Any) -> int:
    if args.data_dir is not None or args.store is not None:
        return _offline(args, args.key)
    revoked = client.revoke_key(args.key)
    console.emit(_key_json(revoked), lambda: f"revoked key {revoked.id} ({revoked.name})")
    return 0


def cmd_lists_export(args: argparse.Namespace, client: Any, console: Any) -> int:
    handle = open(args.output, "w", newline="", encoding="utf-8") if args.output else console.stdout
    count = 0
    try:
        writer = csv.writer(handle)
        writer.writerow(("hash", "algorithm", "label", "id", "source"))
        for entry in client.export_hashes(args.list_name):
            writer.writerow((entry.hash, entry.algorithm.value, entry.label or "", entry.id, entry.source or ""))
            count += 1
    finally:
        if args.output:
            handle.close()
    if args.output:
        console.error(f"exported {count} entries of {args.list_name} to {args.output}")
    return 0
