"""Every search structure against a brute-force scan: the multi-index (many shapes), the flat
scan, exact digest lookup, and an algorithm's main segment with deltas, masked rows and folds.

Lists are random or clustered (families of near-duplicates), thresholds random, and queries sit
at every distance from 0 to threshold+1 of listed entries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashmatch.hashing.algorithms import Algorithm
from hashmatch.index import planner
from hashmatch.index.codes import flat_within, popcount_rows
from hashmatch.index.mih import MultiIndex, Plan
from hashmatch.index.segment import Segment
from hashmatch.index.view import AlgorithmIndex


def make_codes(rng: np.random.Generator, n: int, bits: int, clustered: bool) -> np.ndarray:
    words = bits // 64
    codes = rng.integers(0, 2**64, size=(n, words), dtype=np.uint64, endpoint=False)
    if clustered and n > 4:
        members = np.arange(n // 2, n)
        roots = rng.integers(0, n // 2, size=max(1, n // 20))
        codes[members] = codes[roots[rng.integers(0, len(roots), size=len(members))]]
        for row in members:
            for bit in rng.choice(bits, size=int(rng.integers(0, bits // 6)), replace=False):
                codes[row, bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    return codes


def at_distance(rng: np.random.Generator, code: np.ndarray, bits: int, d: int) -> np.ndarray:
    out = code.copy()
    for bit in rng.choice(bits, size=d, replace=False):
        out[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    return out


def queries_around(rng: np.random.Generator, codes: np.ndarray, bits: int, radius: int, k: int) -> np.ndarray:
    """k listed entries, each at every distance 0..radius+1, plus unrelated hashes."""
    picks = codes[rng.integers(0, len(codes), size=k)]
    out = [at_distance(rng, c, bits, d) for c in picks for d in range(min(bits, radius + 2))]
    out += list(rng.integers(0, 2**64, size=(5, bits // 64), dtype=np.uint64, endpoint=False))
    return np.array(out, np.uint64)


def brute(codes: np.ndarray, queries: np.ndarray, radius: int) -> set[tuple[int, int, int]]:
    found = set()
    for q, query in enumerate(queries):
        distances = popcount_rows(codes ^ query)
        for pos in np.flatnonzero(distances <= radius):
            found.add((q, int(pos), int(distances[pos])))
    return found


def triples(q, pos, dist) -> set[tuple[int, int, int]]:
    return set(zip(np.asarray(q).tolist(), np.asarray(pos).tolist(), np.asarray(dist).tolist()))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bits=st.sampled_from([64, 128, 256]),
    m=st.integers(2, 20),
    radius_share=st.floats(0, 0.3),
    clustered=st.booleans(),
    n=st.integers(1, 1500),
    seed=st.integers(0, 2**32 - 1),
)
def test_multi_index_equals_brute_force(bits: int, m: int, radius_share: float, clustered: bool, n: int, seed: int) -> None:
    plan = Plan.split(bits, max(m, -(-bits // 20)))  # substrings of at most 20 bits: small tables
    rng = np.random.default_rng(seed)
    codes = make_codes(rng, n, bits, clustered)
    radius = int(radius_share * bits)
    if plan.probes(radius) > 200_000:
        return  # a shape nobody would choose at this radius: too slow to enumerate here
    queries = queries_around(rng, codes, bits, radius, 3)
    index = MultiIndex(codes, plan)
    assert triples(*index.within(queries, radius)) == brute(codes, queries, radius)


@pytest.mark.parametrize("bits,radius", [(64, 0), (64, 6), (64, 10), (64, 20), (256, 31), (256, 63), (256, 90)])
@pytest.mark.parametrize("clustered", [False, True])
def test_flat_scan_equals_brute_force(bits: int, radius: int, clustered: bool) -> None:
    rng = np.random.default_rng(bits * 1000 + radius + clustered)
    codes = make_codes(rng, 3000, bits, clustered)
    queries = queries_around(rng, codes, bits, radius, 4)
    assert triples(*flat_within(codes, queries, radius)) == brute(codes, queries, radius)
    # One query at a time gives the same as the batch.
    single = set()
    for q, query in enumerate(queries[:10]):
        single |= {(q, p, d) for _, p, d in triples(*flat_within(codes, query[None], radius))}
    assert single == {t for t in brute(codes, queries, radius) if t[0] < 10}


@pytest.mark.parametrize("radius", [0, 4, 10, 31, 63])
def test_segment_uses_either_structure_and_is_exact(radius: int) -> None:
    """A segment big enough for a multi-index: whichever structure the cost model picks (and
    both forced), the answer is the brute-force one."""
    rng = np.random.default_rng(radius)
    bits = 256
    codes = make_codes(rng, planner.MIH_MIN_ENTRIES + 5000, bits, clustered=True)
    segment = Segment.build(bits, codes, np.arange(len(codes)) * 3, np.zeros(len(codes), np.int64))
    assert segment.mih is not None
    queries = queries_around(rng, codes, bits, radius, 2)
    expected = brute(codes, queries, radius)
    assert triples(*segment.search(queries, radius)) == expected
    assert triples(*segment.mih.within(queries, radius)) == expected
    assert triples(*flat_within(segment.codes, queries, radius)) == expected


def test_exact_segment_finds_equal_digests_only() -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 2**64, size=(2000, 4), dtype=np.uint64, endpoint=False)
    codes[1000:1100, 0] = codes[0, 0]  # same first word, different digests
    codes[1500] = codes[7]  # the same digest twice (two lists)
    segment = Segment.build(256, codes, np.arange(2000), np.zeros(2000, np.int64), exact=True)
    queries = np.concatenate([codes[[0, 7, 1050]], at_distance(rng, codes[3], 256, 1)[None]])
    assert triples(*segment.search(queries, 0)) == brute(codes, queries, 0)


class Model:
    """What the live index should hold: row id -> (code, list id)."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.rows: dict[int, tuple[np.ndarray, int]] = {}

    def within(self, queries: np.ndarray, radius: int) -> set[tuple[int, int, int, int]]:
        if not self.rows:
            return set()
        ids = np.array(list(self.rows), np.int64)
        codes = np.array([self.rows[r][0] for r in ids.tolist()], np.uint64)
        return {(q, int(ids[p]), self.rows[int(ids[p])][1], d) for q, p, d in brute(codes, queries, radius)}


def live_answer(index: AlgorithmIndex, queries: np.ndarray, radius: int) -> set[tuple[int, int, int, int]]:
    q, rows, lists, dist = index.search(queries, radius)
    found = list(zip(q.tolist(), rows.tolist(), lists.tolist(), dist.tolist()))
    assert len(found) == len(set(found)), "an entry reported twice"
    return set(found)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bits,radius", [(64, 10), (256, 31)])
def test_deltas_masks_and_folds_equal_brute_force(seed: int, bits: int, radius: int, monkeypatch) -> None:
    # Small segments get multi-indexes too, so every path is exercised at test sizes.
    monkeypatch.setattr(planner, "MIH_MIN_ENTRIES", 200)
    rng = np.random.default_rng(seed)
    algorithm = Algorithm.PHASH if bits == 64 else Algorithm.PDQ
    model = Model(bits)
    next_row = 0

    def new_segment(k: int, reuse: int | None = None) -> Segment:
        nonlocal next_row
        base = list(model.rows.values())
        codes = make_codes(rng, k, bits, clustered=True)
        if base:  # near-duplicates of listed entries, as families grow
            for i in range(0, k, 3):
                codes[i] = at_distance(rng, base[int(rng.integers(len(base)))][0], bits, int(rng.integers(0, radius + 2)))
        rows = np.arange(next_row, next_row + k, dtype=np.int64)
        if reuse is not None:
            rows[-1] = reuse  # SQLite may hand a removed row id out again
        next_row += k
        lists = rng.integers(1, 4, size=k)
        for r, c, l in zip(rows.tolist(), codes, lists.tolist()):
            model.rows[r] = (c, l)
        return Segment.build(bits, codes, rows, lists)

    index = AlgorithmIndex.of(algorithm, new_segment(600))
    removed_last: int | None = None
    for step in range(12):
        action = rng.integers(0, 4)
        if action == 0 or len(model.rows) < 50:
            index = index.with_segment(new_segment(int(rng.integers(1, 300)), reuse=removed_last))
            removed_last = None
        elif action == 1:
            victims = rng.choice(list(model.rows), size=int(rng.integers(1, 40)), replace=False)
            removed_last = int(max(victims)) if int(max(victims)) == max(model.rows) else None
            for r in victims.tolist():
                del model.rows[r]
            index = index.without_rows(np.sort(victims))
        elif action == 2:
            # A fold taken from this view while changes keep coming, then rebased.
            base = index
            folded = base.folded()
            index = index.with_segment(new_segment(int(rng.integers(1, 100))))
            victims = rng.choice(list(model.rows), size=5, replace=False)
            for r in victims.tolist():
                del model.rows[r]
            index = index.without_rows(np.sort(victims)).rebased(base, folded)
        else:
            index = AlgorithmIndex.of(algorithm, index.folded())
        assert index.live == len(model.rows)
        codes = np.array([c for c, _ in model.rows.values()], np.uint64)
        queries = queries_around(rng, codes, bits, radius, 2)
        assert live_answer(index, queries, radius) == model.within(queries, radius), f"step {step}"


@pytest.mark.parametrize("bits,radius", [(64, 10), (256, 31)])
def test_compiled_probe_equals_the_numpy_path(bits: int, radius: int, monkeypatch) -> None:
    """mih.within verifies candidates in index/_hamming.c's probe when it is built; numpy's path
    (the fallback without a compiler) must give the same triples."""
    from hashmatch.index import mih

    if mih._hamming is None:
        pytest.skip("the compiled kernel is not built here")
    rng = np.random.default_rng(11)
    codes = make_codes(rng, 20_000, bits, True)
    index = MultiIndex(codes, Plan.split(bits, max(4, bits // 16)))
    queries = queries_around(rng, codes, bits, radius, 8)
    compiled = triples(*index.within(queries, radius))
    monkeypatch.setattr(mih, "_hamming", None)
    assert triples(*index.within(queries, radius)) == compiled == brute(codes, queries, radius)
    assert len(compiled) >= 8


def test_compiled_probe_refuses_keys_outside_its_tables() -> None:
    from hashmatch.index import mih

    if mih._hamming is None:
        pytest.skip("the compiled kernel is not built here")
    codes = np.arange(10, dtype=np.uint64).reshape(10, 1)
    offsets = np.array([0, 5, 10], np.uint32)
    perm = np.arange(10, dtype=np.uint32)
    query = np.zeros((1, 1), np.uint64)
    starts = np.zeros(1, np.int64)
    q, pos, dist = mih._hamming.probe(codes, 1, offsets, perm, np.array([1], np.int64), starts, query, 64)
    assert np.frombuffer(pos, np.int64).tolist() == [5, 6, 7, 8, 9]
    for bad_key in (2, -1, 99):
        with pytest.raises(ValueError, match="outside the tables"):
            mih._hamming.probe(codes, 1, offsets, perm, np.array([bad_key], np.int64), starts, query, 64)
    with pytest.raises(ValueError, match="outside the tables"):  # a bucket past the end of perm
        mih._hamming.probe(codes, 1, offsets, perm, np.array([1], np.int64), np.array([3], np.int64), query, 64)
    with pytest.raises(ValueError, match="same number of probes"):
        mih._hamming.probe(codes, 1, offsets, perm, np.array([0, 1, 1], np.int64), np.zeros(2, np.int64), query, 64)
