"""AdminService: the effective settings of this server process, read-only (admin role; see auth.py).

Settings are start-up flags (ServerConfig is frozen), so the answer is built once. Only what is
safe to show an administrator's tooling goes in: never the store URL (it may hold a password),
never key material, never a TLS file's contents.
"""

from __future__ import annotations

import grpc
from google.protobuf.duration_pb2 import Duration

from hashmatch import __version__
from hashmatch.index.validation import default_thresholds
from hashmatch.v1 import admin_pb2, admin_pb2_grpc

from .config import ServerConfig
from .convert import thresholds_to_proto
from .errors import unary


def _duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def settings_message(config: ServerConfig, hashing_slots: int) -> admin_pb2.ServerSettings:
    """The settings as the API reports them; ``hashing_slots``: the effective count (0 resolved)."""
    limits = config.limits
    tls = config.tls
    settings = admin_pb2.ServerSettings(
        version=__version__,
        # Only the kind: the URL may carry a password.
        store_kind=admin_pb2.STORE_KIND_POSTGRESQL if config.store_url else admin_pb2.STORE_KIND_SQLITE,
        auth_enabled=config.auth,
        tls=admin_pb2.TlsSettings(
            enabled=tls is not None,
            client_certificate_required=tls is not None and tls.mutual,
            client_certificate_role_count=len(tls.client_roles) if tls is not None else 0,
        ),
        reflection_enabled=config.reflection,
        workers=config.workers,
        hashing_slots=hashing_slots,
        threads=config.threads,
        max_message_bytes=config.max_message_bytes,
        max_pixels=config.max_pixels,
        fast=config.fast,
        match_regions=config.match_regions,
        log_hashes=config.log_hashes,
        selftest_enabled=config.selftest,
        selftest_interval=_duration(config.selftest_interval_seconds),
        grace_period=_duration(config.grace_seconds),
        follow_interval=_duration(config.follow_interval_seconds),
        metrics_enabled=config.metrics_address is not None,
        health_port_enabled=config.health_address is not None,
        limits=admin_pb2.AbuseLimits(
            match_requests_per_second=limits.match_requests_per_second,
            match_request_burst=limits.match_request_burst,
            match_bytes_per_second=limits.match_bytes_per_second,
            match_bytes_burst=limits.match_bytes_burst,
            max_concurrent_per_key=limits.max_concurrent_per_key,
            max_concurrent_rpcs=config.max_concurrent_rpcs,
            max_upload_entries=limits.max_upload_entries,
            max_lists=limits.max_lists,
            max_query_hashes=config.max_query_hashes,
        ),
        # The same table CreateList fills unset thresholds from.
        default_thresholds=thresholds_to_proto(default_thresholds()),
    )
    if config.max_staleness_seconds is not None:
        settings.max_staleness.CopyFrom(_duration(config.max_staleness_seconds))
    return settings


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """Answers without the index: settings do not depend on it, so they are readable while it loads."""

    def __init__(self, config: ServerConfig, hashing_slots: int) -> None:
        self._settings = settings_message(config, hashing_slots)

    @unary
    def GetSettings(self, request: admin_pb2.GetSettingsRequest, context: grpc.ServicerContext):
        return admin_pb2.GetSettingsResponse(settings=self._settings)
