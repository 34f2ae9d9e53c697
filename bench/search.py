"""Search benchmark: hashmatch's index beside faiss's flat scan and HMA's multi-index, same data.

    python bench/search.py search --sizes 1M,10M            # latency, build, load, memory
    python bench/search.py startup --size 10M               # start-up on a 10M store; 100k visible
    python bench/search.py soak --cycles 1000               # memory across load/remove cycles

Run heavy ones one at a time machine-wide: flock /tmp/hashmatch-bench.lock python bench/search.py ...
One thread throughout (faiss's OpenMP included). Data: synthetic clustered hashes, seeded: half are
families of near-duplicates (a root and members a few bits from it, as real lists hold the
variants of one picture), half unrelated. Queries: half near a listed entry (distance 0..radius),
half unrelated; an upload's batch is 8 hashes, one near and seven unrelated (the other
orientations of a picture rarely match). Every answer of ours is checked against the flat scan.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.index import CompactionPolicy, HashLists, NewEntry, SQLiteStore
from hashmatch.index.segment import Segment
from hashmatch.index.snapshot import read_snapshot, write_snapshot
from hashmatch.index.view import AlgorithmIndex

RADII = {Algorithm.PDQ: (31, 63), Algorithm.PHASH: (10, 6)}


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def clustered(n: int, bits: int, seed: int) -> np.ndarray:
    """(n, bits/64) uint64: half unrelated, half in families of ~8 around a root (members up to
    bits/8 flips from it, so families hold pairs within PDQ 31 / pHash 10 of each other)."""
    rng = np.random.default_rng(seed)
    words = bits // 64
    codes = rng.integers(0, 2**64, size=(n, words), dtype=np.uint64, endpoint=False)
    members = np.arange(n // 2, n)
    roots = rng.integers(0, n // 2, size=max(1, len(members) // 8))
    codes[members] = codes[roots[rng.integers(0, len(roots), size=len(members))]]
    for _ in range(bits // 8):
        chosen = members[rng.random(len(members)) < 0.5]
        bit = rng.integers(0, bits, size=len(chosen))
        codes[chosen, bit // 64] ^= np.uint64(1) << (bit % 64).astype(np.uint64)
    return codes


def near(codes: np.ndarray, bits: int, radius: int, rng: np.random.Generator) -> np.ndarray:
    query = codes[rng.integers(0, len(codes))].copy()
    for bit in rng.choice(bits, size=int(rng.integers(0, radius + 1)), replace=False):
        query[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    return query


def query_sets(codes: np.ndarray, bits: int, radius: int, seed: int, singles: int, batches: int):
    rng = np.random.default_rng(seed)
    words = bits // 64
    one = [near(codes, bits, radius, rng) if i % 2 == 0 else rng.integers(0, 2**64, size=words, dtype=np.uint64)
           for i in range(singles)]
    eights = []
    for _ in range(batches):
        batch = rng.integers(0, 2**64, size=(8, words), dtype=np.uint64)
        batch[0] = near(codes, bits, radius, rng)
        eights.append(batch)
    return [q[None, :] for q in one], eights


def timed(fn, queries) -> tuple[list[float], list]:
    times, answers = [], []
    for q in queries:
        started = time.perf_counter()
        answers.append(fn(q))
        times.append(time.perf_counter() - started)
    return times, answers


def pct(times: list[float], p: float) -> float:
    return float(np.percentile(np.array(times) * 1e3, p))


def as_pairs(q, pos) -> set:
    return set(zip(np.asarray(q).tolist(), np.asarray(pos).tolist()))


def faiss_pairs(index, radius: int):
    def run(queries: np.ndarray):
        lims, _d, ids = index.range_search(queries.view(np.uint8), radius + 1)
        return np.repeat(np.arange(len(queries)), np.diff(lims).astype(np.int64)), ids
    return run


def measure_build(make):
    started = time.perf_counter()
    structure = make()
    return structure, time.perf_counter() - started


def resident_per_entry(structure: str, algorithm: Algorithm, data: np.ndarray, tmp: str) -> float:
    """Resident bytes per entry of one structure over ``data``, measured in a fresh process (in
    this one, memory freed by earlier structures is reused and hides what the next one takes).
    The child reads the codes from a file in one allocation: generating them there would leave
    the generator's freed temporaries in its heap and count them against the structure."""
    path = Path(tmp) / "codes.npy"
    if not path.exists():
        np.save(path, data)
    out = subprocess.run(
        [sys.executable, __file__, "memory", structure, algorithm.value, str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    return float(out.split()[-1])


def memory_child(structure: str, algorithm: Algorithm, codes_file: str) -> None:
    bits = algorithm.spec.bits
    gc.collect()
    before = rss()
    data = np.load(codes_file)
    n = len(data)
    if structure == "ours":
        built = Segment.build(bits, data, np.arange(n, dtype=np.int64), np.ones(n, np.int64))
    elif structure == "flat":
        built = _faiss_flat(bits, data)
    else:
        built = _faiss_hma(bits, bits // 16, data)
    del data  # ours keeps the codes array (it is the segment's); faiss has copied it
    gc.collect()
    assert built is not None
    print((rss() - before) / n)


def bench_search(n: int, algorithm: Algorithm, singles: int, batches: int, seed: int, out: list[str]) -> None:
    bits = algorithm.spec.bits
    label = f"{algorithm.name} {n/1e6:g}M"
    print(f"\n## {label}: generating clustered data", flush=True)
    data = clustered(n, bits, seed)

    ours, ours_build = measure_build(
        lambda: Segment.build(bits, data.copy(), np.arange(n, dtype=np.int64), np.ones(n, np.int64)))
    plan = ours.mih.plan.lengths if ours.mih is not None else "flat"
    print(f"ours built in {ours_build:.1f}s: substrings {plan}", flush=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = Path(tmp) / "index"
        write_snapshot(path, 1, {algorithm: AlgorithmIndex.of(algorithm, ours)})
        started = time.perf_counter()
        _gen, loaded = read_snapshot(path)
        ours_load = time.perf_counter() - started
        del loaded
        flat_path = str(Path(tmp) / "flat")
        flat, flat_build = measure_build(lambda: _faiss_flat(bits, data))
        faiss.write_index_binary(flat, flat_path)
        started = time.perf_counter()
        del flat
        flat = faiss.read_index_binary(flat_path)
        flat_load = time.perf_counter() - started
        os.unlink(flat_path)
        hma_m = bits // 16
        hma, hma_build = measure_build(lambda: _faiss_hma(bits, hma_m, data))
        hma_path = str(Path(tmp) / "hma")
        faiss.write_index_binary(hma, hma_path)
        del hma
        gc.collect()
        started = time.perf_counter()
        hma = faiss.read_index_binary(hma_path)
        hma_load = time.perf_counter() - started
    hma_name = f"HMA MultiHash({bits},{hma_m},16) nflip 1"
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        rows = [
            ("hashmatch (ours)", ours_build, ours_load, resident_per_entry("ours", algorithm, data, tmp)),
            ("faiss IndexBinaryFlat (+ IDMap)", flat_build, flat_load, resident_per_entry("flat", algorithm, data, tmp)),
            (hma_name + " (+ IDMap)", hma_build, hma_load, resident_per_entry("hma", algorithm, data, tmp)),
        ]
    out.append(f"\n### {label} (clustered), one thread\n")
    out.append("| structure | build s | load s | resident bytes/entry |")
    out.append("| --- | ---: | ---: | ---: |")
    for name, build, load, resident in rows:
        out.append(f"| {name} | {build:.2f} | {load:.2f} | {resident:.1f} |")
    out.append(f"\nours: substrings {plan}; accounted {ours.nbytes / n:.1f} bytes/entry "
               "(codes, row ids, list ids, tables)\n")
    out.append("| radius | query | ours p50 / p99 ms | flat p50 / p99 ms | HMA p50 / p99 ms | flat / ours (p50) | HMA / ours (p50) | HMA exact |")
    out.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for radius in RADII[algorithm]:
        one, eight = query_sets(data, bits, radius, seed + radius, singles, batches)
        for kind, queries in (("1 hash", one), ("batch of 8", eight)):
            ours_t, ours_a = timed(lambda q: ours.search(q, radius)[:2], queries)
            flat_t, flat_a = timed(faiss_pairs(flat, radius), queries)
            hma_t, hma_a = timed(faiss_pairs(hma, radius), queries)
            for a, b in zip(ours_a, flat_a):
                if as_pairs(*a) != as_pairs(*b):
                    raise SystemExit(f"ours differs from the flat scan at radius {radius}")
            expected = sum(len(as_pairs(*b)) for b in flat_a)
            got = sum(len(as_pairs(*h) & as_pairs(*b)) for h, b in zip(hma_a, flat_a))
            exact = "yes" if got == expected else f"no: recall {got / max(expected, 1):.3f}"
            o50, f50, h50 = pct(ours_t, 50), pct(flat_t, 50), pct(hma_t, 50)
            out.append(
                f"| {radius} | {kind} | {o50:.3f} / {pct(ours_t, 99):.3f} | {f50:.3f} / {pct(flat_t, 99):.3f} | "
                f"{h50:.3f} / {pct(hma_t, 99):.3f} | {f50 / o50:.1f}x | {h50 / o50:.1f}x | {exact} |"
            )
            print(out[-1], flush=True)
    del ours, flat, hma, data
    gc.collect()


def _faiss_flat(bits: int, data: np.ndarray):
    index = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(bits))
    index.add_with_ids(data.view(np.uint8), np.arange(len(data), dtype=np.int64))
    return index


def _faiss_hma(bits: int, m: int, data: np.ndarray):
    inner = faiss.IndexBinaryMultiHash(bits, m, 16)
    inner.nflip = 1
    index = faiss.IndexBinaryIDMap(inner)
    index.add_with_ids(data.view(np.uint8), np.arange(len(data), dtype=np.int64))
    return index


# -- start-up and live loads on a real store ------------------------------------------------------

def fill_store(path: Path, n: int, seed: int, codes: dict[str, np.ndarray] | None = None) -> None:
    """A store holding, in one list, n PDQ entries (or the given rows of each algorithm), written
    with plain SQL (the benchmark's set-up, not what it measures)."""
    store = SQLiteStore(path)
    store.create_list("bench", "", {}, True)
    store.close()
    if codes is None:
        codes = {"pdq": clustered(n, 256, seed).view(np.uint8).reshape(n, 32)}
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    now = time.time()
    step = 200_000
    for algorithm, data in codes.items():
        for lo in range(0, len(data), step):
            rows = ((1, f"e{i}", algorithm, data[i].tobytes(), "bench", now)
                    for i in range(lo, min(len(data), lo + step)))
            db.executemany("INSERT OR IGNORE INTO entries (list_id, entry_id, algorithm, hash, label, added_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)", rows)
            print(f"  store: {algorithm} {min(len(data), lo + step):,} rows", end="\r", flush=True)
    db.execute("INSERT OR REPLACE INTO counts (list_id, algorithm, n) "
               "SELECT list_id, algorithm, count(*) FROM entries GROUP BY list_id, algorithm")
    db.execute("UPDATE meta SET value = value + 1 WHERE key IN ('generation', 'entries_generation')")
    db.execute("COMMIT")
    db.close()
    print()


def fill_postgres(url: str, codes: np.ndarray) -> None:
    """A PostgreSQL store holding ``codes`` (distinct rows) as PDQ entries of one list (plain SQL,
    like fill_store). The unique constraints are dropped for the load and added back after it (one
    sorted index build each instead of 10M random inserts into them)."""
    from hashmatch.index.postgres_store import PostgresStore
    import psycopg

    _unique, first = np.unique(codes.view(f"V{codes.shape[1]}").ravel(), return_index=True)
    codes = codes[np.sort(first)]
    store = PostgresStore(url)
    store.create_list("bench", "", {}, True)
    store.close()
    step = 200_000
    with psycopg.connect(url) as db:
        list_id = db.execute("SELECT id FROM lists WHERE name = 'bench'").fetchone()[0]
        constraints = db.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                 "WHERE conrelid = 'entries'::regclass AND contype = 'u'").fetchall()
        for name, _definition in constraints:
            db.execute(f'ALTER TABLE entries DROP CONSTRAINT "{name}"')
        now = time.time()
        for lo in range(0, len(codes), step):
            values = [row.tobytes() for row in codes[lo : lo + step]]
            db.execute("INSERT INTO entries (list_id, entry_id, algorithm, hash, label, added_at) "
                       "SELECT %s, 'e' || (t.i + %s), 'pdq', t.h, 'bench', %s "
                       "FROM unnest(%s::bytea[]) WITH ORDINALITY AS t(h, i)",
                       (list_id, lo - 1, now, values))
            print(f"  PostgreSQL store: {min(len(codes), lo + step):,} rows", end="\r", flush=True)
        for name, definition in constraints:
            db.execute(f'ALTER TABLE entries ADD CONSTRAINT "{name}" {definition}')
        db.execute("INSERT INTO counts (list_id, algorithm, n) SELECT list_id, algorithm, count(*) FROM entries "
                   "GROUP BY list_id, algorithm ON CONFLICT (list_id, algorithm) DO UPDATE SET n = excluded.n")
        db.execute("UPDATE meta SET value = value + 1 WHERE key IN ('generation', 'entries_generation')")
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("VACUUM ANALYZE entries")  # as a store that has been up a while: statistics, visibility map
    print()


def postgres_startup(n: int, seed: int, pg_url: str | None) -> str:
    """Seconds a start-up from a PostgreSQL store of the same n entries takes (a replica has no
    snapshot: it always reads and builds), or why it was not measured."""
    cluster = None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "not measured: psycopg is not installed"
    if pg_url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from pgcluster import Cluster, find_binaries  # the tests' throwaway cluster on loopback

        binaries, why = find_binaries()
        if binaries is None:
            return f"not measured: {why}"
        cluster = Cluster(binaries)
        pg_url = cluster.database()
    try:
        from hashmatch.index.postgres_store import PostgresStore

        started = time.perf_counter()
        fill_postgres(pg_url, clustered(n, 256, seed).view(np.uint8).reshape(n, 32))
        print(f"PostgreSQL store filled in {time.perf_counter() - started:.0f}s", flush=True)
        lists = HashLists(PostgresStore(pg_url), background=False)
        assert lists.startup["source"] == "store" and lists.entry_count(Algorithm.PDQ) > 0.99 * n
        seconds = lists.startup["seconds"]
        lists.close()
        return f"{seconds:.1f} s"
    finally:
        if cluster is not None:
            cluster.destroy()


def bench_startup(n: int, seed: int, out: list[str], pg_url: str | None = None) -> None:
    policy = CompactionPolicy(snapshot_idle_seconds=3600)  # snapshots only when asked, here
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = Path(tmp) / "hashmatch.sqlite3"
        started = time.perf_counter()
        fill_store(path, n, seed)
        print(f"store filled in {time.perf_counter() - started:.0f}s", flush=True)
        lists = HashLists(SQLiteStore(path), policy=policy, background=False)
        rebuild = lists.startup["seconds"]
        started = time.perf_counter()
        lists.write_snapshot()
        write = time.perf_counter() - started
        lists.close()
        del lists
        gc.collect()
        before = rss()
        lists = HashLists(SQLiteStore(path), policy=policy, background=False)
        assert lists.startup["source"] == "snapshot"
        startup = lists.startup["seconds"]
        resident = rss() - before
        rng = random.Random(seed)
        loads = []  # three loads of 100k, one after the other: the median is quoted
        for _ in range(3):
            new = [rng.getrandbits(256).to_bytes(32, "big") for _ in range(100_000)]
            entries = [NewEntry(Algorithm.PDQ, v) for v in new]
            started = time.perf_counter()
            lists.add_entries("bench", entries)
            hits = lists.match([Hash(Algorithm.PDQ, v) for v in new[-8:]]).hits
            loads.append(time.perf_counter() - started)
            assert sum(h.distance == 0 for h in hits) >= 8, "the new hashes must match"
        visible = sorted(loads)[1]
        q = Hash(Algorithm.PDQ, new[0])
        times = []
        for _ in range(50):
            t = time.perf_counter()
            lists.match([q])
            times.append(time.perf_counter() - t)
        with_delta = pct(times, 50)
        started = time.perf_counter()
        lists.compact()
        fold = time.perf_counter() - started
        started = time.perf_counter()
        moved = lists.fold_store()
        store_fold = time.perf_counter() - started
        assert moved == 3 * len(new), moved
        lists.close()
    out.append(f"\n### start-up and live loads, {n/1e6:g}M PDQ entries in a SQLite store (last row: PostgreSQL)\n")
    out.append("| what | measured |")
    out.append("| --- | ---: |")
    out.append(f"| start-up from the store alone (no snapshot: read + build) | {rebuild:.1f} s |")
    out.append(f"| write the snapshot | {write:.1f} s |")
    out.append(f"| start-up with the snapshot (read, verify checksum, serve) | {startup:.1f} s |")
    out.append(f"| resident memory after start-up with the snapshot | {resident / n:.0f} bytes/entry |")
    out.append(f"| load 100k new hashes until they match (store commit + delta; median of 3 loads: "
               f"{', '.join(f'{t:.2f}' for t in loads)}) | {visible:.2f} s |")
    out.append(f"| one-hash match p50 with the 3 x 100k delta beside the main index | {with_delta:.2f} ms |")
    out.append(f"| background compaction folding the 300k in (+ snapshot write) | {fold:.1f} s |")
    out.append(f"| background store fold moving the 300k from recent_entries into entries | {store_fold:.1f} s |")
    gc.collect()
    out.append(f"| start-up from a PostgreSQL store (a replica: no snapshot, read + build) | "
               f"{postgres_startup(n, seed, pg_url)} |")
    for line in out[-11:]:
        print(line)


def bench_soak(cycles: int, base: int, batch: int, seed: int, out: list[str]) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        lists = HashLists(SQLiteStore(Path(tmp) / "s.sqlite3"))
        lists.create_list("soak")
        for lo in range(0, base, 50_000):
            lists.add_entries("soak", [NewEntry(Algorithm.PDQ, rng.getrandbits(256).to_bytes(32, "big"))
                                       for _ in range(min(50_000, base - lo))])
        samples = []
        started = time.perf_counter()
        for cycle in range(cycles):
            values = [rng.getrandbits(256).to_bytes(32, "big") for _ in range(batch)]
            lists.add_entries("soak", [NewEntry(Algorithm.PDQ, v, entry_id=f"c{cycle}-{i}") for i, v in enumerate(values)])
            lists.match([Hash(Algorithm.PDQ, values[0])])
            lists.remove_entries("soak", entry_ids=[f"c{cycle}-{i}" for i in range(batch)])
            if cycle % 100 == 99:
                gc.collect()
                samples.append(rss())
        seconds = time.perf_counter() - started
        lists.close()
    first, last = samples[0], samples[-1]
    out.append(f"\n### soak: {cycles} cycles of load {batch} + match + remove {batch}, on {base:,} PDQ entries\n")
    out.append("| RSS after 100 cycles | RSS at the end | growth | every 100 cycles (MiB) | time |")
    out.append("| ---: | ---: | ---: | --- | ---: |")
    out.append(f"| {first / 2**20:.1f} MiB | {last / 2**20:.1f} MiB | {100 * (last - first) / first:+.1f}% | "
               f"{' '.join(f'{x / 2**20:.0f}' for x in samples)} | {seconds:.0f} s |")
    print("\n".join(out[-4:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("search")
    s.add_argument("--sizes", default="1M,10M")
    s.add_argument("--algorithms", default="pdq,phash")
    s.add_argument("--singles", type=int, default=400)
    s.add_argument("--batches", type=int, default=100)
    u = sub.add_parser("startup")
    u.add_argument("--size", default="10M")
    u.add_argument("--pg-url", help="an empty PostgreSQL database for the replica row (default: a throwaway "
                                    "cluster, as the tests start, where PostgreSQL is installed)")
    k = sub.add_parser("soak")
    k.add_argument("--cycles", type=int, default=1000)
    k.add_argument("--base", type=int, default=200_000)
    k.add_argument("--batch", type=int, default=100)
    m = sub.add_parser("memory", help="(internal) one structure's resident bytes per entry")
    m.add_argument("structure", choices=("ours", "flat", "hma"))
    m.add_argument("algorithm")
    m.add_argument("codes", help="a .npy file of the codes (bench_search writes it)")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(1)
    out = [f"python bench/search.py {' '.join(sys.argv[1:] if argv is None else argv)}"]
    if args.command == "search":
        for size in args.sizes.split(","):
            for name in args.algorithms.split(","):
                bench_search(parse_size(size), Algorithm.parse(name), args.singles, args.batches, args.seed, out)
    elif args.command == "startup":
        bench_startup(parse_size(args.size), args.seed, out, args.pg_url)
    elif args.command == "memory":
        memory_child(args.structure, Algorithm.parse(args.algorithm), args.codes)
        return 0
    else:
        bench_soak(args.cycles, args.base, args.batch, args.seed, out)
    print("\n" + "\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
