"""The whole story through the SDK: list known images, then find their re-encodings and nothing else."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import grpc
import pytest
from imagegen import encode, photo, variants

from hashmatch.client import (
    AsyncClient,
    Client,
    HashEntry,
    InvalidArgument,
    MatchImageResult,
    StreamResult,
)
from hashmatch.hashing import hash_image as hash_locally
from hashmatch.hashing.algorithms import Algorithm

PDQ, PHASH = Algorithm.PDQ, Algorithm.PHASH
KNOWN_SEEDS = range(10)
UNRELATED_SEEDS = range(20, 30)
LIST = "known-images"


@dataclass(frozen=True)
class KnownImage:
    seed: int
    entry_id: str
    label: str
    original: bytes
    variants: dict[str, bytes]


@pytest.fixture(scope="module")
def known() -> list[KnownImage]:
    images = []
    for seed in KNOWN_SEEDS:
        picture = photo(seed)
        images.append(
            KnownImage(
                seed=seed,
                entry_id=f"img-{seed:02d}",
                label=("violence", "spam", "csam-test")[seed % 3],
                original=encode(picture, "JPEG", quality=95),
                variants=variants(picture),
            )
        )
    return images


@pytest.fixture(scope="module")
def unrelated() -> list[bytes]:
    return [encode(photo(seed), "JPEG", quality=90) for seed in UNRELATED_SEEDS]


def assert_found(result: MatchImageResult, image: KnownImage, what: str) -> None:
    assert result.matched, f"{what} of image {image.seed} did not match"
    assert {m.entry_id for m in result.matches} == {image.entry_id}, what
    assert PDQ in {m.algorithm for m in result.matches}, what
    for m in result.matches:
        assert m.list_name == LIST
        assert m.label == image.label
        assert 0 <= m.distance <= m.threshold, what
        assert m.threshold == m.algorithm.spec.default_threshold
        assert result.hashes[m.query_index].algorithm is m.algorithm


def stream_requests(known: list[KnownImage], unrelated: list[bytes]) -> list[tuple[str, bytes]]:
    """20 requests: a variant of each known image, 9 unrelated images, a bad one in the middle."""
    kinds = sorted(known[0].variants)
    requests = [(f"known-{k.seed}", k.variants[kinds[k.seed % len(kinds)]]) for k in known]
    requests += [(f"unrelated-{i}", data) for i, data in enumerate(unrelated[:9])]
    requests.insert(10, ("broken", b"\xff\xd8\xff\xe0 truncated, not an image"))
    assert len(requests) == 20
    return requests


def check_stream(results: list[StreamResult], requests: list[tuple[str, bytes]], known: list[KnownImage]) -> None:
    assert sorted(r.request_id for r in results) == sorted(rid for rid, _ in requests)
    by_id = {r.request_id: r for r in results}
    broken = by_id.pop("broken")
    assert broken.result is None and isinstance(broken.error, InvalidArgument)
    assert broken.error.code is grpc.StatusCode.INVALID_ARGUMENT and broken.error.details
    for request_id, r in by_id.items():
        assert r.ok and r.result is not None, request_id
        if request_id.startswith("known-"):
            image = known[int(request_id.removeprefix("known-"))]
            assert_found(r.result, image, f"streamed {request_id}")
        else:
            assert not r.result.matched, request_id


def test_end_to_end_sync(server: Any, known: list[KnownImage], unrelated: list[bytes]) -> None:
    with Client(server.address) as c:
        created = c.create_list(LIST, description="hashes of known images")
        assert created.entry_count == 0

        # The list holds the PDQ and pHash of each original, as the server computes them.
        entries = []
        for image in known:
            hashes = c.hash_image(image.original, [PDQ, PHASH])
            assert [h.algorithm for h in hashes.hashes] == [PDQ, PHASH]
            assert hashes.get(PDQ).quality >= 50  # a real picture, not a flat one
            entries += [HashEntry(h.algorithm, h.value, label=image.label, id=image.entry_id) for h in hashes.hashes]
        uploaded = c.upload_hashes(LIST, entries, batch_size=7)
        assert (uploaded.received, uploaded.added, uploaded.unchanged) == (20, 20, 0)
        assert uploaded.list.entry_counts[PDQ] == 10 and uploaded.list.entry_counts[PHASH] == 10
        assert c.get_list(LIST).entry_count == uploaded.list.entry_count

        # Every re-encoding and resize of a listed image is found: right entry, right label.
        for image in known:
            assert_found(c.match_image(image.original), image, "the original")
            for kind, data in image.variants.items():
                assert_found(c.match_image(data), image, kind)

        # Unrelated pictures match nothing.
        for data in unrelated:
            result = c.match_image(data)
            assert result.matches == (), result.matches

        # A hash computed on the client's side (the image never leaves it) matches too.
        for image in known:
            local = hash_locally(image.variants["jpeg_q70"], [PDQ, PHASH])
            found = c.match_hashes([r.hash for r in local.results], lists=[LIST])
            assert {m.entry_id for m in found} == {image.entry_id}
            assert {m.query_index for m in found} <= {0, 1}
            assert all(m.distance <= m.threshold for m in found)
        assert c.match_hashes([hash_locally(unrelated[0], [PDQ]).results[0].hash]) == ()

        # One stream, 20 requests: the bad image fails alone.
        requests = stream_requests(known, unrelated)
        check_stream(list(c.match_image_stream(requests)), requests, known)


def test_end_to_end_async(server: Any, known: list[KnownImage], unrelated: list[bytes]) -> None:
    async def entries(c: AsyncClient) -> AsyncIterator[HashEntry]:
        for image in known:
            hashes = await c.hash_image(image.original, ["pdq", "phash"])
            for h in hashes.hashes:
                yield HashEntry(h.algorithm, h.value, label=image.label, id=image.entry_id)

    async def story() -> None:
        async with AsyncClient(server.address) as c:
            await c.create_list(LIST)
            uploaded = await c.upload_hashes(LIST, entries(c), batch_size=3)
            assert (uploaded.received, uploaded.added) == (20, 20)

            # Many images at once over the one channel.
            queries = [(image, kind, data) for image in known for kind, data in image.variants.items()]
            results = await asyncio.gather(*(c.match_image(data) for _, _, data in queries))
            for (image, kind, _), result in zip(queries, results):
                assert_found(result, image, kind)
            for result in await asyncio.gather(*(c.match_image(data) for data in unrelated)):
                assert not result.matched

            local = hash_locally(known[3].variants["webp"], [PDQ])
            found = await c.match_hashes([local.results[0].hash])
            assert [m.entry_id for m in found] == [known[3].entry_id]

            requests = stream_requests(known, unrelated)

            async def produce() -> AsyncIterator[tuple[str, bytes]]:
                for request in requests:
                    await asyncio.sleep(0)
                    yield request

            check_stream([r async for r in c.match_image_stream(produce())], requests, known)

    asyncio.run(story())


def test_end_to_end_on_real_photos_through_the_cli_and_the_async_sdk(
    server: Any, shared_dir: Path, tmp_path: Path
) -> None:
    """Real photos (../shared/photos): the CLI hashes some, a CSV of their PDQ and pHash is loaded
    with the CLI, and resized, re-encoded copies are found (CLI, sync and async SDK) while
    unrelated photos are not."""
    import csv
    import io
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    photos = sorted(p for p in (shared_dir / "photos").iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    assert len(photos) >= 8, "../shared/photos holds too few photos"
    listed, unrelated = photos[0:8:2], photos[1:8:2]
    script = Path(sys.executable).parent / "hashmatch"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hashmatch.client.cli"]
    env = {**os.environ, "HASHMATCH_SERVER": server.address}

    def cli(*args: str) -> str:
        done = subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, f"hashmatch {' '.join(args)} exited {done.returncode}: {done.stderr}"
        return done.stdout

    hashed = json.loads(cli("--json", "hash", *map(str, listed), "-a", "pdq,phash"))
    csv_file = tmp_path / "photos.csv"
    with csv_file.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["hash", "algorithm", "label", "id"])
        for path, item in zip(listed, hashed):
            for h in item["hashes"]:
                writer.writerow([h["value"], h["algorithm"], "real", path.stem])
    cli("lists", "create", "photos")
    loaded = json.loads(cli("--json", "lists", "load", "photos", str(csv_file)))
    assert (loaded["received"], loaded["added"]) == (8, 8)

    copies = {}
    for path in listed + unrelated:
        with Image.open(path) as image:
            picture = image.convert("RGB")
        picture = picture.resize((picture.width * 2 // 3, picture.height * 2 // 3), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=75)
        copies[path] = tmp_path / f"copy-{path.stem}.jpg"
        copies[path].write_bytes(out.getvalue())

    found = json.loads(cli("--json", "match", *(str(copies[p]) for p in listed + unrelated)))
    for path, item in zip(listed + unrelated, found):
        ids = {m["entry_id"] for m in item["matches"]}
        assert ids == ({path.stem} if path in listed else set()), (path.name, item["matches"])

    with Client(server.address) as c:
        for path in listed + unrelated:
            ids = {m.entry_id for m in c.match_image(copies[path]).matches}
            assert ids == ({path.stem} if path in listed else set()), path.name

    async def story() -> None:
        async with AsyncClient(server.address) as c:
            results = await asyncio.gather(*(c.match_image(copies[p]) for p in listed + unrelated))
            for path, result in zip(listed + unrelated, results):
                ids = {m.entry_id for m in result.matches}
                assert ids == ({path.stem} if path in listed else set()), path.name
                assert all(m.label == "real" and m.distance <= m.threshold for m in result.matches)

    asyncio.run(story())
