"""The asyncio SDK client (grpc.aio): ``async with AsyncClient("host:port") as c: await c.match_image(path)``.

Same methods, arguments and results as :class:`hashmatch.client.Client`, as coroutines.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import TracebackType
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence, TypeVar

import grpc
import grpc.aio

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


class _RequestErrors:
    """Remembers an exception raised while producing a stream's requests.

    grpc.aio consumes request iterators in a task of its own and, when one raises, only
    cancels the call (awaiting it then raises CancelledError); the original would be lost.
    """

    def __init__(self) -> None:
        self.error: BaseException | None = None

    async def capture(self, requests: AsyncIterator[T]) -> AsyncIterator[T]:
        try:
            async for request in requests:
                yield request
        except Exception as exc:
            self.error = exc
            raise


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class AsyncClient(ClientConfig):
    """An asyncio hashmatch client over one grpc.aio channel; use it with ``async with``.

    The channel is opened on first use (or on entering the context), inside the running
    event loop, so the client may be constructed outside one.
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
        self._channel: grpc.aio.Channel | None = None
        self._matcher_stub: matcher_pb2_grpc.MatcherServiceStub | None = None
        self._lists_stub: lists_pb2_grpc.ListsServiceStub | None = None
        self._keys_stub: keys_pb2_grpc.KeysServiceStub | None = None
        self._admin_stub: admin_pb2_grpc.AdminServiceStub | None = None

    # -- lifecycle --

    def _open(self) -> None:
        if self._channel is None:
            credentials = self.channel_credentials()
            self._channel = (
                grpc.aio.secure_channel(self.address, credentials, options=self.channel_options())
                if credentials is not None
                else grpc.aio.insecure_channel(self.address, options=self.channel_options())
            )
            self._matcher_stub = matcher_pb2_grpc.MatcherServiceStub(self._channel)
            self._lists_stub = lists_pb2_grpc.ListsServiceStub(self._channel)
            self._keys_stub = keys_pb2_grpc.KeysServiceStub(self._channel)
            self._admin_stub = admin_pb2_grpc.AdminServiceStub(self._channel)

    @property
    def _matcher(self) -> matcher_pb2_grpc.MatcherServiceStub:
        self._open()
        assert self._matcher_stub is not None
        return self._matcher_stub

    @property
    def _lists(self) -> lists_pb2_grpc.ListsServiceStub:
        self._open()
        assert self._lists_stub is not None
        return self._lists_stub

    @property
    def _keys(self) -> keys_pb2_grpc.KeysServiceStub:
        self._open()
        assert self._keys_stub is not None
        return self._keys_stub

    @property
    def _admin(self) -> admin_pb2_grpc.AdminServiceStub:
        self._open()
        assert self._admin_stub is not None
        return self._admin_stub

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            self._matcher_stub = self._lists_stub = self._keys_stub = self._admin_stub = None
            await channel.close(None)  # no grace: calls still running are cancelled

    async def __aenter__(self) -> "AsyncClient":
        self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(self, method: Callable[..., Awaitable[T]], request: Any, timeout: Timeout) -> T:
        deadline_at = self.deadline_at(self.deadline(timeout))
        attempt = 0
        while True:
            try:
                return await method(request, timeout=self.remaining(deadline_at), metadata=self.call_metadata())
            except grpc.RpcError as error:
                delay = self.rate_limit_delay(error, attempt, deadline_at)
                if delay is None:
                    raise from_rpc_error(error) from None
            await asyncio.sleep(delay)
            attempt += 1

    # -- MatcherService --

    async def hash_image(
        self,
        image: ImageSource,
        algorithms: Sequence[Algorithm | str] | None = None,
        *,
        include_orientations: bool = False,
        fast: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> HashImageResult:
        request = convert.hash_image_request(image, algorithms, include_orientations, fast)
        return convert.hash_image_result(await self._call(self._matcher.HashImage, request, timeout))

    async def match_image(
        self,
        image: ImageSource,
        lists: Sequence[str] | None = None,
        algorithms: Sequence[Algorithm | str] | None = None,
        *,
        fast: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> MatchImageResult:
        request = convert.match_image_request(image, lists, algorithms, fast)
        return convert.match_image_result(await self._call(self._matcher.MatchImage, request, timeout))

    async def match_hashes(
        self,
        hashes: Sequence[HashLike],
        lists: Sequence[str] | None = None,
        *,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> tuple[Match, ...]:
        request = matcher_pb2.MatchHashesRequest(
            hashes=[convert.hash_to_proto(h) for h in hashes], list_names=convert.list_names(lists)
        )
        return convert.matches((await self._call(self._matcher.MatchHashes, request, timeout)).matches)

    async def match_image_stream(
        self,
        images: Iterable[tuple[str, ImageSource]] | AsyncIterable[tuple[str, ImageSource]],
        lists: Sequence[str] | None = None,
        algorithms: Sequence[Algorithm | str] | None = None,
        *,
        fast: bool = False,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[StreamResult]:
        """``async for r in c.match_image_stream(images): ...`` -- see Client.match_image_stream."""

        async def requests() -> AsyncIterator[matcher_pb2.MatchImageStreamRequest]:
            async for request_id, image in _aiter(images):
                yield convert.stream_request(request_id, image, lists, algorithms, fast)

        errors = _RequestErrors()
        call = self._matcher.MatchImageStream(
            errors.capture(requests()), timeout=self.deadline(timeout), metadata=self.call_metadata()
        )
        try:
            async for response in call:
                yield convert.stream_result(response)
        except grpc.RpcError as error:
            if errors.error is not None:
                raise errors.error from None
            raise from_rpc_error(error) from None
        except asyncio.CancelledError:
            # grpc.aio cancels the call when the request iterator raised: surface that error.
            if errors.error is not None:
                raise errors.error from None
            raise
        finally:
            call.cancel()  # no-op when finished; ends the stream if the caller stopped early

    # -- ListsService --

    async def create_list(
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
        return convert.hash_list((await self._call(self._lists.CreateList, request, timeout)).list)

    async def get_list(self, name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> HashList:
        request = lists_pb2.GetListRequest(name=name)
        return convert.hash_list((await self._call(self._lists.GetList, request, timeout)).list)

    async def list_lists(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> tuple[HashList, ...]:
        response = await self._call(self._lists.ListLists, lists_pb2.ListListsRequest(), timeout)
        return tuple(convert.hash_list(m) for m in response.lists)

    async def update_list(
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
        # A confirmed threshold of 0 turns that algorithm's confirmation off.
        request = convert.update_list_request(
            name, description, thresholds, enabled, match_orientations, confirmed_thresholds
        )
        return convert.hash_list((await self._call(self._lists.UpdateList, request, timeout)).list)

    async def delete_list(self, name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> int:
        request = lists_pb2.DeleteListRequest(name=name)
        return (await self._call(self._lists.DeleteList, request, timeout)).entries_removed

    async def upload_hashes(
        self,
        list_name: str,
        entries: Iterable[HashEntry] | AsyncIterable[HashEntry],
        *,
        batch_size: int = 1000,
        on_progress: Callable[[int], None] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> UploadResult:
        """See Client.upload_hashes; ``entries`` may also be an async iterable."""
        batcher = convert.UploadBatcher(list_name, batch_size, on_progress)

        async def requests() -> AsyncIterator[lists_pb2.UploadHashesRequest]:
            async for entry in _aiter(entries):
                if (message := batcher.add(entry)) is not None:
                    yield message
            yield batcher.finish()

        return convert.upload_result(await self._stream_unary(self._lists.UploadHashes, requests(), timeout))

    async def add_images(
        self,
        list_name: str,
        images: Iterable[ImageEntry | ImageSource] | AsyncIterable[ImageEntry | ImageSource],
        *,
        on_progress: Callable[[int], None] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> AddImagesResult:
        """See Client.add_images; ``images`` may also be an async iterable."""

        messages = convert.ImageMessages(list_name, on_progress)

        async def requests() -> AsyncIterator[lists_pb2.AddImagesRequest]:
            async for item in _aiter(images):
                yield messages.add(item)
            yield messages.finish()

        return convert.add_images_result(await self._stream_unary(self._lists.AddImages, requests(), timeout))

    async def _stream_unary(self, method: Any, requests: AsyncIterator[Any], timeout: Timeout) -> Any:
        """A client-streaming call; an exception raised while making the requests (reading the
        caller's entries or files) comes out as it was, not as the cancelled call it causes."""
        errors = _RequestErrors()
        try:
            return await method(errors.capture(requests), timeout=self.deadline(timeout), metadata=self.call_metadata())
        except grpc.RpcError as error:
            if errors.error is not None:
                raise errors.error from None
            raise from_rpc_error(error) from None
        except asyncio.CancelledError:
            if errors.error is not None:
                raise errors.error from None
            raise

    async def remove_hashes(
        self,
        list_name: str,
        *,
        entry_ids: Iterable[str] = (),
        hashes: Iterable[HashLike] = (),
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> int:
        request = convert.remove_hashes_request(list_name, entry_ids, hashes)
        return (await self._call(self._lists.RemoveHashes, request, timeout)).removed

    async def export_hashes(self, list_name: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> AsyncIterator[HashEntry]:
        """``async for entry in c.export_hashes(name)`` -- see Client.export_hashes."""
        call = self._lists.ExportHashes(
            lists_pb2.ExportHashesRequest(list_name=list_name),
            timeout=self.deadline(timeout),
            metadata=self.call_metadata(),
        )
        try:
            async for response in call:
                for entry in response.entries:
                    yield keys.exported_entry(entry)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    # -- KeysService (admin role) --

    async def create_key(
        self,
        name: str,
        roles: Iterable[str],
        *,
        expires: datetime | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> keys.CreatedKey:
        response = await self._call(self._keys.CreateKey, keys.create_key_request(name, roles, expires), timeout)
        return keys.CreatedKey(keys.api_key(response.key), response.secret)

    async def list_keys(
        self, *, include_revoked: bool = False, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> tuple[keys.ApiKey, ...]:
        request = keys_pb2.ListKeysRequest(include_revoked=include_revoked)
        return tuple(keys.api_key(k) for k in (await self._call(self._keys.ListKeys, request, timeout)).keys)

    async def revoke_key(self, key: str, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> keys.ApiKey:
        response = await self._call(self._keys.RevokeKey, keys_pb2.RevokeKeyRequest(key=key), timeout)
        return keys.api_key(response.key)

    # -- AdminService (admin role) --

    async def get_settings(self, *, timeout: Timeout = USE_CLIENT_DEFAULT) -> ServerSettings:
        """The effective settings of the server process that answers (read-only; never a secret)."""
        response = await self._call(self._admin.GetSettings, admin_pb2.GetSettingsRequest(), timeout)
        return settings.server_settings(response.settings)
