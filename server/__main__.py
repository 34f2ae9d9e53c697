"""``python -m hashmatch.server``: run the service until SIGTERM or SIGINT, then drain and exit 0."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from hashmatch.hashing import DEFAULT_MAX_PIXELS

from . import keys_cli, security_flags
from .app import create_server
from .config import ServerConfig
from .observability import JsonFormatter


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = ServerConfig()
    parser = argparse.ArgumentParser(prog="hashmatch serve", description="Run the hashmatch gRPC service.")
    parser.add_argument("--listen", default="127.0.0.1:50051", help="address to bind (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=defaults.data_dir, help="folder of the SQLite store")
    parser.add_argument(
        "--store", metavar="URL", default=os.environ.get(keys_cli.STORE_URL_ENV) or None,
        help="a postgresql://user@host/db URL: keep the lists and keys in PostgreSQL, shared by replicas "
             f"(default: ${keys_cli.STORE_URL_ENV}, which keeps the password off the command line; "
             "else the SQLite file in --data-dir)",
    )
    parser.add_argument(
        "--health-listen", metavar="HOST:PORT", default=None,
        help="also serve grpc.health.v1 alone, in plaintext, here (for the kubelet's probes under TLS); "
             "health service 'liveness' is SERVING whenever the process answers",
    )
    parser.add_argument(
        "--max-staleness", type=float, default=None, metavar="SECONDS",
        help="report NOT_SERVING once the store has been unreachable this long (default: keep serving "
             "the last index; the health name hashmatch.v1.Freshness reports the store's reachability)",
    )
    parser.add_argument("--max-message-bytes", type=int, default=defaults.max_message_bytes)
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument(
        "--fast", action="store_true",
        help="hash every upload in fast mode (JPEGs decoded at reduced scale; a few bits from the exact hashes)",
    )
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="server processes sharing the port (SO_REUSEPORT) and the store, so hashing uses every core "
             "(default: %(default)s; server/workers.py supervises them)",
    )
    parser.add_argument(
        "--hashing-slots", type=int, default=defaults.hashing_slots, metavar="N",
        help="images one process hashes at once, the rest waiting their turn (default: 0, meaning the CPUs "
             "available divided by --workers)",
    )
    # Set by the supervisor for the processes it starts (server/workers.py), never by hand.
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--grace", type=float, default=defaults.grace_seconds, help="seconds to drain on SIGTERM")
    parser.add_argument("--no-reflection", action="store_true", help="do not offer server reflection")
    parser.add_argument(
        "--selftest-interval", type=float, default=defaults.selftest_interval_seconds, metavar="SECONDS",
        help="seconds between known-answer self-tests after the one at start-up (0: only at start-up)",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=("json", "text"), default="json", help="json: one object a line")
    parser.add_argument(
        "--log-hashes", action="store_true",
        help="the match log: each match or hash request's log line also names the upload's hashes "
             "(off by default: no hash of an upload is written anywhere)",
    )
    security_flags.add_arguments(parser)
    parser.add_argument(
        "--metrics", default="127.0.0.1:9464", metavar="HOST:PORT",
        help="where to serve Prometheus /metrics (default: %(default)s; 'off' for none)",
    )
    args = parser.parse_args(argv)
    if args.store is not None and not args.store.startswith(("postgresql://", "postgres://")):
        parser.error(f"--store must be a postgresql:// URL, got {args.store.split(':', 1)[0]!r}...")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.hashing_slots < 0:
        parser.error(f"--hashing-slots must be 0 (automatic) or more, got {args.hashing_slots}")
    args.security = security_flags.config_from(args, parser)
    return args


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s %(fields)s", defaults={"fields": ""}))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything the server writes (the lists, keys, admin.key) is for its own user only.
    os.umask(0o077)
    if argv[:1] == ["keys"]:  # offline key management: python -m hashmatch.server keys ...
        return keys_cli.main(argv[1:])
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    config = ServerConfig(
        data_dir=args.data_dir,
        max_message_bytes=args.max_message_bytes,
        max_pixels=args.max_pixels,
        fast=args.fast,
        threads=args.threads,
        hashing_slots=args.hashing_slots,
        workers=args.workers,
        reflection=not args.no_reflection,
        log_hashes=args.log_hashes,
        grace_seconds=args.grace,
        metrics_address=None if args.metrics == "off" else args.metrics,
        selftest_interval_seconds=args.selftest_interval,
        reuse_port=args.worker_index is not None,
        store_url=args.store,
        health_address=args.health_listen,
        max_staleness_seconds=args.max_staleness,
        **args.security,
    )
    worker = args.worker_index
    if worker is None and args.workers > 1:
        from .workers import supervise  # the parent only supervises: it serves nothing itself

        return supervise(args.workers, args.listen, argv, config)
    log = logging.getLogger("hashmatch.server")
    server, port = create_server(args.listen, config)
    # Bound at once: health answers NOT_SERVING (and matching UNAVAILABLE) while the index loads
    # in the background, so orchestrators see a live process that is not ready yet.
    server.start(wait_until_loaded=False)
    host = args.listen.rsplit(":", 1)[0]
    pid = os.getpid()
    if worker is None:
        log.info("bound %s:%d; loading the index", host, port, extra={"fields": {"pid": pid}})
    else:
        log.info("worker %d started, pid %d", worker, pid, extra={"fields": {"worker": worker, "pid": pid}})
        # For the supervisor, which prints the one "hashmatch listening on" line for all workers.
        print(f"hashmatch worker {worker} (pid {pid}) bound {host}:{port}", flush=True)

    def announce() -> None:
        if worker is None:
            # Tests and scripts read the port from this line: printed once the index is loaded and
            # the first self-test ran, so calls made after it are served.
            print(f"hashmatch listening on {host}:{port} (data in {config.data_dir})", flush=True)
        else:
            print(f"hashmatch worker {worker} (pid {pid}) loaded", flush=True)
        if server.metrics_port is not None:
            metrics_host = config.metrics_address.rpartition(":")[0] or "127.0.0.1"
            print(f"hashmatch metrics on http://{metrics_host}:{server.metrics_port}/metrics", flush=True)

    stopping = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        logging.getLogger("hashmatch.server").info("signal %d: draining for up to %.0fs", signum, config.grace_seconds)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parent = os.getppid()
    loaded = False
    while not stopping.is_set():
        if not loaded:
            try:
                loaded = server.lists.wait(0.05)
            except Exception:  # noqa: BLE001 - logged by the loader; a server without an index must go
                server.stop(None)
                return 1
            if loaded:
                announce()
        else:
            stopping.wait(0.2)
        if worker is not None and os.getppid() != parent:
            log.warning("worker %d: the supervisor is gone; draining", worker)
            stopping.set()
    server.stop(config.grace_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
