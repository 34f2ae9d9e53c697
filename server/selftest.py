"""Known-answer self-test: detection must never break silently.

Built-in images (server/selftest-data, made by scripts/make_selftest_images.py) must hash to the
values the reference tools recorded, and a canary entry must be found through the full store ->
index -> match path. Run at start-up and every few minutes; a failure turns health NOT_SERVING,
so an upgrade of Pillow, numpy or our own code that changes a hash is caught before it costs recall.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hashmatch.hashing import Algorithm, Hash, hash_image
from hashmatch.index import HashLists, NewEntry, SQLiteStore

DATA_DIR = Path(__file__).resolve().parent / "selftest-data"
log = logging.getLogger("hashmatch.selftest")


@dataclass(frozen=True)
class SelfTestResult:
    ok: bool
    problems: tuple[str, ...]
    seconds: float
    finished: float = field(default_factory=time.time)


def run_selftest(data_dir: Path = DATA_DIR) -> SelfTestResult:
    start = time.perf_counter()
    problems: list[str] = []
    try:
        expected = json.loads((data_dir / "expected.json").read_text())
        computed = {}
        for name, want in sorted(expected.items()):
            hashes = hash_image((data_dir / name).read_bytes(), tuple(Algorithm))
            got = {r.hash.algorithm.value: r.hash.hex for r in hashes.results}
            computed[name] = hashes
            for algorithm in Algorithm:
                if got.get(algorithm.value) != want[algorithm.value]:
                    problems.append(
                        f"{name}: {algorithm.name} is {got.get(algorithm.value)}, the reference recorded "
                        f"{want[algorithm.value]}"
                    )
            quality = hashes.get(Algorithm.PDQ).quality
            if quality != want["pdq_quality"]:
                problems.append(f"{name}: PDQ quality is {quality}, the reference recorded {want['pdq_quality']}")
        problems.extend(_canary(expected))
    except Exception as exc:  # noqa: BLE001 - any failure of the self-test is a finding to report
        problems.append(f"self-test could not run: {type(exc).__name__}: {exc}")
    return SelfTestResult(not problems, tuple(problems), time.perf_counter() - start)


def _canary(expected: dict[str, dict]) -> list[str]:
    """List the first image's recorded hashes, then match them: each must be found, exactly."""
    name, want = sorted(expected.items())[0]
    with tempfile.TemporaryDirectory(prefix="hashmatch-selftest-") as scratch:
        lists = HashLists(SQLiteStore(Path(scratch) / "canary.sqlite3"))
        try:
            lists.create_list("canary")
            queries = [Hash.from_hex(a, want[a.value]) for a in Algorithm]
            lists.add_entries("canary", [NewEntry(q.algorithm, q.value, entry_id="canary-1") for q in queries])
            found = {(h.algorithm, h.entry_id, h.distance) for h in lists.match(queries).hits}
            # The bitwise complement of a perceptual hash is as far away as a hash can be.
            far = [Hash(q.algorithm, bytes(b ^ 0xFF for b in q.value)) for q in queries]
            stray = lists.match(far).hits
        finally:
            lists.close()
    problems = [
        f"canary: {a.name} hash of {name} was not found at distance 0"
        for a in Algorithm
        if (a, "canary-1", 0) not in found
    ]
    if stray:
        problems.append(f"canary: {len(stray)} match(es) for hashes that are as far as possible from the entry")
    return problems


class SelfTester:
    """Runs the self-test now and then every ``interval`` seconds (0: only now), reporting each result."""

    def __init__(self, interval: float, on_result: Callable[[SelfTestResult], None], data_dir: Path = DATA_DIR) -> None:
        self._interval = interval
        self._on_result = on_result
        self._data_dir = data_dir
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: SelfTestResult | None = None

    def run_once(self) -> SelfTestResult:
        result = run_selftest(self._data_dir)
        self.last = result
        if result.ok:
            log.info("self-test passed in %.2fs", result.seconds)
        else:
            log.error("self-test FAILED: %s", "; ".join(result.problems))
        self._on_result(result)
        return result

    def start(self) -> None:
        self.run_once()
        if self._interval > 0:
            self._thread = threading.Thread(target=self._loop, name="hashmatch-selftest", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()

    def stop(self) -> None:
        self._stop.set()
