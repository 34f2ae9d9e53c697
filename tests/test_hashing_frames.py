"""Animations hash their first frame; EXIF orientation is not applied; metadata is reported."""

from __future__ import annotations

import io

import pytest
from imagegen import animation, encode, photo, reference_image_hashes, with_exif_orientation
from PIL import Image, ImageOps

from hashmatch.hashing import PERCEPTUAL, Algorithm, hash_image, hash_pil_image

SIZE = (160, 120)


def _perceptual(data: bytes) -> dict[Algorithm, tuple[str, int | None]]:
    return {r.hash.algorithm: (str(r.hash), r.quality) for r in hash_image(data, PERCEPTUAL).results}


def _image_hashes(image: Image.Image) -> dict[Algorithm, tuple[str, int | None]]:
    return {r.hash.algorithm: (str(r.hash), r.quality) for r in hash_pil_image(image, PERCEPTUAL)}


def test_animated_gif_hashes_frame_zero() -> None:
    first, second = photo(21, SIZE), photo(22, SIZE)
    data = animation([first, second], "GIF")
    result = hash_image(data, PERCEPTUAL)
    assert (result.format, result.frame_count, result.width, result.height) == ("GIF", 2, *SIZE)
    ours = _perceptual(data)
    # frame 0 alone, saved the same way (same quantisation), hashes identically ...
    assert ours == _perceptual(encode(first, "GIF"))
    # ... and so does the decoded frame 0, by the reference libraries
    with Image.open(io.BytesIO(data)) as gif:
        assert reference_image_hashes(gif) == ours
        gif.seek(1)
        frame1 = reference_image_hashes(gif.convert("RGB"))
    # while frame 1 is a different picture altogether
    pdq0, pdq1 = ours[Algorithm.PDQ][0], frame1[Algorithm.PDQ][0]
    assert (int(pdq0, 16) ^ int(pdq1, 16)).bit_count() > 80
    assert ours[Algorithm.PHASH] != frame1[Algorithm.PHASH]


@pytest.mark.parametrize(("fmt", "save_kwargs", "pillow_format"), [("PNG", {}, "PNG"), ("WEBP", {"lossless": True}, "WEBP")])
def test_lossless_animations_hash_exactly_frame_zero(fmt: str, save_kwargs: dict, pillow_format: str) -> None:
    frames = [photo(31, SIZE), photo(32, SIZE), photo(33, SIZE)]
    data = animation(frames, fmt, **save_kwargs)
    result = hash_image(data, PERCEPTUAL)
    assert (result.format, result.frame_count) == (pillow_format, 3)
    assert _perceptual(data) == _image_hashes(frames[0])
    assert _perceptual(data) != _image_hashes(frames[1])


def test_single_frame_counts_one() -> None:
    for fmt in ("JPEG", "PNG", "GIF", "WEBP"):
        assert hash_image(encode(photo(1, SIZE), fmt), [Algorithm.MD5]).frame_count == 1


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_not_applied(orientation: int) -> None:
    picture = photo(41, (200, 120))
    plain = encode(picture, "JPEG", quality=90)
    tagged = with_exif_orientation(picture, orientation, quality=90)
    with Image.open(io.BytesIO(tagged)) as opened:
        assert opened.getexif()[0x0112] == orientation
    result = hash_image(tagged, PERCEPTUAL)
    assert (result.width, result.height) == (200, 120)  # stored size, not the displayed one
    assert _perceptual(tagged) == _perceptual(plain)  # the same stored pixels, the same hashes
    # had we rotated, PDQ would be far away
    with Image.open(io.BytesIO(tagged)) as opened:
        upright = ImageOps.exif_transpose(opened)
    rotated = hash_pil_image(upright, [Algorithm.PDQ])[0].hash
    assert rotated.distance(hash_image(tagged, [Algorithm.PDQ]).get(Algorithm.PDQ).hash) > 50


def test_metadata() -> None:
    for fmt, name in (("JPEG", "JPEG"), ("PNG", "PNG"), ("WEBP", "WEBP"), ("BMP", "BMP"), ("TIFF", "TIFF"), ("GIF", "GIF")):
        result = hash_image(encode(photo(2, (70, 50)), fmt), [Algorithm.PDQ])
        assert (result.format, result.width, result.height, result.frame_count) == (name, 70, 50, 1)
