"""pHash exactly as imagehash 4.3.2 computes it, keeping the DCT so the 8 orientations come free.

imagehash's ``phash(image)``: ``image.convert("L").resize((32, 32), LANCZOS)``, then
``scipy.fftpack.dct`` along axis 0 and axis 1 of that 32x32 uint8 array, the top-left 8x8 compared
with its ``numpy.median``; ``str()`` reads the 64 booleans row by row, first one most significant.
The same calls on the same greyscale image give the same bits; the shared greyscale image is made
once per upload (hashing.compute) and the 32x32 once per pHash.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.fftpack
from PIL import Image

HASH_SIZE = 8
IMAGE_SIZE = HASH_SIZE * 4  # imagehash's highfreq_factor=4
FIRST_FREQUENCY = 0  # index 0 of the 8x8 is the DC term


def coefficients(grey: Image.Image) -> np.ndarray:
    """The 8x8 lowest DCT frequencies (float64) of a mode "L" image, as imagehash.phash has them."""
    return _dct(np.asarray(grey.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)))


def _dct(pixels: np.ndarray) -> np.ndarray:
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    return dct[:HASH_SIZE, :HASH_SIZE]


# --- the resize in two halves of rows, for two threads ---------------------------------------------
#
# Pillow resamples in two separable passes, each rounded to 8 bits: along rows (to 32 columns) and
# along columns (to 32 rows). It runs the row pass first unless the height shrinks more than twice
# as much as the width (Resample.c, ImagingResampleInner), and the row pass treats every row on its
# own. So when it goes first, any band of rows can be resized to 32 columns separately, the bands
# stacked, and the column pass run on the stack: the same bytes as the one-call resize (checked
# for random sizes in tests/test_hashing_phash_split.py). On a 12 MP photo the row pass is ~3 ms
# per megapixel, the largest single cost of hashing after the decode, and this lets two cores share it.


def rows_first(width: int, height: int) -> bool:
    """Whether Pillow's resize of a ``width`` x ``height`` image to 32x32 starts with the row pass."""
    return not (height - IMAGE_SIZE > 0 and height - IMAGE_SIZE > (width - IMAGE_SIZE) * 2)


def row_pass(band: Image.Image) -> np.ndarray:
    """A band of rows (mode "L") resized to 32 columns: Pillow's first pass, rows unchanged."""
    return np.asarray(band.resize((IMAGE_SIZE, band.height), Image.Resampling.LANCZOS))


def coefficients_from_rows(passed: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`coefficients` of the image whose bands, top to bottom, gave ``passed`` (row_pass)."""
    stacked = np.ascontiguousarray(np.concatenate(passed, axis=0))
    small = Image.fromarray(stacked).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return _dct(np.asarray(small))


def bits_to_bytes(bits: np.ndarray) -> bytes:
    """8x8 booleans -> 8 bytes, row by row, first bit most significant (imagehash's ``str``)."""
    return np.packbits(bits.reshape(-1)).tobytes()


def threshold(stacked: np.ndarray) -> np.ndarray:
    """(k, 8, 8) coefficients -> booleans above each one's median (numpy's: mean of the middle two)."""
    medians = np.median(stacked.reshape(stacked.shape[0], -1), axis=1)
    return stacked > medians[:, None, None]
