"""Screenshot edits: a picture scaled into a larger canvas with other content around it.

Two layouts people share: a desktop social feed (the picture in a card in the middle column,
about 45% of the screen's width, with menus, text and another post's picture around it) and a
phone feed (the picture spanning the screen's width, status bar, buttons and captions above and
below). The other content is drawn: text in Pillow's bundled font, and abstract pictures made
from the random generator, never another photo of the evaluation folder.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .fonts import font

_LIGHT = {"page": (240, 242, 245), "card": (255, 255, 255), "text": (28, 30, 33), "muted": (101, 103, 107)}
_DARK = {"page": (24, 25, 26), "card": (36, 37, 38), "text": (228, 230, 235), "muted": (176, 179, 184)}
_WORDS = (
    "the quick brown fox jumps over a lazy dog while hashes stay close under small edits and "
    "far apart for different pictures so a list can be matched at upload time by any service"
).split()


def _text(rng: np.random.Generator, words: int) -> str:
    start = int(rng.integers(0, len(_WORDS) - words))
    return " ".join(_WORDS[start : start + words]).capitalize()


def abstract_picture(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Another post's picture: a gradient with random shapes (busy, photo-like, unrelated)."""
    width, height = size
    base = rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)
    picture = Image.fromarray(base, "RGB").resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(picture)
    for _ in range(12):
        x0, y0 = float(rng.uniform(-0.1, 0.9)) * width, float(rng.uniform(-0.1, 0.9)) * height
        x1, y1 = x0 + float(rng.uniform(0.1, 0.5)) * width, y0 + float(rng.uniform(0.1, 0.5)) * height
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.integers(0, 2) else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    return picture


def _fit(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    scale = min(box[0] / image.width, box[1] / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _lines(draw: ImageDraw.ImageDraw, x: int, y: int, rng: np.random.Generator, count: int, size: int,
           colour: tuple[int, int, int], spacing: float = 1.7) -> int:
    for _ in range(count):
        draw.text((x, y), _text(rng, int(rng.integers(3, 7))), font=font(size), fill=colour)
        y += round(size * spacing)
    return y


Box = tuple[int, int, int, int]


def desktop_screenshot(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Box]:
    """The screenshot and the box the picture occupies in it."""
    theme = _DARK if rng.uniform() < 0.3 else _LIGHT
    width, height = 1280, 960
    canvas = Image.new("RGB", (width, height), theme["page"])
    draw = ImageDraw.Draw(canvas)
    # top bar with the site's name and a search field
    bar = tuple(int(c) for c in rng.integers(30, 120, 3))
    draw.rectangle([0, 0, width, 56], fill=bar)
    draw.text((24, 14), "photoshare", font=font(26), fill=(255, 255, 255))
    draw.rounded_rectangle([420, 12, 860, 44], radius=16, fill=theme["card"])
    draw.text((440, 18), "Search", font=font(16), fill=theme["muted"])
    # left menu
    y = 90
    for _ in range(8):
        draw.ellipse([24, y, 52, y + 28], fill=tuple(int(c) for c in rng.integers(60, 220, 3)))
        draw.text((64, y + 4), _text(rng, 2), font=font(17), fill=theme["text"])
        y += 48
    # right column: trending text and a small picture
    draw.text((990, 90), "Trending", font=font(22), fill=theme["text"])
    _lines(draw, 990, 130, rng, 6, 16, theme["muted"])
    canvas.paste(abstract_picture(rng, (240, 160)), (990, 360))
    # the post: a card with a header, a caption, the picture, buttons; then the next post
    left, card_width = 330 + int(rng.integers(0, 20)), 620
    inner = card_width - 40
    picture = _fit(image, (inner, 560))
    top = 76
    card_bottom = top + 110 + picture.height + 70
    draw.rounded_rectangle([left, top, left + card_width, card_bottom], radius=10, fill=theme["card"])
    draw.ellipse([left + 20, top + 16, left + 60, top + 56], fill=tuple(int(c) for c in rng.integers(60, 220, 3)))
    draw.text((left + 72, top + 18), "A. Person", font=font(17), fill=theme["text"])
    draw.text((left + 72, top + 40), "2 h", font=font(13), fill=theme["muted"])
    draw.text((left + 20, top + 72), _text(rng, 6), font=font(17), fill=theme["text"])
    at = (left + 20 + (inner - picture.width) // 2, top + 110)
    canvas.paste(picture, at)
    y = top + 110 + picture.height + 22
    for x, label in ((left + 40, "Like"), (left + 240, "Comment"), (left + 450, "Share")):
        draw.text((x, y), label, font=font(17), fill=theme["muted"])
    next_top = card_bottom + 16
    if next_top < height - 80:
        draw.rounded_rectangle([left, next_top, left + card_width, height + 20], radius=10, fill=theme["card"])
        draw.text((left + 20, next_top + 18), _text(rng, 5), font=font(17), fill=theme["text"])
        if next_top + 60 < height:
            canvas.paste(abstract_picture(rng, (inner, 300)), (left + 20, next_top + 60))
    return canvas, (at[0], at[1], at[0] + picture.width, at[1] + picture.height)


def phone_screenshot(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Box]:
    """The screenshot and the box the picture occupies in it."""
    theme = _DARK if rng.uniform() < 0.3 else _LIGHT
    width, height = 720, 1480
    canvas = Image.new("RGB", (width, height), theme["card"])
    draw = ImageDraw.Draw(canvas)
    # status bar and app bar
    draw.rectangle([0, 0, width, 48], fill=(0, 0, 0))
    draw.text((28, 10), "9:41", font=font(24), fill=(255, 255, 255))
    draw.rectangle([640, 16, 690, 34], outline=(255, 255, 255), width=2)
    draw.text((28, 66), "photoshare", font=font(34), fill=theme["text"])
    draw.line([0, 138, width, 138], fill=theme["muted"], width=1)
    # post header
    draw.ellipse([24, 156, 84, 216], fill=tuple(int(c) for c in rng.integers(60, 220, 3)))
    draw.text((100, 170), "a.person", font=font(22), fill=theme["text"])
    # the picture: full width (a tall one is fitted into 4:5 and centred)
    picture = _fit(image, (width, round(width * 1.25)))
    top = 232
    at = ((width - picture.width) // 2, top)
    canvas.paste(picture, at)
    y = top + picture.height + 20
    # buttons, likes, caption
    for x in (24, 96, 168):
        draw.ellipse([x, y, x + 40, y + 40], outline=theme["text"], width=3)
    y = _lines(draw, 24, y + 60, rng, 3, 22, theme["text"], spacing=1.6)
    # the next post starts below
    if y + 120 < height:
        draw.ellipse([24, y + 30, 84, y + 90], fill=tuple(int(c) for c in rng.integers(60, 220, 3)))
        draw.text((100, y + 44), "someone.else", font=font(22), fill=theme["text"])
        if y + 110 < height:
            canvas.paste(abstract_picture(rng, (width, 600)), (0, y + 110))
    return canvas, (at[0], at[1], at[0] + picture.width, at[1] + picture.height)
