"""AddImages: staff upload an image they hold; the server lists every algorithm's hash of it under
one entry id, and never the image. Real server, real images, real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest
from imagegen import encode, photo

from hashmatch.client import AsyncClient, Client, ImageEntry, InvalidArgument, InvalidImage, ListNotFound
from hashmatch.client.cli import main as cli_main
from hashmatch.hashing import Algorithm, hash_image
from hashmatch.v1 import lists_pb2, lists_pb2_grpc

ALL = list(Algorithm)


def png(seed: int, size: tuple[int, int] = (400, 300)) -> bytes:
    return encode(photo(seed, size), "PNG")


def stored_rows(data_dir: Path, list_name: str) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(data_dir / "hashmatch.sqlite3") as db:
        return db.execute(
            "SELECT e.entry_id, e.algorithm, e.hash FROM all_entries e JOIN lists l ON l.id = e.list_id "
            "WHERE l.name = ? ORDER BY e.algorithm", (list_name,)
        ).fetchall()


def test_an_image_becomes_one_entry_holding_every_algorithm(server: Any) -> None:
    image = png(1)
    expected = {r.hash.algorithm.value: r.hash.value for r in hash_image(image, ALL).results}
    with Client(server.address) as c:
        c.create_list("queue")
        result = c.add_images("queue", [ImageEntry(image, name="first.png", label="cat-a", source="queue-7")])
    (added,) = result.images
    assert added.name == "first.png" and added.hashes_added == len(ALL) and added.other_entry_ids == ()
    assert result.added == len(ALL) and result.list.entry_count == len(ALL)
    rows = stored_rows(server.data_dir, "queue")
    assert {entry_id for entry_id, _, _ in rows} == {added.entry_id}
    assert {algorithm: value for _, algorithm, value in rows} == expected


def test_a_reencoded_copy_matches_the_entry_under_several_algorithms(server: Any) -> None:
    picture = photo(2, (640, 480))
    with Client(server.address) as c:
        c.create_list("queue")
        other = c.add_images("queue", [png(3)]).images[0].entry_id
        entry = c.add_images("queue", [ImageEntry(encode(picture, "PNG"), id="case-42", label="x")]).images[0]
        assert entry.entry_id == "case-42"
        copy = encode(picture.resize((480, 360)), "JPEG", quality=60)
        found = c.match_image(copy)
    by_algorithm = {m.algorithm for m in found.matches if m.entry_id == "case-42"}
    assert {Algorithm.PDQ, Algorithm.PHASH} <= by_algorithm
    assert all(m.entry_id != other for m in found.matches)
    assert all(m.label == "x" and m.confirmed_by is None for m in found.matches)


def test_adding_the_same_image_again_adds_nothing_and_keeps_its_id(server: Any) -> None:
    image = png(4)
    with Client(server.address) as c:
        c.create_list("queue")
        first = c.add_images("queue", [image]).images[0]
        again = c.add_images("queue", [ImageEntry(image, label="relabelled")])
        twice_in_one = c.add_images("queue", [image, image])
        listed = c.get_list("queue")
    assert again.images[0].entry_id == first.entry_id and again.images[0].hashes_added == 0 and again.added == 0
    assert [i.entry_id for i in twice_in_one.images] == [first.entry_id] * 2 and twice_in_one.added == 0
    assert listed.entry_count == len(ALL)
    with sqlite3.connect(server.data_dir / "hashmatch.sqlite3") as db:
        assert {r[0] for r in db.execute("SELECT label FROM all_entries")} == {"relabelled"}


def test_a_reencoded_copy_of_a_listed_image_reports_the_entry_holding_its_hashes(server: Any) -> None:
    picture = photo(5, (320, 240))
    with Client(server.address) as c:
        c.create_list("queue")
        listed = c.add_images("queue", [encode(picture, "PNG")]).images[0]
        # Lossless again (other PNG settings): every perceptual hash is the same, the file digests differ.
        copy = c.add_images("queue", [ImageEntry(encode(picture, "PNG", compress_level=1), name="copy")]).images[0]
    digests = sum(1 for a in Algorithm if not a.spec.perceptual)
    # The digests cannot join the listed entry (it has its own): they form a new one, which says
    # which entry already holds the image's perceptual hashes.
    assert copy.entry_id != listed.entry_id and copy.hashes_added == digests
    assert copy.other_entry_ids == (listed.entry_id,)


def test_several_images_in_one_call_each_get_their_own_entry(server: Any, tmp_path: Path) -> None:
    paths = []
    for seed in range(6, 9):
        path = tmp_path / f"img{seed}.jpg"
        path.write_bytes(encode(photo(seed), "JPEG", quality=92))
        paths.append(path)
    with Client(server.address) as c:
        c.create_list("queue")
        progress: list[int] = []
        result = c.add_images("queue", paths, on_progress=progress.append)
    assert [i.name for i in result.images] == [str(p) for p in paths]
    assert len({i.entry_id for i in result.images}) == 3 and progress == [1, 2, 3]
    assert result.added == 3 * len(ALL)


def test_a_bad_image_fails_the_call_naming_it_and_stores_nothing(server: Any) -> None:
    with Client(server.address) as c:
        c.create_list("queue")
        with pytest.raises(InvalidImage) as caught:
            c.add_images("queue", [png(10), ImageEntry(b"GIF89a not really", name="broken.gif"), png(11)])
        assert "image 2 ('broken.gif')" in str(caught.value)
        with pytest.raises(InvalidImage) as caught:
            c.add_images("queue", [png(10), b"\x89PNG\r\n\x1a\n"])
        assert "image 2" in str(caught.value)
        assert c.get_list("queue").entry_count == 0
        with pytest.raises(ListNotFound):
            c.add_images("nope", [png(10)])


def test_an_id_conflict_names_the_image(server: Any) -> None:
    with Client(server.address) as c:
        c.create_list("queue")
        c.add_images("queue", [ImageEntry(png(12), id="taken")])
        with pytest.raises(InvalidArgument) as caught:
            c.add_images("queue", [png(13), ImageEntry(png(14), name="b.png", id="taken")])
        message = str(caught.value)
        assert "image 2 ('b.png')" in message and "taken" in message
        with pytest.raises(InvalidArgument) as caught:
            c.add_images("queue", [ImageEntry(png(15), id=" padded ")])
        assert "image 1" in str(caught.value)
        assert c.get_list("queue").entry_count == len(ALL)


def test_a_call_without_commit_stores_nothing(server: Any) -> None:
    with grpc.insecure_channel(server.address) as channel:
        lists = lists_pb2_grpc.ListsServiceStub(channel)
        with Client(server.address) as c:
            c.create_list("queue")
        with pytest.raises(grpc.RpcError) as caught:
            lists.AddImages(iter([lists_pb2.AddImagesRequest(
                list_name="queue", images=[lists_pb2.ImageEntry(image=png(16))])]), timeout=30)
        assert caught.value.code() is grpc.StatusCode.ABORTED
        with pytest.raises(grpc.RpcError) as caught:
            lists.AddImages(iter([lists_pb2.AddImagesRequest(images=[lists_pb2.ImageEntry(image=png(16))])]),
                            timeout=30)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "list_name" in caught.value.details()
    with Client(server.address) as c:
        assert c.get_list("queue").entry_count == 0


def test_an_image_over_the_message_limit_is_refused(server_factory: Any) -> None:
    srv = server_factory(max_message_bytes=64 * 1024)
    big = encode(photo(17, (800, 800)), "PNG")
    assert len(big) > 64 * 1024
    with Client(srv.address) as c:
        c.create_list("queue")
        with pytest.raises(Exception) as caught:
            c.add_images("queue", [big])
        assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert c.get_list("queue").entry_count == 0


def test_the_async_client_adds_images_too(server: Any) -> None:
    async def run() -> Any:
        async with AsyncClient(server.address) as c:
            await c.create_list("queue")

            async def images():
                yield ImageEntry(png(18), name="one")
                yield png(19)

            return await c.add_images("queue", images())

    result = asyncio.run(run())
    assert [i.name for i in result.images] == ["one", "image 2"]
    assert result.added == 2 * len(ALL)


def test_cli_add_images(server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.jpg"
    first.write_bytes(png(20))
    second.write_bytes(encode(photo(21), "JPEG", quality=90))
    with Client(server.address) as c:
        c.create_list("queue")
    args = ["--server", server.address, "lists", "add-images", "queue", str(first), str(second), "--label", "q"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "a.png" in out and "b.jpg" in out and f"{2 * len(ALL)} hashes added" in out
    assert cli_main(args) == 0
    assert "0 hashes added" in capsys.readouterr().out
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert cli_main(["--server", server.address, "lists", "add-images", "queue", str(bad)]) != 0
    assert "bad.png" in capsys.readouterr().err


# -- never the image; curate role; audited ---------------------------------------------------------

def test_the_image_is_written_nowhere_only_its_hashes(tmp_path: Path) -> None:
    """Mirrors the upload leak test of test_security_leaks.py for AddImages: a real server process
    with debug logs; neither the data folder, the temporary folder nor the logs hold any part of
    the image, and an error about a bad image does not echo it."""
    import os
    import secrets

    from authkit import ServerProcess, admin_key
    from test_security_leaks import distinctive_image, files_under

    data, temp = tmp_path / "data", tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "TEMP": str(temp), "TMP": str(temp)}
    proc = ServerProcess(data, "--log-level", "DEBUG", env=env)
    image, marker = distinctive_image()
    bad = b"\x89PNG\r\n\x1a\n" + marker + secrets.token_bytes(64)
    try:
        with Client(proc.address, api_key=admin_key(data)) as c:
            c.create_list("queue")
            added = c.add_images("queue", [ImageEntry(image, name="kept.png")])
            with pytest.raises(InvalidImage) as caught:
                c.add_images("queue", [ImageEntry(bad, name="bad.png")])
            assert c.get_list("queue").entry_count == len(ALL)
    finally:
        assert proc.stop() == 0
    assert added.images[0].hashes_added == len(ALL)
    logs = (proc.stderr + "".join(proc.stdout_lines)).encode()
    assert b"AddImages" in logs  # the call was logged, and the log searched
    kept = files_under(data, temp)
    assert any(p.name == "hashmatch.sqlite3" for p in kept)
    middle = len(image) // 2
    for needle in (marker, image[middle:middle + 48], image[-64:-16], image[100:148]):
        for path, content in kept.items():
            assert needle not in content, f"{needle[:20]!r}... found in {path}"
        assert needle not in logs
    message = str(caught.value).encode()
    assert marker not in message and b"bad.png" in message


def test_add_images_needs_the_curate_role_and_is_audited(server_factory: Any) -> None:
    from authkit import admin_key, new_key, secure_server

    from hashmatch.client import PermissionDenied

    srv = secure_server(server_factory)
    curator = new_key(srv.address, srv.data_dir, "curator-ann", ["curate"])
    pipeline = new_key(srv.address, srv.data_dir, "pipeline", ["match"])
    with Client(srv.address, api_key=admin_key(srv.data_dir)) as admin:
        admin.create_list("queue")
    with Client(srv.address, api_key=pipeline) as c:
        with pytest.raises(PermissionDenied):
            c.add_images("queue", [png(30)])
    with Client(srv.address, api_key=curator) as c:
        assert c.add_images("queue", [png(30)]).added == len(ALL)
    trail = srv.server.lists.audit_trail("queue")
    assert trail[0].actor.startswith("curator-ann") and (trail[0].action, trail[0].added) == ("load", len(ALL))
