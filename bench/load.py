"""Load benchmark: the real server (1 and 2 workers) against 1M listed PDQ hashes (and 1M pHash),
driven by an asyncio gRPC client on loopback.

    flock /tmp/hashmatch-bench.lock .venv/bin/python bench/load.py            # the README's table
    .venv/bin/python bench/load.py --entries 100k --seconds 5 --workers 1     # a quick look
    .venv/bin/python bench/load.py --data-dir D --workers 1 --concurrency 1 --methods MatchHashes,Health

It fills a data folder once (synthetic clustered hashes, bench/search.py's generator, written
straight into the SQLite store: the set-up, not what is measured), then for each worker count
starts ``python -m hashmatch.server --workers N`` on 127.0.0.1 with auth on (the admin key the
first start writes: the cost of checking a key is in every figure; per-key rate limits off, as the
one client stands for many callers), and measures

- ``MatchImage`` with 1080p JPEG uploads (../shared/photos resized to 1920x1080; generated photos
  when that folder is absent), and
- ``MatchHashes`` with one PDQ and one pHash hash (half near a listed entry, half unrelated),

at concurrency 1, 8 and 64: throughput and p50/p99 latency. Every cell is bounded in requests and in
seconds. The client runs on the same machine as the server, so its CPU is part of the picture.
Connections: SO_REUSEPORT spreads connections, not requests, over the workers, so the client
opens several (min(concurrency, 16), each with its own connection), as a pool of callers would.
Loopback only: another target is refused (this sends real load).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hashmatch.v1 import hashes_pb2, matcher_pb2, matcher_pb2_grpc

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "tests"))
from search import clustered, fill_store, parse_size  # noqa: E402 - the search benchmark's data

# HMA's /m/lookup with 1M PDQ entries, measured on this machine (see the README).
HMA_P50_MS = 16.0
HMA_P99_MS = 29.0
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
HEALTH = "Health"  # grpc.health.v1 Check: no auth, no interceptors of ours, no index
METHODS = ("MatchImage", "MatchHashes", HEALTH)


def loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the data --------------------------------------------------------------------------------------

def fill(data_dir: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n PDQ and n pHash entries in one list ("bench"); returns some listed codes of each, for queries."""
    from hashmatch.index import SQLiteStore

    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / "hashmatch.sqlite3"
    marker = data_dir / f"filled-{n}-{seed}"
    pdq = clustered(n, 256, seed).view(np.uint8).reshape(n, 32)
    phash = clustered(n, 64, seed + 1).view(np.uint8).reshape(n, 8)
    if marker.exists():
        return pdq[:4096].copy(), phash[:4096].copy()
    fill_store(path, n, seed, {"pdq": pdq, "phash": phash})
    # The index snapshot the server starts from, written now: otherwise the first server's
    # background snapshot write would run during its first measurements.
    from hashmatch.index import HashLists

    lists = HashLists(SQLiteStore(path), background=False)
    lists.write_snapshot()
    lists.close()
    marker.touch()
    return pdq[:4096].copy(), phash[:4096].copy()


def hash_queries(pdq: np.ndarray, phash: np.ndarray, count: int, seed: int) -> list[matcher_pb2.MatchHashesRequest]:
    """One PDQ and one pHash each: even ones a few bits from a listed entry, odd ones unrelated."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        pair = []
        for codes, algorithm, flips in ((pdq, hashes_pb2.ALGORITHM_PDQ, 16), (phash, hashes_pb2.ALGORITHM_PHASH, 4)):
            if i % 2 == 0:
                value = bytearray(codes[rng.integers(0, len(codes))].tobytes())
                for bit in rng.choice(len(value) * 8, size=flips, replace=False):
                    value[bit // 8] ^= 1 << (bit % 8)
            else:
                value = bytearray(rng.integers(0, 256, size=codes.shape[1], dtype=np.uint8).tobytes())
            pair.append(hashes_pb2.Hash(algorithm=algorithm, value=bytes(value).hex()))
        out.append(matcher_pb2.MatchHashesRequest(hashes=pair))
    return out


def uploads(count: int) -> list[bytes]:
    """1080p JPEGs (quality 90) of the shared photos, or of generated ones when those are absent."""
    from PIL import Image

    photos = ROOT.parent / "shared" / "photos"
    sources = sorted(p for p in photos.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:count] \
        if photos.is_dir() else []
    images = [Image.open(p).convert("RGB") for p in sources]
    if len(images) < count:
        from imagegen import photo

        images += [photo(1000 + i, (1920, 1080)) for i in range(count - len(images))]
    out = []
    for image in images:
        buffer = io.BytesIO()
        image.resize((1920, 1080), Image.LANCZOS).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


# -- the server ------------------------------------------------------------------------------------

class Server:
    def __init__(self, data_dir: Path, workers: int, listen: str) -> None:
        self.workers = workers
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hashmatch.server", "--listen", listen, "--data-dir", str(data_dir),
             "--workers", str(workers), "--metrics", "off", "--selftest-interval", "0", "--log-level", "WARNING",
             "--match-rate", "0", "--match-bytes-rate", "0", "--max-concurrent-per-key", "0"],
            stdout=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        started = time.monotonic()
        for line in self.proc.stdout:
            self.lines.append(line)
            found = re.search(r"hashmatch listening on (\S+:\d+)", line)
            if found:
                self.address = found.group(1)
                break
        else:
            raise SystemExit(f"the server exited with {self.proc.wait()}: {''.join(self.lines)}")
        threading.Thread(target=self._read, daemon=True).start()
        self.key = (data_dir / "admin.key").read_text().strip()
        self.metadata = (("authorization", f"Bearer {self.key}"),)
        self._wait_ready()
        self.start_seconds = time.monotonic() - started

    def pids(self) -> list[int]:
        """The processes doing the serving: the workers (latest start of each), or the one server."""
        found: dict[int, int] = {}
        for line in self.lines:
            m = re.match(r"hashmatch worker (\d+) \(pid (\d+)\) bound", line)
            if m:
                found[int(m.group(1))] = int(m.group(2))
        return list(found.values()) or [self.proc.pid]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the serving processes have used so far."""
        total = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def _wait_ready(self) -> None:
        # "hashmatch listening on" comes once every worker loaded its index; health confirms it.
        with grpc.insecure_channel(self.address, OWN_CONNECTION) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            end = time.monotonic() + 600
            while time.monotonic() < end:
                try:
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise SystemExit("the server never became SERVING")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(timeout=120) != 0:
            raise SystemExit(f"the server exited with {self.proc.returncode} after SIGTERM")


# -- the client ------------------------------------------------------------------------------------

@dataclass
class Cell:
    method: str
    workers: int
    concurrency: int
    done: int
    errors: int
    seconds: float
    latencies: list[float]
    fixed: dict | None = None  # percentiles set by median_of
    cores: float = 0.0  # server CPU seconds per second of the cell
    load: float = 0.0  # the machine's 1-minute load average at the cell's end

    @property
    def throughput(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if self.fixed and p in self.fixed:
            return self.fixed[p]
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def run_cell(server: Server, method: str, requests: list, concurrency: int,
                   max_requests: int, max_seconds: float, workers: int) -> Cell:
    address, metadata = server.address, server.metadata
    channels = [grpc.aio.insecure_channel(address, options=OWN_CONNECTION + [
        ("grpc.max_send_message_length", 64 << 20)]) for _ in range(min(concurrency, 16))]
    if method == HEALTH:  # the floor: a bare round trip through this client and gRPC's server
        calls = [health_pb2_grpc.HealthStub(c).Check for c in channels]
    else:
        calls = [getattr(matcher_pb2_grpc.MatcherServiceStub(c), method) for c in channels]
    # Warm each connection (and each worker's first-call costs) outside the measurement.
    await asyncio.gather(*(call(requests[i % len(requests)], metadata=metadata, timeout=60)
                           for i, call in enumerate(calls)))
    latencies: list[float] = []
    errors = 0
    issued = 0
    cpu = server.cpu_seconds()
    started = time.perf_counter()
    deadline = started + max_seconds

    async def caller(slot: int) -> None:
        nonlocal issued, errors
        call = calls[slot % len(calls)]
        while issued < max_requests and time.perf_counter() < deadline:
            request = requests[issued % len(requests)]
            issued += 1
            t = time.perf_counter()
            try:
                await call(request, metadata=metadata, timeout=60)
            except grpc.aio.AioRpcError as error:
                errors += 1
                if errors == 1:
                    print(f"    first error: {error.code().name}: {error.details()}", flush=True)
                continue
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    seconds = time.perf_counter() - started
    cores = (server.cpu_seconds() - cpu) / seconds
    for channel in channels:
        await channel.close()
    load = float(Path("/proc/loadavg").read_text().split()[0])
    return Cell(method, workers, concurrency, len(latencies), errors, seconds, latencies, None, cores, load)


def median_of(runs: list[Cell]) -> Cell:
    """One cell whose throughput, p50 and p99 are each the median over the runs."""
    if len(runs) == 1:
        return runs[0]
    by_rate = sorted(runs, key=lambda c: c.throughput)[len(runs) // 2]
    cell = Cell(by_rate.method, by_rate.workers, by_rate.concurrency, by_rate.done,
                sum(c.errors for c in runs), by_rate.seconds, by_rate.latencies, None,
                statistics.median(c.cores for c in runs), max(c.load for c in runs))
    cell.fixed = {p: statistics.median(c.pct(p) for c in runs) for p in (50, 99)}
    return cell


# -- the report ------------------------------------------------------------------------------------

def table(cells: list[Cell], worker_counts: list[int]) -> list[str]:
    by = {(c.method, c.workers, c.concurrency): c for c in cells}
    head = "| call | concurrency | " + " | ".join(
        f"{w} worker{'s' if w > 1 else ''}: req/s, p50, p99 (ms), server cores" for w in worker_counts)
    lines = [head + (" | 2 vs 1 (req/s) |" if 1 in worker_counts and 2 in worker_counts else " |")]
    lines.append("| --- | ---: | " + " | ".join("---:" for _ in worker_counts)
                 + (" | ---: |" if 1 in worker_counts and 2 in worker_counts else " |"))
    names = {"MatchImage": "MatchImage (1080p JPEG)", HEALTH: "Health Check (floor)"}
    for method in [m for m in METHODS if any(c.method == m for c in cells)]:
        for concurrency in sorted({c.concurrency for c in cells}):
            row = [names.get(method, method), str(concurrency)]
            for w in worker_counts:
                c = by.get((method, w, concurrency))
                row.append(f"{c.throughput:.1f}, {c.pct(50):.1f}, {c.pct(99):.1f}, {c.cores:.2f}"
                           + (f" ({c.errors} errors)" if c.errors else "") if c else "-")
            if 1 in worker_counts and 2 in worker_counts:
                one, two = by.get((method, 1, concurrency)), by.get((method, 2, concurrency))
                row.append(f"{two.throughput / one.throughput:.2f}x" if one and two and one.throughput else "-")
            lines.append("| " + " | ".join(row) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=parse_size, default=1_000_000, help="PDQ entries, and as many pHash")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure (default: %(default)s)")
    parser.add_argument("--concurrency", default="1,8,64", help="calls in flight (default: %(default)s)")
    parser.add_argument("--methods", default="MatchImage,MatchHashes",
                        help="calls to measure, of MatchImage, MatchHashes and Health (a bare health "
                             "check: the floor of this client and server) (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=3000, help="most MatchHashes calls per cell")
    parser.add_argument("--image-requests", type=int, default=600, help="most MatchImage calls per cell")
    parser.add_argument("--seconds", type=float, default=20.0, help="most seconds per cell")
    parser.add_argument("--listen", default="127.0.0.1:0", help="where the server listens (loopback only)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="a folder kept between runs (filled once); default: a temporary one")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each cell this many times; the table gives each figure's median")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    host = args.listen.rpartition(":")[0]
    if not loopback(host):
        parser.error(f"--listen {args.listen}: this benchmark sends real load and only targets loopback "
                     "(127.0.0.1, ::1, localhost)")
    worker_counts = [int(w) for w in args.workers.split(",")]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or set(methods) - set(METHODS):
        parser.error(f"--methods {args.methods}: give some of {', '.join(METHODS)}")
    os.umask(0o077)
    with tempfile.TemporaryDirectory(prefix="hashmatch-load-") as scratch:
        data_dir = args.data_dir or Path(scratch) / "data"
        started = time.perf_counter()
        pdq, phash = fill(data_dir, args.entries, args.seed)
        print(f"data: {args.entries:,} PDQ + {args.entries:,} pHash entries in {data_dir} "
              f"({time.perf_counter() - started:.0f}s)", flush=True)
        queries = hash_queries(pdq, phash, 512, args.seed)
        images = [matcher_pb2.MatchImageRequest(image=jpeg) for jpeg in uploads(8)] if "MatchImage" in methods else []
        if images:
            print(f"uploads: {len(images)} JPEGs of 1920x1080, "
                  f"{statistics.mean(len(i.image) for i in images) / 1e3:.0f} kB on average", flush=True)
        cells: list[Cell] = []
        for workers in worker_counts:
            server = Server(data_dir, workers, args.listen)
            print(f"{workers} worker(s): serving after {server.start_seconds:.1f}s", flush=True)
            try:
                for method, requests, bound in (("MatchImage", images, args.image_requests),
                                                ("MatchHashes", queries, args.requests),
                                                (HEALTH, [health_pb2.HealthCheckRequest()], args.requests)):
                    if method not in methods:
                        continue
                    for concurrency in concurrencies:
                        runs = [asyncio.run(run_cell(server, method, requests,
                                                     concurrency, bound, args.seconds, workers))
                                for _ in range(args.repeat)]
                        cell = median_of(runs)
                        cells.append(cell)
                        print(f"  {method:11} c={concurrency:<3} {cell.done:5} calls in {cell.seconds:5.1f}s: "
                              f"{cell.throughput:7.1f}/s  p50 {cell.pct(50):7.2f} ms  p99 {cell.pct(99):7.2f} ms  "
                              f"server {cell.cores:.2f} cores  load avg {cell.load:.1f}"
                              + (f"  {cell.errors} errors" if cell.errors else ""), flush=True)
            finally:
                server.stop()
    print()
    for line in table(cells, worker_counts):
        print(line)
    print(f"\nmachine load average (1 min) during the cells: {min(c.load for c in cells):.1f} to "
          f"{max(c.load for c in cells):.1f} on {os.cpu_count()} cores")
    single = [c for c in cells if c.method == "MatchHashes" and c.concurrency == 1]
    for c in single:
        print(f"\nMatchHashes (1 PDQ + 1 pHash, {args.entries:,} of each listed), concurrency 1, {c.workers} "
              f"worker(s): p50 {c.pct(50):.2f} ms, p99 {c.pct(99):.2f} ms; HMA /m/lookup at 1M PDQ: p50 "
              f"{HMA_P50_MS:g} ms, p99 {HMA_P99_MS:g} ms: {HMA_P50_MS / c.pct(50):.0f}x and "
              f"{HMA_P99_MS / c.pct(99):.0f}x faster (goal: 10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
