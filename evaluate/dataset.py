"""The evaluation folder: which images it holds, and which of them are listed or unrelated."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

#: File name endings taken as images (others, such as a README, are skipped).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Split:
    listed: tuple[Path, ...]  # loaded into the hash list; their edits must match
    unrelated: tuple[Path, ...]  # never listed; any match of theirs (edited or not) is false


def find_images(folder: Path) -> list[Path]:
    """The images directly in ``folder``, sorted by name (so a split depends on the seed only)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def split(images: list[Path], listed_fraction: float, seed: int, limit: int | None = None) -> Split:
    """Shuffle with ``seed`` (after taking ``limit`` of them at random, when given) and list the
    first ``listed_fraction``; at least one image on each side."""
    if len(images) < 2:
        raise ValueError(f"need at least 2 images to split into listed and unrelated, found {len(images)}")
    if not 0 < listed_fraction < 1:
        raise ValueError(f"listed fraction must be between 0 and 1, got {listed_fraction}")
    order = sorted(images)
    random.Random(seed).shuffle(order)
    if limit is not None:
        order = order[: max(2, limit)]
    count = min(len(order) - 1, max(1, round(len(order) * listed_fraction)))
    return Split(tuple(sorted(order[:count])), tuple(sorted(order[count:])))
