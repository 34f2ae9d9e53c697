"""Our hashes against the industry's: Meta's published PDQ vectors and the reference libraries.

Data: ``../shared/pdq-vectors`` and ``../shared/photos`` beside the project (never copied in);
every test here skips when they are absent.

- python-threatexchange rows: bit-exact hash, and quality where the row states one.
- Every other producer (C++ via ImageMagick, Java, pure-Python pdqhashing, WASM, signal examples):
  their decoders differ from Pillow, so only closeness is asserted (<= 16 bits, far under the
  match threshold of 31); the distances are printed (``pytest -rP``) and recorded as properties.
- Every vector image and every shared photo: our PDQ equals pdqhash on Pillow's RGB decode, our
  pHash/dHash/aHash/wHash equal imagehash's ``str()`` on ``Image.open(path)``, digests equal hashlib.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from pathlib import Path

import numpy as np
import pdqhash
import pytest
from imagegen import reference_hashes
from PIL import Image

from hashmatch.hashing import DIGESTS, PERCEPTUAL, Algorithm, hash_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VECTORS = SHARED / "pdq-vectors"
IMAGES = VECTORS / "images"
PHOTOS = SHARED / "photos"
CSV = VECTORS / "expected_hashes.csv"

OTHER_PRODUCER_TOLERANCE = 16

# Rows whose published hash python-threatexchange got by hashing palette *indices*: its
# pdq_hasher passes np.asarray(image) to pdqhash unconverted for every mode but LA, and a GIF
# decodes to mode "P" (a 2-D array of indices, stacked into 3 equal channels). The hash then
# depends on the order of the palette, not on the picture: the same pixels saved as PNG hash
# ~150 bits away. We hash the colours (as the other implementations do and the brief requires);
# test_gif100_row_is_a_palette_index_hash proves that this is the only difference.
PALETTE_INDEX_ROWS = {"gen_gif100.gif"}


def _hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def _pdq_oracle(image: Image.Image) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.asarray(image.convert("RGB")))
    return _hex(bits), int(quality)


def _distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


# --- the CSV ------------------------------------------------------------------------------------

_TRANSFORMS = {  # python-threatexchange's --photo-preprocess=rotations, as its CSV rows describe
    "ROTATE90": lambda im: im.rotate(90, expand=True),
    "ROTATE180": lambda im: im.rotate(180, expand=True),
    "ROTATE270": lambda im: im.rotate(270, expand=True),
    "FLIPX": lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "FLIPY": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "FLIPPLUS1": lambda im: im.transpose(Image.Transpose.ROTATE_270).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "FLIPMINUS1": lambda im: im.transpose(Image.Transpose.ROTATE_90).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}


def _image_path(image_column: str) -> Path:
    if image_column.startswith("RANDOM_IMAGE_BASE64"):
        return IMAGES / "random_image_base64.png"
    if image_column.startswith("GENERATED gif100"):
        return IMAGES / "gen_gif100.gif"
    return IMAGES / image_column.split(" ")[0]


def _transform(image_column: str) -> str | None:
    match = re.search(r"\[([A-Z0-9]+)\b", image_column)
    return match.group(1) if match else None


def _rows() -> list[dict[str, str]]:
    if not CSV.is_file():
        return []
    with CSV.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _params(rows: list[dict[str, str]], *, absent_reason: str) -> list:
    if not rows:
        return [pytest.param(None, marks=pytest.mark.skip(reason=absent_reason))]
    params = []
    for row in rows:
        path = _image_path(row["image"])
        ident = path.name + (f"[{_transform(row['image'])}]" if _transform(row["image"]) else "")
        ident = f"{row['producer'].split(' (')[0]}:{ident}"
        marks = []
        if path.name in PALETTE_INDEX_ROWS and "python-threatexchange" in row["producer"]:
            marks.append(
                pytest.mark.xfail(strict=True, reason="python-threatexchange hashed palette indices; see PALETTE_INDEX_ROWS")
            )
        params.append(pytest.param(row, id=ident, marks=marks))
    return params


ROWS = _rows()
TE_ROWS = [r for r in ROWS if "python-threatexchange" in r["producer"]]
OTHER_ROWS = [r for r in ROWS if "python-threatexchange" not in r["producer"]]
ABSENT = f"{CSV} is absent (shared test data lives beside the project)"


@functools.lru_cache(maxsize=None)
def _our_pdq(path: Path, transform: str | None) -> tuple[str, int]:
    data = path.read_bytes()
    if transform is not None:
        # The CLI transforms the decoded image, re-encodes it as PNG and hashes that.
        with Image.open(io.BytesIO(data)) as original:
            out = io.BytesIO()
            _TRANSFORMS[transform](original).save(out, "PNG")
            data = out.getvalue()
    result = hash_image(data, [Algorithm.PDQ]).get(Algorithm.PDQ)
    assert result is not None and result.quality is not None
    return str(result.hash), result.quality


# --- python-threatexchange: exact ------------------------------------------------------------


@pytest.mark.parametrize("row", _params(TE_ROWS, absent_reason=ABSENT))
def test_python_threatexchange_rows_exact(row: dict[str, str]) -> None:
    path = _image_path(row["image"])
    assert path.is_file(), f"vector image missing: {path}"
    ours, quality = _our_pdq(path, _transform(row["image"]))
    assert ours == row["expected_hash"], f"{_distance(ours, row['expected_hash'])} bits apart"
    if row["expected_quality"]:
        assert quality == int(row["expected_quality"])


def test_threatexchange_rows_are_covered() -> None:
    if not ROWS:
        pytest.skip(ABSENT)
    # rgb.jpeg is the brief's own check; LA and I;16 carry stated qualities.
    names = {_image_path(r["image"]).name for r in TE_ROWS}
    assert {"rgb.jpeg", "LA.png", "I16.png", "sample-b.jpg", "random_image_base64.png"} <= names
    rgb = next(r for r in TE_ROWS if r["image"].endswith("rgb.jpeg"))
    assert rgb["expected_hash"] == "fb4eed46cb8a6c78819ca06b756c541f7b07ef6d02c82fccd00f862166272cda"


def test_gif100_row_is_a_palette_index_hash() -> None:
    """The one python-threatexchange row we do not reproduce, and why (see PALETTE_INDEX_ROWS)."""
    rows = [r for r in TE_ROWS if _image_path(r["image"]).name in PALETTE_INDEX_ROWS]
    if not rows:
        pytest.skip(ABSENT)
    for row in rows:
        path = _image_path(row["image"])
        with Image.open(path) as image:
            assert image.mode == "P"
            indices = np.asarray(image)
            bits, _ = pdqhash.compute(np.ascontiguousarray(np.stack([indices] * 3, axis=2)))
            assert _hex(bits) == row["expected_hash"], "the published hash is pdqhash of the palette indices"
            colours, _ = _pdq_oracle(image)
        ours, _ = _our_pdq(path, None)
        assert ours == colours
        print(f"{path.name}: python-threatexchange (palette indices) vs colours: {_distance(ours, row['expected_hash'])} bits")


# --- other producers: close -------------------------------------------------------------------


@pytest.mark.parametrize("row", _params(OTHER_ROWS, absent_reason=ABSENT))
def test_other_producers_within_tolerance(row: dict[str, str], record_property) -> None:
    path = _image_path(row["image"])
    assert path.is_file(), f"vector image missing: {path}"
    ours, quality = _our_pdq(path, _transform(row["image"]))
    distance = _distance(ours, row["expected_hash"])
    record_property("pdq_distance", distance)
    print(f"{distance:3d} bits  {row['producer']}  {row['image']}")
    assert distance <= OTHER_PRODUCER_TOLERANCE
    if row["expected_quality"]:
        assert abs(quality - int(row["expected_quality"])) <= 10


def test_other_producers_report() -> None:
    """A table of how far each non-python-threatexchange producer is from us (see -rP)."""
    if not OTHER_ROWS:
        pytest.skip(ABSENT)
    by_producer: dict[str, list[int]] = {}
    for row in OTHER_ROWS:
        ours, _ = _our_pdq(_image_path(row["image"]), _transform(row["image"]))
        by_producer.setdefault(row["producer"], []).append(_distance(ours, row["expected_hash"]))
    for producer, distances in sorted(by_producer.items()):
        exact = sum(d == 0 for d in distances)
        print(f"{producer}: {len(distances)} rows, {exact} exact, max {max(distances)} bits, distances {distances}")
    assert max(max(d) for d in by_producer.values()) <= OTHER_PRODUCER_TOLERANCE


# --- every image: equal to the reference libraries -------------------------------------------


def _files() -> list:
    files = []
    if IMAGES.is_dir():
        files += sorted(p for p in IMAGES.rglob("*") if p.is_file())
    if PHOTOS.is_dir():
        files += sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{SHARED} is absent"))]
    return [pytest.param(p, id=str(p.relative_to(SHARED))) for p in files]


@pytest.mark.parametrize("path", _files())
def test_every_image_equals_reference_libraries(path: Path) -> None:
    data = path.read_bytes()
    result = hash_image(data, PERCEPTUAL + DIGESTS)
    ours = {r.hash.algorithm: (str(r.hash), r.quality) for r in result.results}
    assert ours == reference_hashes(data)
    with Image.open(io.BytesIO(data)) as image:
        assert (result.width, result.height, result.format) == (image.width, image.height, image.format)
