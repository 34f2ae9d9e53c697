"""``python -m hashmatch.server keys create|ls|revoke --data-dir DIR | --store URL``: API keys, offline.

Works on the store directly (the data folder's SQLite file, or the PostgreSQL store replicas
share), so it needs no running server and no key: it is how an operator who can read the store
recovers from a lost or revoked admin key, or creates the first keys of a new deployment.
(Whoever can read the store can read the lists anyway.) ``hashmatch keys ... --data-dir`` and
``... --store`` run this. The store URL may come from $HASHMATCH_STORE_URL instead, so that its
password need not appear on a command line.

A new key is printed once, on stdout; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

# The same argument rules as `hashmatch keys`, which runs this module for --data-dir.
from hashmatch.client.cli_security import expiry_arg, roles_arg
from hashmatch.index.keys import ROLES, ApiKeyError, ApiKeyInfo, KeyStore

STORE_URL_ENV = "HASHMATCH_STORE_URL"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hashmatch keys",
                                     description="Manage API keys in a data folder or a PostgreSQL store (offline).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        where = sub.add_mutually_exclusive_group()
        where.add_argument("--data-dir", type=Path, help="the server's data folder (its SQLite store)")
        where.add_argument("--store", metavar="URL",
                           help=f"the replicas' postgresql:// store (default: ${STORE_URL_ENV})")
        sub.add_argument("--json", action="store_true", help="print JSON on stdout")
        return sub

    sub = command("create", "create a key; it is printed once, on stdout")
    sub.add_argument("name", help="who holds the key (shown in the audit log)")
    sub.add_argument("--role", dest="roles", action="extend", type=roles_arg, required=True,
                     metavar="ROLE", help=f"repeatable or comma-separated: {', '.join(ROLES)}")
    sub.add_argument("--expires", type=expiry_arg, default=None, metavar="WHEN",
                     help="30d, 12h, 90m, 2w from now, or an ISO 8601 time (default: never)")
    sub = command("ls", "list keys (never their secrets)")
    sub.add_argument("--all", action="store_true", help="include revoked keys")
    sub = command("revoke", "revoke a key at once")
    sub.add_argument("key", help="the key's id, or the name of an active key")
    return parser


def key_json(info: ApiKeyInfo) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": info.key_id,
        "name": info.name,
        "roles": sorted(info.roles),
        "state": info.state(),
        "created": stamp(info.created),
        "expires": stamp(info.expires),
        "revoked": stamp(info.revoked),
        "created_by": info.created_by,
    }


def _table(keys: Sequence[ApiKeyInfo]) -> str:
    rows = [("ID", "NAME", "ROLES", "STATE", "CREATED", "EXPIRES", "CREATED BY")]
    for k in keys:
        rows.append((
            k.key_id, k.name, ",".join(sorted(k.roles)), k.state(), k.created.strftime("%Y-%m-%d %H:%M"),
            k.expires.strftime("%Y-%m-%d %H:%M") if k.expires else "never", k.created_by or "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    url = args.store or (None if args.data_dir else os.environ.get(STORE_URL_ENV))
    if url is not None:
        if not url.startswith(("postgresql://", "postgres://")):
            parser.error(f"--store must be a postgresql:// URL, got {url.split(':', 1)[0]!r}...")
        try:
            store = KeyStore(url=url)
        except Exception as exc:  # the server is not needed, but the database is
            print(f"hashmatch keys: cannot open the PostgreSQL store: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1
    elif args.data_dir is None:
        parser.error(f"give --data-dir (SQLite) or --store / ${STORE_URL_ENV} (PostgreSQL)")
    elif not args.data_dir.is_dir():
        print(f"hashmatch keys: {args.data_dir} is not a folder (give the server's --data-dir)", file=sys.stderr)
        return 1
    else:
        store = KeyStore(args.data_dir / "hashmatch.sqlite3")
    try:
        return _run(args, store)
    except ApiKeyError as exc:
        print(f"hashmatch keys: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _run(args: argparse.Namespace, store: KeyStore) -> int:
    if args.command == "create":
        new = store.create(args.name, args.roles, args.expires, created_by="offline")
        if args.json:
            print(json.dumps({"key": key_json(new.info), "secret": new.secret}))
        else:
            print(f"created key {new.info.key_id} ({new.info.name}), roles {','.join(sorted(new.info.roles))}; "
                  "it is shown only now:", file=sys.stderr)
            print(new.secret)
        return 0
    if args.command == "ls":
        keys = store.list(include_revoked=args.all)
        print(json.dumps([key_json(k) for k in keys]) if args.json else (_table(keys) if keys else "no keys"))
        return 0
    # Offline is the way back in, so it may revoke even the last admin key.
    info = store.revoke(args.key, keep_an_admin=False)
    print(json.dumps(key_json(info)) if args.json else f"revoked key {info.key_id} ({info.name})")
    return 0
