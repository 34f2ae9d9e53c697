"""Rotations and mirror images: the 8 orientation hashes, and matching them through the service.

- Each PDQ / pHash variant equals hashing the picture actually turned or mirrored: PDQ bit for bit
  (its mirrors are sampled, not sign-flipped: see hashing.dihedral), pHash within 2 bits (Pillow's
  LANCZOS resize is symmetric only up to rounding; 98% of variants are bit-exact, measured by
  test_variants_equal_hashing_the_transformed_picture).
- Names agree with Meta's pdqDihedralHash256es where its DCT sign trick is exact (a 64x64 picture).
- MatchImage finds a listed picture uploaded rotated or mirrored, says which orientation matched
  and points query_index at the hash of the upload as it is; a list with match_orientations off
  does not; MatchHashes passes a hash's orientation through; the SDK and CLI show all of it.
"""

from __future__ import annotations

import json

import numpy as np
import pdqhash
import pytest
from imagegen import encode, photo
from PIL import Image

from hashmatch.client import Client, HashEntry
from hashmatch.client.cli import main as cli_main
from hashmatch.hashing import ALL_ORIENTATIONS, Algorithm, Orientation, hash_image, hash_pil_image
from hashmatch.hashing.orientation import PILLOW_TRANSPOSE

ORIENTED = [Algorithm.PDQ, Algorithm.PHASH]
TURNS = [o for o in ALL_ORIENTATIONS if o is not Orientation.ORIGINAL]


def turn(image: Image.Image, orientation: Orientation) -> Image.Image:
    name = PILLOW_TRANSPOSE[orientation]
    return image if name is None else image.transpose(Image.Transpose[name])


def _by_orientation(results) -> dict[tuple[Algorithm, Orientation], object]:
    return {(r.algorithm, r.orientation): r for r in results}


def test_variants_equal_hashing_the_transformed_picture() -> None:
    pictures = [photo(s, size) for s, size in ((40, (640, 480)), (41, (333, 517)), (42, (1001, 64)), (43, (97, 97)))]
    phash_distances = []
    for picture in pictures:
        variants = _by_orientation(hash_pil_image(picture, ORIENTED, orientations=True))
        for orientation in TURNS:
            actual = _by_orientation(hash_pil_image(turn(picture, orientation), ORIENTED))
            pdq_variant = variants[(Algorithm.PDQ, orientation)]
            pdq_actual = actual[(Algorithm.PDQ, Orientation.ORIGINAL)]
            assert pdq_variant.hash == pdq_actual.hash, (picture.size, orientation)
            assert pdq_variant.quality == pdq_actual.quality
            phash_distances.append(
                variants[(Algorithm.PHASH, orientation)].hash.distance(actual[(Algorithm.PHASH, Orientation.ORIGINAL)].hash)
            )
    print(f"pHash variant vs transformed picture: {phash_distances.count(0)}/{len(phash_distances)} exact, "
          f"max {max(phash_distances)} bits")
    assert max(phash_distances) <= 2
    assert phash_distances.count(0) >= 0.9 * len(phash_distances)


def test_names_match_metas_dihedral_hashes() -> None:
    # At 64x64 PDQ samples every pixel once, so Meta's DCT sign trick is exact and must agree.
    picture = photo(44, (64, 64))
    ours = _by_orientation(hash_pil_image(picture, [Algorithm.PDQ], orientations=True))
    metas, _ = pdqhash.compute_dihedral(np.asarray(picture))
    meta_order = [Orientation.ORIGINAL, Orientation.ROTATE_90, Orientation.ROTATE_180, Orientation.ROTATE_270,
                  Orientation.FLIP_VERTICAL, Orientation.FLIP_HORIZONTAL, Orientation.TRANSPOSE, Orientation.TRANSVERSE]
    for orientation, bits in zip(meta_order, metas):
        expected = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
        assert ours[(Algorithm.PDQ, orientation)].hash.value == expected, orientation


def test_hash_image_variants_shape() -> None:
    data = encode(photo(45), "JPEG", quality=90)
    plain = hash_image(data)
    assert plain.variants == ()
    full = hash_image(data, orientations=True)
    assert full.results == plain.results
    assert [(v.algorithm, v.orientation) for v in full.variants] == [(a, o) for a in ORIENTED for o in TURNS]
    pdq_quality = full.get(Algorithm.PDQ).quality
    assert all(v.quality == pdq_quality for v in full.variants if v.algorithm is Algorithm.PDQ)
    # only the oriented algorithms have variants, in the order asked for
    mixed = hash_image(data, [Algorithm.MD5, Algorithm.PHASH, Algorithm.DHASH], orientations=True)
    assert {v.algorithm for v in mixed.variants} == {Algorithm.PHASH} and len(mixed.variants) == 7
    # distinct pictures: no two variants of a natural photo coincide
    assert len({v.hash for v in full.variants}) == 14


# --- through the service -------------------------------------------------------------------------

LISTED = 46


@pytest.fixture
def client(server):
    with Client(server.address, timeout=30) as c:
        yield c


def _list_picture(client: Client, name: str, seed: int = LISTED, **create) -> None:
    client.create_list(name, **create)
    hashes = client.hash_image(encode(photo(seed), "PNG"), ORIENTED).hashes
    client.upload_hashes(name, [HashEntry(h.algorithm, h.value, id=f"picture-{seed}") for h in hashes])


@pytest.mark.parametrize("orientation", TURNS, ids=lambda o: o.value)
def test_match_image_finds_turned_uploads(client: Client, orientation: Orientation) -> None:
    _list_picture(client, "turned")
    upload = encode(turn(photo(LISTED), orientation), "JPEG", quality=90)
    result = client.match_image(upload)
    found = {(m.algorithm, m.orientation) for m in result.matches}
    # the upload turned back is the listed picture: that orientation matches, for both algorithms
    back = {Orientation.ROTATE_90: Orientation.ROTATE_270, Orientation.ROTATE_270: Orientation.ROTATE_90}
    expected = back.get(orientation, orientation)
    assert found == {(Algorithm.PDQ, expected), (Algorithm.PHASH, expected)}
    for m in result.matches:
        assert result.hashes[m.query_index].algorithm is m.algorithm
        assert result.hashes[m.query_index].orientation is Orientation.ORIGINAL
        assert m.distance <= m.threshold and m.entry_id == f"picture-{LISTED}"
    assert len(result.hashes) == 4  # the response's hashes are the upload's own


def test_list_setting_turns_orientation_matching_off(client: Client) -> None:
    _list_picture(client, "as-listed", match_orientations=False)
    assert client.get_list("as-listed").match_orientations is False
    mirrored = encode(turn(photo(LISTED), Orientation.FLIP_HORIZONTAL), "JPEG", quality=90)
    assert client.match_image(mirrored).matches == ()
    straight = client.match_image(encode(photo(LISTED), "JPEG", quality=90))
    assert {m.orientation for m in straight.matches} == {Orientation.ORIGINAL} and len(straight.matches) == 2
    updated = client.update_list("as-listed", match_orientations=True)
    assert updated.match_orientations is True
    assert {m.orientation for m in client.match_image(mirrored).matches} == {Orientation.FLIP_HORIZONTAL}


def test_lists_default_to_matching_orientations_and_unrelated_pictures_stay_apart(client: Client) -> None:
    _list_picture(client, "default")
    assert client.get_list("default").match_orientations is True
    for seed in range(LISTED + 1, LISTED + 6):
        for orientation in (Orientation.ORIGINAL, Orientation.ROTATE_90, Orientation.FLIP_VERTICAL):
            assert client.match_image(encode(turn(photo(seed), orientation), "JPEG", quality=90)).matches == ()


def test_hash_image_include_orientations_and_match_hashes(client: Client) -> None:
    _list_picture(client, "by-hash")
    upload = encode(turn(photo(LISTED), Orientation.ROTATE_180), "PNG")
    result = client.hash_image(upload, include_orientations=True)
    assert len(result.hashes) == 4 + 14
    assert [h.orientation for h in result.hashes[:4]] == [Orientation.ORIGINAL] * 4
    assert {(h.algorithm, h.orientation) for h in result.hashes[4:]} == {(a, o) for a in ORIENTED for o in TURNS}
    variant = result.get(Algorithm.PDQ, Orientation.ROTATE_180)
    assert variant is not None and variant.quality == result.get(Algorithm.PDQ).quality
    # the client matches hashes it computed elsewhere: the variant's orientation comes back
    matches = client.match_hashes([result.get(Algorithm.PDQ), variant])
    assert [(m.query_index, m.orientation, m.distance) for m in matches] == [(1, Orientation.ROTATE_180, 0)]
    # a variant hash sent to a list that does not match orientations is ignored there
    client.update_list("by-hash", match_orientations=False)
    assert client.match_hashes([variant]) == ()


def test_cli_shows_orientations(server, tmp_path, capsys) -> None:
    address = ["--server", server.address]
    with Client(server.address, timeout=30) as c:
        _list_picture(c, "cli")
    mirrored = tmp_path / "mirrored.jpg"
    mirrored.write_bytes(encode(turn(photo(LISTED), Orientation.FLIP_VERTICAL), "JPEG", quality=90))
    assert cli_main([*address, "match", str(mirrored)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-1] == "ORIENTATION"
    assert {line.split()[-1] for line in lines[1:]} == {"flip_vertical"}
    assert cli_main([*address, "--json", "hash", "--orientations", str(mirrored)]) == 0
    hashes = json.loads(capsys.readouterr().out)[0]["hashes"]
    assert len(hashes) == 18 and {h["orientation"] for h in hashes[4:]} == {o.value for o in TURNS}
    assert cli_main([*address, "hash", "--orientations", "--fast", str(mirrored)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["FILE", "ALGORITHM", "HASH", "QUALITY", "ORIENTATION"] and len(table) == 19


def test_variants_equal_python_threatexchanges_rotation_hashes() -> None:
    """python-threatexchange's --photo-preprocess=rotations rows hash the decoded picture turned
    and re-encoded; our variants of the one original decode must be those hashes, bit for bit."""
    from test_hashing_vectors import ROWS, _image_path, _transform

    rows = [r for r in ROWS if "python-threatexchange" in r["producer"] and _transform(r["image"])]
    if not rows:
        pytest.skip("../shared/pdq-vectors is absent")
    names = {"ROTATE90": Orientation.ROTATE_90, "ROTATE180": Orientation.ROTATE_180,
             "ROTATE270": Orientation.ROTATE_270, "FLIPX": Orientation.FLIP_VERTICAL,
             "FLIPY": Orientation.FLIP_HORIZONTAL, "FLIPPLUS1": Orientation.TRANSPOSE,
             "FLIPMINUS1": Orientation.TRANSVERSE}
    for row in rows:
        result = hash_image(_image_path(row["image"]).read_bytes(), [Algorithm.PDQ], orientations=True)
        variant = next(v for v in result.variants if v.orientation is names[_transform(row["image"])])
        assert str(variant.hash) == row["expected_hash"], row["image"]
    assert {_transform(r["image"]) for r in rows} == set(names)
