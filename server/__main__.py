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
    parser.add_argument("--max-message-bytes", type=int, default=defaults.max_message_bytes)
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument(
        "--fast", action="store_true",
        help="hash every upload in fast mode (JPEGs decoded at reduced scale; a few bits from the exact hashes)",
    )
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--grace", type=float, default=defaults.grace_seconds, help="seconds to drain on SIGTERM")
    parser.add_argument("--no-reflection", action="store_true", help="do not offer server reflection")
    parser.add_argument(
        "--selftest-interval", type=float, default=defaults.selftest_interval_seconds, metavar="SECONDS",
        help="seconds between known-answer self-tests after the one at start-up (0: only at start-up)",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=("json", "text"), default="json", help="json: one object a line")
    security_flags.add_arguments(parser)
    parser.add_argument(
        "--metrics", default="127.0.0.1:9464", metavar="HOST:PORT",
        help="where to serve Prometheus /metrics (default: %(default)s; 'off' for none)",
    )
    args = parser.parse_args(argv)
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
        reflection=not args.no_reflection,
        grace_seconds=args.grace,
        metrics_address=None if args.metrics == "off" else args.metrics,
        selftest_interval_seconds=args.selftest_interval,
        **args.security,
    )
    server, port = create_server(args.listen, config)
    server.start()
    host = args.listen.rsplit(":", 1)[0]
    # Tests and scripts read the port from this line.
    print(f"hashmatch listening on {host}:{port} (data in {config.data_dir})", flush=True)
    if server.metrics_port is not None:
        metrics_host = config.metrics_address.rpartition(":")[0] or "127.0.0.1"
        print(f"hashmatch metrics on http://{metrics_host}:{server.metrics_port}/metrics", flush=True)

    stopping = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        logging.getLogger("hashmatch.server").info("signal %d: draining for up to %.0fs", signum, config.grace_seconds)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    server.stop(config.grace_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
