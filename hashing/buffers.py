"""Full-resolution pixels between Pillow and numpy without the copies and page faults.

Two costs dominate hashing a 12-megapixel photo once the hashes themselves are cheap:

- ``np.asarray(image)`` goes through ``Image.tobytes()``, re-packing 48 MB (about 60 ms);
- Pillow's allocator hands out fresh memory in 16 MB blocks of 4 kB pages, and the decoder then
  faults in ~12,000 pages (about 25 ms on a 12 MP decode). numpy asks the kernel for transparent
  huge pages for large arrays, so memory numpy allocates faults in a few dozen.

So the decoder writes straight into an array numpy allocated, and the luminance is converted by
Pillow's C loop straight into another one. Both use Pillow's ``Image.core.map_buffer`` (what
``Image.frombuffer`` is built on) and ``ImagingCore.convert_into`` (what ``ImageTk`` uses), which are
not documented API: :data:`ZERO_COPY` says whether this Pillow has them, and every function here
falls back to the documented path (``load()``, ``np.asarray(image.convert("F"))``) with identical
results, only slower. tests/test_hashing_buffers.py checks both paths agree and that the fast one
is in use, so a Pillow upgrade that drops it is noticed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFile

_CORE = getattr(Image, "core", None)
#: Whether this Pillow lets the decoder and the conversion write into numpy's memory.
ZERO_COPY = bool(_CORE is not None and hasattr(_CORE, "map_buffer") and hasattr(_CORE, "new"))
if ZERO_COPY:
    ZERO_COPY = hasattr(_CORE.new("L", (1, 1)), "convert_into")



def _mapped(array: np.ndarray, mode: str, size: tuple[int, int]):
    return _CORE.map_buffer(array, size, "raw", 0, (mode, 0, 1))


def load(image: ImageFile.ImageFile) -> None:
    """``image.load()``; an RGB decode goes into memory numpy allocated (see the module docstring).

    The numpy array stays alive as long as the image does (the mapped core image holds it). If
    the format's loader replaces the prepared memory with its own, that memory is used: nothing
    but speed depends on this.
    """
    if ZERO_COPY and image.mode == "RGB" and getattr(image, "_im", True) is None:
        width, height = image.size
        target = np.empty((height, width, 4), dtype=np.uint8)  # Pillow stores RGB as RGBX
        try:
            image.im = _mapped(target, image.mode, image.size)
        except (AttributeError, TypeError, ValueError):  # a Pillow that maps differently
            pass
    image.load()


def luminance(image: Image.Image) -> np.ndarray:
    """float32 ``0.299 R + 0.587 G + 0.114 B`` of an "RGB" or "L" image, C-contiguous (H x W).

    Pillow's RGB->F conversion computes ``(299 R + 587 G + 114 B) / 1000`` exactly in integers and
    rounds once to float32: bit for bit what pdqhash gets from its float64 formula rounded to
    float32 (the exact value is never within float64 error of a float32 rounding boundary).
    "L" -> "F" is the grey value itself, which is what RGB with R = G = B gives.
    """
    if image.mode not in ("RGB", "L"):
        raise ValueError(f"luminance needs an RGB or L image, got {image.mode!r}")
    if ZERO_COPY:
        width, height = image.size
        out = np.empty((height, width), dtype=np.float32)
        try:
            image.im.convert_into(_mapped(out, "F", image.size))
            return out
        except (AttributeError, TypeError, ValueError):
            pass
    return np.ascontiguousarray(np.asarray(image.convert("F"), dtype=np.float32))


def grey(image: Image.Image) -> tuple[Image.Image, np.ndarray | None]:
    """``image.convert("L")`` of an "RGB" image, written into memory numpy allocated, and that
    memory as an H x W uint8 array, so bands of rows can be handed to Pillow without a copy
    (:func:`band`). Any other mode, or a Pillow without the zero-copy calls: Pillow's own
    ``convert("L")`` and None."""
    if ZERO_COPY and image.mode == "RGB":
        width, height = image.size
        out = np.empty((height, width), dtype=np.uint8)
        try:
            image.im.convert_into(_mapped(out, "L", image.size))
            return Image.frombuffer("L", image.size, out, "raw", "L", 0, 1), out
        except (AttributeError, TypeError, ValueError):
            pass
    return image.convert("L"), None


def band(pixels: np.ndarray, top: int, bottom: int) -> Image.Image:
    """Rows ``top:bottom`` of an H x W uint8 array as a mode "L" image over the same memory."""
    rows = pixels[top:bottom]
    return Image.frombuffer("L", (rows.shape[1], rows.shape[0]), rows, "raw", "L", 0, 1)
