"""The batched Hamming scan (index/_hamming.c) against a numpy brute force, pair for pair."""

from __future__ import annotations

import platform
import shutil

import numpy as np
import pytest

from hashmatch.index import codes as codes_module
from hashmatch.index.codes import flat_within

_hamming = codes_module._hamming


def brute(codes: np.ndarray, queries: np.ndarray, radius: int) -> set[tuple[int, int, int]]:
    distances = np.bitwise_count(codes[:, 0][None, :] ^ queries[:, 0][:, None]).astype(np.int64)
    q, p = np.nonzero(distances <= radius)
    return set(zip(q.tolist(), p.tolist(), distances[q, p].tolist()))


def found(codes: np.ndarray, queries: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
    q, p, d = flat_within(codes, queries, radius)
    return list(zip(q.tolist(), p.tolist(), d.tolist()))


def test_the_kernel_is_built_where_a_compiler_is() -> None:
    # The install compiles it (pyproject: optional, so a machine without a compiler still
    # installs); here, with gcc present, a silent build failure would be a silent slowdown.
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler on this machine: the faiss fallback is used")
    assert _hamming is not None, "index/_hamming.c was not built by the install"
    expected = {"x86_64": ("avx512-vpopcntdq", "popcnt")}.get(platform.machine(), ("portable",))
    assert _hamming.kernel() in expected


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 63, 1000, 4099])
@pytest.mark.parametrize("nq", [1, 2, 5, 8, 9, 17])
def test_every_pair_within_the_radius_and_none_outside(n: int, nq: int) -> None:
    rng = np.random.default_rng(n * 100 + nq)
    codes = rng.integers(0, 2**64, size=(n, 1), dtype=np.uint64)
    queries = rng.integers(0, 2**64, size=(nq, 1), dtype=np.uint64)
    if n:
        # Near-duplicates of some queries at known distances, including in the tail after the
        # last whole block of eight codes.
        for i in range(min(n, 40)):
            flips = rng.choice(64, size=i % 12, replace=False)
            codes[-1 - i, 0] = queries[i % nq, 0] ^ np.uint64(sum(1 << int(b) for b in flips))
    for radius in (0, 1, 6, 10, 31, 32, 64):
        got = found(codes, queries, radius)
        assert len(got) == len(set(got)), "a pair reported twice"
        assert set(got) == brute(codes, queries, radius), radius


def test_the_same_answer_as_faiss() -> None:
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 2**64, size=(20_000, 1), dtype=np.uint64)
    queries = codes[rng.choice(len(codes), 8)] ^ np.uint64(0b1011)
    ours = set(found(codes, queries, 20))
    saved = codes_module._hamming
    codes_module._hamming = None  # the faiss path, for comparison
    try:
        theirs = set(found(codes, queries, 20))
    finally:
        codes_module._hamming = saved
    assert ours == theirs and len(ours) > 8


def test_bad_buffers_are_refused_with_a_reason() -> None:
    if _hamming is None:
        pytest.skip("kernel not built")
    with pytest.raises(ValueError, match="radius"):
        _hamming.scan(np.zeros(8, np.uint64), np.zeros(1, np.uint64), 65)
    with pytest.raises(ValueError, match="64-bit codes"):
        _hamming.scan(np.zeros(9, np.uint8), np.zeros(1, np.uint64), 3)


def numpy_table(codes: np.ndarray, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """A multi-index table the slow way: keys by numpy shifts, positions by a stable argsort."""
    from hashmatch.index.mih import substring

    keys = substring(codes, start, length).astype(np.int64)
    offsets = np.zeros((1 << length) + 1, np.int64)
    np.cumsum(np.bincount(keys, minlength=1 << length), out=offsets[1:])
    return offsets.astype(np.uint32), np.argsort(keys, kind="stable").astype(np.uint32)


@pytest.mark.skipif(_hamming is None, reason="index/_hamming.c is not built")
@pytest.mark.parametrize("words, start, length", [(1, 0, 16), (1, 43, 21), (1, 40, 24), (4, 0, 22),
                                                  (4, 50, 22), (4, 120, 19), (4, 234, 22), (2, 63, 2)])
@pytest.mark.parametrize("n", [0, 1, 5000])
def test_bucket_sort_builds_the_table_numpy_builds(words: int, start: int, length: int, n: int) -> None:
    rng = np.random.default_rng(start * 131 + n)
    codes = rng.integers(0, 2**64, size=(n, words), dtype=np.uint64)
    if n > 10:
        codes[n // 2 :] = codes[: n - n // 2]  # repeated keys: order inside a bucket matters
    offsets = np.full((1 << length) + 1, 7, np.uint32)
    perm = np.full(n, 7, np.uint32)
    _hamming.bucket_sort(codes, words, start, length, offsets, perm)
    expected_offsets, expected_perm = numpy_table(codes, start, length)
    assert np.array_equal(offsets, expected_offsets)
    assert np.array_equal(perm, expected_perm)


@pytest.mark.skipif(_hamming is None, reason="index/_hamming.c is not built")
def test_the_multi_index_built_in_c_equals_the_numpy_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from hashmatch.index import mih

    codes = np.random.default_rng(3).integers(0, 2**64, size=(20_000, 4), dtype=np.uint64)
    plan = mih.Plan.split(256, 12)
    compiled = mih.MultiIndex._build(codes, plan)
    monkeypatch.setattr(mih, "_hamming", None)
    slow = mih.MultiIndex._build(codes, plan)
    assert np.array_equal(compiled[0], slow[0]) and np.array_equal(compiled[1], slow[1])


@pytest.mark.skipif(_hamming is None, reason="index/_hamming.c is not built")
def test_bucket_sort_refuses_bad_arguments() -> None:
    codes = np.zeros((10, 1), np.uint64)
    with pytest.raises(ValueError, match="substring"):
        _hamming.bucket_sort(codes, 1, 40, 30, np.zeros(10, np.uint32), np.zeros(10, np.uint32))
    with pytest.raises(ValueError, match="offsets must hold"):
        _hamming.bucket_sort(codes, 1, 0, 8, np.zeros(10, np.uint32), np.zeros(10, np.uint32))
    with pytest.raises(ValueError, match="perm must hold"):
        _hamming.bucket_sort(codes, 1, 0, 8, np.zeros(257, np.uint32), np.zeros(9, np.uint32))
    read_only = np.zeros(10, np.uint32)
    read_only.flags.writeable = False
    with pytest.raises((BufferError, ValueError)):  # the table must be writable
        _hamming.bucket_sort(codes, 1, 0, 8, np.zeros(257, np.uint32), read_only)


@pytest.mark.skipif(_hamming is None, reason="index/_hamming.c is not built")
def test_bucket_sort_refuses_tables_of_another_type_or_overlapping() -> None:
    codes = np.zeros((10, 1), np.uint64)
    with pytest.raises(ValueError, match="uint32"):
        _hamming.bucket_sort(codes, 1, 0, 8, np.zeros(257, np.uint32), np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="uint32"):
        _hamming.bucket_sort(codes, 1, 0, 8, np.zeros(257, np.float32), np.zeros(10, np.uint32))
    shared = np.zeros(267, np.uint32)
    with pytest.raises(ValueError, match="overlap"):
        _hamming.bucket_sort(codes, 1, 0, 8, shared[:257], shared[250:260])
