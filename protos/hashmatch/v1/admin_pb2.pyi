import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from hashmatch.v1 import lists_pb2 as _lists_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StoreKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORE_KIND_UNSPECIFIED: _ClassVar[StoreKind]
    STORE_KIND_SQLITE: _ClassVar[StoreKind]
    STORE_KIND_POSTGRESQL: _ClassVar[StoreKind]
STORE_KIND_UNSPECIFIED: StoreKind
STORE_KIND_SQLITE: StoreKind
STORE_KIND_POSTGRESQL: StoreKind

class GetSettingsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: ServerSettings
    def __init__(self, settings: _Optional[_Union[ServerSettings, _Mapping]] = ...) -> None: ...

class TlsSettings(_message.Message):
    __slots__ = ("enabled", "client_certificate_required", "client_certificate_role_count")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CERTIFICATE_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CERTIFICATE_ROLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    client_certificate_required: bool
    client_certificate_role_count: int
    def __init__(self, enabled: _Optional[bool] = ..., client_certificate_required: _Optional[bool] = ..., client_certificate_role_count: _Optional[int] = ...) -> None: ...

class AbuseLimits(_message.Message):
    __slots__ = ("match_requests_per_second", "match_request_burst", "match_bytes_per_second", "match_bytes_burst", "max_concurrent_per_key", "max_concurrent_rpcs", "max_upload_entries", "max_lists", "max_query_hashes")
    MATCH_REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MATCH_REQUEST_BURST_FIELD_NUMBER: _ClassVar[int]
    MATCH_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MATCH_BYTES_BURST_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_PER_KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_RPCS_FIELD_NUMBER: _ClassVar[int]
    MAX_UPLOAD_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_LISTS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUERY_HASHES_FIELD_NUMBER: _ClassVar[int]
    match_requests_per_second: float
    match_request_burst: float
    match_bytes_per_second: float
    match_bytes_burst: float
    max_concurrent_per_key: int
    max_concurrent_rpcs: int
    max_upload_entries: int
    max_lists: int
    max_query_hashes: int
    def __init__(self, match_requests_per_second: _Optional[float] = ..., match_request_burst: _Optional[float] = ..., match_bytes_per_second: _Optional[float] = ..., match_bytes_burst: _Optional[float] = ..., max_concurrent_per_key: _Optional[int] = ..., max_concurrent_rpcs: _Optional[int] = ..., max_upload_entries: _Optional[int] = ..., max_lists: _Optional[int] = ..., max_query_hashes: _Optional[int] = ...) -> None: ...

class ServerSettings(_message.Message):
    __slots__ = ("version", "store_kind", "auth_enabled", "tls", "reflection_enabled", "workers", "hashing_slots", "threads", "max_message_bytes", "max_pixels", "fast", "match_regions", "log_hashes", "selftest_enabled", "selftest_interval", "grace_period", "follow_interval", "max_staleness", "metrics_enabled", "health_port_enabled", "limits", "default_thresholds")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STORE_KIND_FIELD_NUMBER: _ClassVar[int]
    AUTH_ENABLED_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_ENABLED_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    HASHING_SLOTS_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PIXELS_FIELD_NUMBER: _ClassVar[int]
    FAST_FIELD_NUMBER: _ClassVar[int]
    MATCH_REGIONS_FIELD_NUMBER: _ClassVar[int]
    LOG_HASHES_FIELD_NUMBER: _ClassVar[int]
    SELFTEST_ENABLED_FIELD_NUMBER: _ClassVar[int]
    SELFTEST_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    MAX_STALENESS_FIELD_NUMBER: _ClassVar[int]
    METRICS_ENABLED_FIELD_NUMBER: _ClassVar[int]
    HEALTH_PORT_ENABLED_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    version: str
    store_kind: StoreKind
    auth_enabled: bool
    tls: TlsSettings
    reflection_enabled: bool
    workers: int
    hashing_slots: int
    threads: int
    max_message_bytes: int
    max_pixels: int
    fast: bool
    match_regions: bool
    log_hashes: bool
    selftest_enabled: bool
    selftest_interval: _duration_pb2.Duration
    grace_period: _duration_pb2.Duration
    follow_interval: _duration_pb2.Duration
    max_staleness: _duration_pb2.Duration
    metrics_enabled: bool
    health_port_enabled: bool
    limits: AbuseLimits
    default_thresholds: _containers.RepeatedCompositeFieldContainer[_lists_pb2.AlgorithmThreshold]
    def __init__(self, version: _Optional[str] = ..., store_kind: _Optional[_Union[StoreKind, str]] = ..., auth_enabled: _Optional[bool] = ..., tls: _Optional[_Union[TlsSettings, _Mapping]] = ..., reflection_enabled: _Optional[bool] = ..., workers: _Optional[int] = ..., hashing_slots: _Optional[int] = ..., threads: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_pixels: _Optional[int] = ..., fast: _Optional[bool] = ..., match_regions: _Optional[bool] = ..., log_hashes: _Optional[bool] = ..., selftest_enabled: _Optional[bool] = ..., selftest_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., follow_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_staleness: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., metrics_enabled: _Optional[bool] = ..., health_port_enabled: _Optional[bool] = ..., limits: _Optional[_Union[AbuseLimits, _Mapping]] = ..., default_thresholds: _Optional[_Iterable[_Union[_lists_pb2.AlgorithmThreshold, _Mapping]]] = ...) -> None: ...
