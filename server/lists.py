"""ListsService: trust-and-safety staff create lists and load or remove hashes."""

from __future__ import annotations

from typing import Any, Iterator

import grpc

from hashmatch.hashing import Algorithm, Hash, HashFormatError, ImageError, hash_image
from hashmatch.index import HashLists, InvalidEntry, NewEntry, NewImage
from hashmatch.index.validation import entry_problem
from hashmatch.v1 import lists_pb2, lists_pb2_grpc

from . import convert
from .auth import current_actor
from .config import ServerConfig
from .errors import RequestError, classify, unary
from .limits import ensure_active

#: Most images one AddImages call may hold (each message is also bounded by the server's
#: message size limit). Only the hashes are kept while the call streams, never the images.
MAX_IMAGES_PER_CALL = 10_000


class ListsServicer(lists_pb2_grpc.ListsServiceServicer):
    def __init__(self, lists: HashLists, config: ServerConfig | None = None) -> None:
        self._lists = lists
        self._config = config or ServerConfig()

    @unary
    def CreateList(self, request: lists_pb2.CreateListRequest, context: grpc.ServicerContext):
        info = self._lists.create_list(
            request.name,
            request.description,
            convert.thresholds_from_proto(request.thresholds, "thresholds"),
            request.enabled if request.HasField("enabled") else True,
            request.match_orientations if request.HasField("match_orientations") else True,
            actor=_actor(context),
            confirmed_thresholds=convert.thresholds_from_proto(request.confirmed_thresholds, "confirmed_thresholds"),
        )
        return lists_pb2.CreateListResponse(list=convert.list_to_proto(info))

    @unary
    def GetList(self, request: lists_pb2.GetListRequest, context: grpc.ServicerContext):
        return lists_pb2.GetListResponse(list=convert.list_to_proto(self._lists.get_list(request.name)))

    @unary
    def ListLists(self, request: lists_pb2.ListListsRequest, context: grpc.ServicerContext):
        return lists_pb2.ListListsResponse(lists=[convert.list_to_proto(i) for i in self._lists.list_lists()])

    @unary
    def UpdateList(self, request: lists_pb2.UpdateListRequest, context: grpc.ServicerContext):
        info = self._lists.update_list(
            request.name,
            request.description if request.HasField("description") else None,
            convert.thresholds_from_proto(request.thresholds, "thresholds") or None,
            request.enabled if request.HasField("enabled") else None,
            request.match_orientations if request.HasField("match_orientations") else None,
            actor=_actor(context),
            confirmed_thresholds=convert.thresholds_from_proto(request.confirmed_thresholds, "confirmed_thresholds")
            or None,
        )
        return lists_pb2.UpdateListResponse(list=convert.list_to_proto(info))

    @unary
    def DeleteList(self, request: lists_pb2.DeleteListRequest, context: grpc.ServicerContext):
        return lists_pb2.DeleteListResponse(entries_removed=self._lists.delete_list(request.name, actor=_actor(context)))

    @unary
    def UploadHashes(
        self, request_iterator: Iterator[lists_pb2.UploadHashesRequest], context: grpc.ServicerContext
    ):
        # Everything is read and checked before anything is stored: all or nothing.
        stream = _CommittedStream(request_iterator, "the upload", "an upload", "entries")
        entries: list[NewEntry] = []
        first_unparsed: InvalidEntry | None = None
        position = 0
        for message in stream:
            for entry in message.entries:
                position += 1
                try:
                    entries.append(_entry(entry, position))
                except InvalidEntry as exc:
                    # Keep reading: an earlier line may hold a problem only the store can see.
                    if first_unparsed is None or exc.line < first_unparsed.line:
                        first_unparsed = exc
        list_name = stream.finish(context)
        rejected = [first_unparsed] if first_unparsed else []
        outcome, info = self._lists.add_entries(list_name, entries, rejected, actor=_actor(context))
        return lists_pb2.UploadHashesResponse(
            received=outcome.received, added=outcome.added, unchanged=outcome.unchanged, list=convert.list_to_proto(info)
        )

    @unary
    def AddImages(self, request_iterator: Iterator[lists_pb2.AddImagesRequest], context: grpc.ServicerContext):
        # Each image is hashed as it arrives and its bytes dropped: the call holds only hashes.
        # Nothing is stored before the commit marker: all or nothing, like UploadHashes.
        stream = _CommittedStream(request_iterator, "the call", "the call", "images")
        images: list[NewImage] = []
        names: list[str] = []
        for message in stream:
            for item in message.images:
                if len(images) == MAX_IMAGES_PER_CALL:
                    raise RequestError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"the call has more than {MAX_IMAGES_PER_CALL} images, the limit per call; "
                        "nothing was stored: split them into several calls",
                        "UPLOAD_TOO_LARGE",
                    )
                ensure_active(context)
                position = len(images) + 1
                images.append(self._image(item, position))
                names.append(item.name)
        list_name = stream.finish(context)
        try:
            outcomes, outcome, info = self._lists.add_images(list_name, images, actor=_actor(context))
        except InvalidEntry as exc:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{_which(exc.line, names[exc.line - 1] if 0 < exc.line <= len(names) else '')}: {exc.reason}",
                "INVALID_ENTRY",
            ) from None
        return lists_pb2.AddImagesResponse(
            images=[
                lists_pb2.AddedImage(
                    name=name or f"image {position}", entry_id=o.entry_id, hashes_added=o.hashes_added,
                    other_entry_ids=o.other_entry_ids,
                )
                for position, (name, o) in enumerate(zip(names, outcomes), start=1)
            ],
            added=outcome.added,
            list=convert.list_to_proto(info),
        )

    def _image(self, item: lists_pb2.ImageEntry, position: int) -> NewImage:
        which = _which(position, item.name)
        label = item.label if item.HasField("label") else None
        source = item.source if item.HasField("source") else None
        problem = entry_problem(item.id, label, source)
        if problem:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{which}: {problem}", "INVALID_ENTRY")
        try:
            # Every algorithm the lists know, exact (never the fast decode): what a list holds must
            # be what any later query's hashes are compared with.
            hashes = hash_image(item.image, list(Algorithm), max_pixels=self._config.max_pixels)
        except ImageError as exc:
            code, reason, message = classify(exc) or (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_IMAGE", str(exc))
            raise RequestError(code, f"{which}: {message}", reason) from None
        return NewImage(tuple(r.hash for r in hashes.results), label, item.id, source, position)

    @unary
    def RemoveHashes(self, request: lists_pb2.RemoveHashesRequest, context: grpc.ServicerContext):
        if not request.entry_ids and not request.hashes:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "give entry_ids or hashes to remove")
        hashes = [convert.hash_from_proto(h, f"hashes[{i}]") for i, h in enumerate(request.hashes)]
        return lists_pb2.RemoveHashesResponse(
            removed=self._lists.remove_entries(request.list_name, list(request.entry_ids), hashes, actor=_actor(context))
        )


def _actor(context: grpc.ServicerContext) -> str:
    """Who makes a change, for the store's audit trail: the API key's name, or the gRPC peer
    when the server runs without authentication."""
    return current_actor() or context.peer() or "unknown"


def _which(position: int, name: str) -> str:
    """How errors name the image at ``position`` (from 1): "image 3 ('cat.jpg')", or "image 3"."""
    return f"image {position} ({name[:200]!r})" if name else f"image {position}"


def _entry(message: lists_pb2.HashEntry, position: int) -> NewEntry:
    line = message.line or position
    try:
        algorithm = convert.algorithm_from_proto(message.algorithm, "algorithm")
        value = Hash.from_hex(algorithm, message.hash).value
    except (convert.BadField, HashFormatError) as exc:
        raise InvalidEntry(line, str(exc)) from None
    return NewEntry(
        algorithm,
        value,
        message.label if message.HasField("label") else None,
        message.id,
        message.source if message.HasField("source") else None,
        line,
    )


class _CommittedStream:
    """The framing UploadHashes and AddImages share: the first message names the list, later
    ones may only repeat it, the last sets ``commit``, and nothing may follow it.

    Iterating yields the messages, checked; ``finish`` then returns the list's name, or raises
    for an empty call or one that ended without the commit marker (a stream cut short can look
    like one that ended: only the marker tells them apart)."""

    def __init__(self, messages: Iterator[Any], call: str, a_call: str, contents: str) -> None:
        self._messages = messages
        self._call = call  # "the upload": how messages name the call
        self._a_call = a_call
        self._contents = contents
        self.list_name = ""
        self.committed = False

    def __iter__(self) -> Iterator[Any]:
        for number, message in enumerate(self._messages):
            if self.committed:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"message {number + 1} of {self._call} comes after the message that set commit",
                )
            self.committed = message.commit
            if message.list_name:
                if self.list_name and message.list_name != self.list_name:
                    raise RequestError(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"message {number + 1} of {self._call} names list {message.list_name!r}, "
                        f"but {self._call} is for {self.list_name!r}",
                    )
                self.list_name = message.list_name
            elif number == 0:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"list_name: the first message of {self._a_call} must name the list"
                )
            yield message

    def finish(self, context: grpc.ServicerContext) -> str:
        if not self.list_name:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"{self._call} is empty: no list_name and no {self._contents}")
        if not self.committed or not context.is_active():
            raise RequestError(
                grpc.StatusCode.ABORTED,
                f"{self._call} ended without a message that sets commit; nothing was stored",
                "UPLOAD_NOT_COMMITTED",
            )
        return self.list_name
