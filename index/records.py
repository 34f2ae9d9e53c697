"""The value objects the index takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hashmatch.hashing.algorithms import Algorithm
from hashmatch.hashing.orientation import Orientation


@dataclass(frozen=True)
class ListInfo:
    list_id: int
    name: str
    description: str
    thresholds: dict[Algorithm, int]
    enabled: bool
    created: datetime
    updated: datetime
    counts: dict[Algorithm, int] = field(default_factory=dict)
    # Whether orientation variants of a query (rotations, mirror images) may match this list.
    match_orientations: bool = True
    # The confirmation policy: per algorithm, a looser threshold that a hit may reach only when
    # another algorithm's hash of the same entry also hits the same query variant. Empty: off.
    confirmed_thresholds: dict[Algorithm, int] = field(default_factory=dict)

    @property
    def entry_count(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class NewEntry:
    """One hash to load. An empty ``entry_id`` lets the store assign one (or keep the listed one);
    a ``label`` or ``source`` of None leaves a listed entry's as it is ("" for a new one)."""

    algorithm: Algorithm
    value: bytes
    label: str | None = None
    entry_id: str = ""
    source: str | None = None
    line: int = 0


@dataclass(frozen=True)
class UploadOutcome:
    received: int
    added: int
    unchanged: int


@dataclass(frozen=True)
class Hit:
    """A listed entry within the list's threshold of a query hash. Carries no listed hash value."""

    list_name: str
    entry_id: str
    label: str
    algorithm: Algorithm
    distance: int
    threshold: int
    query_index: int
    orientation: Orientation = Orientation.ORIGINAL
    # Which region of the upload matched: "whole", or a region variant ("trimmed", "embedded").
    region: str = "whole"
    # Set when the distance is beyond the list's threshold but within its confirmed threshold:
    # the algorithm whose hit of the same entry and query variant confirmed this one.
    confirmed_by: Algorithm | None = None


@dataclass(frozen=True)
class Matches:
    """The hits of one query batch and the generation of the lists they were answered from."""

    hits: list[Hit]
    generation: int
