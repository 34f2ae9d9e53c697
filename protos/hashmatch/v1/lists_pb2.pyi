import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from hashmatch.v1 import hashes_pb2 as _hashes_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AlgorithmThreshold(_message.Message):
    __slots__ = ("algorithm", "threshold")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    algorithm: _hashes_pb2.Algorithm
    threshold: int
    def __init__(self, algorithm: _Optional[_Union[_hashes_pb2.Algorithm, str]] = ..., threshold: _Optional[int] = ...) -> None: ...

class AlgorithmCount(_message.Message):
    __slots__ = ("algorithm", "count")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    algorithm: _hashes_pb2.Algorithm
    count: int
    def __init__(self, algorithm: _Optional[_Union[_hashes_pb2.Algorithm, str]] = ..., count: _Optional[int] = ...) -> None: ...

class HashList(_message.Message):
    __slots__ = ("name", "description", "thresholds", "enabled", "entry_counts", "entry_count", "create_time", "update_time", "match_orientations", "confirmed_thresholds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    MATCH_ORIENTATIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    thresholds: _containers.RepeatedCompositeFieldContainer[AlgorithmThreshold]
    enabled: bool
    entry_counts: _containers.RepeatedCompositeFieldContainer[AlgorithmCount]
    entry_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    match_orientations: bool
    confirmed_thresholds: _containers.RepeatedCompositeFieldContainer[AlgorithmThreshold]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., thresholds: _Optional[_Iterable[_Union[AlgorithmThreshold, _Mapping]]] = ..., enabled: _Optional[bool] = ..., entry_counts: _Optional[_Iterable[_Union[AlgorithmCount, _Mapping]]] = ..., entry_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., match_orientations: _Optional[bool] = ..., confirmed_thresholds: _Optional[_Iterable[_Union[AlgorithmThreshold, _Mapping]]] = ...) -> None: ...

class HashEntry(_message.Message):
    __slots__ = ("algorithm", "hash", "label", "id", "source", "line")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    algorithm: _hashes_pb2.Algorithm
    hash: str
    label: str
    id: str
    source: str
    line: int
    def __init__(self, algorithm: _Optional[_Union[_hashes_pb2.Algorithm, str]] = ..., hash: _Optional[str] = ..., label: _Optional[str] = ..., id: _Optional[str] = ..., source: _Optional[str] = ..., line: _Optional[int] = ...) -> None: ...

class CreateListRequest(_message.Message):
    __slots__ = ("name", "description", "thresholds", "enabled", "match_orientations", "confirmed_thresholds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    MATCH_ORIENTATIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    thresholds: _containers.RepeatedCompositeFieldContainer[AlgorithmThreshold]
    enabled: bool
    match_orientations: bool
    confirmed_thresholds: _containers.RepeatedCompositeFieldContainer[AlgorithmThreshold]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., thresholds: _Optional[_Iterable[_Union[AlgorithmThreshold, _Mapping]]] = ..., enabled: _Optional[bool] = ..., match_orientations: _Optional[bool] = ..., confirmed_thresholds: _Optional[_Iterable[_Union[AlgorithmThreshold, _Mapping]]] = ...) -> None: ...

class CreateListResponse(_message.Message):
    __slots__ = ("list",)
    LIST_FIELD_NUMBER: _ClassVar[int]
    list: HashList
    def __init__(self, list: _Optional[_Union[HashList, _Mapping]] = ...) -> None: ...

class GetListRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetListResponse(_message.Message):
    __slots__ = ("list",)
    LIST_FIELD_NUMBER: _ClassVar[int]
    list: HashList
    def __init__(self, list: _Optional[_Union[HashList, _Mapping]] = ...) -> None: ...

class ListListsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListListsResponse(_message.Message):
    __slots__ = ("lists",)
    LISTS_FIELD_NUMBER: _ClassVar[int]
    lists: _containers.RepeatedCompositeFieldContainer[HashList]
    def __init__(self, lists: _Optional[_Iterable[_Union[HashList, _Mapping]]] = ...) -> None: ...

class UpdateListRequest(_message.Message):
    __slots__ = ("name", "description", "thresholds", "enabled", "match_orientations", "confirmed_thresholds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    MATCH_ORIENTATIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    thresholds: _containers.RepeatedCompositeFieldContainer[AlgorithmThreshold]
    enabled: bool
    match_orientations: bool
    confirmed_thresholds: _containers.RepeatedCompositeFieldContainer[AlgorithmThreshold]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., thresholds: _Optional[_Iterable[_Union[AlgorithmThreshold, _Mapping]]] = ..., enabled: _Optional[bool] = ..., match_orientations: _Optional[bool] = ..., confirmed_thresholds: _Optional[_Iterable[_Union[AlgorithmThreshold, _Mapping]]] = ...) -> None: ...

class UpdateListResponse(_message.Message):
    __slots__ = ("list",)
    LIST_FIELD_NUMBER: _ClassVar[int]
    list: HashList
    def __init__(self, list: _Optional[_Union[HashList, _Mapping]] = ...) -> None: ...

class DeleteListRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteListResponse(_message.Message):
    __slots__ = ("entries_removed",)
    ENTRIES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    entries_removed: int
    def __init__(self, entries_removed: _Optional[int] = ...) -> None: ...

class UploadHashesRequest(_message.Message):
    __slots__ = ("list_name", "entries", "commit")
    LIST_NAME_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    list_name: str
    entries: _containers.RepeatedCompositeFieldContainer[HashEntry]
    commit: bool
    def __init__(self, list_name: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[HashEntry, _Mapping]]] = ..., commit: _Optional[bool] = ...) -> None: ...

class UploadHashesResponse(_message.Message):
    __slots__ = ("received", "added", "unchanged", "list")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    received: int
    added: int
    unchanged: int
    list: HashList
    def __init__(self, received: _Optional[int] = ..., added: _Optional[int] = ..., unchanged: _Optional[int] = ..., list: _Optional[_Union[HashList, _Mapping]] = ...) -> None: ...

class RemoveHashesRequest(_message.Message):
    __slots__ = ("list_name", "entry_ids", "hashes")
    LIST_NAME_FIELD_NUMBER: _ClassVar[int]
    ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    list_name: str
    entry_ids: _containers.RepeatedScalarFieldContainer[str]
    hashes: _containers.RepeatedCompositeFieldContainer[_hashes_pb2.Hash]
    def __init__(self, list_name: _Optional[str] = ..., entry_ids: _Optional[_Iterable[str]] = ..., hashes: _Optional[_Iterable[_Union[_hashes_pb2.Hash, _Mapping]]] = ...) -> None: ...

class RemoveHashesResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...

class ExportHashesRequest(_message.Message):
    __slots__ = ("list_name",)
    LIST_NAME_FIELD_NUMBER: _ClassVar[int]
    list_name: str
    def __init__(self, list_name: _Optional[str] = ...) -> None: ...

class ExportHashesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[HashEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[HashEntry, _Mapping]]] = ...) -> None: ...

class ImageEntry(_message.Message):
    __slots__ = ("image", "name", "label", "id", "source")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    name: str
    label: str
    id: str
    source: str
    def __init__(self, image: _Optional[bytes] = ..., name: _Optional[str] = ..., label: _Optional[str] = ..., id: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class AddImagesRequest(_message.Message):
    __slots__ = ("list_name", "images", "commit")
    LIST_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    list_name: str
    images: _containers.RepeatedCompositeFieldContainer[ImageEntry]
    commit: bool
    def __init__(self, list_name: _Optional[str] = ..., images: _Optional[_Iterable[_Union[ImageEntry, _Mapping]]] = ..., commit: _Optional[bool] = ...) -> None: ...

class AddedImage(_message.Message):
    __slots__ = ("name", "entry_id", "hashes_added", "other_entry_ids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    HASHES_ADDED_FIELD_NUMBER: _ClassVar[int]
    OTHER_ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    entry_id: str
    hashes_added: int
    other_entry_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., entry_id: _Optional[str] = ..., hashes_added: _Optional[int] = ..., other_entry_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AddImagesResponse(_message.Message):
    __slots__ = ("images", "added", "list")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[AddedImage]
    added: int
    list: HashList
    def __init__(self, images: _Optional[_Iterable[_Union[AddedImage, _Mapping]]] = ..., added: _Optional[int] = ..., list: _Optional[_Union[HashList, _Mapping]] = ...) -> None: ...
