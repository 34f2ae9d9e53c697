"""The index loads in the background while the server already listens.

Loading the lists (HashLists: the store read and the index built, or the snapshot read) takes
seconds at millions of entries. The server listens from the start so health checks get an answer
(NOT_SERVING) instead of a refused connection; meanwhile every call that needs the lists is refused
with UNAVAILABLE and reason INDEX_LOADING. Never answered from a half-loaded or empty index: that
would be a silent miss, the one failure a matching service must not have.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import grpc

from hashmatch.index import HashLists
from hashmatch.v1 import lists_pb2, matcher_pb2

from .errors import RequestError
from .handlers import refusing, split_method

log = logging.getLogger("hashmatch.server")

INDEX_LOADING = "INDEX_LOADING"
# Services whose calls read or change the lists. HashImage only hashes: it is served while loading.
_NEEDS_LISTS = {
    matcher_pb2.DESCRIPTOR.services_by_name["MatcherService"].full_name,
    lists_pb2.DESCRIPTOR.services_by_name["ListsService"].full_name,
}
_WITHOUT_LISTS = {"HashImage"}


class IndexNotReady(RequestError):
    """A call reached the lists before they were loaded (or after loading failed)."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, message, INDEX_LOADING)


class LoadingLists:
    """Stands in for the HashLists being loaded on a background thread.

    Attribute reads are passed to the loaded HashLists; before it is there they raise IndexNotReady
    (UNAVAILABLE to a caller), so nothing can read an empty index by accident. ``then`` callbacks run
    on the loading thread after a successful load (the self-test, a change-feed follower), before
    ``wait`` returns.
    """

    def __init__(self, open_lists: Callable[[], HashLists]) -> None:
        self._open = open_lists
        self._lists: HashLists | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._then: list[Callable[[HashLists], None]] = []
        self._closed = False
        self._started = 0.0

    @property
    def loaded(self) -> bool:
        return self._lists is not None

    @property
    def error(self) -> BaseException | None:
        return self._error

    def then(self, callback: Callable[[HashLists], None]) -> None:
        """Run ``callback(lists)`` once loaded (registered before ``start``)."""
        self._then.append(callback)

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._load, name="hashmatch-index-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            lists = self._open()
            self._lists = lists
            log.info("index loaded in %.2fs", time.monotonic() - self._started,
                     extra={"fields": {"startup": dict(lists.startup)}})
            for callback in self._then:
                callback(lists)
        except BaseException as exc:  # noqa: BLE001 - reported through wait() and the RPCs
            self._error = exc
            log.error("the index could not be loaded: %s: %s", type(exc).__name__, exc, exc_info=exc)
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once loading ended (and the callbacks ran); raises what loading raised."""
        finished = self._done.wait(timeout)
        if self._error is not None:
            raise self._error
        return finished

    def get(self) -> HashLists:
        lists = self._lists
        if lists is None:
            if self._error is not None:
                raise IndexNotReady(f"the index failed to load ({type(self._error).__name__}); see the server log")
            seconds = time.monotonic() - self._started if self._started else 0.0
            raise IndexNotReady(f"index loading ({seconds:.0f}s so far); retry when health reports SERVING")
        return lists

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found on this object: everything HashLists offers.
        return getattr(self.get(), name)

    def close(self) -> None:
        """Close the lists; a load in progress is waited for first (a store must not leak)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._thread.join()
        if self._lists is not None:
            self._lists.close()


class LoadingGate(grpc.ServerInterceptor):
    """Refuses calls that need the lists while they load: UNAVAILABLE, reason INDEX_LOADING,
    without parsing the request. Loaded is for good, so a call let through never meets the wait."""

    def __init__(self, lists: LoadingLists) -> None:
        self._lists = lists

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        if handler is None or self._lists.loaded:
            return handler
        service, method = split_method(handler_call_details.method)
        if service not in _NEEDS_LISTS or method in _WITHOUT_LISTS:
            return handler
        try:
            self._lists.get()
        except IndexNotReady as exc:
            return refusing(handler, exc.code, str(exc), INDEX_LOADING, retry_after=1.0)
        return handler
