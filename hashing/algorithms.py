"""Every algorithm hashmatch knows, declared once: name, size, metric, hex form, threshold bounds.

The index and the server are generic over this table; adding an algorithm means adding a row
here and a hasher in ``hashing.compute``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Algorithm(enum.Enum):
    """Values are the names used in files, on the command line and in the database."""

    PDQ = "pdq"
    PHASH = "phash"
    DHASH = "dhash"
    AHASH = "ahash"
    WHASH = "whash"
    MD5 = "md5"
    SHA1 = "sha1"  # NCMEC's lists carry it beside MD5
    SHA256 = "sha256"

    @classmethod
    def parse(cls, text: str) -> "Algorithm":
        """Accepts 'pdq', 'PDQ', 'ALGORITHM_PDQ', 'sha-256', 'SHA-1'; raises ValueError naming the choices."""
        key = text.strip().lower().removeprefix("algorithm_").replace("-", "")
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(a.value for a in cls)
            raise ValueError(f"unknown algorithm {text!r} (expected one of: {names})") from None

    @property
    def spec(self) -> "AlgorithmSpec":
        return SPECS[self]


class Metric(enum.Enum):
    HAMMING = "hamming"  # perceptual: similar images have hashes a few bits apart
    EXACT = "exact"  # cryptographic digest of the file's bytes: equal or not


@dataclass(frozen=True)
class AlgorithmSpec:
    algorithm: Algorithm
    bits: int
    metric: Metric
    default_threshold: int

    @property
    def nbytes(self) -> int:
        return self.bits // 8

    @property
    def hex_length(self) -> int:
        return self.bits // 4

    @property
    def max_threshold(self) -> int:
        # A digest can only match exactly; a perceptual hash up to every bit differing.
        return self.bits if self.metric is Metric.HAMMING else 0

    @property
    def perceptual(self) -> bool:
        return self.metric is Metric.HAMMING


SPECS: dict[Algorithm, AlgorithmSpec] = {
    spec.algorithm: spec
    for spec in (
        AlgorithmSpec(Algorithm.PDQ, 256, Metric.HAMMING, 31),
        AlgorithmSpec(Algorithm.PHASH, 64, Metric.HAMMING, 10),
        AlgorithmSpec(Algorithm.DHASH, 64, Metric.HAMMING, 10),
        AlgorithmSpec(Algorithm.AHASH, 64, Metric.HAMMING, 10),
        AlgorithmSpec(Algorithm.WHASH, 64, Metric.HAMMING, 10),
        AlgorithmSpec(Algorithm.MD5, 128, Metric.EXACT, 0),
        AlgorithmSpec(Algorithm.SHA1, 160, Metric.EXACT, 0),
        AlgorithmSpec(Algorithm.SHA256, 256, Metric.EXACT, 0),
    )
}

PERCEPTUAL: tuple[Algorithm, ...] = tuple(a for a in Algorithm if a.spec.perceptual)
DIGESTS: tuple[Algorithm, ...] = tuple(a for a in Algorithm if not a.spec.perceptual)
DEFAULT_ALGORITHMS: tuple[Algorithm, ...] = (Algorithm.PDQ, Algorithm.PHASH, Algorithm.MD5, Algorithm.SHA256)

_HEX = re.compile(r"[0-9a-fA-F]*")


class HashFormatError(ValueError):
    """A hash's text is not the hex form its algorithm uses; the message says what is wrong."""


def parse_hex(algorithm: Algorithm, text: str) -> bytes:
    """Hex text -> raw bytes, big-endian, exactly as the hex reads. Raises HashFormatError."""
    value = text.strip()
    spec = algorithm.spec
    if not _HEX.fullmatch(value):
        bad = next(i for i, ch in enumerate(value) if ch not in "0123456789abcdefABCDEF")
        raise HashFormatError(
            f"{algorithm.name} hash has a non-hex character {value[bad]!r} at position {bad + 1}"
        )
    if len(value) != spec.hex_length:
        raise HashFormatError(
            f"{algorithm.name} hash must be {spec.hex_length} hex digits, got {len(value)}"
        )
    return bytes.fromhex(value)


def to_hex(raw: bytes) -> str:
    return raw.hex()


@dataclass(frozen=True)
class Hash:
    """A hash value: the algorithm and its raw bytes. ``str()`` is the industry's hex form."""

    algorithm: Algorithm
    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) != self.algorithm.spec.nbytes:
            raise HashFormatError(
                f"{self.algorithm.name} hash must be {self.algorithm.spec.nbytes} bytes, got {len(self.value)}"
            )

    @classmethod
    def from_hex(cls, algorithm: Algorithm, text: str) -> "Hash":
        return cls(algorithm, parse_hex(algorithm, text))

    @property
    def hex(self) -> str:
        return self.value.hex()

    def __str__(self) -> str:
        return self.hex

    def distance(self, other: "Hash") -> int:
        if other.algorithm is not self.algorithm:
            raise ValueError(f"cannot compare {self.algorithm.name} with {other.algorithm.name}")
        if not self.algorithm.spec.perceptual:
            return 0 if self.value == other.value else self.algorithm.spec.bits
        return (int.from_bytes(self.value, "big") ^ int.from_bytes(other.value, "big")).bit_count()
