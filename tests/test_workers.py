"""``--workers N``: N real server processes on one port, sharing one store, under a supervisor."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from authkit import admin_key, bearer
from imagegen import encode, photo
from test_observability import scrape

from hashmatch.v1 import hashes_pb2, lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

PDQ = hashes_pb2.ALGORITHM_PDQ
# Without it, channels of one process to one address share a connection (gRPC's global subchannel
# pool): every call would reach the same worker.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


class Supervised:
    """``python -m hashmatch.server --workers N``; its stdout lines collected as they come."""

    def __init__(self, data_dir: Path, workers: int, *flags: str) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hashmatch.server", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
             "--metrics", "127.0.0.1:0", "--log-format", "text", "--selftest-interval", "0",
             "--grace", "5", "--workers", str(workers), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True).start()
        listening = self.wait_for(r"hashmatch listening on (\S+:\d+)")
        self.address = listening.group(1)

    def _read(self, stream, into: list[str]) -> None:
        for line in stream:
            with self._changed:
                into.append(line)
                self._changed.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60.0) -> re.Match:
        """The ``count``-th stdout line matching ``pattern``."""
        end = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in (re.search(pattern, line) for line in self.lines) if m]
                if len(found) >= count:
                    return found[count - 1]
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise AssertionError(f"no {count} lines matching {pattern!r}; stdout: {self.lines}; "
                                         f"stderr: {''.join(self.stderr[-20:])}")
                self._changed.wait(0.2)

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> pid of its latest start."""
        pids = {}
        for line in self.lines:
            m = re.match(r"hashmatch worker (\d+) \(pid (\d+)\) bound", line)
            if m:
                pids[int(m.group(1))] = int(m.group(2))
        return pids

    def metrics_ports(self, count: int = 2) -> list[int]:
        self.wait_for(r"hashmatch metrics on http://", count=count)
        return [int(m.group(1)) for m in (re.search(r"hashmatch metrics on http://[^:]+:(\d+)/", line)
                                          for line in self.lines) if m]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def supervised(tmp_path: Path):
    started: list[Supervised] = []

    def start(workers: int = 2, *flags: str) -> Supervised:
        running = Supervised(tmp_path / "data", workers, *flags)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def test_two_workers_share_one_port_one_store_and_drain_on_sigterm(supervised) -> None:
    run = supervised(2)
    run.wait_for(r"hashmatch worker \d+ \(pid \d+\) loaded", count=2)
    assert sum("hashmatch listening on" in line for line in run.lines) == 1
    pids = run.worker_pids()
    assert sorted(pids) == [0, 1] and pids[0] != pids[1] and run.proc.pid not in pids.values()
    assert all(f"pid {pid}" in "".join(run.stderr) for pid in pids.values())  # each worker logs its pid
    ports = run.metrics_ports()
    assert len(ports) == 2 and ports[0] != ports[1]

    # The first start's admin key was made once, by the supervisor, for all workers.
    key = bearer(admin_key(run.data_dir))
    image = encode(photo(11), "JPEG")
    # New connections are spread over the workers by the kernel: both answer.
    for _ in range(30):
        with grpc.insecure_channel(run.address, OWN_CONNECTION) as channel:
            matcher_pb2_grpc.MatcherServiceStub(channel).HashImage(
                matcher_pb2.HashImageRequest(image=image, algorithms=[PDQ]), metadata=key, timeout=30)
    served = [scrape(port).get('hashmatch_requests_total{code="OK",method="/hashmatch.v1.MatcherService/HashImage"}', 0)
              for port in ports]
    assert sum(served) == 30 and min(served) > 0, served

    assert run.stop() == 0
    assert not any(alive(pid) for pid in pids.values())
    assert "all workers stopped" in "".join(run.stderr)


def test_a_worker_that_dies_is_restarted_and_the_port_keeps_serving(supervised) -> None:
    run = supervised(2, "--insecure-no-auth")
    run.wait_for(r"hashmatch worker \d+ \(pid \d+\) loaded", count=2)
    first = run.worker_pids()
    os.kill(first[0], signal.SIGKILL)
    restarted = run.wait_for(r"hashmatch worker 0 \(pid (\d+)\) bound", count=2, timeout=30)
    assert int(restarted.group(1)) != first[0]
    run.wait_for(r"hashmatch worker 0 \(pid \d+\) loaded", count=2, timeout=30)
    assert re.search(r"worker 0 \(pid %d\) exited with -9" % first[0], "".join(run.stderr))
    image = encode(photo(12), "JPEG")
    for _ in range(10):  # whichever worker each connection reaches
        with grpc.insecure_channel(run.address, OWN_CONNECTION) as channel:
            reply = matcher_pb2_grpc.MatcherServiceStub(channel).MatchImage(
                matcher_pb2.MatchImageRequest(image=image), timeout=30)
            assert len(reply.hashes) >= 2 and not reply.matches
    assert sum("hashmatch listening on" in line for line in run.lines) == 1
    current = run.worker_pids()
    assert run.stop() == 0
    assert not any(alive(pid) for pid in current.values())


def test_a_worker_that_cannot_start_stops_everything(tmp_path: Path) -> None:
    # A certificate file that does not exist: every worker would fail the same way, forever.
    proc = subprocess.run(
        [sys.executable, "-m", "hashmatch.server", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
         "--metrics", "off", "--workers", "2", "--tls-cert", str(tmp_path / "none.pem"),
         "--tls-key", str(tmp_path / "none.key")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "hashmatch listening on" not in proc.stdout


def test_workers_must_be_positive(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hashmatch.server", "--data-dir", str(tmp_path / "d"), "--workers", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "--workers must be at least 1" in proc.stderr


def test_a_list_change_through_one_worker_is_matched_by_all_within_2s(supervised) -> None:
    run = supervised(2, "--insecure-no-auth")
    run.wait_for(r"hashmatch worker \d+ \(pid \d+\) loaded", count=2)
    ports = run.metrics_ports()
    value = bytes(range(32)).hex()
    query = matcher_pb2.MatchHashesRequest(hashes=[hashes_pb2.Hash(algorithm=PDQ, value=value)])

    def answers(count: int = 20) -> list[list[str]]:
        """The matched entry ids from ``count`` fresh connections (spread over both workers)."""
        found = []
        for _ in range(count):
            with grpc.insecure_channel(run.address, OWN_CONNECTION) as channel:
                reply = matcher_pb2_grpc.MatcherServiceStub(channel).MatchHashes(query, timeout=10)
                found.append([m.entry_id for m in reply.matches])
        return found

    assert answers() == [[]] * 20  # nothing listed yet, on either worker
    with grpc.insecure_channel(run.address, OWN_CONNECTION) as channel:
        lists = lists_pb2_grpc.ListsServiceStub(channel)
        lists.CreateList(lists_pb2.CreateListRequest(name="fresh"), timeout=10)
        lists.UploadHashes(iter([lists_pb2.UploadHashesRequest(
            list_name="fresh", entries=[lists_pb2.HashEntry(algorithm=PDQ, hash=value, id="f1")], commit=True)]),
            timeout=30)
    committed = time.monotonic()
    time.sleep(max(0.0, committed + 2.0 - time.monotonic()))
    assert answers() == [["f1"]] * 20

    with grpc.insecure_channel(run.address, OWN_CONNECTION) as channel:
        lists_pb2_grpc.ListsServiceStub(channel).RemoveHashes(
            lists_pb2.RemoveHashesRequest(list_name="fresh", entry_ids=["f1"]), timeout=10)
    time.sleep(2.0)
    assert answers() == [[]] * 20
    # Both workers answered (each counts its own calls).
    method = '/hashmatch.v1.MatcherService/MatchHashes'
    served = [scrape(port).get(f'hashmatch_requests_total{{code="OK",method="{method}"}}', 0) for port in ports]
    assert sum(served) == 60 and min(served) > 0, served
    assert run.stop() == 0
