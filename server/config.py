"""Server settings, with the defaults a first deployment can start from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hashmatch.hashing import DEFAULT_MAX_PIXELS
from hashmatch.index.keys import ADMIN_KEY_FILE

from .limits import Limits
from .tls import TlsConfig


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path = Path("data")
    # Largest request message (an uploaded image, or one batch of an upload stream).
    max_message_bytes: int = 32 * 1024 * 1024
    # MatchImage also searches the picture inside uniform borders and the one embedded in a
    # screenshot, when it finds one (hashing.regions).
    match_regions: bool = True
    # Largest decoded image, checked from the header before any pixel is decoded.
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Hash every upload in fast mode (JPEGs decoded at reduced scale: a few bits of drift from the
    # exact hashes; docs/hashing.md). Off: each request chooses with its own `fast` field.
    fast: bool = False
    # Most hashes in one MatchHashes request.
    max_query_hashes: int = 1024
    # Threads serving RPCs.
    threads: int = 16
    # Images this process hashes at once (others wait, honouring their deadlines); 0: one per core
    # the process has to itself, i.e. the CPUs available divided by `workers` (server/hashing_slots.py).
    hashing_slots: int = 0
    # Server processes on this machine sharing the cores (`--workers N`); sizes the default above.
    workers: int = 1
    # The match log: the request log line of each match or hash request also names the upload's
    # hashes (never the image, never a listed hash it matched), for platforms whose retention
    # policy wants them. Off by default: then no hash of an upload is written anywhere.
    log_hashes: bool = False
    # Server reflection lets generic tools (buf curl, grpcurl) discover the API.
    reflection: bool = True
    # Seconds in-flight requests get to finish on SIGTERM.
    grace_seconds: float = 10.0
    # API keys and roles (server/auth.py). Off only by explicit choice (--insecure-no-auth).
    auth: bool = True
    # TLS or mutual TLS (server/tls.py); None: plaintext, for loopback or behind a TLS proxy.
    tls: TlsConfig | None = None
    # Per-key rates and concurrency, upload and list counts (server/limits.py).
    limits: Limits = Limits()
    # RPCs in progress or waiting for a thread, all callers together; more are refused at once
    # (RESOURCE_EXHAUSTED), so a flood queues no unbounded work or memory.
    max_concurrent_rpcs: int = 256
    # host:port of the Prometheus /metrics endpoint (port 0: any free port); None: no endpoint.
    metrics_address: str | None = None
    # Run the known-answer self-test at start-up (and then every interval); health waits for it.
    selftest: bool = True
    # Seconds between known-answer self-tests after the one at start-up (0: only at start-up).
    selftest_interval_seconds: float = 300.0
    # Folder of the self-test's images and expected.json (None: the ones shipped in the package).
    selftest_data_dir: Path | None = None
    # Let several processes listen on the one port (SO_REUSEPORT; the kernel spreads connections
    # among them): set for the workers of `--workers N` (server/workers.py), off otherwise so a
    # second server started by mistake on a busy port fails instead of sharing it.
    reuse_port: bool = False
    # The shared store for replicas: a postgresql:// URL (index/postgres_store.py). None: the
    # embedded SQLite file in data_dir.
    store_url: str | None = None
    # host:port of a plaintext port serving only grpc.health.v1 (for probes that cannot speak
    # TLS); None: health is served on the main port only (it always is there too).
    health_address: str | None = None
    # Seconds between polls of the store's change feed for other processes' writes (PostgreSQL
    # also wakes the follower at once through LISTEN/NOTIFY).
    follow_interval_seconds: float = 0.5
    # Overall health turns NOT_SERVING once the index has not been confirmed current for this
    # long (the store unreachable); None: keep serving the last index however old. The health
    # service name "hashmatch.v1.Freshness" is NOT_SERVING whenever the store is unreachable.
    max_staleness_seconds: float | None = None

    @property
    def database_path(self) -> Path:
        return self.data_dir / "hashmatch.sqlite3"

    @property
    def admin_key_path(self) -> Path:
        """Where the first start writes the first admin key (owner-only)."""
        return self.data_dir / ADMIN_KEY_FILE
