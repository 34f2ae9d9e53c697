"""The SDK against a real server over a real channel: every method, sync and async, with values."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import grpc
import pytest
from imagegen import encode, photo, variants

from hashmatch.client import (
    AlreadyExists,
    AsyncClient,
    Client,
    DeadlineExceeded,
    HashEntry,
    HashImageResult,
    HashList,
    HashmatchError,
    HashValue,
    ImageInfo,
    InvalidArgument,
    InvalidHash,
    InvalidImage,
    ListExists,
    ListNotFound,
    Match,
    MatchImageResult,
    NotFound,
    StreamResult,
    Unavailable,
    UploadResult,
)
from hashmatch.client.config import service_config
from hashmatch.hashing.algorithms import DEFAULT_ALGORITHMS, Algorithm, Hash

PDQ, PHASH, MD5, SHA256 = Algorithm.PDQ, Algorithm.PHASH, Algorithm.MD5, Algorithm.SHA256
DEFAULT_THRESHOLDS = {a: a.spec.default_threshold for a in Algorithm}


@pytest.fixture(scope="module")
def picture() -> Any:
    return photo(7)


@pytest.fixture(scope="module")
def jpeg(picture: Any) -> bytes:
    return encode(picture, "JPEG", quality=92)


@pytest.fixture(scope="module")
def other_jpeg() -> bytes:
    return encode(photo(1007), "JPEG", quality=92)


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.address, timeout=30) as c:
        yield c


def entries_for(result: HashImageResult, entry_id: str, label: str) -> list[HashEntry]:
    return [
        HashEntry(h.algorithm, h.value, label=label, id=entry_id, source="test")
        for h in result.hashes
        if h.algorithm in (PDQ, PHASH)
    ]


def assert_recent(moment: datetime) -> None:
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - moment) < timedelta(minutes=5)


# -- the shape of results --

def test_hash_image_returns_the_default_algorithms_with_image_info(client: Client, jpeg: bytes) -> None:
    result = client.hash_image(jpeg)
    assert isinstance(result, HashImageResult)
    assert [h.algorithm for h in result.hashes] == list(DEFAULT_ALGORITHMS)
    for h in result.hashes:
        assert isinstance(h, HashValue)
        assert len(h.value) == h.algorithm.spec.hex_length
        assert h.value == h.value.lower()
        h.to_hash()  # well-formed hex for its algorithm
    assert result.get("pdq").quality is not None and 0 <= result.get(PDQ).quality <= 100
    assert result.get(PHASH).quality is None
    assert result.image == ImageInfo(width=640, height=480, format="JPEG", frame_count=1)
    # Digests are of the bytes sent: the client computes the same ones locally.
    import hashlib

    assert result.get(MD5).value == hashlib.md5(jpeg).hexdigest()
    assert result.get(SHA256).value == hashlib.sha256(jpeg).hexdigest()


def test_hash_image_with_chosen_algorithms(client: Client, jpeg: bytes) -> None:
    result = client.hash_image(jpeg, ["dhash", Algorithm.AHASH, "ALGORITHM_WHASH"])
    assert [h.algorithm for h in result.hashes] == [Algorithm.DHASH, Algorithm.AHASH, Algorithm.WHASH]
    assert all(len(h.value) == 16 for h in result.hashes)


def test_image_as_bytes_path_and_open_file_hash_alike(client: Client, jpeg: bytes, tmp_path: Path) -> None:
    path = tmp_path / "picture.jpg"
    path.write_bytes(jpeg)
    from_bytes = client.hash_image(jpeg)
    assert client.hash_image(str(path)) == from_bytes
    assert client.hash_image(path) == from_bytes
    with open(path, "rb") as f:
        assert client.hash_image(f) == from_bytes
    assert client.hash_image(io.BytesIO(jpeg)) == from_bytes
    assert client.hash_image(bytearray(jpeg)) == from_bytes


# -- lists --

def test_list_crud_round_trip(client: Client) -> None:
    created = client.create_list("known-1", description="first list", thresholds={"pdq": 20, PHASH: 8})
    assert isinstance(created, HashList)
    assert created.name == "known-1"
    assert created.description == "first list"
    assert created.enabled is True
    assert created.thresholds == {**DEFAULT_THRESHOLDS, PDQ: 20, PHASH: 8}
    assert created.entry_count == 0
    assert all(n == 0 for n in created.entry_counts.values())
    assert_recent(created.created)
    assert created.updated >= created.created

    assert client.get_list("known-1") == created
    client.create_list("known-2", enabled=False)
    assert sorted(hl.name for hl in client.list_lists()) == ["known-1", "known-2"]
    assert client.get_list("known-2").enabled is False
    assert client.get_list("known-2").thresholds == DEFAULT_THRESHOLDS

    time.sleep(0.01)  # so a changed update time can show
    renamed = client.update_list("known-1", description="renamed")
    assert renamed.description == "renamed"
    assert renamed.thresholds == created.thresholds  # untouched
    assert renamed.enabled is True
    assert renamed.created == created.created
    assert renamed.updated > created.updated  # an update moves the update time

    tightened = client.update_list("known-1", thresholds={PHASH: 4})
    assert tightened.thresholds == {**DEFAULT_THRESHOLDS, PDQ: 20, PHASH: 4}
    assert tightened.description == "renamed"

    disabled = client.update_list("known-1", enabled=False)
    assert disabled.enabled is False and disabled.thresholds == tightened.thresholds
    assert client.update_list("known-1", enabled=True).enabled is True

    assert client.delete_list("known-1") == 0
    assert [hl.name for hl in client.list_lists()] == ["known-2"]
    with pytest.raises(ListNotFound):
        client.get_list("known-1")


def test_upload_then_match(client: Client, picture: Any, jpeg: bytes, other_jpeg: bytes) -> None:
    client.create_list("known")
    hashes = client.hash_image(jpeg)
    entries = entries_for(hashes, "pic-7", "cat-a")
    progress: list[int] = []

    uploaded = client.upload_hashes("known", entries, batch_size=1, on_progress=progress.append)
    assert isinstance(uploaded, UploadResult)
    assert (uploaded.received, uploaded.added, uploaded.unchanged) == (2, 2, 0)
    assert uploaded.list.name == "known"
    assert uploaded.list.entry_counts[PDQ] == 1 and uploaded.list.entry_counts[PHASH] == 1
    assert uploaded.list.entry_count == 2
    assert progress == [1, 2]

    # Loading the same entries again changes nothing.
    again = client.upload_hashes("known", iter(entries))
    assert (again.received, again.added, again.unchanged) == (2, 0, 2)
    assert again.list.entry_count == 2

    for name, data in variants(picture).items():
        result = client.match_image(data)
        assert isinstance(result, MatchImageResult)
        assert result.matched, name
        assert {m.entry_id for m in result.matches} == {"pic-7"}, name
        for m in result.matches:
            assert isinstance(m, Match)
            assert (m.list_name, m.label) == ("known", "cat-a")
            assert 0 <= m.distance <= m.threshold == DEFAULT_THRESHOLDS[m.algorithm]
            assert result.hashes[m.query_index].algorithm is m.algorithm
        assert PDQ in {m.algorithm for m in result.matches}, name

    # Restricting to lists, and to algorithms.
    assert client.match_image(jpeg, lists=["known"], algorithms=["phash"]).matches[0].algorithm is PHASH
    assert [h.algorithm for h in client.match_image(jpeg, algorithms=["phash"]).hashes] == [PHASH]
    unrelated = client.match_image(other_jpeg)
    assert not unrelated.matched and unrelated.matches == ()
    assert len(unrelated.hashes) == 4

    # match_hashes takes HashValue, Hash and (algorithm, hex) pairs; query_index indexes them.
    pdq = hashes.get(PDQ)
    phash = hashes.get(PHASH)
    assert pdq is not None and phash is not None
    queries = [client.hash_image(other_jpeg).get(PDQ), pdq, Hash.from_hex(PHASH, phash.value), ("pdq", pdq.value.upper())]
    found = client.match_hashes(queries)
    assert sorted((m.query_index, m.algorithm, m.distance) for m in found) == [(1, PDQ, 0), (2, PHASH, 0), (3, PDQ, 0)]
    assert all(m.entry_id == "pic-7" and m.label == "cat-a" for m in found)
    assert client.match_hashes([pdq], lists=["known"])[0].list_name == "known"

    # A disabled list keeps its entries but never matches.
    client.update_list("known", enabled=False)
    assert client.match_hashes([pdq]) == ()
    assert client.get_list("known").entry_count == 2
    client.update_list("known", enabled=True)

    # Removal by hash, then by id.
    assert client.remove_hashes("known", hashes=[pdq]) == 1
    assert {m.algorithm for m in client.match_image(jpeg).matches} == {PHASH}
    assert client.remove_hashes("known", entry_ids=["pic-7"]) == 1
    assert client.match_image(jpeg).matches == ()
    assert client.get_list("known").entry_count == 0

    assert client.delete_list("known") == 0


def test_delete_list_reports_entries_removed(client: Client, jpeg: bytes) -> None:
    client.create_list("doomed")
    client.upload_hashes("doomed", entries_for(client.hash_image(jpeg), "x", ""))
    assert client.delete_list("doomed") == 2


def test_upload_from_a_generator_in_batches(client: Client) -> None:
    client.create_list("bulk")

    def generated() -> Iterator[HashEntry]:
        for i in range(25):
            yield HashEntry("phash", f"{i:016x}", id=f"e{i}", line=i + 1)

    sent: list[int] = []
    result = client.upload_hashes("bulk", generated(), batch_size=10, on_progress=sent.append)
    assert (result.received, result.added) == (25, 25)
    assert sent == [10, 20, 25]
    assert result.list.entry_counts[PHASH] == 25


def test_reloading_relabels_and_keeps_ids(client: Client) -> None:
    client.create_list("relabel")
    first = client.upload_hashes("relabel", [HashEntry(PHASH, "00000000000000ff", label="old", id="e1", source="s1")])
    assert first.added == 1
    # Without an id, a listed hash keeps its id; with a label, it is relabelled.
    again = client.upload_hashes("relabel", [HashEntry(PHASH, "00000000000000ff", label="new", source="s2")])
    assert (again.added, again.unchanged) == (0, 1)
    (found,) = client.match_hashes([(PHASH, "00000000000000ff")])
    assert (found.entry_id, found.label) == ("e1", "new")
    # Another id for a listed hash is refused, naming both.
    with pytest.raises(InvalidArgument) as clash:
        client.upload_hashes("relabel", [HashEntry(PHASH, "00000000000000ff", id="e2")])
    assert "e1" in clash.value.details and "e2" in clash.value.details


def test_reloading_without_a_label_keeps_the_label(client: Client) -> None:
    client.create_list("relabel")
    client.upload_hashes("relabel", [HashEntry(PHASH, "00000000000000ff", label="kept", id="e1")])
    client.upload_hashes("relabel", [HashEntry(PHASH, "00000000000000ff")])
    (found,) = client.match_hashes([(PHASH, "00000000000000ff")])
    assert found.label == "kept"


def test_empty_upload_names_its_list(client: Client) -> None:
    client.create_list("empty")
    result = client.upload_hashes("empty", [])
    assert (result.received, result.added, result.unchanged) == (0, 0, 0)
    assert result.list.name == "empty"
    with pytest.raises(ListNotFound):
        client.upload_hashes("nowhere", [])


def broken_entries() -> Iterator[HashEntry]:
    yield HashEntry("phash", "00000000000000ff")
    raise RuntimeError("source went away")


def test_an_exception_in_the_entries_is_raised_as_is(client: Client) -> None:
    client.create_list("partial")
    with pytest.raises(RuntimeError, match="source went away"):
        client.upload_hashes("partial", broken_entries(), batch_size=1)
    assert client.list_lists()[0].name == "partial"  # the client is still usable


@pytest.mark.parametrize("attempt", range(10))
def test_an_aborted_upload_stores_nothing(client: Client, attempt: int) -> None:
    client.create_list("partial")
    with pytest.raises(RuntimeError):
        client.upload_hashes("partial", broken_entries(), batch_size=1)
    assert client.get_list("partial").entry_count == 0


# -- errors --

def test_errors_keep_code_details_and_reason(client: Client) -> None:
    with pytest.raises(ListNotFound) as not_found:
        client.get_list("no-such-list")
    err = not_found.value
    assert isinstance(err, NotFound) and isinstance(err, HashmatchError)
    assert err.code is grpc.StatusCode.NOT_FOUND
    assert err.reason == "LIST_NOT_FOUND"
    assert "no-such-list" in err.details
    assert str(err).startswith("NOT_FOUND: ")

    for call in (
        lambda: client.update_list("no-such-list", description="x"),
        lambda: client.delete_list("no-such-list"),
        lambda: client.remove_hashes("no-such-list", entry_ids=["a"]),
        lambda: client.upload_hashes("no-such-list", [HashEntry(PHASH, "0" * 16)]),
    ):
        with pytest.raises(ListNotFound):
            call()

    client.create_list("dup")
    with pytest.raises(ListExists) as exists:
        client.create_list("dup")
    assert isinstance(exists.value, AlreadyExists)
    assert exists.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert "dup" in exists.value.details


def test_invalid_image_and_invalid_hash(client: Client) -> None:
    with pytest.raises(InvalidImage) as bad_image:
        client.hash_image(b"not an image")
    assert isinstance(bad_image.value, InvalidArgument)
    assert bad_image.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert bad_image.value.reason == "INVALID_IMAGE"
    assert bad_image.value.details
    with pytest.raises(InvalidImage):
        client.match_image(b"not an image")

    with pytest.raises(InvalidHash) as bad_hash:
        client.match_hashes([(PDQ, "zz" * 32)])
    assert bad_hash.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert bad_hash.value.details
    with pytest.raises(InvalidHash):
        client.match_hashes([(PHASH, "abc")])


def test_a_bad_entry_rejects_the_whole_upload_naming_its_line(client: Client) -> None:
    client.create_list("strict")
    entries = [
        HashEntry(PHASH, "0123456789abcdef", line=1),
        HashEntry(PHASH, "not-hex-at-all!!", line=2),
        HashEntry(PHASH, "fedcba9876543210", line=3),
    ]
    with pytest.raises(InvalidArgument) as bad:
        client.upload_hashes("strict", entries)
    assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "2" in bad.value.details
    assert client.get_list("strict").entry_count == 0


def test_invalid_list_name_and_threshold(client: Client) -> None:
    with pytest.raises(InvalidArgument):
        client.create_list("-starts-with-a-dash")
    with pytest.raises(InvalidArgument):
        client.create_list("too-far", thresholds={PHASH: 65})
    assert client.list_lists() == ()


def test_per_call_timeout_overrides_the_default(server: Any, jpeg: bytes) -> None:
    with Client(server.address, timeout=30) as c:
        with pytest.raises(DeadlineExceeded) as late:
            c.hash_image(jpeg, timeout=1e-6)
        assert late.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
        assert c.hash_image(jpeg).image.width == 640
    # The client's default applies to every call; a per-call value lifts it, None removes it.
    # (Hashing is the probe: gRPC checks deadlines at millisecond grain, and a call as quick
    # as ListLists on loopback can finish inside that even with a microsecond deadline.)
    with Client(server.address, timeout=1e-6) as c:
        with pytest.raises(DeadlineExceeded):
            c.hash_image(jpeg)
        assert c.list_lists(timeout=10) == ()
        assert c.list_lists(timeout=None) == ()
        assert c.hash_image(jpeg, timeout=10).image.width == 640


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_unavailable_after_retrying_only_idempotent_calls() -> None:
    with Client(f"127.0.0.1:{free_port()}", timeout=20) as c:
        start = time.monotonic()
        with pytest.raises(Unavailable) as down:
            c.list_lists()
        retried_for = time.monotonic() - start
        assert down.value.code is grpc.StatusCode.UNAVAILABLE
        start = time.monotonic()
        with pytest.raises(Unavailable):
            c.create_list("x")
        failed_in = time.monotonic() - start
    # ListLists backs off between its attempts (0.1 + 0.2 + 0.4 + 0.8 s, jittered);
    # CreateList changes state, so it is never retried and fails at once.
    assert retried_for > 0.8
    assert failed_in < 0.5


def test_idempotent_calls_ride_out_a_server_starting(tmp_path: Path) -> None:
    from hashmatch.server.app import ServerConfig, create_server

    port = free_port()
    started: list[Any] = []

    def start_later() -> None:
        time.sleep(0.2)
        srv, _ = create_server(f"127.0.0.1:{port}", ServerConfig(data_dir=tmp_path, auth=False))
        srv.start()
        started.append(srv)

    # A short reconnect backoff, so the channel notices the server soon after it starts.
    fast = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 200)]
    thread = threading.Thread(target=start_later)
    try:
        with Client(f"127.0.0.1:{port}", timeout=20, options=fast) as c:
            thread.start()
            # One call: its first attempt meets nothing listening; a retry finds the server.
            assert c.list_lists() == ()
            thread.join()  # start() may still be running its self-test when the call is answered
            assert started
    finally:
        thread.join()
        for srv in started:
            srv.stop(None)


def test_service_config_retries_only_idempotent_methods() -> None:
    config = service_config()
    retried = config["methodConfig"][0]
    assert {n["method"] for n in retried["name"]} == {"HashImage", "MatchImage", "MatchHashes", "GetList", "ListLists"}
    assert retried["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert retried["retryPolicy"]["maxAttempts"] > 1


# -- the stream --

def test_match_image_stream(client: Client, picture: Any, jpeg: bytes, other_jpeg: bytes, tmp_path: Path) -> None:
    client.create_list("known")
    client.upload_hashes("known", entries_for(client.hash_image(jpeg), "pic-7", "cat-a"))
    path = tmp_path / "other.jpg"
    path.write_bytes(other_jpeg)
    requests = [("a", next(iter(variants(picture).values()))),
                ("b", b"not an image"), ("c", path), ("d", io.BytesIO(jpeg))]
    results = list(client.match_image_stream(iter(requests)))
    assert all(isinstance(r, StreamResult) for r in results)
    by_id = {r.request_id: r for r in results}
    assert sorted(by_id) == ["a", "b", "c", "d"]
    assert by_id["a"].ok and by_id["a"].result is not None and by_id["a"].result.matched
    assert by_id["a"].result.matches[0].entry_id == "pic-7"
    assert not by_id["b"].ok and by_id["b"].result is None
    assert isinstance(by_id["b"].error, InvalidArgument)
    assert by_id["b"].error.code is grpc.StatusCode.INVALID_ARGUMENT and by_id["b"].error.details
    assert by_id["c"].ok and not by_id["c"].result.matched
    assert by_id["d"].result.matched
    # Restricting to a list that does not match, and an empty stream.
    client.create_list("empty")
    assert not any(r.result.matched for r in client.match_image_stream([("x", jpeg)], lists=["empty"]))
    assert list(client.match_image_stream([])) == []
    # A problem reading an image (on gRPC's sending thread) reaches the caller as it was.
    with pytest.raises(FileNotFoundError):
        list(client.match_image_stream([("ok", jpeg), ("gone", tmp_path / "missing.jpg")]))


def test_stream_stopped_early_is_cancelled_cleanly(client: Client, jpeg: bytes) -> None:
    stream = client.match_image_stream((str(i), jpeg) for i in range(50))
    first = next(stream)
    assert first.ok
    stream.close()  # the call is cancelled; the client stays usable
    assert client.list_lists() == ()


# -- AsyncClient: the same methods as coroutines --

def test_async_client_every_method(server: Any, picture: Any, jpeg: bytes, other_jpeg: bytes, tmp_path: Path) -> None:
    path = tmp_path / "picture.jpg"
    path.write_bytes(jpeg)

    async def entries(result: HashImageResult) -> AsyncIterator[HashEntry]:
        for entry in entries_for(result, "pic-7", "cat-a"):
            await asyncio.sleep(0)
            yield entry

    async def images() -> AsyncIterator[tuple[str, Any]]:
        yield "known", jpeg
        yield "bad", b"not an image"
        yield "other", other_jpeg

    async def story() -> None:
        async with AsyncClient(server.address, timeout=30) as c:
            created = await c.create_list("known", description="d", thresholds={"pdq": 25})
            assert created.thresholds == {**DEFAULT_THRESHOLDS, PDQ: 25}
            assert await c.get_list("known") == created
            assert [hl.name for hl in await c.list_lists()] == ["known"]
            updated = await c.update_list("known", description="e", enabled=False)
            assert (updated.description, updated.enabled, updated.thresholds[PDQ]) == ("e", False, 25)
            await c.update_list("known", enabled=True)

            hashed = await c.hash_image(jpeg)
            with open(path, "rb") as f:
                assert await c.hash_image(f) == hashed
            assert await c.hash_image(path) == hashed

            sent: list[int] = []
            uploaded = await c.upload_hashes("known", entries(hashed), batch_size=1, on_progress=sent.append)
            assert (uploaded.received, uploaded.added, uploaded.unchanged) == (2, 2, 0)
            assert sent == [1, 2]
            again = await c.upload_hashes("known", entries_for(hashed, "pic-7", "cat-a"))
            assert (again.added, again.unchanged) == (0, 2)

            for name, data in variants(picture).items():
                result = await c.match_image(data)
                assert result.matched and {m.entry_id for m in result.matches} == {"pic-7"}, name
            assert not (await c.match_image(other_jpeg)).matched
            found = await c.match_hashes([hashed.get(PDQ)], lists=["known"])
            assert [(m.entry_id, m.distance, m.query_index) for m in found] == [("pic-7", 0, 0)]

            results = {r.request_id: r async for r in c.match_image_stream(images())}
            assert results["known"].result.matched
            assert isinstance(results["bad"].error, InvalidArgument)
            assert results["other"].ok and not results["other"].result.matched
            sync_iterable = {r.request_id for r in [r async for r in c.match_image_stream([("x", jpeg)])]}
            assert sync_iterable == {"x"}
            with pytest.raises(FileNotFoundError):
                [r async for r in c.match_image_stream([("gone", tmp_path / "missing.jpg")])]

            with pytest.raises(ListNotFound):
                await c.get_list("missing")
            with pytest.raises(ListExists):
                await c.create_list("known")
            with pytest.raises(InvalidImage) as bad:
                await c.hash_image(b"not an image")
            assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT and bad.value.details
            with pytest.raises(InvalidHash):
                await c.match_hashes([("pdq", "xyz")])
            with pytest.raises(DeadlineExceeded):
                await c.match_image(jpeg, timeout=1e-6)

            assert await c.remove_hashes("known", hashes=[hashed.get(PHASH)]) == 1
            assert await c.remove_hashes("known", entry_ids=["pic-7"]) == 1
            assert await c.delete_list("known") == 0
            assert await c.list_lists() == ()

    asyncio.run(story())


def test_async_upload_error_in_entries_is_raised_as_is(server: Any) -> None:
    async def broken() -> AsyncIterator[HashEntry]:
        yield HashEntry("phash", "00000000000000ff")
        raise RuntimeError("source went away")

    async def story() -> None:
        # Built outside a context: the channel opens on first use, in the running loop.
        c = AsyncClient(server.address)
        try:
            await c.create_list("partial")
            with pytest.raises(RuntimeError, match="source went away"):
                await c.upload_hashes("partial", broken(), batch_size=1)
            assert (await c.get_list("partial")).name == "partial"  # still usable
        finally:
            await c.close()

    asyncio.run(story())
