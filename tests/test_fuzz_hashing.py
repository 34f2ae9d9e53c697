"""Fuzzing the hashing path: mutated images of every accepted format through hash_image.

Seeds: small valid files of every format the service accepts (still and animated, 8- and 16-bit,
CMYK, progressive). Hypothesis mutates them (flipped bits, overwritten, inserted and deleted runs,
truncation, spliced seeds, a header's size fields) and each result goes through hash_image with
every algorithm and the orientations, exact and fast. Allowed outcomes: hashes, InvalidImage or
ImageTooLarge, within a few seconds. Anything else (a crash, another exception type, a hang) fails.

Budget: HASHMATCH_FUZZ_EXAMPLES examples per test (default 1000 each, ~25 s for the file);
e.g. ``HASHMATCH_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz_hashing.py`` for a long run.
"""

from __future__ import annotations

import functools
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imagegen import animation, encode, photo
from PIL import Image

from hashmatch.hashing import DIGESTS, PERCEPTUAL, ImageTooLarge, InvalidImage, hash_image
from hashmatch.hashing.decode import SUPPORTED_FORMATS

EXAMPLES = int(os.environ.get("HASHMATCH_FUZZ_EXAMPLES", "1000"))
SECONDS_PER_INPUT = 5.0  # generous: the slowest valid seed hashes in ~30 ms
MAX_PIXELS = 4_000_000  # mutated size fields beyond this must be refused from the header

# Pillow warns about the corrupt metadata it skips (TIFF tags, EXIF): expected here, not a finding.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@functools.lru_cache(maxsize=1)
def seeds() -> tuple[tuple[str, bytes], ...]:
    picture = photo(60, (48, 36))
    frames = [photo(61, (40, 30)), photo(62, (40, 30))]
    files = [
        ("jpeg", encode(picture, "JPEG", quality=85)),
        ("jpeg-progressive", encode(picture, "JPEG", progressive=True)),
        ("jpeg-cmyk", encode(picture.convert("CMYK"), "JPEG")),
        ("jpeg-big", encode(photo(63, (700, 520)), "JPEG")),  # big enough for fast mode to reduce
        ("png", encode(picture, "PNG")),
        ("png-16bit", encode(Image.fromarray((__import__("numpy").asarray(picture.convert("L")).astype("uint16") * 200)), "PNG")),
        ("png-palette", encode(picture.quantize(16), "PNG")),
        ("apng", animation(frames, "PNG")),
        ("gif", encode(picture, "GIF")),
        ("gif-animated", animation(frames, "GIF")),
        ("webp", encode(picture, "WEBP", quality=80)),
        ("webp-lossless-animated", animation(frames, "WEBP", lossless=True)),
        ("bmp", encode(picture, "BMP")),
        ("tiff", encode(picture, "TIFF", compression="tiff_lzw")),
        ("tiff-rgba", encode(picture.convert("RGBA"), "TIFF")),
    ]
    for fmt in ("AVIF", "HEIF"):
        if fmt in SUPPORTED_FORMATS and fmt in Image.SAVE:
            files.append((fmt.lower(), encode(picture, fmt, quality=70)))
    return tuple(files)


def _mutate(data: bytes, data_strategy) -> bytes:
    out = bytearray(data)
    for _ in range(data_strategy.draw(st.integers(1, 4))):
        kind = data_strategy.draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate", "splice", "size"]))
        at = data_strategy.draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "flip" and out:
            out[at] ^= 1 << data_strategy.draw(st.integers(0, 7))
        elif kind == "overwrite":
            chunk = data_strategy.draw(st.binary(min_size=1, max_size=16))
            out[at : at + len(chunk)] = chunk
        elif kind == "insert":
            out[at:at] = data_strategy.draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del out[at : at + data_strategy.draw(st.integers(1, 256))]
        elif kind == "truncate":
            del out[at:]
        elif kind == "splice":
            _, other = data_strategy.draw(st.sampled_from(seeds()))
            start = data_strategy.draw(st.integers(0, len(other) - 1))
            out[at:] = other[start:]
        else:  # a header's width/height field: big-endian or little-endian 16/32-bit values early on
            position = data_strategy.draw(st.integers(0, min(64, max(0, len(out) - 4))))
            value = data_strategy.draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFF, 0xFFFFFFFF, 0x10000, 65500]))
            width = data_strategy.draw(st.sampled_from([2, 4]))
            order = data_strategy.draw(st.sampled_from(["big", "little"]))
            out[position : position + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, order)
    return bytes(out)


def _hash_within_bounds(data: bytes, **kwargs) -> None:
    started = time.perf_counter()
    try:
        result = hash_image(data, PERCEPTUAL + DIGESTS, max_pixels=MAX_PIXELS, **kwargs)
    except (InvalidImage, ImageTooLarge):
        pass
    else:
        assert result.width * result.height <= MAX_PIXELS
        assert len(result.results) == len(PERCEPTUAL + DIGESTS)
    elapsed = time.perf_counter() - started
    assert elapsed < SECONDS_PER_INPUT, f"{elapsed:.1f} s for one {len(data)}-byte input"


_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # timed by hand above, with a bound that a loaded CI machine still meets
    database=None,  # no .hypothesis folder in the work tree
    derandomize=True,  # the same inputs on every run; raise the budget to explore further
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_seeds_are_valid() -> None:
    assert {name.split("-")[0] for name, _ in seeds()} >= {"jpeg", "png", "gif", "webp", "bmp", "tiff", "apng"}
    for name, data in seeds():
        assert len(hash_image(data, PERCEPTUAL + DIGESTS).results) == 8, name


@_SETTINGS
@given(st.data())
def test_mutated_images_exact(data) -> None:
    name, seed = data.draw(st.sampled_from(seeds()))
    _hash_within_bounds(_mutate(seed, data), orientations=True)


@_SETTINGS
@given(st.data())
def test_mutated_images_fast(data) -> None:
    name, seed = data.draw(st.sampled_from(seeds()))
    _hash_within_bounds(_mutate(seed, data), fast=True)


@pytest.mark.parametrize("cut", [1, 2, 8, 16, 32, 100])
def test_every_seed_cut_short(cut: int) -> None:
    for name, data in seeds():
        _hash_within_bounds(data[: max(1, len(data) - cut * len(data) // 101)])
