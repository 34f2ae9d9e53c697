"""The gRPC contract over a real server on a loopback port: statuses, messages, health, reflection,
and that a client that only matches never receives a listed hash value."""

from __future__ import annotations

import io

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from imagegen import encode, photo
from PIL import Image

from hashmatch.v1 import hashes_pb2, lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

PDQ, PHASH, MD5 = hashes_pb2.ALGORITHM_PDQ, hashes_pb2.ALGORITHM_PHASH, hashes_pb2.ALGORITHM_MD5


@pytest.fixture
def stubs(server):
    with grpc.insecure_channel(server.address) as channel:
        yield matcher_pb2_grpc.MatcherServiceStub(channel), lists_pb2_grpc.ListsServiceStub(channel), channel


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def reason(err: grpc.RpcError) -> str | None:
    return dict(err.trailing_metadata() or ()).get("hashmatch-reason")


def assert_still_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
    reply = matcher.HashImage(matcher_pb2.HashImageRequest(image=encode(photo(1, (64, 48)), "PNG")))
    assert len(reply.hashes) == 4


def load(lists, name: str, entries: list[lists_pb2.HashEntry]) -> lists_pb2.UploadHashesResponse:
    return lists.UploadHashes(iter([lists_pb2.UploadHashesRequest(list_name=name, entries=entries, commit=True)]))


def test_hash_image_defaults_and_pdq_quality(stubs) -> None:
    matcher, _, _ = stubs
    jpeg = encode(photo(3), "JPEG", quality=90)
    reply = matcher.HashImage(matcher_pb2.HashImageRequest(image=jpeg))
    got = {h.algorithm: h for h in reply.hashes}
    assert list(got) == [PDQ, PHASH, MD5, hashes_pb2.ALGORITHM_SHA256]
    assert len(got[PDQ].value) == 64 and got[PDQ].HasField("quality") and got[PDQ].quality >= 50
    assert len(got[PHASH].value) == 16 and not got[PHASH].HasField("quality")
    import hashlib

    assert got[MD5].value == hashlib.md5(jpeg).hexdigest()
    assert got[hashes_pb2.ALGORITHM_SHA256].value == hashlib.sha256(jpeg).hexdigest()
    assert (reply.image.width, reply.image.height, reply.image.format) == (640, 480, "JPEG")


def test_match_returns_matches_without_listed_hash_values(stubs) -> None:
    matcher, lists, _ = stubs
    original = photo(5)
    listed = {h.algorithm: h.value for h in matcher.HashImage(
        matcher_pb2.HashImageRequest(image=encode(original, "PNG"), algorithms=[PDQ, PHASH])).hashes}
    lists.CreateList(lists_pb2.CreateListRequest(name="csam-test", thresholds=[
        lists_pb2.AlgorithmThreshold(algorithm=PDQ, threshold=40)]))
    loaded = load(lists, "csam-test", [
        lists_pb2.HashEntry(algorithm=PDQ, hash=listed[PDQ], label="cat-a", id="e1"),
        lists_pb2.HashEntry(algorithm=PHASH, hash=listed[PHASH], label="cat-a", id="e1"),
    ])
    assert (loaded.received, loaded.added, loaded.unchanged) == (2, 2, 0)
    copy = encode(original.resize((320, 240)), "JPEG", quality=60)
    reply = matcher.MatchImage(matcher_pb2.MatchImageRequest(image=copy))
    found = {(m.list_name, m.entry_id, m.label, m.algorithm, m.threshold) for m in reply.matches}
    assert found == {("csam-test", "e1", "cat-a", PDQ, 40), ("csam-test", "e1", "cat-a", PHASH, 10)}
    for m in reply.matches:
        assert m.distance <= m.threshold
        assert reply.hashes[m.query_index].algorithm == m.algorithm
    # The listed values appear nowhere in what a matching client receives (unless the copy is identical).
    wire = reply.SerializeToString()
    for algorithm, value in listed.items():
        if reply.hashes[[h.algorithm for h in reply.hashes].index(algorithm)].value != value:
            assert value.encode() not in wire and bytes.fromhex(value) not in wire
    unrelated = matcher.MatchImage(matcher_pb2.MatchImageRequest(image=encode(photo(6), "JPEG")))
    assert list(unrelated.matches) == []


def test_match_hashes_and_threshold_boundary(stubs) -> None:
    matcher, lists, _ = stubs
    value = "f" * 16
    lists.CreateList(lists_pb2.CreateListRequest(name="l", thresholds=[
        lists_pb2.AlgorithmThreshold(algorithm=PHASH, threshold=4)]))
    load(lists, "l", [lists_pb2.HashEntry(algorithm=PHASH, hash=value, id="x")])
    four_off = "0" + "f" * 15  # 4 bits apart: matches at threshold 4 (inclusive)
    five_off = "0" + "e" + "f" * 14
    reply = matcher.MatchHashes(matcher_pb2.MatchHashesRequest(hashes=[
        hashes_pb2.Hash(algorithm=PHASH, value=five_off), hashes_pb2.Hash(algorithm=PHASH, value=four_off.upper())]))
    assert [(m.entry_id, m.distance, m.threshold, m.query_index) for m in reply.matches] == [("x", 4, 4, 1)]


@pytest.mark.parametrize(
    "image, needle",
    [
        (b"", "empty"),
        (b"just some text, not a picture\n" * 10, "not a recognised image"),
        (encode(photo(2), "JPEG")[:3000], "truncated"),
    ],
    ids=["empty", "text", "truncated-jpeg"],
)
def test_bad_images_are_invalid_argument(stubs, image: bytes, needle: str) -> None:
    matcher, _, channel = stubs
    for call in (matcher.HashImage, matcher.MatchImage):
        request = (matcher_pb2.HashImageRequest if call is matcher.HashImage else matcher_pb2.MatchImageRequest)(image=image)
        err = rpc_error(call, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert needle in err.details().lower()
        assert reason(err) == "INVALID_IMAGE"
    assert_still_serving(channel)


def test_pixel_limit_refuses_a_decompression_bomb_before_decoding(server_factory) -> None:
    srv = server_factory(max_pixels=1_000_000)
    bomb = io.BytesIO()
    Image.new("L", (4000, 4000)).save(bomb, "PNG")  # 16 Mpx of zeros compresses to a few KB
    assert len(bomb.getvalue()) < 100_000
    with grpc.insecure_channel(srv.address) as channel:
        err = rpc_error(matcher_pb2_grpc.MatcherServiceStub(channel).MatchImage,
                        matcher_pb2.MatchImageRequest(image=bomb.getvalue()))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "4000x4000" in err.details() and "1000000" in err.details()
        assert reason(err) == "IMAGE_TOO_LARGE"
        assert_still_serving(channel)


def test_message_over_the_configured_size(server_factory) -> None:
    srv = server_factory(max_message_bytes=256 * 1024)
    with grpc.insecure_channel(srv.address) as channel:
        err = rpc_error(matcher_pb2_grpc.MatcherServiceStub(channel).HashImage,
                        matcher_pb2.HashImageRequest(image=b"\xff" * (300 * 1024)))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in err.details().lower()
        assert_still_serving(channel)


@pytest.mark.parametrize(
    "hash_message, needle",
    [
        (hashes_pb2.Hash(algorithm=PDQ, value="ab" * 31), "hashes[0].value: PDQ hash must be 64 hex digits, got 62"),
        (hashes_pb2.Hash(algorithm=PHASH, value="zz" + "0" * 14), "non-hex character 'z' at position 1"),
        (hashes_pb2.Hash(algorithm=0, value="0" * 16), "hashes[0].algorithm: algorithm is not set"),
        (hashes_pb2.Hash(algorithm=99, value="0" * 16), "hashes[0].algorithm: unknown algorithm number 99"),
    ],
    ids=["wrong-length", "non-hex", "unspecified", "unknown-algorithm"],
)
def test_bad_hashes_are_invalid_argument(stubs, hash_message, needle: str) -> None:
    matcher, _, channel = stubs
    err = rpc_error(matcher.MatchHashes, matcher_pb2.MatchHashesRequest(hashes=[hash_message]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.details()
    assert_still_serving(channel)


def test_unknown_algorithm_in_image_request(stubs) -> None:
    matcher, _, _ = stubs
    err = rpc_error(matcher.HashImage, matcher_pb2.HashImageRequest(image=encode(photo(1), "PNG"), algorithms=[PDQ, 42]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "algorithms[1]: unknown algorithm number 42" in err.details()


def test_unknown_and_duplicate_lists(stubs) -> None:
    matcher, lists, channel = stubs
    err = rpc_error(lists.GetList, lists_pb2.GetListRequest(name="missing"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "missing" in err.details()
    assert reason(err) == "LIST_NOT_FOUND"
    err = rpc_error(matcher.MatchImage, matcher_pb2.MatchImageRequest(image=encode(photo(1), "PNG"), list_names=["missing"]))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(load, lists, "missing", [lists_pb2.HashEntry(algorithm=MD5, hash="0" * 32)])
    assert err.code() == grpc.StatusCode.NOT_FOUND
    lists.CreateList(lists_pb2.CreateListRequest(name="dup"))
    err = rpc_error(lists.CreateList, lists_pb2.CreateListRequest(name="dup"))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "'dup' already exists" in err.details()
    assert reason(err) == "LIST_EXISTS"
    err = rpc_error(lists.CreateList, lists_pb2.CreateListRequest(name="bad name"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "list name" in err.details()
    err = rpc_error(lists.CreateList, lists_pb2.CreateListRequest(
        name="t", thresholds=[lists_pb2.AlgorithmThreshold(algorithm=PDQ, threshold=999)]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "PDQ threshold must be between 0 and 256" in err.details()
    assert_still_serving(channel)


def test_upload_is_all_or_nothing_naming_the_first_bad_line(stubs) -> None:
    _, lists, channel = stubs
    lists.CreateList(lists_pb2.CreateListRequest(name="l"))
    good = [lists_pb2.HashEntry(algorithm=PDQ, hash=f"{i:064x}", line=i + 2) for i in range(100)]
    bad_hex = lists_pb2.HashEntry(algorithm=PDQ, hash="g" * 64, line=60)
    short = lists_pb2.HashEntry(algorithm=PDQ, hash="a" * 63, line=80)
    requests = [
        lists_pb2.UploadHashesRequest(list_name="l", entries=good[:50]),
        lists_pb2.UploadHashesRequest(entries=[short, bad_hex] + good[50:], commit=True),
    ]
    err = rpc_error(lists.UploadHashes, iter(requests))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("line 60: ") and "non-hex character 'g'" in err.details()
    assert lists.GetList(lists_pb2.GetListRequest(name="l")).list.entry_count == 0
    # Without line numbers, the error gives the entry's position in the upload.
    err = rpc_error(load, lists, "l", [lists_pb2.HashEntry(algorithm=PDQ, hash="0" * 64),
                                      lists_pb2.HashEntry(algorithm=0, hash="0" * 64)])
    assert err.details() == "line 2: algorithm: algorithm is not set (ALGORITHM_UNSPECIFIED)"
    # The good entries alone load, and loading them again changes nothing.
    first = load(lists, "l", good)
    again = load(lists, "l", good)
    assert (first.added, again.added, again.unchanged, again.list.entry_count) == (100, 0, 100, 100)
    assert_still_serving(channel)


def test_upload_without_commit_stores_nothing(stubs) -> None:
    _, lists, _ = stubs
    lists.CreateList(lists_pb2.CreateListRequest(name="l"))
    entries = [lists_pb2.HashEntry(algorithm=MD5, hash=f"{i:032x}") for i in range(10)]
    err = rpc_error(lists.UploadHashes, iter([lists_pb2.UploadHashesRequest(list_name="l", entries=entries)]))
    assert err.code() == grpc.StatusCode.ABORTED and "commit" in err.details()
    assert lists.GetList(lists_pb2.GetListRequest(name="l")).list.entry_count == 0
    err = rpc_error(lists.UploadHashes, iter([
        lists_pb2.UploadHashesRequest(list_name="l", entries=entries, commit=True),
        lists_pb2.UploadHashesRequest(entries=entries),
    ]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "after the message that set commit" in err.details()
    assert lists.GetList(lists_pb2.GetListRequest(name="l")).list.entry_count == 0


def test_label_not_given_keeps_the_listed_label(stubs) -> None:
    matcher, lists, _ = stubs
    lists.CreateList(lists_pb2.CreateListRequest(name="l"))
    load(lists, "l", [lists_pb2.HashEntry(algorithm=MD5, hash="ab" * 16, label="kept", source="ncmec")])
    load(lists, "l", [lists_pb2.HashEntry(algorithm=MD5, hash="ab" * 16)])
    query = matcher_pb2.MatchHashesRequest(hashes=[hashes_pb2.Hash(algorithm=MD5, value="ab" * 16)])
    assert [m.label for m in matcher.MatchHashes(query).matches] == ["kept"]
    load(lists, "l", [lists_pb2.HashEntry(algorithm=MD5, hash="ab" * 16, label="")])
    assert [m.label for m in matcher.MatchHashes(query).matches] == [""]


def test_list_lifecycle(stubs) -> None:
    _, lists, _ = stubs
    created = lists.CreateList(lists_pb2.CreateListRequest(name="ncii", description="StopNCII")).list
    thresholds = {t.algorithm: t.threshold for t in created.thresholds}
    assert thresholds[PDQ] == 31 and thresholds[PHASH] == 10 and thresholds[MD5] == 0
    assert created.enabled and created.entry_count == 0 and created.create_time.seconds > 0
    load(lists, "ncii", [lists_pb2.HashEntry(algorithm=MD5, hash="ab" * 16), lists_pb2.HashEntry(algorithm=PDQ, hash="cd" * 32)])
    updated = lists.UpdateList(lists_pb2.UpdateListRequest(
        name="ncii", enabled=False, thresholds=[lists_pb2.AlgorithmThreshold(algorithm=PDQ, threshold=20)])).list
    assert not updated.enabled and updated.description == "StopNCII"
    assert {t.algorithm: t.threshold for t in updated.thresholds}[PDQ] == 20
    assert {c.algorithm: c.count for c in updated.entry_counts}[MD5] == 1 and updated.entry_count == 2
    assert [l.name for l in lists.ListLists(lists_pb2.ListListsRequest()).lists] == ["ncii"]
    assert lists.RemoveHashes(lists_pb2.RemoveHashesRequest(
        list_name="ncii", hashes=[hashes_pb2.Hash(algorithm=MD5, value="AB" * 16)])).removed == 1
    assert lists.DeleteList(lists_pb2.DeleteListRequest(name="ncii")).entries_removed == 1
    assert list(lists.ListLists(lists_pb2.ListListsRequest()).lists) == []


def test_stream_answers_each_request_by_id(stubs) -> None:
    matcher, _, _ = stubs
    images = [encode(photo(i, (96, 64)), "PNG") for i in range(5)]
    requests = [matcher_pb2.MatchImageStreamRequest(request_id=f"r{i}", request=matcher_pb2.MatchImageRequest(image=img))
                for i, img in enumerate(images)]
    requests.insert(2, matcher_pb2.MatchImageStreamRequest(request_id="bad", request=matcher_pb2.MatchImageRequest(image=b"x")))
    replies = {r.request_id: r for r in matcher.MatchImageStream(iter(requests))}
    assert set(replies) == {"r0", "r1", "r2", "r3", "r4", "bad"}
    assert replies["bad"].WhichOneof("result") == "error"
    assert replies["bad"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    for i in range(5):
        assert replies[f"r{i}"].WhichOneof("result") == "response"
        assert len(replies[f"r{i}"].response.hashes) == 4


def test_health_and_reflection(stubs) -> None:
    _, _, channel = stubs
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "hashmatch.v1.MatcherService", "hashmatch.v1.ListsService"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING
    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"hashmatch.v1.MatcherService", "hashmatch.v1.ListsService", "grpc.health.v1.Health"} <= services


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (30, 120, 200)], ids=["black", "white", "blue"])
def test_a_bordered_copy_matches_through_its_trimmed_region(stubs, colour) -> None:
    matcher, lists, _ = stubs
    original = photo(12)
    listed = {h.algorithm: h.value for h in matcher.HashImage(
        matcher_pb2.HashImageRequest(image=encode(original, "PNG"), algorithms=[PDQ, PHASH])).hashes}
    lists.CreateList(lists_pb2.CreateListRequest(name="framed"))
    load(lists, "framed", [lists_pb2.HashEntry(algorithm=a, hash=v, id="p12") for a, v in listed.items()])
    # A 10% frame on every side: as a whole, the copy is far from the listed hashes.
    w, h = original.size
    canvas = Image.new("RGB", (int(w * 1.2), int(h * 1.2)), colour)
    canvas.paste(original, (w // 10, h // 10))
    reply = matcher.MatchImage(matcher_pb2.MatchImageRequest(image=encode(canvas, "JPEG", quality=90)))
    pdq = [m for m in reply.matches if m.algorithm == PDQ]
    assert [(m.entry_id, m.region) for m in pdq] == [("p12", hashes_pb2.IMAGE_REGION_TRIMMED)]
    assert pdq[0].distance <= 31 and reply.hashes[pdq[0].query_index].algorithm == PDQ
    # The whole framed image alone is not what matched.
    whole = matcher.MatchHashes(matcher_pb2.MatchHashesRequest(hashes=[reply.hashes[pdq[0].query_index]]))
    assert [m for m in whole.matches if m.list_name == "framed"] == []
    # An unframed copy matches as a whole.
    plain = matcher.MatchImage(matcher_pb2.MatchImageRequest(image=encode(original, "JPEG", quality=90)))
    assert {(m.algorithm, m.region) for m in plain.matches} == {
        (PDQ, hashes_pb2.IMAGE_REGION_WHOLE), (PHASH, hashes_pb2.IMAGE_REGION_WHOLE)}
