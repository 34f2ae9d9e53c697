"""Segments: immutable runs of entries of one algorithm, each with the structure that searches it.

An index view is a main segment plus small delta segments; segments are never changed after
they are built, so any number of readers can search them while a writer makes the next view.
Entries are kept in row id order, so a row is found by binary search (to mask a removal).
"""

from __future__ import annotations

import numpy as np

from . import planner
from .codes import flat_within
from .mih import MultiIndex, Plan

_EMPTY = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32))


def compact_ids(values: np.ndarray, *, narrowest: np.dtype = np.dtype(np.uint32)) -> np.ndarray:
    """The narrowest unsigned type, from ``narrowest`` up to uint32, that holds the ids (else int64).

    Row ids take 4 bytes instead of 8 at 10M; list ids, of which a deployment has a few hundred
    at most, take 1 or 2 bytes (at 10M pHash entries that is a tenth of the index's memory).
    """
    if len(values) and int(values.min()) < 0:
        return values.astype(np.int64, copy=False)
    top = int(values.max()) if len(values) else 0
    for dtype in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32)):
        if dtype.itemsize >= np.dtype(narrowest).itemsize and top <= np.iinfo(dtype).max:
            return values.astype(dtype, copy=False)
    return values.astype(np.int64, copy=False)


class Segment:
    """Entries of one algorithm: codes ((n, words) uint64), row ids, list ids, by ascending row id."""

    def __init__(
        self,
        bits: int,
        codes: np.ndarray,
        row_ids: np.ndarray,
        list_ids: np.ndarray,
        *,
        exact: bool = False,
        mih: MultiIndex | None = None,
        order: np.ndarray | None = None,
    ) -> None:
        self.bits = bits
        self.exact = exact
        self.codes = codes
        self.row_ids = row_ids
        self.list_ids = list_ids
        self.mih = mih
        # Exact (digest) segments: positions sorted by the first word, for a binary search.
        self.order = order
        self._first = codes[order, 0] if order is not None else None
        for array in (codes, row_ids, list_ids):
            array.flags.writeable = False

    @classmethod
    def build(cls, bits: int, codes: np.ndarray, row_ids: np.ndarray, list_ids: np.ndarray, *, exact: bool = False) -> "Segment":
        """From arrays in any order (sorted here by row id); builds the structure the size calls for."""
        if len(row_ids) and np.any(row_ids[1:] < row_ids[:-1]):
            by_row = np.argsort(row_ids, kind="stable")
            codes, row_ids, list_ids = codes[by_row], row_ids[by_row], list_ids[by_row]
        codes = np.ascontiguousarray(codes)
        row_ids = compact_ids(np.asarray(row_ids))
        list_ids = compact_ids(np.asarray(list_ids), narrowest=np.dtype(np.uint8))
        if exact:
            order = np.argsort(codes[:, 0], kind="stable").astype(np.uint32) if len(codes) else np.empty(0, np.uint32)
            return cls(bits, codes, row_ids, list_ids, exact=True, order=order)
        plan = planner.plan_for(bits, len(codes))
        mih = MultiIndex(codes, plan) if plan is not None else None
        return cls(bits, codes, row_ids, list_ids, mih=mih)

    def __len__(self) -> int:
        return len(self.row_ids)

    @property
    def nbytes(self) -> int:
        extra = self.mih.nbytes if self.mih is not None else 0
        if self.order is not None:
            extra += self.order.nbytes + self._first.nbytes
        return int(self.codes.nbytes + self.row_ids.nbytes + self.list_ids.nbytes + extra)

    def search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact: (query index, position, distance) of every entry within ``radius`` (inclusive)."""
        if len(self) == 0 or len(queries) == 0:
            return _EMPTY
        if self.exact:
            return self._lookup(queries)
        if self.mih is not None and planner.use_mih(self.mih.plan, len(self), len(queries), radius):
            return self.mih.within(queries, radius)
        return flat_within(self.codes, queries, radius)

    def _lookup(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo = np.searchsorted(self._first, queries[:, 0], side="left")
        hi = np.searchsorted(self._first, queries[:, 0], side="right")
        qs, ps = [], []
        for q in np.flatnonzero(hi > lo):
            positions = self.order[lo[q] : hi[q]].astype(np.int64)
            same = np.all(self.codes[positions] == queries[q], axis=1)
            ps.append(positions[same])
            qs.append(np.full(int(same.sum()), q, np.int64))
        if not ps:
            return _EMPTY
        positions = np.concatenate(ps)
        return np.concatenate(qs), positions, np.zeros(len(positions), np.int32)

    def locate(self, row_ids: np.ndarray) -> np.ndarray:
        """Positions of ``row_ids`` in this segment (every position holding such a row id)."""
        if len(self) == 0 or len(row_ids) == 0:
            return np.empty(0, np.int64)
        wanted = np.asarray(row_ids, np.int64)
        lo = np.searchsorted(self.row_ids, wanted, side="left")
        hi = np.searchsorted(self.row_ids, wanted, side="right")
        return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in zip(lo, hi) if b > a] or [np.empty(0, np.int64)])


def merge(bits: int, exact: bool, parts: list[tuple["Segment", np.ndarray]]) -> Segment:
    """One segment holding the live entries of ``parts`` (segment, sorted dead positions)."""
    codes, rows, lists = [], [], []
    for segment, dead in parts:
        live = np.ones(len(segment), bool)
        live[dead] = False
        codes.append(segment.codes[live])
        rows.append(segment.row_ids[live].astype(np.int64))
        lists.append(segment.list_ids[live].astype(np.int64))
    words = bits // 64
    return Segment.build(
        bits,
        np.concatenate(codes) if codes else np.empty((0, words), np.uint64),
        np.concatenate(rows) if rows else np.empty(0, np.int64),
        np.concatenate(lists) if lists else np.empty(0, np.int64),
        exact=exact,
    )


def with_tables(bits: int, codes: np.ndarray, row_ids: np.ndarray, list_ids: np.ndarray, plan: Plan | None,
                tables: tuple[np.ndarray, np.ndarray] | None, order: np.ndarray | None, exact: bool) -> Segment:
    """A segment from arrays read back from a snapshot file (already in row id order)."""
    mih = MultiIndex(codes, plan, tables=tables) if plan is not None and tables is not None else None
    return Segment(bits, codes, row_ids, list_ids, exact=exact, mih=mih, order=order)
