"""Hash codes as the search structures hold them, and the two primitive scans over them.

A code is a row of 64-bit words ((n, words) uint64): numpy can XOR and popcount whole rows, and
faiss's Hamming kernels read the same memory as bytes. Every algorithm's size is a multiple of 64 bits.
"""

from __future__ import annotations

import faiss
import numpy as np

def words(nbytes: int) -> int:
    if nbytes % 8:
        raise ValueError(f"codes are whole 64-bit words; {nbytes} bytes is not")
    return nbytes // 8


def from_bytes(values: list[bytes], nbytes: int) -> np.ndarray:
    """Raw hash bytes (as the hex reads) -> (n, nbytes/8) uint64 codes."""
    if not values:
        return np.empty((0, words(nbytes)), np.uint64)
    return np.frombuffer(b"".join(values), dtype=np.uint8).view(np.uint64).reshape(len(values), words(nbytes)).copy()


def popcount_rows(x: np.ndarray) -> np.ndarray:
    """Bits set in each row of an (n, words) uint64 array, as int32."""
    return np.bitwise_count(x).sum(axis=1, dtype=np.int32)


def flat_within(codes: np.ndarray, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact scan of every row: (query index, position, distance) for each pair within ``radius``.

    faiss's Hamming kernel (AVX2/AVX-512 popcount) straight on our array, no copy. One call for
    the whole batch: measured, scanning in cache-sized blocks does not make a batch cheaper here
    (the kernel is bound by its per-pair work, not by memory) and the per-call cost adds up."""
    n, nq = len(codes), len(queries)
    if n == 0 or nq == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int32)
    code_size = codes.shape[1] * 8
    codes = np.ascontiguousarray(codes)
    queries = np.ascontiguousarray(queries)
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
