"""Loads and removals while matching: no torn reads, no waiting for writers, flat memory."""

from __future__ import annotations

import gc
import os
import random
import threading
import time
from pathlib import Path

import pytest

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.index import CompactionPolicy, HashLists, NewEntry, SQLiteStore

PDQ, PHASH = Algorithm.PDQ, Algorithm.PHASH


def value(rng: random.Random, algorithm: Algorithm = PDQ) -> bytes:
    return rng.getrandbits(algorithm.spec.bits).to_bytes(algorithm.spec.nbytes, "big")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def lists(make_store):
    hash_lists = HashLists(make_store())
    yield hash_lists
    hash_lists.close()


def test_a_match_sees_an_upload_whole_or_not_at_all_and_never_waits(lists: HashLists) -> None:
    rng = random.Random(1)
    lists.create_list("big")
    lists.add_entries("big", [NewEntry(PDQ, value(rng)) for _ in range(5000)])
    upload = [NewEntry(PDQ, value(rng), entry_id=f"u{i}") for i in range(60_000)]
    probes = [Hash(PDQ, upload[i].value) for i in range(0, 60_000, 3000)]  # 20 hashes of the upload
    before = lists.generation
    results: list[tuple[int, int, float]] = []  # (generation, upload hits, seconds)
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            started = time.perf_counter()
            found = lists.match(probes)
            elapsed = time.perf_counter() - started
            results.append((found.generation, sum(h.distance == 0 for h in found.hits), elapsed))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    started = time.perf_counter()
    lists.add_entries("big", upload)
    write_seconds = time.perf_counter() - started
    time.sleep(0.05)
    done.set()
    for t in threads:
        t.join()
    after = lists.generation
    assert after > before
    during = [r for r in results if r[0] == before]
    assert during, "some matches must have run while the upload was being written"
    for generation, hits, _ in results:
        # Whole or nothing, and the generation says which.
        assert (generation, hits) in {(before, 0), (after, len(probes))}, (generation, hits)
    assert any(hits == len(probes) for _, hits, _ in results)
    # Readers went on while the writer worked: many matches, none as slow as the write.
    slowest = max(seconds for _, _, seconds in results)
    assert write_seconds > 0.3 and len(during) >= 10 and slowest < write_seconds / 3, (write_seconds, len(during), slowest)


def test_removals_are_masked_at_once_and_compaction_changes_no_answer(make_store) -> None:
    rng = random.Random(2)
    lists = HashLists(make_store(), background=False)
    lists.create_list("l", thresholds={PDQ: 20})
    lists.create_list("m", thresholds={PDQ: 8})
    values = [value(rng) for _ in range(300)]
    lists.add_entries("l", [NewEntry(PDQ, v, entry_id=f"a{i}") for i, v in enumerate(values[:200])])
    lists.add_entries("m", [NewEntry(PDQ, v, entry_id=f"b{i}") for i, v in enumerate(values[100:])])
    queries = [Hash(PDQ, v) for v in values]
    assert len(lists.view.indexes[PDQ].segments) == 2  # the first load became main; the second is a delta
    lists.remove_entries("l", entry_ids=[f"a{i}" for i in range(50)])
    gen = lists.generation
    hits = {(h.list_name, h.entry_id) for h in lists.match(queries).hits}
    assert not any(e in hits for e in {("l", f"a{i}") for i in range(50)})
    assert len(hits) == 150 + 200
    assert lists.compact()
    index = lists.view.indexes[PDQ]
    assert len(index.segments) == 1 and index.dead_entries == 0 and index.live == 350
    assert lists.generation == gen  # a fold changes no answer, so no new generation
    assert {(h.list_name, h.entry_id) for h in lists.match(queries).hits} == hits
    lists.close()


def test_compaction_racing_with_writes_loses_nothing(make_store) -> None:
    rng = random.Random(3)
    policy = CompactionPolicy(max_segments=2, fold_min_entries=1, interval_seconds=0.01)
    lists = HashLists(make_store(), policy=policy)
    lists.create_list("l")
    kept: dict[str, bytes] = {}
    for round_ in range(60):
        batch = {f"r{round_}-{i}": value(rng, PHASH) for i in range(50)}
        lists.add_entries("l", [NewEntry(PHASH, v, entry_id=k) for k, v in batch.items()])
        kept.update(batch)
        gone = rng.sample(sorted(kept), 20)
        lists.remove_entries("l", entry_ids=gone)
        for k in gone:
            del kept[k]
    assert lists._compactor.folds > 0, "the compactor must have run while writes went on"
    found = {h.entry_id for h in lists.match([Hash(PHASH, v) for v in kept.values()]).hits if h.distance == 0}
    assert found == set(kept)
    assert lists.entry_count(PHASH) == len(kept) == lists.get_list("l").counts[PHASH]
    lists.close()


def test_soak_of_1000_load_remove_cycles_keeps_memory_flat(tmp_path: Path) -> None:
    rng = random.Random(4)
    lists = HashLists(SQLiteStore(tmp_path / "s.sqlite3"), policy=CompactionPolicy(interval_seconds=0.05))
    lists.create_list("soak")
    lists.add_entries("soak", [NewEntry(PDQ, value(rng)) for _ in range(20_000)])
    samples = []
    for cycle in range(1000):
        batch = [NewEntry(PDQ, value(rng), entry_id=f"c{cycle}-{i}") for i in range(20)]
        lists.add_entries("soak", batch)
        assert len(lists.match([Hash(PDQ, batch[0].value)]).hits) == 1
        lists.remove_entries("soak", entry_ids=[e.entry_id for e in batch])
        if cycle % 100 == 99:
            gc.collect()
            samples.append(rss())
    assert lists.entry_count(PDQ) == 20_000
    lists.close()
    # From the first sample (after 100 cycles: caches warm) to the last.
    assert samples[-1] < samples[0] * 1.10, [s // 2**20 for s in samples]
