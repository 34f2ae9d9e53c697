"""Every Pillow pixel mode and odd sizes: same hashes as the reference libraries, and the right colours.

The oracle (imagegen.reference_hashes) is pdqhash on Pillow's RGB conversion and imagehash on the
opened file. The "semantics" tests check what those conversions mean without any oracle: palette
images hash their colours, alpha is ignored, CMYK is not inverted, 16-bit grey is clipped.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from imagegen import encode, photo, reference_hashes, reference_image_hashes
from PIL import Image

from hashmatch.hashing import DIGESTS, PERCEPTUAL, Algorithm, InvalidImage, hash_image, hash_pil_image

SIZE = (96, 72)
ALL = PERCEPTUAL + DIGESTS


def _base() -> Image.Image:
    return photo(11, SIZE)


def _alpha() -> Image.Image:
    return Image.linear_gradient("L").rotate(30).resize(SIZE)


def _grey() -> np.ndarray:
    return np.asarray(_base().convert("L"))


def make(mode: str) -> Image.Image:
    base = _base()
    if mode in ("1", "L", "CMYK", "YCbCr", "LAB", "RGB"):
        return base.convert(mode)
    if mode == "LA":
        return Image.merge("LA", (base.convert("L"), _alpha()))
    if mode == "RGBA":
        image = base.copy()
        image.putalpha(_alpha())
        return image
    if mode == "P":
        return base.quantize(64)
    if mode == "PA":
        image = base.quantize(64).convert("PA")
        image.putalpha(_alpha())
        return image
    if mode == "I;16":  # full 16-bit range: Pillow clips to 255 when making RGB or L
        return Image.fromarray(_grey().astype(np.uint16) * 257)
    if mode == "I":
        return Image.fromarray(_grey().astype(np.int32) * 3 - 100)
    if mode == "F":
        return Image.fromarray(_grey().astype(np.float32) * 1.3 - 20.5)
    raise AssertionError(mode)


# (mode made, file format, mode Pillow decodes it as)
CASES = [
    ("1", "PNG", "1"),
    ("1", "TIFF", "1"),
    ("1", "BMP", "1"),
    ("L", "PNG", "L"),
    ("L", "JPEG", "L"),
    ("L", "TIFF", "L"),
    ("LA", "PNG", "LA"),
    ("LA", "TIFF", "LA"),
    ("P", "PNG", "P"),
    ("P", "GIF", "P"),
    ("P", "TIFF", "P"),
    ("PA", "TIFF", "PA"),
    ("PA", "WEBP", "RGBA"),
    ("RGB", "PNG", "RGB"),
    ("RGB", "JPEG", "RGB"),
    ("RGB", "WEBP", "RGB"),
    ("RGB", "BMP", "RGB"),
    ("RGB", "TIFF", "RGB"),
    ("RGB", "AVIF", "RGB"),
    ("RGBA", "PNG", "RGBA"),
    ("RGBA", "WEBP", "RGBA"),
    ("RGBA", "TIFF", "RGBA"),
    ("CMYK", "JPEG", "CMYK"),
    ("CMYK", "TIFF", "CMYK"),
    ("YCbCr", "TIFF", "YCbCr"),
    ("I;16", "PNG", "I;16"),
    ("I;16", "TIFF", "I;16"),
    ("I", "TIFF", "I"),
    ("F", "TIFF", "F"),
]


def _ours(data: bytes) -> dict[Algorithm, tuple[str, int | None]]:
    result = hash_image(data, ALL)
    assert [r.hash.algorithm for r in result.results] == list(ALL)
    return {r.hash.algorithm: (str(r.hash), r.quality) for r in result.results}


@pytest.mark.parametrize(("mode", "fmt", "decoded"), CASES, ids=[f"{m}-{f}" for m, f, _ in CASES])
def test_mode_equals_reference_libraries(mode: str, fmt: str, decoded: str) -> None:
    if fmt == "AVIF" and "AVIF" not in Image.SAVE:
        pytest.skip("this Pillow has no AVIF encoder")
    data = encode(make(mode), fmt)
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.mode == decoded  # the case really exercises that mode
    assert _ours(data) == reference_hashes(data)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "HSV", "I;16", "I", "F"])
def test_decoded_image_in_every_mode(mode: str) -> None:
    """hash_pil_image on in-memory images, including a mode no file format stores (HSV)."""
    image = _base().convert("HSV") if mode == "HSV" else make(mode)
    assert image.mode == mode
    ours = {r.hash.algorithm: (str(r.hash), r.quality) for r in hash_pil_image(image, PERCEPTUAL)}
    assert ours == reference_image_hashes(image)


# --- what the conversions mean --------------------------------------------------------------


def _perceptual(image_or_data) -> dict[Algorithm, str]:
    if isinstance(image_or_data, bytes):
        results = hash_image(image_or_data, PERCEPTUAL).results
    else:
        results = hash_pil_image(image_or_data, PERCEPTUAL)
    return {r.hash.algorithm: str(r.hash) for r in results}


def test_palette_images_hash_their_colours_not_their_indices() -> None:
    palette = make("P")
    as_rgb = encode(palette.convert("RGB"), "PNG")
    assert _perceptual(encode(palette, "PNG")) == _perceptual(as_rgb)
    assert _perceptual(encode(palette, "GIF")) == _perceptual(as_rgb)
    # Reordering the palette changes every index but no colour: the hashes must not move.
    shuffled = palette.remap_palette(list(reversed(range(len(palette.getpalette()) // 3))))
    assert np.asarray(shuffled).tolist() != np.asarray(palette).tolist()
    assert _perceptual(encode(shuffled, "PNG")) == _perceptual(as_rgb)


@pytest.mark.parametrize(("with_alpha", "without", "fmt"), [("LA", "L", "PNG"), ("RGBA", "RGB", "PNG"), ("PA", "P", "TIFF")])
def test_alpha_is_ignored(with_alpha: str, without: str, fmt: str) -> None:
    # same colour channels, a gradient of transparency over them: not composited, just dropped
    assert _perceptual(encode(make(with_alpha), fmt)) == _perceptual(encode(make(without), fmt))


def test_cmyk_is_converted_not_hashed_raw() -> None:
    rgb = _base()
    cmyk = make("CMYK")
    # lossless: exactly the colours Pillow converts back to
    assert _perceptual(encode(cmyk, "TIFF")) == _perceptual(encode(cmyk.convert("RGB"), "PNG"))
    # JPEG (Adobe, inverted on disk): close to the RGB original, not the near-inverse of it
    ours = hash_image(encode(cmyk, "JPEG", quality=95), [Algorithm.PDQ]).get(Algorithm.PDQ).hash
    original = hash_image(encode(rgb, "PNG"), [Algorithm.PDQ]).get(Algorithm.PDQ).hash
    assert ours.distance(original) <= 16


def test_16_bit_grey() -> None:
    grey = _grey()
    # values within 0..255 in a 16-bit image hash exactly like the 8-bit image
    low = Image.fromarray(grey.astype(np.uint16))
    assert low.mode == "I;16"
    assert _perceptual(encode(low, "PNG")) == _perceptual(encode(Image.fromarray(grey), "PNG"))
    # full range: clipped at 255 (Pillow's conversion; python-threatexchange's I16.png quality 36)
    full = Image.fromarray(grey.astype(np.uint16) * 257)
    clipped = Image.fromarray(np.minimum(grey.astype(np.uint16) * 257, 255).astype(np.uint8))
    assert _perceptual(encode(full, "PNG")) == _perceptual(encode(clipped, "PNG"))


def test_one_bit_images_have_quality() -> None:
    result = hash_image(encode(make("1"), "PNG"), [Algorithm.PDQ]).get(Algorithm.PDQ)
    assert result.quality >= 50  # 0/1 values hashed raw would give quality 0


def test_unconvertible_mode_is_an_invalid_image() -> None:
    lab = encode(make("LAB"), "TIFF")
    assert Image.open(io.BytesIO(lab)).mode == "LAB"
    # PDQ goes through RGB, which Pillow can make from LAB ...
    with Image.open(io.BytesIO(lab)) as opened:
        expected_pdq = reference_image_hashes(opened.convert("RGB"))[Algorithm.PDQ]
    result = hash_image(lab, [Algorithm.PDQ]).get(Algorithm.PDQ)
    assert (str(result.hash), result.quality) == expected_pdq
    # ... but greyscale (all imagehash algorithms) it cannot: a clear error, not a crash
    with pytest.raises(InvalidImage, match="pixel mode 'LAB' cannot be converted to L"):
        hash_image(lab, [Algorithm.PHASH])
    with pytest.raises(InvalidImage, match="pixel mode 'La'"):
        hash_pil_image(Image.new("La", (8, 8)), [Algorithm.PDQ])


# --- odd sizes --------------------------------------------------------------------------------

SIZES = [(1, 1), (2, 2), (3, 4), (1, 37), (37, 1), (1, 300), (300, 1), (2000, 3), (3, 2000), (17, 5), (63, 65)]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF"])
def test_odd_sizes(size: tuple[int, int], fmt: str) -> None:
    data = encode(photo(5, size), fmt)
    result = hash_image(data, ALL)
    assert (result.width, result.height) == size
    ours = {r.hash.algorithm: (str(r.hash), r.quality) for r in result.results}
    assert ours == reference_hashes(data)
    quality = result.get(Algorithm.PDQ).quality
    assert 0 <= quality <= 100
    # The C++ core reads a fixed-size window: a second run must agree (no stray memory read).
    assert hash_image(data, ALL) == result
