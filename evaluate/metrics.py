"""Recall per edit and false matches among unrelated images, at every threshold.

- **Recall** of an edit at threshold t: the share of listed pictures whose edited upload is
  within t of its own original (with region variants: the upload or one of its crops is).
- **False matches** at t, over every upload of the unrelated pictures (each edit too: uploads
  of unlisted pictures are edited as well): the *pair rate* is the share of (upload, listed
  entry) pairs within t; the *image rate* the share of uploads within t of any entry; and
  *photos* counts the unrelated pictures with at least one such upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashmatch.hashing import PERCEPTUAL, Algorithm

from .distances import Distances

MODES: tuple[str, ...] = ("plain", "variants")  # the image as uploaded; or with its region crops


def threshold_grid(algorithm: Algorithm) -> np.ndarray:
    """PDQ 0..128 in steps of 2 (half its bits: beyond that, anything matches) and its default
    31; 64-bit hashes 0..32 in steps of 1."""
    if algorithm.spec.bits >= 256:
        return np.array(sorted(set(range(0, 129, 2)) | {algorithm.spec.default_threshold}))
    return np.arange(0, algorithm.spec.bits // 2 + 1)


@dataclass
class FalseMatches:
    pair_rate: np.ndarray  # per threshold of the grid
    image_rate: np.ndarray
    photos: np.ndarray  # unrelated pictures with any match
    pairs: int
    uploads: int
    pictures: int


@dataclass
class Sweep:
    """Everything the report and the plots need for one algorithm and one mode."""

    algorithm: Algorithm
    mode: str
    grid: np.ndarray
    edits: list[str]
    recall: np.ndarray  # (edits, thresholds)
    listed_count: np.ndarray  # (edits,) uploads behind each recall
    false: FalseMatches

    def at(self, threshold: int) -> int:
        """Index of the largest grid threshold <= ``threshold``."""
        return int(np.searchsorted(self.grid, threshold, side="right")) - 1

    def recall_at(self, edit: str, threshold: int) -> float:
        return float(self.recall[self.edits.index(edit), self.at(threshold)])


def _rates(distances: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Share of ``distances`` <= each threshold of ``grid``."""
    if distances.size == 0:
        return np.zeros(len(grid))
    ordered = np.sort(distances, axis=None)
    return np.searchsorted(ordered, grid, side="right") / ordered.size


def false_matches(distances: Distances, algorithm: Algorithm, variants: bool, grid: np.ndarray) -> FalseMatches:
    rows = distances.rows("unrelated")
    matrix = distances.best(algorithm, variants)[rows]  # (unrelated uploads, listed)
    nearest = matrix.min(axis=1) if matrix.size else np.zeros(0, dtype=np.int32)
    pictures = [Path(distances.uploads[r].job.path).name for r in rows]
    names = sorted(set(pictures))
    per_picture = np.array(
        [nearest[[i for i, p in enumerate(pictures) if p == name]].min() for name in names], dtype=np.int64
    )
    return FalseMatches(
        pair_rate=_rates(matrix, grid),
        image_rate=_rates(nearest, grid),
        photos=np.array([(per_picture <= t).sum() for t in grid], dtype=np.int64),
        pairs=int(matrix.size),
        uploads=int(len(rows)),
        pictures=len(names),
    )


def sweep(distances: Distances, algorithm: Algorithm, mode: str, edits: list[str]) -> Sweep:
    grid = threshold_grid(algorithm)
    variants = mode == "variants"
    best = distances.best(algorithm, variants)
    recall = np.zeros((len(edits), len(grid)))
    counts = np.zeros(len(edits), dtype=np.int64)
    for e, edit in enumerate(edits):
        rows = distances.rows("listed", edit)
        counts[e] = len(rows)
        if len(rows):
            own = best[rows, distances.self_columns(rows)]
            recall[e] = _rates(own, grid)
    return Sweep(algorithm, mode, grid, edits, recall, counts, false_matches(distances, algorithm, variants, grid))


def all_sweeps(distances: Distances, edits: list[str]) -> dict[tuple[Algorithm, str], Sweep]:
    return {(a, m): sweep(distances, a, m, edits) for a in PERCEPTUAL for m in MODES}


@dataclass(frozen=True)
class Choice:
    """The largest threshold keeping a false-match target, and the threshold's mean recall."""

    threshold: int | None  # None: not even threshold 0 keeps it
    mean_recall: float


def largest_threshold(sweep: Sweep, *, max_pair_rate: float | None = None, max_image_rate: float | None = None) -> Choice:
    """The largest grid threshold at which the false-match rates stay within the limits given
    (rates only grow with the threshold, so every smaller one keeps them too)."""
    ok = np.ones(len(sweep.grid), dtype=bool)
    if max_pair_rate is not None:
        ok &= sweep.false.pair_rate <= max_pair_rate
    if max_image_rate is not None:
        ok &= sweep.false.image_rate <= max_image_rate
    # The first threshold that breaks a limit ends the range (monotone, but be strict anyway).
    broken = np.flatnonzero(~ok)
    last = (broken[0] - 1) if len(broken) else len(sweep.grid) - 1
    if last < 0:
        return Choice(None, 0.0)
    return Choice(int(sweep.grid[last]), float(sweep.recall[:, last].mean()))
