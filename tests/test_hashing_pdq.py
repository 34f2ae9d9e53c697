"""Our numpy PDQ against Meta's C++ (the ``pdqhash`` package, the oracle): same bits, same quality.

- every Pillow mode and odd sizes (under 5 px, 1xN, very elongated), as files and in memory;
- a few hundred generated pictures of every kind, including the degenerate ones whose hash is
  rounding noise (flat, pure gradients, blocky, narrow): all equal;
- the exact replay of the C++'s downsampling reproduces its 16x16 floats bit for bit, and the
  fast path hands over to it exactly when a result is too close to call;
- the zero-copy Pillow <-> numpy path is in use and agrees with the documented one.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pdqhash
import pytest
from imagegen import encode, photo
from PIL import Image, ImageFilter

from hashmatch.hashing import Algorithm, hash_image, hash_pil_image
from hashmatch.hashing import buffers, jarosz, parallel, pdq


def _oracle(image: Image.Image) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.ascontiguousarray(np.asarray(image.convert("RGB"))))
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex(), int(quality)


def _ours(image: Image.Image) -> tuple[str, int]:
    result = hash_pil_image(image, [Algorithm.PDQ])[0]
    return str(result.hash), result.quality


def _in_mode(image: Image.Image, mode: str) -> Image.Image:
    grey = np.asarray(image.convert("L"))
    if mode == "LA":
        return Image.merge("LA", (image.convert("L"), image.convert("L").rotate(90)))
    if mode == "RGBA":
        out = image.copy()
        out.putalpha(image.convert("L"))
        return out
    if mode == "P":
        return image.quantize(32)
    if mode == "PA":
        out = image.quantize(32).convert("PA")
        out.putalpha(128)
        return out
    if mode == "I;16":
        return Image.fromarray(grey.astype(np.uint16) * 3)
    if mode == "I":
        return Image.fromarray(grey.astype(np.int32) * 2 - 60)
    if mode == "F":
        return Image.fromarray(grey.astype(np.float32) * 1.1 - 7.3)
    return image.convert(mode)


MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "HSV", "I;16", "I", "F"]
SIZES = [(1, 1), (4, 4), (5, 5), (4, 300), (5, 300), (300, 5), (1, 250), (250, 1), (2000, 7), (9, 1500),
         (17, 5), (63, 65), (129, 257), (640, 480)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_mode_and_size_equals_pdqhash(mode: str, size: tuple[int, int]) -> None:
    image = _in_mode(photo(9, size), mode)
    assert image.mode == mode
    assert _ours(image) == _oracle(image)


@pytest.mark.parametrize(("mode", "fmt"), [("1", "PNG"), ("L", "JPEG"), ("P", "GIF"), ("RGBA", "WEBP"),
                                           ("CMYK", "JPEG"), ("I;16", "PNG"), ("F", "TIFF"), ("RGB", "BMP")])
@pytest.mark.parametrize("size", [(3, 3), (5, 700), (700, 5), (333, 222)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_files_in_every_mode_and_odd_sizes(mode: str, fmt: str, size: tuple[int, int]) -> None:
    data = encode(_in_mode(photo(10, size), mode), fmt)
    result = hash_image(data, [Algorithm.PDQ]).get(Algorithm.PDQ)
    with Image.open(io.BytesIO(data)) as opened:
        assert (str(result.hash), result.quality) == _oracle(opened)


def _assorted(count: int) -> list[tuple[str, Image.Image]]:
    """Natural, noisy, blurred, blocky, flat and gradient pictures of random sizes."""
    rng = np.random.default_rng(2026)
    pictures = []
    for i in range(count):
        width, height = int(rng.integers(5, 700)), int(rng.integers(5, 700))
        kind = ("natural", "noise", "blurred", "gradient", "posterised", "flat", "narrow")[i % 7]
        if kind == "natural":
            image = photo(i, (width, height))
        elif kind == "noise":
            image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        elif kind == "blurred":
            image = photo(i, (width, height)).filter(ImageFilter.GaussianBlur(float(rng.uniform(3, 40))))
        elif kind == "gradient":  # quality 0: every coefficient is rounding noise
            ramp = np.add.outer(np.arange(height) * rng.uniform(0, 1), np.arange(width) * rng.uniform(0, 1))
            image = Image.fromarray((ramp % 256).astype(np.uint8))
        elif kind == "posterised":
            image = photo(i, (width, height)).quantize(int(rng.integers(2, 8))).convert("RGB")
        elif kind == "flat":
            image = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(0, 256, 3)))
        else:  # under 128 px on one side: the box filter there is the identity, decimation repeats pixels
            image = photo(i, (int(rng.integers(5, 40)), int(rng.integers(200, 900))))
        pictures.append((f"{kind}-{i}-{image.width}x{image.height}", image))
    return pictures


def test_assorted_pictures_all_equal_pdqhash() -> None:
    pictures = _assorted(210)
    differing = [(name, _ours(image), _oracle(image)) for name, image in pictures if _ours(image) != _oracle(image)]
    print(f"PDQ agreement with pdqhash: {len(pictures) - len(differing)}/{len(pictures)} pictures bit-exact")
    assert differing == []


@pytest.mark.parametrize("size", [(64, 64), (5, 5), (700, 9), (301, 517), (1280, 853)])
def test_exact_replay_reproduces_the_cpp_floats(size: tuple[int, int]) -> None:
    """jarosz.downsample_exact + pdq.dct16 give the C++'s 16x16 floats bit for bit."""
    rgb = np.ascontiguousarray(np.asarray(photo(12, size)))
    expected, expected_quality = pdqhash.compute_float(rgb)
    luma = buffers.luminance(Image.fromarray(rgb))
    buffer = jarosz.downsample_exact(luma)
    ours = pdq.dct16(buffer)
    assert np.array_equal(ours.ravel()[::-1], np.asarray(expected, dtype=np.float32))
    assert pdq.quality(buffer) == expected_quality
    # the fast downsample is close (its distance from the C++ is what the fallback bounds allow for)
    fast = jarosz.downsample(luma)
    assert np.abs(fast - buffer).max() < 0.005


def test_fast_result_is_redone_exactly_only_when_too_close_to_call() -> None:
    natural = buffers.luminance(photo(13, (800, 600)))
    buffer = jarosz.downsample(natural)
    assert not pdq._too_close_to_call(buffer, pdq.dct16(buffer))
    ramp = np.add.outer(np.arange(600) * 0.3, np.arange(800) * 0.2).astype(np.float32)
    buffer = jarosz.downsample(ramp)
    assert pdq._too_close_to_call(buffer, pdq.dct16(buffer))  # all coefficients are ~0: noise
    image = Image.fromarray(ramp.astype(np.uint8))
    assert _ours(image) == _oracle(image)


def test_mirrored_downsamples_are_the_mirrored_pictures() -> None:
    luma = buffers.luminance(photo(14, (301, 203)))
    original, flipped_rows, flipped_columns, both = jarosz.downsample_mirrors(luma)
    for mirrored, expected in ((original, luma), (flipped_rows, luma[::-1]), (flipped_columns, luma[:, ::-1]),
                               (both, luma[::-1, ::-1])):
        assert np.allclose(mirrored, jarosz.downsample(np.ascontiguousarray(expected)), atol=1e-4)


def test_zero_copy_path_is_used_and_agrees() -> None:
    assert buffers.ZERO_COPY, "this Pillow lost map_buffer/convert_into: hashing is ~100 ms slower on 12 MP"
    picture = photo(15, (320, 240))
    with Image.open(io.BytesIO(encode(picture, "PNG"))) as opened:
        buffers.load(opened)
        assert opened.tobytes() == picture.tobytes()
        fast = buffers.luminance(opened)
    documented = np.asarray(picture.convert("F"))
    pdqhash_formula = (np.asarray(picture).astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.float32)
    assert np.array_equal(fast, documented) and np.array_equal(fast, pdqhash_formula)
    assert np.array_equal(buffers.luminance(picture.convert("L")), np.asarray(picture.convert("L"), np.float32))


def test_parallel_halves() -> None:
    callers = set()

    def first() -> int:
        callers.add(threading.get_ident())
        return 1

    assert parallel.both(first, lambda: 2) == (1, 2)
    assert parallel.both(first, lambda: 3, parallel=False) == (1, 3)
    with pytest.raises(ZeroDivisionError):
        parallel.both(lambda: 1 // 0, lambda: 2)
    with pytest.raises(KeyError):
        parallel.both(lambda: 1, lambda: {}["x"])


def test_batched_dct_equals_one_at_a_time_bit_for_bit() -> None:
    """The 4 mirrored downsamples go through dct16 in one call: the same float32 bits as one each."""
    rng = np.random.default_rng(5)
    scales = np.array([1e-3, 1.0, 255.0, 1e6], dtype=np.float32)[:, None, None]
    for _ in range(50):
        buffers = (rng.random((4, 64, 64)) * scales).astype(np.float32)
        together = pdq.dct16(buffers)
        for i in range(4):
            assert np.array_equal(together[i].view(np.uint32), pdq.dct16(buffers[i]).view(np.uint32))
