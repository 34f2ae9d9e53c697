"""In-memory search structures, derived from the store: one per algorithm.

Perceptual hashes go in a faiss binary index searched by Hamming radius; digests in a dict.
Both are keyed by the store's row id, so a change can be applied as a delta.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import faiss
import numpy as np

from hashmatch.hashing.algorithms import Algorithm


@dataclass(frozen=True)
class Neighbours:
    """Row ids within a radius of each query, flattened: query ``q`` owns ``[lims[q], lims[q+1])``."""

    lims: np.ndarray
    distances: np.ndarray
    row_ids: np.ndarray

    def of(self, q: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.lims[q], self.lims[q + 1]
        return self.row_ids[lo:hi], self.distances[lo:hi]


class HammingIndex:
    """Exact radius search over fixed-length binary hashes (a flat scan for now)."""

    def __init__(self, algorithm: Algorithm) -> None:
        self.algorithm = algorithm
        self._index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(algorithm.spec.bits))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, row_ids: np.ndarray, values: np.ndarray) -> None:
        if len(row_ids):
            self._index.add_with_ids(values, row_ids.astype(np.int64, copy=False))

    def remove(self, row_ids: np.ndarray) -> None:
        if len(row_ids):
            self._index.remove_ids(row_ids.astype(np.int64, copy=False))

    def within(self, queries: np.ndarray, radius: int) -> Neighbours:
        """Every row at Hamming distance <= radius (inclusive) of each query."""
        if len(self) == 0 or len(queries) == 0:
            return Neighbours(np.zeros(len(queries) + 1, np.int64), np.empty(0, np.int32), np.empty(0, np.int64))
        # faiss returns distances strictly below its radius; ours is inclusive.
        lims, distances, ids = self._index.range_search(queries, radius + 1)
        return Neighbours(lims.astype(np.int64), distances.astype(np.int32), ids.astype(np.int64))


class DigestIndex:
    """Exact lookup of cryptographic digests."""

    def __init__(self, algorithm: Algorithm) -> None:
        self.algorithm = algorithm
        self._rows: dict[bytes, set[int]] = defaultdict(set)
        self._value_of: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self._value_of)

    def add(self, row_ids: np.ndarray, values: list[bytes]) -> None:
        for row_id, value in zip(row_ids.tolist(), values):
            self._rows[value].add(row_id)
            self._value_of[row_id] = value

    def remove(self, row_ids: np.ndarray) -> None:
        for row_id in row_ids.tolist():
            value = self._value_of.pop(row_id, None)
            if value is not None:
                rows = self._rows[value]
                rows.discard(row_id)
                if not rows:
                    del self._rows[value]

    def lookup(self, value: bytes) -> list[int]:
        return sorted(self._rows.get(value, ()))


def pack(values: list[bytes], nbytes: int) -> np.ndarray:
    """Raw hash bytes -> the (n, nbytes) uint8 matrix faiss takes; bit order is the hex's order."""
    if not values:
        return np.empty((0, nbytes), np.uint8)
    return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), nbytes)
