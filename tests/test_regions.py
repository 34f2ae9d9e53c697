"""hashmatch.hashing.regions: the picture inside borders, and inside a screenshot, on generated images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from imagegen import encode, photo
from PIL import Image, ImageDraw, ImageFont, ImageOps

from hashmatch.hashing import Algorithm, hash_pil_image
from hashmatch.hashing.regions import find_border_box, find_embedded_box, find_regions, region_crops

COLOURS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "grey": (128, 128, 128),
    "navy": (20, 30, 90),
    "orange": (240, 140, 20),
}


def _close(box: tuple[int, int, int, int] | None, truth: tuple[int, int, int, int], pixels: int) -> bool:
    return box is not None and max(abs(a - b) for a, b in zip(box, truth)) <= pixels


def _framed(picture: Image.Image, fraction: float, colour: tuple[int, int, int],
            sides: str = "lrtb") -> tuple[Image.Image, tuple[int, int, int, int]]:
    pad_x, pad_y = round(picture.width * fraction), round(picture.height * fraction)
    left, right = (pad_x if "l" in sides else 0), (pad_x if "r" in sides else 0)
    top, bottom = (pad_y if "t" in sides else 0), (pad_y if "b" in sides else 0)
    framed = ImageOps.expand(picture, border=(left, top, right, bottom), fill=colour)
    return framed, (left, top, left + picture.width, top + picture.height)


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("colour", sorted(COLOURS))
@pytest.mark.parametrize("fraction", [0.03, 0.10, 0.25])
def test_border_of_any_colour_and_size_is_trimmed_to_the_picture(colour: str, fraction: float) -> None:
    picture = photo(3, (480, 360))
    framed, truth = _framed(picture, fraction, COLOURS[colour])
    assert _close(find_border_box(framed), truth, 2), (find_border_box(framed), truth)


@pytest.mark.parametrize("colour", ["white", "black", "orange"])
def test_border_survives_jpeg_noise(colour: str) -> None:
    framed, truth = _framed(photo(5, (640, 480)), 0.10, COLOURS[colour])
    noisy = _decoded(encode(framed, "JPEG", quality=40))
    assert _close(find_border_box(noisy), truth, 6), (find_border_box(noisy), truth)


@pytest.mark.parametrize("sides", ["tb", "lr", "t", "lb"])
def test_letterbox_pillarbox_and_uneven_padding(sides: str) -> None:
    framed, truth = _framed(photo(7, (500, 400)), 0.15, COLOURS["black"], sides)
    assert _close(find_border_box(framed), truth, 2), (sides, find_border_box(framed), truth)


def test_large_photo_is_refined_to_full_resolution() -> None:
    # The search runs on a thumbnail (a 1680 px canvas is reduced 6x); the box must still be exact.
    framed, truth = _framed(photo(11, (1400, 1000)), 0.10, COLOURS["grey"])
    assert _close(find_border_box(framed), truth, 1), (find_border_box(framed), truth)


@pytest.mark.parametrize("seed", range(8))
def test_plain_photos_have_no_region(seed: int) -> None:
    picture = photo(seed, (640, 480) if seed % 2 else (480, 640))
    assert find_border_box(picture) is None
    assert find_embedded_box(picture) is None
    assert region_crops(picture) == []


def test_flat_and_tiny_images_have_no_region() -> None:
    assert region_crops(Image.new("RGB", (400, 300), (200, 10, 10))) == []
    assert region_crops(Image.new("RGB", (20, 20), "white")) == []
    # a border around nothing but more border colour: there is no picture to find
    assert find_border_box(ImageOps.expand(Image.new("RGB", (300, 200), "black"), 30, fill="black")) is None


def _ui_canvas(picture: Image.Image, *, dark: bool = False) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A screenshot as a test sees one: bars, text, an avatar and a second picture around the one."""
    background, ink = ((30, 30, 32), (230, 230, 230)) if dark else ((250, 250, 250), (20, 20, 20))
    canvas = Image.new("RGB", (1000, 1300), background)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=22)
    draw.rectangle([0, 0, 1000, 70], fill=(40, 90, 160))
    draw.text((30, 20), "social app", font=font, fill="white")
    draw.ellipse([40, 100, 100, 160], fill=(120, 180, 90))
    draw.text((120, 115), "someone posted a picture", font=font, fill=ink)
    scaled = picture.resize((700, round(700 * picture.height / picture.width)), Image.Resampling.LANCZOS)
    at = (150, 200)
    canvas.paste(scaled, at)
    y = at[1] + scaled.height + 30
    for line in ("12 likes", "a caption that goes on for a while", "view all comments"):
        draw.text((150, y), line, font=font, fill=ink)
        y += 40
    canvas.paste(photo(40, (300, 200)), (150, y + 40))  # the next post's picture, smaller
    return canvas, (at[0], at[1], at[0] + scaled.width, at[1] + scaled.height)


@pytest.mark.parametrize("dark", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_screenshot_gives_the_embedded_picture(seed: int, dark: bool) -> None:
    canvas, truth = _ui_canvas(photo(seed, (640, 480)), dark=dark)
    regions = find_regions(canvas)
    assert [r.name for r in regions] == ["embedded"], regions
    assert _close(regions[0].box, truth, 4), (regions[0].box, truth)


def test_screenshot_as_jpeg() -> None:
    canvas, truth = _ui_canvas(photo(4, (640, 480)))
    assert _close(find_embedded_box(_decoded(encode(canvas, "JPEG", quality=75))), truth, 6)


def test_evaluation_screenshot_layouts() -> None:
    # The layouts `hashmatch eval` draws, desktop (picture in a card) and phone (full width).
    from hashmatch.evaluate.screenshots import desktop_screenshot, phone_screenshot

    for maker in (desktop_screenshot, phone_screenshot):
        canvas, truth = maker(photo(6, (640, 480)), np.random.default_rng(0))
        assert _close(find_embedded_box(canvas), truth, 6), (maker.__name__, find_embedded_box(canvas), truth)


def test_bordered_picture_is_one_region_not_two() -> None:
    framed, truth = _framed(photo(8, (640, 480)), 0.10, COLOURS["white"])
    regions = find_regions(framed)
    assert [r.name for r in regions] == ["trimmed"]


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_crops_keep_the_mode_and_have_the_box_size(mode: str) -> None:
    framed, truth = _framed(photo(9, (400, 300)), 0.10, COLOURS["black"])
    framed = framed.convert(mode)
    crops = region_crops(framed)
    assert [name for name, _ in crops] == ["trimmed"]
    crop = crops[0][1]
    assert crop.mode == mode
    assert abs(crop.width - (truth[2] - truth[0])) <= 2 and abs(crop.height - (truth[3] - truth[1])) <= 2


def test_the_crops_hash_like_the_listed_picture() -> None:
    # The reason for the regions: the bordered upload is far from the original under PDQ, its
    # trimmed crop close (and the same for the screenshot's embedded picture).
    picture = photo(12, (640, 480))
    original = hash_pil_image(picture, [Algorithm.PDQ])[0].hash
    framed, _ = _framed(picture, 0.10, COLOURS["black"])
    canvas, _ = _ui_canvas(picture)
    for upload in (framed, canvas):
        whole = hash_pil_image(upload, [Algorithm.PDQ])[0].hash
        (name, crop), = region_crops(upload)
        part = hash_pil_image(crop, [Algorithm.PDQ])[0].hash
        assert whole.distance(original) > 31, name
        assert part.distance(original) <= 16, (name, part.distance(original))
