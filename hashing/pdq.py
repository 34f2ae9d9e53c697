"""PDQ in numpy: float luminance -> 16x16 DCT -> 256 bits and quality, as Meta's reference computes them.

Meta's C++ core (what ``pdqhash`` binds, and what python-threatexchange calls) does, on the
full-resolution luminance ``0.299 R + 0.587 G + 0.114 B`` (float32):

1. downsampling to 64x64 by box filters and decimation (:mod:`hashmatch.hashing.jarosz`);
2. the quality: the sum of ``|int((u - v) * 100 / 255)|`` over neighbouring pixels of the 64x64,
   divided by 90, at most 100;
3. the DCT-II frequencies 1..16 on each axis of the 64x64 (the DC term is left out): 16x16 floats;
4. bit ``16 i + j`` is set when coefficient ``(i, j)`` is above the median (the 128th smallest);
   the hex form is that 256-bit number, most significant digit first.

Steps 2-4 repeat the C++'s float32 arithmetic operation for operation, so the same 64x64 gives the
same bits and quality. Step 1 is done the fast way (linear algebra), whose 64x64 differs from the
C++'s by the C++'s float32 rounding. That can change a bit only when the two coefficients either
side of the median are closer than the rounding can move them, and the quality only when enough
gradients sit on an integer boundary. :func:`coefficients` checks both against generous bounds
and, when a result is that close to call, redoes step 1 the exact way (bit for bit, ~10x slower):
about 5% of photos, and flat or synthetic pictures whose hash is rounding noise. Pictures
over :data:`EXACT_MAX_PIXELS` keep the fast result (see docs/hashing.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import dihedral, jarosz
from .orientation import Orientation

#: Meta's ``MIN_HASHABLE_DIM``: images narrower or shorter than this hash to all zeros, quality 0.
MIN_DIMENSION = 5
SIZE = 64  # the decimated luminance is SIZE x SIZE
FREQUENCIES = 16  # DCT frequencies 1..16 on each axis

# DCT-II basis rows for frequencies 1..16 over 64 samples, as the C++ builds them: a float32 scale
# times a double cosine, stored as float32.
_DCT = (
    np.float64(np.float32(np.sqrt(2.0 / SIZE)))
    * np.cos(np.pi / 2.0 / SIZE * np.arange(1, FREQUENCIES + 1)[:, None] * (2 * np.arange(SIZE)[None, :] + 1))
).astype(np.float32)
# Its columns as (16, 1) and as (1, 16), ready for the broadcasts of dct16's two passes.
_DCT_COLUMNS = [np.ascontiguousarray(_DCT[:, k : k + 1]) for k in range(SIZE)]
_DCT_ROWS = [np.ascontiguousarray(_DCT[:, k][None, :]) for k in range(SIZE)]

# Bounds on how far the fast 64x64 can be from the C++'s, with a wide margin over what was observed
# on every test picture (1.5e-3 of a grey level in the 64x64, 4.2e-3 in a DCT coefficient; the
# figures are in docs/hashing.md). Results closer than these to a decision are redone exactly.
_DOWNSAMPLE_ERROR = 0.005
_COEFFICIENT_ERROR = 0.01
#: Above this many pixels a too-close-to-call picture keeps the fast result: the exact replay costs
#: about 35 ms per megapixel (0.4 s at 12 MP), and a flat picture (always too close to call) must
#: not let an uploader make every 100 MP upload pay that.
EXACT_MAX_PIXELS = 16_000_000


def quality(buffer: np.ndarray) -> int:
    """Meta's pdqImageDomainQualityMetric on the float32 64x64: counts significant gradients."""
    # float32 arithmetic, then C's int conversion (truncation toward zero), summed, / 90, <= 100
    return min(int(np.abs(np.trunc(_gradients(buffer))).sum()) // 90, 100)


def dct16(buffers: np.ndarray) -> np.ndarray:
    """Float32 64x64 downsamples (..., 64, 64) -> DCT frequencies 1..16 x 1..16 (..., 16, 16),
    as Meta's dct64To16.

    Same products, same order of float32 additions (one frequency or column at a time), so the
    same 64x64 gives bit-identical coefficients; for a flat picture, whose coefficients are all
    rounding noise, that is what makes the hash equal too. The 4 mirrored downsamples of an
    upload go through in one call: each step is one numpy operation on all of them, so the
    Python loop (the cost here, not the arithmetic) runs once, not four times.
    """
    buffers = np.asarray(buffers, dtype=np.float32)
    lead = buffers.shape[:-2]
    partial = np.zeros(lead + (FREQUENCIES, SIZE), dtype=np.float32)  # T = D A
    product = np.empty_like(partial)
    for k in range(SIZE):
        np.multiply(_DCT_COLUMNS[k], buffers[..., k : k + 1, :], out=product)
        partial += product
    out = np.zeros(lead + (FREQUENCIES, FREQUENCIES), dtype=np.float32)  # B = T D^T
    product = np.empty_like(out)
    for k in range(SIZE):
        np.multiply(partial[..., :, k : k + 1], _DCT_ROWS[k], out=product)
        out += product
    return out


def _gradients(buffer: np.ndarray) -> np.ndarray:
    """The quality metric's terms before truncation: (u - v) * 100 / 255 in float32, all neighbours."""
    hundred, full = np.float32(100), np.float32(255)
    return np.concatenate([
        ((buffer[:-1, :] - buffer[1:, :]) * hundred / full).ravel(),
        ((buffer[:, :-1] - buffer[:, 1:]) * hundred / full).ravel(),
    ])


def _too_close_to_call(buffer: np.ndarray, dct: np.ndarray) -> bool:
    """Whether the C++'s rounding of the 64x64 could change the bits or the quality."""
    ordered = np.sort(dct.ravel())
    middle = ordered.size // 2
    if ordered[middle] - ordered[middle - 1] <= 2 * _COEFFICIENT_ERROR:
        return True
    terms = _gradients(buffer)
    slack = np.float32(2 * _DOWNSAMPLE_ERROR * 100 / 255)
    # a term's truncation can move by one where it is that near a non-zero integer
    nearest = np.round(terms)
    unsure = int(np.count_nonzero((nearest != 0) & (np.abs(terms - nearest) <= slack)))
    total = int(np.abs(np.trunc(terms)).sum())
    return min((total - unsure) // 90, 100) != min((total + unsure) // 90, 100)


def coefficients(
    luma: np.ndarray, mirrors: Sequence[Orientation] = (Orientation.ORIGINAL,)
) -> tuple[dict[Orientation, np.ndarray] | None, int]:
    """The 16x16 float32 coefficients of the picture in each of ``mirrors`` (a subset of
    dihedral.MIRRORS), and the picture's quality, from float32 luminance (H x W, C-contiguous).

    ``(None, 0)`` when a side is under MIN_DIMENSION (Meta's all-zero hash). The original's
    coefficients follow the C++ bit for bit (see the module docstring); a mirror's are those of the
    mirrored picture, computed the fast way.
    """
    if luma.ndim != 2:
        raise ValueError(f"luminance must be 2-D, got shape {luma.shape}")
    if min(luma.shape) < MIN_DIMENSION:
        return None, 0
    if tuple(mirrors) == (Orientation.ORIGINAL,):
        buffers = {Orientation.ORIGINAL: jarosz.downsample(luma)}
    else:
        buffers = dict(zip(dihedral.MIRRORS, jarosz.downsample_mirrors(luma)))
    wanted = tuple(dict.fromkeys((Orientation.ORIGINAL, *mirrors)))
    dct = dict(zip(wanted, dct16(np.stack([buffers[mirror] for mirror in wanted]))))
    original = buffers[Orientation.ORIGINAL]
    if luma.size <= EXACT_MAX_PIXELS and _too_close_to_call(original, dct[Orientation.ORIGINAL]):
        original = jarosz.downsample_exact(luma)
        dct[Orientation.ORIGINAL] = dct16(original)
    return dct, quality(original)


def threshold(stacked: np.ndarray) -> np.ndarray:
    """(k, 16, 16) coefficients -> booleans strictly above each one's median.

    Meta's median (Torben's algorithm over 256 values) is the lower one, the 128th smallest.
    """
    flat = stacked.reshape(stacked.shape[0], -1)
    middle = flat.shape[1] // 2 - 1
    medians = np.partition(flat, middle, axis=1)[:, middle]
    return stacked > medians[:, None, None]


def bits_to_bytes(bits: np.ndarray) -> bytes:
    """16x16 booleans -> the 32 bytes of the hex form: bit ``16 i + j`` of a 256-bit big-endian number."""
    return np.packbits(bits.reshape(-1)[::-1]).tobytes()


ZERO = bytes(32)  # the hash of an image under MIN_DIMENSION on a side
