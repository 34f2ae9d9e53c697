"""The edit suite: what happens to a listed picture before it is uploaded again.

Each edit takes the original (decoded pixels and file bytes) and a random generator seeded per
(image, edit), and returns the bytes of the file an uploader would send. Pixel edits are saved
as PNG (fast, lossless) so that a row of the report measures that edit alone; the codec edits,
and one border edit, add their own compression.

The sizes (10% borders, 5% crops, ...) are those of the issue that asked for this evaluation;
"crop N%" keeps (100 - N)% of the width and of the height.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from .fonts import font
from .screenshots import desktop_screenshot, phone_screenshot


@dataclass(frozen=True)
class Source:
    """An image of the evaluation folder: its file bytes and its decoded RGB pixels."""

    name: str
    data: bytes
    image: Image.Image


EditFunction = Callable[[Source, np.random.Generator], bytes]


@dataclass(frozen=True)
class Edit:
    name: str
    group: str  # for the report's sections and the plots' panels
    description: str
    apply: EditFunction


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    if fmt == "PNG":
        options.setdefault("compress_level", 1)  # lossless either way; level 6 is 5x slower
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# -- building blocks ------------------------------------------------------------------------------


def _jpeg(quality: int) -> EditFunction:
    return lambda src, rng: encode(src.image, "JPEG", quality=quality)


def _webp(quality: int) -> EditFunction:
    return lambda src, rng: encode(src.image, "WEBP", quality=quality)


def _scale(factor: float) -> EditFunction:
    def apply(src: Source, rng: np.random.Generator) -> bytes:
        width, height = src.image.size
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        return encode(src.image.resize(size, Image.Resampling.LANCZOS))

    return apply


def _crop(percent: float, centred: bool) -> EditFunction:
    def apply(src: Source, rng: np.random.Generator) -> bytes:
        width, height = src.image.size
        cut_w, cut_h = round(width * percent / 100), round(height * percent / 100)
        # Off-centre: the whole cut from one corner, which corner chosen per image.
        if centred:
            left, upper = cut_w // 2, cut_h // 2
        else:
            left = cut_w if rng.integers(0, 2) else 0
            upper = cut_h if rng.integers(0, 2) else 0
        return encode(src.image.crop((left, upper, left + width - cut_w, upper + height - cut_h)))

    return apply


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    # A saturated mid-tone (not near white or black, which have their own rows).
    hue = float(rng.uniform(0, 1))
    colour = Image.new("HSV", (1, 1), (round(hue * 255), 200, 160)).convert("RGB").getpixel((0, 0))
    return colour  # type: ignore[return-value]


def _border(percent: float, colour: str | None, jpeg: int | None = None) -> EditFunction:
    def apply(src: Source, rng: np.random.Generator) -> bytes:
        width, height = src.image.size
        fill = _random_colour(rng) if colour is None else colour
        pad = (round(width * percent / 100), round(height * percent / 100))
        framed = ImageOps.expand(src.image, border=(pad[0], pad[1], pad[0], pad[1]), fill=fill)
        return encode(framed, "JPEG", quality=jpeg) if jpeg else encode(framed)

    return apply


def _pad_square(colour: str) -> EditFunction:
    # Letterboxing (landscape) or pillarboxing (portrait): what apps do to fit a square frame.
    def apply(src: Source, rng: np.random.Generator) -> bytes:
        side = max(src.image.size)
        canvas = Image.new("RGB", (side, side), colour)
        canvas.paste(src.image, ((side - src.image.width) // 2, (side - src.image.height) // 2))
        return encode(canvas)

    return apply


def _rotate(degrees: float) -> EditFunction:
    # Small angles keep the canvas (corners filled black), as a phone's straighten tool does
    # before cropping; 90 degrees turns the canvas.
    def apply(src: Source, rng: np.random.Generator) -> bytes:
        if degrees % 90 == 0:
            return encode(src.image.rotate(degrees, expand=True))
        return encode(src.image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False))

    return apply


def _transpose(method: Image.Transpose) -> EditFunction:
    return lambda src, rng: encode(src.image.transpose(method))


def _enhance(kind: type[ImageEnhance._Enhance], factor: float) -> EditFunction:
    return lambda src, rng: encode(kind(src.image).enhance(factor))


def _gamma(gamma: float) -> EditFunction:
    table = [round(255 * (i / 255) ** gamma) for i in range(256)] * 3
    return lambda src, rng: encode(src.image.point(table))


def _greyscale(src: Source, rng: np.random.Generator) -> bytes:
    return encode(src.image.convert("L"))


def _blur(src: Source, rng: np.random.Generator) -> bytes:
    # Relative to the size, so a large and a small photo are blurred alike (3 px at 768 px).
    radius = max(1.0, 0.004 * max(src.image.size))
    return encode(src.image.filter(ImageFilter.GaussianBlur(radius)))


def _noise(src: Source, rng: np.random.Generator) -> bytes:
    pixels = np.asarray(src.image, dtype=np.float32)
    pixels = pixels + rng.normal(0.0, 12.0, pixels.shape).astype(np.float32)
    return encode(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"))


def _watermark(src: Source, rng: np.random.Generator) -> bytes:
    image = src.image.convert("RGBA")
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(12, round(0.06 * min(image.size)))
    text = "\u00a9 photo-share.example"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font(size))
    margin = round(0.03 * min(image.size))
    xy = (image.width - (right - left) - margin, image.height - (bottom - top) - margin - top)
    draw.text(xy, text, font=font(size), fill=(255, 255, 255, 150), stroke_width=1, stroke_fill=(0, 0, 0, 110))
    return encode(Image.alpha_composite(image, layer).convert("RGB"))


_CAPTIONS = (
    ("WHEN THE HASH", "STILL MATCHES"),
    ("NOBODY:", "ABSOLUTELY NOBODY:"),
    ("ONE DOES NOT SIMPLY", "CROP THE PICTURE"),
    ("ME EXPLAINING", "PERCEPTUAL HASHING"),
)


def _fit_font(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    while size > 10:
        face = font(size)
        left, _, right, _ = draw.textbbox((0, 0), text, font=face, stroke_width=max(1, size // 12))
        if right - left <= width:
            return face
        size = int(size * 0.9)
    return font(size)


def _meme(src: Source, rng: np.random.Generator) -> bytes:
    # Classic meme: white capitals with a black outline over the top and bottom of the picture.
    image = src.image.copy()
    draw = ImageDraw.Draw(image)
    top, bottom = _CAPTIONS[int(rng.integers(0, len(_CAPTIONS)))]
    for text, at_top in ((top, True), (bottom, False)):
        face = _fit_font(draw, text, round(0.92 * image.width), round(0.11 * image.height))
        stroke = max(1, getattr(face, "size", 20) // 12)
        left, upper, right, lower = draw.textbbox((0, 0), text, font=face, stroke_width=stroke)
        x = (image.width - (right - left)) // 2 - left
        margin = round(0.02 * image.height)
        y = margin - upper if at_top else image.height - margin - lower
        draw.text((x, y), text, font=face, fill="white", stroke_width=stroke, stroke_fill="black")
    return encode(image)


def _caption_bar(src: Source, rng: np.random.Generator) -> bytes:
    # Modern meme: a white band above the picture with black text in it.
    image = src.image
    band = round(0.22 * image.height)
    canvas = Image.new("RGB", (image.width, image.height + band), "white")
    canvas.paste(image, (0, band))
    draw = ImageDraw.Draw(canvas)
    text = " ".join(_CAPTIONS[int(rng.integers(0, len(_CAPTIONS)))]).lower().capitalize()
    face = _fit_font(draw, text, round(0.9 * image.width), round(0.3 * band))
    left, upper, right, lower = draw.textbbox((0, 0), text, font=face)
    draw.text(((image.width - (right - left)) // 2 - left, (band - (lower - upper)) // 2 - upper), text, font=face, fill="black")
    return encode(canvas)


def _screenshot(kind: str) -> EditFunction:
    maker = desktop_screenshot if kind == "desktop" else phone_screenshot
    return lambda src, rng: encode(maker(src.image, rng)[0])


def _original(src: Source, rng: np.random.Generator) -> bytes:
    return src.data


# -- the suite ------------------------------------------------------------------------------------

SUITE: tuple[Edit, ...] = (
    Edit("original", "sanity", "the listed file itself, byte for byte", _original),
    Edit("jpeg_q90", "codec", "JPEG quality 90", _jpeg(90)),
    Edit("jpeg_q70", "codec", "JPEG quality 70", _jpeg(70)),
    Edit("jpeg_q50", "codec", "JPEG quality 50", _jpeg(50)),
    Edit("jpeg_q30", "codec", "JPEG quality 30", _jpeg(30)),
    Edit("webp_q80", "codec", "WebP quality 80", _webp(80)),
    Edit("webp_q40", "codec", "WebP quality 40", _webp(40)),
    Edit("down_0.5", "resize", "downscaled to 0.5x (Lanczos)", _scale(0.5)),
    Edit("down_0.25", "resize", "downscaled to 0.25x (Lanczos)", _scale(0.25)),
    Edit("up_2", "resize", "upscaled to 2x (Lanczos)", _scale(2.0)),
    Edit("crop_5_centre", "crop", "5% cut off, centred (2.5% each side)", _crop(5, True)),
    Edit("crop_10_centre", "crop", "10% cut off, centred", _crop(10, True)),
    Edit("crop_20_centre", "crop", "20% cut off, centred", _crop(20, True)),
    Edit("crop_5_offcentre", "crop", "5% cut off, all from one corner", _crop(5, False)),
    Edit("crop_10_offcentre", "crop", "10% cut off, all from one corner", _crop(10, False)),
    Edit("crop_20_offcentre", "crop", "20% cut off, all from one corner", _crop(20, False)),
    Edit("border_10_white", "border", "10% white border on every side", _border(10, "white")),
    Edit("border_10_black", "border", "10% black border on every side", _border(10, "black")),
    Edit("border_10_colour", "border", "10% border of a random saturated colour", _border(10, None)),
    Edit("border_10_white_jpeg", "border", "10% white border, then JPEG quality 75", _border(10, "white", 75)),
    Edit("pad_square_black", "border", "padded to a square with black (letterbox / pillarbox)", _pad_square("black")),
    Edit("rotate_5", "geometry", "rotated 5 degrees, same canvas, black corners", _rotate(5)),
    Edit("rotate_90", "geometry", "rotated 90 degrees", _rotate(90)),
    Edit("flip_h", "geometry", "mirrored left-right", _transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
    Edit("flip_v", "geometry", "mirrored top-bottom", _transpose(Image.Transpose.FLIP_TOP_BOTTOM)),
    Edit("greyscale", "colour", "greyscale", _greyscale),
    Edit("brightness", "colour", "brightness x1.3", _enhance(ImageEnhance.Brightness, 1.3)),
    Edit("contrast", "colour", "contrast x1.4", _enhance(ImageEnhance.Contrast, 1.4)),
    Edit("gamma", "colour", "gamma 0.6", _gamma(0.6)),
    Edit("blur", "filter", "Gaussian blur, radius 0.4% of the long side", _blur),
    Edit("noise", "filter", "Gaussian noise, sigma 12", _noise),
    Edit("watermark", "overlay", "translucent text watermark, lower right", _watermark),
    Edit("caption_meme", "overlay", "meme captions over the top and bottom", _meme),
    Edit("caption_bar", "overlay", "white caption band with text above the picture", _caption_bar),
    Edit("screenshot", "screenshot", "in a desktop social-feed screenshot (about 45% of its width)", _screenshot("desktop")),
    Edit("screenshot_phone", "screenshot", "in a phone screenshot, full width", _screenshot("phone")),
)

#: --quick: one or two edits per group, enough to see every part of the report work.
QUICK: tuple[str, ...] = (
    "original", "jpeg_q50", "down_0.25", "crop_5_centre", "crop_10_offcentre", "border_10_white",
    "border_10_black", "rotate_5", "flip_h", "caption_meme", "screenshot",
)

EDITS: dict[str, Edit] = {edit.name: edit for edit in SUITE}


def select(names: Sequence[str] | None) -> tuple[Edit, ...]:
    """The edits named (suite order), or the whole suite; ValueError naming an unknown one."""
    if not names:
        return SUITE
    unknown = [n for n in names if n not in EDITS]
    if unknown:
        raise ValueError(f"unknown edit(s) {', '.join(unknown)} (known: {', '.join(EDITS)})")
    wanted = set(names)
    return tuple(edit for edit in SUITE if edit.name in wanted)
