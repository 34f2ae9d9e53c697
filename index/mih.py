"""Multi-index hashing: exact Hamming radius search over sorted arrays, searched in bulk with numpy.

A code of ``bits`` bits is cut into ``m`` disjoint substrings. If two codes are within distance
``r = m*s + a`` (0 <= a < m), then by the pigeonhole principle one of the first ``a+1``
substrings is within ``s`` of the query's, or one of the others within ``s-1`` (otherwise the
distance would be at least ``(a+1)(s+1) + (m-a-1)s = r+1``). So probing, in each substring's
table, every value within that small radius finds every true neighbour; each candidate is then
checked on its full code. The answer is exactly the brute-force answer, for any radius.

Each table is a counting sort of the entries by their substring value: ``offsets`` (one per
possible value, so a probe is two adjacent reads instead of a hash-table lookup) and ``perm``
(entry positions grouped by value). All tables' arrays are concatenated so that a whole batch
of queries, every table and every probe, is one vectorised pass.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .codes import popcount_rows

try:  # the compiled verification loop (index/_hamming.c), built at install when a compiler is there
    from . import _hamming
except ImportError:  # pragma: no cover - numpy does the same, slower
    _hamming = None


@dataclass(frozen=True)
class Plan:
    """Where each substring sits in the code: ``starts[j]`` (bit offset) and ``lengths[j]`` bits."""

    bits: int
    starts: tuple[int, ...]
    lengths: tuple[int, ...]

    @classmethod
    def split(cls, bits: int, m: int) -> "Plan":
        base, extra = divmod(bits, m)
        # The longer substrings come first: they get the larger probe radius (see radii()),
        # where a longer key means emptier buckets for the same number of probes per bit.
        lengths = tuple(base + 1 if j < extra else base for j in range(m))
        starts = tuple(int(s) for s in np.cumsum((0,) + lengths[:-1]))
        return cls(bits, starts, lengths)

    @property
    def m(self) -> int:
        return len(self.lengths)

    def radii(self, radius: int) -> list[int]:
        """Per-table probe radius for an exact search at ``radius`` (-1: the table is skipped)."""
        s, a = divmod(radius, self.m)
        return [s if j <= a else s - 1 for j in range(self.m)]

    def probes(self, radius: int) -> int:
        return sum(len(flip_masks(length, r)) for length, r in zip(self.lengths, self.radii(radius)) if r >= 0)


def substring(codes: np.ndarray, start: int, length: int) -> np.ndarray:
    """Bits [start, start+length) of each row of ``codes`` ((n, words) uint64) as uint64 values."""
    word, shift = divmod(start, 64)
    value = codes[:, word] >> np.uint64(shift)
    if shift + length > 64:
        value = value | (codes[:, word + 1] << np.uint64(64 - shift))
    return value & np.uint64((1 << length) - 1)


@lru_cache(maxsize=64)
def flip_masks(length: int, radius: int) -> np.ndarray:
    """Every ``length``-bit value with at most ``radius`` bits set, as uint32 (0 first)."""
    if radius < 0:
        return np.empty(0, np.uint32)
    masks = [0]
    for k in range(1, min(radius, length) + 1):
        masks.extend(sum(1 << b for b in bits) for bits in itertools.combinations(range(length), k))
    return np.array(masks, np.uint32)


@dataclass(frozen=True)
class _Probes:
    """Every probe of an exact search at one radius: its table, flip mask and offsets base."""

    table: np.ndarray  # (P,) int64: which substring
    mask: np.ndarray  # (P,) uint64: the bits flipped
    base: np.ndarray  # (P,) int64: where that table's offsets start in the concatenated array
    perm_base: np.ndarray  # (P,) int64: the table's number (its perm block is perm_base * n)


@lru_cache(maxsize=256)
def _probes(plan: Plan, radius: int) -> _Probes:
    bases = np.cumsum((0,) + tuple((1 << length) + 1 for length in plan.lengths[:-1])).astype(np.int64)
    tables, masks = [], []
    for j, (length, r) in enumerate(zip(plan.lengths, plan.radii(radius))):
        m = flip_masks(length, r)
        tables.append(np.full(len(m), j, np.int64))
        masks.append(m.astype(np.uint64))
    table = np.concatenate(tables) if tables else np.empty(0, np.int64)
    mask = np.concatenate(masks) if masks else np.empty(0, np.uint64)
    return _Probes(table, mask, bases[table], table.copy())


# Below this many entries a table builds in a few ms: threads would cost more than they save.
PARALLEL_BUILD_ENTRIES = 1_000_000


def _build_workers(n: int, tables: int) -> int:
    """Threads to build the tables with: one per core the process may use, for a large index."""
    if n < PARALLEL_BUILD_ENTRIES:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, tables))


def substrings(codes: np.ndarray, plan: Plan) -> np.ndarray:
    """Every substring of each row at once: (n, m) uint64."""
    return np.stack([substring(codes, s, length) for s, length in zip(plan.starts, plan.lengths)], axis=1)


class MultiIndex:
    """Immutable multi-index over the rows of ``codes`` (which it does not copy)."""

    def __init__(self, codes: np.ndarray, plan: Plan, *, tables: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.codes = codes
        self.plan = plan
        n = len(codes)
        if n >= 2**32:
            raise ValueError("a multi-index holds fewer than 2**32 entries")
        if tables is None:
            tables = self._build(codes, plan)
        self.offsets, self.perm = tables

    @staticmethod
    def _build(codes: np.ndarray, plan: Plan, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, perm) of every table; ``workers`` threads (default: one per core, for a large index)."""
        n = len(codes)
        offsets = np.empty(sum((1 << length) + 1 for length in plan.lengths), np.uint32)
        perm = np.empty(n * plan.m, np.uint32)
        bases = np.cumsum((0,) + tuple((1 << length) + 1 for length in plan.lengths[:-1]))

        compiled = _hamming is not None and codes.dtype == np.uint64 and codes.flags.c_contiguous

        def build_table(j: int) -> None:
            start, length, at = plan.starts[j], plan.lengths[j], int(bases[j])
            if compiled:  # a counting sort in place: no temporaries (index/_hamming.c)
                _hamming.bucket_sort(codes, codes.shape[1], start, length, offsets[at : at + (1 << length) + 1],
                                     perm[j * n : (j + 1) * n])
                return
            keys = substring(codes, start, length).astype(np.uint32)
            counts = np.bincount(keys, minlength=1 << length)
            table = offsets[at : at + (1 << length) + 1]
            table[0] = 0
            np.cumsum(counts, out=table[1:])
            # Sorting (key << 32 | position) groups positions by key, ascending within a bucket
            # (cache-friendlier reads); numpy's SIMD sort of uint64 is ~10x its stable argsort.
            combined = (keys.astype(np.uint64) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
            del keys
            combined.sort()
            perm[j * n : (j + 1) * n] = combined  # assignment keeps the low 32 bits: the positions

        workers = _build_workers(n, plan.m) if workers is None else max(1, min(workers, plan.m))
        if workers == 1:
            for j in range(plan.m):
                build_table(j)
        else:
            # Tables are independent and both builds run without the GIL: one table per core at
            # once (a start-up without a snapshot waits on them).
            with ThreadPoolExecutor(workers, thread_name_prefix="mih-build") as pool:
                for done in [pool.submit(build_table, j) for j in range(plan.m)]:
                    done.result()
        return offsets, perm

    @property
    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.perm.nbytes)

    def candidates(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """(query index, position) of every entry sharing a probed substring: a superset of the
        neighbours within ``radius``, possibly with repeats."""
        probes = _probes(self.plan, radius)
        empty = np.empty(0, np.int64), np.empty(0, np.int64)
        if len(probes.table) == 0 or len(queries) == 0:
            return empty
        subs = substrings(queries, self.plan)  # (nq, m)
        # Every probe of every query at once: (nq, P) keys into the concatenated offsets.
        keys = (subs[:, probes.table] ^ probes.mask).astype(np.int64) + probes.base
        keys = keys.ravel()
        lo = self.offsets[keys]
        lengths = (self.offsets[keys + 1] - lo).astype(np.int64)
        hit = np.flatnonzero(lengths)
        if len(hit) == 0:
            return empty
        lengths = lengths[hit]
        lo = lo[hit].astype(np.int64) + probes.perm_base[hit % len(probes.table)] * len(self.codes)
        owner = hit // len(probes.table)
        # Expand the ranges [lo, lo+len) into one index array without a Python loop.
        ends = np.cumsum(lengths)
        total = int(ends[-1])
        index = np.arange(total, dtype=np.int64) + np.repeat(lo - (ends - lengths), lengths)
        return np.repeat(owner, lengths), self.perm[index].astype(np.int64)

    def within(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact: (query index, position, distance) of every row within ``radius`` (inclusive)."""
        if _hamming is not None and self.codes.dtype == np.uint64 and self.codes.flags.c_contiguous:
            q, pos, distances = self._verified_compiled(queries, radius)
        else:
            q, pos = self.candidates(queries, radius)
            if len(q) == 0:
                return q, pos, np.empty(0, np.int32)
            distances = popcount_rows(self.codes[pos] ^ queries[q])
            keep = distances <= radius
            q, pos, distances = q[keep], pos[keep], distances[keep]
        if len(q) == 0:
            return q, pos, distances
        # An entry found through several substrings is reported once.
        key = q * len(self.codes) + pos
        key, first = np.unique(key, return_index=True)
        return q[first], pos[first], distances[first]

    def _verified_compiled(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """within()'s candidates and their verification in one compiled loop (index/_hamming.c's
        probe): the probe keys are made here, as in candidates(); repeats are left to the caller."""
        probes = _probes(self.plan, radius)
        if len(probes.table) == 0 or len(queries) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32)
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        keys = (substrings(queries, self.plan)[:, probes.table] ^ probes.mask).astype(np.int64) + probes.base
        starts = probes.perm_base * len(self.codes)
        found = _hamming.probe(self.codes, self.codes.shape[1], self.offsets, self.perm, keys.ravel(), starts,
                               queries, radius)
        q, pos = np.frombuffer(found[0], np.int64), np.frombuffer(found[1], np.int64)
        return q, pos, np.frombuffer(found[2], np.int32)
