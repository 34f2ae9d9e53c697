"""Writes a run's outputs: the report (README.md, so the folder reads as a page), the full sweeps
as CSV, and the plots."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from hashmatch.hashing import PERCEPTUAL

from . import report
from .analysis import Analysis, analyse
from .metrics import MODES
from .runner import Run

REPORT = "README.md"


@dataclass(frozen=True)
class Written:
    report: Path
    files: list[Path]
    summary: list[tuple[str, str]]
    errors: int
    crosscheck_ok: bool
    analysis: Analysis


def write_csv(analysis: Analysis, folder: Path) -> list[Path]:
    """``recall_<algorithm>.csv``: a row per (mode, edit), a column per threshold of the sweep;
    ``false_matches.csv``: a row per (algorithm, mode, threshold)."""
    written = []
    for algorithm in PERCEPTUAL:
        path = folder / f"recall_{algorithm.value}.csv"
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            grid = analysis.sweeps[(algorithm, MODES[0])].grid
            writer.writerow(["mode", "edit", "listed_uploads", *(int(t) for t in grid)])
            for mode in MODES:
                sweep = analysis.sweeps[(algorithm, mode)]
                for e, edit in enumerate(sweep.edits):
                    writer.writerow([mode, edit, int(sweep.listed_count[e]), *(f"{r:.3f}" for r in sweep.recall[e])])
        written.append(path)
    path = folder / "false_matches.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["algorithm", "mode", "threshold", "pair_rate", "image_rate", "photos", "pairs", "uploads"])
        for algorithm in PERCEPTUAL:
            for mode in MODES:
                f = analysis.sweeps[(algorithm, mode)].false
                for t, threshold in enumerate(analysis.sweeps[(algorithm, mode)].grid):
                    writer.writerow([algorithm.value, mode, int(threshold), f"{f.pair_rate[t]:.6g}",
                                     f"{f.image_rate[t]:.6g}", int(f.photos[t]), f.pairs, f.uploads])
    written.append(path)
    return written


def write_outputs(run: Run, folder: Path, *, command: str, max_pair_rate: float = 1e-4, plots: bool = True) -> Written:
    folder.mkdir(parents=True, exist_ok=True)
    analysis = analyse(run, max_pair_rate)
    files = write_csv(analysis, folder)
    if plots:
        from .plots import write_plots  # matplotlib only when plotting

        files += write_plots(analysis, folder)
    path = folder / REPORT
    path.write_text(report.render(analysis, command))
    return Written(path, [path, *files], report.summary(analysis), len(run.errors), analysis.check.ok, analysis)
