from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Algorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALGORITHM_UNSPECIFIED: _ClassVar[Algorithm]
    ALGORITHM_PDQ: _ClassVar[Algorithm]
    ALGORITHM_PHASH: _ClassVar[Algorithm]
    ALGORITHM_DHASH: _ClassVar[Algorithm]
    ALGORITHM_AHASH: _ClassVar[Algorithm]
    ALGORITHM_WHASH: _ClassVar[Algorithm]
    ALGORITHM_MD5: _ClassVar[Algorithm]
    ALGORITHM_SHA256: _ClassVar[Algorithm]
    ALGORITHM_SHA1: _ClassVar[Algorithm]

class Orientation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORIENTATION_UNSPECIFIED: _ClassVar[Orientation]
    ORIENTATION_ORIGINAL: _ClassVar[Orientation]
    ORIENTATION_ROTATE_90: _ClassVar[Orientation]
    ORIENTATION_ROTATE_180: _ClassVar[Orientation]
    ORIENTATION_ROTATE_270: _ClassVar[Orientation]
    ORIENTATION_FLIP_HORIZONTAL: _ClassVar[Orientation]
    ORIENTATION_FLIP_VERTICAL: _ClassVar[Orientation]
    ORIENTATION_TRANSPOSE: _ClassVar[Orientation]
    ORIENTATION_TRANSVERSE: _ClassVar[Orientation]

class ImageRegion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_REGION_UNSPECIFIED: _ClassVar[ImageRegion]
    IMAGE_REGION_WHOLE: _ClassVar[ImageRegion]
    IMAGE_REGION_TRIMMED: _ClassVar[ImageRegion]
    IMAGE_REGION_EMBEDDED: _ClassVar[ImageRegion]
ALGORITHM_UNSPECIFIED: Algorithm
ALGORITHM_PDQ: Algorithm
ALGORITHM_PHASH: Algorithm
ALGORITHM_DHASH: Algorithm
ALGORITHM_AHASH: Algorithm
ALGORITHM_WHASH: Algorithm
ALGORITHM_MD5: Algorithm
ALGORITHM_SHA256: Algorithm
ALGORITHM_SHA1: Algorithm
ORIENTATION_UNSPECIFIED: Orientation
ORIENTATION_ORIGINAL: Orientation
ORIENTATION_ROTATE_90: Orientation
ORIENTATION_ROTATE_180: Orientation
ORIENTATION_ROTATE_270: Orientation
ORIENTATION_FLIP_HORIZONTAL: Orientation
ORIENTATION_FLIP_VERTICAL: Orientation
ORIENTATION_TRANSPOSE: Orientation
ORIENTATION_TRANSVERSE: Orientation
IMAGE_REGION_UNSPECIFIED: ImageRegion
IMAGE_REGION_WHOLE: ImageRegion
IMAGE_REGION_TRIMMED: ImageRegion
IMAGE_REGION_EMBEDDED: ImageRegion

class Hash(_message.Message):
    __slots__ = ("algorithm", "value", "quality", "orientation")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    algorithm: Algorithm
    value: str
    quality: int
    orientation: Orientation
    def __init__(self, algorithm: _Optional[_Union[Algorithm, str]] = ..., value: _Optional[str] = ..., quality: _Optional[int] = ..., orientation: _Optional[_Union[Orientation, str]] = ...) -> None: ...

class ImageInfo(_message.Message):
    __slots__ = ("width", "height", "format", "frame_count")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    format: str
    frame_count: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[str] = ..., frame_count: _Optional[int] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("list_name", "entry_id", "label", "algorithm", "distance", "threshold", "query_index", "orientation", "region", "confirmed_by")
    LIST_NAME_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    QUERY_INDEX_FIELD_NUMBER: _ClassVar[int]
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_BY_FIELD_NUMBER: _ClassVar[int]
    list_name: str
    entry_id: str
    label: str
    algorithm: Algorithm
    distance: int
    threshold: int
    query_index: int
    orientation: Orientation
    region: ImageRegion
    confirmed_by: Algorithm
    def __init__(self, list_name: _Optional[str] = ..., entry_id: _Optional[str] = ..., label: _Optional[str] = ..., algorithm: _Optional[_Union[Algorithm, str]] = ..., distance: _Optional[int] = ..., threshold: _Optional[int] = ..., query_index: _Optional[int] = ..., orientation: _Optional[_Union[Orientation, str]] = ..., region: _Optional[_Union[ImageRegion, str]] = ..., confirmed_by: _Optional[_Union[Algorithm, str]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
