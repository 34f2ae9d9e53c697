"""The server's settings as the SDK shows them (AdminService, admin role): message -> dataclass."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from hashmatch.client.convert import thresholds_from_proto
from hashmatch.client.models import AbuseLimits, ServerSettings
from hashmatch.v1 import admin_pb2

_STORE_KINDS = {admin_pb2.STORE_KIND_SQLITE: "sqlite", admin_pb2.STORE_KIND_POSTGRESQL: "postgresql"}


def _seconds(value: Duration) -> float:
    return value.ToNanoseconds() / 1e9


def server_settings(message: admin_pb2.ServerSettings) -> ServerSettings:
    limits = message.limits
    return ServerSettings(
        version=message.version,
        # A kind newer than this client is shown by its number rather than failing the call.
        store=_STORE_KINDS.get(message.store_kind, f"unknown ({message.store_kind})"),
        auth=message.auth_enabled,
        tls=message.tls.enabled,
        client_certificate_required=message.tls.client_certificate_required,
        client_certificate_roles=message.tls.client_certificate_role_count,
        reflection=message.reflection_enabled,
        workers=message.workers,
        hashing_slots=message.hashing_slots,
        threads=message.threads,
        max_message_bytes=message.max_message_bytes,
        max_pixels=message.max_pixels,
        fast=message.fast,
        match_regions=message.match_regions,
        log_hashes=message.log_hashes,
        selftest=message.selftest_enabled,
        selftest_interval_seconds=_seconds(message.selftest_interval),
        grace_seconds=_seconds(message.grace_period),
        follow_interval_seconds=_seconds(message.follow_interval),
        max_staleness_seconds=_seconds(message.max_staleness) if message.HasField("max_staleness") else None,
        metrics=message.metrics_enabled,
        health_port=message.health_port_enabled,
        limits=AbuseLimits(
            match_requests_per_second=limits.match_requests_per_second,
            match_request_burst=limits.match_request_burst,
            match_bytes_per_second=limits.match_bytes_per_second,
            match_bytes_burst=limits.match_bytes_burst,
            max_concurrent_per_key=limits.max_concurrent_per_key,
            max_concurrent_rpcs=limits.max_concurrent_rpcs,
            max_upload_entries=limits.max_upload_entries,
            max_lists=limits.max_lists,
            max_query_hashes=limits.max_query_hashes,
        ),
        default_thresholds=thresholds_from_proto(message.default_thresholds),
    )
