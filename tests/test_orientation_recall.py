"""Recall of turned and mirrored uploads on real photos, through the service at default thresholds.

``../shared/photos`` (73 photos; skipped when absent): every other photo is listed (PDQ and pHash
of the file), the rest are unrelated. Each listed photo is uploaded mirrored left-right and
top-bottom and turned 90, 180 and 270 degrees, re-encoded as JPEG quality 90 as a re-upload would
be: at least 99% of each kind must match its own entry. No upload of an unrelated photo, as it is
or turned, may match anything. bench/hashing.py prints the same figures with the distances.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from hashmatch.client import Client, HashEntry
from hashmatch.hashing import Algorithm

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"
TURNS = {
    "flip_horizontal": Image.Transpose.FLIP_LEFT_RIGHT,
    "flip_vertical": Image.Transpose.FLIP_TOP_BOTTOM,
    "rotate_90": Image.Transpose.ROTATE_90,
    "rotate_180": Image.Transpose.ROTATE_180,
    "rotate_270": Image.Transpose.ROTATE_270,
}


def _photos() -> list[Path]:
    if not PHOTOS.is_dir():
        pytest.skip(f"{PHOTOS} is absent (shared test data lives beside the project)")
    return sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})


def _upload(path: Path, transpose: Image.Transpose | None) -> bytes:
    with Image.open(path) as image:
        picture = image.convert("RGB")
    if transpose is not None:
        picture = picture.transpose(transpose)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def test_turned_uploads_match_and_unrelated_photos_do_not(server) -> None:
    photos = _photos()
    listed, unrelated = photos[0::2], photos[1::2]
    with Client(server.address, timeout=60) as client:
        client.create_list("recall")  # default thresholds, matching orientations (the default)
        entries = []
        for path in listed:
            for value in client.hash_image(path.read_bytes(), [Algorithm.PDQ, Algorithm.PHASH]).hashes:
                entries.append(HashEntry(value.algorithm, value.value, id=path.stem))
        client.upload_hashes("recall", entries)

        recall = {}
        for name, transpose in TURNS.items():
            found = [
                any(m.entry_id == path.stem for m in client.match_image(_upload(path, transpose)).matches)
                for path in listed
            ]
            recall[name] = sum(found) / len(found)
        false_matches = [
            (path.name, name, [(m.entry_id, m.algorithm.value, m.distance) for m in result.matches])
            for path in unrelated
            for name, transpose in {"as is": None, **TURNS}.items()
            if (result := client.match_image(_upload(path, transpose))).matches
        ]
    print(f"recall over {len(listed)} listed photos: {recall}; "
          f"unrelated uploads matching: {len(false_matches)} of {len(unrelated) * (len(TURNS) + 1)}")
    assert all(r >= 0.99 for r in recall.values()), recall
    assert false_matches == []
