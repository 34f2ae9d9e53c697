"""The staff CLI against a real server: in process through main(), and as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from imagegen import encode, photo, variants

from hashmatch.client import Client
from hashmatch.client.cli import main
from hashmatch.client.hashfiles import HashFileError, HashFileReader
from hashmatch.hashing.algorithms import Algorithm

ROOT = Path(__file__).resolve().parents[1]
PDQ, PHASH = Algorithm.PDQ, Algorithm.PHASH

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(server: Any, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("lists", "ls")`` -> (exit code, stdout, stderr), against the fixture server."""

    def invoke(*args: str, server_option: bool = True) -> tuple[int, str, str]:
        capsys.readouterr()  # drop anything earlier
        argv = ["--server", server.address, *args] if server_option else list(args)
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def run_json(run: Run, *args: str) -> Any:
    code, out, err = run("--json", *args)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    files = {
        "a": folder / "a.jpg",
        "a_small": folder / "a_small.png",
        "b": folder / "b.jpg",
        "c": folder / "c.png",
        "bad": folder / "bad.jpg",
    }
    files["a"].write_bytes(encode(photo(3), "JPEG", quality=95))
    files["a_small"].write_bytes(variants(photo(3))["half_png"])
    files["b"].write_bytes(encode(photo(4), "JPEG", quality=95))
    files["c"].write_bytes(encode(photo(40), "PNG"))
    files["bad"].write_bytes(b"this is not an image")
    return files


def hashes_of(server: Any, path: Path) -> dict[Algorithm, str]:
    with Client(server.address) as c:
        return {h.algorithm: h.value for h in c.hash_image(path).hashes}


# -- lists: create / ls / show / update / rm --

def test_lists_crud(run: Run) -> None:
    code, out, err = run("lists", "create", "known", "--description", "known bad", "--threshold", "pdq=20",
                         "--threshold", "PHASH=8")
    assert code == 0, err
    assert re.search(r"^name\s+known$", out, re.M)
    assert re.search(r"^description\s+known bad$", out, re.M)
    assert re.search(r"^enabled\s+yes$", out, re.M)
    assert re.search(r"^thresholds\s+.*pdq 20, phash 8", out, re.M)
    assert re.search(r"^entries\s+0$", out, re.M)

    code, out, err = run("lists", "create", "quiet", "--disabled")
    assert code == 0 and re.search(r"^enabled\s+no$", out, re.M)

    code, out, _ = run("lists", "ls")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["NAME", "ENABLED", "ENTRIES"]
    assert [row.split()[:3] for row in rows] == [["known", "yes", "0"], ["quiet", "no", "0"]]
    # aligned: every row's second column starts where the header's does
    assert {row.index(row.split()[1]) for row in rows} == {header.index("ENABLED")}

    listed = run_json(run, "lists", "ls")
    assert [(item["name"], item["enabled"], item["entry_count"]) for item in listed] == [
        ("known", True, 0),
        ("quiet", False, 0),
    ]
    assert listed[0]["thresholds"]["pdq"] == 20 and listed[0]["thresholds"]["md5"] == 0

    shown = run_json(run, "lists", "show", "known")
    assert shown["description"] == "known bad"
    assert shown["thresholds"] == {"pdq": 20, "phash": 8, "dhash": 10, "ahash": 10, "whash": 10, "md5": 0, "sha1": 0, "sha256": 0}
    assert shown["created"].endswith("Z")

    updated = run_json(run, "lists", "update", "known", "--description", "renamed", "--threshold", "phash=6",
                       "--disable")
    assert (updated["description"], updated["enabled"]) == ("renamed", False)
    assert (updated["thresholds"]["pdq"], updated["thresholds"]["phash"]) == (20, 6)
    code, out, _ = run("lists", "update", "known", "--enable")
    assert code == 0 and re.search(r"^enabled\s+yes$", out, re.M)

    code, out, _ = run("lists", "rm", "quiet")
    assert code == 0 and out.strip() == "deleted list quiet (0 entries removed)"
    assert [item["name"] for item in run_json(run, "lists", "ls")] == ["known"]


def test_lists_failures_exit_1_naming_the_code(run: Run) -> None:
    code, out, err = run("lists", "show", "missing")
    assert code == 1 and out == ""
    assert "NOT_FOUND" in err and "missing" in err

    assert run("lists", "create", "twice")[0] == 0
    code, _, err = run("lists", "create", "twice")
    assert code == 1 and "ALREADY_EXISTS" in err

    code, _, err = run("lists", "create", "-bad-name")
    assert code in (1, 2)  # argparse may read the leading dash as an option
    code, _, err = run("lists", "create", "bad name!")
    assert code == 1 and "INVALID_ARGUMENT" in err

    code, out, err = run("--json", "lists", "rm", "missing")
    assert code == 1 and "NOT_FOUND" in err
    assert json.loads(out)["error"]["code"] == "NOT_FOUND"
    assert json.loads(out)["error"]["reason"] == "LIST_NOT_FOUND"


def test_usage_errors_exit_2(run: Run) -> None:
    assert run("frobnicate")[0] == 2
    assert run("lists")[0] == 2
    code, _, err = run("lists", "create", "x", "--threshold", "pdq")
    assert code == 2 and "ALG=N" in err
    code, _, err = run("lists", "create", "x", "--threshold", "nosuch=3")
    assert code == 2 and "unknown algorithm" in err
    assert run("lists", "update", "x", "--enable", "--disable")[0] == 2
    code, _, err = run("lists", "update", "x")
    assert code == 2 and "nothing to change" in err
    assert run("lists", "remove-hashes", "x")[0] == 2
    assert run("lists", "remove-hashes", "x", "--hash", "nocolon")[0] == 2
    assert run("hash")[0] == 2
    assert run("--timeout", "-1", "lists", "ls")[0] == 2
    assert run("hash", "a.jpg", "--algorithm", "nope")[0] == 2
    # nothing was created by any of these
    assert run_json(run, "lists", "ls") == []


def test_help_exits_0(run: Run) -> None:
    code, out, _ = run("--help")
    assert code == 0 and "lists" in out and "match" in out
    code, out, _ = run("lists", "load", "--help")
    assert code == 0 and "--batch-size" in out


# -- hash and match --

def test_hash_prints_a_table_and_json(run: Run, server: Any, images: dict[str, Path]) -> None:
    expected = hashes_of(server, images["a"])
    code, out, err = run("hash", str(images["a"]))
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["FILE", "ALGORITHM", "HASH", "QUALITY"]
    assert [row.split()[1:3] for row in rows] == [[a.value, h] for a, h in expected.items()]
    assert all(row.split()[0] == str(images["a"]) for row in rows)
    assert rows[1].split()[3] == "-"  # pHash has no quality
    assert 0 <= int(rows[0].split()[3]) <= 100

    data = run_json(run, "hash", str(images["a"]), str(images["b"]), "--algorithm", "pdq", "-a", "phash,dhash")
    assert [item["file"] for item in data] == [str(images["a"]), str(images["b"])]
    first = data[0]
    assert [h["algorithm"] for h in first["hashes"]] == ["pdq", "phash", "dhash"]
    assert first["hashes"][0]["value"] == expected[PDQ]
    assert first["image"] == {"width": 640, "height": 480, "format": "JPEG", "frame_count": 1}


def test_hash_reports_bad_files_and_goes_on(run: Run, images: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "missing.jpg"
    code, out, err = run("hash", str(images["bad"]), str(images["a"]), str(missing))
    assert code == 1
    assert f"{images['bad']}: INVALID_ARGUMENT" in err
    assert str(missing) in err
    assert str(images["a"]) in out  # the good file was still hashed

    code, out, _ = run("--json", "hash", str(images["bad"]))
    assert code == 1
    assert json.loads(out)[0]["error"]["code"] == "INVALID_ARGUMENT"
    assert json.loads(out)[0]["error"]["reason"] == "INVALID_IMAGE"


def load_known(run: Run, server: Any, images: dict[str, Path], tmp_path: Path) -> Path:
    """A list 'known' holding the PDQ and pHash of image a, loaded from a CSV file."""
    expected = hashes_of(server, images["a"])
    csv_file = tmp_path / "known.csv"
    csv_file.write_text(
        "Hash,Algorithm,Label,ID\n"
        f"{expected[PDQ]},pdq,violence,entry-a\n"
        f"{expected[PHASH]},PHASH,violence,entry-a\n"
    )
    assert run("lists", "create", "known")[0] == 0
    code, _, err = run("lists", "load", "known", str(csv_file))
    assert code == 0, err
    return csv_file


def test_match_found_and_not_found(run: Run, server: Any, images: dict[str, Path], tmp_path: Path) -> None:
    load_known(run, server, images, tmp_path)
    code, out, err = run("match", str(images["a_small"]), str(images["b"]))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["FILE", "LIST", "ENTRY", "ID", "LABEL", "ALGORITHM", "DISTANCE", "THRESHOLD", "ORIENTATION"]
    matches = [line.split() for line in lines[1:] if not line.endswith("no match")]
    assert {tuple(m[:4]) for m in matches} == {(str(images["a_small"]), "known", "entry-a", "violence")}
    assert {m[4] for m in matches} == {"pdq", "phash"}
    for m in matches:
        assert int(m[5]) <= int(m[6])
    assert f"{images['b']}: no match" in lines

    data = run_json(run, "match", str(images["a"]), str(images["c"]), "--list", "known")
    assert [item["matched"] for item in data] == [True, False]
    assert {(m["entry_id"], m["label"], m["distance"]) for m in data[0]["matches"]} == {("entry-a", "violence", 0)}
    assert data[1]["matches"] == []

    code, out, _ = run("match", str(images["b"]))
    assert code == 0 and out.strip() == f"{images['b']}: no match"

    code, _, err = run("match", str(images["a"]), "--list", "missing")
    assert code == 1 and "NOT_FOUND" in err


# -- load --

def test_load_csv_jsonl_and_text(run: Run, server: Any, images: dict[str, Path], tmp_path: Path) -> None:
    a, b = hashes_of(server, images["a"]), hashes_of(server, images["b"])
    assert run("lists", "create", "bulk")[0] == 0

    csv_file = tmp_path / "a.csv"
    # Header names in any case and order, extra columns ignored, --algorithm for the empty cell.
    csv_file.write_text(
        "\ufeffnotes,HASH,algorithm,label,source\n"
        f"first,{a[PDQ]},pdq,cat-1,feed-x\n"
        f"second,{a[PHASH]},,cat-1,\n"
        "\n"
    )
    code, out, err = run("lists", "load", "bulk", str(csv_file), "--algorithm", "phash", "--source", "default-src")
    assert code == 0, err
    assert "received 2, added 2, unchanged 0" in out
    assert "bulk now has 2 entries (pdq 1, phash 1)" in out

    jsonl_file = tmp_path / "b.ndjson"
    jsonl_file.write_text(
        json.dumps({"hash": b[PDQ], "algorithm": "pdq", "id": "b-entry", "label": "cat-2"}) + "\n\n"
        + json.dumps({"Hash": b[PHASH], "Algorithm": "phash", "ID": "b-entry"}) + "\n"
        + json.dumps({"hash": a[PDQ], "algorithm": "pdq"}) + "\n"
    )
    result = run_json(run, "lists", "load", "bulk", str(jsonl_file), "--label", "fallback")
    assert (result["received"], result["added"], result["unchanged"]) == (3, 2, 1)
    assert {a: n for a, n in result["list"]["entry_counts"].items() if n} == {"pdq": 2, "phash": 2}
    assert result["file"] == str(jsonl_file)

    text_file = tmp_path / "more.txt"
    text_file.write_text(f"# pHashes from elsewhere\n\n{'0f' * 8}\n  {'1e' * 8}  \n{a[PHASH].upper()}\n")
    code, out, err = run("lists", "load", "bulk", str(text_file), "--algorithm", "phash", "--batch-size", "1")
    assert code == 0, err
    assert "received 3, added 2, unchanged 1" in out
    code, _, err = run("lists", "load", "bulk", str(text_file))
    assert code == 2 and "--algorithm" in err

    # The loaded ids and labels are the ones matches report: --label fills in missing labels,
    # and reloading a listed hash with a label relabels it.
    data = run_json(run, "match", str(images["b"]), "--list", "bulk")
    assert {(m["algorithm"], m["entry_id"], m["label"]) for m in data[0]["matches"]} == {
        ("pdq", "b-entry", "cat-2"),
        ("phash", "b-entry", "fallback"),
    }
    data = run_json(run, "match", str(images["a"]), "--list", "bulk")
    assert ("pdq", "fallback") in {(m["algorithm"], m["label"]) for m in data[0]["matches"]}

    # --format overrides the extension.
    odd = tmp_path / "hashes.dat"
    odd.write_text(f"hash,algorithm\n{'2d' * 8},phash\n")
    code, out, err = run("lists", "load", "bulk", str(odd), "--format", "csv")
    assert code == 0 and "added 1" in out, err
    assert run_json(run, "lists", "show", "bulk")["entry_count"] == 7


@pytest.mark.parametrize(
    ("name", "content", "line", "reason"),
    [
        ("bad.jsonl", '{"hash": "%s", "algorithm": "phash"}\n\n{"hash": oops}\n' % ("ab" * 8), 3, "bad JSON"),
        ("bad.csv", "hash,algorithm\n%s,phash\n%s,nosuch\n" % ("ab" * 8, "cd" * 8), 3, "unknown algorithm"),
        ("bad2.csv", "hash,algorithm\n%s,phash\n,phash\n" % ("ab" * 8), 3, "empty hash"),
        ("bad3.csv", "label,algorithm\nx,phash\n", 1, "no 'hash' column"),
        ("bad4.jsonl", '{"hash": "%s", "algorithm": "phash"}\n["a list"]\n' % ("ab" * 8), 2, "JSON object"),
    ],
)
def test_load_checks_the_file_before_sending_anything(
    run: Run, tmp_path: Path, name: str, content: str, line: int, reason: str
) -> None:
    assert run("lists", "create", "strict")[0] == 0
    path = tmp_path / name
    path.write_text(content)
    code, out, err = run("lists", "load", "strict", str(path))
    assert code == 1 and out == ""
    assert f"{path}:{line}: " in err and reason in err
    assert run_json(run, "lists", "show", "strict")["entry_count"] == 0


def test_load_bad_hash_is_rejected_by_the_server_naming_the_line(run: Run, tmp_path: Path) -> None:
    assert run("lists", "create", "strict")[0] == 0
    path = tmp_path / "hashes.txt"
    path.write_text("# header comment\n" + "\n".join(f"{i:016x}" for i in range(1, 6)) + "\nnot-a-hash\n" + f"{7:016x}\n")
    code, out, err = run("lists", "load", "strict", str(path), "--algorithm", "phash", "--batch-size", "2")
    assert code == 1 and out == ""
    assert "INVALID_ARGUMENT" in err
    assert re.search(r"\b7\b", err), err  # the server names file line 7
    shown = run_json(run, "lists", "show", "strict")
    assert shown["entry_count"] == 0 and sum(shown["entry_counts"].values()) == 0


def test_load_into_a_missing_list_or_from_a_missing_file(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "h.txt"
    path.write_text(f"{1:016x}\n")
    code, _, err = run("lists", "load", "nowhere", str(path), "--algorithm", "phash")
    assert code == 1 and "NOT_FOUND" in err
    assert run("lists", "create", "here")[0] == 0
    code, _, err = run("lists", "load", "here", str(tmp_path / "absent.csv"))
    assert code == 1 and "absent.csv" in err


def test_hash_file_reader_streams_without_holding_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("".join(f"{i:016x}\n" for i in range(5000)))
    reader = HashFileReader(path, algorithm=PHASH)
    entries = iter(reader)
    first = next(entries)
    assert (first.algorithm, first.hash, first.line) == (PHASH, "0" * 16, 1)
    assert reader.count() == 5000
    multiline = tmp_path / "quoted.csv"
    multiline.write_text('hash,label,algorithm\n%s,"two\nlines",pdq\n%s,,pdq\n' % ("a" * 64, "b" * 64))
    assert [(e.line, e.label) for e in HashFileReader(multiline)] == [(2, "two\nlines"), (4, None)]
    no_algorithm = tmp_path / "no_algorithm.csv"
    no_algorithm.write_text("hash\nab\n")
    with pytest.raises(HashFileError, match=r"no_algorithm\.csv:1: .*--algorithm"):
        list(HashFileReader(no_algorithm))


def test_load_shows_a_progress_bar_on_a_terminal(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert run("lists", "create", "big")[0] == 0
    path = tmp_path / "many.txt"
    path.write_text("".join(f"{i:016x}\n" for i in range(2500)))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, _ = run("lists", "load", "big", str(path), "--algorithm", "phash", "--batch-size", "1000")
    assert code == 0
    assert "received 2500, added 2500" in out
    bar = terminal.getvalue()
    assert "uploading" in bar and "2500/2500" in bar and "entries" in bar


# -- remove-hashes --

def test_remove_hashes_by_id_and_by_hash(run: Run, server: Any, images: dict[str, Path], tmp_path: Path) -> None:
    load_known(run, server, images, tmp_path)
    a = hashes_of(server, images["a"])
    code, out, err = run("lists", "remove-hashes", "known", "--hash", f"pdq:{a[PDQ]}")
    assert code == 0, err
    assert out.strip() == "removed 1 entry from known"
    assert run_json(run, "lists", "show", "known")["entry_counts"].get("pdq", 0) == 0
    assert run_json(run, "lists", "remove-hashes", "known", "--id", "entry-a") == {"list": "known", "removed": 1}
    assert run_json(run, "lists", "show", "known")["entry_count"] == 0
    code, out, _ = run("match", str(images["a"]))
    assert code == 0 and out.strip().endswith("no match")
    code, _, err = run("lists", "remove-hashes", "known", "--hash", "pdq:zz")
    assert code == 1 and "INVALID_ARGUMENT" in err


# -- server address and environment --

def test_server_from_the_environment(run: Run, server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASHMATCH_SERVER", server.address)
    assert run("lists", "create", "via-env", server_option=False)[0] == 0
    # global options may also follow the command
    code, out, _ = run("lists", "ls", "--json", "--server", server.address, server_option=False)
    assert code == 0 and [item["name"] for item in json.loads(out)] == ["via-env"]


def test_unreachable_server_exits_1_with_unavailable(run: Run) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run("--server", f"127.0.0.1:{port}", "--timeout", "5", "lists", "ls", server_option=False)
    assert code == 1 and "UNAVAILABLE" in err and str(port) in err


# -- as real processes --

def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "hashmatch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hashmatch.client.cli"]


def test_cli_as_a_subprocess(server: Any, images: dict[str, Path], tmp_path: Path) -> None:
    env = {**os.environ, "HASHMATCH_SERVER": server.address}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli_command(), *args], capture_output=True, text=True, env=env, timeout=60)

    created = cli("--json", "lists", "create", "proc", "--threshold", "pdq=25")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["thresholds"]["pdq"] == 25

    text_file = tmp_path / "h.txt"
    with Client(server.address) as c:
        text_file.write_text(c.hash_image(images["a"], ["pdq"]).hashes[0].value + "\n")
    loaded = cli("lists", "load", "proc", str(text_file), "--algorithm", "pdq", "--label", "x")
    assert loaded.returncode == 0, loaded.stderr
    assert "added 1" in loaded.stdout
    assert loaded.stderr == ""  # no progress bar when stderr is not a terminal

    matched = cli("--json", "match", str(images["a_small"]))
    assert matched.returncode == 0
    assert json.loads(matched.stdout)[0]["matches"][0]["label"] == "x"

    missing = cli("lists", "show", "nope")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr and missing.stdout == ""
    assert cli("lists", "show").returncode == 2

    module = subprocess.run([sys.executable, "-m", "hashmatch.client", "--json", "lists", "ls"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert module.returncode == 0 and [x["name"] for x in json.loads(module.stdout)] == ["proc"]


def test_serve_execs_the_server_passing_every_argument(tmp_path: Path) -> None:
    data_dir = tmp_path / "served"
    proc = subprocess.Popen(
        [*cli_command(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--log-level", "WARNING", "--metrics", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        found = re.search(r"hashmatch listening on (\S+:\d+)", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        # The first start made an admin key (auth is on by default) and wrote it to the data folder.
        with Client(found.group(1), api_key=(data_dir / "admin.key").read_text().strip()) as c:
            c.create_list("served")
            assert [hl.name for hl in c.list_lists()] == ["served"]
        assert data_dir.is_dir()  # --data-dir reached the server untouched
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_serve_help_is_the_servers(tmp_path: Path) -> None:
    done = subprocess.run([*cli_command(), "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "--listen" in done.stdout and "--data-dir" in done.stdout
