"""The hashmatch SDK and staff CLI: a thin client needing only grpcio and protobuf.

    from hashmatch.client import Client

    with Client("127.0.0.1:50051") as c:
        result = c.match_image("upload.jpg")
        if result.matched:
            ...

:class:`AsyncClient` has the same methods as coroutines. Every failed call raises a
:class:`HashmatchError` subclass keeping the gRPC status code and details.
"""

from hashmatch.client.async_client import AsyncClient
from hashmatch.client.config import USE_CLIENT_DEFAULT, ClientConfig
from hashmatch.client.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    HashmatchError,
    ImageTooLarge,
    Internal,
    InvalidArgument,
    InvalidHash,
    InvalidImage,
    KeyExists,
    KeyNotFound,
    ListExists,
    ListNotFound,
    NotFound,
    PermissionDenied,
    RateLimited,
    ResourceExhausted,
    TooManyConcurrent,
    Unauthenticated,
    Unavailable,
)
from hashmatch.client.keys import ApiKey, CreatedKey
from hashmatch.client.models import (
    AbuseLimits,
    AddedImage,
    AddImagesResult,
    HashEntry,
    HashImageResult,
    HashList,
    HashValue,
    ImageEntry,
    ImageInfo,
    Match,
    MatchImageResult,
    ServerSettings,
    StreamResult,
    UploadResult,
)
from hashmatch.client.sync_client import Client
from hashmatch.hashing.algorithms import Algorithm

__all__ = [
    "AbuseLimits",
    "AddImagesResult",
    "AddedImage",
    "Algorithm",
    "AlreadyExists",
    "ApiKey",
    "AsyncClient",
    "Client",
    "ClientConfig",
    "CreatedKey",
    "DeadlineExceeded",
    "FailedPrecondition",
    "HashEntry",
    "HashImageResult",
    "HashList",
    "HashValue",
    "HashmatchError",
    "ImageEntry",
    "ImageInfo",
    "ImageTooLarge",
    "Internal",
    "InvalidArgument",
    "InvalidHash",
    "InvalidImage",
    "KeyExists",
    "KeyNotFound",
    "ListExists",
    "ListNotFound",
    "Match",
    "MatchImageResult",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "ResourceExhausted",
    "ServerSettings",
    "StreamResult",
    "TooManyConcurrent",
    "USE_CLIENT_DEFAULT",
    "Unauthenticated",
    "Unavailable",
    "UploadResult",
]
