"""PDQ's downsampling to 64x64 (Meta's "Jarosz filter" then decimation), two ways.

Meta's C++ (downscaling.cpp): a 1-D box filter along every row, then along every column, twice
over, with window ``(n + 127) // 128`` on an axis of n pixels; output k is the mean of inputs
``k - before .. k + after`` clipped to the axis (the divisor is the number of pixels still covered).
Each box is a float32 running sum (add the pixel entering, subtract the one leaving). Then the
filtered pixel at ``int((i + 0.5) * n / 64)`` is kept on each axis.

- :func:`downsample` (fast): the filter is linear and separable and only 64 outputs per axis are
  kept, so it is ``rows @ luma @ columns.T`` with banded weights: about one multiply-add per pixel
  in BLAS. It differs from the C++ by the C++'s float32 rounding (observed up to ~1.5e-3 of a grey
  level) and its own (~1e-4).
- :func:`downsample_mirrors`: the same for the picture and its three mirror images at once, for
  the orientation variants (hashing.dihedral).
- :func:`downsample_exact` (slow): the C++'s float32 running sums replayed operation by operation
  (``np.cumsum`` in float32 is a strict left-to-right sum), so the 64x64 is bit-identical. About 10x
  the cost of the fast one; hashing.pdq uses it only when the fast result is too close to call.
"""

from __future__ import annotations

import functools

import numpy as np

SIZE = 64  # output is SIZE x SIZE


def window_size(length: int) -> int:
    """Meta's computeJaroszFilterWindowSize(length, 64): half the stride of the 64 samples, rounded up."""
    return (length + 2 * SIZE - 1) // (2 * SIZE)


def _reach(window: int) -> tuple[int, int]:
    """(before, after): box output k covers inputs k - before .. k + after (Meta's 7 -> 3,3; 8 -> 3,4)."""
    half = (window + 2) // 2
    return window - half, half - 1


@functools.lru_cache(maxsize=64)
def kept(length: int) -> np.ndarray:
    """The 64 positions along an axis of ``length`` that decimation keeps (C's truncating int())."""
    return np.array([int(((i + 0.5) * length) / SIZE) for i in range(SIZE)], dtype=np.intp)


# --- fast: banded weights ------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _bands(length: int) -> tuple[tuple[int, ...], tuple[np.ndarray, ...]]:
    """Per kept position: where its weights start, and the float64 weights of two clipped box passes.

    One pass: output k is the mean of inputs lo[k]..hi[k]. Two: output c is the mean over k in
    lo[c]..hi[c] of those means, so input j weighs ``sum(1 / (count[c] * count[k]))`` over the k
    whose window covers j. Built with a difference array per band: memory proportional to the axis.
    """
    before, after = _reach(window_size(length))
    positions = np.arange(length)
    lo = np.maximum(positions - before, 0)
    hi = np.minimum(positions + after, length - 1)
    count = hi - lo + 1
    starts: list[int] = []
    bands: list[np.ndarray] = []
    for centre in kept(length):
        inner = np.arange(lo[centre], hi[centre] + 1)
        start, stop = int(lo[inner[0]]), int(hi[inner[-1]]) + 1
        weight = 1.0 / (count[centre] * count[inner])
        diff = np.zeros(stop - start + 1)
        np.add.at(diff, lo[inner] - start, weight)
        np.add.at(diff, hi[inner] + 1 - start, -weight)
        starts.append(start)
        bands.append(np.cumsum(diff[:-1]))
    return tuple(starts), tuple(bands)


def _mirror(bands: tuple[tuple[int, ...], tuple[np.ndarray, ...]], length: int):
    """The bands of the mirrored axis (x -> length-1-x), read on the original axis."""
    starts, weights = bands
    return (
        tuple(length - start - band.shape[0] for start, band in zip(starts, weights)),
        tuple(band[::-1] for band in weights),
    )


def _reduce_rows(luma: np.ndarray, bands) -> np.ndarray:
    starts, weights = bands
    partial = np.empty((len(starts), luma.shape[1]), dtype=np.float32)
    for i, (start, band) in enumerate(zip(starts, weights)):
        # One float32 matrix-vector product per kept row, over its band only (BLAS; releases the
        # GIL). float32 over the full-resolution rows spares casting them; its rounding (~1e-4 of
        # a grey level) is well inside what pdq allows for before redoing a result exactly.
        partial[i] = band.astype(np.float32) @ luma[start : start + band.shape[0]]
    return partial.astype(np.float64)


def _reduce_columns(partial: np.ndarray, bands) -> np.ndarray:
    starts, weights = bands
    out = np.empty((partial.shape[0], len(starts)), dtype=np.float64)
    for j, (start, band) in enumerate(zip(starts, weights)):
        out[:, j] = partial[:, start : start + band.shape[0]] @ band
    return out.astype(np.float32)


def downsample(luma: np.ndarray) -> np.ndarray:
    """Float32 luminance (H x W, both >= 5) -> the 64x64 downsample, float32 (fast; see module doc)."""
    height, width = luma.shape
    return _reduce_columns(_reduce_rows(luma, _bands(height)), _bands(width))


def downsample_mirrors(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fast 64x64 downsamples of the picture, mirrored top to bottom, mirrored left to right,
    and both (turned 180 degrees), from one pass over the pixels.

    Mirroring the picture mirrors the weights each kept sample gives the pixels. PDQ's weights are
    not mirror-symmetric (a window of even width reaches one pixel further right than left, and the
    kept positions round down), so these are not the first one reversed: reversing it would be off
    by about a pixel, which moves 4 to 40 of the 256 bits.
    """
    height, width = luma.shape
    rows, columns = _bands(height), _bands(width)
    both_rows = tuple(a + b for a, b in zip(rows, _mirror(rows, height)))
    partial = _reduce_rows(luma, both_rows)
    top, mirrored_top = partial[:SIZE], partial[SIZE:]
    mirrored_columns = _mirror(columns, width)
    return (
        _reduce_columns(top, columns),
        _reduce_columns(mirrored_top, columns),
        _reduce_columns(top, mirrored_columns),
        _reduce_columns(mirrored_top, mirrored_columns),
    )


# --- exact: the C++'s float32 running sums replayed ----------------------------------------------


@functools.lru_cache(maxsize=64)
def _running_sum_plan(length: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each box output sits in the sequence of running-sum steps, and its divisor.

    The C++'s steps over an axis: add inputs 0..window-1 (outputs after the last ``window - before``
    of them), then add input ``window + k`` and subtract input ``k`` for each k (an output after
    each pair), then subtract the remaining ``after`` inputs (an output after each).
    """
    before, after = _reach(window)
    middle = length - window
    ramp_up = np.arange(after, window)  # after adding input p, the window holds p + 1 inputs
    steady = window + 2 * np.arange(middle) + 1
    ramp_down = window + 2 * middle + np.arange(after)
    positions = np.concatenate([ramp_up, steady, ramp_down])
    counts = np.concatenate([ramp_up + 1, np.full(middle, window), window - 1 - np.arange(after)])
    return positions, counts.astype(np.float32)


def _box_rows_exact(x: np.ndarray, window: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Meta's box1DFloat along every row of float32 ``x``; only columns ``keep`` if given."""
    rows, length = x.shape
    _, after = _reach(window)
    middle = length - window
    steps = np.empty((rows, window + 2 * middle + after), dtype=np.float32)
    steps[:, :window] = x[:, :window]
    body = steps[:, window : window + 2 * middle]
    body[:, 0::2] = x[:, window:]
    np.negative(x[:, :middle], out=body[:, 1::2])
    np.negative(x[:, middle : middle + after], out=steps[:, window + 2 * middle :])
    np.cumsum(steps, axis=1, dtype=np.float32, out=steps)  # strictly left to right, in float32
    positions, counts = _running_sum_plan(length, window)
    if keep is not None:
        positions, counts = positions[keep], counts[keep]
    out = steps[:, positions]
    out /= counts
    return out


def downsample_exact(luma: np.ndarray) -> np.ndarray:
    """Float32 luminance (H x W, both >= 5) -> the 64x64 downsample, bit for bit as the C++."""
    height, width = luma.shape
    if (height, width) == (SIZE, SIZE):  # the C++ takes a 64x64 picture as it is, unfiltered
        return luma.copy()
    along_rows, along_columns = window_size(width), window_size(height)
    rows, columns = kept(height), kept(width)
    once = _box_rows_exact(luma, along_rows)
    once = _box_rows_exact(np.ascontiguousarray(once.T), along_columns).T
    # second round: rows (only the kept columns are needed after it), then those columns
    twice = _box_rows_exact(np.ascontiguousarray(once), along_rows, keep=columns)
    twice = _box_rows_exact(np.ascontiguousarray(twice.T), along_columns, keep=rows)
    return np.ascontiguousarray(twice.T)
