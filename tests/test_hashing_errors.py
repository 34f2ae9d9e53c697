"""Refusals: bad bytes are InvalidImage, bombs are ImageTooLarge before decoding, bad hex is HashFormatError."""

from __future__ import annotations

import io
import threading
import time
import warnings

import numpy as np
import pytest
from imagegen import bomb_png, encode, photo
from PIL import Image, ImageFile

from hashmatch.hashing import (
    DEFAULT_ALGORITHMS,
    DEFAULT_MAX_PIXELS,
    DIGESTS,
    PERCEPTUAL,
    SPECS,
    Algorithm,
    Hash,
    HashFormatError,
    ImageError,
    ImageTooLarge,
    InvalidImage,
    hash_image,
    hash_pil_image,
)
from hashmatch.hashing import decode as decode_module

ALL = PERCEPTUAL + DIGESTS
TEXT = b"Dear colleague,\nthis is a plain text file, not an image at all.\n"


def _invalid(data: bytes, algorithms=ALL) -> str:
    with pytest.raises(InvalidImage) as caught:
        hash_image(data, algorithms)
    assert isinstance(caught.value, ImageError) and isinstance(caught.value, ValueError)
    return str(caught.value)


def test_empty() -> None:
    assert _invalid(b"") == "image is empty (0 bytes)"
    assert _invalid(b"", [Algorithm.MD5]) == "image is empty (0 bytes)"


def test_text_file_is_not_an_image_even_for_digests() -> None:
    for algorithms in (ALL, [Algorithm.MD5], [Algorithm.SHA256]):
        message = _invalid(TEXT, algorithms)
        assert message.startswith("not a recognised image format")
        assert "JPEG" in message and "PNG" in message  # says what would be accepted
        assert "colleague" not in message  # never echoes the data


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(seed: int) -> None:
    data = np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    message = _invalid(data)
    assert message.startswith("not a recognised image format")


def test_other_formats_are_refused() -> None:
    # Pillow reads these, but they are no photo format and some are risky (EPS runs Ghostscript).
    for fmt in ("PCX", "TGA", "PPM", "ICO", "SGI"):
        data = encode(photo(1, (32, 32)), fmt)
        assert Image.open(io.BytesIO(data)).format == fmt
        assert _invalid(data).startswith("not a recognised image format")
    assert _invalid(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n").startswith("not a recognised")


def test_truncated_jpeg() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    whole = encode(photo(2), "JPEG", quality=90)
    for keep in (0.5, 0.9, 0.999):
        message = _invalid(whole[: int(len(whole) * keep)])
        assert message.startswith("image data is truncated or corrupt: ")
        assert "truncated" in message.split(": ", 1)[1]  # Pillow's reason is passed on
    # a cut inside the header
    message = _invalid(whole[:20])
    assert message.startswith("image data is truncated or corrupt: ")


def test_truncated_png_and_gif() -> None:
    for fmt in ("PNG", "GIF"):
        whole = encode(photo(3, (200, 150)), fmt)
        assert _invalid(whole[: len(whole) // 2]).startswith("image data is truncated or corrupt: ")
        assert _invalid(whole[:10]) == f"image data is truncated or corrupt: the {fmt} header could not be read"


def test_corrupt_png_reason_never_quotes_bytes() -> None:
    whole = encode(photo(3), "PNG")
    second_idat = whole.index(b"IDAT", whole.index(b"IDAT") + 4)
    corrupt = whole[:second_idat] + b"\x01\x02\x03\x04" + whole[second_idat + 4 :]  # a chunk name of junk
    message = _invalid(corrupt)
    # Pillow's own message quotes the four bytes; ours keeps the reason and drops the bytes.
    assert message == "image data is truncated or corrupt: broken PNG file (chunk <bytes>)"


def test_digests_only_parse_the_header_without_decoding(monkeypatch) -> None:
    """Documented choice: a digest-only request checks the header, not the pixel data."""
    truncated = encode(photo(2), "JPEG")[:3000]
    loads = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1))
    result = hash_image(truncated, [Algorithm.MD5])
    assert loads == [] and result.get(Algorithm.MD5) is not None
    assert (result.width, result.height, result.format) == (640, 480, "JPEG")
    monkeypatch.undo()
    assert _invalid(truncated, [Algorithm.PHASH]).startswith("image data is truncated or corrupt")


# --- size limit ---------------------------------------------------------------------------------


def test_bomb_is_refused_from_the_header(monkeypatch) -> None:
    data = bomb_png(30000, 30000)  # ~110 kB of PNG, 900 megapixels decoded
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1))
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as caught:
        hash_image(data, ALL, max_pixels=10_000_000)
    elapsed = time.perf_counter() - started
    assert decoded == []  # refused before any pixel was decoded
    assert elapsed < 1.0
    error = caught.value
    assert str(error) == "image is 30000x30000 = 900000000 pixels, over the limit of 10000000"
    assert (error.width, error.height, error.pixels, error.max_pixels) == (30000, 30000, 900_000_000, 10_000_000)
    assert isinstance(error, ImageError) and isinstance(error, ValueError)
    # digests only: the header is still checked
    with pytest.raises(ImageTooLarge):
        hash_image(data, [Algorithm.SHA256], max_pixels=10_000_000)


def test_default_limit_message_and_pillows_own_limit_does_not_apply() -> None:
    # 400 Mpx is past Pillow's own error threshold (2 x 89.5 Mpx): our error, with our numbers
    with pytest.raises(ImageTooLarge) as caught:
        hash_image(bomb_png(20000, 20000))
    assert str(caught.value) == "image is 20000x20000 = 400000000 pixels, over the limit of 100000000"
    assert DEFAULT_MAX_PIXELS == 100_000_000
    # Raising our limit beyond Pillow's is honoured (digest only: no decode), with no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = hash_image(bomb_png(20000, 10000), [Algorithm.MD5], max_pixels=300_000_000)
        assert (result.width, result.height) == (20000, 10000)
        # between Pillow's warning threshold (89.5 Mpx) and our default: accepted, no warning
        result = hash_image(bomb_png(9500, 9500), [Algorithm.MD5])
        assert result.width == 9500


def test_limit_boundary_applies_to_decoded_images_too() -> None:
    data = encode(photo(4, (100, 80)), "PNG")
    assert hash_image(data, ALL, max_pixels=8000).width == 100
    with pytest.raises(ImageTooLarge, match=r"^image is 100x80 = 8000 pixels, over the limit of 7999$"):
        hash_image(data, ALL, max_pixels=7999)


def test_pillow_global_state_is_untouched() -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLarge):
        hash_image(bomb_png(20000, 20000), max_pixels=1000)
    assert Image.MAX_IMAGE_PIXELS == before
    assert decode_module.SIZE_GUARD_INSTALLED
    # Outside hash_image, Pillow's own check still protects other code in the process.
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb_png(20000, 20000)))


def test_limit_is_per_call_across_threads() -> None:
    """Concurrent calls with different limits do not see each other's limit."""
    small = encode(photo(5, (120, 100)), "PNG")  # 12000 px
    outcomes: dict[str, list] = {"strict": [], "loose": []}
    barrier = threading.Barrier(8)

    def run(kind: str, limit: int) -> None:
        barrier.wait()
        for _ in range(20):
            try:
                hash_image(small, [Algorithm.PDQ], max_pixels=limit)
                outcomes[kind].append("ok")
            except ImageTooLarge:
                outcomes[kind].append("too large")

    threads = [threading.Thread(target=run, args=("strict", 11_999)) for _ in range(4)]
    threads += [threading.Thread(target=run, args=("loose", 12_000)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(outcomes["strict"]) == {"too large"} and len(outcomes["strict"]) == 80
    assert set(outcomes["loose"]) == {"ok"} and len(outcomes["loose"]) == 80


def test_bad_arguments() -> None:
    data = encode(photo(1, (32, 32)), "PNG")
    with pytest.raises(ValueError, match="max_pixels"):
        hash_image(data, max_pixels=0)
    with pytest.raises(ValueError, match="no algorithm"):
        hash_image(data, [])
    with pytest.raises(ValueError, match="unknown algorithm 'sha512'"):
        hash_image(data, ["sha512"])
    with pytest.raises(TypeError):
        hash_image("not bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="MD5"):
        hash_pil_image(photo(1, (32, 32)), [Algorithm.PDQ, Algorithm.MD5])


def test_algorithm_order_duplicates_and_names() -> None:
    data = encode(photo(1, (64, 48)), "PNG")
    result = hash_image(data, [Algorithm.SHA256, "phash", Algorithm.PDQ, Algorithm.PHASH, "SHA-256"])
    assert [r.hash.algorithm for r in result.results] == [Algorithm.SHA256, Algorithm.PHASH, Algorithm.PDQ]
    assert result.get(Algorithm.MD5) is None
    assert result.get(Algorithm.PDQ).quality is not None
    assert all(r.quality is None for r in result.results if r.hash.algorithm is not Algorithm.PDQ)
    default = hash_image(data)
    assert [r.hash.algorithm for r in default.results] == list(DEFAULT_ALGORITHMS)
    assert hash_image(bytearray(data)) == default == hash_image(memoryview(data))


# --- hex ----------------------------------------------------------------------------------------


def test_hex_round_trip_for_every_algorithm() -> None:
    result = hash_image(encode(photo(6), "JPEG"), ALL)
    assert {r.hash.algorithm for r in result.results} == set(Algorithm)
    for item in result.results:
        text = str(item.hash)
        spec = SPECS[item.hash.algorithm]
        assert len(text) == spec.hex_length and text == text.lower()
        assert Hash.from_hex(item.hash.algorithm, text) == item.hash
        assert Hash.from_hex(item.hash.algorithm, text.upper()) == item.hash


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_bad_hex_names_the_problem(algorithm: Algorithm) -> None:
    length = SPECS[algorithm].hex_length
    with pytest.raises(HashFormatError, match=rf"must be {length} hex digits, got {length - 1}"):
        Hash.from_hex(algorithm, "a" * (length - 1))
    with pytest.raises(HashFormatError, match=rf"must be {length} hex digits, got {length + 2}"):
        Hash.from_hex(algorithm, "a" * (length + 2))
    with pytest.raises(HashFormatError, match=r"non-hex character 'g' at position 3"):
        Hash.from_hex(algorithm, "ab" + "g" + "a" * (length - 3))
