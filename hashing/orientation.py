"""The 8 orientations of a picture: its rotations and mirror images (the dihedral group D4).

Pure names, no pixels: the index and the server use them to say which variant of a query matched.
"""

from __future__ import annotations

import enum


class Orientation(enum.Enum):
    ORIGINAL = "original"
    ROTATE_90 = "rotate_90"  # counter-clockwise, as Pillow's Image.ROTATE_90
    ROTATE_180 = "rotate_180"
    ROTATE_270 = "rotate_270"
    FLIP_HORIZONTAL = "flip_horizontal"  # left <-> right
    FLIP_VERTICAL = "flip_vertical"  # top <-> bottom
    TRANSPOSE = "transpose"  # across the main diagonal
    TRANSVERSE = "transverse"  # across the other diagonal


ALL_ORIENTATIONS: tuple[Orientation, ...] = tuple(Orientation)

#: The ``PIL.Image.Transpose`` member that turns a picture into each orientation (names only, so
#: this module needs no Pillow): ``image.transpose(Image.Transpose[PILLOW_TRANSPOSE[o]])``.
PILLOW_TRANSPOSE: dict[Orientation, str | None] = {
    Orientation.ORIGINAL: None,
    Orientation.ROTATE_90: "ROTATE_90",
    Orientation.ROTATE_180: "ROTATE_180",
    Orientation.ROTATE_270: "ROTATE_270",
    Orientation.FLIP_HORIZONTAL: "FLIP_LEFT_RIGHT",
    Orientation.FLIP_VERTICAL: "FLIP_TOP_BOTTOM",
    Orientation.TRANSPOSE: "TRANSPOSE",
    Orientation.TRANSVERSE: "TRANSVERSE",
}
