"""The confirmation policy: a list may accept a hit beyond an algorithm's threshold, up to its
confirmed threshold, when another algorithm's hash of the same entry also hits the same query
variant. Checked against a brute-force reading of that rule, through the store (persisted,
migrated), and end to end through a real server."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from imagegen import encode, photo

from hashmatch.client import Client, HashEntry, InvalidArgument
from hashmatch.client.cli import main as cli_main
from hashmatch.hashing import Algorithm, Hash, Orientation, hash_image
from hashmatch.index import HashLists, InvalidListSpec, NewEntry, SQLiteStore

PDQ, PHASH, DHASH, MD5 = Algorithm.PDQ, Algorithm.PHASH, Algorithm.DHASH, Algorithm.MD5


def random_value(rng: random.Random, algorithm: Algorithm) -> bytes:
    return rng.getrandbits(algorithm.spec.bits).to_bytes(algorithm.spec.nbytes, "big")


def flip(rng: random.Random, value: bytes, bits: int) -> bytes:
    mask = 0
    for b in rng.sample(range(len(value) * 8), bits):
        mask |= 1 << b
    return (int.from_bytes(value, "big") ^ mask).to_bytes(len(value), "big")


@pytest.fixture
def lists(tmp_path: Path) -> HashLists:
    hash_lists = HashLists(SQLiteStore(tmp_path / "store.sqlite3"))
    yield hash_lists
    hash_lists.close()


# -- the rule, read literally, over every entry and query ------------------------------------------

def brute_force(lists: HashLists, queries: list[Hash], orientations: list[Orientation],
                regions: list[str]) -> dict[tuple, set[Algorithm | None]]:
    """(list, entry id, algorithm, distance, query) -> the algorithms that may be its confirmed_by
    ({None} for a hit within the threshold)."""
    infos = {i.list_id: i for i in lists.list_lists()}
    entries = list(lists.store.iter_entries())

    def reach(info, algorithm):
        return max(info.thresholds[algorithm], info.confirmed_thresholds.get(algorithm, -1))

    def hits_of(entry):
        """(query, distance) of every query within the entry's list's reach."""
        info = infos[entry.list_id]
        out = []
        for q, query in enumerate(queries):
            if query.algorithm is not entry.algorithm or not info.enabled:
                continue
            if orientations[q] is not Orientation.ORIGINAL and not info.match_orientations:
                continue
            distance = query.distance(Hash(entry.algorithm, entry.value))
            if distance <= reach(info, entry.algorithm):
                out.append((q, distance))
        return out

    within = {id(e): hits_of(e) for e in entries}
    expected: dict[tuple, set[Algorithm | None]] = {}
    for entry in entries:
        info = infos[entry.list_id]
        for q, distance in within[id(entry)]:
            key = (info.name, entry.entry_id, entry.algorithm, distance, q)
            if distance <= info.thresholds[entry.algorithm]:
                expected[key] = {None}
                continue
            variant = (orientations[q], regions[q])
            confirmers = {
                other.algorithm
                for other in entries
                if other.list_id == entry.list_id and other.entry_id == entry.entry_id
                and other.algorithm is not entry.algorithm
                and any((orientations[j], regions[j]) == variant for j, _ in within[id(other)])
            }
            if confirmers:
                expected[key] = confirmers
    return expected


@pytest.mark.parametrize("seed", range(8))
def test_confirmation_matches_the_brute_force_reading_of_the_rule(lists: HashLists, seed: int) -> None:
    rng = random.Random(seed)
    specs = []
    for n in range(3):
        thresholds = {PDQ: rng.choice([20, 31, 40]), PHASH: rng.choice([6, 10]), DHASH: rng.choice([8, 10])}
        confirmed: dict[Algorithm, int] = {}
        # List 0 has no policy (the rule must reduce to plain thresholds), list 1 loosens PDQ only
        # (the literal rule), list 2 both (a joint limit).
        if n > 0:
            confirmed[PDQ] = thresholds[PDQ] + rng.choice([15, 30, 45])
        if n > 1:
            confirmed[PHASH] = thresholds[PHASH] + rng.choice([4, 8])
        specs.append((f"list{n}", thresholds, confirmed, rng.random() < 0.7))
    for name, thresholds, confirmed, orientations in specs:
        lists.create_list(name, thresholds=thresholds, confirmed_thresholds=confirmed, match_orientations=orientations)

    # Entries with PDQ and pHash, some also dHash or MD5, some with one algorithm only; every list
    # holds some of the same hashes under its own ids.
    pictures = []
    for i in range(40):
        algorithms = [PDQ, PHASH] if i % 5 else [rng.choice([PDQ, PHASH])]
        if i % 3 == 0:
            algorithms.append(DHASH)
        if i % 7 == 0:
            algorithms.append(MD5)
        pictures.append({a: random_value(rng, a) for a in algorithms})
    for name, *_ in specs:
        chosen = [p for p in range(len(pictures)) if rng.random() < 0.7]
        lists.add_entries(name, [
            NewEntry(a, v, None, f"{name}-e{p}") for p in chosen for a, v in pictures[p].items()
        ])

    # Queries: a few "uploads", each several variants (orientation, region), each variant with a
    # hash per algorithm at a distance from a picture's that crosses the thresholds.
    queries: list[Hash] = []
    orientations: list[Orientation] = []
    regions: list[str] = []
    for _ in range(40):
        picture = pictures[rng.randrange(len(pictures))]
        for variant in rng.sample([(Orientation.ORIGINAL, "whole"), (Orientation.ROTATE_90, "whole"),
                                   (Orientation.ORIGINAL, "trimmed")], rng.randint(1, 3)):
            for algorithm in (PDQ, PHASH, DHASH, MD5):
                if rng.random() < 0.15:
                    continue
                if algorithm in picture:
                    # Within, loose, or beyond: each about as likely.
                    bits = rng.choice({PDQ: [(0, 31), (32, 75), (60, 110)], PHASH: [(0, 10), (8, 18), (15, 30)],
                                       DHASH: [(0, 10), (9, 20)], MD5: [(0, 0), (5, 5)]}[algorithm])
                    bits = rng.randint(*bits)
                    value = flip(rng, picture[algorithm], bits)
                else:
                    value = random_value(rng, algorithm)
                queries.append(Hash(algorithm, value))
                orientations.append(variant[0])
                regions.append(variant[1])

    expected = brute_force(lists, queries, orientations, regions)
    found = lists.match(queries, orientations=orientations, regions=regions).hits
    got = {(h.list_name, h.entry_id, h.algorithm, h.distance, h.query_index): h.confirmed_by for h in found}
    assert set(got) == set(expected)
    for key, confirmed_by in got.items():
        assert confirmed_by in expected[key], key
    # The draw exercised all three outcomes: within, confirmed, and beyond without confirmation.
    assert any(v == {None} for v in expected.values()) and any(v != {None} for v in expected.values())
    loose_unconfirmed = brute_force_loose_only(lists, queries, orientations, regions)
    assert loose_unconfirmed - set(expected), "no hit was left out for want of confirmation"


def brute_force_loose_only(lists, queries, orientations, regions) -> set[tuple]:
    """Every hit within reach, confirmed or not: what the rule must sometimes turn away."""
    infos = {i.list_id: i for i in lists.list_lists()}
    out = set()
    for entry in lists.store.iter_entries():
        info = infos[entry.list_id]
        for q, query in enumerate(queries):
            if query.algorithm is not entry.algorithm:
                continue
            if orientations[q] is not Orientation.ORIGINAL and not info.match_orientations:
                continue
            distance = query.distance(Hash(entry.algorithm, entry.value))
            if distance <= max(info.thresholds[entry.algorithm], info.confirmed_thresholds.get(entry.algorithm, -1)):
                out.add((info.name, entry.entry_id, entry.algorithm, distance, q))
    return out


def test_a_loose_hit_needs_another_algorithm_of_the_same_entry_and_variant(lists: HashLists) -> None:
    rng = random.Random(1)
    lists.create_list("policy", confirmed_thresholds={PDQ: 70, PHASH: 16})
    lists.create_list("plain")
    pdq, phash = random_value(rng, PDQ), random_value(rng, PHASH)
    other_pdq = random_value(rng, PDQ)
    for name in ("policy", "plain"):
        lists.add_entries(name, [NewEntry(PDQ, pdq, None, "a"), NewEntry(PHASH, phash, None, "a"),
                                 NewEntry(PDQ, other_pdq, None, "b")])
    near_pdq, near_phash = Hash(PDQ, flip(rng, pdq, 50)), Hash(PHASH, flip(rng, phash, 14))

    both = lists.match([near_pdq, near_phash]).hits
    assert {(h.list_name, h.algorithm, h.confirmed_by) for h in both} == {
        ("policy", PDQ, PHASH), ("policy", PHASH, PDQ)}
    assert all(h.threshold == {PDQ: 31, PHASH: 10}[h.algorithm] and h.entry_id == "a" for h in both)
    # One loose hit alone: nothing.
    assert lists.match([near_pdq]).hits == []
    # The pHash within its own threshold confirms the loose PDQ; the plain list matches on pHash only.
    close_phash = Hash(PHASH, flip(rng, phash, 4))
    hits = {(h.list_name, h.algorithm, h.confirmed_by) for h in lists.match([near_pdq, close_phash]).hits}
    assert hits == {("policy", PDQ, PHASH), ("policy", PHASH, None), ("plain", PHASH, None)}
    # Another entry's hit does not confirm: b's PDQ is exact, a's pHash is loose.
    assert {(h.entry_id, h.confirmed_by) for h in lists.match([Hash(PDQ, other_pdq), near_phash]).hits} == {
        ("b", None)}
    # The hashes of different variants of an upload do not confirm each other.
    turned = lists.match([near_pdq, near_phash], orientations=[Orientation.ORIGINAL, Orientation.ROTATE_90]).hits
    assert turned == []
    # Beyond the confirmed threshold: nothing, whatever agrees.
    assert lists.match([Hash(PDQ, flip(rng, pdq, 71)), close_phash]).hits[0].algorithm is PHASH


def test_the_policy_is_validated_persisted_and_changed(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    lists = HashLists(SQLiteStore(path))
    info = lists.create_list("l", thresholds={PDQ: 40}, confirmed_thresholds={PDQ: 80, PHASH: 14})
    assert info.confirmed_thresholds == {PDQ: 80, PHASH: 14}
    for bad, words in (({PDQ: 40}, "above its threshold 40"), ({MD5: 3}, "exact digest"),
                       ({PHASH: 65}, "at most 64")):
        with pytest.raises(InvalidListSpec, match=words):
            lists.create_list("m", thresholds={PDQ: 40}, confirmed_thresholds=bad)
    with pytest.raises(InvalidListSpec, match="above its threshold 90"):
        lists.update_list("l", thresholds={PDQ: 90})  # would leave PDQ's confirmed limit below it
    assert lists.get_list("l").thresholds[PDQ] == 40  # all or nothing
    info = lists.update_list("l", thresholds={PDQ: 90}, confirmed_thresholds={PDQ: 100})
    assert info.confirmed_thresholds == {PDQ: 100, PHASH: 14}
    assert lists.update_list("l", confirmed_thresholds={PHASH: 0}).confirmed_thresholds == {PDQ: 100}
    trail = lists.audit_trail("l")
    assert "confirmed thresholds phash=0" in trail[0].detail
    lists.close()
    reopened = HashLists(SQLiteStore(path))
    assert reopened.get_list("l").confirmed_thresholds == {PDQ: 100}
    reopened.close()


def test_a_version_3_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    store = SQLiteStore(path)
    store.create_list("old", "", {}, True)
    store.close()
    with sqlite3.connect(path) as db:  # as the store was before migration 4
        db.execute("DROP TABLE confirmed_thresholds")
        db.execute("PRAGMA user_version=3")
    lists = HashLists(SQLiteStore(path))
    assert lists.get_list("old").confirmed_thresholds == {}
    assert lists.update_list("old", confirmed_thresholds={PDQ: 60}).confirmed_thresholds == {PDQ: 60}
    lists.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 4


# -- end to end --------------------------------------------------------------------------------------

def test_server_reports_confirmed_matches(server: Any) -> None:
    rng = random.Random(7)
    pdq, phash = random_value(rng, PDQ), random_value(rng, PHASH)
    with Client(server.address) as c:
        created = c.create_list("policy", confirmed_thresholds={"pdq": 70, "phash": 16})
        assert created.confirmed_thresholds == {PDQ: 70, PHASH: 16}
        c.create_list("plain")
        for name in ("policy", "plain"):
            c.upload_hashes(name, [HashEntry("pdq", pdq.hex(), id="e"), HashEntry("phash", phash.hex(), id="e")])
        found = c.match_hashes([("pdq", flip(rng, pdq, 45).hex()), ("phash", flip(rng, phash, 13).hex())])
        assert {(m.list_name, m.algorithm, m.confirmed_by, m.threshold) for m in found} == {
            ("policy", PDQ, PHASH, 31), ("policy", PHASH, PDQ, 10)}
        with pytest.raises(InvalidArgument, match="above its threshold"):
            c.update_list("policy", confirmed_thresholds={"pdq": 20})
        updated = c.update_list("policy", confirmed_thresholds={"phash": 0})
        assert updated.confirmed_thresholds == {PDQ: 70} and c.get_list("policy").confirmed_thresholds == {PDQ: 70}
        assert c.match_hashes([("pdq", flip(rng, pdq, 45).hex()), ("phash", flip(rng, phash, 13).hex())]) == ()


def test_an_added_image_is_matched_through_confirmation(server: Any) -> None:
    """An entry added from its image holds PDQ and pHash: a crop beyond PDQ's threshold matches
    when pHash agrees within its confirmed threshold, and says so."""
    picture = photo(31, (640, 480))
    crop = picture.crop((40, 30, 600, 450)).resize((640, 480))
    upload = encode(crop, "JPEG", quality=85)
    listed = hash_image(encode(picture, "PNG"), [PDQ, PHASH]).results
    edited = hash_image(upload, [PDQ, PHASH]).results
    pdq_distance = listed[0].hash.distance(edited[0].hash)
    phash_distance = listed[1].hash.distance(edited[1].hash)
    assert pdq_distance > 31 and phash_distance > 10, (pdq_distance, phash_distance)  # missed today
    with Client(server.address) as c:
        c.create_list("policy", confirmed_thresholds={"pdq": pdq_distance + 4, "phash": phash_distance + 2})
        c.create_list("plain")
        for name in ("policy", "plain"):
            entry = c.add_images(name, [encode(picture, "PNG")]).images[0].entry_id
        found = c.match_image(upload)
    whole = [m for m in found.matches if m.region == "whole" and m.orientation is Orientation.ORIGINAL]
    assert {m.list_name for m in found.matches} == {"policy"}
    assert {(m.algorithm, m.confirmed_by) for m in whole} >= {(PDQ, PHASH), (PHASH, PDQ)}
    assert all(m.confirmed_by is not None for m in found.matches)


def test_cli_sets_and_shows_the_policy(server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--server", server.address, "lists"]
    assert cli_main([*base, "create", "l", "--confirm", "pdq=80", "--confirm", "phash=15"]) == 0
    out = capsys.readouterr().out
    assert "confirmed" in out and "pdq 80, phash 15" in out
    assert cli_main([*base, "update", "l", "--confirm", "phash=0"]) == 0
    assert "pdq 80 (when" in capsys.readouterr().out
    assert cli_main([*base, "update", "l", "--confirm", "md5=2"]) == 1
    assert "exact digest" in capsys.readouterr().err


def test_eval_policies_through_the_index_agree_with_the_distance_rules(shared_dir: Path) -> None:
    """`hashmatch eval --confirmation` runs the policies through HashLists.match; evaluate.confirm
    reasons over computed distances. On the same uploads both must give the same recall and false
    matches for every policy: the implementation is the rule."""
    from hashmatch.evaluate import confirm, distances, tails
    from hashmatch.evaluate.policies import default_policies, measure
    from hashmatch.evaluate.runner import Options, run

    result = run(Options(shared_dir / "photos", quick=True, limit=8, workers=1, measure_cost=False, progress=False,
                         edits=("original", "crop_5_centre", "crop_10_offcentre", "caption_meme")))
    found = distances.compute(result.listed, result.uploads)
    fit = tails.joint_fit(found)
    planes = confirm.Planes(found, True, [e.name for e in result.edits], fit)
    outcomes = measure(result, default_policies(), fit)
    assert len(outcomes) > 20
    for outcome in outcomes:
        expected = planes.outcome(outcome.policy.name, outcome.policy.rule())
        assert outcome.recall == pytest.approx(expected.recall), outcome.policy.name
        assert (outcome.false_uploads, outcome.false_pairs) == (expected.false_uploads, expected.false_pairs)
    today = outcomes[0]
    literal = [o for o in outcomes if o.policy.kind == "literal"]
    assert all(o.recall == today.recall and o.false_uploads == today.false_uploads for o in literal)


def test_cli_match_shows_the_confirmation(server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    picture = photo(31, (640, 480))
    upload = tmp_path / "crop.jpg"
    upload.write_bytes(encode(picture.crop((40, 30, 600, 450)).resize((640, 480)), "JPEG", quality=85))
    with Client(server.address) as c:
        c.create_list("policy", confirmed_thresholds={"pdq": 96, "phash": 24})
        c.add_images("policy", [encode(picture, "PNG")])
    assert cli_main(["--server", server.address, "match", str(upload)]) == 0
    out = capsys.readouterr().out
    assert "31 (confirmed by phash)" in out and "10 (confirmed by pdq)" in out
