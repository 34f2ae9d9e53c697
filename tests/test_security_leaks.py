"""No leaks: a match key never receives a listed hash value; exporting lists is curate-only and
audited; an uploaded image (its bytes and its hashes) is written nowhere: not the data folder, not
the logs, not the temporary folder; errors never echo image bytes."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Iterable

import grpc
import pytest
from authkit import ServerProcess, admin_key, bearer, new_key, rpc_error, secure_server
from imagegen import encode, photo
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from hashmatch.client import Client, HashEntry, ListNotFound, PermissionDenied
from hashmatch.client.cli import main as cli_main
from hashmatch.v1 import hashes_pb2, lists_pb2, lists_pb2_grpc, matcher_pb2, matcher_pb2_grpc

PDQ, PHASH = hashes_pb2.ALGORITHM_PDQ, hashes_pb2.ALGORITHM_PHASH


def flip(hex_value: str, bits: int) -> str:
    """The hash with its ``bits`` lowest bits flipped: near (a match) yet a different value."""
    value = int(hex_value, 16) ^ ((1 << bits) - 1)
    return f"{value:0{len(hex_value)}x}"


def forms(hex_value: str) -> list[bytes]:
    """Every way a hash could show up in bytes: hex in both cases, and raw."""
    return [hex_value.encode(), hex_value.upper().encode(), bytes.fromhex(hex_value)]


def everything_returned(*messages: Any, metadata: Iterable[Any] = ()) -> bytes:
    blob = b"".join(m.SerializeToString() + str(m).encode() for m in messages)
    return blob + repr(list(metadata)).encode()


# -- a match key never sees a listed value -------------------------------------------------------

def test_a_match_key_never_receives_a_listed_hash_value(server_factory: Any) -> None:
    srv = secure_server(server_factory)
    image = encode(photo(321), "JPEG", quality=92)
    with Client(srv.address, api_key=admin_key(srv.data_dir)) as admin:
        own = {h.algorithm.value: h.value for h in admin.hash_image(image).hashes}
        listed = {"pdq": flip(own["pdq"], 6), "phash": flip(own["phash"], 2)}
        unrelated = secrets.token_hex(32)
        admin.create_list("secret-list")
        admin.upload_hashes("secret-list", [
            HashEntry("pdq", listed["pdq"], label="cat-a", id="near-pdq"),
            HashEntry("phash", listed["phash"], label="cat-a", id="near-phash"),
            HashEntry("pdq", unrelated, label="cat-b", id="far"),
        ])
    key = new_key(srv.address, srv.data_dir, "pipeline", ["match"])
    secrets_listed = [form for value in (*listed.values(), unrelated) for form in forms(value)]

    returned: list[bytes] = []
    with grpc.insecure_channel(srv.address) as channel:
        matcher = matcher_pb2_grpc.MatcherServiceStub(channel)
        md = bearer(key)
        reply, call = matcher.HashImage.with_call(
            matcher_pb2.HashImageRequest(image=image, include_orientations=True), metadata=md, timeout=30)
        returned.append(everything_returned(reply, metadata=call.trailing_metadata()))
        reply, call = matcher.MatchImage.with_call(matcher_pb2.MatchImageRequest(image=image), metadata=md, timeout=30)
        returned.append(everything_returned(reply, metadata=call.trailing_metadata()))
        assert {m.entry_id for m in reply.matches} == {"near-pdq", "near-phash"}  # it matched, by id only
        queries = [hashes_pb2.Hash(algorithm=PDQ, value=own["pdq"]), hashes_pb2.Hash(algorithm=PHASH, value=own["phash"]),
                   hashes_pb2.Hash(algorithm=PDQ, value=flip(listed["pdq"], 1))]
        reply, call = matcher.MatchHashes.with_call(matcher_pb2.MatchHashesRequest(hashes=queries), metadata=md,
                                                    timeout=30)
        returned.append(everything_returned(reply, metadata=call.trailing_metadata()))
        assert len(reply.matches) >= 3 and all(m.distance > 0 for m in reply.matches)
        stream = matcher.MatchImageStream(iter([
            matcher_pb2.MatchImageStreamRequest(request_id="a", request=matcher_pb2.MatchImageRequest(image=image)),
            matcher_pb2.MatchImageStreamRequest(request_id="b", request=matcher_pb2.MatchImageRequest(image=b"bad")),
        ]), metadata=md, timeout=30)
        responses = list(stream)
        assert {r.request_id for r in responses} == {"a", "b"}
        returned.append(everything_returned(*responses, metadata=stream.trailing_metadata()))
        # Lists reads that would show values are not the match role's.
        lists = lists_pb2_grpc.ListsServiceStub(channel)
        for call_, request in ((lists.GetList, lists_pb2.GetListRequest(name="secret-list")),
                               (lists.ExportHashes, lists_pb2.ExportHashesRequest(list_name="secret-list"))):
            error = rpc_error(call_, request, metadata=md, timeout=10)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            returned.append((error.details() or "").encode() + repr(error.trailing_metadata()).encode())

    everything = b"\n".join(returned)
    assert own["pdq"].encode() in everything  # the search works: the query's own hash is there
    for form in secrets_listed:
        assert form not in everything


# -- export: curate only, audited -----------------------------------------------------------------

def test_export_is_curate_only_audited_and_loads_back(
    server_factory: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    srv = secure_server(server_factory)
    curator = new_key(srv.address, srv.data_dir, "curator-bo", ["curate"])
    pipeline = new_key(srv.address, srv.data_dir, "pipeline", ["match"])
    entries = [HashEntry("pdq", secrets.token_hex(32), label=f"l{i}", id=f"e{i}", source="feed-7") for i in range(2500)]
    entries.append(HashEntry("md5", secrets.token_hex(16), id="digest"))
    with Client(srv.address, api_key=curator) as c:
        c.create_list("known")
        c.upload_hashes("known", entries)
        with caplog.at_level(logging.INFO, logger="hashmatch.audit"):
            exported = list(c.export_hashes("known"))
        assert sorted((e.id, e.hash, e.label or "") for e in exported) == sorted(
            (e.id, e.hash, e.label or "") for e in entries)
        c.create_list("copy")
        assert c.upload_hashes("copy", exported).added == len(entries)
        with pytest.raises(ListNotFound):
            list(c.export_hashes("missing"))
    key_id = curator.split("_")[1]
    assert f"list known exported ({len(entries)} entries) by curator-bo (key {key_id})" in caplog.text
    assert f"ExportHashes by curator-bo (key {key_id}) on known: OK" in caplog.text

    with Client(srv.address, api_key=pipeline) as c, pytest.raises(PermissionDenied):
        list(c.export_hashes("known"))

    out = tmp_path / "known.csv"
    code = cli_main(["--server", srv.address, "--api-key", curator, "lists", "export", "known", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(entries) and rows[0].keys() == {"hash", "algorithm", "label", "id", "source"}
    code = cli_main(["--server", srv.address, "--api-key", curator, "lists", "create", "from-csv"])
    code += cli_main(["--server", srv.address, "--api-key", curator, "lists", "load", "from-csv", str(out)])
    assert code == 0, capsys.readouterr().err
    with Client(srv.address, api_key=curator) as c:
        assert c.get_list("from-csv").entry_count == len(entries)


# -- nothing of an upload is kept -----------------------------------------------------------------

def distinctive_image() -> tuple[bytes, bytes]:
    """A PNG with a unique text chunk and unique pixels; (file bytes, the marker)."""
    marker = f"hm-upload-marker-{secrets.token_hex(16)}".encode()
    picture = photo(secrets.randbelow(10_000) + 5000, (320, 240))
    noise = Image.frombytes("RGB", (32, 32), secrets.token_bytes(32 * 32 * 3))
    picture.paste(noise, (10, 10))
    info = PngInfo()
    info.add_text("Comment", marker.decode())
    return encode(picture, "PNG", pnginfo=info), marker


def files_under(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for folder in folders for p in folder.rglob("*") if p.is_file()}


def traces_of(image: bytes, marker: bytes, hashes: Iterable[str]) -> list[bytes]:
    middle = len(image) // 2
    needles = [marker, image[middle:middle + 48], image[-64:-16]]
    return needles + [form for h in hashes for form in forms(h)]


def test_no_uploaded_image_is_written_to_the_data_folder_logs_or_temp(tmp_path: Path) -> None:
    data, temp = tmp_path / "data", tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "TEMP": str(temp), "TMP": str(temp)}
    proc = ServerProcess(data, "--log-level", "DEBUG", env=env)
    image, marker = distinctive_image()
    bad = b"GIF89a" + marker + secrets.token_bytes(64)
    try:
        key = admin_key(data)
        with Client(proc.address, api_key=key) as c:
            c.create_list("some-list")
            c.upload_hashes("some-list", [HashEntry("pdq", secrets.token_hex(32), id="x")])
            result = c.match_image(image)
            hashed = c.hash_image(image)
            streamed = list(c.match_image_stream([("one", image), ("bad", bad)]))
            errors = []
            for call in (lambda: c.match_image(bad), lambda: c.hash_image(bad)):
                try:
                    call()
                except Exception as exc:  # noqa: BLE001 - the message is what is checked
                    errors.append(str(exc).encode() + repr(exc).encode())
    finally:
        assert proc.stop() == 0
    by_id = {r.request_id: r for r in streamed}
    assert by_id["one"].ok and not by_id["bad"].ok and len(errors) == 2
    hashes = {h.value for h in (*result.hashes, *hashed.hashes)}
    assert len(hashes) == 4
    logs = (proc.stderr + "".join(proc.stdout_lines)).encode()
    assert b'"request"' in logs or b"request" in logs  # the log is there and was searched
    kept = files_under(data, temp)
    assert any(p.name == "hashmatch.sqlite3" for p in kept)
    for needle in traces_of(image, marker, hashes):
        for path, content in kept.items():
            assert needle not in content, f"{needle[:20]!r}... found in {path}"
        assert needle not in logs
        for message in errors:
            assert needle not in message
    error_text = b"".join(errors) + by_id["bad"].error.details.encode()
    assert marker not in error_text and b"GIF89a" not in error_text


def test_no_image_or_hash_reaches_the_python_logs(server_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = secure_server(server_factory)
    image, marker = distinctive_image()
    caplog.set_level(logging.DEBUG)
    with Client(srv.address, api_key=admin_key(srv.data_dir)) as c:
        hashes = {h.value for h in c.match_image(image).hashes}
        with pytest.raises(Exception):
            c.match_image(b"\x89PNG\r\n\x1a\n" + marker)
    text = caplog.text.encode()
    assert text  # requests were logged
    for needle in traces_of(image, marker, hashes):
        assert needle not in text


def test_the_match_log_names_the_upload_hashes_only_when_asked(tmp_path: Path) -> None:
    """--log-hashes (off by default, see the test above): each match or hash request's log line
    names the upload's hashes; still never the image, nor a listed hash the upload did not have."""
    data = tmp_path / "data"
    proc = ServerProcess(data, "--log-hashes", "--log-format", "json")
    image, marker = distinctive_image()
    listed = secrets.token_hex(32)
    try:
        with Client(proc.address, api_key=admin_key(data)) as c:
            c.create_list("some-list")
            c.upload_hashes("some-list", [HashEntry("pdq", listed, id="x")])
            result = c.match_image(image)
            streamed = list(c.match_image_stream([("img-7", image)]))
            sent = flip(listed, 3)
            c.match_hashes([("pdq", sent)])
            # A refused call's hashes are not logged: anyone could write anything there.
            scribble = "bad" + secrets.token_hex(30) + "z"
            with pytest.raises(Exception):
                c.match_hashes([("pdq", scribble)])
    finally:
        assert proc.stop() == 0
    assert streamed[0].ok
    lines = [json.loads(line) for line in (proc.stderr + "".join(proc.stdout_lines)).splitlines()
             if line.startswith("{")]
    by_method = {}
    for line in lines:
        if "hashes" in line:
            by_method.setdefault((line["message"], line["method"].rsplit("/", 1)[1]), []).append(line)
    pdq = next(h.value for h in result.hashes if h.algorithm.value == "pdq")
    sha256 = next(h.value for h in result.hashes if h.algorithm.value == "sha256")
    image_line = by_method[("request", "MatchImage")][0]
    assert f"pdq:{pdq}" in image_line["hashes"] and f"sha256:{sha256}" in image_line["hashes"]
    stream_line = by_method[("stream image", "MatchImageStream")][0]
    assert stream_line["image_request_id"] == "img-7" and f"pdq:{pdq}" in stream_line["hashes"]
    assert [line["hashes"] for line in by_method[("request", "MatchHashes")]] == [[f"pdq:{sent}"]]
    logs = (proc.stderr + "".join(proc.stdout_lines)).encode()
    for needle in traces_of(image, marker, []):
        assert needle not in logs
    assert listed.encode() not in logs  # listed, but never uploaded
    assert scribble.encode() not in logs
