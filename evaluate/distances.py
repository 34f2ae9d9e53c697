"""Hamming distances between every upload (each variant) and every listed original, computed
from the hashes directly, so that every threshold can be swept without asking the index again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashmatch.hashing import PERCEPTUAL, Algorithm

from .uploads import VARIANTS, Upload

#: Distance of a variant an upload does not have (no region found): above every threshold.
ABSENT = 10_000

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)


def hamming(queries: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """(q, nbytes) x (e, nbytes) uint8 -> (q, e) int32 bit distances."""
    if not len(queries) or not len(entries):
        return np.zeros((len(queries), len(entries)), dtype=np.int32)
    out = np.empty((len(queries), len(entries)), dtype=np.int32)
    for start in range(0, len(queries), 512):  # bounded memory: 512 x e x nbytes bytes at a time
        xor = queries[start : start + 512, None, :] ^ entries[None, :, :]
        out[start : start + 512] = _POPCOUNT[xor].sum(axis=2)
    return out


@dataclass
class Distances:
    """``of[algorithm][variant]``: (uploads, listed) distances, ABSENT where the variant is not."""

    listed: list[str]  # entry ids (image names), the columns
    uploads: list[Upload]  # the rows (only uploads that hashed)
    of: dict[Algorithm, dict[str, np.ndarray]]

    def best(self, algorithm: Algorithm, variants: bool) -> np.ndarray:
        """The upload's distance to each entry: of the image as uploaded, or of its closest variant."""
        by_variant = self.of[algorithm]
        if not variants:
            return by_variant["image"]
        return np.minimum.reduce([by_variant[v] for v in VARIANTS])

    def stacked(self, algorithm: Algorithm, variants: bool) -> np.ndarray:
        """(variants, uploads, listed): the per-variant distances (just the image's when not ``variants``)."""
        names = VARIANTS if variants else ("image",)
        return np.stack([self.of[algorithm][v] for v in names])

    def rows(self, role: str, edit: str | None = None) -> np.ndarray:
        return np.array(
            [i for i, u in enumerate(self.uploads) if u.job.role == role and (edit is None or u.job.edit == edit)],
            dtype=np.int64,
        )

    def self_columns(self, rows: np.ndarray) -> np.ndarray:
        """For uploads of listed images: the column of their own original."""
        column = {name: i for i, name in enumerate(self.listed)}
        return np.array([column[Path(self.uploads[r].job.path).name] for r in rows], dtype=np.int64)


def compute(listed: dict[str, dict[Algorithm, bytes]], uploads: list[Upload]) -> Distances:
    """Distances of every upload that hashed (errors are left out) to every listed original."""
    names = sorted(listed)
    good = [u for u in uploads if u.error is None and "image" in u.hashes]
    of: dict[Algorithm, dict[str, np.ndarray]] = {}
    for algorithm in PERCEPTUAL:
        nbytes = algorithm.spec.nbytes
        entries = np.array([np.frombuffer(listed[n][algorithm], np.uint8) for n in names]).reshape(len(names), nbytes)
        of[algorithm] = {}
        for variant in VARIANTS:
            present = [i for i, u in enumerate(good) if variant in u.hashes]
            matrix = np.full((len(good), len(names)), ABSENT, dtype=np.int32)
            if present:
                queries = np.array(
                    [np.frombuffer(good[i].hashes[variant][algorithm], np.uint8) for i in present]
                ).reshape(len(present), nbytes)
                matrix[present] = hamming(queries, entries)
            of[algorithm][variant] = matrix
    return Distances(names, good, of)
