"""The 8 orientations of a picture from the 2-D DCT coefficients of at most 4 of them, without
touching a pixel again.

Transposing a picture transposes its 2-D DCT coefficients, and every one of the 8 orientations is
the transpose of one of the 4 "mirrors" (the picture, mirrored top to bottom, left to right, and
both): ROTATE_90 is the transpose of FLIP_HORIZONTAL, ROTATE_270 of FLIP_VERTICAL, TRANSVERSE of
ROTATE_180, TRANSPOSE of ORIGINAL. So each hash needs the coefficients of the 4 mirrors only.

Those can come from the one DCT as well: for a DCT-II over N samples, mirroring the samples
(n -> N-1-n) multiplies frequency k by (-1)**k (:func:`mirrors_by_sign`). That is exact for pHash
(imagehash's 32x32 resize is symmetric up to rounding). PDQ's downsampling is not mirror-symmetric,
so hashing.pdq computes its mirrors from mirrored sampling weights instead (hashing.jarosz).

A hash then thresholds each variant at that variant's own median, as it does the original.
``Orientation`` names follow Pillow's ``Image.transpose``: the ROTATE_90 variant is the hash of the
picture turned 90 degrees counter-clockwise. (Meta's pdqDihedralHash256es names these Rotate90,
Rotate180, Rotate270, FlipY = FLIP_HORIZONTAL, FlipX = FLIP_VERTICAL, FlipPlus1 = TRANSPOSE,
FlipMinus1 = TRANSVERSE.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .orientation import Orientation

#: The orientations that are the picture mirrored (or not); the other 4 are their transposes.
MIRRORS: tuple[Orientation, ...] = (
    Orientation.ORIGINAL,
    Orientation.FLIP_VERTICAL,
    Orientation.FLIP_HORIZONTAL,
    Orientation.ROTATE_180,
)
# orientation -> (the mirror it is, or is the transpose of; transposed?)
_FROM_MIRROR: dict[Orientation, tuple[Orientation, bool]] = {
    **{mirror: (mirror, False) for mirror in MIRRORS},
    Orientation.TRANSPOSE: (Orientation.ORIGINAL, True),
    Orientation.ROTATE_90: (Orientation.FLIP_HORIZONTAL, True),  # J[y][x] = I[x][W-1-y]
    Orientation.ROTATE_270: (Orientation.FLIP_VERTICAL, True),  # J[y][x] = I[H-1-x][y]
    Orientation.TRANSVERSE: (Orientation.ROTATE_180, True),
}


def mirrors_needed(orientations: Sequence[Orientation]) -> tuple[Orientation, ...]:
    """The mirrors whose coefficients ``orientations`` need, in MIRRORS order."""
    needed = {_FROM_MIRROR[o][0] for o in orientations}
    return tuple(m for m in MIRRORS if m in needed)


def mirrors_by_sign(coefficients: np.ndarray, first_frequency: int) -> dict[Orientation, np.ndarray]:
    """The 4 mirrors' coefficients from the original's, by negating odd frequencies.

    Row/column index 0 of ``coefficients`` is frequency ``first_frequency``.
    """
    odd = (np.arange(coefficients.shape[0]) + first_frequency) % 2 == 1
    sign = np.where(odd, -1, 1).astype(coefficients.dtype)
    return {
        Orientation.ORIGINAL: coefficients,
        Orientation.FLIP_VERTICAL: coefficients * sign[:, None],
        Orientation.FLIP_HORIZONTAL: coefficients * sign[None, :],
        Orientation.ROTATE_180: coefficients * sign[:, None] * sign[None, :],
    }


def variants(mirrors: Mapping[Orientation, np.ndarray], orientations: Sequence[Orientation]) -> np.ndarray:
    """Stacked coefficients, shape (len(orientations), n, n), in the order asked for."""
    out = []
    for orientation in orientations:
        mirror, transposed = _FROM_MIRROR[orientation]
        out.append(mirrors[mirror].T if transposed else mirrors[mirror])
    return np.stack(out)
