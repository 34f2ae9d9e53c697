"""The index's own answer at the list's thresholds, against the distances computed here.

The sweeps use distances computed from the hashes (every threshold at once); the matches the
service would return come from the index. Both must agree at the list's thresholds: every
computed distance within a threshold is a hit of the index with that distance, and the other
way round. A hit the index (or server) gives that the computed distances do not predict is
counted apart: a server that matches orientations or region variants of its own finds more.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hashmatch.hashing import PERCEPTUAL, Algorithm, Hash

from .distances import Distances
from .uploads import VARIANTS, ServerHit, Upload

LIST_NAME = "eval-listed"

Key = tuple[int, str, str, Algorithm, int]  # (upload row, variant, entry id, algorithm, distance)


@dataclass
class CrossCheck:
    thresholds: dict[Algorithm, int]
    agreed: int = 0
    computed_only: list[Key] = field(default_factory=list)  # a disagreement
    index_only: list[Key] = field(default_factory=list)  # extra hits (a disagreement in process)
    source: str = "index"  # "index" (in process) or "server"

    @property
    def ok(self) -> bool:
        return not self.computed_only and (self.source == "server" or not self.index_only)


@contextmanager
def in_process_lists(listed: dict[str, dict[Algorithm, bytes]]) -> Iterator[object]:
    """A HashLists on a temporary SQLite store with the listed originals loaded, at the default
    thresholds, one entry id (the file name) holding every algorithm's hash."""
    from hashmatch.index import HashLists, NewEntry, SQLiteStore

    with tempfile.TemporaryDirectory(prefix="hashmatch-eval-") as folder:
        lists = HashLists(SQLiteStore(Path(folder) / "eval.sqlite"))
        try:
            lists.create_list(LIST_NAME, description="hashmatch eval: listed originals")
            entries = [
                NewEntry(algorithm, value, label="eval", entry_id=name)
                for name, hashes in sorted(listed.items())
                for algorithm, value in hashes.items()
            ]
            lists.add_entries(LIST_NAME, entries)
            yield lists
        finally:
            lists.close()


def index_hits(lists: object, uploads: list[Upload]) -> dict[int, list[ServerHit]]:
    """Match every upload's hashes (each variant) through ``HashLists.match``; by upload row."""
    found: dict[int, list[ServerHit]] = {}
    for row, upload in enumerate(uploads):
        queries: list[Hash] = []
        labels: list[tuple[str, Algorithm]] = []
        for variant in VARIANTS:
            for algorithm, value in upload.hashes.get(variant, {}).items():
                queries.append(Hash(algorithm, value))
                labels.append((variant, algorithm))
        matches = lists.match(queries, [LIST_NAME])  # type: ignore[attr-defined]
        found[row] = [
            ServerHit(labels[h.query_index][0], h.entry_id, h.algorithm, h.distance) for h in matches.hits
        ]
    return found


def compare(distances: Distances, hits: dict[int, list[ServerHit]], thresholds: dict[Algorithm, int], source: str) -> CrossCheck:
    predicted: set[Key] = set()
    for algorithm in PERCEPTUAL:
        for variant in VARIANTS:
            matrix = distances.of[algorithm][variant]
            rows, columns = np.nonzero(matrix <= thresholds[algorithm])
            predicted.update(
                (int(r), variant, distances.listed[c], algorithm, int(matrix[r, c])) for r, c in zip(rows, columns)
            )
    returned = {
        (row, h.variant, h.entry_id, h.algorithm, h.distance)
        for row, row_hits in hits.items()
        for h in row_hits
        if h.algorithm in PERCEPTUAL
    }
    check = CrossCheck(dict(thresholds), source=source)
    check.agreed = len(predicted & returned)
    check.computed_only = sorted(predicted - returned, key=str)
    check.index_only = sorted(returned - predicted, key=str)
    return check
