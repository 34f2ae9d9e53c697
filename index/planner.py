"""Which structure answers a search: the multi-index's shape for a segment's size, and, per query
batch and radius, multi-index probing or a flat scan, whichever the cost model says is cheaper.

The constants are measured on the reference machine (2-core AMD EPYC, AVX-512, one thread) with
bench/search.py's clustered data at 10M entries; docs/index.md has the figures. Only their ratios
matter: they decide a crossover, and being off by 2x moves it by a little.
"""

from __future__ import annotations

import functools
import math

from . import codes
from .mih import Plan

# Below this many entries a flat scan costs under ~0.1 ms per query: no tables to build or hold.
MIH_MIN_ENTRIES = 50_000
# Longest substring: its table of offsets has 2**22 + 1 uint32 (16 MiB); longer ones cost more
# memory per entry than they save in candidates at 10M entries.
MAX_SUBSTRING_BITS = 22
# Measured: a flat scan (faiss's AVX-512 Hamming kernel) costs about this per code, plus this per word.
FLAT_NS_PER_CODE = 0.3
FLAT_NS_PER_WORD = 0.26
# Measured: our batched kernel for one-word codes (index/_hamming.c) reads the codes once per
# batch (memory-bound for one query) and then costs little per extra query.
KERNEL_NS_PER_CODE = 0.2
KERNEL_NS_PER_CODE_QUERY = 0.065
# Measured: multi-index probing costs this per probe (two adjacent reads of an offsets table) ...
MIH_NS_PER_PROBE = 36.0
# ... and this per candidate and 64-bit word (a random read of the code, XOR, popcount) ...
MIH_NS_PER_CANDIDATE_WORD = 37.0
# ... and this per call (numpy's fixed costs).
MIH_NS_PER_CALL = 40_000.0


def plan_for(bits: int, n: int) -> Plan | None:
    """The multi-index shape for ``n`` entries of ``bits`` bits, or None for flat scanning only.

    Substrings of about log2(n) - 1.5 bits: then a probe finds about 2**-1.5 ~ 0.35 entries on
    uniform data, so candidates stay near the number of probes, and a table's offsets cost
    under 4/2**1.5 ~ 1.4 bytes per entry (measured best at 10M: 12 substrings for PDQ, 3 for pHash)."""
    if n < MIH_MIN_ENTRIES:
        return None
    length = min(MAX_SUBSTRING_BITS, max(8.0, math.log2(n) - 1.5))
    m = max(math.ceil(bits / MAX_SUBSTRING_BITS), math.ceil(bits / length))
    return Plan.split(bits, m)


@functools.lru_cache(maxsize=4096)  # asked on every search, with a handful of distinct arguments
def expected_candidates(plan: Plan, n: int, radius: int) -> float:
    """Candidates a query meets on uniform data: each probe finds n / 2**length entries."""
    from .mih import flip_masks

    return sum(
        len(flip_masks(length, r)) * n / float(1 << length)
        for length, r in zip(plan.lengths, plan.radii(radius))
        if r >= 0
    )


def mih_cost_ns(plan: Plan, n: int, nq: int, radius: int) -> float:
    words = plan.bits // 64
    per_query = plan.probes(radius) * MIH_NS_PER_PROBE + expected_candidates(plan, n, radius) * MIH_NS_PER_CANDIDATE_WORD * words
    return MIH_NS_PER_CALL + nq * per_query


def flat_cost_ns(bits: int, n: int, nq: int) -> float:
    if bits == 64 and codes._hamming is not None:
        return n * (KERNEL_NS_PER_CODE + KERNEL_NS_PER_CODE_QUERY * nq)
    return nq * n * (FLAT_NS_PER_CODE + FLAT_NS_PER_WORD * bits / 64)


def use_mih(plan: Plan | None, n: int, nq: int, radius: int) -> bool:
    if plan is None:
        return False
    # Past a certain radius the number of probes explodes (sum of binomials): stop counting early.
    s, _ = divmod(radius, plan.m)
    if s > 6:
        return False
    return mih_cost_ns(plan, n, nq, radius) < flat_cost_ns(plan.bits, n, nq)
