"""Assembles the service: store -> lists -> servicers, plus the standard health and reflection services."""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from prometheus_client import start_http_server
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hashmatch.index import HashLists, SQLiteStore
from hashmatch.index.keys import KeyStore
from hashmatch.v1 import keys_pb2, keys_pb2_grpc, lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

from .auth import AuthInterceptor, Authenticator
from .config import ServerConfig
from .export import ExportingListsServicer
from .keys_service import KeysServicer
from .limits import LimitsInterceptor
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
# Metadata (the API key included) above this is refused by gRPC itself. Soft and hard limits are
# equal so the outcome is certain (between them gRPC refuses at random).
MAX_METADATA_BYTES = 16 * 1024


class HashmatchServer:
    """A grpc.Server together with what it serves from; stop() also closes the store."""

    def __init__(
        self,
        grpc_server: grpc.Server,
        lists: HashLists,
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
        self._health_lock = threading.Lock()
        self._draining = False
        self.selftest = SelfTester(
            config.selftest_interval_seconds, self._on_selftest, config.selftest_data_dir or SELFTEST_DATA
        )

    def start(self) -> None:
        if self.config.metrics_address:
            host, _, port = self.config.metrics_address.rpartition(":")
            self._metrics_http, _thread = start_http_server(int(port), host or "127.0.0.1", registry=self.metrics.registry)
            self.metrics_port = self._metrics_http.server_port
        self.grpc_server.start()
        # The self-test's first run decides whether this server is ready; later runs can take it out.
        if self.config.selftest:
            self.selftest.start()
        else:
            self._on_selftest(SelfTestResult(True, (), 0.0))

    def _on_selftest(self, result: SelfTestResult) -> None:
        self.metrics.selftest_ok.set(1 if result.ok else 0)
        self.metrics.selftest_time.set(result.finished)
        status = health_pb2.HealthCheckResponse.SERVING if result.ok else health_pb2.HealthCheckResponse.NOT_SERVING
        with self._health_lock:
            if self._draining:
                return
            for name in ("", *SERVICE_NAMES):
                self.health.set(name, status)

    def stop(self, grace: float | None) -> None:
        # Tell load balancers first, so no new work arrives while in-flight requests finish.
        with self._health_lock:
            self._draining = True
        self.selftest.stop()
        self.health.enter_graceful_shutdown()
        self.grpc_server.stop(grace).wait()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        self.lists.close()
        if self.keys is not None:
            self.keys.close()

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.grpc_server.wait_for_termination(timeout)


def create_server(address: str, config: ServerConfig) -> tuple[HashmatchServer, int]:
    """Build and bind the server (not started). Binding port 0 picks a free port: returned."""
    lists = HashLists(SQLiteStore(config.database_path))
    try:
        keys = open_keys(config)
    except BaseException:
        lists.close()
        raise
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    ]
    metrics = Metrics(lists)
    authenticator = Authenticator(keys, config.tls.client_roles if config.tls else None) if keys else None
    limits = LimitsInterceptor(config.limits, lists)
    # The observer is outermost, so refusals by inner interceptors are counted and logged too;
    # auth comes before limits, which count per authenticated key; the shortcut, before auth,
    # refuses credentials just refused for rate without parsing or looking up anything.
    interceptors: list[grpc.ServerInterceptor] = [
        RequestObserver(metrics), limits.shortcut, AuthInterceptor(authenticator), limits
    ]
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.threads),
        options=options,
        interceptors=interceptors,
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    matcher_pb2_grpc.add_MatcherServiceServicer_to_server(MatcherServicer(lists, config), grpc_server)
    lists_pb2_grpc.add_ListsServiceServicer_to_server(ExportingListsServicer(lists), grpc_server)
    if keys is not None:
        keys_pb2_grpc.add_KeysServiceServicer_to_server(KeysServicer(keys), grpc_server)
    served = (*SERVICE_NAMES, KEYS_SERVICE) if keys is not None else SERVICE_NAMES
    health_servicer = health.HealthServicer()
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    if config.reflection:
        reflection.enable_server_reflection(
            (*served, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server
        )
    try:
        port = bind(grpc_server, address, config)
    except BaseException:
        lists.close()
        if keys is not None:
            keys.close()
        raise
    return HashmatchServer(grpc_server, lists, health_servicer, metrics, config, keys, limits), port
