"""Estimated false-match rates below what the sample can show.

A folder of a few dozen pictures gives some 50,000 unrelated pairs: a pair rate of 0 observed
means "below about 6e-5", while a list of a million entries needs rates near 1e-9 for one false
match per thousand uploads. So the distances of unrelated pairs are also summarised by a normal
fit per algorithm (a bivariate one for PDQ with pHash, whose distances are correlated: similar
compositions are close under both), and rates are read from its tail. This is an
extrapolation: real distance distributions have heavier lower tails than a normal (near
duplicates, shared layouts), so the estimates are optimistic and serve to compare rules, not to
promise a rate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.special import ndtr

from hashmatch.hashing import PERCEPTUAL, Algorithm

from .distances import Distances


@dataclass(frozen=True)
class Fit:
    algorithm: Algorithm
    mean: float
    sd: float
    minimum: int  # the smallest unrelated distance seen
    pairs: int

    def rate(self, threshold: float) -> float:
        """Estimated share of unrelated pairs within ``threshold`` (continuity-corrected)."""
        if threshold >= 10**8:
            return 1.0
        return float(ndtr((threshold + 0.5 - self.mean) / self.sd))

    def threshold_for(self, rate: float) -> int:
        """The largest threshold whose estimated pair rate is at most ``rate``."""
        t = -1
        while self.rate(t + 1) <= rate and t < self.algorithm.spec.bits:
            t += 1
        return t


@dataclass(frozen=True)
class JointFit:
    """PDQ and pHash distances of the same unrelated pairs as a bivariate normal."""

    pdq: Fit
    phash: Fit
    correlation: float

    def both(self, limit_pdq: float, limit_phash: float) -> float:
        """Estimated P(PDQ <= limit_pdq and pHash <= limit_phash) for an unrelated pair."""
        if limit_pdq >= 10**8:
            return self.phash.rate(limit_phash)
        if limit_phash >= 10**8:
            return self.pdq.rate(limit_pdq)
        a = (limit_pdq + 0.5 - self.pdq.mean) / self.pdq.sd
        b = (limit_phash + 0.5 - self.phash.mean) / self.phash.sd
        return _bivariate_below(a, b, min(max(self.correlation, -0.999), 0.999))

    def union(self, rule: tuple[tuple[int, int], ...]) -> float:
        """Estimated rate of a union of (PDQ, pHash) limits, by inclusion-exclusion: the
        intersection of two such regions is the region of the smaller limits."""
        total = 0.0
        for size in range(1, len(rule) + 1):
            for subset in combinations(rule, size):
                p = min(r[0] for r in subset)
                h = min(r[1] for r in subset)
                total += (-1) ** (size + 1) * self.both(p, h)
        return max(0.0, total)


@functools.lru_cache(maxsize=4096)
def _bivariate_below(a: float, b: float, rho: float) -> float:
    """P(X <= a, Y <= b) for standard normals of correlation ``rho``: the integral over x <= a
    of phi(x) * Phi((b - rho x) / sqrt(1 - rho^2)). Cached: rule sweeps ask for the same corners."""
    x = np.linspace(a - 12.0, a, 2401)
    density = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    values = density * ndtr((b - rho * x) / np.sqrt(1 - rho * rho))
    return float(np.trapezoid(values, x))


def fit(distances: Distances, algorithm: Algorithm) -> Fit:
    """Normal fit to the distances of unrelated uploads (as uploaded) to every entry."""
    rows = distances.rows("unrelated")
    values = distances.of[algorithm]["image"][rows].ravel().astype(np.float64)
    return Fit(algorithm, float(values.mean()), float(values.std()), int(values.min()), int(values.size))


def fits(distances: Distances) -> dict[Algorithm, Fit]:
    return {a: fit(distances, a) for a in PERCEPTUAL}


def joint_fit(distances: Distances) -> JointFit:
    rows = distances.rows("unrelated")
    pdq = distances.of[Algorithm.PDQ]["image"][rows].ravel().astype(np.float64)
    phash = distances.of[Algorithm.PHASH]["image"][rows].ravel().astype(np.float64)
    correlation = float(np.corrcoef(pdq, phash)[0, 1]) if pdq.size > 2 else 0.0
    return JointFit(fit(distances, Algorithm.PDQ), fit(distances, Algorithm.PHASH), correlation)
