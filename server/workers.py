"""``--workers N``: N server processes on one port, supervised by the process that was started.

Python runs one thread of Python code at a time, so one process hashes on about one core; N
processes use N. Each worker is a whole ``python -m hashmatch.server`` bound with SO_REUSEPORT to
the same address (the kernel spreads new connections among them) and opens the same store (SQLite
in WAL mode takes readers and writers from several processes). The supervisor serves nothing: it

- does the first start's one-time work (the store's schema, the first admin key) before any
  worker, so workers never race for it;
- fixes the port once (a port 0 is chosen here and handed to every worker; a socket of the
  SO_REUSEPORT group keeps it reserved while they run, bound but not listening, so it gets no
  connections);
- prints the one ``hashmatch listening on HOST:PORT`` line once every worker has loaded its index
  (each answers health NOT_SERVING from the moment it is bound);
- forwards SIGTERM/SIGINT: each worker drains within the grace period; exits 0 after a clean drain;
- restarts a worker that dies unexpectedly, waiting longer after each quick death (1 s, doubling
  up to 30 s; back to 1 s once a worker has run for a minute). A worker that dies before every
  worker was first ready is a configuration error (a bad certificate, a busy port): everything
  stops with its exit code rather than restarting forever.

Metrics: each worker serves its own /metrics (``--metrics HOST:PORT`` gives worker i PORT+i; port 0,
any free port, printed). prometheus-client's multiprocess mode could merge them on one endpoint,
but its values live in per-process files and it cannot carry collectors read at scrape time (the
index's entries, generation and age): a worker whose index lags would be hidden in a merge.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from hashmatch.index import SQLiteStore

from .config import ServerConfig
from .security import open_keys

log = logging.getLogger("hashmatch.workers")

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
# A worker that ran this long before dying gets restarted after FIRST_BACKOFF again.
STEADY_SECONDS = 60.0
# Beyond the grace period, how long a worker may take to exit before it is killed.
EXIT_MARGIN = 15.0


@dataclass
class Worker:
    index: int
    argv: list[str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    loaded: threading.Event = field(default_factory=threading.Event)
    restart_at: float | None = None
    backoff: float = FIRST_BACKOFF
    reader: threading.Thread | None = None

    def start(self) -> None:
        self.loaded.clear()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hashmatch.server", *self.argv],
            stdout=subprocess.PIPE, text=True, bufsize=1,  # stderr (the logs) goes straight through
        )
        self.started = time.monotonic()
        self.restart_at = None
        self.reader = threading.Thread(target=self._forward, args=(self.proc,), daemon=True,
                                       name=f"hashmatch-worker-{self.index}-stdout")
        self.reader.start()
        log.info("started worker %d, pid %d", self.index, self.proc.pid,
                 extra={"fields": {"worker": self.index, "pid": self.proc.pid}})

    def _forward(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(f"hashmatch worker {self.index} ") and line.rstrip().endswith(" loaded"):
                self.loaded.set()
            sys.stdout.write(line)
            sys.stdout.flush()


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--listen: expected HOST:PORT, got {address!r}")
    return host, int(port)


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket of the address's SO_REUSEPORT group, bound but never listening: it fixes a port 0
    to one number for every worker and keeps it ours while they restart."""
    family, kind, proto, _, sockaddr = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(sockaddr)
    return sock


def prepare_data(config: ServerConfig) -> None:
    """The first start's one-time work, done once here: the store's schema, the first admin key."""
    if config.store_url:
        from hashmatch.index.postgres_store import PostgresStore  # psycopg only where it is used

        PostgresStore(config.store_url).close()
    else:
        SQLiteStore(config.database_path).close()
    keys = open_keys(config)
    if keys is not None:
        keys.close()


def worker_argv(argv: list[str], index: int, listen: str, metrics: str) -> list[str]:
    # argparse keeps the last value of an option, so these override whatever argv said.
    return [*argv, "--listen", listen, "--metrics", metrics, "--worker-index", str(index)]


def metrics_for(index: int, config: ServerConfig) -> str:
    if not config.metrics_address:
        return "off"
    host, _, port = config.metrics_address.rpartition(":")
    return f"{host}:{int(port) + index if int(port) else 0}"


def supervise(count: int, listen: str, argv: list[str], config: ServerConfig) -> int:
    host, port = split_address(listen)
    reserved = reserve_port(host, port)
    port = reserved.getsockname()[1]
    address = f"{host}:{port}"
    prepare_data(config)
    workers = [Worker(i, worker_argv(argv, i, address, metrics_for(i, config))) for i in range(count)]

    stopping = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        log.info("signal %d: draining %d workers for up to %.0fs", signum, count, config.grace_seconds)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for worker in workers:
            worker.start()
        failed = _wait_loaded(workers, stopping)
        if failed is not None:
            stopping.set()
            code = _stop_all(workers, config.grace_seconds)
            return failed or code or 1
        if not stopping.is_set():
            # Tests and scripts read the port from this line, printed once for all workers.
            print(f"hashmatch listening on {address} (data in {config.data_dir}, {count} workers)", flush=True)
        while not stopping.wait(0.2):
            _restart_dead(workers)
        return _stop_all(workers, config.grace_seconds)
    finally:
        reserved.close()


def _wait_loaded(workers: list[Worker], stopping: threading.Event) -> int | None:
    """None once every worker has loaded its index; the exit code of a worker that died before."""
    while not stopping.is_set():
        for worker in workers:
            code = worker.proc.poll() if worker.proc else None
            if code is not None:
                log.error("worker %d (pid %d) exited with %d before it was ready: stopping", worker.index,
                          worker.proc.pid, code)
                return code
        if all(w.loaded.is_set() for w in workers):
            return None
        time.sleep(0.05)
    return None


def _restart_dead(workers: list[Worker]) -> None:
    now = time.monotonic()
    for worker in workers:
        assert worker.proc is not None
        if worker.restart_at is not None:
            if now >= worker.restart_at:
                worker.start()
            continue
        code = worker.proc.poll()
        if code is None:
            continue
        lived = now - worker.started
        if lived >= STEADY_SECONDS:
            worker.backoff = FIRST_BACKOFF
        worker.restart_at = now + worker.backoff
        log.warning("worker %d (pid %d) exited with %d after %.0fs; restarting it in %.0fs",
                    worker.index, worker.proc.pid, code, lived, worker.backoff,
                    extra={"fields": {"worker": worker.index, "pid": worker.proc.pid, "exit_code": code}})
        worker.backoff = min(worker.backoff * 2, MAX_BACKOFF)


def _stop_all(workers: list[Worker], grace: float) -> int:
    """SIGTERM every worker, wait for their drains; 0 when every one exited 0."""
    running = [w.proc for w in workers if w.proc is not None and w.proc.poll() is None and w.restart_at is None]
    for proc in running:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace + EXIT_MARGIN
    code = 0
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker pid %d did not exit within the grace period: killed", proc.pid)
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            code = 1
    for worker in workers:
        if worker.reader is not None:
            worker.reader.join(timeout=5)
    log.info("all workers stopped", extra={"fields": {"exit_code": code}})
    return code
