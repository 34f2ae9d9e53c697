"""``hashmatch``: the staff command line, over the SDK.

    hashmatch lists create csam-known --threshold pdq=31
    hashmatch lists load csam-known hashes.csv
    hashmatch match upload.jpg

Exit codes: 0 success, 1 the operation failed (the message on stderr names what and the gRPC
code), 2 usage error. ``--json`` prints one JSON document on stdout instead of tables.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence, TextIO

from hashmatch.client import cli_admin, cli_security, output
from hashmatch.client.config import DEFAULT_ADDRESS, DEFAULT_TIMEOUT
from hashmatch.client.errors import HashmatchError, InvalidArgument, ResourceExhausted
from hashmatch.client.hashfiles import FORMATS, AlgorithmNeeded, HashFileError, HashFileReader
from hashmatch.client.models import HashList, ImageEntry
from hashmatch.client.sync_client import Client
from hashmatch.hashing.algorithms import Algorithm

PROG = "hashmatch"
SERVER_ENV = "HASHMATCH_SERVER"
# Global options that take a value, for finding where the command starts (see _serve_args).
_VALUE_OPTIONS = ("--server", "--timeout", *cli_security.VALUE_OPTIONS)
_FLAG_OPTIONS = ("--json", *cli_security.FLAG_OPTIONS)


class UsageError(Exception):
    """A command's arguments are wrong in a way argparse cannot see; exit 2 like argparse."""


# -- argument types: a ValueError/ArgumentTypeError here makes argparse exit 2 naming the option --

def algorithm_arg(text: str) -> Algorithm:
    try:
        return Algorithm.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def algorithms_arg(text: str) -> list[Algorithm]:
    """``pdq`` or ``pdq,phash``: --algorithm may be repeated, or given a comma-separated list."""
    return [algorithm_arg(part) for part in text.split(",") if part.strip()]


def threshold_arg(text: str) -> tuple[Algorithm, int]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected ALG=N (e.g. pdq=31), got {text!r}")
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold must be a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"threshold must not be negative, got {number}")
    return algorithm_arg(name), number


def hash_arg(text: str) -> tuple[Algorithm, str]:
    name, sep, value = text.partition(":")
    if not sep or not value.strip():
        raise argparse.ArgumentTypeError(f"expected ALG:HEX (e.g. pdq:f8f8...), got {text!r}")
    return algorithm_arg(name), value.strip()


def timeout_arg(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("timeout must be positive")
    return seconds


def positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


# -- the parser --

def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Given to the main parser and every command, so `hashmatch --json lists ls` and
    # `hashmatch lists ls --json` both work. In commands they default to SUPPRESS so a
    # command's parse does not overwrite a value given before the command.
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--server", metavar="ADDR", default=default,
        help=f"server address (default: ${SERVER_ENV} or {DEFAULT_ADDRESS})",
    )
    group.add_argument(
        "--timeout", metavar="SECONDS", type=timeout_arg, default=default,
        help="deadline of each call (default: 30, none for lists load)",
    )
    group.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
        help="print one JSON document on stdout instead of tables",
    )
    cli_security.add_global_options(group, default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Staff tool for the hashmatch perceptual-hash matching service."
    )
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(group: Any, name: str, handler: Callable[..., int], summary: str) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=summary, description=summary)
        _global_options(sub, suppress=True)
        sub.set_defaults(handler=handler, command_parser=sub)
        return sub

    # Handled before argparse runs (see main); listed here for --help.
    commands.add_parser(
        "serve", help="run the server (python -m hashmatch.server); every argument is passed on",
        add_help=False,
    )
    commands.add_parser(
        "eval", help="measure detection quality on a folder of images (python -m hashmatch.evaluate; "
                     "needs hashmatch[eval]); every argument is passed on",
        add_help=False,
    )

    sub = command(commands, "hash", cmd_hash, "hash image files")
    sub.add_argument("files", nargs="+", metavar="FILE")
    sub.add_argument("--algorithm", "-a", dest="algorithms", action="extend", type=algorithms_arg,
                     metavar="ALG", help="algorithm to compute (repeatable; default: pdq, phash, md5, sha256)")
    sub.add_argument("--orientations", action="store_true",
                     help="also the PDQ and pHash hashes of the 7 other rotations and mirror images")
    sub.add_argument("--fast", action="store_true",
                     help="decode JPEGs at reduced scale: faster, a few bits from the exact hashes")

    sub = command(commands, "match", cmd_match, "match image files against the hash lists")
    sub.add_argument("files", nargs="+", metavar="FILE")
    sub.add_argument("--list", "-l", dest="lists", action="append", metavar="NAME",
                     help="list to match against (repeatable; default: every enabled list)")
    sub.add_argument("--algorithm", "-a", dest="algorithms", action="extend", type=algorithms_arg,
                     metavar="ALG", help="algorithm to match with (repeatable; default: pdq, phash, md5, sha256, "
                          "and sha1 when a list holds SHA-1 entries)")
    sub.add_argument("--fast", action="store_true",
                     help="decode JPEGs at reduced scale: faster, a few bits from the exact hashes")

    lists = command(commands, "lists", cmd_lists_help, "manage hash lists")
    lists_commands = lists.add_subparsers(dest="lists_command", metavar="COMMAND")

    sub = command(lists_commands, "create", cmd_lists_create, "create a list")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--description", default="", metavar="TEXT")
    sub.add_argument("--threshold", dest="thresholds", action="append", type=threshold_arg, default=[],
                     metavar="ALG=N", help="match distance limit for an algorithm (repeatable)")
    sub.add_argument("--disabled", action="store_true", help="create the list disabled (never matches)")
    sub.add_argument("--confirm", dest="confirmed", action="append", type=threshold_arg, default=[],
                     metavar="ALG=N", help="confirmation policy: a looser limit for ALG that matches only when "
                     "another algorithm of the same entry agrees (repeatable; e.g. --confirm pdq=92 "
                     "--confirm phash=18)")
    sub.add_argument("--no-orientations", dest="match_orientations", action="store_false",
                     help="match only pictures as listed, not their rotations and mirror images")

    command(lists_commands, "ls", cmd_lists_ls, "show every list")

    sub = command(lists_commands, "show", cmd_lists_show, "show one list")
    sub.add_argument("name", metavar="NAME")

    sub = command(lists_commands, "update", cmd_lists_update, "change a list's description, thresholds or state")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--description", default=None, metavar="TEXT")
    sub.add_argument("--threshold", dest="thresholds", action="append", type=threshold_arg, default=[],
                     metavar="ALG=N", help="match distance limit for an algorithm (repeatable)")
    state = sub.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True, default=None)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)
    turns = sub.add_mutually_exclusive_group()
    turns.add_argument("--orientations", dest="match_orientations", action="store_const", const=True, default=None,
                       help="match rotations and mirror images of listed pictures too")
    turns.add_argument("--no-orientations", dest="match_orientations", action="store_const", const=False,
                       help="match only pictures as listed")
    sub.add_argument("--confirm", dest="confirmed", action="append", type=threshold_arg, default=[],
                     metavar="ALG=N", help="set ALG's confirmed (looser) limit; ALG=0 turns it off (repeatable)")

    sub = command(lists_commands, "rm", cmd_lists_rm, "delete a list and all its entries")
    sub.add_argument("name", metavar="NAME")

    sub = command(
        lists_commands, "load", cmd_lists_load,
        "load hashes from our CSV or JSON Lines, a ThreatExchange/HMA export, or a text file",
    )
    sub.add_argument("list_name", metavar="LIST")
    sub.add_argument("file", metavar="FILE", type=Path)
    sub.add_argument("--format", choices=FORMATS, default=None,
                     help="file format (default: from the first line, then the extension): csv (header "
                          "'hash,algorithm,...'), threatexchange (CSV with 'signal_type,signal' columns, as HMA "
                          "and python-threatexchange write), jsonl, text (one hash, or 'TYPE HASH', a line). "
                          "Type names are ours or the exchanges' (ImagePDQ, video_md5, NCMEC's PDQ/MD5/SHA1); "
                          "PhotoDNA is refused: it is proprietary and hashmatch cannot compute or match it")
    sub.add_argument("--algorithm", "-a", type=algorithm_arg, default=None, metavar="ALG",
                     help="algorithm of hashes that do not name theirs (text lines, rows without an algorithm "
                          "column); a text file without it is read as PDQ only if every hash is 64 hex digits")
    sub.add_argument("--label", default=None, metavar="TEXT", help="label for entries that have none")
    sub.add_argument("--source", default=None, metavar="TEXT", help="source for entries that have none")
    sub.add_argument("--batch-size", type=positive_int, default=1000, metavar="N",
                     help="entries per upload message (default: %(default)s)")

    sub = command(lists_commands, "add-images", cmd_lists_add_images,
                  "add images you hold as entries: the server lists every algorithm's hash of each image "
                  "under one entry id (the image is not stored)")
    sub.add_argument("list_name", metavar="LIST")
    sub.add_argument("files", nargs="+", metavar="FILE")
    sub.add_argument("--label", default=None, metavar="TEXT", help="label of the images' entries")
    sub.add_argument("--source", default=None, metavar="TEXT", help="source of the images' entries")

    sub = command(lists_commands, "remove-hashes", cmd_lists_remove_hashes, "remove entries from a list")
    sub.add_argument("list_name", metavar="LIST")
    sub.add_argument("--id", dest="entry_ids", action="append", default=[], metavar="ID",
                     help="entry id to remove (repeatable)")
    sub.add_argument("--hash", dest="hashes", action="append", type=hash_arg, default=[], metavar="ALG:HEX",
                     help="hash to remove (repeatable)")
    cli_security.add_export_command(lists_commands, command)
    cli_security.add_keys_commands(commands, command)
    cli_admin.add_settings_command(commands, command)
    return parser


# -- running --

class Console:
    """Where a command writes, and whether people or programs read it."""

    def __init__(self, json_mode: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json = json_mode
        self.stdout = stdout
        self.stderr = stderr

    def print(self, text: str = "") -> None:
        print(text, file=self.stdout)

    def emit(self, value: Any, text: Callable[[], str]) -> None:
        """``value`` as JSON in --json mode, else the text ``text()`` renders."""
        self.print(output.dumps(value) if self.json else text())

    def error(self, message: str) -> None:
        print(f"{PROG}: {message}", file=self.stderr)


def _serve_args(argv: Sequence[str], command: str = "serve") -> list[str] | None:
    """The arguments after ``serve`` (or ``command``) when that is the command, else None.

    Found before argparse runs so the server's own flags (--listen, --help, ...) pass
    through untouched, wherever they are.
    """
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in _VALUE_OPTIONS:
            i += 2
        elif token in _FLAG_OPTIONS or token.startswith(tuple(f"{opt}=" for opt in _VALUE_OPTIONS)):
            i += 1
        else:
            return list(argv[i + 1:]) if token == command else None
    return None


def serve(args: list[str]) -> NoReturn:
    # Replace this process with the server's, so signals (SIGTERM draining) reach it directly
    # and the thin client never imports the server (or its image and index dependencies).
    os.execv(sys.executable, [sys.executable, "-m", "hashmatch.server", *args])


def evaluate(argv: Sequence[str], args: list[str]) -> NoReturn:
    # Like serve: the evaluation needs Pillow, numpy, the index and matplotlib, which the thin
    # client must not import. A global --server given before `eval` is passed on to it.
    server = [t for t in argv[: len(argv) - len(args)] if t.startswith("--server=")]
    if "--server" in argv[: len(argv) - len(args)]:
        server = ["--server", argv[argv.index("--server") + 1]]
    os.execv(sys.executable, [sys.executable, "-m", "hashmatch.evaluate", *args, *server])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    serve_args = _serve_args(argv)
    if serve_args is not None:
        serve(serve_args)
    eval_args = _serve_args(argv, "eval")
    if eval_args is not None:
        evaluate(argv, eval_args)

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage error (2) or --help (0): a code, not an exit, from main()
        return exc.code if isinstance(exc.code, int) else 2

    console = Console(args.json, sys.stdout, sys.stderr)
    address = args.server or os.environ.get(SERVER_ENV) or DEFAULT_ADDRESS
    try:
        client_timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
        try:
            connection = cli_security.client_options(args)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        with Client(address, timeout=client_timeout, **connection) as client:
            return args.handler(args, client, console)
    except UsageError as exc:
        try:
            args.command_parser.error(str(exc))
        except SystemExit as usage:
            return usage.code if isinstance(usage.code, int) else 2
    except HashmatchError as exc:
        return fail(console, describe(exc, address), exc)
    except HashFileError as exc:
        return fail(console, str(exc))
    except OSError as exc:
        return fail(console, os_error(exc))
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130
    return 0  # pragma: no cover - every branch above returns


def describe(exc: HashmatchError, address: str) -> str:
    """The message for a failed call: the gRPC code's name, then the server's words."""
    message = str(exc)
    if exc.code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        message += f" (server {address})"
    return message


def os_error(exc: OSError) -> str:
    return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)


def fail(console: Console, message: str, exc: HashmatchError | None = None) -> int:
    console.error(message)
    if console.json:  # scripts reading stdout get a document there too
        error = output.jsonable(exc) if exc is not None else {"code": None, "reason": None, "message": message}
        console.print(output.dumps({"error": error}))
    return 1


# -- image commands --

def _per_file(
    console: Console, files: Sequence[str], call: Callable[[str], Any]
) -> Iterator[tuple[str, Any, HashmatchError | OSError | None]]:
    """(file, result, error) per file; a bad file is reported and the others still run.

    Only problems of the file itself (unreadable, undecodable, too large) are per file;
    anything else (server unreachable, deadline) ends the command.
    """
    for name in files:
        try:
            yield name, call(name), None
        except (InvalidArgument, ResourceExhausted) as exc:
            console.error(f"{name}: {exc}")
            yield name, None, exc
        except OSError as exc:
            console.error(f"{name}: {exc.strerror or exc}")
            yield name, None, exc


def _file_error(exc: HashmatchError | OSError) -> dict[str, Any]:
    if isinstance(exc, HashmatchError):
        return output.jsonable(exc)
    return {"code": None, "reason": "FILE", "message": exc.strerror or str(exc)}


def cmd_hash(args: argparse.Namespace, client: Client, console: Console) -> int:
    results = list(_per_file(
        console, args.files,
        lambda f: client.hash_image(f, args.algorithms, include_orientations=args.orientations, fast=args.fast),
    ))
    if console.json:
        console.print(output.dumps([
            {"file": name, **output.jsonable(result)} if error is None else {"file": name, "error": _file_error(error)}
            for name, result, error in results
        ]))
    else:
        headers = ("FILE", "ALGORITHM", "HASH", "QUALITY") + (("ORIENTATION",) if args.orientations else ())
        rows = [
            (name, h.algorithm.value, h.value, "-" if h.quality is None else h.quality)
            + ((h.orientation.value,) if args.orientations else ())
            for name, result, error in results if error is None
            for h in result.hashes
        ]
        if rows:
            console.print(output.table(headers, rows))
    return 1 if any(error is not None for _, _, error in results) else 0


def cmd_match(args: argparse.Namespace, client: Client, console: Console) -> int:
    results = list(_per_file(
        console, args.files, lambda f: client.match_image(f, args.lists, args.algorithms, fast=args.fast)
    ))
    if console.json:
        console.print(output.dumps([
            {"file": name, **output.jsonable(result)} if error is None else {"file": name, "error": _file_error(error)}
            for name, result, error in results
        ]))
    else:
        rows = [
            (name, m.list_name, m.entry_id, m.label or "-", m.algorithm.value, m.distance,
             # A match accepted beyond the threshold by the list's confirmation policy says so.
             m.threshold if m.confirmed_by is None else f"{m.threshold} (confirmed by {m.confirmed_by.value})",
             m.orientation.value)
            for name, result, error in results if error is None
            for m in result.matches
        ]
        if rows:
            console.print(output.table(
                ("FILE", "LIST", "ENTRY ID", "LABEL", "ALGORITHM", "DISTANCE", "THRESHOLD", "ORIENTATION"), rows
            ))
        for name, result, error in results:
            if error is None and not result.matched:
                console.print(f"{name}: no match")
    return 1 if any(error is not None for _, _, error in results) else 0


# -- lists commands --

def cmd_lists_help(args: argparse.Namespace, client: Client, console: Console) -> int:
    raise UsageError("a lists command is required (create, ls, show, update, rm, load, add-images, remove-hashes)")


def _show(console: Console, hash_list: HashList) -> None:
    console.emit(hash_list, lambda: output.show_list(hash_list))


def cmd_lists_create(args: argparse.Namespace, client: Client, console: Console) -> int:
    created = client.create_list(
        args.name, description=args.description, thresholds=dict(args.thresholds), enabled=not args.disabled,
        match_orientations=args.match_orientations, confirmed_thresholds=dict(args.confirmed),
    )
    _show(console, created)
    return 0


def cmd_lists_ls(args: argparse.Namespace, client: Client, console: Console) -> int:
    lists = client.list_lists()
    console.emit(list(lists), lambda: output.lists_table(lists) if lists else "no lists")
    return 0


def cmd_lists_show(args: argparse.Namespace, client: Client, console: Console) -> int:
    _show(console, client.get_list(args.name))
    return 0


def cmd_lists_update(args: argparse.Namespace, client: Client, console: Console) -> int:
    if (args.description is None and not args.thresholds and args.enabled is None
            and args.match_orientations is None and not args.confirmed):
        raise UsageError(
            "nothing to change: give --description, --threshold, --confirm, --enable, --disable or --[no-]orientations"
        )
    updated = client.update_list(
        args.name, description=args.description, thresholds=dict(args.thresholds) or None, enabled=args.enabled,
        match_orientations=args.match_orientations, confirmed_thresholds=dict(args.confirmed) or None,
    )
    _show(console, updated)
    return 0


def cmd_lists_rm(args: argparse.Namespace, client: Client, console: Console) -> int:
    removed = client.delete_list(args.name)
    console.emit(
        {"name": args.name, "entries_removed": removed},
        lambda: f"deleted list {args.name} ({removed} {'entry' if removed == 1 else 'entries'} removed)",
    )
    return 0


def cmd_lists_load(args: argparse.Namespace, client: Client, console: Console) -> int:
    # The format: --format, else from the file's first line, then its extension (listformats).
    reader = HashFileReader(args.file, args.format, algorithm=args.algorithm, label=args.label, source=args.source)

    # Fail fast on a missing list, before reading what may be a large file.
    client.get_list(args.list_name)
    # Check every line before sending any: a bad line leaves the list untouched and its
    # message names the line. The file is read again to send, so it is never held whole.
    try:
        total = reader.count()
    except AlgorithmNeeded as exc:  # a missing option, not a bad file: a usage error (exit 2)
        raise UsageError(str(exc)) from None
    if reader.read_as_pdq:
        console.error(f"note: {args.file}: every hash is 64 hex digits, read as PDQ (give --algorithm otherwise, "
                      "e.g. --algorithm sha256)")

    with ProgressBar(total, console.stderr) as on_progress:
        # No deadline unless --timeout: a large load is long, shows progress, and Ctrl-C stops it.
        result = client.upload_hashes(
            args.list_name, reader, batch_size=args.batch_size, on_progress=on_progress, timeout=args.timeout
        )

    def text() -> str:
        counts = output.per_algorithm({a: n for a, n in result.list.entry_counts.items() if n})
        return (
            f"loaded {args.file} into {result.list.name}: received {result.received}, "
            f"added {result.added}, unchanged {result.unchanged}\n"
            f"{result.list.name} now has {result.list.entry_count} entries ({counts})"
        )

    console.emit({"file": str(args.file), **output.jsonable(result)}, text)
    return 0


def cmd_lists_add_images(args: argparse.Namespace, client: Client, console: Console) -> int:
    client.get_list(args.list_name)  # fail fast on a missing list, before sending any image
    images = [ImageEntry(path, label=args.label, source=args.source) for path in args.files]
    with ProgressBar(len(images), console.stderr, unit="images") as on_progress:
        # No deadline unless --timeout: the server hashes every image, and Ctrl-C stops it.
        result = client.add_images(args.list_name, images, on_progress=on_progress, timeout=args.timeout)

    def text() -> str:
        rows = [(i.name, i.entry_id, i.hashes_added, ", ".join(i.other_entry_ids) or "-") for i in result.images]
        return (
            output.table(("FILE", "ENTRY ID", "HASHES ADDED", "OTHER ENTRIES HOLDING ITS HASHES"), rows) + "\n"
            f"{len(result.images)} images into {result.list.name}: {result.added} hashes added; "
            f"{result.list.name} now has {result.list.entry_count} entries"
        )

    console.emit({"list": args.list_name, **output.jsonable(result)}, text)
    return 0


def cmd_lists_remove_hashes(args: argparse.Namespace, client: Client, console: Console) -> int:
    if not args.entry_ids and not args.hashes:
        raise UsageError("give at least one --id or --hash")
    removed = client.remove_hashes(args.list_name, entry_ids=args.entry_ids, hashes=args.hashes)
    console.emit(
        {"list": args.list_name, "removed": removed},
        lambda: f"removed {removed} {'entry' if removed == 1 else 'entries'} from {args.list_name}",
    )
    return 0


class ProgressBar:
    """A tqdm bar of entries sent, on stderr when it is a terminal; otherwise (or without
    tqdm, which the thin client does not require) a no-op. ``with`` gives the on_progress
    callback for upload_hashes (or None)."""

    def __init__(self, total: int, stream: TextIO, unit: str = "entries") -> None:
        self._bar: Any = None
        if stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, unit=unit, file=stream, desc="uploading", dynamic_ncols=True)

    def __enter__(self) -> Callable[[int], None] | None:
        if self._bar is None:
            return None
        bar = self._bar
        # upload_hashes reports a running total; tqdm counts increments.
        return lambda sent: bar.update(sent - bar.n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


if __name__ == "__main__":
    sys.exit(main())
