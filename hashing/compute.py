"""Image bytes -> hashes, for every algorithm in :mod:`hashmatch.hashing.algorithms`.

Pure library: no gRPC, no files written, nothing logged (least of all image bytes).

What each hash is, exactly
--------------------------
The image is opened once (:func:`hashmatch.hashing.decode.open_image`): the size is checked
against ``max_pixels`` from the header, before any pixel is decoded, then the first frame is
decoded once at full resolution and every perceptual algorithm works from that one decoded
Pillow image.

- **PDQ**: Meta's C++ PDQ core (the ``pdqhash`` package) on ``np.asarray(img.convert("RGB"))``,
  the full-resolution first frame as 8-bit RGB. This is what python-threatexchange (the library
  inside Meta's Hasher-Matcher-Actioner) computes, bit for bit, with its quality. The 256 bits
  are written in the order pdqhash returns them, 4 bits per hex digit (the industry hex form).
  The conversion to RGB is Pillow's, whatever the stored mode:

  * ``P``/``PA`` (palette): the palette colours, never the palette indices;
  * ``CMYK``: Pillow's naive CMYK->RGB (Adobe-inverted JPEGs are un-inverted by the decoder);
    hashing the raw CMYK planes would give a nearly inverted hash;
  * ``1``: black 0, white 255;
  * ``I;16`` / ``I`` / ``F`` (16-bit, 32-bit int, float grey): values are clipped to 0..255,
    not rescaled, exactly as Pillow (and so python-threatexchange) does;
  * ``LA`` / ``RGBA`` / ``PA``: the alpha channel is dropped (not composited on a background).

- **pHash, dHash, aHash, wHash**: imagehash 4.3.2's ``phash``, ``dhash``, ``average_hash`` and
  ``whash`` (defaults: 8x8, Haar) on the same decoded frame; the hex is imagehash's ``str()``.
  Each of those starts with ``image.convert("L")``, so they are given that greyscale image,
  converted once, which is the same computation.

- **MD5, SHA-256**: ``hashlib`` digests of the raw file bytes, as received.

Orientation and frames
----------------------
EXIF orientation is **not** applied: the stored pixels are hashed, as Meta's tools and imagehash
users do, so a hash list made by them matches. (A photo whose tag says "rotate 90" hashes as
stored; an upright re-save of it is a rotation away.) For animations (GIF, APNG, WebP) and
multi-page files (TIFF, MPO) only the first frame is hashed; ``frame_count`` reports how many
there are.

Validation
----------
When only digests are requested no pixel is decoded, but the header is still parsed and the
size checked, so data that is not an image is refused the same way whatever is asked for. Such a
request does not prove the pixel data intact: a truncated JPEG is refused (``InvalidImage``) as
soon as a perceptual hash is requested, but its MD5 alone is returned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import imagehash
import numpy as np
import pdqhash
from PIL import Image

from .algorithms import DEFAULT_ALGORITHMS, Algorithm, Hash
from .decode import SUPPORTED_FORMATS, open_image
from .errors import DEFAULT_MAX_PIXELS, ImageError, ImageTooLarge, InvalidImage

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "HashResult",
    "ImageError",
    "ImageHashes",
    "ImageTooLarge",
    "InvalidImage",
    "hash_image",
    "hash_pil_image",
]

@dataclass(frozen=True)
class HashResult:
    hash: Hash
    quality: int | None  # PDQ quality 0..100; None for every other algorithm

    @property
    def algorithm(self) -> Algorithm:
        return self.hash.algorithm


@dataclass(frozen=True)
class ImageHashes:
    results: tuple[HashResult, ...]  # one per requested algorithm, in request order, no duplicates
    width: int
    height: int
    format: str  # Pillow's format name: "JPEG", "PNG", "GIF", "WEBP", "MPO", ...
    frame_count: int  # 1 for still images; only the first frame is hashed

    def get(self, algorithm: Algorithm) -> HashResult | None:
        for result in self.results:
            if result.hash.algorithm is algorithm:
                return result
        return None


def _normalise_algorithms(algorithms: Sequence[Algorithm | str] | Algorithm | str) -> tuple[Algorithm, ...]:
    if isinstance(algorithms, (Algorithm, str)):
        algorithms = (algorithms,)
    seen: dict[Algorithm, None] = {}
    for item in algorithms:
        if isinstance(item, Algorithm):
            algorithm = item
        elif isinstance(item, str):
            algorithm = Algorithm.parse(item)
        else:
            raise TypeError(f"expected an Algorithm, got {type(item).__name__}")
        seen.setdefault(algorithm, None)
    if not seen:
        raise ValueError("no algorithm requested")
    return tuple(seen)


# --- perceptual hashers: each takes the decoded frame (and a lazily made greyscale copy) ---------


class _Frame:
    """The decoded frame plus the conversions the hashers share, each made at most once."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self._rgb: Image.Image | None = None
        self._grey: Image.Image | None = None

    def _convert(self, mode: str) -> Image.Image:
        try:
            return self.image.convert(mode)
        except ValueError as exc:  # e.g. "LAB" cannot become "L" in Pillow
            raise InvalidImage(
                f"image pixel mode {self.image.mode!r} cannot be converted to {mode} for hashing"
            ) from exc

    @property
    def rgb(self) -> Image.Image:
        if self._rgb is None:
            self._rgb = self.image if self.image.mode == "RGB" else self._convert("RGB")
        return self._rgb

    @property
    def grey(self) -> Image.Image:
        if self._grey is None:
            self._grey = self._convert("L")
        return self._grey


def _pdq(frame: _Frame) -> HashResult:
    pixels = np.asarray(frame.rgb)  # (height, width, 3) uint8, C-contiguous
    bits, quality = pdqhash.compute(pixels)
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.shape != (256,):
        raise RuntimeError(f"pdqhash returned {bits.shape} bits, expected 256")
    return HashResult(Hash(Algorithm.PDQ, np.packbits(bits).tobytes()), int(quality))


def _imagehash(algorithm: Algorithm, function: Callable[[Image.Image], imagehash.ImageHash]) -> Callable[[_Frame], HashResult]:
    def hasher(frame: _Frame) -> HashResult:
        return HashResult(Hash.from_hex(algorithm, str(function(frame.grey))), None)

    return hasher


_PERCEPTUAL_HASHERS: dict[Algorithm, Callable[[_Frame], HashResult]] = {
    Algorithm.PDQ: _pdq,
    Algorithm.PHASH: _imagehash(Algorithm.PHASH, imagehash.phash),
    Algorithm.DHASH: _imagehash(Algorithm.DHASH, imagehash.dhash),
    Algorithm.AHASH: _imagehash(Algorithm.AHASH, imagehash.average_hash),
    Algorithm.WHASH: _imagehash(Algorithm.WHASH, imagehash.whash),
}

_DIGESTS: dict[Algorithm, Callable[[bytes], bytes]] = {
    Algorithm.MD5: lambda data: hashlib.md5(data).digest(),
    Algorithm.SHA256: lambda data: hashlib.sha256(data).digest(),
}

if set(_PERCEPTUAL_HASHERS) | set(_DIGESTS) != set(Algorithm):  # a row added to algorithms.py
    raise RuntimeError("every Algorithm needs a hasher in hashing.compute")


def _hash_frame(image: Image.Image, algorithms: Sequence[Algorithm]) -> dict[Algorithm, HashResult]:
    frame = _Frame(image)
    return {algorithm: _PERCEPTUAL_HASHERS[algorithm](frame) for algorithm in algorithms}


# --- public API ------------------------------------------------------------------------------


def hash_image(
    data: bytes,
    algorithms: Sequence[Algorithm] = DEFAULT_ALGORITHMS,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageHashes:
    """Hash an image file's bytes with each requested algorithm (see the module docstring).

    ``algorithms`` may also hold names ("pdq", "sha-256"); duplicates are dropped, order kept.
    Raises InvalidImage (empty, not an image, truncated/corrupt, unhashable pixel mode),
    ImageTooLarge (width x height over ``max_pixels``, checked before decoding), ValueError for
    an unknown or empty algorithm list or a non-positive ``max_pixels``.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise TypeError(f"image data must be bytes, got {type(data).__name__}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    wanted = _normalise_algorithms(algorithms)
    perceptual = [a for a in wanted if a in _PERCEPTUAL_HASHERS]

    opened = open_image(data, max_pixels=max_pixels, decode=bool(perceptual))
    try:
        results = _hash_frame(opened.image, perceptual) if perceptual else {}
    finally:
        opened.close()
    for algorithm in wanted:
        if algorithm in _DIGESTS:
            results[algorithm] = HashResult(Hash(algorithm, _DIGESTS[algorithm](data)), None)
    return ImageHashes(
        results=tuple(results[a] for a in wanted),
        width=opened.width,
        height=opened.height,
        format=opened.format,
        frame_count=opened.frame_count,
    )


#: hash_pil_image's default: the perceptual members of DEFAULT_ALGORITHMS (PDQ, pHash).
DEFAULT_PERCEPTUAL: tuple[Algorithm, ...] = tuple(a for a in DEFAULT_ALGORITHMS if a in _PERCEPTUAL_HASHERS)


def hash_pil_image(
    image: Image.Image,
    algorithms: Sequence[Algorithm] = DEFAULT_PERCEPTUAL,
) -> tuple[HashResult, ...]:
    """Perceptual hashes of an already decoded Pillow image (its current frame), as hash_image does.

    Digests are refused (ValueError): they are of file bytes, which a decoded image no longer has.
    No size limit applies: the pixels are already in memory.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    wanted = _normalise_algorithms(algorithms)
    digests = [a.name for a in wanted if a in _DIGESTS]
    if digests:
        raise ValueError(
            f"{', '.join(digests)} digest the file's bytes; use hash_image() on the encoded file"
        )
    if image.width <= 0 or image.height <= 0:
        raise InvalidImage(f"image has no pixels ({image.width}x{image.height})")
    results = _hash_frame(image, wanted)
    return tuple(results[a] for a in wanted)
