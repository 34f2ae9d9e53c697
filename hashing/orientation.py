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
