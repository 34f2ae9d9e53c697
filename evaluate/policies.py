"""Confirmation policies measured through the real match path (``hashmatch eval --confirmation FILE``).

``confirm.py`` reasons about rules over the computed distances; this module runs the policy the
service implements (a list's ``confirmed_thresholds``, applied by ``HashLists.match``) on the same
uploads. One list per policy, all holding the same entries (a listed original's hashes under one
entry id, as AddImages stores them), so one match per upload answers every policy at once. The
queries are what MatchImage sends by default for matching (PDQ and pHash of the upload and of each
region variant; orientations are not part of the evaluation's edits).
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hashmatch.hashing import Algorithm, Hash

from .confirm import ANY, FOCUS, TODAY
from .runner import Run
from .tails import JointFit
from .uploads import VARIANTS

PDQ, PHASH = Algorithm.PDQ, Algorithm.PHASH
QUERIED = (PDQ, PHASH)
#: The evaluation's variant names -> the region names a match reports.
REGION_OF = {"image": "whole", "trimmed": "trimmed", "embedded": "embedded"}


@dataclass(frozen=True)
class Policy:
    name: str
    kind: str  # "today", "literal", "joint", "loose"
    thresholds: dict[Algorithm, int] = field(default_factory=dict)  # overrides of the defaults
    confirmed: dict[Algorithm, int] = field(default_factory=dict)

    def rule(self) -> tuple[tuple[int, int], ...]:
        """The (PDQ, pHash) rectangles an entry matches within, for the tail estimate."""
        pdq = self.thresholds.get(PDQ, PDQ.spec.default_threshold)
        phash = self.thresholds.get(PHASH, PHASH.spec.default_threshold)
        rule = ((pdq, ANY), (ANY, phash))
        loose_pdq, loose_phash = self.confirmed.get(PDQ, pdq), self.confirmed.get(PHASH, phash)
        if PDQ in self.confirmed or PHASH in self.confirmed:
            # A loose hit needs the other algorithm within its threshold or its own loose one.
            rule += ((loose_pdq, loose_phash),)
        return rule


def default_policies() -> list[Policy]:
    out = [Policy("today: PDQ 31, pHash 10", "today")]
    # The wording: a looser PDQ confirmed by pHash within its own threshold, and the converse.
    out += [Policy(f"literal: PDQ {t} confirmed by pHash <= 10", "literal", confirmed={PDQ: t})
            for t in (40, 50, 60, 70)]
    out.append(Policy("literal: pHash 18 confirmed by PDQ <= 31", "literal", confirmed={PHASH: 18}))
    # Both loosened, each confirming the other: the joint limit.
    out += [Policy(f"joint: PDQ {t} with pHash {h}", "joint", confirmed={PDQ: t, PHASH: h})
            for t in (50, 60, 70, 80, 92) for h in (14, 16, 18, 20)]
    # No confirmation, a looser threshold alone: what confirmation must beat.
    out += [Policy(f"loose: PDQ {t}", "loose", thresholds={PDQ: t}) for t in (40, 50, 60, 70, 80, 87, 92)]
    out += [Policy(f"loose: pHash {h}", "loose", thresholds={PHASH: h}) for h in (12, 14)]
    return out


@dataclass
class PolicyOutcome:
    policy: Policy
    recall: dict[str, float]  # per edit: listed uploads matching their own entry
    false_uploads: int = 0  # unrelated uploads matching any entry
    false_pictures: int = 0
    false_pairs: int = 0
    pairs: int = 0
    confirmed_hits: int = 0  # hits (own-entry, listed uploads) reported with confirmed_by
    estimated: float | None = None

    def focus(self) -> float:
        values = [self.recall[e] for e in FOCUS if e in self.recall]
        return float(np.mean(values)) if values else 0.0

    def overall(self) -> float:
        return float(np.mean(list(self.recall.values()))) if self.recall else 0.0


def measure(run: Run, policies: list[Policy], fit: JointFit | None = None) -> list[PolicyOutcome]:
    from hashmatch.index import HashLists, NewEntry, SQLiteStore

    names = {p.name: f"policy{i}" for i, p in enumerate(policies)}
    uploads = [u for u in run.uploads if u.error is None and "image" in u.hashes]
    with tempfile.TemporaryDirectory(prefix="hashmatch-eval-policies-") as folder:
        lists = HashLists(SQLiteStore(Path(folder) / "policies.sqlite"), background=False)
        try:
            entries = [NewEntry(a, v, label="eval", entry_id=name)
                       for name, hashes in sorted(run.listed.items()) for a, v in hashes.items()]
            for policy in policies:
                lists.create_list(names[policy.name], thresholds=policy.thresholds,
                                  confirmed_thresholds=policy.confirmed)
                lists.add_entries(names[policy.name], entries)
            # (list, upload row) -> entry ids matched; and confirmed own-entry hits per list
            matched: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
            confirmed: dict[str, int] = defaultdict(int)
            for row, upload in enumerate(uploads):
                queries, regions = [], []
                for variant in VARIANTS:
                    for algorithm in QUERIED:
                        value = upload.hashes.get(variant, {}).get(algorithm)
                        if value is not None:
                            queries.append(Hash(algorithm, value))
                            regions.append(REGION_OF[variant])
                for hit in lists.match(queries, regions=regions).hits:
                    matched[hit.list_name][row].add(hit.entry_id)
                    if hit.confirmed_by is not None and hit.entry_id == Path(upload.job.path).name:
                        confirmed[hit.list_name] += 1
        finally:
            lists.close()

    outcomes = []
    unrelated_rows = [r for r, u in enumerate(uploads) if u.job.role == "unrelated"]
    for policy in policies:
        found = matched[names[policy.name]]
        by_edit: dict[str, list[bool]] = defaultdict(list)
        for row, upload in enumerate(uploads):
            if upload.job.role == "listed":
                by_edit[upload.job.edit].append(Path(upload.job.path).name in found.get(row, ()))
        false_rows = [r for r in unrelated_rows if found.get(r)]
        outcome = PolicyOutcome(
            policy,
            recall={e.name: float(np.mean(by_edit[e.name])) for e in run.edits if by_edit.get(e.name)},
            false_uploads=len(false_rows),
            false_pictures=len({uploads[r].job.path for r in false_rows}),
            false_pairs=sum(len(found[r]) for r in false_rows),
            pairs=len(unrelated_rows) * len(run.listed),
            confirmed_hits=confirmed[names[policy.name]],
            estimated=fit.union(policy.rule()) if fit is not None else None,
        )
        outcomes.append(outcome)
    return outcomes


@dataclass(frozen=True)
class Verdict:
    default: bool
    best_joint: PolicyOutcome | None
    best_loose: PolicyOutcome | None
    today: PolicyOutcome
    text: str


#: How much focus recall a policy must add over the best plain loosening at the same (or lower)
#: estimated risk, with no unrelated upload matching, to become the default.
MIN_GAIN = 0.05


def verdict(outcomes: list[PolicyOutcome]) -> Verdict:
    today = next(o for o in outcomes if o.policy.kind == "today")
    clean = [o for o in outcomes if o.false_uploads == 0]
    budget = 2 * (today.estimated or 0.0)  # today's estimated risk, twice (as confirm.py)

    def best(kind: str) -> PolicyOutcome | None:
        allowed = [o for o in clean if o.policy.kind == kind and (o.estimated is None or o.estimated <= budget)]
        return max(allowed, key=lambda o: (round(o.focus(), 9), -(o.estimated or 0))) if allowed else None

    joint, loose = best("joint"), best("loose")
    reference = max(today.focus(), loose.focus() if loose else 0.0)
    gain = joint.focus() - reference if joint else 0.0
    default = joint is not None and gain >= MIN_GAIN
    if joint is None:
        text = "no joint policy keeps the constraints (no unrelated upload matching, estimated risk within twice today's)"
    else:
        text = (
            f"best joint policy within twice today's estimated risk and with no unrelated upload matching: "
            f"**{joint.policy.name}**, focus recall {joint.focus():.2f} (today {today.focus():.2f}"
            + (f", best plain loosening at the same risk, {loose.policy.name}, {loose.focus():.2f}" if loose else "")
            + f"): a gain of {gain:+.2f} over the better of the two, "
            + ("at least" if default else "under") + f" the {MIN_GAIN:.2f} required to make it the default"
        )
    return Verdict(default, joint, loose, today, text)


def render(run: Run, outcomes: list[PolicyOutcome], command: str, cost: dict[int, float] | None = None,
           cost_entries: int = 0) -> str:
    edits = [e for e in FOCUS if any(e in o.recall for o in outcomes)]
    listed = len(run.listed)
    unrelated = sum(1 for u in run.uploads if u.job.role == "unrelated" and u.error is None)
    pairs = outcomes[0].pairs if outcomes else 0
    v = verdict(outcomes)
    lines = [
        "# Confirmation policies, measured through the index",
        "",
        "Made with:",
        "",
        "```sh",
        f"flock /tmp/hashmatch-bench.lock {command}",
        "```",
        "",
        f"{listed} listed pictures (all hashes of each under one entry id, as AddImages stores them), "
        f"{unrelated} uploads of unrelated pictures ({pairs} unrelated (upload, entry) pairs). Every policy is "
        "a list of its own holding the same entries; each upload's PDQ and pHash hashes (of the image and "
        "of each region variant) are matched once through `HashLists.match`, the server's match path, "
        "which applies each list's thresholds and confirmation policy.",
        "",
        "A list's `confirmed_thresholds` accept a hit beyond an algorithm's threshold, up to the confirmed "
        "one, only when another algorithm's hash of the same entry hits the same variant of the upload "
        "within its own threshold or confirmed threshold. So `{PDQ: T}` alone is the issue's literal "
        "rule (PDQ up to T when pHash <= 10): an entry whose pHash is within 10 matches anyway, so at the "
        "level of entries it can only add hits reported with `confirmed_by`, never a new match. "
        "`{PDQ: T, pHash: H}` is the joint limit: both moderately close.",
        "",
        "Focus: the mean recall over " + ", ".join(edits) + ". Estimated rate: the unrelated pair rate "
        "the bivariate normal fit predicts (see the main report's tail estimates): with "
        f"{pairs} pairs, 0 false pairs observed means only below about {3 / pairs if pairs else 0:.0e}.",
        "",
        "| policy | focus | " + " | ".join(edits) + " | all edits | confirmed hits | false uploads | "
        "false photos | false pairs | estimated rate |",
        "| --- | ---: | " + " | ".join("---:" for _ in edits) + " | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        cells = [o.policy.name, f"{o.focus():.2f}", *(f"{o.recall.get(e, 0):.2f}" for e in edits),
                 f"{o.overall():.2f}", str(o.confirmed_hits), str(o.false_uploads), str(o.false_pictures),
                 str(o.false_pairs), f"{o.estimated:.1e}" if o.estimated is not None else "-"]
        name = f"**{cells[0]}**" if v.best_joint is o or v.best_loose is o else cells[0]
        lines.append("| " + " | ".join([name, *cells[1:]]) + " |")
    lines += [
        "",
        f"**Make a policy the default: {'yes' if v.default else 'no'}.** {v.text}.",
        "",
    ]
    if v.best_joint is not None:
        joint = v.best_joint
        same = [o for o in outcomes if o.policy.kind == "loose" and o.false_uploads == 0
                and o.focus() >= joint.focus() - 1e-9 and o.estimated is not None]
        cheapest = min(same, key=lambda o: o.estimated or 0.0) if same else None
        if cheapest is not None and joint.estimated and (cheapest.estimated or 0) >= 1.5 * joint.estimated:
            lines += [
                f"Seen the other way, at the same focus recall: {cheapest.policy.name} reaches "
                f"{cheapest.focus():.2f} at an estimated rate of {cheapest.estimated:.1e}, "
                f"{(cheapest.estimated or 0) / joint.estimated:.0f}x the joint policy's {joint.estimated:.1e}. "
                f"Both are far below what {pairs} pairs can observe (about {3 / pairs if pairs else 0:.0e}), "
                "and the normal fit is optimistic in the tails (real near-duplicates are more common), "
                "so the sample cannot confirm that advantage either.",
                "",
            ]
    if cost:
        lines += [
            f"What a looser PDQ limit costs: one upload's PDQ queries (8 orientations and 2 regions) searched in "
            f"{cost_entries:,} uniform random PDQ entries (`search_cost` in `evaluate/policies.py`; shared "
            "2-core machine): " + ", ".join(f"radius {r}: {ms:.1f} ms" for r, ms in cost.items()) + ". "
            "Beyond about 60 bits the planner leaves the multi-index for the flat scan, whose cost grows with the "
            "list: a policy made the default would put every upload on that path.",
            "",
        ]
    return "\n".join(lines)


#: Entries of the search-cost measurement written with the report.
COST_ENTRIES = 1_000_000


def write_report(run: Run, path: Path, command: str, cost_entries: int = COST_ENTRIES) -> tuple[Path, Verdict]:
    from . import distances, tails

    found = distances.compute(run.listed, run.uploads)
    fit = tails.joint_fit(found)
    outcomes = measure(run, default_policies(), fit)
    cost = search_cost(cost_entries) if cost_entries else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(run, outcomes, command, cost, cost_entries))
    return path, verdict(outcomes)


def search_cost(entries: int, radii: tuple[int, ...] = (31, 60, 92), batch: int = 10, repeats: int = 5,
                seed: int = 1) -> dict[int, float]:
    """Milliseconds (median of ``repeats``) to search one upload's PDQ queries (``batch``: the 8
    orientations and up to 2 region variants MatchImage sends) in ``entries`` uniform random PDQ
    codes at each radius: what a looser PDQ limit costs every upload that reaches such a list."""
    import time

    from hashmatch.index.segment import Segment

    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64, size=(entries, 4), dtype=np.uint64)
    segment = Segment.build(256, codes, np.arange(entries, dtype=np.int64), np.zeros(entries, np.int64))
    queries = codes[rng.integers(0, entries, size=batch)].copy()
    queries[:, 0] ^= np.uint64(0xFFFF)  # near a listed code, not equal to it
    out = {}
    for radius in radii:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            segment.search(queries, radius)
            times.append((time.perf_counter() - started) * 1000)
        out[radius] = float(np.median(times))
    return out


if __name__ == "__main__":
    import sys

    # python -m hashmatch.evaluate.policies --search-cost N
    if len(sys.argv) == 3 and sys.argv[1] == "--search-cost":
        for radius, ms in search_cost(int(sys.argv[2])).items():
            print(f"PDQ radius {radius}: {ms:.1f} ms per upload ({sys.argv[2]} entries)")
    else:
        print("usage: python -m hashmatch.evaluate.policies --search-cost ENTRIES", file=sys.stderr)
        sys.exit(2)
