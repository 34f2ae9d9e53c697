"""Between the SDK's dataclasses and the hashmatch.v1 messages, shared by Client and AsyncClient.

Everything here is pure (no I/O on the channel), so the sync and async clients differ only in
how they send; the request they build and the result they return are the same.
"""

from __future__ import annotations

import os
from datetime import timezone
from typing import IO, Callable, Iterable, Iterator, Mapping, Sequence, Union, cast

from hashmatch.client.errors import error_from_status
from hashmatch.client.models import (
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
    StreamResult,
    UploadResult,
    to_algorithm,
)
from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.hashing.orientation import Orientation
from hashmatch.v1 import hashes_pb2, lists_pb2, matcher_pb2

# What an image argument may be: the encoded bytes, a path, or a binary file object.
ImageSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", IO[bytes]]
# What match_hashes accepts for one hash.
HashLike = Union[HashValue, Hash, tuple[Union[Algorithm, str], str]]

_PREFIX = "ALGORITHM_"


# -- algorithms: by name, so the proto enum and Algorithm need no table kept in sync --

def algorithm_to_proto(algorithm: Algorithm | str) -> hashes_pb2.Algorithm:
    return cast(hashes_pb2.Algorithm, hashes_pb2.Algorithm.Value(_PREFIX + to_algorithm(algorithm).name))


def algorithm_from_proto(number: int) -> Algorithm:
    try:
        return Algorithm[hashes_pb2.Algorithm.Name(number).removeprefix(_PREFIX)]
    except (KeyError, ValueError):
        raise ValueError(f"the server sent an algorithm this client does not know ({number})") from None


def _known_algorithm(number: int) -> Algorithm | None:
    try:
        return algorithm_from_proto(number)
    except ValueError:
        return None


def thresholds_from_proto(values: Iterable[lists_pb2.AlgorithmThreshold]) -> dict[Algorithm, int]:
    """Per algorithm; one a newer server knows and this client does not is left out rather than
    failing the whole call."""
    return {alg: t.threshold for t in values if (alg := _known_algorithm(t.algorithm)) is not None}


def algorithms_to_proto(algorithms: Sequence[Algorithm | str] | None) -> list[hashes_pb2.Algorithm]:
    if isinstance(algorithms, (str, Algorithm)):
        algorithms = [algorithms]  # a lone name is a common slip; mean what it says
    return [algorithm_to_proto(a) for a in algorithms or ()]


def thresholds_to_proto(thresholds: Mapping[Algorithm | str, int] | None) -> list[lists_pb2.AlgorithmThreshold]:
    return [
        lists_pb2.AlgorithmThreshold(algorithm=algorithm_to_proto(alg), threshold=int(value))
        for alg, value in (thresholds or {}).items()
    ]


def list_names(lists: Sequence[str] | None) -> list[str]:
    if isinstance(lists, str):
        return [lists]
    return list(lists or ())


# -- images --

def read_image(image: ImageSource) -> bytes:
    """The encoded image's bytes. A ``str`` is a path, never image data."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, (bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            return f.read()
    read = getattr(image, "read", None)
    if callable(read):
        data = read()
        if not isinstance(data, bytes):
            raise TypeError("image file objects must be opened in binary mode")
        return data
    raise TypeError(f"image must be bytes, a path or a binary file, not {type(image).__name__}")


# -- orientations: by name, like algorithms --

def orientation_to_proto(orientation: Orientation) -> hashes_pb2.Orientation:
    return cast(hashes_pb2.Orientation, hashes_pb2.Orientation.Value("ORIENTATION_" + orientation.name))


def orientation_from_proto(number: int) -> Orientation:
    if number == hashes_pb2.ORIENTATION_UNSPECIFIED:
        return Orientation.ORIGINAL
    try:
        return Orientation[hashes_pb2.Orientation.Name(number).removeprefix("ORIENTATION_")]
    except (KeyError, ValueError):
        raise ValueError(f"the server sent an orientation this client does not know ({number})") from None


# -- requests --

def hash_to_proto(value: HashLike) -> hashes_pb2.Hash:
    if isinstance(value, HashValue):
        message = hashes_pb2.Hash(algorithm=algorithm_to_proto(value.algorithm), value=value.value)
        if value.orientation is not Orientation.ORIGINAL:
            message.orientation = orientation_to_proto(value.orientation)
        return message
    if isinstance(value, Hash):
        return hashes_pb2.Hash(algorithm=algorithm_to_proto(value.algorithm), value=value.hex)
    if isinstance(value, tuple) and len(value) == 2:
        algorithm, text = value
        return hashes_pb2.Hash(algorithm=algorithm_to_proto(algorithm), value=str(text))
    raise TypeError(f"expected a HashValue, a Hash or an (algorithm, hex) pair, not {value!r}")


def entry_to_proto(entry: HashEntry) -> lists_pb2.HashEntry:
    message = lists_pb2.HashEntry(
        algorithm=algorithm_to_proto(entry.algorithm), hash=entry.hash, id=entry.id, line=entry.line
    )
    # None leaves a listed entry's label or source as it is; "" clears it.
    if entry.label is not None:
        message.label = entry.label
    if entry.source is not None:
        message.source = entry.source
    return message


def hash_image_request(
    image: ImageSource, algorithms: Sequence[Algorithm | str] | None, include_orientations: bool, fast: bool
) -> matcher_pb2.HashImageRequest:
    return matcher_pb2.HashImageRequest(
        image=read_image(image),
        algorithms=algorithms_to_proto(algorithms),
        include_orientations=include_orientations,
        fast=fast,
    )


def match_image_request(
    image: ImageSource,
    lists: Sequence[str] | None,
    algorithms: Sequence[Algorithm | str] | None,
    fast: bool = False,
) -> matcher_pb2.MatchImageRequest:
    return matcher_pb2.MatchImageRequest(
        image=read_image(image), list_names=list_names(lists), algorithms=algorithms_to_proto(algorithms), fast=fast
    )


def stream_request(
    request_id: str,
    image: ImageSource,
    lists: Sequence[str] | None,
    algorithms: Sequence[Algorithm | str] | None,
    fast: bool = False,
) -> matcher_pb2.MatchImageStreamRequest:
    return matcher_pb2.MatchImageStreamRequest(
        request_id=str(request_id), request=match_image_request(image, lists, algorithms, fast)
    )


class UploadBatcher:
    """Groups entries into UploadHashesRequest messages of ``batch_size`` entries.

    Shared by the sync and async uploads, which feed it from an iterable or an async
    iterable as gRPC asks for the next message, so an upload of any size holds one batch.
    ``on_progress`` gets the running total of entries handed to gRPC, batch by batch.
    """

    def __init__(self, list_name: str, batch_size: int, on_progress: Callable[[int], None] | None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.list_name = list_name
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.sent = 0
        self._batch: list[lists_pb2.HashEntry] = []
        self._first = True

    def add(self, entry: HashEntry) -> lists_pb2.UploadHashesRequest | None:
        """The next message when this entry fills a batch, else None."""
        if not isinstance(entry, HashEntry):
            raise TypeError(f"upload_hashes takes HashEntry items, not {type(entry).__name__}")
        self._batch.append(entry_to_proto(entry))
        return self._flush() if len(self._batch) >= self.batch_size else None

    def finish(self) -> lists_pb2.UploadHashesRequest:
        """The last message: the partial batch, marked commit. The server stores nothing
        until it sees this, so an upload whose entries raise part way stores nothing."""
        return self._flush(commit=True)

    def _flush(self, commit: bool = False) -> lists_pb2.UploadHashesRequest:
        # The list name is required in the first message only.
        message = lists_pb2.UploadHashesRequest(
            list_name=self.list_name if self._first else "", entries=self._batch, commit=commit
        )
        progressed = bool(self._batch)
        self.sent += len(self._batch)
        self._first, self._batch = False, []
        if self.on_progress is not None and progressed:
            self.on_progress(self.sent)
        return message


def upload_requests(
    list_name: str, entries: Iterable[HashEntry], batch_size: int, on_progress: Callable[[int], None] | None
) -> Iterator[lists_pb2.UploadHashesRequest]:
    batcher = UploadBatcher(list_name, batch_size, on_progress)
    for entry in entries:
        if (message := batcher.add(entry)) is not None:
            yield message
    yield batcher.finish()


# -- responses --

def hash_value(message: hashes_pb2.Hash) -> HashValue:
    return HashValue(
        algorithm=algorithm_from_proto(message.algorithm),
        value=message.value,
        quality=message.quality if message.HasField("quality") else None,
        orientation=orientation_from_proto(message.orientation),
    )


def image_info(message: hashes_pb2.ImageInfo) -> ImageInfo:
    return ImageInfo(
        width=message.width, height=message.height, format=message.format, frame_count=message.frame_count
    )


def match(message: hashes_pb2.Match) -> Match:
    return Match(
        list_name=message.list_name,
        entry_id=message.entry_id,
        label=message.label,
        algorithm=algorithm_from_proto(message.algorithm),
        distance=message.distance,
        threshold=message.threshold,
        query_index=message.query_index,
        orientation=orientation_from_proto(message.orientation),
        region=_REGIONS.get(message.region, "whole"),
        confirmed_by=_known_algorithm(message.confirmed_by) if message.confirmed_by else None,
    )


# Proto enum number -> the SDK's region name ("IMAGE_REGION_TRIMMED" -> "trimmed").
_REGIONS = {
    number: name.removeprefix("IMAGE_REGION_").lower()
    for name, number in hashes_pb2.ImageRegion.items()
    if number != hashes_pb2.IMAGE_REGION_UNSPECIFIED
}


def matches(messages: Iterable[hashes_pb2.Match]) -> tuple[Match, ...]:
    return tuple(match(m) for m in messages)


def hash_image_result(message: matcher_pb2.HashImageResponse) -> HashImageResult:
    return HashImageResult(hashes=tuple(hash_value(h) for h in message.hashes), image=image_info(message.image))


def match_image_result(message: matcher_pb2.MatchImageResponse) -> MatchImageResult:
    return MatchImageResult(
        hashes=tuple(hash_value(h) for h in message.hashes),
        matches=matches(message.matches),
        image=image_info(message.image),
    )


def stream_result(message: matcher_pb2.MatchImageStreamResponse) -> StreamResult:
    if message.WhichOneof("result") == "error":
        return StreamResult(message.request_id, error=error_from_status(message.error.code, message.error.message))
    return StreamResult(message.request_id, result=match_image_result(message.response))


def hash_list(message: lists_pb2.HashList) -> HashList:
    # Thresholds and counts are per algorithm; an algorithm a newer server knows and this
    # client does not is left out rather than failing the whole call.
    counts = {alg: c.count for c in message.entry_counts if (alg := _known_algorithm(c.algorithm)) is not None}
    return HashList(
        name=message.name,
        description=message.description,
        thresholds=thresholds_from_proto(message.thresholds),
        enabled=message.enabled,
        entry_counts=counts,
        entry_count=message.entry_count,
        created=message.create_time.ToDatetime(tzinfo=timezone.utc),
        updated=message.update_time.ToDatetime(tzinfo=timezone.utc),
        match_orientations=message.match_orientations,
        confirmed_thresholds=thresholds_from_proto(message.confirmed_thresholds),
    )


def upload_result(message: lists_pb2.UploadHashesResponse) -> UploadResult:
    return UploadResult(
        received=message.received, added=message.added, unchanged=message.unchanged, list=hash_list(message.list)
    )


def image_entry(item: ImageEntry | ImageSource) -> lists_pb2.ImageEntry:
    """The message for one image of add_images; a path names the image unless a name is given.
    The file is read here, as gRPC asks for the message, so one image at a time is in memory."""
    if not isinstance(item, ImageEntry):
        item = ImageEntry(item)
    name = item.name or (os.fspath(item.image) if isinstance(item.image, (str, os.PathLike)) else "")
    message = lists_pb2.ImageEntry(image=read_image(item.image), name=str(name), id=item.id)
    if item.label is not None:
        message.label = item.label
    if item.source is not None:
        message.source = item.source
    return message


class ImageMessages:
    """The AddImages messages of one call, sync and async alike: one image each (each within the
    server's message size limit), the list named in the first, then the commit."""

    def __init__(self, list_name: str, on_progress: Callable[[int], None] | None) -> None:
        self._list_name = list_name
        self._on_progress = on_progress
        self.sent = 0

    def _named(self) -> str:
        return self._list_name if self.sent == 0 else ""

    def add(self, item: ImageEntry | ImageSource) -> lists_pb2.AddImagesRequest:
        message = lists_pb2.AddImagesRequest(list_name=self._named(), images=[image_entry(item)])
        self.sent += 1
        if self._on_progress is not None:
            self._on_progress(self.sent)
        return message

    def finish(self) -> lists_pb2.AddImagesRequest:
        return lists_pb2.AddImagesRequest(list_name=self._named(), commit=True)


def add_images_requests(
    list_name: str, images: Iterable[ImageEntry | ImageSource], on_progress: Callable[[int], None] | None
) -> Iterator[lists_pb2.AddImagesRequest]:
    messages = ImageMessages(list_name, on_progress)
    for item in images:
        yield messages.add(item)
    yield messages.finish()


def add_images_result(message: lists_pb2.AddImagesResponse) -> AddImagesResult:
    return AddImagesResult(
        images=tuple(
            AddedImage(i.name, i.entry_id, i.hashes_added, tuple(i.other_entry_ids)) for i in message.images
        ),
        added=message.added,
        list=hash_list(message.list),
    )


def remove_hashes_request(
    list_name: str, entry_ids: Iterable[str], hashes: Iterable[HashLike]
) -> lists_pb2.RemoveHashesRequest:
    if isinstance(entry_ids, str):
        entry_ids = [entry_ids]
    return lists_pb2.RemoveHashesRequest(
        list_name=list_name, entry_ids=list(entry_ids), hashes=[hash_to_proto(h) for h in hashes]
    )


def update_list_request(
    name: str,
    description: str | None,
    thresholds: Mapping[Algorithm | str, int] | None,
    enabled: bool | None,
    match_orientations: bool | None = None,
    confirmed_thresholds: Mapping[Algorithm | str, int] | None = None,
) -> lists_pb2.UpdateListRequest:
    request = lists_pb2.UpdateListRequest(
        name=name,
        thresholds=thresholds_to_proto(thresholds),
        confirmed_thresholds=thresholds_to_proto(confirmed_thresholds),
    )
    # Optional fields: unset means "leave as it is" on the server.
    if description is not None:
        request.description = description
    if enabled is not None:
        request.enabled = enabled
    if match_orientations is not None:
        request.match_orientations = match_orientations
    return request


def create_list_request(
    name: str,
    description: str,
    thresholds: Mapping[Algorithm | str, int] | None,
    enabled: bool,
    match_orientations: bool = True,
    confirmed_thresholds: Mapping[Algorithm | str, int] | None = None,
) -> lists_pb2.CreateListRequest:
    return lists_pb2.CreateListRequest(
        name=name,
        description=description,
        thresholds=thresholds_to_proto(thresholds),
        enabled=enabled,
        match_orientations=match_orientations,
        confirmed_thresholds=thresholds_to_proto(confirmed_thresholds),
    )
