"""Where the picture is inside an upload: uniform borders trimmed, or the picture in a screenshot.

Perceptual hashes describe the whole frame, so a 10% border or a screenshot around a listed
picture moves its hash far from the listed one. Matching can also search the hashes of the
region that holds the picture; this module finds such regions. Pure: a decoded Pillow image in,
crop boxes (Pillow's ``(left, upper, right, lower)``) out; nothing is stored or logged.

Two detectors, both run on a thumbnail (at most ``THUMB_SIDE`` pixels on the long side, made
with ``Image.reduce``) so that a plain photo costs a millisecond or two, and both refined to
full resolution at the end (each side moved to the strongest step between full-resolution
lines near it):

- :func:`find_border_box` — **trimmed**: uniform borders (letterboxing, pillarboxing, padding to
  a square, frames) of any colour. A side counts as a border when, from the edge inwards, every
  line stays within a small tolerance of that edge's colour (JPEG noise averages away in the
  thumbnail) for at least 2% of the dimension. Natural flat areas (a clear sky) also pass that
  test, so a side is kept only when the picture starts at a sharp straight edge, or the opposite
  side is a border of the same colour (a night photo in a black frame has no sharp edge).
- :func:`find_embedded_box` — **embedded**: the dominant picture inside a screenshot-like
  canvas (UI bars, text, other thumbnails around it). Screenshots are flat backgrounds with
  islands of content, so the thumbnail is split recursively along rows and columns free of
  texture (recursive X-Y cut, as in document layout analysis). Texture is a pixel that differs
  from a horizontal and a vertical neighbour: pictures and text have it, the straight outlines
  of cards, bars and dividers do not, so the cut goes through them. The picture is the largest
  block that is big enough, busy inside, and bounded by straight edges on every side that is
  not the canvas edge (a block cut off at a horizon is not). A smooth strip of the picture
  (sand, a clear sky) has no texture and is cut off as if it were background; the block is
  extended over such a strip when the strip ends at a straight edge and holds no line of UI
  background (flat to the last level, which a photo's smooth parts are not), or is wholly flat
  and the colour steps across that edge.

Both are heuristics with constants set on natural photos and generated screenshots; a wrong
find costs an extra query (its hashes are searched too), a missed one the match the variant
would have given.

:func:`region_crops` is what matching calls: the crops of the regions found, with their
names ("trimmed", "embedded"), none for an ordinary photo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "THUMB_SIDE",
    "Box",
    "Region",
    "find_border_box",
    "find_embedded_box",
    "find_regions",
    "region_crops",
]

Box = tuple[int, int, int, int]  # left, upper, right, lower: Pillow's crop box, right/lower exclusive

#: Long side of the working thumbnail. Borders and screenshot layouts are large structures;
#: 320 px resolves a 2% border of a 4000 px photo and keeps a plain photo's check near 1 ms.
THUMB_SIDE = 320
#: Smallest picture worth a variant, in pixels on each side: below that no hash means much.
MIN_SIDE = 32

# -- border detection (thumbnail units: 0..255 per channel) --
_BORDER_TOLERANCE = 24  # per pixel, any channel, from the edge's colour: JPEG q30 noise stays inside
_BORDER_MEAN_TOLERANCE = 8  # the line's mean colour: a gradient (sky) drifts out of it, padding does not
_BORDER_FRACTION = 0.97  # share of a line's pixels that must be within tolerance (specks of dust, noise)
_MIN_BORDER = 0.02  # of the dimension: thinner borders barely move a hash
_SHARP_EDGE = 0.5  # share of the first picture line that must differ from the border colour
_SAME_COLOUR = 24  # two borders of this colour distance are "the same colour" (symmetric padding)

# -- embedded picture detection --
_EDGE = 6  # a thumbnail pixel is on an edge when it differs from a neighbour by more than this
_TEXTURE = 3  # ... and textured when it differs from a horizontal and a vertical one by more than this
_MIN_AREA = 0.06  # of the canvas: the dominant picture is not a thumbnail or an avatar
_MIN_EXTENT = 0.15  # of the canvas width and height, each
_MAX_AREA = 0.92  # of the canvas: bigger is the image itself (borders are find_border_box's job)
_MIN_BUSY = 0.25  # share of busy pixels inside: a picture, not a panel of text on a flat card
_SIDE_DEPTH = 3  # thumbnail lines from a side in which its straight edge may lie
_STRAIGHT = 0.5  # share of busy pixels along each inner side: a straight boundary, not a horizon
_STEP = 24.0  # mean colour change across a line that makes it a step edge (flat strip extension)
_SPECKS = 0.05  # share of edge pixels a line of a flat strip may have (a bird in the sky)
_MAX_EXTENSION = 0.6  # a flat strip may add at most this share of the block's size
_DUPLICATE_IOU = 0.9  # an embedded box this close to the trimmed one is the same region


@dataclass(frozen=True)
class Region:
    name: str  # "trimmed" or "embedded"
    box: Box


# -- the thumbnail ----------------------------------------------------------------------------


def _channel_max(pixels: np.ndarray) -> np.ndarray:
    """Max over the last (RGB) axis. numpy's ``max(axis=-1)`` over 3 values is ~10x slower."""
    return np.maximum(np.maximum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])


def _thumbnail(image: Image.Image) -> tuple[np.ndarray, int]:
    """(height, width, 3) int16 RGB thumbnail and its reduction factor."""
    factor = max(1, math.ceil(max(image.size) / THUMB_SIDE))
    # reduce() works on the common modes directly: converting the small thumbnail to RGB is
    # cheaper than converting the full frame. Other modes (P, I;16, ...) convert first.
    if image.mode in ("RGB", "L", "RGBA", "LA", "RGBX"):
        small = image.reduce(factor) if factor > 1 else image
        small = small.convert("RGB")
    else:
        rgb = image.convert("RGB")
        small = rgb.reduce(factor) if factor > 1 else rgb
    return np.asarray(small, dtype=np.int16), factor


def _strip(image: Image.Image, box: Box) -> np.ndarray:
    """Full-resolution RGB pixels of ``box`` (clipped to the image) as int16."""
    left, upper, right, lower = box
    left, upper = max(0, left), max(0, upper)
    right, lower = min(image.width, right), min(image.height, lower)
    return np.asarray(image.crop((left, upper, right, lower)).convert("RGB"), dtype=np.int16)


def _refine(image: Image.Image, box: Box, factor: int, slack: int) -> Box:
    """Move each side of a thumbnail-derived box to the strongest step between full-resolution
    lines within ``slack`` reduction factors of it: the thumbnail blurs an edge over ``factor``
    pixels. A wider window finds an edge the thumbnail misplaced more, but may also catch a
    strong edge inside the picture."""
    if factor == 1:
        return box
    left, upper, right, lower = box
    reach = slack * factor + 1

    def best(lines: np.ndarray, start: int, low: int, high: int) -> int:
        # lines[i] is the full-resolution line start + i; the boundary lies between two lines.
        if lines.shape[0] < 2:
            return min(max(start, low), high)
        steps = np.abs(np.diff(lines, axis=0)).mean(axis=(1, 2))
        return min(max(start + 1 + int(np.argmax(steps)), low), high)

    if left > 0:
        lines = _strip(image, (left - reach, upper, left + reach, lower)).transpose(1, 0, 2)
        left = best(lines, max(0, left - reach), 0, right - MIN_SIDE)
    if right < image.width:
        lines = _strip(image, (right - reach, upper, right + reach, lower)).transpose(1, 0, 2)
        right = best(lines, right - reach, left + MIN_SIDE, image.width)
    if upper > 0:
        lines = _strip(image, (left, upper - reach, right, upper + reach))
        upper = best(lines, max(0, upper - reach), 0, lower - MIN_SIDE)
    if lower < image.height:
        lines = _strip(image, (left, lower - reach, right, lower + reach))
        lower = best(lines, lower - reach, upper + MIN_SIDE, image.height)
    return left, upper, right, lower


def _to_full(box: Box, factor: int, size: tuple[int, int]) -> Box:
    left, upper, right, lower = box
    width, height = size
    return (
        min(left * factor, width),
        min(upper * factor, height),
        min(right * factor, width),
        min(lower * factor, height),
    )


# -- (a) uniform borders ------------------------------------------------------------------------


def _border_side(lines: np.ndarray) -> tuple[int, np.ndarray, bool]:
    """(depth, colour, sharp) of the border on one side; ``lines`` run from the edge inwards.

    ``depth`` is how many lines, from the edge, stay within tolerance of the edge line's colour;
    ``sharp`` whether the line after them mostly differs from that colour (a straight edge).
    """
    colour = np.round(np.median(lines[0], axis=0)).astype(np.int16)
    # In blocks of lines, so that a photo (whose edge is not uniform) costs one small block.
    depth, block = 0, 4
    while depth < len(lines):
        chunk = lines[depth : depth + block]
        distance = _channel_max(np.abs(chunk - colour))  # (lines, pixels)
        inside = (distance <= _BORDER_TOLERANCE).mean(axis=1) >= _BORDER_FRACTION
        inside &= np.abs(chunk.mean(axis=1) - colour).max(axis=1) <= _BORDER_MEAN_TOLERANCE
        if not inside.all():
            first = int(np.argmin(inside))
            sharp = bool((distance[first] > _BORDER_TOLERANCE).mean() >= _SHARP_EDGE)
            return depth + first, colour, sharp
        depth += len(chunk)
        block *= 2
    return depth, colour, False


def _border_box(thumb: np.ndarray) -> Box | None:
    height, width, _ = thumb.shape
    # Lines from each edge to the middle: (lines, pixels along the line, 3).
    sides = {
        "left": thumb[:, : width // 2].transpose(1, 0, 2),
        "right": thumb[:, width // 2 :][:, ::-1].transpose(1, 0, 2),
        "upper": thumb[: height // 2],
        "lower": thumb[height // 2 :][::-1],
    }
    found = {name: _border_side(lines) for name, lines in sides.items()}
    minimum = {"left": width, "right": width, "upper": height, "lower": height}
    opposite = {"left": "right", "right": "left", "upper": "lower", "lower": "upper"}
    depths: dict[str, int] = {}
    for name, (depth, colour, sharp) in found.items():
        if depth < max(2, _MIN_BORDER * minimum[name]):
            depths[name] = 0
            continue
        other_depth, other_colour, _ = found[opposite[name]]
        symmetric = (
            other_depth >= max(2, _MIN_BORDER * minimum[name])
            and np.abs(other_colour - colour).max() <= _SAME_COLOUR
        )
        depths[name] = depth if (sharp or symmetric) else 0
    if not any(depths.values()):
        return None
    box = (depths["left"], depths["upper"], width - depths["right"], height - depths["lower"])
    if box[2] - box[0] < 0.2 * width or box[3] - box[1] < 0.2 * height:
        return None  # a flat image, or a sliver: nothing that a hash of it would recognise
    return box


def find_border_box(image: Image.Image) -> Box | None:
    """The box inside uniform borders of any colour, or None when there are none (a photo)."""
    if min(image.size) < MIN_SIDE:
        return None
    thumb, factor = _thumbnail(image)
    return _border_box_full(image, thumb, factor)


def _border_box_full(image: Image.Image, thumb: np.ndarray, factor: int) -> Box | None:
    box = _border_box(thumb)
    if box is None:
        return None
    # The constant-colour test places a border's edge within a thumbnail pixel.
    full = _refine(image, _to_full(box, factor, image.size), factor, slack=1)
    return full if _big_enough(full) else None


# -- (b) the picture inside a screenshot --------------------------------------------------------


@dataclass(frozen=True)
class _Maps:
    """Per-pixel maps of the thumbnail that the embedded-picture search works on.

    ``edges``: the pixel differs by more than ``_EDGE`` from a neighbour (both pixels of a
    differing pair are marked, so a boundary is seen from either side). ``texture``: it differs
    by more than ``_TEXTURE`` from a horizontal *and* a vertical neighbour. A straight UI edge
    (a card's outline, a bar, a divider) differs across itself only, so it is an edge but not
    texture: cutting along texture-free lines goes through cards and bars, while pictures
    (sand and water too, at a low threshold) and text are texture. ``still_rows`` /
    ``still_cols``: the pixel differs from its right / lower neighbour by at most one level, so
    a row / column of still pixels does not vary along itself. UI backgrounds are still (flat to
    the last level, in PNG and, after the thumbnail's averaging, in JPEG); the smooth parts of
    a photo mostly are not.
    """

    thumb: np.ndarray
    edges: np.ndarray
    texture: np.ndarray
    still_rows: np.ndarray
    still_cols: np.ndarray

    @classmethod
    def of(cls, thumb: np.ndarray) -> "_Maps":
        height, width = thumb.shape[:2]
        across = _channel_max(np.abs(np.diff(thumb, axis=1)))  # (h, w - 1): x vs x + 1
        along = _channel_max(np.abs(np.diff(thumb, axis=0)))  # (h - 1, w): y vs y + 1

        def spread(differences: np.ndarray, axis: int) -> np.ndarray:
            marked = np.zeros((height, width), dtype=bool)
            if axis == 1:
                marked[:, :-1] |= differences
                marked[:, 1:] |= differences
            else:
                marked[:-1, :] |= differences
                marked[1:, :] |= differences
            return marked

        still_rows = np.ones((height, width), dtype=bool)
        still_rows[:, :-1] = across <= 1
        still_cols = np.ones((height, width), dtype=bool)
        still_cols[:-1, :] = along <= 1
        return cls(
            thumb=thumb,
            edges=spread(across > _EDGE, 1) | spread(along > _EDGE, 0),
            texture=spread(across > _TEXTURE, 1) & spread(along > _TEXTURE, 0),
            still_rows=still_rows,
            still_cols=still_cols,
        )


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    padded = np.concatenate(([False], flags, [False])).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return list(zip(changes[0::2].tolist(), changes[1::2].tolist()))


def _xy_cut(texture: np.ndarray, min_width: int, min_height: int) -> list[Box]:
    """Blocks of texture separated by texture-free rows or columns (recursive X-Y cut).

    Blocks too small to be the dominant picture are dropped without cutting them further:
    text and icons would otherwise make hundreds of leaves.
    """
    leaves: list[Box] = []
    stack: list[Box] = [(0, 0, texture.shape[1], texture.shape[0])]
    while stack:
        left, upper, right, lower = stack.pop()
        sub = texture[upper:lower, left:right]
        rows = _runs(sub.any(axis=1))
        cols = _runs(sub.any(axis=0))
        if not rows:
            continue
        if len(rows) == 1 and len(cols) == 1:
            (r0, r1), (c0, c1) = rows[0], cols[0]
            leaves.append((left + c0, upper + r0, left + c1, upper + r1))
            continue
        parts = (
            [(left, upper + r0, right, upper + r1) for r0, r1 in rows]
            if len(rows) > 1
            else [(left + c0, upper + rows[0][0], left + c1, upper + rows[0][1]) for c0, c1 in cols]
        )
        stack.extend(p for p in parts if p[2] - p[0] >= min_width and p[3] - p[1] >= min_height)
    return leaves


def _outward(maps: _Maps, box: Box, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels, edges, still) of the lines outside ``side`` of ``box``, nearest first, each line
    spanning the box: arrays of shape (lines, pixels along a line[, 3])."""
    left, upper, right, lower = box

    def cut(array: np.ndarray) -> np.ndarray:
        if side == "upper":
            return array[:upper, left:right][::-1]
        if side == "lower":
            return array[lower:, left:right]
        if side == "left":
            return array[upper:lower, :left][:, ::-1].swapaxes(0, 1)
        return array[upper:lower, right:].swapaxes(0, 1)

    still = maps.still_rows if side in ("upper", "lower") else maps.still_cols
    return cut(maps.thumb), cut(maps.edges), cut(still)


def _reach(maps: _Maps, box: Box, side: str, limit: int) -> int:
    """How many lines outside ``side`` still belong to the picture whose textured part is ``box``.

    Smooth parts of a picture (sand, water, sky) have little texture, so the X-Y cut may leave
    them out. The strip outside the side is the picture's when it ends, within ``limit``
    lines, at a boundary (a line that is an edge across the whole side) and either has no line
    of UI background in it (a line that is still and has no edges: UI backgrounds are flat to
    the last level, smooth picture parts vary a little), or has no edges at all (a clear sky)
    and the colour steps across the boundary. Text above the picture is separated from it by such
    background lines; a divider has the same colour on both sides.
    """
    pixels, edges, still = _outward(maps, box, side)
    limit = min(limit, len(pixels) - 1)
    shares = edges[: limit + 1].mean(axis=1)
    boundary = np.flatnonzero(shares >= 0.9)
    if not len(boundary) or boundary[0] == 0 or boundary[0] >= limit:
        return 0
    end = int(boundary[0])
    flat = shares[:end] <= _SPECKS
    background = flat & (still[:end].mean(axis=1) >= 0.97)
    if not background.any():
        return end + 1
    if flat.all():
        step = np.abs(pixels[end + 1].mean(axis=0) - pixels[end - 1].mean(axis=0)).max()
        return end + 1 if step >= _STEP else 0
    return 0


def _extend(maps: _Maps, box: Box) -> Box:
    left, upper, right, lower = box
    height, width = maps.edges.shape
    tall, wide = int(_MAX_EXTENSION * (lower - upper)), int(_MAX_EXTENSION * (right - left))
    # Up and down first, then sideways over the grown height.
    upper -= _reach(maps, box, "upper", tall)
    lower += _reach(maps, box, "lower", tall)
    box = (left, upper, right, lower)
    left -= _reach(maps, box, "left", wide)
    right += _reach(maps, box, "right", wide)
    return max(0, left), max(0, upper), min(width, right), min(height, lower)


def _straight_sides(edges: np.ndarray, box: Box) -> bool:
    """Every side of ``box`` that is not the canvas edge runs along edge pixels (a straight edge).

    The edge may lie in any of the side's outer ``_SIDE_DEPTH`` lines: JPEG ringing makes a
    faint halo outside a picture, which the texture (and so the box) includes.
    """
    left, upper, right, lower = box
    height, width = edges.shape
    depth = _SIDE_DEPTH
    checks = []
    if upper > 0:
        checks.append(edges[upper : upper + depth, left:right].any(axis=0).mean())
    if lower < height:
        checks.append(edges[lower - depth : lower, left:right].any(axis=0).mean())
    if left > 0:
        checks.append(edges[upper:lower, left : left + depth].any(axis=1).mean())
    if right < width:
        checks.append(edges[upper:lower, right - depth : right].any(axis=1).mean())
    return bool(checks) and min(checks) >= _STRAIGHT


def _embedded_box(thumb: np.ndarray) -> Box | None:
    height, width, _ = thumb.shape
    maps = _Maps.of(thumb)
    min_width, min_height = math.ceil(_MIN_EXTENT * width), math.ceil(_MIN_EXTENT * height)
    best: tuple[int, Box] | None = None
    for leaf in _xy_cut(maps.texture, min_width, min_height):
        box = _extend(maps, leaf)
        left, upper, right, lower = box
        area = (right - left) * (lower - upper)
        if area < _MIN_AREA * width * height or area > _MAX_AREA * width * height:
            continue
        if right - left < min_width or lower - upper < min_height:
            continue
        if maps.edges[upper:lower, left:right].mean() < _MIN_BUSY or not _straight_sides(maps.edges, box):
            continue
        if best is None or area > best[0]:
            best = (area, box)
    return None if best is None else best[1]


def find_embedded_box(image: Image.Image) -> Box | None:
    """The box of the dominant picture inside a screenshot-like canvas, or None (a photo)."""
    if min(image.size) < MIN_SIDE:
        return None
    thumb, factor = _thumbnail(image)
    return _embedded_box_full(image, thumb, factor)


def _embedded_box_full(image: Image.Image, thumb: np.ndarray, factor: int) -> Box | None:
    box = _embedded_box(thumb)
    if box is None:
        return None
    # Texture includes JPEG ringing (up to a block of 8 pixels) outside the picture's edge.
    full = _refine(image, _to_full(box, factor, image.size), factor, slack=3)
    return full if _big_enough(full) else None


# -- both ---------------------------------------------------------------------------------------


def _big_enough(box: Box) -> bool:
    return box[2] - box[0] >= MIN_SIDE and box[3] - box[1] >= MIN_SIDE


def _iou(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def find_regions(image: Image.Image) -> list[Region]:
    """The regions worth hashing besides the whole image: "trimmed", then "embedded".

    An embedded box that is (nearly) the trimmed one is left out: hashing it again would cost
    time and find nothing new. Empty for an ordinary photo or an image under ``MIN_SIDE``.
    """
    if min(image.size) < MIN_SIDE:
        return []
    thumb, factor = _thumbnail(image)
    regions = []
    trimmed = _border_box_full(image, thumb, factor)
    if trimmed is not None:
        regions.append(Region("trimmed", trimmed))
    embedded = _embedded_box_full(image, thumb, factor)
    if embedded is not None and (trimmed is None or _iou(trimmed, embedded) < _DUPLICATE_IOU):
        regions.append(Region("embedded", embedded))
    return regions


def region_crops(image: Image.Image) -> list[tuple[str, Image.Image]]:
    """``(name, crop)`` for each region of :func:`find_regions`, to hash besides the image itself.

    The crops are of the frame as given (its mode kept), so hashing them is hashing the picture
    a user would have cut out by hand.
    """
    return [(region.name, image.crop(region.box)) for region in find_regions(image)]
