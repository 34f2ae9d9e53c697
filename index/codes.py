"""Hash codes as the search structures hold them, and the two primitive scans over them.

A code is a row of 64-bit words ((n, words) uint64): numpy can XOR and popcount whole rows, and
faiss's Hamming kernels read the same memory as bytes. Every perceptual hash is a whole number of
words; a digest that is not (SHA-1's 160 bits) is zero-padded to the next word, which changes no
equality between digests (digests are only ever compared whole, for equality).
"""

from __future__ import annotations

import faiss
import numpy as np

try:  # the batched scan for one-word codes (index/_hamming.c), built at install when a compiler is there
    from . import _hamming
except ImportError:  # pragma: no cover - exercised only on machines that could not build it
    _hamming = None

def words(nbytes: int) -> int:
    """64-bit words in the code of an ``nbytes`` hash (rounded up: see the module docstring)."""
    return -(-nbytes // 8)


def from_rows(values: np.ndarray, nbytes: int) -> np.ndarray:
    """(n, nbytes) uint8 hash bytes (as the hex reads) -> (n, words) uint64 codes, zero-padded."""
    n, width = len(values), words(nbytes) * 8
    if width != nbytes:
        padded = np.zeros((n, width), np.uint8)
        padded[:, :nbytes] = values.reshape(n, nbytes)
        values = padded
    return np.ascontiguousarray(values, np.uint8).view(np.uint64).reshape(n, width // 8)


def from_bytes(values: list[bytes], nbytes: int) -> np.ndarray:
    """Raw hash bytes (as the hex reads) -> (n, words) uint64 codes."""
    if not values:
        return np.empty((0, words(nbytes)), np.uint64)
    rows = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), nbytes)
    return from_rows(rows, nbytes).copy()


def popcount_rows(x: np.ndarray) -> np.ndarray:
    """Bits set in each row of an (n, words) uint64 array, as int32."""
    return np.bitwise_count(x).sum(axis=1, dtype=np.int32)


def flat_within(codes: np.ndarray, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact scan of every row: (query index, position, distance) for each pair within ``radius``.

    One-word codes (the 64-bit hashes) go to our batched kernel, which reads the codes once for
    the whole batch (an upload's 8 orientations) and compares eight codes with a query per
    AVX-512 instruction: bench/search.py measures it against faiss. Longer codes go to faiss's
    Hamming kernel, straight on our array, no copy; there the per-pair work dominates and
    scanning in cache-sized blocks measured no faster."""
    n, nq = len(codes), len(queries)
    if n == 0 or nq == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32)
    codes = np.ascontiguousarray(codes)
    queries = np.ascontiguousarray(queries)
    if _hamming is not None and codes.shape[1] == 1 and 0 <= radius <= 64:
        query_index, position, distance = _hamming.scan(codes, queries, radius)
        return (np.frombuffer(query_index, np.int64), np.frombuffer(position, np.int64),
                np.frombuffer(distance, np.int32))
    code_size = codes.shape[1] * 8
    result = faiss.RangeSearchResult(nq)
    # faiss's radius is exclusive; ours is inclusive.
    faiss.hamming_range_search(faiss.swig_ptr(queries.view(np.uint8)), faiss.swig_ptr(codes.view(np.uint8)),
                               nq, n, radius + 1, code_size, result)
    lims = faiss.rev_swig_ptr(result.lims, nq + 1).astype(np.int64)
    found = int(lims[-1])
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32)
    positions = faiss.rev_swig_ptr(result.labels, found).astype(np.int64)
    distances = faiss.rev_swig_ptr(result.distances, found).astype(np.int32)
    return np.repeat(np.arange(nq, dtype=np.int64), np.diff(lims)), positions, distances
