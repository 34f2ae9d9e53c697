"""Typed results and inputs of the SDK: frozen dataclasses, never raw protobuf.

Algorithms are :class:`hashmatch.hashing.algorithms.Algorithm` members; inputs that take an
algorithm also accept its name (``"pdq"``, ``"PDQ"``, ``"ALGORITHM_PDQ"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.hashing.orientation import Orientation

if TYPE_CHECKING:
    from hashmatch.client.errors import HashmatchError


def to_algorithm(value: Algorithm | str) -> Algorithm:
    """An Algorithm from a member or any name Algorithm.parse accepts; ValueError otherwise."""
    if isinstance(value, Algorithm):
        return value
    if isinstance(value, str):
        return Algorithm.parse(value)
    raise TypeError(f"expected an Algorithm or its name, got {type(value).__name__}")


@dataclass(frozen=True)
class HashValue:
    """One hash as the server reports it: the algorithm, lowercase hex, and PDQ's quality.

    ``orientation``: the rotation or mirror image of the picture this hash is of (ORIGINAL: the
    picture as uploaded; the others come with ``include_orientations=True``). Passing such a hash
    to ``match_hashes`` passes its orientation too, so a match says which orientation matched.
    """

    algorithm: Algorithm
    value: str
    quality: int | None = None
    orientation: Orientation = Orientation.ORIGINAL

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", to_algorithm(self.algorithm))

    def to_hash(self) -> Hash:
        """The value as a :class:`Hash` (raw bytes); raises HashFormatError on bad hex."""
        return Hash.from_hex(self.algorithm, self.value)

    def __str__(self) -> str:
        return f"{self.algorithm.value}:{self.value}"


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    frame_count: int


@dataclass(frozen=True)
class Match:
    """A listed entry one of the query's hashes fell within the list's threshold of."""

    list_name: str
    entry_id: str
    label: str
    algorithm: Algorithm
    distance: int
    threshold: int
    # Index into the query's hashes (MatchImageResult.hashes, or match_hashes' argument).
    query_index: int
    # Which orientation of the query matched: ORIGINAL, or e.g. FLIP_HORIZONTAL when the
    # uploaded picture mirrored left to right is what the list holds.
    orientation: Orientation = Orientation.ORIGINAL
    # Which region of the upload matched: "whole", "trimmed" (uniform borders removed) or
    # "embedded" (the picture inside a screenshot).
    region: str = "whole"
    # Set when the list's confirmation policy accepted this match (distance beyond ``threshold``,
    # within the confirmed threshold): the algorithm whose hash of the same entry agreed.
    confirmed_by: Algorithm | None = None


@dataclass(frozen=True)
class HashImageResult:
    # One per algorithm asked for, in that order; then, with include_orientations, the PDQ and
    # pHash hashes of the 7 other orientations (each with its ``orientation``).
    hashes: tuple[HashValue, ...]
    image: ImageInfo

    def get(
        self, algorithm: Algorithm | str, orientation: Orientation = Orientation.ORIGINAL
    ) -> HashValue | None:
        """The hash computed with ``algorithm`` (of the picture in ``orientation``), if asked for."""
        wanted = to_algorithm(algorithm)
        return next((h for h in self.hashes if h.algorithm is wanted and h.orientation is orientation), None)


@dataclass(frozen=True)
class MatchImageResult:
    hashes: tuple[HashValue, ...]
    matches: tuple[Match, ...]
    image: ImageInfo

    @property
    def matched(self) -> bool:
        return bool(self.matches)

    def get(self, algorithm: Algorithm | str) -> HashValue | None:
        wanted = to_algorithm(algorithm)
        return next((h for h in self.hashes if h.algorithm is wanted), None)


@dataclass(frozen=True)
class HashList:
    name: str
    description: str
    # Every algorithm's threshold, defaults included, as the server applies them.
    thresholds: dict[Algorithm, int]
    enabled: bool
    # Entries per algorithm; algorithms without entries may be absent.
    entry_counts: dict[Algorithm, int]
    entry_count: int
    created: datetime
    updated: datetime
    # Whether rotated and mirrored copies of a listed picture match (PDQ, pHash).
    match_orientations: bool = True
    # The confirmation policy (empty: off): per algorithm, a looser threshold a hit may reach when
    # another algorithm's hash of the same entry also hits the same query.
    confirmed_thresholds: dict[Algorithm, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HashEntry:
    """One entry to upload. ``line`` is the 1-based line of the file it came from (0: none).
    A ``label`` or ``source`` of None leaves an already listed entry's as it is."""

    algorithm: Algorithm
    hash: str
    label: str | None = None
    id: str = ""
    source: str | None = None
    line: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", to_algorithm(self.algorithm))


@dataclass(frozen=True)
class UploadResult:
    received: int
    added: int
    unchanged: int
    list: HashList


@dataclass(frozen=True)
class ImageEntry:
    """One image for add_images: the image (bytes, a path or a binary file, read when it is sent)
    and its entry's optional fields. ``name`` is what errors call it (default: a path's text)."""

    image: Any
    name: str = ""
    label: str | None = None
    id: str = ""
    source: str | None = None


@dataclass(frozen=True)
class AddedImage:
    name: str
    entry_id: str
    # Hashes newly listed for the image: 0 when it was listed already.
    hashes_added: int
    # Entries that already held some of its hashes (e.g. a re-encoded copy of a listed image).
    other_entry_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class AddImagesResult:
    images: tuple[AddedImage, ...]
    added: int
    list: HashList


@dataclass(frozen=True)
class StreamResult:
    """One answer from match_image_stream: exactly one of ``result`` and ``error`` is set."""

    request_id: str
    result: MatchImageResult | None = None
    error: HashmatchError | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class AbuseLimits:
    """The answering server process's abuse limits (each worker counts its own). For the rates
    and ``max_concurrent_per_key``, 0 means no limit."""

    match_requests_per_second: float
    match_request_burst: float
    match_bytes_per_second: float
    match_bytes_burst: float
    max_concurrent_per_key: int
    max_concurrent_rpcs: int
    max_upload_entries: int
    max_lists: int
    max_query_hashes: int


@dataclass(frozen=True)
class ServerSettings:
    """What ``get_settings`` reports (admin role): the effective start-up settings of the server
    process that answered. Never a secret: the store is named by its kind, not its URL."""

    version: str
    store: str  # "sqlite" or "postgresql"
    auth: bool
    tls: bool
    client_certificate_required: bool
    # Client-certificate identities mapped to roles (how many; not their names).
    client_certificate_roles: int
    reflection: bool
    workers: int
    # Images the process hashes at once: the effective value (an automatic 0 resolved).
    hashing_slots: int
    threads: int
    max_message_bytes: int
    max_pixels: int
    fast: bool
    match_regions: bool
    # The match log: request log lines name each upload's hashes.
    log_hashes: bool
    selftest: bool
    selftest_interval_seconds: float
    grace_seconds: float
    follow_interval_seconds: float
    # None: the server keeps serving its last index however old.
    max_staleness_seconds: float | None
    metrics: bool
    health_port: bool
    limits: AbuseLimits
    # The threshold a new list gets for each algorithm it does not set.
    default_thresholds: dict[Algorithm, int]
