"""pHash exactly as imagehash 4.3.2 computes it, keeping the DCT so the 8 orientations come free.

imagehash's ``phash(image)``: ``image.convert("L").resize((32, 32), LANCZOS)``, then
``scipy.fftpack.dct`` along axis 0 and axis 1 of that 32x32 uint8 array, the top-left 8x8 compared
with its ``numpy.median``; ``str()`` reads the 64 booleans row by row, first one most significant.
The same calls on the same greyscale image give the same bits; the shared greyscale image is made
once per upload (hashing.compute) and the 32x32 once per pHash.
"""

from __future__ import annotations

import numpy as np
import scipy.fftpack
from PIL import Image

HASH_SIZE = 8
IMAGE_SIZE = HASH_SIZE * 4  # imagehash's highfreq_factor=4
FIRST_FREQUENCY = 0  # index 0 of the 8x8 is the DC term


def coefficients(grey: Image.Image) -> np.ndarray:
    """The 8x8 lowest DCT frequencies (float64) of a mode "L" image, as imagehash.phash has them."""
    small = grey.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    return dct[:HASH_SIZE, :HASH_SIZE]


def bits_to_bytes(bits: np.ndarray) -> bytes:
    """8x8 booleans -> 8 bytes, row by row, first bit most significant (imagehash's ``str``)."""
    return np.packbits(bits.reshape(-1)).tobytes()


def threshold(stacked: np.ndarray) -> np.ndarray:
    """(k, 8, 8) coefficients -> booleans above each one's median (numpy's: mean of the middle two)."""
    medians = np.median(stacked.reshape(stacked.shape[0], -1), axis=1)
    return stacked > medians[:, None, None]
