"""The change feed: one row per committed list write, so other processes apply writes as deltas.

Every write that bumps the store's ``generation`` records, in the same transaction, a row keyed
by that new generation (generations grow by exactly one per write, so the feed has no gaps):
which entry rows it added or relabelled (as ranges of row ids: a write inserts its rows with
consecutive ids, and the follower reads them as they are now), which rows it removed, and that
list settings may have changed. A follower at generation g reads rows g+1.. in one consistent
read and turns them into one ``Change``; if rows it needs were pruned, it rebuilds instead.

No payload holds a hash value or a label: the rows are read from the entries table itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from hashmatch.hashing.algorithms import Algorithm

# How long the feed keeps a change: a follower further behind than this rebuilds its index.
RETENTION_SECONDS = 3600.0
# Pruning runs on every this many generations, so most writes pay nothing for it.
PRUNE_EVERY = 64


def ranges(row_ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as inclusive [low, high] runs: a 1M-row upload is one pair, not 1M ids."""
    out: list[list[int]] = []
    for row_id in sorted(set(row_ids)):
        if out and out[-1][1] == row_id - 1:
            out[-1][1] = row_id
        else:
            out.append([row_id, row_id])
    return out


def encode(added: Iterable[int] = (), relabelled: Iterable[int] = (),
           removed: Iterable[tuple[Algorithm, int]] = ()) -> str:
    by_algorithm: dict[str, list[int]] = {}
    for algorithm, row_id in removed:
        by_algorithm.setdefault(algorithm.value, []).append(row_id)
    return json.dumps({
        "added": ranges(added),
        "relabelled": ranges(relabelled),
        "removed": {a: sorted(ids) for a, ids in by_algorithm.items()},
    }, separators=(",", ":"))


@dataclass(frozen=True)
class FeedRecord:
    """One committed write as the feed holds it."""

    generation: int
    added: tuple[tuple[int, int], ...] = ()
    relabelled: tuple[tuple[int, int], ...] = ()
    removed: tuple[tuple[Algorithm, int], ...] = ()

    @classmethod
    def decode(cls, generation: int, payload: str) -> "FeedRecord":
        data = json.loads(payload or "{}")
        return cls(
            generation,
            tuple((lo, hi) for lo, hi in data.get("added", ())),
            tuple((lo, hi) for lo, hi in data.get("relabelled", ())),
            tuple((Algorithm(a), row_id) for a, ids in data.get("removed", {}).items() for row_id in ids),
        )


@dataclass(frozen=True)
class FeedBatch:
    """What a follower at ``since`` must apply to reach ``generation``, as one delta.

    ``complete`` is False when the feed no longer holds every change after ``since`` (pruned,
    or the store predates the feed): the follower must rebuild from the store instead.
    ``added`` and ``relabelled`` are entry rows (StoredEntry) as they are in this state; a row
    added and removed within the batch is in neither."""

    since: int
    generation: int
    entries_generation: int
    complete: bool = True
    records: int = 0
    added: tuple = ()
    relabelled: tuple = ()
    removed: tuple[tuple[Algorithm, int], ...] = ()

    @property
    def empty(self) -> bool:
        return self.generation == self.since


def collect(records: Sequence[FeedRecord], skip: int, read_range: Callable[[int, int], Iterable]) -> tuple[tuple, tuple, tuple]:
    """(added rows, relabelled rows, removed (algorithm, row id)) of ``records``, the rows read by
    ``read_range(low, high)`` in the batch's state. The record of generation ``skip`` (the
    caller's own write, which it applies from memory) is left out."""
    added: dict[int, object] = {}
    relabelled: dict[int, object] = {}
    removed: list[tuple[Algorithm, int]] = []
    for record in records:
        if record.generation == skip:
            continue
        removed.extend(record.removed)
        for target, spans in ((added, record.added), (relabelled, record.relabelled)):
            for low, high in spans:
                for row in read_range(low, high):
                    target[row.row_id] = row
    # A row both relabelled and added in one batch is new to the follower: added, once.
    return tuple(added.values()), tuple(r for k, r in relabelled.items() if k not in added), tuple(removed)
