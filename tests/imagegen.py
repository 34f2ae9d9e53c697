"""Deterministic test images for the whole suite: ``from imagegen import photo, encode, variants``.

- :func:`photo` makes a natural-looking RGB picture per seed. Pictures of different seeds are far
  apart under PDQ and pHash, and re-encodings of one picture (:func:`variants`) stay close;
  ``tests/test_hashing_imagegen.py`` proves both.
- :func:`encode`, :func:`animation`, :func:`bomb_png`, :func:`with_exif_orientation` build the
  file bytes the tests send.
- :func:`reference_hashes` / :func:`reference_image_hashes` are the oracle: what the reference libraries themselves (pdqhash as
  python-threatexchange calls it, imagehash, hashlib) give for a file.

How photo() keeps different seeds apart: a smooth random colour field, a gradient and a dozen
random translucent shapes give natural-looking content with plenty of edges (PDQ quality 85+).
Random pictures alone would collide now and then under pHash (64 bits; two random pictures are
32 +- 4 bits apart, so among 50 pictures a few pairs come within 20, and matching all 8
orientations makes that 8 times likelier). So photo() also sets the signs of the 63
low-frequency DCT coefficients that pHash thresholds, to a chosen pattern, with the smallest
luminance correction that reaches the target signs with a margin, a smooth field added to the
picture (a few passes, to absorb clipping). Seeds 0..63 get patterns at least 22 bits apart from
every rotation and mirror image of each other (and of themselves); further seeds get fresh
random patterns.
"""

from __future__ import annotations

import functools
import hashlib
import io
import zlib
from collections.abc import Sequence

import imagehash
import numpy as np
import pdqhash
from PIL import Image, ImageDraw, ImageFilter

from hashmatch.hashing import Algorithm

__all__ = [
    "photo",
    "encode",
    "variants",
    "animation",
    "bomb_png",
    "with_exif_orientation",
    "reference_hashes",
    "reference_image_hashes",
]

# pHash (imagehash): greyscale, LANCZOS to 32x32, 2-D DCT-II (scipy, unnormalised), top-left 8x8
# compared with its median.
_PHASH_N = 32
_PHASH_K = 8
_MARGIN = 1000.0  # smallest |coefficient| wanted, in scipy's unnormalised DCT units
_PASSES = 3
_TABLE = 64  # seeds 0..63 get patterns from the separated table
_SEPARATION = 22  # pHash bits between any two of them, in any orientation of either


_DCT = 2 * np.cos(
    np.pi * np.arange(_PHASH_N)[:, None] * (2 * np.arange(_PHASH_N)[None, :] + 1) / (2 * _PHASH_N)
)


def _balanced_signs(rng: np.random.Generator) -> np.ndarray:
    """An 8x8 pattern of +-1, DC +1, with 8 of each sign in each of the 4 classes of positions by
    (row parity, column parity). Mirroring the picture negates the odd rows or columns of its DCT,
    so every mirror image and rotation of such a pattern is balanced too: the hash of each variant
    is then exactly the transformed pattern (the median falls between the signs)."""
    signs = np.empty((_PHASH_K, _PHASH_K), dtype=np.int64)
    rows, columns = np.indices(signs.shape)
    for parity in ((0, 0), (0, 1), (1, 0), (1, 1)):
        where = np.flatnonzero(((rows % 2) == parity[0]) & ((columns % 2) == parity[1]))
        chosen = np.array([1] * 8 + [-1] * 8)
        if parity == (0, 0):  # the DC term is always above the median: +1, so 7 more +1
            where, chosen = where[1:], np.array([1] * 7 + [-1] * 8)
        signs.flat[where] = rng.permutation(chosen)
    signs[0, 0] = 1
    return signs


def _orbit(signs: np.ndarray) -> np.ndarray:
    """The pattern in all 8 orientations (mirrors by sign, rotations by transposing), flattened."""
    odd = np.where(np.arange(_PHASH_K) % 2 == 1, -1, 1)
    mirrors = (signs, signs * odd[:, None], signs * odd[None, :], signs * odd[:, None] * odd[None, :])
    return np.array([m.ravel() for mirror in mirrors for m in (mirror, mirror.T)])


@functools.lru_cache(maxsize=1)
def _sign_table() -> tuple[np.ndarray, ...]:
    """_TABLE patterns, each at least _SEPARATION bits from every orientation of every other and
    of itself (greedy from a fixed random sequence: deterministic, ~1 s once per process)."""
    rng = np.random.default_rng(0x5EED)
    table: list[np.ndarray] = []
    taken = np.zeros((0, _PHASH_K * _PHASH_K), dtype=np.int64)
    while len(table) < _TABLE:
        candidate = _balanced_signs(rng)
        orbit = _orbit(candidate)
        if (orbit[1:] != orbit[0]).sum(axis=1).min() < _SEPARATION:
            continue  # too close to one of its own rotations or mirror images
        if len(taken) and (orbit[:, None, :] != taken[None, :, :]).sum(axis=2).min() < _SEPARATION:
            continue
        table.append(candidate)
        taken = np.vstack([taken, orbit])
    return tuple(table)


def _target_signs(seed: int) -> np.ndarray:
    table = _sign_table()
    if seed < len(table):
        return table[seed].copy()
    # Further seeds: fresh balanced patterns, about 32 +- 4 bits from everything else.
    return _balanced_signs(np.random.default_rng([seed, 0x5EED]))


def _low_dct(rgb: np.ndarray) -> np.ndarray:
    grey = Image.fromarray(rgb, "RGB").convert("L").resize((_PHASH_N, _PHASH_N), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    return (_DCT @ pixels @ _DCT.T)[:_PHASH_K, :_PHASH_K]


def _natural(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    width, height = size
    # smooth random colour field
    grid = rng.integers(0, 256, (int(rng.integers(3, 6)), int(rng.integers(3, 7)), 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(grid, "RGB").resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    # a broad gradient, as from light falling across the scene
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = ((xx / width - 0.5) * np.cos(angle) + (yy / height - 0.5) * np.sin(angle)) * rng.uniform(40, 120)
    field += ramp[..., None] * rng.uniform(0.5, 1.0, 3).astype(np.float32)
    image = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8), "RGB")
    # translucent shapes: edges and objects
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(int(rng.integers(8, 16))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3)) + (int(rng.integers(120, 256)),)
        x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.2, 1.0) * height
        x1, y1 = x0 + rng.uniform(0.05, 0.5) * width, y0 + rng.uniform(0.05, 0.5) * height
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            points = [(float(rng.uniform(0, width)), float(rng.uniform(0, height))) for _ in range(int(rng.integers(3, 6)))]
            draw.polygon(points, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    # surface texture at a few scales (what gives PDQ its quality), and fine sensor-like grain
    pixels = np.asarray(image, dtype=np.float32)
    for cells, amplitude in ((24, 14.0), (64, 8.0)):
        grid = rng.normal(128, 40, (max(2, cells * height // width), cells)).clip(0, 255).astype(np.uint8)
        texture = np.asarray(Image.fromarray(grid, "L").resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
        pixels += (texture - 128.0)[..., None] * (amplitude / 40.0)
    pixels += rng.normal(0, 4, (height, width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


@functools.lru_cache(maxsize=256)
def _photo(seed: int, size: tuple[int, int]) -> Image.Image:
    width, height = size
    rng = np.random.default_rng([seed, 0x9E37])
    pixels = np.asarray(_natural(rng, size), dtype=np.float64)
    # Steer the low-frequency DCT signs (see the module docstring).
    signs = _target_signs(seed)
    k = np.arange(_PHASH_K)
    weight = np.where(k == 0, 0.5, 1.0)
    basis_y = np.cos(np.pi * k[:, None] * (np.arange(height)[None, :] + 0.5) / height) * weight[:, None]
    basis_x = np.cos(np.pi * k[:, None] * (np.arange(width)[None, :] + 0.5) / width) * weight[:, None]
    for _ in range(_PASSES):
        current = _low_dct(np.clip(pixels, 0, 255).round().astype(np.uint8))
        wanted = signs * np.maximum(np.abs(current), _MARGIN)
        delta = wanted - current
        delta[0, 0] = 0.0
        # inverse of the unnormalised DCT-II, evaluated at full resolution
        correction = basis_y.T @ delta @ basis_x / (_PHASH_N * _PHASH_N)
        pixels = pixels + correction[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")


def photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic natural-looking RGB picture (a fresh copy: callers may modify it)."""
    return _photo(int(seed), (int(size[0]), int(size[1]))).copy()


def encode(image: Image.Image, fmt: str = "JPEG", **save_kwargs) -> bytes:
    """The file bytes of ``image`` saved as ``fmt`` (Pillow's format name) with ``save_kwargs``."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_kwargs)
    return buffer.getvalue()


def variants(image: Image.Image) -> dict[str, bytes]:
    """Re-encodings that must still match the original: PDQ <= 31 and pHash <= 10 bits away."""
    half = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.LANCZOS)
    rgb = image.convert("RGB")
    return {
        "jpeg_q70": encode(rgb, "JPEG", quality=70),
        "half_png": encode(half, "PNG"),
        "webp": encode(image, "WEBP", quality=80),
    }


def animation(frames: Sequence[Image.Image], fmt: str = "GIF", duration: int = 100, **save_kwargs) -> bytes:
    """An animated GIF, PNG (APNG) or WebP of ``frames``."""
    first, *rest = frames
    return encode(first, fmt, save_all=True, append_images=rest, duration=duration, loop=0, **save_kwargs)


@functools.lru_cache(maxsize=8)
def bomb_png(width: int, height: int) -> bytes:
    """A valid, all-black 1-bit PNG of width x height: small on disk, huge once decoded.

    30000x30000 is about 110 kB and takes ~0.4 s to build (cached).
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then zero bits
    compressor = zlib.compressobj(9)
    rows_per_piece = max(1, (1 << 20) // len(row))
    pieces = []
    for start in range(0, height, rows_per_piece):
        pieces.append(compressor.compress(row * min(rows_per_piece, height - start)))
    pieces.append(compressor.flush())
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(pieces)) + chunk(b"IEND", b"")


def with_exif_orientation(image: Image.Image, orientation: int, fmt: str = "JPEG", **save_kwargs) -> bytes:
    """``image`` encoded with an EXIF Orientation tag (1..8); the stored pixels are unchanged."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, fmt, exif=exif.tobytes(), **save_kwargs)


def reference_image_hashes(image: Image.Image) -> dict[Algorithm, tuple[str, int | None]]:
    """algorithm -> (hex, PDQ quality or None) for a Pillow image, by the reference libraries.

    PDQ: pdqhash on ``np.asarray(image.convert("RGB"))`` (python-threatexchange's full-resolution
    RGB path), bits to hex in order. pHash/dHash/aHash/wHash: imagehash's ``str()`` on the image.
    """
    bits, quality = pdqhash.compute(np.asarray(image.convert("RGB")))
    return {
        # bits in order, 4 per hex digit: python-threatexchange's formula, not hashmatch's code
        Algorithm.PDQ: (f"{int(''.join(str(int(b)) for b in bits), 2):064x}", int(quality)),
        Algorithm.PHASH: (str(imagehash.phash(image)), None),
        Algorithm.DHASH: (str(imagehash.dhash(image)), None),
        Algorithm.AHASH: (str(imagehash.average_hash(image)), None),
        Algorithm.WHASH: (str(imagehash.whash(image)), None),
    }


def reference_hashes(data: bytes) -> dict[Algorithm, tuple[str, int | None]]:
    """Every algorithm for a file's bytes, by the reference libraries: the oracle for hash_image.

    The perceptual ones are :func:`reference_image_hashes` of ``Image.open(file)`` (first frame,
    full resolution, no EXIF rotation); MD5/SHA-1/SHA-256 are hashlib's on the bytes.
    """
    with Image.open(io.BytesIO(data)) as image:
        expected = reference_image_hashes(image)
    expected[Algorithm.MD5] = (hashlib.md5(data).hexdigest(), None)
    expected[Algorithm.SHA1] = (hashlib.sha1(data).hexdigest(), None)
    expected[Algorithm.SHA256] = (hashlib.sha256(data).hexdigest(), None)
    return expected
