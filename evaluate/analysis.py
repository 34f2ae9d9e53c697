"""Everything measured in a run, computed once for the report, the CSV tables and the plots."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hashmatch.hashing import Algorithm

from . import confirm, costs, crosscheck, distances, metrics, tails
from .runner import Run

#: The issue's goals for the region variants, checked in the report: (edits, minimum recall).
REGION_GOALS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("border_10_white", "border_10_black", "border_10_colour", "border_10_white_jpeg"), 0.95),
    (("screenshot",), 0.8),
    (("crop_5_centre",), 0.95),
)


@dataclass(frozen=True)
class RegionStats:
    edit: str
    trimmed: float  # share of the edit's uploads (listed and unrelated) where a region was found
    embedded: float
    uploads: int


@dataclass
class Analysis:
    run: Run
    distances: distances.Distances
    edits: list[str]
    sweeps: dict[tuple[Algorithm, str], metrics.Sweep]
    thresholds: dict[Algorithm, int]  # the list's (the defaults)
    max_pair_rate: float
    fits: dict[Algorithm, tails.Fit]  # normal fits to the unrelated distances, for tail estimates
    joint_fit: tails.JointFit
    confirmation: dict[bool, confirm.Confirmation]  # by "with region variants"
    check: crosscheck.CrossCheck
    cost: costs.CostSummary | None
    regions: list[RegionStats]

    def choice(self, algorithm: Algorithm, mode: str, target: str) -> metrics.Choice:
        sweep = self.sweeps[(algorithm, mode)]
        if target == "pair":
            return metrics.largest_threshold(sweep, max_pair_rate=self.max_pair_rate)
        return metrics.largest_threshold(sweep, max_image_rate=0.0)

    def recommended(self, algorithm: Algorithm, mode: str = "variants") -> int | None:
        """The threshold the report recommends: the largest keeping both targets."""
        sweep = self.sweeps[(algorithm, mode)]
        return metrics.largest_threshold(sweep, max_pair_rate=self.max_pair_rate, max_image_rate=0.0).threshold

    def goal_routes(self) -> list[str]:
        """How a goal may be met: PDQ alone at its default and at the recommended threshold,
        today's any-algorithm rule, and that rule with the joint limit (all with region variants)."""
        routes = [f"PDQ {self.thresholds[Algorithm.PDQ]}"]
        recommended = self.recommended(Algorithm.PDQ)
        if recommended is not None and recommended != self.thresholds[Algorithm.PDQ]:
            routes.append(f"PDQ {recommended}")
        routes.append("today's rule")
        if self.confirmation[True].joint is not None:
            routes.append("today's rule + joint " + str(self.confirmation[True].joint.rule[-1]))
        return routes

    def goals(self) -> list[tuple[str, float, list[float], bool]]:
        """(edit, needed, recall by goal_routes(), met by one of them), with region variants."""
        pdq = self.sweeps[(Algorithm.PDQ, "variants")]
        confirmation = self.confirmation[True]
        recommended = self.recommended(Algorithm.PDQ)
        rows = []
        for edits, needed in REGION_GOALS:
            for edit in (e for e in edits if e in self.edits):
                values = [pdq.recall_at(edit, self.thresholds[Algorithm.PDQ])]
                if recommended is not None and recommended != self.thresholds[Algorithm.PDQ]:
                    values.append(pdq.recall_at(edit, recommended))
                values.append(confirmation.today.recall[edit])
                if confirmation.joint is not None:
                    values.append(confirmation.joint.recall[edit])
                rows.append((edit, needed, values, max(values) >= needed))
        return rows

    def unrelated_at_defaults(self) -> int:
        """Unrelated pictures with an upload matching under today's rule, region variants included."""
        return self.confirmation[True].today.false_pictures


def _region_stats(run: Run, edits: list[str]) -> list[RegionStats]:
    stats = []
    for edit in edits:
        uploads = [u for u in run.uploads if u.job.edit == edit and u.error is None]
        if not uploads:
            continue
        stats.append(RegionStats(
            edit,
            trimmed=float(np.mean(["trimmed" in u.boxes for u in uploads])),
            embedded=float(np.mean(["embedded" in u.boxes for u in uploads])),
            uploads=len(uploads),
        ))
    return stats


def analyse(run: Run, max_pair_rate: float = 1e-4) -> Analysis:
    edits = [e.name for e in run.edits]
    found = distances.compute(run.listed, run.uploads)
    joint = tails.joint_fit(found)
    source = "server" if run.options.server else "index"
    return Analysis(
        run=run,
        distances=found,
        edits=edits,
        sweeps=metrics.all_sweeps(found, edits),
        thresholds=dict(run.thresholds),
        max_pair_rate=max_pair_rate,
        fits=tails.fits(found),
        joint_fit=joint,
        confirmation={v: confirm.evaluate(found, edits, v, max_pair_rate, joint) for v in (False, True)},
        check=crosscheck.compare(found, run.hits, run.thresholds, source),
        cost=costs.summarise(run.uploads),
        regions=_region_stats(run, edits),
    )
