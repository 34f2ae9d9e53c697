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
from hashmatch.v1 import lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

from .config import ServerConfig
from .lists import ListsServicer
from .matcher import MatcherServicer
from .observability import Metrics, RequestObserver
from .selftest import DATA_DIR as SELFTEST_DATA
from .selftest import SelfTester, SelfTestResult

log = logging.getLogger("hashmatch.server")

SERVICE_NAMES = (
    matcher_pb2.DESCRIPTOR.services_by_name["MatcherService"].full_name,
    lists_pb2.DESCRIPTOR.services_by_name["ListsService"].full_name,
)


class HashmatchServer:
    """A grpc.Server together with what it serves from; stop() also closes the store."""

    def __init__(
        self,
        grpc_server: grpc.Server,
        lists: HashLists,
        health_servicer: health.HealthServicer,
        metrics: Metrics,
        config: ServerConfig,
    ) -> None:
        self.grpc_server = grpc_server
        self.lists = lists
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

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.grpc_server.wait_for_termination(timeout)


def create_server(address: str, config: ServerConfig) -> tuple[HashmatchServer, int]:
    """Build and bind the server (not started). Binding port 0 picks a free port: returned."""
    lists = HashLists(SQLiteStore(config.database_path))
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    metrics = Metrics(lists)
    # The observer is outermost, so refusals by inner interceptors are counted and logged too.
    interceptors: list[grpc.ServerInterceptor] = [RequestObserver(metrics)]
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.threads), options=options, interceptors=interceptors
    )
    matcher_pb2_grpc.add_MatcherServiceServicer_to_server(MatcherServicer(lists, config), grpc_server)
    lists_pb2_grpc.add_ListsServiceServicer_to_server(ListsServicer(lists), grpc_server)
    health_servicer = health.HealthServicer()
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    if config.reflection:
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server
        )
    port = grpc_server.add_insecure_port(address)
    if port == 0:
        lists.close()
        raise OSError(f"could not bind {address}")
    return HashmatchServer(grpc_server, lists, health_servicer, metrics, config), port
