"""Hashing a large image on two threads gives the same hashes as one thread and as the references.

Large uploads are hashed on two threads (hashing.compute): the file digests run during the decode,
and pHash's row pass is split by rows between the greyscale thread and the caller
(hashing.phash). These tests pin that the split is exact, whatever the shape, the share of rows,
or whether a pool thread was free at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from collections.abc import Iterator

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imagegen import encode, photo, reference_hashes
from PIL import Image

from hashmatch.hashing import Algorithm, buffers, parallel, phash
from hashmatch.hashing.compute import _phash_cut, hash_image
from hashmatch.hashing.orientation import ALL_ORIENTATIONS


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(1, 1500),
    height=st.integers(2, 1500),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_row_bands_resize_to_the_same_bytes_as_one_resize(width: int, height: int, share: float, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    if not phash.rows_first(width, height):
        # Pillow runs the column pass first for such shapes: bands of rows would not be exact,
        # and hashing.compute does not split them. Prove the guard is needed, not just cautious.
        return
    cut = min(height - 1, max(1, round(height * share)))
    bands = [phash.row_pass(buffers.band(pixels, 0, cut)), phash.row_pass(buffers.band(pixels, cut, height))]
    assert np.array_equal(phash.coefficients_from_rows(bands), phash.coefficients(Image.fromarray(pixels)))


def test_the_rows_first_guard_is_needed() -> None:
    """For a tall image Pillow resizes columns first; splitting its rows would change the bytes."""
    rng = np.random.default_rng(7)
    differing = 0
    for width, height in [(107, 204), (60, 184), (26, 186), (300, 1400), (500, 1900)]:
        assert not phash.rows_first(width, height)
        pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
        bands = [phash.row_pass(buffers.band(pixels, 0, height // 2)),
                 phash.row_pass(buffers.band(pixels, height // 2, height))]
        differing += not np.array_equal(phash.coefficients_from_rows(bands), phash.coefficients(Image.fromarray(pixels)))
    assert differing >= 3


def test_grey_in_numpy_memory_equals_pillows_and_bands_share_it() -> None:
    picture = photo(3, (640, 480))
    grey, pixels = buffers.grey(picture)
    assert pixels is not None and buffers.ZERO_COPY
    assert np.array_equal(np.asarray(grey), np.asarray(picture.convert("L")))
    band = buffers.band(pixels, 100, 110)
    assert band.size == (640, 10)
    pixels[100, 0] = 255 - pixels[100, 0]
    assert np.asarray(band)[0, 0] == pixels[100, 0]  # the same memory, not a copy
    cmyk_grey, none = buffers.grey(picture.convert("CMYK"))
    assert none is None and np.array_equal(np.asarray(cmyk_grey), np.asarray(picture.convert("CMYK").convert("L")))


@pytest.mark.parametrize("algorithms", [
    [Algorithm.PDQ, Algorithm.PHASH, Algorithm.MD5, Algorithm.SHA256],
    [Algorithm.PHASH],
    [Algorithm.PHASH, Algorithm.DHASH, Algorithm.AHASH, Algorithm.WHASH, Algorithm.PDQ],
])
def test_cut_leaves_rows_to_both_threads(algorithms: list[Algorithm]) -> None:
    for height in (2, 700, 3024):
        cut = _phash_cut(height, algorithms)
        assert 1 <= cut <= height - 1
    # PDQ on the caller's side leaves the greyscale thread more of pHash's rows.
    assert _phash_cut(3000, [Algorithm.PHASH, Algorithm.PDQ]) > _phash_cut(3000, [Algorithm.PHASH])


def _large_uploads() -> dict[str, bytes]:
    wide = photo(21, (1600, 1000))  # 1.6 MP: rows first, split
    tall = photo(22, (700, 1800))  # 1.26 MP: columns first, not split
    return {
        "wide JPEG": encode(wide, "JPEG", quality=92),
        "wide PNG": encode(wide, "PNG"),
        "tall JPEG": encode(tall, "JPEG", quality=92),
        "grey JPEG": encode(wide.convert("L"), "JPEG", quality=92),
        "RGBA PNG": encode(wide.convert("RGBA"), "PNG"),
    }


UPLOADS = _large_uploads()


@pytest.mark.parametrize("name", list(UPLOADS))
def test_large_images_equal_the_references(name: str) -> None:
    data = UPLOADS[name]
    expected = reference_hashes(data)
    algorithms = [Algorithm.PDQ, Algorithm.PHASH, Algorithm.DHASH, Algorithm.AHASH, Algorithm.WHASH,
                  Algorithm.MD5, Algorithm.SHA1, Algorithm.SHA256]
    got = hash_image(data, algorithms, orientations=True)
    for result in got.results:
        if result.hash.algorithm in expected:
            assert result.hash.hex == expected[result.hash.algorithm][0], (name, result.hash.algorithm)
    with Image.open(io.BytesIO(data)) as image:
        assert got.get(Algorithm.PHASH).hash.hex == str(imagehash.phash(image))


@contextlib.contextmanager
def pool_held() -> Iterator[None]:
    """Every thread of hashing's pool kept busy for the duration: work handed to it is not picked up."""
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    blockers = [parallel._get_pool().submit(hold) for _ in range(parallel.WORKERS)]
    try:
        assert started.wait(10)
        yield
    finally:
        release.set()
        for b in blockers:
            b.result(10)


@pytest.mark.parametrize("name", ["wide JPEG", "tall JPEG"])
def test_same_hashes_whether_or_not_a_pool_thread_is_free(name: str) -> None:
    """With the pool thread held busy, everything runs on the caller: the hashes do not change."""
    data = UPLOADS[name]
    free = hash_image(data, orientations=True)
    with pool_held():
        busy = hash_image(data, orientations=True)
    assert [(r.hash, r.quality) for r in busy.results] == [(r.hash, r.quality) for r in free.results]
    assert [(v.hash, v.orientation) for v in busy.variants] == [(v.hash, v.orientation) for v in free.variants]
    assert len(free.variants) == 2 * (len(ALL_ORIENTATIONS) - 1)
    assert free.get(Algorithm.SHA256).hash.value == hashlib.sha256(data).digest()
    assert free.get(Algorithm.MD5).hash.value == hashlib.md5(data).digest()


def test_pending_runs_here_when_the_pool_is_busy_and_raises_in_order() -> None:
    with pool_held():
        ran_on: list[str] = []
        pending = parallel.Pending(lambda: ran_on.append(threading.current_thread().name) or 5)
        assert pending.result() == 5
        assert ran_on == [threading.current_thread().name]

        def fail() -> int:
            raise ValueError("from the work")

        failing = parallel.Pending(fail)
        failing.settle()  # runs here; the error waits for result()
        with pytest.raises(ValueError, match="from the work"):
            failing.result()
    assert _runs_on_the_pool()


def _runs_on_the_pool() -> bool:
    """A free pool thread picks new work up (given a moment to do so before result() is asked)."""
    picked = threading.Event()

    def work() -> str:
        picked.set()
        return threading.current_thread().name

    pending = parallel.Pending(work)
    picked.wait(10)
    return pending.result().startswith("hashmatch-hash")


def test_a_corrupt_large_file_is_refused_and_leaves_no_work_behind() -> None:
    data = UPLOADS["wide JPEG"]
    truncated = data[: len(data) // 2]
    from hashmatch.hashing import InvalidImage

    with pytest.raises(InvalidImage):
        hash_image(truncated, orientations=True)
    assert _runs_on_the_pool()  # nothing of the refused upload holds the pool thread
