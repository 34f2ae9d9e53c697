"""The test-image generator keeps its promises, so tests built on it can trust it."""

from __future__ import annotations

import io
import itertools

import imagehash
import pytest
from imagegen import animation, bomb_png, encode, photo, variants, with_exif_orientation
from PIL import Image

from hashmatch.hashing import Algorithm, hash_image, hash_pil_image

SEEDS = range(50)
VARIANT_SEEDS = range(20)


def _pdq_phash(image: Image.Image) -> tuple:
    pdq, phash = hash_pil_image(image, [Algorithm.PDQ, Algorithm.PHASH])
    return pdq, phash


@pytest.fixture(scope="module")
def hashes() -> dict[int, tuple]:
    return {seed: _pdq_phash(photo(seed)) for seed in SEEDS}


def test_photo_is_deterministic_and_a_fresh_copy() -> None:
    a, b = photo(7), photo(7)
    assert a is not b and a.tobytes() == b.tobytes()
    assert (a.mode, a.size) == ("RGB", (640, 480))
    a.paste((0, 0, 0), (0, 0, 100, 100))
    assert photo(7).tobytes() == b.tobytes()  # modifying a copy does not touch the cache
    assert photo(7, size=(200, 100)).size == (200, 100)
    assert photo(7).tobytes() != photo(8).tobytes()


def test_photos_have_high_pdq_quality(hashes) -> None:
    qualities = {seed: pdq.quality for seed, (pdq, _) in hashes.items()}
    assert min(qualities.values()) >= 80, qualities


def test_different_seeds_are_far_apart(hashes) -> None:
    pdq_closest = min(
        (hashes[a][0].hash.distance(hashes[b][0].hash), a, b) for a, b in itertools.combinations(SEEDS, 2)
    )
    phash_closest = min(
        (hashes[a][1].hash.distance(hashes[b][1].hash), a, b) for a, b in itertools.combinations(SEEDS, 2)
    )
    print(f"closest pair: PDQ {pdq_closest}, pHash {phash_closest}")
    assert pdq_closest[0] > 80
    assert phash_closest[0] > 20


def test_variants_stay_within_match_thresholds() -> None:
    worst: dict[str, list[int]] = {}
    for seed in VARIANT_SEEDS:
        original = hash_image(encode(photo(seed), "PNG"), [Algorithm.PDQ, Algorithm.PHASH])
        found = variants(photo(seed))
        assert set(found) == {"jpeg_q70", "half_png", "webp"}
        for name, data in found.items():
            variant = hash_image(data, [Algorithm.PDQ, Algorithm.PHASH])
            pdq = variant.get(Algorithm.PDQ).hash.distance(original.get(Algorithm.PDQ).hash)
            phash = variant.get(Algorithm.PHASH).hash.distance(original.get(Algorithm.PHASH).hash)
            current = worst.setdefault(name, [0, 0])
            worst[name] = [max(current[0], pdq), max(current[1], phash)]
    print(f"worst [PDQ, pHash] distance per variant: {worst}")
    for name, (pdq, phash) in worst.items():
        assert pdq <= 31, name
        assert phash <= 10, name


def test_variant_formats() -> None:
    found = {name: Image.open(io.BytesIO(data)) for name, data in variants(photo(1)).items()}
    assert found["jpeg_q70"].format == "JPEG"
    assert found["half_png"].format == "PNG" and found["half_png"].size == (320, 240)
    assert found["webp"].format == "WEBP"


def test_helpers_make_what_they_say() -> None:
    gif = Image.open(io.BytesIO(animation([photo(1, (64, 48)), photo(2, (64, 48))])))
    assert (gif.format, gif.n_frames) == ("GIF", 2)
    bomb = bomb_png(30000, 30000)
    assert len(bomb) < 200_000
    assert bomb[:8] == b"\x89PNG\r\n\x1a\n" and bomb[12:16] == b"IHDR"
    assert (int.from_bytes(bomb[16:20], "big"), int.from_bytes(bomb[20:24], "big")) == (30000, 30000)
    small = Image.open(io.BytesIO(bomb_png(300, 200)))
    small.load()  # a real, decodable PNG: all black, 1 bit
    assert (small.mode, small.size, small.getextrema()) == ("1", (300, 200), (0, 0))
    tagged = Image.open(io.BytesIO(with_exif_orientation(photo(1, (64, 48)), 6)))
    assert tagged.getexif()[0x0112] == 6 and tagged.size == (64, 48)


def test_phash_oracle_agrees_with_steering() -> None:
    """The generator steers imagehash's pHash itself, not a look-alike: the hash is the pattern."""
    from imagegen import _target_signs

    for seed in (3, 4, 70):
        assert (imagehash.phash(photo(seed)).hash == (_target_signs(seed) > 0)).all()


def test_different_seeds_are_far_apart_in_every_orientation() -> None:
    """Matching searches all 8 orientations, so no rotation or mirror image of one seed may come
    near another seed (or the seed itself: a rotated copy must not match as the original)."""
    from hashmatch.hashing import Orientation

    seeds = range(24)
    variants = {s: hash_pil_image(photo(s), [Algorithm.PDQ, Algorithm.PHASH], orientations=True) for s in seeds}
    closest = {Algorithm.PDQ: 256, Algorithm.PHASH: 64}
    for a in seeds:
        originals = {r.algorithm: r.hash for r in variants[a][:2]}
        for b in seeds:
            for r in variants[b]:
                if a == b and r.orientation is Orientation.ORIGINAL:
                    continue
                closest[r.algorithm] = min(closest[r.algorithm], originals[r.algorithm].distance(r.hash))
    print(f"closest in any orientation: {closest}")
    assert closest[Algorithm.PDQ] > 80
    assert closest[Algorithm.PHASH] >= 22
