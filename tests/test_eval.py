"""``hashmatch eval``: the edit suite, the split, the arithmetic, and small real runs.

The runs use a handful of generated photos (tests/imagegen.py: far apart under every hash) and a
few edits, through the real hashing and the real index (and, once, a real server).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from imagegen import encode, photo
from PIL import Image

from hashmatch.evaluate import confirm, dataset, distances, metrics, tails
from hashmatch.evaluate.edits import EDITS, QUICK, SUITE, Source, select
from hashmatch.evaluate.runner import Options, run
from hashmatch.evaluate.uploads import edit_rng
from hashmatch.evaluate.write import write_outputs
from hashmatch.hashing import PERCEPTUAL, Algorithm, Hash

ROOT = Path(__file__).resolve().parents[1]
ISSUE_EDITS = (  # the issue's list, by our names: every one must be in the suite
    "jpeg_q90", "jpeg_q30", "webp_q80", "down_0.5", "down_0.25", "up_2", "crop_5_centre", "crop_10_centre",
    "crop_20_centre", "crop_5_offcentre", "crop_10_offcentre", "crop_20_offcentre", "border_10_white",
    "border_10_black", "rotate_5", "rotate_90", "flip_h", "flip_v", "greyscale", "brightness", "contrast",
    "gamma", "blur", "noise", "watermark", "caption_meme", "screenshot",
)


def _source(seed: int = 1, size: tuple[int, int] = (320, 240)) -> Source:
    picture = photo(seed, size)
    return Source(f"p{seed}.png", encode(picture, "PNG"), picture)


# -- the edit suite -------------------------------------------------------------------------------


def test_suite_covers_the_issue() -> None:
    assert set(ISSUE_EDITS) <= set(EDITS)
    assert set(QUICK) <= set(EDITS)
    assert len({e.name for e in SUITE}) == len(SUITE)


@pytest.mark.parametrize("edit", [e.name for e in SUITE])
def test_every_edit_gives_a_decodable_file_deterministically(edit: str) -> None:
    source = _source()
    first = EDITS[edit].apply(source, edit_rng(7, source.name, edit))
    again = EDITS[edit].apply(source, edit_rng(7, source.name, edit))
    assert first == again
    with Image.open(io.BytesIO(first)) as image:
        image.load()
        assert image.width >= 40 and image.height >= 40


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_edit_geometry() -> None:
    source = _source(size=(400, 300))
    rng = np.random.default_rng(0)
    assert _size(EDITS["crop_10_centre"].apply(source, rng)) == (360, 270)
    assert _size(EDITS["crop_20_offcentre"].apply(source, rng)) == (320, 240)
    assert _size(EDITS["border_10_black"].apply(source, rng)) == (480, 360)
    assert _size(EDITS["down_0.25"].apply(source, rng)) == (100, 75)
    assert _size(EDITS["up_2"].apply(source, rng)) == (800, 600)
    assert _size(EDITS["rotate_90"].apply(source, rng)) == (300, 400)
    assert _size(EDITS["pad_square_black"].apply(source, rng)) == (400, 400)
    assert EDITS["original"].apply(source, rng) == source.data
    with Image.open(io.BytesIO(EDITS["border_10_black"].apply(source, rng))) as framed:
        assert framed.convert("RGB").getpixel((5, 5)) == (0, 0, 0)
    with Image.open(io.BytesIO(EDITS["jpeg_q30"].apply(source, rng))) as jpeg:
        assert jpeg.format == "JPEG"


def test_select() -> None:
    assert [e.name for e in select(["flip_v", "original"])] == ["original", "flip_v"]  # suite order
    assert select(None) == SUITE
    with pytest.raises(ValueError, match="unknown edit"):
        select(["sepia"])


# -- the split ------------------------------------------------------------------------------------


def test_split_is_deterministic_and_skips_non_images(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"img{i}.png").write_bytes(b"x")
    (tmp_path / "README.md").write_text("not an image")
    images = dataset.find_images(tmp_path)
    assert len(images) == 10
    first = dataset.split(images, 0.5, seed=3)
    assert first == dataset.split(list(reversed(images)), 0.5, seed=3)
    assert len(first.listed) == 5 and not set(first.listed) & set(first.unrelated)
    assert first != dataset.split(images, 0.5, seed=4)
    assert len(dataset.split(images, 0.01, seed=3).listed) == 1  # at least one on each side
    assert len(dataset.split(images, 0.99, seed=3).unrelated) == 1
    assert len(dataset.split(images, 0.5, seed=3, limit=4).listed) == 2
    with pytest.raises(ValueError):
        dataset.split(images[:1], 0.5, seed=3)


# -- the arithmetic -------------------------------------------------------------------------------


def test_hamming_agrees_with_hash_distance() -> None:
    rng = np.random.default_rng(5)
    queries = rng.integers(0, 256, (7, 32), dtype=np.uint8)
    entries = rng.integers(0, 256, (600, 32), dtype=np.uint8)  # over one 512-row block
    matrix = distances.hamming(queries, entries)
    for q in (0, 6):
        for e in (0, 599):
            expected = Hash(Algorithm.PDQ, queries[q].tobytes()).distance(Hash(Algorithm.PDQ, entries[e].tobytes()))
            assert matrix[q, e] == expected


def test_largest_threshold_stops_at_the_first_breach() -> None:
    grid = np.arange(0, 6)
    false = metrics.FalseMatches(
        pair_rate=np.array([0, 0, 0.5e-4, 2e-4, 2e-4, 3e-4]), image_rate=np.array([0, 0, 0, 0.1, 0.1, 0.2]),
        photos=np.zeros(6), pairs=10_000, uploads=10, pictures=2,
    )
    recall = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]])
    sweep = metrics.Sweep(Algorithm.PHASH, "plain", grid, ["a", "b"], recall, np.array([3, 3]), false)
    assert metrics.largest_threshold(sweep, max_pair_rate=1e-4) == metrics.Choice(2, 0.4)
    assert metrics.largest_threshold(sweep, max_image_rate=0.0).threshold == 2
    assert metrics.largest_threshold(sweep, max_pair_rate=0.0).threshold == 1
    sweep.false.pair_rate[0] = 1.0
    assert metrics.largest_threshold(sweep, max_pair_rate=1e-4).threshold is None
    assert sweep.at(31) == 5 and sweep.at(2) == 2


def test_confirmation_rules() -> None:
    # (variants, pairs): one pair close under both hashes, one close under PDQ only.
    pdq = np.array([[10, 40, 200], [200, 200, 45]])
    phash = np.array([[2, 13, 30], [30, 30, 14]])
    assert confirm._matches(pdq, phash, confirm.TODAY).tolist() == [True, False, False]
    # the issue's literal rectangles sit inside today's rule: nothing changes
    literal = confirm.TODAY + ((96, 10), (31, 24))
    assert confirm._matches(pdq, phash, literal).tolist() == [True, False, False]
    # a joint limit matches a pair when one variant is within both limits
    assert confirm._matches(pdq, phash, confirm.TODAY + ((46, 14),)).tolist() == [True, True, True]
    assert confirm._matches(pdq, phash, confirm.TODAY + ((44, 14),)).tolist() == [True, True, False]


def test_tail_estimates() -> None:
    from scipy.special import ndtr
    from scipy.stats import multivariate_normal

    # the bivariate tail integral: independent case is the product, correlated as scipy computes it
    assert tails._bivariate_below(-2.0, -1.0, 0.0) == pytest.approx(ndtr(-2.0) * ndtr(-1.0), rel=1e-4)
    expected = multivariate_normal([0, 0], [[1, 0.4], [0.4, 1]]).cdf([-1.5, -1.0])
    assert tails._bivariate_below(-1.5, -1.0, 0.4) == pytest.approx(expected, rel=1e-4)
    pdq = tails.Fit(Algorithm.PDQ, mean=128.0, sd=8.0, minimum=90, pairs=1000)
    phash = tails.Fit(Algorithm.PHASH, mean=32.0, sd=4.0, minimum=15, pairs=1000)
    assert pdq.rate(127.5) == pytest.approx(0.5)
    t = pdq.threshold_for(1e-6)
    assert pdq.rate(t) <= 1e-6 < pdq.rate(t + 1)
    joint = tails.JointFit(pdq, phash, correlation=0.3)
    # a union of lower-left regions: inclusion-exclusion, and a region inside another adds nothing
    assert joint.union(((31, confirm.ANY), (confirm.ANY, 10))) == pytest.approx(
        pdq.rate(31) + phash.rate(10) - joint.both(31, 10))
    assert joint.union(((confirm.ANY, 10), (90, 10))) == pytest.approx(phash.rate(10))
    assert joint.both(90, 18) < min(pdq.rate(90), phash.rate(18))


# -- small real runs ------------------------------------------------------------------------------

SMALL_EDITS = ("original", "jpeg_q50", "crop_5_centre", "border_10_black", "screenshot")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for seed in range(6):
        picture = photo(seed, (400, 300) if seed % 3 else (300, 400))
        if seed % 2:
            (folder / f"photo{seed}.jpg").write_bytes(encode(picture, "JPEG", quality=92))
        else:
            (folder / f"photo{seed}.png").write_bytes(encode(picture, "PNG"))
    (folder / "notes.txt").write_text("skipped")
    return folder


@pytest.fixture(scope="module")
def in_process(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    options = Options(photo_folder, seed=2, workers=1, edits=SMALL_EDITS, progress=False)
    result = run(options)
    out = tmp_path_factory.mktemp("report")
    written = write_outputs(result, out, command="hashmatch eval PHOTOS --edits ...")
    return result, written, out


def test_run_in_process_measures_what_it_should(in_process) -> None:
    result, written, _ = in_process
    a = written.analysis
    assert not result.errors
    assert len(result.uploads) == 6 * len(SMALL_EDITS)
    assert len(result.split.listed) == 3 and len(result.split.unrelated) == 3
    assert written.crosscheck_ok and a.check.agreed > 0 and not a.check.computed_only and not a.check.index_only
    for algorithm in PERCEPTUAL:
        plain, variants = a.sweeps[(algorithm, "plain")], a.sweeps[(algorithm, "variants")]
        default = a.thresholds[algorithm]
        assert plain.recall_at("original", 0) == 1.0
        assert plain.recall_at("jpeg_q50", default) == 1.0
        # borders defeat every hash; the trimmed variant brings the picture back
        assert plain.recall_at("border_10_black", default) < 0.5
        assert variants.recall_at("border_10_black", default) == 1.0
        assert variants.recall_at("screenshot", default) == 1.0
        # generated photos are far apart: nothing unrelated matches at the defaults
        assert variants.false.image_rate[variants.at(default)] == 0
        assert plain.false.pairs == 3 * 3 * len(SMALL_EDITS)
        # at the largest threshold everything matches something
        assert plain.false.image_rate[-1] > 0 or algorithm is Algorithm.PDQ


def test_region_boxes_and_costs_are_recorded(in_process) -> None:
    result, written, _ = in_process
    framed = [u for u in result.uploads if u.job.edit == "border_10_black"]
    assert all(set(u.boxes) == {"trimmed"} and set(u.hashes) == {"image", "trimmed"} for u in framed)
    plain = [u for u in result.uploads if u.job.edit in ("original", "jpeg_q50")]
    assert all(not u.boxes and set(u.hashes) == {"image"} for u in plain)
    cost = written.analysis.cost
    assert cost is not None and cost.uploads == len(result.uploads)
    assert cost.with_regions == 12  # the border and screenshot uploads of all 6 photos
    assert cost.base_median_ms > 0 and cost.ratio_of_totals > 1.0


def test_report_csv_and_plots(in_process) -> None:
    _, written, out = in_process
    text = (out / "README.md").read_text()
    assert text.splitlines()[0] == "# Detection quality: perceptual hashes under edits"
    assert "```sh\nhashmatch eval PHOTOS --edits ...\n```" in text
    for heading in ("## The issue's goals", "## Recommendation", "## Region variants", "## Confirmation across",
                    "## Cross-check", "## Recall at each threshold", "## The edits"):
        assert heading in text
    assert "the numbers agree" in text
    for algorithm in PERCEPTUAL:
        rows = (out / f"recall_{algorithm.value}.csv").read_text().splitlines()
        grid = metrics.threshold_grid(algorithm)
        assert rows[0].split(",") == ["mode", "edit", "listed_uploads", *(str(t) for t in grid)]
        assert len(rows) == 1 + 2 * len(SMALL_EDITS)
        original = next(r for r in rows if r.startswith("plain,original,")).split(",")
        assert original[2] == "3" and set(original[3:]) == {"1.000"}
    grid = sum(len(metrics.threshold_grid(a)) for a in PERCEPTUAL)
    assert len((out / "false_matches.csv").read_text().splitlines()) == 1 + 2 * grid
    for name in [f"recall_vs_threshold_{a.value}.png" for a in PERCEPTUAL] + ["recall_vs_false_matches.png"]:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 600


def test_run_against_a_server_agrees_with_in_process(photo_folder: Path, in_process, server) -> None:
    local, local_written, _ = in_process
    options = Options(photo_folder, seed=2, workers=2, edits=("original", "border_10_black"),
                      server=server.address, progress=False)
    remote = run(options)
    assert not remote.errors
    analysis = write_outputs(remote, photo_folder.parent / "server-report", command="x", plots=False).analysis
    assert analysis.check.source == "server" and analysis.check.ok and analysis.check.agreed > 0
    # same bytes, same hashes: the server computes what the library does
    by_job = {(u.job.path, u.job.edit): u.hashes for u in local.uploads}
    for upload in remote.uploads:
        assert upload.hashes == by_job[(upload.job.path, upload.job.edit)]
    # and the temporary list is gone
    from hashmatch.client import Client

    with Client(server.address) as client:
        assert [l.name for l in client.list_lists() if l.name.startswith("eval-")] == []


def test_cli_runs_the_evaluation(photo_folder: Path, tmp_path: Path) -> None:
    # `hashmatch eval` replaces itself with `python -m hashmatch.evaluate`, as `serve` does.
    out = tmp_path / "report"
    command = [sys.executable, "-m", "hashmatch.client", "eval", str(photo_folder), "--edits", "original,jpeg_q50",
               "--workers", "1", "--no-progress", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"--edits original,jpeg_q50 --workers 1 --no-progress --out {out}" in (out / "README.md").read_text()
    assert "cross-check: agree" in done.stderr


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from hashmatch.evaluate.__main__ import main

    assert main(["/nonexistent", "--listed-fraction", "2"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["/nonexistent", "--workers", "1"]) == 1
    assert "not a folder" in capsys.readouterr().err
