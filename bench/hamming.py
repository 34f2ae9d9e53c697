"""The flat scan of 64-bit codes: our batched kernel (index/_hamming.c) against faiss.

    flock /tmp/hashmatch-bench.lock python bench/hamming.py [--size 10M] [--repeats 30]

Both scan every code, exactly, on one thread, over the same uniformly random codes; queries are
one hash, and an upload's batch of 8 (its orientations). Prints p50 / p99 ms and ratios. This is
the scan the index falls back to for one-word codes when multi-index probing would cost more
(small segments, the delta, large radii); bench/search.py measures the index as a whole.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import faiss
import numpy as np

from hashmatch.index import codes as codes_module
from hashmatch.index.codes import flat_within


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def faiss_scan(codes: np.ndarray, queries: np.ndarray, radius: int) -> int:
    result = faiss.RangeSearchResult(len(queries))
    faiss.hamming_range_search(faiss.swig_ptr(queries.view(np.uint8)), faiss.swig_ptr(codes.view(np.uint8)),
                               len(queries), len(codes), radius + 1, 8, result)
    return int(faiss.rev_swig_ptr(result.lims, len(queries) + 1)[-1])


def ours(codes: np.ndarray, queries: np.ndarray, radius: int) -> int:
    return len(flat_within(codes, queries, radius)[0])


def timings(fn, codes: np.ndarray, queries: np.ndarray, radius: int, repeats: int) -> tuple[list[float], int]:
    found = fn(codes, queries, radius)  # warm
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(codes, queries, radius)
        out.append((time.perf_counter() - start) * 1000)
    return out, found


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="10M")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--radius", type=int, default=10)
    args = parser.parse_args(argv)
    if codes_module._hamming is None:
        print("index/_hamming.c is not built (no C compiler at install?): nothing to compare", file=sys.stderr)
        return 1
    faiss.omp_set_num_threads(1)
    n = parse_size(args.size)
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 2**64, size=(n, 1), dtype=np.uint64)
    batch = codes[rng.choice(n, 8)] ^ np.uint64(0b111)  # each query near one listed code
    print(f"python bench/hamming.py --size {args.size} --repeats {args.repeats} --radius {args.radius}")
    print(f"\n{n:,} 64-bit codes, radius {args.radius}, one thread; kernel: {codes_module._hamming.kernel()}\n")
    print("| query | ours p50 / p99 ms | faiss flat p50 / p99 ms | faiss / ours (p50) |")
    print("| --- | ---: | ---: | ---: |")
    medians = {}
    for label, queries in (("1 hash", batch[:1]), ("batch of 8", batch)):
        mine, found_mine = timings(ours, codes, queries, args.radius, args.repeats)
        theirs, found_theirs = timings(faiss_scan, codes, queries, args.radius, args.repeats)
        if found_mine != found_theirs:
            raise SystemExit(f"the scans disagree: {found_mine} pairs against faiss's {found_theirs}")
        medians[label] = (statistics.median(mine), statistics.median(theirs))
        print(f"| {label} | {p(mine, 50):.2f} / {p(mine, 99):.2f} | {p(theirs, 50):.2f} / {p(theirs, 99):.2f} "
              f"| {medians[label][1] / medians[label][0]:.1f}x |")
    one, eight = medians["1 hash"], medians["batch of 8"]
    print(f"\nbatch of 8 / 1 hash (p50): ours {eight[0] / one[0]:.2f}x, faiss {eight[1] / one[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
