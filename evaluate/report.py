"""The Markdown report of a run: what was measured, the recommendation, and the tables."""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from hashmatch.hashing import PERCEPTUAL, Algorithm

from . import confirm
from .analysis import Analysis
from .edits import EDITS
from .metrics import Sweep

#: A recall difference that counts: two pictures per edit in a run of ~36 listed pictures.
_CLEAR_GAIN = 0.05

# Thresholds shown in the per-algorithm tables (every one is in the CSV): the default included.
_SHOWN = {256: (0, 10, 20, 31, 40, 50, 60, 70, 80, 96), 64: (0, 4, 6, 8, 10, 12, 14, 16, 20, 24)}


def _rate(value: float) -> str:
    return "0" if value == 0 else f"{value:.1e}"


def _recall(value: float) -> str:
    return f"{value:.2f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    align = align or ("l" + "r" * (len(header) - 1))
    lines.append("| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _both(plain: float, variants: float) -> str:
    """One cell: the recall with region variants, and the plain one when it differs."""
    if round(plain, 2) == round(variants, 2):
        return _recall(variants)
    return f"{_recall(variants)} ({_recall(plain)})"


def _threshold(value: int | None) -> str:
    return "none" if value is None else str(value)


# -- sections -------------------------------------------------------------------------------------


def _header(a: Analysis, command: str) -> str:
    run = a.run
    options = run.options
    uploads = len(run.uploads)
    path = f"through the server at `{options.server}` (SDK `match_image`)" if options.server else (
        "in process: `hashmatch.hashing.hash_image` on the uploaded bytes, "
        "`hashmatch.index.HashLists` on a temporary SQLite store holding the listed originals")
    return f"""# Detection quality: perceptual hashes under edits

Made with:

```sh
{command}
```

- **Images**: {len(run.split.listed) + len(run.split.unrelated)} from `{options.folder}`, split with seed
  {options.seed}: {len(run.split.listed)} listed (their originals loaded into a hash list, one entry
  id per picture holding all five hashes), {len(run.split.unrelated)} unrelated (never listed).
- **Uploads**: {len(run.edits)} edits (the first is the file itself) of every image, listed and unrelated:
  {uploads} uploads, {len(run.errors)} failed to hash. Unrelated pictures are edited too: a false match can
  come from any upload of a picture that is not listed.
- **Path**: {path}. Region variants ("trimmed", "embedded") come from
  `hashmatch.hashing.regions.region_crops` on the decoded upload, hashed with `hash_pil_image`.
- **Distances** for the sweeps are computed from the hashes; the matches the index returned at the
  list's thresholds agree with them ([cross-check](#cross-check)).
- Run time {run.seconds:.0f} s with {options.workers} worker processes on {platform.machine()}
  (Python {platform.python_version()}).

Recall of an edit at threshold t: the share of listed pictures whose edited upload is within t of its
own original. False matches at t, over all {a.sweeps[(Algorithm.PDQ, 'plain')].false.uploads} uploads of
unrelated pictures against all {len(run.split.listed)} entries: the **pair rate** (share of
(upload, entry) pairs within t), the **image rate** (share of uploads within t of any entry) and the
number of unrelated **photos** with such an upload. "With region variants": the upload matches when
the image or one of its region crops is within t.
"""


_ROBUST_GROUPS = ("codec", "resize", "colour", "filter")


def _findings(a: Analysis) -> str:
    """The headline numbers, in words."""
    out = ["## Findings\n"]
    unrelated = a.sweeps[(Algorithm.PDQ, "plain")].false.uploads
    loose, clean = [], []
    for algorithm in PERCEPTUAL:
        s = a.sweeps[(algorithm, "variants")]
        matched = round(s.false.image_rate[s.at(a.thresholds[algorithm])] * s.false.uploads)
        (loose.append(f"{algorithm.name} {matched}") if matched else clean.append(algorithm.name))
    line = (f"- **False matches at the default thresholds**: {', '.join(clean)} match none of the {unrelated} "
            "unrelated uploads")
    if loose:
        line += (f"; {', '.join(loose)} of them match a listed picture: a threshold of "
                 f"{a.thresholds[Algorithm.AHASH]} is too loose for the weaker 64-bit hashes "
                 "([recommendation](#recommendation-thresholds-from-the-false-match-target))")
    out.append(line + ".")
    robust = [e for e in a.edits if EDITS[e].group in _ROBUST_GROUPS or e in ("watermark", "original")]
    worst = []
    for algorithm in PERCEPTUAL:
        s = a.sweeps[(algorithm, "plain")]
        i = s.at(a.thresholds[algorithm])
        values = {e: s.recall[s.edits.index(e), i] for e in robust}
        edit = min(values, key=values.get)
        worst.append(f"{algorithm.name} {values[edit]:.2f}" + (f" ({edit})" if values[edit] < 1 else ""))
    out.append("- **Re-encoding, resizing, colour, blur, noise, a watermark** are matched: the lowest recall over "
               "those edits at the default thresholds is " + ", ".join(worst) + ".")
    collapse = [e for e in ("border_10_white", "border_10_black", "pad_square_black", "caption_bar", "screenshot",
                            "screenshot_phone") if e in a.edits]
    if collapse:
        p, v = a.sweeps[(Algorithm.PDQ, "plain")], a.sweeps[(Algorithm.PDQ, "variants")]
        t = a.thresholds[Algorithm.PDQ]
        out.append("- **Borders, caption bands and screenshots** defeat every hash as uploaded; with the region "
                   "variants they match (PDQ at " + str(t) + "): "
                   + ", ".join(f"{e} {p.recall_at(e, t):.2f} -> {v.recall_at(e, t):.2f}" for e in collapse) + ".")
    crops = [e for e in ("crop_5_centre", "crop_10_centre", "crop_5_offcentre") if e in a.edits]
    if crops:
        cells = []
        for algorithm in (Algorithm.PDQ, Algorithm.PHASH):
            s = a.sweeps[(algorithm, "plain")]
            cells.append(f"{algorithm.name} at {a.thresholds[algorithm]}: "
                         + ", ".join(f"{e} {s.recall_at(e, a.thresholds[algorithm]):.2f}" for e in crops))
        out.append("- **Crops** are the weak spot, PDQ's most: " + "; ".join(cells) + ".")
    turns = [e for e in ("rotate_90", "flip_h", "flip_v") if e in a.edits]
    if turns:
        out.append("- **Rotations by 90 degrees and flips** are not matched by the image's own hashes (recall near 0): "
                   "that is the orientation matching's job, not measured here.")
    if a.cost is not None:
        out.append(f"- **Cost of the region variants**: {a.cost.ratio_of_totals:.2f}x the hashing time in total, "
                   f"{a.cost.ratio_found_median:.2f}x (median) on the uploads where a region is found.")
    c = a.confirmation[True]
    verdict = "recommended" if _joint_recommended(c) else "not recommended as the default"
    out.append(f"- **Confirmation across algorithms**: {verdict} "
               f"([details](#confirmation-across-algorithms-pdq-and-phash)); focus recall today "
               f"{c.today.focus_recall():.2f}, with the joint limit "
               f"{c.joint.focus_recall() if c.joint else c.today.focus_recall():.2f}, loosening alone "
               f"{c.loose.focus_recall() if c.loose else c.today.focus_recall():.2f}.")
    return "\n".join(out) + "\n"


def _goals(a: Analysis) -> str:
    routes = a.goal_routes()
    rows = [[edit, needed] + [_recall(v) for v in values] + ["yes" if met else "**no**"]
            for edit, needed, values, met in a.goals()]
    out = ["## The issue's goals\n",
           "Recall with region variants, by the routes that could meet each goal (\"today's rule\": PDQ <= "
           f"{a.thresholds[Algorithm.PDQ]} or pHash <= {a.thresholds[Algorithm.PHASH]}; the joint limit is the "
           "[confirmation](#confirmation-across-algorithms-pdq-and-phash) section's):\n",
           _table(["edit", "needed"] + routes + ["met"], rows, "lr" + "r" * len(routes) + "l")]
    unrelated = a.unrelated_at_defaults()
    out.append(f"\n- Unrelated photos with an upload matching under today's rule, region variants included: "
               f"**{unrelated}** (goal: 0).")
    if a.cost is not None:
        out.append(f"- Time per upload with the region variants / without: **{a.cost.ratio_of_totals:.2f}x** of the total, "
                   f"{a.cost.ratio_of_medians:.2f}x of the medians (goal: under 1.3x; [details](#region-variants-borders-and-screenshots)).")
    return "\n".join(out) + "\n"


def _recommendation(a: Analysis) -> str:
    pairs = a.sweeps[(Algorithm.PDQ, "plain")].false.pairs
    out = [f"""## Recommendation: thresholds from the false-match target

Targets: a false-match **pair rate of at most {a.max_pair_rate:.0e}**, and **no unrelated upload
matching** (image rate 0). For each algorithm, the largest threshold that keeps the target, with
region variants (plain in parentheses where it differs), and the mean recall over all
{len(a.edits)} edits it buys. With {pairs} unrelated pairs the smallest non-zero pair rate is
{1 / pairs:.1e}; a rate of 0 observed here means below about {3 / pairs:.0e} (95%, rule of three),
not 0 on a large list: expected false matches per upload are the pair rate times the list's size.
"""]
    rows = []
    for algorithm in PERCEPTUAL:
        default = a.thresholds[algorithm]
        s = a.sweeps[(algorithm, "variants")]
        p = a.sweeps[(algorithm, "plain")]
        i = s.at(default)
        pair = a.choice(algorithm, "variants", "pair")
        zero = a.choice(algorithm, "variants", "zero")
        pair_p = a.choice(algorithm, "plain", "pair")
        zero_p = a.choice(algorithm, "plain", "zero")
        rec = a.recommended(algorithm)
        rows.append((
            algorithm.name, default,
            _rate(s.false.pair_rate[i]), f"{s.false.image_rate[i] * s.false.uploads:.0f}",
            _recall(s.recall[:, i].mean()),
            f"{_threshold(pair.threshold)} ({_threshold(pair_p.threshold)})",
            f"{_threshold(zero.threshold)} ({_threshold(zero_p.threshold)})",
            _threshold(rec),
            _recall(s.recall[:, s.at(rec)].mean()) if rec is not None else "-",
            _rate(a.fits[algorithm].rate(rec)) if rec is not None else "-",
        ))
    out.append(_table(
        ("algorithm", "default", "pair rate at default", "uploads matching at default", "mean recall at default",
         f"largest t: pair rate <= {a.max_pair_rate:.0e}", "largest t: no upload matching",
         "**recommended** (both)", "mean recall at recommended", "estimated pair rate at recommended"),
        rows,
    ))
    pdq = a.fits[Algorithm.PDQ]
    rec = a.recommended(Algorithm.PDQ)
    if rec is not None:
        per_million = pdq.rate(rec) * 1e6
        out.append(f"""
These thresholds keep the targets **on this sample**. A list is much larger than {len(a.run.split.listed)} entries:
the normal fit to the unrelated distances ([tail estimates](#tail-estimates)) puts PDQ at {rec} at an estimated
pair rate of {_rate(pdq.rate(rec))}, that is {per_million:.2g} false matches per upload against a million
entries, where today's {a.thresholds[Algorithm.PDQ]} is estimated at {_rate(pdq.rate(a.thresholds[Algorithm.PDQ]))}.
For a large list choose from the "t for 1e-9" column there (PDQ {pdq.threshold_for(1e-9)}, pHash
{a.fits[Algorithm.PHASH].threshold_for(1e-9)}); the recall each buys is in the [tables](#recall-at-each-threshold).""")
    weak = [al.name for al in PERCEPTUAL
            if a.sweeps[(al, "plain")].false.image_rate[a.sweeps[(al, "plain")].at(a.thresholds[al])] > 0]
    if weak:
        out.append(f"What the sample does show firmly: {', '.join(weak)} already match unrelated pictures at "
                   "their default thresholds.")
    out.append("\nRecall per edit at the recommended thresholds, with region variants (plain in parentheses "
               "where it differs); the header gives each algorithm's threshold:\n")
    header = ["edit"] + [f"{al.name} {_threshold(a.recommended(al))}" for al in PERCEPTUAL]
    rows = []
    for edit in a.edits:
        row: list[object] = [edit]
        for algorithm in PERCEPTUAL:
            t = a.recommended(algorithm)
            if t is None:
                row.append("-")
                continue
            row.append(_both(a.sweeps[(algorithm, "plain")].recall_at(edit, t),
                             a.sweeps[(algorithm, "variants")].recall_at(edit, t)))
        rows.append(row)
    out.append(_table(header, rows))
    return "\n".join(out) + "\n"


def _regions(a: Analysis) -> str:
    out = ["""## Region variants: borders and screenshots

`region_crops(image)` finds uniform borders of any colour ("trimmed") and the dominant picture of a
screenshot-like canvas ("embedded"); the crops are hashed besides the image. How often a region was
found, per edit (over its listed and unrelated uploads; on unedited pictures any region is a
false find: an extra query, harmless to recall, and counted in the false-match rates above):
"""]
    rows = [(r.edit, f"{r.trimmed:.2f}", f"{r.embedded:.2f}", r.uploads) for r in a.regions
            if r.trimmed or r.embedded or r.edit == "original"]
    out.append(_table(("edit", "trimmed found", "embedded found", "uploads"), rows))
    out.append("\nRecall at the default thresholds, plain -> with region variants (edits where they differ):\n")
    rows = []
    for edit in a.edits:
        cells = []
        differs = False
        for algorithm in PERCEPTUAL:
            t = a.thresholds[algorithm]
            p = a.sweeps[(algorithm, "plain")].recall_at(edit, t)
            v = a.sweeps[(algorithm, "variants")].recall_at(edit, t)
            differs |= abs(p - v) > 1e-9
            cells.append(f"{_recall(p)} -> {_recall(v)}")
        if differs:
            rows.append([edit] + cells)
    out.append(_table(["edit"] + [f"{al.name} {a.thresholds[al]}" for al in PERCEPTUAL], rows) if rows else "(none)")
    out.append("")
    if a.cost is not None:
        c = a.cost
        out.append(f"""**Cost per upload** (in process, {c.uploads} uploads timed once each as the workers ran them): hashing as
MatchImage does by default (decode, PDQ, pHash, MD5, SHA-256) took a median **{c.base_median_ms:.1f} ms**;
with the region search and the crops' PDQ and pHash, **{c.with_median_ms:.1f} ms** (median), a ratio of
**{c.ratio_of_medians:.2f}x** of the medians and **{c.ratio_of_totals:.2f}x** of the total time. The search itself takes
{c.regions_median_ms:.1f} ms (median) on every upload; a region was found on {c.with_regions} uploads, which cost
{c.ratio_found_median:.2f}x their plain time (median: hashing the crop is most of it); 90% of uploads cost at most
{c.ratio_p90:.2f}x. Timed on a shared 2-core machine: compare ratios, not absolute times.
""")
    else:
        out.append("Cost per upload: not measured (only in process).\n")
    return "\n".join(out)


def _policy_rows(c: confirm.Confirmation) -> list[list[object]]:
    outcomes: list[confirm.Outcome] = [c.today, c.literal]
    if c.joint is not None:
        outcomes += [c.joint] + c.joint_neighbours
    if c.loose is not None:
        outcomes.append(c.loose)
    focus = [e for e in confirm.FOCUS if e in c.today.recall]
    rows = []
    for o in outcomes:
        rows.append([o.name, _recall(o.focus_recall())] + [_recall(o.recall[e]) for e in focus]
                    + [_recall(float(np.mean(list(o.recall.values())))), o.false_uploads, o.false_pairs,
                       _rate(o.pair_rate), _rate(o.estimated)])
    return rows


def _rule(o: confirm.Outcome | None) -> str:
    if o is None:
        return "none"
    parts = []
    for p, h in o.rule:
        if h >= confirm.ANY:
            parts.append(f"PDQ <= {p}")
        elif p >= confirm.ANY:
            parts.append(f"pHash <= {h}")
        else:
            parts.append(f"both <= ({p}, {h})")
    return " or ".join(parts)


def _confirmation(a: Analysis) -> str:
    c = a.confirmation[True]
    j = a.joint_fit
    focus = [e for e in confirm.FOCUS if e in c.today.recall]
    out = [f"""## Confirmation across algorithms (PDQ and pHash)

A rule is a set of (PDQ, pHash) distance limits; an upload matches an entry when one of its
variants is within both limits of one of them. Today: (31, any) or (any, 10). The issue's wording,
"accept PDQ at a looser threshold only when pHash agrees within its own threshold (and vice
versa)", adds (T, 10) and (31, T'): both lie inside today's rule (pHash alone already matches at
10, PDQ alone at 31), so it cannot change anything; the "literal" row shows it. What can help is a
**joint** limit beyond both defaults, (T_P, T_H): accept when both hashes are moderately close.

No unrelated upload matching is not enough to choose such a limit: with
{c.today.pairs} unrelated pairs, any rule short of the nearest unrelated pair "has no false
match". So rules are also compared by their **estimated** pair rate, from a bivariate normal fit to
the unrelated pairs' distances (PDQ mean {j.pdq.mean:.1f}, sd {j.pdq.sd:.1f}; pHash mean
{j.phash.mean:.1f}, sd {j.phash.sd:.1f}; correlation {j.correlation:.2f}; see [tails](#tail-estimates)).
Today's rule is estimated at {_rate(c.today.estimated)}. The joint limit chosen below is the one that
maximises the mean recall over captions, the watermark and 5-10% crops (the "focus" column) with no
unrelated upload matching and an estimated rate of at most **{_rate(c.budget)}** (today's risk, twice);
"loose" is the best loosening of each algorithm's own threshold under the same constraints. The
rows "joint (T_P + 4, ...)" make the joint limit a little looser, to see whether it sits on a cliff
edge of this sample.
"""]
    for variants in (True, False):
        conf = a.confirmation[variants]
        out.append(f"\n{'With region variants' if variants else 'Plain (the image as uploaded)'}:\n")
        out.append(_table(["rule", "focus"] + focus + ["all edits", "false uploads", "false pairs", "pair rate",
                           "estimated rate"], _policy_rows(conf)))
    out.append("\nThe same comparison at other estimated pair-rate budgets, from today's rule's own estimate up "
               "(with region variants; focus recall, then all edits):\n")
    rows = []
    for f in c.frontier:
        if f.budget < c.today.estimated:
            continue  # every rule here contains today's, which is already above such a budget
        rows.append([_rate(f.budget), _rule(f.loose),
                     f"{f.loose.focus_recall():.2f} / {np.mean(list(f.loose.recall.values())):.2f}" if f.loose else "-",
                     _rule(f.joint),
                     f"{f.joint.focus_recall():.2f} / {np.mean(list(f.joint.recall.values())):.2f}" if f.joint else "-"])
    out.append(_table(["estimated budget", "loosening alone", "recall", "today's rule + joint limit", "recall"], rows,
                      "llrlr"))
    out.append("")
    out.append(_confirmation_verdict(a) + POLICY_REPORT_NOTE)
    return "\n".join(out)


def _joint_recommended(c: confirm.Confirmation) -> bool:
    """A clear gain over today's rule and over loosening the thresholds alone, off a cliff edge."""
    return c.joint is not None and c.gain >= _CLEAR_GAIN and c.margin_over_loosening >= _CLEAR_GAIN and c.stable


def _confirmation_verdict(a: Analysis) -> str:
    c = a.confirmation[True]
    if c.joint is None or c.gain <= 0:
        return ("**Recommendation: no** (keep today's rule as the default): no joint limit within the budget "
                "recovers anything on this data.\n")
    name = c.joint.rule[-1]
    found = (f"today's rule plus the joint limit {name} raises the focus recall from "
             f"{c.today.focus_recall():.2f} to {c.joint.focus_recall():.2f} (+{c.gain:.2f}) with no unrelated "
             f"upload matching, at an estimated pair rate of {_rate(c.joint.estimated)}")
    loose = (f"loosening the thresholds alone ({_rule(c.loose)}) reaches {c.loose.focus_recall():.2f}"
             if c.loose else "no loosening of the thresholds alone fits the budget")
    if _joint_recommended(c):
        return (f"**Recommendation: yes**: {found}; {loose}; and a slightly looser joint limit still matches "
                f"no unrelated upload. Offer it as a list policy; make it the default if the lead accepts the "
                f"evidence's size ({len(a.run.split.listed)} listed, {len(a.run.split.unrelated)} unrelated "
                f"pictures).\n")
    why = []
    if c.gain < _CLEAR_GAIN:
        why.append(f"the gain is small: {found}")
    else:
        why.append(found)
    if c.margin_over_loosening < _CLEAR_GAIN:
        why.append(f"but {loose} at the same estimated risk: confirmation buys "
                   f"{c.margin_over_loosening:+.2f} over simply raising a threshold, under two pictures per edit")
    if not c.stable:
        why.append(f"and a slightly looser joint limit than {name} already lets unrelated uploads match "
                   "(a cliff edge of this sample)")
    return ("**Recommendation: no** (keep today's rule as the default; the joint limit can be offered as an "
            "opt-in list policy for lists that want more crop and caption tolerance): " + "; ".join(why) + ".\n")


#: The policy as implemented (lists' confirmed thresholds) is measured through the index apart.
POLICY_REPORT_NOTE = (
    "\nThe policy as the service implements it (a list's `confirmed_thresholds`, e.g. `--confirm pdq=92 "
    "--confirm phash=18`) is measured through the index in [confirmation.md](confirmation.md), made with "
    "`hashmatch eval FOLDER --confirmation docs/eval/confirmation.md`.\n"
)


def _threshold_or_none(value: int) -> str:
    return "none" if value < 0 else str(value)


def _tails(a: Analysis) -> str:
    rows = []
    for algorithm in PERCEPTUAL:
        f = a.fits[algorithm]
        default = a.thresholds[algorithm]
        rec = a.recommended(algorithm)
        rows.append([algorithm.name, f"{f.mean:.1f}", f"{f.sd:.1f}", f.minimum,
                     f"{_rate(f.rate(default))} at {default}",
                     f"{_rate(f.rate(rec))} at {rec}" if rec is not None else "-",
                     _threshold_or_none(f.threshold_for(1e-6)), _threshold_or_none(f.threshold_for(1e-9))])
    return ("## Tail estimates\n\nDistances of unrelated pairs (as uploaded), a normal fit to them, and the pair "
            "rate the fit predicts; the thresholds for a predicted rate of 1e-6 and 1e-9 show what a large list "
            "needs (false matches per upload = pair rate x entries). Real tails are heavier than a normal's "
            "(near duplicates, shared layouts): read these as optimistic.\n\n"
            + _table(["algorithm", "mean", "sd", "smallest seen", "estimated rate at default",
                      "estimated rate at recommended", "t for 1e-6", "t for 1e-9"], rows) + "\n")


def _crosscheck(a: Analysis) -> str:
    c = a.check
    source = "the index (`HashLists.match`)" if c.source == "index" else "the server (`MatchImage`)"
    thresholds = ", ".join(f"{al.name} {t}" for al, t in c.thresholds.items())
    lines = [f"""## Cross-check

Every upload's hashes (each variant) were matched through {source} at the list's thresholds
({thresholds}). Hits that the computed distances predict and {source.split(' (')[0]} returned:
**{c.agreed}**; predicted but not returned: **{len(c.computed_only)}**; returned but not predicted:
**{len(c.index_only)}**{' (a server may match orientations or variants of its own)' if c.source == 'server' else ''}.
Verdict: **{'the numbers agree' if c.ok else 'DISAGREEMENT'}**.
"""]
    for title, keys in (("predicted, not returned", c.computed_only), ("returned, not predicted", c.index_only)):
        if keys:
            lines.append(f"First {min(10, len(keys))} {title}: " + "; ".join(
                f"upload {r} {v} {e} {al.name} {d}" for r, v, e, al, d in keys[:10]) + "\n")
    return "\n".join(lines)


def _sweep_table(a: Analysis, algorithm: Algorithm) -> str:
    plain: Sweep = a.sweeps[(algorithm, "plain")]
    variants: Sweep = a.sweeps[(algorithm, "variants")]
    shown = [t for t in _SHOWN[256 if algorithm.spec.bits >= 256 else 64] if t <= plain.grid[-1]]
    header = ["edit"] + [f"**{t}**" if t == a.thresholds[algorithm] else str(t) for t in shown]
    rows: list[list[object]] = []
    for edit in a.edits:
        rows.append([edit] + [_both(plain.recall_at(edit, t), variants.recall_at(edit, t)) for t in shown])
    for label, sweep in (("false pair rate", plain), ("false pair rate, variants", variants)):
        rows.append([f"*{label}*"] + [_rate(sweep.false.pair_rate[sweep.at(t)]) for t in shown])
    for label, sweep in (("uploads matching", plain), ("uploads matching, variants", variants)):
        rows.append([f"*{label}*"] + [f"{sweep.false.image_rate[sweep.at(t)] * sweep.false.uploads:.0f}" for t in shown])
    for label, sweep in (("photos matching, variants", variants),):
        rows.append([f"*{label}*"] + [int(sweep.false.photos[sweep.at(t)]) for t in shown])
    return f"### {algorithm.name}\n\n![{algorithm.name} recall against threshold](recall_vs_threshold_{algorithm.value}.png)\n\n" + _table(header, rows) + "\n"


def _sweeps(a: Analysis) -> str:
    out = ["""## Recall at each threshold

Per algorithm: recall per edit, with region variants (plain in parentheses where it differs), and the
false matches, at a selection of thresholds (bold: the default). Every threshold (PDQ 0..128 in steps
of 2, the 64-bit hashes 0..32) is in `recall_<algorithm>.csv` and `false_matches.csv` beside this report.

![recall against false matches](recall_vs_false_matches.png)
"""]
    out += [_sweep_table(a, algorithm) for algorithm in PERCEPTUAL]
    return "\n".join(out)


def _edits(a: Analysis) -> str:
    rows = [(name, EDITS[name].group, EDITS[name].description) for name in a.edits]
    return ("## The edits\n\nPixel edits are saved as PNG, so each row measures the edit alone; the codec "
            "edits (and `border_10_white_jpeg`) add their compression. Screenshots are drawn by "
            "`hashmatch.evaluate.screenshots` (UI bars, text, other pictures made from random shapes).\n\n"
            + _table(("edit", "group", "what"), rows, "lll") + "\n")


def _caveats(a: Analysis) -> str:
    errors = Counter(u.error.split(":")[0] for u in a.run.errors if u.error)
    lines = ["""## Caveats

- The region detector's constants were set while looking at these photos and at the screenshot
  layouts of this tool; real screenshots vary more (cards with borders, rounded corners, pictures
  cut by the screen edge). Its unit tests use generated images only.
- `rotate_90` and the flips are the orientation matching's job (hashes of the 8 orientations), which
  this evaluation does not include: their recall here is that of the image as uploaded.
- One split, one seed: a different seed moves single recall values by a picture or two
  (1/{} each).""".format(len(a.run.split.listed))]
    if errors:
        lines.append("- Uploads that failed to hash: " + ", ".join(f"{n} x {k}" for k, n in errors.items()) + ".")
    return "\n".join(lines) + "\n"


def render(a: Analysis, command: str) -> str:
    sections = [
        _header(a, command),
        _findings(a),
        _goals(a),
        _recommendation(a),
        _regions(a),
        _confirmation(a),
        _tails(a),
        _crosscheck(a),
        _sweeps(a),
        _edits(a),
        _caveats(a),
    ]
    return "\n".join(sections)


def summary(a: Analysis) -> list[tuple[str, str]]:
    """A few lines for the terminal."""
    lines = []
    for algorithm in PERCEPTUAL:
        rec = a.recommended(algorithm)
        s = a.sweeps[(algorithm, "variants")]
        lines.append((algorithm.name, f"recommended threshold {_threshold(rec)} (default {a.thresholds[algorithm]}), "
                      f"mean recall {s.recall[:, s.at(rec)].mean():.2f}" if rec is not None else "no threshold keeps the target"))
    c = a.confirmation[True]
    lines.append(("confirmation", f"focus recall {c.today.focus_recall():.2f} today, "
                  f"{c.joint.focus_recall():.2f} with joint {c.joint.rule[-1]}, {c.loose.focus_recall():.2f} "
                  f"loosening alone" if c.joint and c.loose else "no joint limit"))
    lines.append(("cross-check", "agree" if a.check.ok else "DISAGREE"))
    return lines
