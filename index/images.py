"""Entries from images: every algorithm's hash of one image listed under one entry id.

The server hashes an uploaded image and hands the hashes here; the image never reaches the index.
What needs deciding is the entry id each image's hashes go under, so that adding an image again
adds nothing and keeps its id, while a hash already listed (it belongs to exactly one entry of a
list: UNIQUE(list, algorithm, hash)) stays where it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

from hashmatch.hashing.algorithms import Algorithm, Hash

from .records import NewEntry


@dataclass(frozen=True)
class NewImage:
    """One image's hashes (one per algorithm) and the optional fields of its entry."""

    hashes: tuple[Hash, ...]
    label: str | None = None
    entry_id: str = ""  # empty: the listed entry it belongs to, or a new random id
    source: str | None = None
    position: int = 0  # in the call, from 1: what errors about it say (InvalidEntry.line)


@dataclass(frozen=True)
class ImageOutcome:
    entry_id: str
    hashes_added: int
    # Entries that already held some of the image's hashes, other than ``entry_id``.
    other_entry_ids: tuple[str, ...] = ()


@dataclass
class Listed:
    """What the list holds of the hashes (and entry ids) in question; updated as images are planned."""

    by_hash: dict[tuple[Algorithm, bytes], str]  # (algorithm, hash) -> entry id
    held: dict[str, dict[Algorithm, bytes]]  # entry id -> its hash per algorithm


def plan(images: Sequence[NewImage], listed: Listed, fresh_ids: Iterator[str]) -> tuple[list[NewEntry], list[ImageOutcome]]:
    """The entries to store and what each image becomes, in order.

    An image with an id gets all its hashes under that id (the store refuses a hash listed under
    another id, or an id holding another hash of the algorithm: errors name the image). One
    without: its hashes not yet listed go under the first entry (in algorithm order) that holds
    some of its hashes and no different hash of those algorithms, else under a new id; its hashes
    already listed under that entry are passed on too, so a label or source given updates them."""
    entries: list[NewEntry] = []
    outcomes: list[ImageOutcome] = []
    for image in images:
        owners = [listed.by_hash.get((h.algorithm, h.value)) for h in image.hashes]
        fresh_hashes = [h for h, owner in zip(image.hashes, owners) if owner is None]
        target = image.entry_id or _existing_owner(owners, fresh_hashes, listed.held) or next(fresh_ids)
        mine = [h for h, owner in zip(image.hashes, owners) if owner is None or owner == target]
        if image.entry_id:
            mine = list(image.hashes)  # the store checks each against the given id
        entries.extend(
            NewEntry(h.algorithm, h.value, image.label, target, image.source, image.position) for h in mine
        )
        held = listed.held.setdefault(target, {})
        added = 0
        for h in fresh_hashes:
            if held.get(h.algorithm, h.value) == h.value:
                added += 1
            held.setdefault(h.algorithm, h.value)
            listed.by_hash[(h.algorithm, h.value)] = target
        others = tuple(dict.fromkeys(o for o in owners if o is not None and o != target))
        outcomes.append(ImageOutcome(target, added, others))
    return entries, outcomes


def _existing_owner(
    owners: Sequence[str | None], fresh_hashes: Sequence[Hash], held: Mapping[str, Mapping[Algorithm, bytes]]
) -> str | None:
    for owner in dict.fromkeys(o for o in owners if o is not None):
        has = held.get(owner, {})
        if all(has.get(h.algorithm, h.value) == h.value for h in fresh_hashes):
            return owner
    return None
