from hashmatch.v1 import hashes_pb2 as _hashes_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HashImageRequest(_message.Message):
    __slots__ = ("image", "algorithms", "include_orientations", "fast")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHMS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ORIENTATIONS_FIELD_NUMBER: _ClassVar[int]
    FAST_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    algorithms: _containers.RepeatedScalarFieldContainer[_hashes_pb2.Algorithm]
    include_orientations: bool
    fast: bool
    def __init__(self, image: _Optional[bytes] = ..., algorithms: _Optional[_Iterable[_Union[_hashes_pb2.Algorithm, str]]] = ..., include_orientations: _Optional[bool] = ..., fast: _Optional[bool] = ...) -> None: ...

class HashImageResponse(_message.Message):
    __slots__ = ("hashes", "image")
    HASHES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedCompositeFieldContainer[_hashes_pb2.Hash]
    image: _hashes_pb2.ImageInfo
    def __init__(self, hashes: _Optional[_Iterable[_Union[_hashes_pb2.Hash, _Mapping]]] = ..., image: _Optional[_Union[_hashes_pb2.ImageInfo, _Mapping]] = ...) -> None: ...

class MatchImageRequest(_message.Message):
    __slots__ = ("image", "list_names", "algorithms", "fast")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LIST_NAMES_FIELD_NUMBER: _ClassVar[int]
    ALGORITHMS_FIELD_NUMBER: _ClassVar[int]
    FAST_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    list_names: _containers.RepeatedScalarFieldContainer[str]
    algorithms: _containers.RepeatedScalarFieldContainer[_hashes_pb2.Algorithm]
    fast: bool
    def __init__(self, image: _Optional[bytes] = ..., list_names: _Optional[_Iterable[str]] = ..., algorithms: _Optional[_Iterable[_Union[_hashes_pb2.Algorithm, str]]] = ..., fast: _Optional[bool] = ...) -> None: ...

class MatchImageResponse(_message.Message):
    __slots__ = ("hashes", "matches", "image", "index_generation")
    HASHES_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    INDEX_GENERATION_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedCompositeFieldContainer[_hashes_pb2.Hash]
    matches: _containers.RepeatedCompositeFieldContainer[_hashes_pb2.Match]
    image: _hashes_pb2.ImageInfo
    index_generation: int
    def __init__(self, hashes: _Optional[_Iterable[_Union[_hashes_pb2.Hash, _Mapping]]] = ..., matches: _Optional[_Iterable[_Union[_hashes_pb2.Match, _Mapping]]] = ..., image: _Optional[_Union[_hashes_pb2.ImageInfo, _Mapping]] = ..., index_generation: _Optional[int] = ...) -> None: ...

class MatchHashesRequest(_message.Message):
    __slots__ = ("hashes", "list_names")
    HASHES_FIELD_NUMBER: _ClassVar[int]
    LIST_NAMES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedCompositeFieldContainer[_hashes_pb2.Hash]
    list_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hashes: _Optional[_Iterable[_Union[_hashes_pb2.Hash, _Mapping]]] = ..., list_names: _Optional[_Iterable[str]] = ...) -> None: ...

class MatchHashesResponse(_message.Message):
    __slots__ = ("matches", "index_generation")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    INDEX_GENERATION_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[_hashes_pb2.Match]
    index_generation: int
    def __init__(self, matches: _Optional[_Iterable[_Union[_hashes_pb2.Match, _Mapping]]] = ..., index_generation: _Optional[int] = ...) -> None: ...

class MatchImageStreamRequest(_message.Message):
    __slots__ = ("request_id", "request")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    request: MatchImageRequest
    def __init__(self, request_id: _Optional[str] = ..., request: _Optional[_Union[MatchImageRequest, _Mapping]] = ...) -> None: ...

class MatchImageStreamResponse(_message.Message):
    __slots__ = ("request_id", "response", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    response: MatchImageResponse
    error: _hashes_pb2.Error
    def __init__(self, request_id: _Optional[str] = ..., response: _Optional[_Union[MatchImageResponse, _Mapping]] = ..., error: _Optional[_Union[_hashes_pb2.Error, _Mapping]] = ...) -> None: ...
