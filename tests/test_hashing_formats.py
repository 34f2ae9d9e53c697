"""What phones upload (HEIC/HEIF) and AVIF decode and hash; fast mode decodes JPEGs at reduced scale.

HEIF comes through the pillow-heif plugin (libheif), AVIF through Pillow's own plugin (libavif).
Each test makes its file with the same libraries, then checks our hashes against the reference
libraries on the decoded picture, and that they are close to the picture before lossy encoding.
"""

from __future__ import annotations

import io

import pytest
from imagegen import animation, encode, photo, reference_image_hashes
from PIL import Image

from hashmatch.hashing import PERCEPTUAL, Algorithm, InvalidImage, hash_image, hash_pil_image
from hashmatch.hashing.decode import FAST_MIN_SIDE, SUPPORTED_FORMATS


def _ours(data: bytes, **kwargs) -> dict[Algorithm, tuple[str, int | None]]:
    return {r.algorithm: (str(r.hash), r.quality) for r in hash_image(data, PERCEPTUAL, **kwargs).results}


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heif_and_avif_decode_and_hash(fmt: str) -> None:
    assert fmt in SUPPORTED_FORMATS
    if fmt not in Image.SAVE:
        pytest.skip(f"no {fmt} encoder here")
    picture = photo(50, (400, 300))
    data = encode(picture, fmt, quality=90)
    result = hash_image(data, PERCEPTUAL)
    assert (result.format, result.width, result.height, result.frame_count) == (fmt, 400, 300, 1)
    with Image.open(io.BytesIO(data)) as opened:
        assert _ours(data) == reference_image_hashes(opened)
    before = {r.algorithm: r.hash for r in hash_pil_image(picture, [Algorithm.PDQ, Algorithm.PHASH])}
    after = {r.algorithm: r.hash for r in result.results}
    assert before[Algorithm.PDQ].distance(after[Algorithm.PDQ]) <= 31
    assert before[Algorithm.PHASH].distance(after[Algorithm.PHASH]) <= 10


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heif_and_avif_cut_short_are_invalid(fmt: str) -> None:
    if fmt not in Image.SAVE:
        pytest.skip(f"no {fmt} encoder here")
    data = encode(photo(51, (200, 150)), fmt)
    with pytest.raises(InvalidImage):
        hash_image(data[: len(data) // 2], PERCEPTUAL)


def test_animated_avif_hashes_the_first_frame() -> None:
    if "AVIF" not in Image.SAVE:
        pytest.skip("no AVIF encoder here")
    frames = [photo(52, (160, 120)), photo(53, (160, 120))]
    data = animation(frames, "AVIF", quality=95)
    result = hash_image(data, PERCEPTUAL)
    assert (result.format, result.frame_count) == ("AVIF", 2)
    with Image.open(io.BytesIO(data)) as opened:
        assert _ours(data) == reference_image_hashes(opened)
        opened.seek(1)
        second = reference_image_hashes(opened.convert("RGB"))
    assert _ours(data)[Algorithm.PDQ] != second[Algorithm.PDQ]


# --- fast mode -----------------------------------------------------------------------------------


def test_fast_mode_decodes_big_jpegs_small_and_stays_close() -> None:
    data = encode(photo(54, (2400, 1800)), "JPEG", quality=92)
    exact = hash_image(data, PERCEPTUAL)
    fast = hash_image(data, PERCEPTUAL, fast=True)
    # the file's size is reported, not the reduced decode's
    assert (fast.width, fast.height, fast.format) == (exact.width, exact.height, exact.format) == (2400, 1800, "JPEG")
    drift = {e.algorithm: e.hash.distance(f.hash) for e, f in zip(exact.results, fast.results)}
    print(f"fast-mode drift at 2400x1800 (decoded at 1/4): {drift}")
    assert drift[Algorithm.PDQ] <= 16 and drift[Algorithm.PHASH] <= 4
    assert drift != {a: 0 for a in drift}  # it really decoded something else
    with Image.open(io.BytesIO(data)) as opened:
        opened.draft(None, (FAST_MIN_SIDE, FAST_MIN_SIDE))
        assert opened.size == (600, 450)
        reduced = reference_image_hashes(opened)
    assert _ours(data, fast=True) == reduced  # exactly the hashes of the reduced decode


def test_fast_mode_leaves_other_formats_and_small_jpegs_exact() -> None:
    for data in (encode(photo(55, (1200, 900)), "PNG"), encode(photo(55, (400, 300)), "JPEG")):
        assert _ours(data, fast=True) == _ours(data)
