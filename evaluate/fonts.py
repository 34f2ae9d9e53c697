"""The one font the edits draw text with."""

from __future__ import annotations

from PIL import ImageFont


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled font: the same glyphs on every machine, whatever fonts it has installed.
    return ImageFont.load_default(size=max(8, size))
