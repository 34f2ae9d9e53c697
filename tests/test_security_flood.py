"""One key floods the server; another key's latency stays within 2x of its unloaded value.

Set-up, and why:
- The server is a real process (``python -m hashmatch.server``) with per-key limits: 10 match
  requests/s (burst 5), 2 calls in progress per key.
- The flood is another process, 16 threads sending MatchImage with one key at 400 calls a second in
  all (40 times the key's rate), ignoring every refusal. It runs under ``nice 19``: a real
  attacker's CPU is on the attacker's machine, while on this small test machine the flooding
  process would otherwise take the server's cores from it and the test would measure the machine,
  not the server.
- Why a paced flood and not one as fast as the client can go: grpcio's server admits and refuses
  every call through one Python polling loop, so a closed-loop flood (about 1,500 calls a second on
  loopback here) keeps that loop, one core, busy however cheap our refusal is (profiled: nearly all
  of the time is grpc's own call handling). On a 2-core machine that is half the machine: the
  victim's latency then rose 1.9x to 2.4x in our runs. The per-refusal cost and the ratio scale
  together with the flood's rate (400/s: 1.4x; 800/s: 2.2x); on more cores the loop's one core
  matters less. The README's Security section says so.
- The victim, a second key, sends one MatchImage at a time (within its own limits). Unloaded and
  flooded windows of 10 calls alternate (ABAB...A), so load that other programs put on the machine
  meanwhile falls on both alike: each flooded window's median is compared with the median of the
  unloaded windows either side of it, and the test takes the median of those ratios.
- A control run against a server without limits must show the flood hurting (over 2x): proof that
  the measurement can see a flood at all.
- Up to three runs: load from other programs only ever slows the victim, so one run within the
  bound shows the server keeps it; a server that let the flood through would fail all three.
- The measurement holds /tmp/hashmatch-bench.lock, the lock benchmarks take, so no benchmark of
  another session runs on these two cores at the same time.
"""

from __future__ import annotations

import fcntl
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from authkit import ServerProcess, bearer
from imagegen import encode, photo

from hashmatch.v1 import matcher_pb2, matcher_pb2_grpc

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
BENCH_LOCK = Path("/tmp/hashmatch-bench.lock")
FLOOD_THREADS = 16
FLOOD_RATE = 400.0  # calls a second, in all; see the module's docstring
WINDOW = 10  # victim calls per window
LIMITS = ("--match-rate", "10", "--match-burst", "5", "--max-concurrent-per-key", "2")
NO_LIMITS = ("--match-rate", "0", "--match-bytes-rate", "0", "--max-concurrent-per-key", "0")


@contextmanager
def bench_lock(timeout: float = 600.0) -> Iterator[None]:
    with open(BENCH_LOCK, "a") as handle:
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    pytest.skip(f"{BENCH_LOCK} stayed taken for {timeout:.0f}s (a benchmark is running)")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def offline_key(data: Path, name: str) -> str:
    done = subprocess.run([sys.executable, "-m", "hashmatch.server", "keys", "create", name, "--role", "match",
                           "--data-dir", str(data)], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def latencies(match: Any, key: str, image: bytes, n: int) -> list[float]:
    """``n`` sequential MatchImage calls, paced under the per-key rate; seconds each."""
    request = matcher_pb2.MatchImageRequest(image=image)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        match(request, metadata=bearer(key), timeout=30)
        out.append(time.perf_counter() - start)
        time.sleep(0.12)
    return out


class Flood:
    """The flooding process, switched on and off between measurement windows."""

    def __init__(self, address: str, key: str, image_file: Path, rate: float) -> None:
        self.proc = subprocess.Popen(
            ["nice", "-n", "19", sys.executable, str(TESTS / "flood_client.py"), address, key, str(image_file),
             str(FLOOD_THREADS), str(rate)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def _say(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def on(self) -> None:
        assert self._say("on") == "ok"
        time.sleep(0.5)  # at full strength before the window starts

    def off(self) -> None:
        assert self._say("off") == "ok"

    def counts(self) -> dict[str, int]:
        return json.loads(self._say("quit"))


def flood_effect(tmp: Path, flags: tuple[str, ...], rounds: int,
                 rate: float = FLOOD_RATE) -> tuple[float, dict[str, int], float]:
    """(flooded median / unloaded median of the victim's calls, the flood's outcome counts, its seconds)."""
    data = tmp / "data"
    data.mkdir(parents=True)
    victim, attacker = offline_key(data, "victim"), offline_key(data, "attacker")
    image = encode(photo(7), "JPEG", quality=90)
    image_file = tmp / "flood.jpg"
    image_file.write_bytes(image)
    server = ServerProcess(data, "--log-level", "WARNING", *flags)
    flood = Flood(server.address, attacker, image_file, rate)
    unloaded: list[list[float]] = []
    flooded: list[list[float]] = []
    flooding = 0.0
    try:
        with grpc.insecure_channel(server.address) as channel:
            match = matcher_pb2_grpc.MatcherServiceStub(channel).MatchImage
            latencies(match, victim, image, 3)  # connection and caches warm
            for _ in range(rounds):
                unloaded.append(latencies(match, victim, image, WINDOW))
                started = time.monotonic()
                flood.on()
                flooded.append(latencies(match, victim, image, WINDOW))
                flood.off()
                flooding += time.monotonic() - started
            unloaded.append(latencies(match, victim, image, WINDOW))
        counts = flood.counts()
    finally:
        flood.proc.kill()
        server.stop()
    # Each flooded window against the unloaded windows on either side of it, so load that comes
    # and goes on the machine meets both; then the median over the rounds.
    ratios = [
        statistics.median(flooded[i]) / statistics.median(unloaded[i] + unloaded[i + 1]) for i in range(rounds)
    ]
    return statistics.median(ratios), counts, flooding


def test_a_flooding_key_does_not_starve_another(tmp_path: Path) -> None:
    runs: list[tuple[float, dict[str, int], float]] = []
    with bench_lock():
        control, control_counts, _ = flood_effect(tmp_path / "unlimited", NO_LIMITS, rounds=2)
        # Other programs on the machine can only make the victim slower, never faster: a run that
        # meets the bound shows the server can; up to three runs, so a burst of outside load alone
        # cannot fail the test (a server that lets the flood through fails all three).
        for attempt in range(3):
            runs.append(flood_effect(tmp_path / f"limited{attempt}", LIMITS, rounds=6))
            if runs[-1][0] <= 2.0:
                break
    ratio, counts, seconds = runs[-1]
    print(f"flood ratios {[round(r[0], 2) for r in runs]} {counts} in {seconds:.1f}s; "
          f"control {control:.2f} {control_counts}")
    # The measurement sees a flood when nothing stops it ...
    assert control > 2.0, f"without limits the flood should hurt: ratio {control:.2f}, {control_counts}"
    # ... the flood was real, and the limits held it: at most the rate (plus bursts) got through ...
    assert set(counts) <= {"OK", "RESOURCE_EXHAUSTED"}, counts
    assert counts.get("RESOURCE_EXHAUSTED", 0) > 20 * counts.get("OK", 0), counts
    assert counts.get("OK", 0) <= 10 * seconds + 6 * 5 + 2, counts
    # ... and with the limits the other key keeps its latency.
    assert ratio <= 2.0, f"victim's median latency rose {[round(r[0], 2) for r in runs]}x under floods of {counts}"
