"""What the region variants cost per upload: time with and without them, from the uploads' own
measurements (in process only: against a server the time is the network's as much as ours)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .uploads import Upload


@dataclass(frozen=True)
class CostSummary:
    uploads: int
    with_regions: int  # uploads where a region was found (and so hashed)
    base_median_ms: float
    with_median_ms: float
    regions_median_ms: float  # finding the regions, on every upload
    ratio_of_medians: float
    ratio_of_totals: float  # the whole run's time with variants / without: the mean cost
    ratio_p90: float  # per upload
    ratio_found_median: float  # per upload, among those with a region found


def summarise(uploads: list[Upload]) -> CostSummary | None:
    costs = [u.cost for u in uploads if u.cost is not None]
    if not costs:
        return None
    base = np.array([c.base_ms for c in costs])
    extra = np.array([c.regions_ms + c.crops_ms for c in costs])
    found = np.array([c.crops > 0 for c in costs])
    ratio = (base + extra) / base
    return CostSummary(
        uploads=len(costs),
        with_regions=int(found.sum()),
        base_median_ms=float(np.median(base)),
        with_median_ms=float(np.median(base + extra)),
        regions_median_ms=float(np.median([c.regions_ms for c in costs])),
        ratio_of_medians=float(np.median(base + extra) / np.median(base)),
        ratio_of_totals=float((base + extra).sum() / base.sum()),
        ratio_p90=float(np.percentile(ratio, 90)),
        ratio_found_median=float(np.median(ratio[found])) if found.any() else 1.0,
    )
