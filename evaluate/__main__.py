"""``python -m hashmatch.evaluate FOLDER`` (what ``hashmatch eval`` runs): see the package docstring.

Exit codes: 0 done (report written), 1 the evaluation failed (the cross-check disagreed, or a
server call failed), 2 usage error.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Sequence

from .edits import EDITS, QUICK
from .runner import Options

PROG = "hashmatch eval"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _edits(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in EDITS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown edit(s) {', '.join(unknown)} (known: {', '.join(EDITS)})")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Measure detection quality on a folder of images: split it into listed and unrelated "
            "images, edit the listed ones, hash and match everything through the real path, and "
            "write a Markdown report with recall per edit, false matches at every threshold, a "
            "threshold recommendation, and PNG plots."
        ),
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER", help="folder of images (other files are skipped)")
    parser.add_argument("--out", type=Path, default=Path("docs/eval"), metavar="DIR",
                        help="where the report (README.md), CSV tables and plots go (default: docs/eval)")
    parser.add_argument("--listed-fraction", type=_fraction, default=0.5, metavar="F",
                        help="share of the images that are listed (default: 0.5)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the split and of the edits (default: 1)")
    parser.add_argument("--server", metavar="ADDR",
                        help="match through a running server (a temporary list is made and deleted) "
                             "instead of in process")
    parser.add_argument("--workers", type=_positive, default=2, help="worker processes (default: 2)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a dozen images and {len(QUICK)} edits: a check that everything works, "
                             "not a measurement")
    parser.add_argument("--edits", type=_edits, default=[], metavar="A,B",
                        help="only these edits (default: the whole suite)")
    parser.add_argument("--limit", type=_positive, metavar="N", help="use at most N images of the folder")
    parser.add_argument("--pair-rate", type=float, default=1e-4, metavar="R",
                        help="false-match pair rate the recommendation keeps (default: 1e-4)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    parser.add_argument("--confirmation", type=Path, metavar="FILE",
                        help="measure confirmation policies (lists' confirmed thresholds) through the index "
                             "and write only that report, to FILE (the full report is not written)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2

    # Imported after parsing, so --help answers without loading numpy, Pillow and matplotlib.
    from .runner import run
    from .write import write_outputs

    options = Options(
        folder=args.folder,
        listed_fraction=args.listed_fraction,
        seed=args.seed,
        server=args.server,
        workers=args.workers,
        quick=args.quick,
        edits=tuple(args.edits),
        limit=args.limit,
        progress=not args.no_progress,
        # The policy report needs no timing of the region variants: skip it.
        measure_cost=args.confirmation is None,
    )
    command = "hashmatch eval " + shlex.join(argv)
    try:
        result = run(options)
    except FileNotFoundError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a server error, say; the message names it
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.confirmation is not None:
        from .policies import write_report

        path, verdict = write_report(result, args.confirmation, command)
        print(f"report: {path}", file=sys.stderr)
        print(f"default: {'yes' if verdict.default else 'no'}: {verdict.text}", file=sys.stderr)
        return 0
    written = write_outputs(result, args.out, command=command, max_pair_rate=args.pair_rate)
    print(f"report: {written.report}", file=sys.stderr)
    for name, line in written.summary:
        print(f"{name}: {line}", file=sys.stderr)
    if written.errors:
        print(f"{PROG}: {written.errors} upload(s) failed to hash; see the report", file=sys.stderr)
    return 0 if written.crosscheck_ok else 1


if __name__ == "__main__":
    sys.exit(main())
