"""Confirmation across algorithms: accept a looser PDQ distance when pHash agrees, and vice versa.

A rule is a union of rectangles in the (PDQ distance, pHash distance) plane: an upload matches
an entry when, for one variant of the upload (the image, or a region crop), the pair of
distances falls in one of them. Today's rule, any algorithm within its own threshold, is
``{(31, any), (any, 10)}``. The issue's wording, "accept PDQ up to T only when pHash is within
its own threshold", adds ``(T, 10)``: a rectangle inside ``(any, 10)``, so it changes nothing
for a list that already matches on pHash alone; it is measured to show that. What can change
recall is a joint rectangle ``(T_P, T_H)`` beyond both thresholds: unrelated pictures are far
apart under both hashes at once much more rarely than under one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hashmatch.hashing import Algorithm

from .distances import Distances
from .tails import JointFit

ANY = 10**9
PDQ_DEFAULT = Algorithm.PDQ.spec.default_threshold
PHASH_DEFAULT = Algorithm.PHASH.spec.default_threshold
#: What the policy is meant to recover: captions and small crops (and the watermark, a caption's cousin).
FOCUS: tuple[str, ...] = (
    "caption_meme", "caption_bar", "watermark",
    "crop_5_centre", "crop_5_offcentre", "crop_10_centre", "crop_10_offcentre",
)
PDQ_RANGE = range(PDQ_DEFAULT + 1, 97)
PHASH_RANGE = range(PHASH_DEFAULT + 1, 25)

Rule = tuple[tuple[int, int], ...]
TODAY: Rule = ((PDQ_DEFAULT, ANY), (ANY, PHASH_DEFAULT))


@dataclass(frozen=True)
class Outcome:
    name: str
    rule: Rule
    recall: dict[str, float]  # per edit
    false_uploads: int  # unrelated uploads that match an entry
    false_pictures: int  # unrelated pictures with such an upload
    false_pairs: int
    pairs: int
    estimated: float  # pair rate from the normal fit (tails.py): comparable below the sample's reach

    @property
    def pair_rate(self) -> float:
        return self.false_pairs / self.pairs if self.pairs else 0.0

    def focus_recall(self) -> float:
        values = [self.recall[e] for e in FOCUS if e in self.recall]
        return float(np.mean(values)) if values else 0.0


class Planes:
    """(variants, uploads, listed) PDQ and pHash distances, for the listed self pairs and the
    unrelated pairs."""

    def __init__(self, distances: Distances, variants: bool, edits: list[str], fit: JointFit) -> None:
        self.fit = fit
        pdq = distances.stacked(Algorithm.PDQ, variants)
        phash = distances.stacked(Algorithm.PHASH, variants)
        self.edits = [e for e in edits if len(distances.rows("listed", e))]
        self.own: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for edit in self.edits:
            rows = distances.rows("listed", edit)
            columns = distances.self_columns(rows)
            self.own[edit] = (pdq[:, rows, columns], phash[:, rows, columns])  # (variants, uploads)
        rows = distances.rows("unrelated")
        self.unrelated = (pdq[:, rows, :], phash[:, rows, :])  # (variants, uploads, listed)
        self.pictures = np.array([distances.uploads[r].job.path for r in rows])

    def outcome(self, name: str, rule: Rule) -> Outcome:
        recall = {e: float(_matches(*self.own[e], rule).mean()) for e in self.edits}
        hits = _matches(*self.unrelated, rule)  # (uploads, listed)
        uploads = hits.any(axis=1)
        return Outcome(
            name, rule, recall,
            false_uploads=int(uploads.sum()),
            false_pictures=len(set(self.pictures[uploads].tolist())),
            false_pairs=int(hits.sum()),
            pairs=int(hits.size),
            estimated=self.fit.union(rule),
        )

    def joint_sweep(self, base: Rule) -> list[Outcome]:
        """``base`` plus one joint rectangle, for every (T_P, T_H) beyond both defaults."""
        return [
            self.outcome(f"joint ({p}, {h})", base + ((p, h),))
            for p in PDQ_RANGE[::2]
            for h in PHASH_RANGE
        ]

    def single_sweep(self) -> list[Outcome]:
        """Each algorithm alone at a looser threshold: {(T_P, any), (any, T_H)}."""
        return [
            self.outcome(f"loose ({p}, {h})", ((p, ANY), (ANY, h)))
            for p in range(PDQ_DEFAULT, 97, 2)
            for h in range(PHASH_DEFAULT, 25)
        ]


def _matches(pdq: np.ndarray, phash: np.ndarray, rule: Rule) -> np.ndarray:
    """Whether any variant (axis 0) falls in any rectangle of ``rule``."""
    inside = np.zeros(pdq.shape[1:], dtype=bool)
    for limit_p, limit_h in rule:
        inside |= ((pdq <= limit_p) & (phash <= limit_h)).any(axis=0)
    return inside


def best(outcomes: list[Outcome], max_pair_rate: float, budget: float) -> Outcome | None:
    """The outcome with the highest focus recall among those with no unrelated upload matching,
    the observed pair rate within ``max_pair_rate`` and the estimated one within ``budget``;
    ties go to the tighter rule."""
    allowed = [o for o in outcomes if o.false_uploads == 0 and o.pair_rate <= max_pair_rate and o.estimated <= budget]
    if not allowed:
        return None
    return max(allowed, key=lambda o: (round(o.focus_recall(), 9), -o.estimated))


@dataclass(frozen=True)
class Frontier:
    """At one estimated false-match budget: the best loosening of each algorithm alone, and the
    best joint limit added to today's rule."""

    budget: float
    loose: Outcome | None
    joint: Outcome | None


@dataclass(frozen=True)
class Confirmation:
    variants: bool
    budget: float  # the estimated pair rate the chosen rules may reach: twice today's
    today: Outcome
    literal: Outcome  # today's rule plus the literal rectangles
    joint: Outcome | None  # today's rule plus the best joint rectangle within the budget
    joint_neighbours: list[Outcome]  # that joint rectangle a little looser: is it on a cliff edge?
    loose: Outcome | None  # the best loosening of each algorithm alone within the budget
    frontier: list[Frontier]  # the same comparison at other budgets

    @property
    def gain(self) -> float:
        """Focus recall the joint rectangle adds to today's rule."""
        return self.joint.focus_recall() - self.today.focus_recall() if self.joint else 0.0

    @property
    def stable(self) -> bool:
        """No unrelated upload matches when the chosen joint rectangle is made a little looser."""
        return all(o.false_uploads == 0 for o in self.joint_neighbours)

    @property
    def margin_over_loosening(self) -> float:
        """Focus recall the joint rule recovers beyond loosening the thresholds alone, at the same budget."""
        if self.joint is None:
            return 0.0
        reference = self.loose.focus_recall() if self.loose is not None else self.today.focus_recall()
        return self.joint.focus_recall() - reference


#: Other estimated pair-rate budgets the frontier table compares the two approaches at.
FRONTIER_BUDGETS = (1e-9, 1e-7, 1e-6, 1e-5, 1e-4)


def evaluate(distances: Distances, edits: list[str], variants: bool, max_pair_rate: float,
             fit: JointFit) -> Confirmation:
    planes = Planes(distances, variants, edits, fit)
    today = planes.outcome(f"today: PDQ <= {PDQ_DEFAULT} or pHash <= {PHASH_DEFAULT}", TODAY)
    literal_rule = TODAY + ((max(PDQ_RANGE), PHASH_DEFAULT), (PDQ_DEFAULT, max(PHASH_RANGE)))
    literal = planes.outcome(
        f"literal: also PDQ <= {max(PDQ_RANGE)} if pHash <= {PHASH_DEFAULT}, "
        f"pHash <= {max(PHASH_RANGE)} if PDQ <= {PDQ_DEFAULT}",
        literal_rule,
    )
    joints = planes.joint_sweep(TODAY)
    singles = planes.single_sweep()
    # Today's rule plus as much estimated risk again: a confirmation rule must not be bought
    # with false matches a plain loosening would not also cost.
    budget = 2 * today.estimated
    joint = best(joints, max_pair_rate, budget)
    neighbours: list[Outcome] = []
    if joint is not None:
        p, h = joint.rule[-1]
        for dp, dh in ((4, 0), (0, 2), (4, 2)):
            neighbours.append(planes.outcome(f"joint ({p + dp}, {h + dh})", TODAY + ((p + dp, h + dh),)))
    loose = best(singles, max_pair_rate, budget)
    frontier = [Frontier(b, best(singles, max_pair_rate, b), best(joints, max_pair_rate, b)) for b in FRONTIER_BUDGETS]
    return Confirmation(variants, budget, today, literal, joint, neighbours, loose, frontier)
