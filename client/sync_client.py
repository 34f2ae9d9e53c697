"""The blocking SDK client: ``with Client("host:port") as c: c.match_image(path)``."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import grpc

from hashmatch.client import convert, keys, settings
from hashmatch.client.config import DEFAULT_ADDRESS, DEFAULT_TIMEOUT, USE_CLIENT_DEFAULT, ClientConfig, Timeout
from hashmatch.client.convert import HashLike, ImageSource
from hashmatch.client.credentials import PemSource
from hashmatch.client.errors import from_rpc_error
from hashmatch.client.models import (
    AddImagesResult,
    HashEntry,
    HashImageResult,
    HashList,
    ImageEntry,
    Match,
    MatchImageResult,
    ServerSettings,
    StreamResult,
    UploadResult,
)
from hashmatch.hashing.algorithms import Algorithm
from hashmatch.v1 import admin_pb2, admin_pb2_grpc, keys_pb2, keys_pb2_grpc, lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

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
        api_key: str | None = None,
        tls: bool | None = None,
        tls_ca: PemSource | None = None,
        tls_cert: PemSource | None = None,
        tls_key: PemSource | None = None,
        rate_limit_retries: int = 3,
    ) -> None:
        super().__init__(
            address, timeout=timeout, options=options, api_key=api_key, tls=tls, tls_ca=tls_ca,
            tls_cert=tls_cert, tls_key=tls_key, rate_limit_retries=rate_limit_retries,
        )
        credentials = self.channel_credentials()
        self._channel = (
            grpc.secure_channel(address, credentials, options=self.channel_options())
            if credentials is not None
            else grpc.insecure_channel(address, options=self.channel_options())
        )
        self._matcher = matcher_pb2_grpc.MatcherServiceStub(self._channel)
        self._lists = lists_pb2_grpc.ListsServiceStub(self._channel)
        self._keys = keys_pb2_grpc.KeysServiceStub(self._channel)
        self._admin = admin_pb2_grpc.AdminServiceStub(self._channel)

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
        deadline_at = self.deadline_at(self.deadline(timeout))
        attempt = 0
        while True:
            try:
                return method(request, timeout=self.remaining(deadline_at), metadata=self.call_metadata())
            except grpc.RpcError as error:
                delay = self.rate_limit_delay(error, attempt, deadline_at)
                if delay is None:
                    raise from_rpc_error(error) from None
            time.sleep(delay)
            attempt += 1

    # -- MatcherService --

    def hash_image(
        self,
        image: ImageSource,
        algorithms: Sequence[Algorithm | str] | None = None,
        *,
        include_orientations: bool = False,
        fast: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> HashImageResult:
        """Hash an image (bytes, path or binary file) without matching it.

        ``include_orientations``: also the PDQ and pHash hashes of the picture's 7 other
        rotations and mirror images (``HashValue.orientation`` says which).
        ``fast``: decode JPEGs at reduced scale (several times faster, a few bits of drift).
        """
        request = convert.hash_image_request(image, algorithms, include_orientations, fast)
        return convert.hash_image_result(self._call(self._matcher.HashImage, request, timeout))

    def match_image(
        self,
        image: ImageSource,
        lists: Sequence[str] | None = None,
        algorithms: Sequence[Algorithm | str] | None = None,
        *,
        fast: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> MatchImageResult:
        """Hash an image and match it against ``lists`` (default: every enabled list)."""
        request = convert.match_image_request(image, lists, algorithms, fast)
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
        fast: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Iterator[StreamResult]:
        """Match many images over one stream; yields one StreamResult per (request_id, image).

        Results come in the order the server finishes them, each carrying its request id.
        A bad image gives that item an ``error``; a failure of the stream itself raises.
        ``timeout`` bounds the whole stream. Images are read lazily, as the stream sends.
        """
        requests = _CapturingIterator(
            convert.stream_request(request_id, image, lists, algorithms, fast) for request_id, image in images
        )
        call = self._matcher.MatchImageStream(
            requests, timeout=self.deadline(timeout), metadata=self.call_metadata()
        )
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
        match_orientations: bool = True,
        confirmed_thresholds: Mapping[Algorithm | str, int] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> HashList:
        """``confirmed_thresholds``: the confirmation policy (see HashList.confirmed_thresholds)."""
        request = convert.create_list_request(
            name, description, thresholds, enabled, match_orientations, confirmed_thresholds
        )
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
        match_orientations: bool | None = None,
        confirmed_thresholds: Mapping[Algorithm | str, int] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> HashList:
        """Change only what is given; algorithms not in ``thresholds`` keep theirs."""
        # A confirmed threshold of 0 turns that algorithm's confirmation off.
        request = convert.update_list_request(
            name, description, thresholds, enabled, match_orientations, confirmed_thresholds
        )
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
            response = self._lists.UploadHashes(
                requests, timeout=self.deadline(timeout), metadata=self.call_metadata()
            )
        except grpc.RpcError as error:
            if requests.error is not None:
                raise requests.error from None
            raise from_rpc_error(error) from None
        return convert.upload_result(response)

    def add_images(
        self,
        list_name: str,
        images: Iterable[ImageEntry | ImageSource],
        *,
        on_progress: Callable[[int], None] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> AddImagesResult:
        """Add entries from images (curate role): the server hashes each with every algorithm and
        lists all its hashes under one entry id; the image is not stored. All or nothing; adding
        an image again adds nothing and keeps its id. ``images`` are read lazily, one per message;
        ``on_progress(sent)`` gets the running count of images sent."""
        requests = _CapturingIterator(convert.add_images_requests(list_name, images, on_progress))
        try:
            response = self._lists.AddImages(requests, timeout=self.deadline(timeout), metadata=self.call_metadata())
        except grpc.RpcError as error:
            if requests.error is not None:
                raise requests.error from None
            raise from_rpc_error(error) from None
        return convert.add_images_result(response)

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

    def export_hashes(self, list_name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> Iterator[HashEntry]:
        """Every entry of a list, hash values included (curate role; the server audits it).

        Entries come as upload_hashes takes them, so an export loads back as it was.
        """
        call = self._lists.ExportHashes(
            lists_pb2.ExportHashesRequest(list_name=list_name),
            timeout=self.deadline(timeout),
            metadata=self.call_metadata(),
        )
        try:
            for response in call:
                for entry in response.entries:
                    yield keys.exported_entry(entry)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    # -- KeysService (admin role) --

    def create_key(
        self,
        name: str,
        roles: Iterable[str],
        *,
        expires: datetime | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> keys.CreatedKey:
        """Create an API key; ``result.secret`` is the key to hand over, shown only this once."""
        response = self._call(self._keys.CreateKey, keys.create_key_request(name, roles, expires), timeout)
        return keys.CreatedKey(keys.api_key(response.key), response.secret)

    def list_keys(
        self, *, include_revoked: bool = False, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> tuple[keys.ApiKey, ...]:
        request = keys_pb2.ListKeysRequest(include_revoked=include_revoked)
        return tuple(keys.api_key(k) for k in self._call(self._keys.ListKeys, request, timeout).keys)

    def revoke_key(self, key: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> keys.ApiKey:
        """Revoke a key by id or by the name of an active key; it stops working at once."""
        response = self._call(self._keys.RevokeKey, keys_pb2.RevokeKeyRequest(key=key), timeout)
        return keys.api_key(response.key)

    # -- AdminService (admin role) --

    def get_settings(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> ServerSettings:
        """The effective settings of the server process that answers (read-only; never a secret)."""
        response = self._call(self._admin.GetSettings, admin_pb2.GetSettingsRequest(), timeout)
        return settings.server_settings(response.settings)
