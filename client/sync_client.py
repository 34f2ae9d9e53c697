"""The blocking SDK client: ``with Client("host:port") as c: c.match_image(path)``."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import grpc

from hashmatch.client import convert
from hashmatch.client.config import DEFAULT_ADDRESS, DEFAULT_TIMEOUT, USE_CLIENT_DEFAULT, ClientConfig, Timeout
from hashmatch.client.convert import HashLike, ImageSource
from hashmatch.client.errors import from_rpc_error
from hashmatch.client.models import (
    HashEntry,
    HashImageResult,
    HashList,
    Match,
    MatchImageResult,
    StreamResult,
    UploadResult,
)
from hashmatch.hashing.algorithms import Algorithm
from hashmatch.v1 import lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

T = TypeVar("T")


class _CapturingIterator:
    """Wraps a request iterator so an exception it raises reaches the caller.

    gRPC consumes request iterators on its own thread and, when one raises, only cancels
    the call ("Exception iterating requests!"); the original error would be lost.
    """

    def __init__(self, iterator: Iterator[Any]) -> None:
        self._iterator = iterator
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def __iter__(self) -> "_CapturingIterator":
        return self

    def __next__(self) -> Any:
        with self._lock:
            try:
                return next(self._iterator)
            except StopIteration:
                raise
            except BaseException as exc:
                self.error = exc
                raise


class Client(ClientConfig):
    """A blocking hashmatch client over one gRPC channel; use it as a context manager.

    ``timeout`` is the default deadline, in seconds, of every call (None: none); each
    method's ``timeout=`` overrides it for that call (None there means no deadline).
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        super().__init__(address, timeout=timeout, options=options)
        self._channel = grpc.insecure_channel(address, options=self.channel_options())
        self._matcher = matcher_pb2_grpc.MatcherServiceStub(self._channel)
        self._lists = lists_pb2_grpc.ListsServiceStub(self._channel)

    # -- lifecycle --

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: Callable[..., T], request: Any, timeout: Timeout) -> T:
        try:
            return method(request, timeout=self.deadline(timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # -- MatcherService --

    def hash_image(
        self,
        image: ImageSource,
        algorithms: Sequence[Algorithm | str] | None = None,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> HashImageResult:
        """Hash an image (bytes, path or binary file) without matching it."""
        request = matcher_pb2.HashImageRequest(
            image=convert.read_image(image), algorithms=convert.algorithms_to_proto(algorithms)
        )
        return convert.hash_image_result(self._call(self._matcher.HashImage, request, timeout))

    def match_image(
        self,
        image: ImageSource,
        lists: Sequence[str] | None = None,
        algorithms: Sequence[Algorithm | str] | None = None,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> MatchImageResult:
        """Hash an image and match it against ``lists`` (default: every enabled list)."""
        request = convert.match_image_request(image, lists, algorithms)
        return convert.match_image_result(self._call(self._matcher.MatchImage, request, timeout))

    def match_hashes(
        self,
        hashes: Sequence[HashLike],
        lists: Sequence[str] | None = None,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> tuple[Match, ...]:
        """Match hashes computed elsewhere; ``Match.query_index`` indexes ``hashes``."""
        request = matcher_pb2.MatchHashesRequest(
            hashes=[convert.hash_to_proto(h) for h in hashes], list_names=convert.list_names(lists)
        )
        return convert.matches(self._call(self._matcher.MatchHashes, request, timeout).matches)

    def match_image_stream(
        self,
        images: Iterable[tuple[str, ImageSource]],
        lists: Sequence[str] | None = None,
        algorithms: Sequence[Algorithm | str] | None = None,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Iterator[StreamResult]:
        """Match many images over one stream; yields one StreamResult per (request_id, image).

        Results come in the order the server finishes them, each carrying its request id.
        A bad image gives that item an ``error``; a failure of the stream itself raises.
        ``timeout`` bounds the whole stream. Images are read lazily, as the stream sends.
        """
        requests = _CapturingIterator(
            convert.stream_request(request_id, image, lists, algorithms) for request_id, image in images
        )
        call = self._matcher.MatchImageStream(requests, timeout=self.deadline(timeout))
        try:
            for response in call:
                yield convert.stream_result(response)
        except grpc.RpcError as error:
            if requests.error is not None:
                raise requests.error from None
            raise from_rpc_error(error) from None
        finally:
            call.cancel()  # no-op when finished; ends the stream if the caller stopped early

    # -- ListsService --

    def create_list(
        self,
        name: str,
        *,
        description: str = "",
        thresholds: Mapping[Algorithm | str, int] | None = None,
        enabled: bool = True,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> HashList:
        request = convert.create_list_request(name, description, thresholds, enabled)
        return convert.hash_list(self._call(self._lists.CreateList, request, timeout).list)

    def get_list(self, name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> HashList:
        request = lists_pb2.GetListRequest(name=name)
        return convert.hash_list(self._call(self._lists.GetList, request, timeout).list)

    def list_lists(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> tuple[HashList, ...]:
        response = self._call(self._lists.ListLists, lists_pb2.ListListsRequest(), timeout)
        return tuple(convert.hash_list(m) for m in response.lists)

    def update_list(
        self,
        name: str,
        *,
        description: str | None = None,
        thresholds: Mapping[Algorithm | str, int] | None = None,
        enabled: bool | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> HashList:
        """Change only what is given; algorithms not in ``thresholds`` keep theirs."""
        request = convert.update_list_request(name, description, thresholds, enabled)
        return convert.hash_list(self._call(self._lists.UpdateList, request, timeout).list)

    def delete_list(self, name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> int:
        """Delete a list and its entries; returns how many entries were removed."""
        request = lists_pb2.DeleteListRequest(name=name)
        return self._call(self._lists.DeleteList, request, timeout).entries_removed

    def upload_hashes(
        self,
        list_name: str,
        entries: Iterable[HashEntry],
        *,
        batch_size: int = 1000,
        on_progress: Callable[[int], None] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> UploadResult:
        """Load entries into a list, all or nothing, streamed in batches of ``batch_size``.

        ``entries`` is read lazily, so a generator over a large file keeps one batch in
        memory. ``on_progress(sent)`` is called with the running total of entries sent.
        An exception raised by ``entries`` aborts the upload (nothing is stored) and is
        re-raised here as it was.
        """
        convert.UploadBatcher(list_name, batch_size, None)  # validates batch_size up front
        requests = _CapturingIterator(convert.upload_requests(list_name, entries, batch_size, on_progress))
        try:
            response = self._lists.UploadHashes(requests, timeout=self.deadline(timeout))
        except grpc.RpcError as error:
            if requests.error is not None:
                raise requests.error from None
            raise from_rpc_error(error) from None
        return convert.upload_result(response)

    def remove_hashes(
        self,
        list_name: str,
        *,
        entry_ids: Iterable[str] = (),
        hashes: Iterable[HashLike] = (),
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> int:
        """Remove entries by id and/or by hash, all or nothing; returns how many were removed."""
        request = convert.remove_hashes_request(list_name, entry_ids, hashes)
        return self._call(self._lists.RemoveHashes, request, timeout).removed
