"""Image bytes -> hashes, for every algorithm in :mod:`hashmatch.hashing.algorithms`.

Pure library: no gRPC, no files written, nothing logged (least of all image bytes).

What each hash is, exactly
--------------------------
The image is opened once (:func:`hashmatch.hashing.decode.open_image`): the size is checked
against ``max_pixels`` from the header, before any pixel is decoded, then the first frame is
decoded once at full resolution and every perceptual algorithm works from that one decoded
Pillow image.

- **PDQ**: what Meta's C++ PDQ core (the ``pdqhash`` package) computes on
  ``np.asarray(img.convert("RGB"))``, the full-resolution first frame as 8-bit RGB, which is what
  python-threatexchange (the library inside Meta's Hasher-Matcher-Actioner) does. The arithmetic is
  our own numpy version of it (:mod:`hashmatch.hashing.pdq`), tested against ``pdqhash``: same bits
  and quality on every test image (docs/hashing.md gives the measured agreement). The hex form is
  the industry's: the 256-bit number, 4 bits per hex digit. The conversion to RGB is Pillow's,
  whatever the stored mode:

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
  converted once, which is the same computation. pHash repeats imagehash's own steps
  (:mod:`hashmatch.hashing.phash`) to keep its DCT for the orientations.

Orientation variants
--------------------
With ``orientations=True``, PDQ and pHash also give the hashes of the 7 other rotations and mirror
images of the picture, derived from the one DCT (:mod:`hashmatch.hashing.dihedral`), in
``ImageHashes.variants``. They equal hashing the transformed picture up to the few bits that the
downsampling's rounding at the edges moves (tests/test_orientation.py measures it).

Fast mode
---------
With ``fast=True`` a JPEG is decoded by libjpeg at a reduced scale (:data:`decode.FAST_MIN_SIDE`)
and hashed from there: several times faster on camera photos, a few bits from the exact hashes
(bench/hashing.py publishes the drift). Other formats are decoded as usual.

- **MD5, SHA-1, SHA-256**: ``hashlib`` digests of the raw file bytes, as received.

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
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

import imagehash
import numpy as np
from PIL import Image

from . import buffers, dihedral, parallel, pdq, phash
from .algorithms import DEFAULT_ALGORITHMS, Algorithm, Hash
from .decode import SUPPORTED_FORMATS, open_image
from .errors import DEFAULT_MAX_PIXELS, ImageError, ImageTooLarge, InvalidImage
from .orientation import ALL_ORIENTATIONS, Orientation
from .regions import region_crops

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ORIENTED",
    "SUPPORTED_FORMATS",
    "HashResult",
    "ImageError",
    "ImageHashes",
    "ImageTooLarge",
    "InvalidImage",
    "hash_image",
    "hash_pil_image",
]

#: The algorithms whose hashes of the other 7 orientations come from their DCT.
ORIENTED: tuple[Algorithm, ...] = (Algorithm.PDQ, Algorithm.PHASH)

# Below this many decoded pixels, handing half the work to another thread costs more than it saves.
_PARALLEL_MIN_PIXELS = 1_000_000
# Files smaller than this are digested after the decode, on the calling thread (a few hundred us).
_PARALLEL_MIN_BYTES = 256 * 1024


@dataclass(frozen=True)
class HashResult:
    hash: Hash
    quality: int | None  # PDQ quality 0..100; None for every other algorithm
    orientation: Orientation = Orientation.ORIGINAL  # the picture this hash is of
    region: str = "whole"  # or a region variant of hashing.regions: "trimmed", "embedded"

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
    # With orientations=True: for each requested algorithm of ORIENTED, in request order, its
    # hashes of the 7 other orientations, in ALL_ORIENTATIONS order.
    variants: tuple[HashResult, ...] = ()
    # With regions=True: the perceptual hashes (as uploaded, no turns) of each region found inside
    # the image (uniform borders trimmed, the picture embedded in a screenshot), tagged by region.
    region_variants: tuple[HashResult, ...] = ()
    # Seconds spent, by step: "decode", then each algorithm's name (its regions included). For
    # metrics; not part of the answer, so two hashings of one image still compare equal.
    timings: Mapping[str, float] = field(default_factory=dict, compare=False, hash=False)

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


# --- perceptual hashers: each takes the decoded frame and the orientations wanted -----------------


class _Frame:
    """The decoded frame plus the conversions the hashers share, each made at most once.

    The greyscale image is used by one branch and the RGB copy and luminance by the other
    (see _hash_frame), so no attribute is made by two threads.
    """

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self._rgb: Image.Image | None = None
        self._grey: Image.Image | None = None
        #: The greyscale image's memory (H x W uint8) when numpy owns it: bands of it are free.
        self.grey_pixels: np.ndarray | None = None

    def _convert(self, mode: str) -> Image.Image:
        try:
            return self.image.convert(mode)
        except ValueError as exc:  # e.g. "LAB" cannot become "L" in Pillow
            raise InvalidImage(
                f"image pixel mode {self.image.mode!r} cannot be converted to {mode} for hashing"
            ) from exc

    @property
    def grey(self) -> Image.Image:
        if self._grey is None:
            if self.image.mode == "RGB":
                self._grey, self.grey_pixels = buffers.grey(self.image)
            else:
                self._grey = self._convert("L")
        return self._grey

    def luminance(self) -> np.ndarray:
        """PDQ's float32 luminance of the RGB picture (an "L" frame is its own luminance)."""
        if self.image.mode in ("RGB", "L"):
            return buffers.luminance(self.image)
        if self._rgb is None:
            self._rgb = self._convert("RGB")
        return buffers.luminance(self._rgb)


Hasher = Callable[[_Frame, Sequence[Orientation]], list[HashResult]]


def _pdq(frame: _Frame, orientations: Sequence[Orientation]) -> list[HashResult]:
    mirrors, quality = pdq.coefficients(frame.luminance(), dihedral.mirrors_needed(orientations))
    if mirrors is None:  # under 5 pixels on a side: Meta's all-zero hash, quality 0
        return [HashResult(Hash(Algorithm.PDQ, pdq.ZERO), 0, o) for o in orientations]
    bits = pdq.threshold(dihedral.variants(mirrors, orientations))
    return [
        HashResult(Hash(Algorithm.PDQ, pdq.bits_to_bytes(b)), quality, o) for b, o in zip(bits, orientations)
    ]


def _phash(frame: _Frame, orientations: Sequence[Orientation]) -> list[HashResult]:
    return _phash_of(phash.coefficients(frame.grey), orientations)


def _phash_of(coefficients: np.ndarray, orientations: Sequence[Orientation]) -> list[HashResult]:
    mirrors = dihedral.mirrors_by_sign(coefficients, phash.FIRST_FREQUENCY)
    bits = phash.threshold(dihedral.variants(mirrors, orientations))
    return [
        HashResult(Hash(Algorithm.PHASH, phash.bits_to_bytes(b)), None, o) for b, o in zip(bits, orientations)
    ]


def _imagehash(algorithm: Algorithm, function: Callable[[Image.Image], imagehash.ImageHash]) -> Hasher:
    def hasher(frame: _Frame, orientations: Sequence[Orientation]) -> list[HashResult]:
        return [HashResult(Hash.from_hex(algorithm, str(function(frame.grey))), None)]

    return hasher


# The luminance branch (PDQ) and the greyscale branch (imagehash's algorithms): see _hash_frame.
_LUMINANCE_HASHERS: dict[Algorithm, Hasher] = {Algorithm.PDQ: _pdq}
_GREY_HASHERS: dict[Algorithm, Hasher] = {
    Algorithm.PHASH: _phash,
    Algorithm.DHASH: _imagehash(Algorithm.DHASH, imagehash.dhash),
    Algorithm.AHASH: _imagehash(Algorithm.AHASH, imagehash.average_hash),
    Algorithm.WHASH: _imagehash(Algorithm.WHASH, imagehash.whash),
}
_PERCEPTUAL_HASHERS: dict[Algorithm, Hasher] = {**_LUMINANCE_HASHERS, **_GREY_HASHERS}

_DIGESTS: dict[Algorithm, Callable[[bytes], bytes]] = {
    Algorithm.MD5: lambda data: hashlib.md5(data).digest(),
    Algorithm.SHA1: lambda data: hashlib.sha1(data).digest(),
    Algorithm.SHA256: lambda data: hashlib.sha256(data).digest(),
}

if set(_PERCEPTUAL_HASHERS) | set(_DIGESTS) != set(Algorithm):  # a row added to algorithms.py
    raise RuntimeError("every Algorithm needs a hasher in hashing.compute")


#: Called by hash_image with each image's ImageHashes.timings, when set in the caller's context:
#: how a server records hashing time by algorithm without this library knowing about metrics.
timing_sink: ContextVar[Callable[[Mapping[str, float]], None] | None] = ContextVar("timing_sink", default=None)


def _timed(timings: dict[str, float] | None, name: str, started: float) -> None:
    if timings is not None:
        # Each key is written by one thread only (the branches hash disjoint algorithms).
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started


def _digests(
    data: bytes, algorithms: Sequence[Algorithm], timings: dict[str, float] | None = None
) -> dict[Algorithm, list[HashResult]]:
    found = {}
    for a in algorithms:
        started = time.perf_counter()
        found[a] = [HashResult(Hash(a, _DIGESTS[a](data)), None)]
        _timed(timings, a.value, started)
    return found


# What hashing one megapixel costs, in ms, measured on a 12 MP photo (bench/hashing.py's machine):
# the greyscale conversion, pHash's row pass (hashing.phash), each other imagehash resize, and
# PDQ's luminance plus its downsampling. Only their ratios matter: they decide how pHash's row pass
# is shared between the two threads so that both finish together.
_MS_PER_MP = {"grey": 0.75, "phash_rows": 3.0, "other_grey": 3.0, "pdq": 1.95}


def _phash_cut(height: int, algorithms: Sequence[Algorithm]) -> int:
    """How many top rows the greyscale thread resizes for pHash; the caller does the rest after
    its own branch. Balances grey + others + f*rows against pdq + (1-f)*rows."""
    pool = _MS_PER_MP["grey"] + _MS_PER_MP["other_grey"] * sum(
        a in _GREY_HASHERS and a is not Algorithm.PHASH for a in algorithms)
    # The caller's rows can only start once the grey image exists.
    caller = max(_MS_PER_MP["pdq"] if Algorithm.PDQ in algorithms else 0.0, _MS_PER_MP["grey"])
    share = (caller + _MS_PER_MP["phash_rows"] - pool) / (2 * _MS_PER_MP["phash_rows"])
    return min(height - 1, max(1, round(height * min(0.95, max(0.05, share)))))


def _hash_frame(
    image: Image.Image,
    algorithms: Sequence[Algorithm],
    orientations: bool,
    alongside: Callable[[], dict[Algorithm, list[HashResult]]] = dict,
    timings: dict[str, float] | None = None,
) -> dict[Algorithm, list[HashResult]]:
    """algorithm -> [the original's hash, then its variants]; ``alongside()`` (the file digests)
    is collected with the luminance branch, on the calling thread.

    Two threads when the image is large: the pool thread makes the greyscale image and runs the
    imagehash family; the caller runs PDQ. pHash's row pass, the largest cost, is split between
    them by rows (hashing.phash explains why that gives the same bytes)."""
    frame = _Frame(image)
    wanted = {a: ALL_ORIENTATIONS if orientations and a in ORIENTED else (Orientation.ORIGINAL,) for a in algorithms}
    use_pool = image.width * image.height >= _PARALLEL_MIN_PIXELS
    split = (use_pool and Algorithm.PHASH in algorithms and image.mode == "RGB" and image.height > 1
             and phash.rows_first(image.width, image.height))
    cut = _phash_cut(image.height, algorithms) if split else 0
    grey_ready = threading.Event()

    def branch(hashers: dict[Algorithm, Hasher], skip: Algorithm | None = None) -> dict[Algorithm, list[HashResult]]:
        found = {}
        for a in algorithms:
            if a in hashers and a is not skip:
                started = time.perf_counter()
                found[a] = hashers[a](frame, wanted[a])
                _timed(timings, a.value, started)
        return found

    def grey_branch() -> tuple[dict[Algorithm, list[HashResult]], np.ndarray | None, float]:
        try:
            frame.grey  # noqa: B018 - made here, on this thread, before anything else reads it
        finally:
            grey_ready.set()  # the caller waits on it even when the conversion failed
        if split and frame.grey_pixels is not None:
            started = time.perf_counter()
            top = phash.row_pass(buffers.band(frame.grey_pixels, 0, cut))
            return branch(_GREY_HASHERS, skip=Algorithm.PHASH), top, time.perf_counter() - started
        return branch(_GREY_HASHERS), None, 0.0

    greys = any(a in _GREY_HASHERS for a in algorithms)
    pending = parallel.Pending(grey_branch, parallel=use_pool) if greys else None
    bottom: np.ndarray | None = None
    try:
        digests = alongside()
        rest = {**branch(_LUMINANCE_HASHERS), **digests}
        if split and pending is not None:
            pending.settle()  # under way on the pool, or done here if no pool thread was free
            grey_ready.wait()
            if frame.grey_pixels is not None:
                started = time.perf_counter()
                bottom = phash.row_pass(buffers.band(frame.grey_pixels, cut, image.height))
                bottom_seconds = time.perf_counter() - started
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    if pending is None:
        return rest
    grey, top, top_seconds = pending.result()
    if top is not None and bottom is not None:
        started = time.perf_counter()
        grey[Algorithm.PHASH] = _phash_of(phash.coefficients_from_rows((top, bottom)), wanted[Algorithm.PHASH])
        _timed(timings, Algorithm.PHASH.value, started - top_seconds - bottom_seconds)
    return {**grey, **rest}


def _split(
    computed: dict[Algorithm, list[HashResult]], wanted: Sequence[Algorithm]
) -> tuple[tuple[HashResult, ...], tuple[HashResult, ...]]:
    results = tuple(computed[a][0] for a in wanted)
    variants = tuple(v for a in wanted for v in computed[a][1:])
    return results, variants


# --- public API ------------------------------------------------------------------------------


def hash_image(
    data: bytes,
    algorithms: Sequence[Algorithm] = DEFAULT_ALGORITHMS,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    orientations: bool = False,
    fast: bool = False,
    regions: bool = False,
) -> ImageHashes:
    """Hash an image file's bytes with each requested algorithm (see the module docstring).

    ``algorithms`` may also hold names ("pdq", "sha-256"); duplicates are dropped, order kept.
    ``orientations``: also the PDQ and pHash hashes of the 7 other orientations (``variants``).
    ``fast``: decode JPEGs at reduced scale (a few bits of drift; see the module docstring).
    ``regions``: also hash the regions hashing.regions finds in the decoded frame (``region_variants``).
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
    digests = [a for a in wanted if a in _DIGESTS]

    timings: dict[str, float] = {}
    # The digests need no pixel: on a large file they run on the other core during the decode.
    digesting = parallel.Pending(
        lambda: _digests(data, digests, timings), parallel=bool(perceptual) and len(data) >= _PARALLEL_MIN_BYTES
    )
    started = time.perf_counter()
    try:
        opened = open_image(data, max_pixels=max_pixels, decode=bool(perceptual), fast=fast)
    except BaseException:
        digesting.cancel()
        raise
    _timed(timings, "decode", started)
    region_variants: tuple[HashResult, ...] = ()
    try:
        if perceptual:
            computed = _hash_frame(opened.image, perceptual, orientations, digesting.result, timings)
            if regions:
                region_variants = _hash_regions(opened.image, perceptual, timings)
        else:
            computed = digesting.result()
    finally:
        opened.close()
    results, variants = _split(computed, wanted)
    sink = timing_sink.get()
    if sink is not None:
        sink(timings)
    return ImageHashes(
        results=results,
        width=opened.width,
        height=opened.height,
        format=opened.format,
        frame_count=opened.frame_count,
        variants=variants,
        region_variants=region_variants,
        timings=timings,
    )


def _hash_regions(
    frame: Image.Image, algorithms: Sequence[Algorithm], timings: dict[str, float] | None = None
) -> tuple[HashResult, ...]:
    """The hashes of each region found in the already decoded frame: no second decode."""
    found: list[HashResult] = []
    for name, crop in region_crops(frame):
        results, _ = _split(_hash_frame(crop, algorithms, False, timings=timings), algorithms)
        found.extend(replace(r, region=name) for r in results)
    return tuple(found)


#: hash_pil_image's default: the perceptual members of DEFAULT_ALGORITHMS (PDQ, pHash).
DEFAULT_PERCEPTUAL: tuple[Algorithm, ...] = tuple(a for a in DEFAULT_ALGORITHMS if a in _PERCEPTUAL_HASHERS)


def hash_pil_image(
    image: Image.Image,
    algorithms: Sequence[Algorithm] = DEFAULT_PERCEPTUAL,
    *,
    orientations: bool = False,
) -> tuple[HashResult, ...]:
    """Perceptual hashes of an already decoded Pillow image (its current frame), as hash_image does:
    one per algorithm in request order, then (``orientations``) the variants as in ImageHashes.

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
    image.load()
    results, variants = _split(_hash_frame(image, wanted, orientations), wanted)
    return results + variants
