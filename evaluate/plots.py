"""PNG plots of a run (matplotlib, Agg: no display needed).

- ``recall_vs_threshold_<algorithm>.png``: recall against threshold, one panel per group of
  edits; solid lines for the image as uploaded, dashed for "with region variants" where those
  differ; the default threshold and the recommended one marked, and the thresholds at which an
  unrelated upload already matches shaded.
- ``recall_vs_false_matches.png``: mean recall against the false-match pair rate, one curve
  per algorithm (plain and with region variants), over all edits and over the hard ones.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, on machines without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from hashmatch.hashing import PERCEPTUAL, Algorithm  # noqa: E402

from .analysis import Analysis  # noqa: E402
from .edits import EDITS  # noqa: E402

#: Edits where matching is known to be hard; the second panel of the trade-off plot.
HARD_GROUPS = ("crop", "border", "overlay", "screenshot")


def _groups(edits: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for edit in edits:
        group = EDITS[edit].group
        groups.setdefault("codec" if group == "sanity" else group, []).append(edit)
    return groups


def recall_vs_threshold(analysis: Analysis, algorithm: Algorithm, path: Path) -> None:
    plain = analysis.sweeps[(algorithm, "plain")]
    variants = analysis.sweeps[(algorithm, "variants")]
    groups = _groups(analysis.edits)
    columns = 3
    rows = -(-len(groups) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(15, 4.2 * rows), sharex=True, sharey=True, squeeze=False)
    default = analysis.thresholds[algorithm]
    recommended = analysis.recommended(algorithm)
    first_false = np.flatnonzero(variants.false.image_rate > 0)
    for ax, (group, edits) in zip(axes.flat, groups.items()):
        colours = plt.cm.tab10(np.linspace(0, 1, 10))
        for i, edit in enumerate(edits):
            e = analysis.edits.index(edit)
            colour = colours[i % 10]
            ax.plot(plain.grid, plain.recall[e], color=colour, label=edit, linewidth=1.6)
            if not np.array_equal(plain.recall[e], variants.recall[e]):
                ax.plot(variants.grid, variants.recall[e], color=colour, linestyle="--", linewidth=1.4,
                        label=f"{edit} + regions")
        ax.axvline(default, color="black", linewidth=0.8, linestyle=":")
        if recommended is not None and recommended != default:
            ax.axvline(recommended, color="green", linewidth=0.8, linestyle="-.")
        if len(first_false):
            ax.axvspan(variants.grid[first_false[0]], variants.grid[-1], color="red", alpha=0.07, linewidth=0)
        ax.set_title(group)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(f"{algorithm.name} threshold (bits)")
    for ax in axes[:, 0]:
        ax.set_ylabel("recall")
    note = f"dotted: default {default}"
    if recommended is not None and recommended != default:
        note += f"; dash-dot: recommended {recommended}"
    note += "; shaded: an unrelated upload matches (with region variants)"
    figure.suptitle(f"{algorithm.name}: recall per edit against threshold ({note})", fontsize=11)
    # Fixed margins: tight_layout measures every label first and costs a second per figure.
    figure.subplots_adjust(left=0.05, right=0.99, bottom=0.06, top=0.93, wspace=0.06, hspace=0.14)
    _save(figure, path)


def recall_vs_false_matches(analysis: Analysis, path: Path) -> None:
    hard = [e for e in analysis.edits if EDITS[e].group in HARD_GROUPS]
    panels = [("all edits", analysis.edits), ("crops, borders, overlays, screenshots", hard)]
    figure, axes = plt.subplots(1, len(panels), figsize=(13, 5.2), sharey=True, squeeze=False)
    colours = dict(zip(PERCEPTUAL, plt.cm.tab10(np.arange(len(PERCEPTUAL)))))
    floor = 0.5 / max(1, analysis.sweeps[(Algorithm.PDQ, "plain")].false.pairs)  # where "0" is drawn
    for ax, (title, edits) in zip(axes[0], panels):
        if not edits:
            ax.set_visible(False)
            continue
        index = [analysis.edits.index(e) for e in edits]
        for algorithm in PERCEPTUAL:
            for mode, style in (("plain", "-"), ("variants", "--")):
                sweep = analysis.sweeps[(algorithm, mode)]
                rate = np.maximum(sweep.false.pair_rate, floor)
                recall = sweep.recall[index].mean(axis=0)
                label = algorithm.name + (" + regions" if mode == "variants" else "")
                ax.plot(rate, recall, style, color=colours[algorithm], label=label, linewidth=1.5)
                default = sweep.at(analysis.thresholds[algorithm])
                ax.plot(rate[default], recall[default], "o", color=colours[algorithm], markersize=4)
        ax.axvline(analysis.max_pair_rate, color="black", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_xlabel(f"false-match pair rate (log; {floor:.0e} stands for 0)")
        ax.set_title(f"mean recall over {title}")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("mean recall")
    axes[0][0].legend(fontsize=8, loc="lower right")
    figure.suptitle("Recall against false matches, thresholds swept (dots: default thresholds; dotted: target pair rate)",
                    fontsize=11)
    figure.subplots_adjust(left=0.06, right=0.99, bottom=0.12, top=0.86, wspace=0.05)
    _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> None:
    # A 256-colour palette keeps line plots a third of their size in the repository, unchanged to the eye.
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def write_plots(analysis: Analysis, folder: Path) -> list[Path]:
    written = []
    for algorithm in PERCEPTUAL:
        path = folder / f"recall_vs_threshold_{algorithm.value}.png"
        recall_vs_threshold(analysis, algorithm, path)
        written.append(path)
    path = folder / "recall_vs_false_matches.png"
    recall_vs_false_matches(analysis, path)
    written.append(path)
    return written
