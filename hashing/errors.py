"""Errors for images that cannot be hashed. Messages describe the problem and never quote image bytes."""

from __future__ import annotations

#: Images with more pixels than this (width x height, from the header) are refused. Defined here,
#: beside ImageTooLarge, so that importing it needs neither Pillow nor numpy.
DEFAULT_MAX_PIXELS = 100_000_000


class ImageError(ValueError):
    """Base class: the caller's image cannot be hashed (a client error, never a server fault)."""


class InvalidImage(ImageError):
    """Empty data, not an image, truncated or corrupt data, or a pixel format that cannot be hashed."""


class ImageTooLarge(ImageError):
    """The image's width x height, read from its header, is over the pixel limit.

    Raised before any pixel is decoded, so a decompression bomb costs only its header.
    """

    def __init__(self, width: int, height: int, max_pixels: int) -> None:
        self.width = width
        self.height = height
        self.pixels = width * height
        self.max_pixels = max_pixels
        super().__init__(
            f"image is {width}x{height} = {self.pixels} pixels, over the limit of {max_pixels}"
        )

    def __reduce__(self):  # keep the exception picklable (multiprocessing, pytest-xdist)
        return (type(self), (self.width, self.height, self.max_pixels))
