"""Assembles the service: store -> lists -> servicers, plus the standard health and reflection services."""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from typing import Callable

import grpc
from prometheus_client import start_http_server
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hashmatch.index import HashLists, SQLiteStore
from hashmatch.index.keys import KeyStore
from hashmatch.v1 import admin_pb2, admin_pb2_grpc, keys_pb2, keys_pb2_grpc, lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

from .admin import AdminServicer
from .auth import AuthInterceptor, Authenticator
from .config import ServerConfig
from .export import ExportingListsServicer
from .keys_service import KeysServicer
from .limits import LimitsInterceptor
from .loading import LoadingGate, LoadingLists
from .hashing_slots import HashingSlots
from .matcher import MatcherServicer
from .observability import Metrics, RequestObserver
from .selftest import DATA_DIR as SELFTEST_DATA
from .selftest import SelfTester, SelfTestResult
from .security import bind, open_keys

log = logging.getLogger("hashmatch.server")

SERVICE_NAMES = (
    matcher_pb2.DESCRIPTOR.services_by_name["MatcherService"].full_name,
    lists_pb2.DESCRIPTOR.services_by_name["ListsService"].full_name,
)
KEYS_SERVICE = keys_pb2.DESCRIPTOR.services_by_name["KeysService"].full_name
# Read-only settings (admin role). Served with auth off too, where every caller holds every role.
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
# Health of the index's freshness alone: NOT_SERVING while the store cannot be reached (the
# server still answers matches from its last index; overall health follows max_staleness_seconds).
FRESHNESS_SERVICE = "hashmatch.v1.Freshness"
# Liveness alone: SERVING from the moment the process answers until it drains, whatever the
# index or the self-test say, so an orchestrator restarts a hung process but not a loading one.
LIVENESS_SERVICE = "liveness"
# Metadata (the API key included) above this is refused by gRPC itself. Soft and hard limits are
# equal so the outcome is certain (between them gRPC refuses at random).
MAX_METADATA_BYTES = 16 * 1024


class HashmatchServer:
    """A grpc.Server together with what it serves from; stop() also closes the store."""

    def __init__(
        self,
        grpc_server: grpc.Server,
        lists: LoadingLists,
        health_servicer: health.HealthServicer,
        metrics: Metrics,
        config: ServerConfig,
        keys: KeyStore | None = None,
        limits: LimitsInterceptor | None = None,
    ) -> None:
        self.grpc_server = grpc_server
        self.lists = lists
        self.keys = keys
        self.limits = limits
        self.health = health_servicer
        self.metrics = metrics
        self.config = config
        self._metrics_http = None
        self.metrics_port: int | None = None
        self.hashing_slots: HashingSlots | None = None  # the Matcher's (set by create_server)
        self._health_lock = threading.Lock()
        self._selftest_ok: bool | None = None  # None until the first self-test reports
        self._fresh_enough = True
        self._draining = False
        # The health service alone, plaintext, for probes that cannot speak TLS (the kubelet's).
        self.health_server: grpc.Server | None = None
        self.health_port: int | None = None
        self.selftest = SelfTester(
            config.selftest_interval_seconds, self._on_selftest, config.selftest_data_dir or SELFTEST_DATA
        )

    def start(self, wait_until_loaded: bool = True) -> None:
        """Listen at once (health NOT_SERVING), load the index in the background, then self-test.

        ``wait_until_loaded``: return only once loaded and self-tested (raising what loading
        raised), as in-process users expect; ``python -m hashmatch.server`` does not wait, so its
        health checks are answered during a load of millions of entries.
        """
        if self.config.metrics_address:
            host, _, port = self.config.metrics_address.rpartition(":")
            self._metrics_http, _thread = start_http_server(int(port), host or "127.0.0.1", registry=self.metrics.registry)
            self.metrics_port = self._metrics_http.server_port
        self.grpc_server.start()
        if self.health_server is not None:
            self.health_server.start()
        self.lists.then(self._on_loaded)
        self.lists.start()
        if wait_until_loaded:
            try:
                self.lists.wait()
            except BaseException:
                self.stop(None)
                raise

    def _on_loaded(self, lists: HashLists) -> None:
        # Other processes sharing the store (replicas, workers) write too: apply their changes.
        with self._health_lock:
            if not self._draining:
                self.health.set(FRESHNESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        lists.on_follow = self._on_follow
        lists.follow(self.config.follow_interval_seconds)
        # The self-test's first run decides whether this server is ready; later runs can take it out.
        if self.config.selftest:
            self.selftest.start()
        else:
            self._on_selftest(SelfTestResult(True, (), 0.0))

    def _on_selftest(self, result: SelfTestResult) -> None:
        self.metrics.selftest_ok.set(1 if result.ok else 0)
        self.metrics.selftest_time.set(result.finished)
        with self._health_lock:
            self._selftest_ok = result.ok
            if self._draining:
                return
            self._set_overall()

    def _set_overall(self) -> None:
        # Under the health lock: ready when the self-test passed and the index is fresh enough.
        ok = self._selftest_ok and self._fresh_enough
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, status)

    def _on_follow(self) -> None:
        """After each round of the lists' follower: freshness into health (metrics read it at scrape)."""
        lists = self.lists.get()
        limit = self.config.max_staleness_seconds
        fresh = limit is None or lists.stale_seconds <= limit
        connected = lists.store_connected
        with self._health_lock:
            if self._draining:
                return
            self.health.set(FRESHNESS_SERVICE, health_pb2.HealthCheckResponse.SERVING if connected
                            else health_pb2.HealthCheckResponse.NOT_SERVING)
            if fresh != self._fresh_enough:
                self._fresh_enough = fresh
                if not fresh:
                    log.warning("index not confirmed current for %.1fs (limit %.1fs): NOT_SERVING",
                                lists.stale_seconds, limit)
                if self._selftest_ok is not None:
                    self._set_overall()

    def stop(self, grace: float | None) -> None:
        # Tell load balancers first, so no new work arrives while in-flight requests finish.
        with self._health_lock:
            self._draining = True
        self.selftest.stop()
        self.health.enter_graceful_shutdown()
        if self.health_server is not None:
            self.health_server.stop(None)
        self.grpc_server.stop(grace).wait()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        self.lists.close()
        if self.keys is not None:
            self.keys.close()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.grpc_server.wait_for_termination(timeout)


def open_lists(config: ServerConfig) -> HashLists:
    """Open the store and load the index: seconds at millions of entries, so it runs on
    LoadingLists' background thread while the server already answers health checks."""
    if config.store_url:
        from hashmatch.index.postgres_store import PostgresStore  # psycopg only where it is used

        return HashLists(PostgresStore(config.store_url))
    return HashLists(SQLiteStore(config.database_path))


def create_server(
    address: str, config: ServerConfig, load: Callable[[ServerConfig], HashLists] = open_lists
) -> tuple[HashmatchServer, int]:
    """Build and bind the server (not started). Binding port 0 picks a free port: returned.

    ``load`` opens the lists (on a background thread once started); tests pass one that waits
    for their signal, to see the server while its index loads."""
    lists = LoadingLists(lambda: load(config))
    try:
        keys = open_keys(config)
    except BaseException:
        lists.close()
        raise
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 1 if config.reuse_port else 0),
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    ]
    metrics = Metrics(lists)
    authenticator = Authenticator(keys, config.tls.client_roles if config.tls else None) if keys else None
    limits = LimitsInterceptor(config.limits, lists)
    # The observer is outermost, so refusals by inner interceptors are counted and logged too;
    # auth comes before limits, which count per authenticated key; the shortcut, before auth,
    # refuses credentials just refused for rate without parsing or looking up anything. The
    # loading gate (UNAVAILABLE while the index loads) comes after auth, so only a known caller
    # learns the index's state, and before limits, which read the lists.
    interceptors: list[grpc.ServerInterceptor] = [
        RequestObserver(metrics, log_hashes=config.log_hashes), limits.shortcut, AuthInterceptor(authenticator), LoadingGate(lists), limits
    ]
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.threads),
        options=options,
        interceptors=interceptors,
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    matcher = MatcherServicer(lists, config)
    matcher_pb2_grpc.add_MatcherServiceServicer_to_server(matcher, grpc_server)
    lists_pb2_grpc.add_ListsServiceServicer_to_server(ExportingListsServicer(lists, config), grpc_server)
    if keys is not None:
        keys_pb2_grpc.add_KeysServiceServicer_to_server(KeysServicer(keys), grpc_server)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(config, matcher.slots.slots), grpc_server)
    served = (*SERVICE_NAMES, KEYS_SERVICE, ADMIN_SERVICE) if keys is not None else (*SERVICE_NAMES, ADMIN_SERVICE)
    health_servicer = health.HealthServicer()
    for name in ("", *SERVICE_NAMES, FRESHNESS_SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    if config.reflection:
        reflection.enable_server_reflection(
            (*served, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server
        )
    health_server = health_port = None
    try:
        port = bind(grpc_server, address, config)
        if config.health_address:
            health_server, health_port = health_only_server(health_servicer, config)
    except BaseException:
        lists.close()
        if keys is not None:
            keys.close()
        raise
    server = HashmatchServer(grpc_server, lists, health_servicer, metrics, config, keys, limits)
    server.hashing_slots = matcher.slots
    server.health_server, server.health_port = health_server, health_port
    return server, port


def health_only_server(servicer: health.HealthServicer, config: ServerConfig) -> tuple[grpc.Server, int]:
    """The same health answers on a plaintext port of their own, and nothing else: health says
    nothing about lists or uploads, and the kubelet's gRPC probe cannot speak TLS."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
        options=[("grpc.so_reuseport", 1 if config.reuse_port else 0)],
        maximum_concurrent_rpcs=16,
    )
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    assert config.health_address is not None
    port = server.add_insecure_port(config.health_address)
    if port == 0:
        raise OSError(f"cannot bind the health port {config.health_address}")
    return server, port
