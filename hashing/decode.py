"""Open untrusted image bytes once, under hashmatch's own pixel limit, and decode the first frame.

The pixel limit
---------------
Pillow has its own decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, a process-wide global:
a warning above it and ``DecompressionBombError`` above twice it, raised inside ``Image.open``,
``seek`` and some ``load`` paths). hashmatch needs a per-call limit (``max_pixels``) that is the one
and only limit that applies, in a server that hashes on many threads at once, so it must not
change that global.

At import, this module wraps Pillow's check function (``PIL.Image._decompression_bomb_check``, the
single function that every one of those Pillow paths calls) once. The wrapper reads a
``ContextVar``: outside :func:`open_image` it is unset and the wrapper simply calls Pillow's
original check, so every other user of Pillow in the process sees Pillow's behaviour unchanged.
Inside :func:`open_image` (set and reset around the open/seek/load calls, per thread and per
asyncio task) it applies ``max_pixels`` instead and raises :class:`ImageTooLarge` with the
dimensions. Because Pillow runs that check right after parsing the header, a bomb is refused
before any pixel buffer is allocated.

Accepted formats
----------------
Only the formats photos and web images come in are opened (:data:`SUPPORTED_FORMATS`: JPEG/MPO,
PNG/APNG, GIF, WebP, BMP, TIFF, AVIF (Pillow's own plugin, libavif) and HEIC/HEIF (pillow-heif,
libheif)). Pillow's long tail of formats (EPS, which runs Ghostscript; TGA, which has no signature
and so matches random bytes; PSD, ...) is refused as "not a recognised image format".
"""

from __future__ import annotations

import contextvars
import io
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFile, UnidentifiedImageError

from . import buffers
from .errors import ImageError, ImageTooLarge, InvalidImage

# Order matters a little: Pillow tries them in this order against the file's first bytes.
_WANTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "HEIF")

try:  # HEIC/HEIF, what phones upload: libheif through the pillow-heif plugin ([hashing] extra)
    import pillow_heif
except ImportError:  # pragma: no cover - the extra is part of every install that hashes
    pass
else:
    pillow_heif.register_heif_opener()

Image.init()
#: Pillow format names that :func:`open_image` will open. (Camera JPEGs with a multi-picture
#: segment open through the JPEG plugin and report the format "MPO".)
SUPPORTED_FORMATS: tuple[str, ...] = tuple(f for f in _WANTED_FORMATS if f in Image.OPEN)

#: Fast mode: a JPEG is decoded by libjpeg at the smallest of its DCT scales (1/2, 1/4, 1/8) that
#: keeps both sides at least this long (Pillow's ``draft``). 12 MP photos decode at 1/8 (504x378);
#: bench/hashing.py measures the speed and the drift from the exact hashes.
FAST_MIN_SIDE = 256
_DRAFT_FORMATS = {"JPEG", "MPO"}

_REASON_LIMIT = 160
# b'...' / b"..." (with escapes), optionally inside bytearray(...)
_BYTES_LITERAL = re.compile(r"""bytearray\(b(['"])(?:\\.|(?!\1).)*\1\)|\bb(['"])(?:\\.|(?!\2).)*\2""")

_active_max_pixels: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "hashmatch_hashing_max_pixels", default=None
)


def _install_size_guard() -> bool:
    """Wrap Pillow's bomb check once (see the module docstring). Returns False if Pillow lacks it."""
    current = getattr(Image, "_decompression_bomb_check", None)
    if current is None:
        return False
    # Re-importing this module (importlib.reload) must not stack wrappers around stale ones.
    original = getattr(current, "__wrapped__", current) if getattr(current, "_hashmatch_guard", False) else current

    def guarded_check(size: tuple[int, int], *args: Any, **kwargs: Any) -> None:
        limit = _active_max_pixels.get()
        if limit is None:
            return original(size, *args, **kwargs)
        width, height = int(size[0]), int(size[1])
        if width * height > limit:
            raise ImageTooLarge(width, height, limit)
        return None

    guarded_check._hashmatch_guard = True  # type: ignore[attr-defined]
    guarded_check.__wrapped__ = original  # type: ignore[attr-defined]
    Image._decompression_bomb_check = guarded_check
    return True


SIZE_GUARD_INSTALLED = _install_size_guard()


@dataclass
class OpenedImage:
    """An opened image: ``image`` is positioned on the first frame (decoded if asked for)."""

    image: Image.Image
    width: int
    height: int
    format: str
    frame_count: int

    def close(self) -> None:
        self.image.close()


def _short_reason(exc: BaseException) -> str:
    """A one-line reason from a decoder exception, with any bytes literal removed."""
    text = str(exc) or type(exc).__name__
    # Some Pillow messages quote a few bytes of the file (e.g. a PNG chunk id): never echo them.
    text = _BYTES_LITERAL.sub("<bytes>", text)
    text = " ".join(text.split())
    if len(text) > _REASON_LIMIT:
        text = text[: _REASON_LIMIT - 3] + "..."
    return text


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImage(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(width, height, max_pixels)


def _claimed_format(data: bytes) -> str | None:
    """The supported format whose signature ``data`` starts with, if any (Pillow's own test)."""
    prefix = data[:16]
    for name in SUPPORTED_FORMATS:
        try:
            accept = Image.OPEN[name][1]
            if accept is not None and accept(prefix) is True:
                return name
        except Exception:  # a registry shape we do not know: just give the generic message
            return None
    return None


def _draft(image: Image.Image) -> bool:
    """Ask a JPEG decoder for its reduced-scale output (fast mode); True if it will reduce."""
    if image.format not in _DRAFT_FORMATS:
        return False
    before = image.size
    image.draft(None, (FAST_MIN_SIDE, FAST_MIN_SIDE))
    return image.size != before


def _frame_count(image: Image.Image) -> int:
    # GIF, APNG, WebP, TIFF and MPO report n_frames by walking frame headers, not decoding pixels.
    return max(1, int(getattr(image, "n_frames", 1)))


def open_image(data: bytes, *, max_pixels: int, decode: bool, fast: bool = False) -> OpenedImage:
    """Open ``data``, check its size against ``max_pixels`` and, if ``decode``, decode frame 0.

    With ``decode=False`` only the header is parsed (and, for animations, the frame headers
    counted): enough to refuse data that is not an image, not to prove the pixel data intact.
    With ``fast``, a JPEG is decoded at a reduced scale (see :data:`FAST_MIN_SIDE`); ``width`` and
    ``height`` stay the file's, ``image.size`` is what was decoded.
    The caller must ``close()`` the result. Raises InvalidImage or ImageTooLarge.
    """
    if not data:
        raise InvalidImage("image is empty (0 bytes)")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Process-wide Pillow setting that would turn truncated files into half-grey images.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; hashmatch refuses to hash with it")
    token = _active_max_pixels.set(max_pixels)
    image: Image.Image | None = None
    try:
        try:
            image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
            width, height = image.size
            _check_size(width, height, max_pixels)
            frame_count = _frame_count(image)
            if decode:
                if image.tell() != 0:
                    image.seek(0)
                drafted = fast and _draft(image)
                buffers.load(image)
                if not drafted:
                    # A GIF's first frame may extend the canvas; the guard has already vetted it.
                    width, height = image.size
                    _check_size(width, height, max_pixels)
            fmt = image.format or "UNKNOWN"
        except ImageError:
            raise
        except UnidentifiedImageError:
            claimed = _claimed_format(data)
            if claimed is not None:  # Pillow reports a header it cannot parse as "unidentified"
                raise InvalidImage(
                    f"image data is truncated or corrupt: the {claimed} header could not be read"
                ) from None
            raise InvalidImage(
                "not a recognised image format (supported: " + ", ".join(SUPPORTED_FORMATS) + ")"
            ) from None
        except Image.DecompressionBombError as exc:  # only if the size guard could not be installed
            raise InvalidImage(f"image is over Pillow's decompression-bomb limit: {_short_reason(exc)}") from None
        except MemoryError:
            raise
        except Exception as exc:  # Pillow raises many types on hostile input: OSError, SyntaxError, ...
            raise InvalidImage(f"image data is truncated or corrupt: {_short_reason(exc)}") from None
    except BaseException:
        if image is not None:
            image.close()
        raise
    finally:
        _active_max_pixels.reset(token)
    return OpenedImage(image=image, width=width, height=height, format=fmt, frame_count=frame_count)
