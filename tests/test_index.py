"""The index against a brute-force scan, and the store's all-or-nothing, idempotent writes."""

from __future__ import annotations

import random

import pytest

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.index import HashLists, InvalidEntry, InvalidListSpec, ListExists, ListNotFound, NewEntry

PDQ, PHASH, MD5 = Algorithm.PDQ, Algorithm.PHASH, Algorithm.MD5


def random_value(rng: random.Random, algorithm: Algorithm) -> bytes:
    return rng.getrandbits(algorithm.spec.bits).to_bytes(algorithm.spec.nbytes, "big")


def flip(rng: random.Random, value: bytes, bits: int) -> bytes:
    """The value with exactly ``bits`` distinct bits flipped."""
    n = len(value) * 8
    mask = 0
    for b in rng.sample(range(n), bits):
        mask |= 1 << b
    return (int.from_bytes(value, "big") ^ mask).to_bytes(len(value), "big")


def brute_force(lists: HashLists, queries: list[Hash], names: set[str] | None = None) -> set[tuple]:
    infos = {i.list_id: i for i in lists.list_lists()}
    expected = set()
    for entry in lists.store.iter_entries():
        info = infos[entry.list_id]
        if not info.enabled or (names and info.name not in names):
            continue
        threshold = info.thresholds[entry.algorithm]
        for q, query in enumerate(queries):
            if query.algorithm is not entry.algorithm:
                continue
            distance = query.distance(Hash(entry.algorithm, entry.value))
            if distance <= threshold:
                expected.add((info.name, entry.entry_id, entry.label, entry.algorithm, distance, threshold, q))
    return expected


def as_set(hits) -> set[tuple]:
    return {(h.list_name, h.entry_id, h.label, h.algorithm, h.distance, h.threshold, h.query_index) for h in hits}


class Lists(HashLists):
    def match_hits(self, *args, **kwargs):
        return self.match(*args, **kwargs).hits


@pytest.fixture
def lists(make_store) -> HashLists:
    # Every test of this file runs on each kind of store (conftest.py: make_store).
    hash_lists = Lists(make_store())
    yield hash_lists
    hash_lists.close()


@pytest.mark.parametrize("seed", range(6))
def test_matches_equal_brute_force_on_random_and_clustered_lists(lists: HashLists, seed: int) -> None:
    rng = random.Random(seed)
    listed: list[tuple[Algorithm, bytes]] = []
    for li in range(3):
        name = f"list-{li}"
        thresholds = {PDQ: rng.randint(0, 64), PHASH: rng.randint(0, 16)}
        lists.create_list(name, thresholds=thresholds, enabled=li != 2 or seed % 2 == 0)
        entries = []
        for algorithm in (PDQ, PHASH):
            for _ in range(rng.randint(1, 40)):
                base = random_value(rng, algorithm)
                # Clustered: families of near-duplicates, as real hash lists have.
                family = [base] + [flip(rng, base, rng.randint(1, 12)) for _ in range(rng.randint(0, 4))]
                entries += [NewEntry(algorithm, v, label=f"cat{rng.randint(0, 3)}") for v in family]
                listed += [(algorithm, v) for v in family]
        lists.add_entries(name, entries)
    # The same hash in two lists: both must match.
    shared = listed[0]
    lists.add_entries("list-1", [NewEntry(shared[0], shared[1], label="dup")])
    # A list of one hash.
    lone = (PDQ, random_value(rng, PDQ))
    lists.create_list("solo", thresholds={PDQ: rng.randint(0, 64)})
    lists.add_entries("solo", [NewEntry(*lone, label="solo")])

    queries: list[Hash] = []
    for algorithm, value in [shared, lone, *rng.sample(listed, 25)]:
        top = 66 if algorithm is PDQ else 18
        for d in range(0, top):
            queries.append(Hash(algorithm, flip(rng, value, d)))
    queries += [Hash(PDQ, random_value(rng, PDQ)) for _ in range(20)]

    expected = brute_force(lists, queries)
    assert expected, "the test must produce matches to compare"
    assert as_set(lists.match_hits(queries)) == expected
    # Query 0 is the duplicated hash itself: found in both lists; the lone hash is found too.
    assert {"list-0", "list-1"} <= {e[0] for e in expected if e[6] == 0}
    assert any(e[0] == "solo" for e in expected)
    # Restricting to one list equals the brute force over that list only.
    assert as_set(lists.match_hits(queries, ["list-1"])) == brute_force(lists, queries, {"list-1"})


def test_threshold_is_inclusive_and_list_of_one_hash(lists: HashLists) -> None:
    rng = random.Random(7)
    value = random_value(rng, PDQ)
    lists.create_list("one", thresholds={PDQ: 10})
    lists.add_entries("one", [NewEntry(PDQ, value, label="x", entry_id="only")])
    at = Hash(PDQ, flip(rng, value, 10))
    beyond = Hash(PDQ, flip(rng, value, 11))
    hits = lists.match_hits([at, beyond])
    assert [(h.entry_id, h.distance, h.threshold, h.query_index) for h in hits] == [("only", 10, 10, 0)]
    # Thresholds change at run time.
    lists.update_list("one", thresholds={PDQ: 11})
    assert len(lists.match_hits([beyond])) == 1
    lists.update_list("one", thresholds={PDQ: 0})
    assert lists.match_hits([at]) == []
    assert len(lists.match_hits([Hash(PDQ, value)])) == 1


def test_disabled_lists_do_not_match_and_unknown_names_are_refused(lists: HashLists) -> None:
    value = bytes(range(32))
    lists.create_list("a")
    lists.add_entries("a", [NewEntry(PDQ, value)])
    lists.update_list("a", enabled=False)
    assert lists.match_hits([Hash(PDQ, value)]) == []
    lists.update_list("a", enabled=True)
    assert len(lists.match_hits([Hash(PDQ, value)])) == 1
    with pytest.raises(ListNotFound, match="nope"):
        lists.match_hits([Hash(PDQ, value)], ["nope"])


def test_digests_match_exactly(lists: HashLists) -> None:
    digest = bytes.fromhex("0123456789abcdef0123456789abcdef")
    lists.create_list("d")
    lists.create_list("e")
    lists.add_entries("d", [NewEntry(MD5, digest, entry_id="m1")])
    lists.add_entries("e", [NewEntry(MD5, digest, entry_id="m2")])
    hits = lists.match_hits([Hash(MD5, digest), Hash(MD5, bytes(16))])
    assert sorted((h.list_name, h.entry_id, h.distance, h.query_index) for h in hits) == [
        ("d", "m1", 0, 0),
        ("e", "m2", 0, 0),
    ]
    with pytest.raises(InvalidListSpec, match="exact digest"):
        lists.update_list("d", thresholds={MD5: 1})


def test_upload_is_all_or_nothing_and_names_the_first_bad_line(lists: HashLists) -> None:
    lists.create_list("l")
    lists.add_entries("l", [NewEntry(PDQ, bytes(32), entry_id="taken")])
    bad = [
        NewEntry(PDQ, bytes([1]) * 32, line=2),
        NewEntry(PDQ, bytes([2]) * 32, entry_id="taken", line=3),  # id already has another PDQ hash
        NewEntry(PDQ, bytes([3]) * 32, entry_id="x" * 300, line=4),
    ]
    with pytest.raises(InvalidEntry) as err:
        lists.add_entries("l", bad)
    assert err.value.line == 3  # the first bad line, though line 4's problem is found earlier
    with pytest.raises(InvalidEntry, match="line 1: unparseable"):
        lists.add_entries("l", bad, rejected=[InvalidEntry(9, "late"), InvalidEntry(1, "unparseable")])
    assert lists.get_list("l").counts[PDQ] == 1
    with pytest.raises(InvalidEntry, match="line 3: entry 'taken' already has a different PDQ hash"):
        lists.add_entries("l", bad[:2])
    assert lists.get_list("l").counts[PDQ] == 1
    assert lists.match_hits([Hash(PDQ, bytes([1]) * 32)]) == []


def test_reloading_is_idempotent_and_keeps_ids(lists: HashLists) -> None:
    rng = random.Random(3)
    entries = [NewEntry(PHASH, random_value(rng, PHASH), label="a") for _ in range(50)]
    lists.create_list("l")
    first, info = lists.add_entries("l", entries)
    assert (first.received, first.added, first.unchanged) == (50, 50, 0)
    ids = {h.entry_id for h in lists.match_hits([Hash(PHASH, e.value) for e in entries], ["l"]) if h.distance == 0}
    again, info = lists.add_entries("l", entries)
    assert (again.received, again.added, again.unchanged) == (50, 0, 50)
    assert info.counts[PHASH] == 50
    ids_again = {h.entry_id for h in lists.match_hits([Hash(PHASH, e.value) for e in entries], ["l"]) if h.distance == 0}
    assert ids == ids_again and len(ids) == 50
    # A new label on a listed hash is applied without a new entry.
    lists.add_entries("l", [NewEntry(PHASH, entries[0].value, label="b")])
    hit = [h for h in lists.match_hits([Hash(PHASH, entries[0].value)]) if h.distance == 0][0]
    assert hit.label == "b"


def test_removal_and_deletion_apply_to_search(lists: HashLists) -> None:
    a, b = bytes([5]) * 32, bytes([6]) * 32
    lists.create_list("l")
    lists.add_entries("l", [NewEntry(PDQ, a, entry_id="a"), NewEntry(PDQ, b, entry_id="b")])
    assert lists.remove_entries("l", entry_ids=["a"]) == 1
    assert lists.match_hits([Hash(PDQ, a)], ["l"]) == [] or all(h.entry_id == "b" for h in lists.match_hits([Hash(PDQ, a)]))
    assert lists.remove_entries("l", hashes=[Hash(PDQ, b)]) == 1
    assert lists.match_hits([Hash(PDQ, a), Hash(PDQ, b)]) == []
    lists.add_entries("l", [NewEntry(PDQ, a)])
    assert lists.delete_list("l") == 1
    assert lists.match_hits([Hash(PDQ, a)]) == []
    with pytest.raises(ListNotFound):
        lists.get_list("l")


def test_list_rules(lists: HashLists) -> None:
    lists.create_list("ok.name_1-2")
    with pytest.raises(ListExists):
        lists.create_list("ok.name_1-2")
    for bad in ("", "-start", "has space", "x" * 129):
        with pytest.raises(InvalidListSpec):
            lists.create_list(bad)
    with pytest.raises(InvalidListSpec, match="PDQ threshold must be between 0 and 256"):
        lists.create_list("t", thresholds={PDQ: 300})


def test_state_survives_a_restart(make_store) -> None:
    rng = random.Random(11)
    first = Lists(make_store())
    first.create_list("l", thresholds={PDQ: 20})
    values = [random_value(rng, PDQ) for _ in range(30)]
    first.add_entries("l", [NewEntry(PDQ, v, label=str(i)) for i, v in enumerate(values)])
    queries = [Hash(PDQ, flip(rng, v, 15)) for v in values]
    before = as_set(first.match_hits(queries))
    first.close()
    second = Lists(make_store())
    assert as_set(second.match_hits(queries)) == before == brute_force(second, queries)
    assert len(before) == 30
    second.close()


def test_orientation_variants_match_only_lists_that_allow_them(lists: HashLists) -> None:
    from hashmatch.hashing.orientation import Orientation

    value = bytes(range(32))
    lists.create_list("on")
    lists.create_list("off", match_orientations=False)
    lists.add_entries("on", [NewEntry(PDQ, value, entry_id="a")])
    lists.add_entries("off", [NewEntry(PDQ, value, entry_id="b")])
    upright, variant = Hash(PDQ, bytes(32)), Hash(PDQ, value)
    found = lists.match([upright, variant], orientations=[Orientation.ORIGINAL, Orientation.ROTATE_90],
                        query_indexes=[0, 0])
    assert [(h.list_name, h.entry_id, h.query_index, h.orientation) for h in found.hits] == [
        ("on", "a", 0, Orientation.ROTATE_90)
    ]
    lists.update_list("off", match_orientations=True)
    assert {h.list_name for h in lists.match([variant], orientations=[Orientation.FLIP_VERTICAL]).hits} == {"on", "off"}


def test_generation_grows_with_every_change(lists: HashLists) -> None:
    seen = [lists.generation]
    lists.create_list("g")
    seen.append(lists.match([Hash(MD5, bytes(16))]).generation)
    lists.add_entries("g", [NewEntry(MD5, bytes(16))])
    seen.append(lists.generation)
    lists.add_entries("g", [NewEntry(MD5, bytes(16))])  # no change, no new generation
    seen.append(lists.generation)
    lists.update_list("g", enabled=False)
    seen.append(lists.generation)
    assert seen == sorted(seen) and len(set(seen)) == 4 and seen[2] == seen[3]
