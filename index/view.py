"""Index views: what one match reads, frozen. A write builds the next view and swaps it in.

A view of one algorithm is a main segment plus the delta segments added since the last
compaction, each with the positions removed since ("dead"): a load appends a segment, a removal
marks positions dead, and neither touches what readers of the previous view hold. Compaction
folds everything into a new main segment off to the side and rebases the changes that arrived
meanwhile onto it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from hashmatch.hashing.algorithms import Algorithm

from .records import ListInfo
from .segment import Segment, merge
from .store import Reader

_NO_POSITIONS = np.empty(0, np.int64)


@dataclass(frozen=True, eq=False)
class AlgorithmIndex:
    algorithm: Algorithm
    segments: tuple[Segment, ...]  # [0] is the main segment
    dead: tuple[np.ndarray, ...]  # per segment: sorted positions of removed entries

    @classmethod
    def of(cls, algorithm: Algorithm, main: Segment) -> "AlgorithmIndex":
        return cls(algorithm, (main,), (_NO_POSITIONS,))

    @property
    def main(self) -> Segment:
        return self.segments[0]

    @property
    def live(self) -> int:
        return sum(len(s) for s in self.segments) - sum(len(d) for d in self.dead)

    @property
    def delta_entries(self) -> int:
        return sum(len(s) for s in self.segments[1:])

    @property
    def dead_entries(self) -> int:
        return sum(len(d) for d in self.dead)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.segments) + sum(d.nbytes for d in self.dead)

    def search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(query index, row id, list id, distance) of every live entry within ``radius``."""
        parts = []
        for segment, dead in zip(self.segments, self.dead):
            q, pos, dist = segment.search(queries, radius)
            if len(dead) and len(pos):
                keep = ~np.isin(pos, dead, assume_unique=False)
                q, pos, dist = q[keep], pos[keep], dist[keep]
            if len(pos):
                parts.append((q, segment.row_ids[pos].astype(np.int64), segment.list_ids[pos].astype(np.int64), dist))
        if not parts:
            return _NO_POSITIONS, _NO_POSITIONS, _NO_POSITIONS, np.empty(0, np.int32)
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(column) for column in zip(*parts))  # type: ignore[return-value]

    def with_segment(self, segment: Segment) -> "AlgorithmIndex":
        if len(segment) == 0:
            return self
        return AlgorithmIndex(self.algorithm, self.segments + (segment,), self.dead + (_NO_POSITIONS,))

    def without_rows(self, row_ids: np.ndarray) -> "AlgorithmIndex":
        """Masks ``row_ids`` at once (a removed row id may be reused later by SQLite: only the
        live position holding it is masked)."""
        dead = list(self.dead)
        for i, segment in enumerate(self.segments):
            positions = segment.locate(row_ids)
            if len(positions):
                dead[i] = np.union1d(dead[i], positions)
        return AlgorithmIndex(self.algorithm, self.segments, tuple(dead))

    def folded(self) -> Segment:
        """Every live entry in one new segment (the slow part of compaction; touches no view)."""
        main = self.main
        return merge(main.bits, main.exact, list(zip(self.segments, self.dead)))

    def rebased(self, base: "AlgorithmIndex", main: Segment) -> "AlgorithmIndex":
        """This index with ``base``'s segments replaced by ``main`` (built from ``base``): the
        segments added and the removals made since ``base`` carry over."""
        k = len(base.segments)
        if self.segments[:k] != base.segments or any(s is not b for s, b in zip(self.segments, base.segments)):
            raise RuntimeError("compaction raced with another restructuring of the index")
        removed = [
            segment.row_ids[np.setdiff1d(now, then, assume_unique=True)].astype(np.int64)
            for segment, now, then in zip(self.segments[:k], self.dead[:k], base.dead)
        ]
        rows = np.concatenate(removed) if removed else _NO_POSITIONS
        main_dead = np.unique(main.locate(rows)) if len(rows) else _NO_POSITIONS
        return AlgorithmIndex(self.algorithm, (main,) + self.segments[k:], (main_dead,) + self.dead[k:])


@dataclass(frozen=True, eq=False)
class View:
    """Everything a match reads: the lists' settings and the entries, as of one generation."""

    generation: int
    entries_generation: int
    lists: Mapping[int, ListInfo]
    indexes: Mapping[Algorithm, AlgorithmIndex]
    reader: Reader | None = None
    list_ids: Mapping[str, int] = field(default_factory=dict)
    # When this state of the lists was published; a compaction's restructured copy keeps it.
    published: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not self.list_ids:
            object.__setattr__(self, "list_ids", {info.name: list_id for list_id, info in self.lists.items()})
