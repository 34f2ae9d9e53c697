"""Lists as the industry ships them (issue 7): ThreatExchange/HMA exports, StopNCII and NCMEC type
names, PhotoDNA refused, and SHA-1 as an exact digest from the upload's bytes to the match.

Every sample file is written by its test; every load goes through ``hashmatch lists load`` against
a real server, and what arrived is read back with ExportHashes or found by MatchImage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any, Callable

import pytest
from imagegen import encode, photo

from hashmatch.client import Client, HashEntry
from hashmatch.client.cli import main
from hashmatch.client.errors import InvalidArgument
from hashmatch.client.hashfiles import HashFileError, HashFileReader
from hashmatch.client.listformats import algorithm_for_type, detect_format, looks_like_photodna
from hashmatch.hashing.algorithms import DEFAULT_ALGORITHMS, Algorithm, Hash
from hashmatch.index import HashLists, NewEntry, SQLiteStore

PDQ, MD5, SHA1, SHA256, PHASH = Algorithm.PDQ, Algorithm.MD5, Algorithm.SHA1, Algorithm.SHA256, Algorithm.PHASH

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(server: Any, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("lists", "load", ...)`` -> (exit code, stdout, stderr), against the fixture server."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--server", server.address, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def client(server: Any):
    with Client(server.address) as c:
        yield c


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return encode(photo(11), "JPEG", quality=92)


def exported(client: Client, name: str, ids: bool = False) -> set[tuple]:
    """(algorithm, hash, label[, id]) of every entry of a list, as ExportHashes returns them.
    Entries loaded without an id get one from the server: compare ids only where files give them."""
    return {(e.algorithm, e.hash, e.label or "", *((e.id,) if ids else ())) for e in client.export_hashes(name)}


def hexes(n: int, digits: int) -> list[str]:
    return [secrets.token_hex(digits // 2) for _ in range(n)]


def photodna_hex() -> str:
    return secrets.token_hex(144)


# -- SHA-1: hashed, listed, matched ---------------------------------------------------------------

def test_sha1_is_computed_from_the_uploaded_bytes(client: Client, jpeg: bytes) -> None:
    result = client.hash_image(jpeg, ["sha1", "md5"])
    assert [(h.algorithm, h.value) for h in result.hashes] == [
        (SHA1, hashlib.sha1(jpeg).hexdigest()),
        (MD5, hashlib.md5(jpeg).hexdigest()),
    ]
    assert len(result.get(SHA1).value) == 40 and result.get(SHA1).quality is None
    # HashImage's defaults stay the four documented ones.
    assert [h.algorithm for h in client.hash_image(jpeg).hashes] == list(DEFAULT_ALGORITHMS)
    info = client.create_list("digests")
    assert info.thresholds[SHA1] == 0


def test_sha1_lists_are_matched_exactly_by_match_image(client: Client, jpeg: bytes) -> None:
    client.create_list("ncmec")
    # No list holds SHA-1 yet: MatchImage computes the documented four.
    assert [h.algorithm for h in client.match_image(jpeg).hashes] == list(DEFAULT_ALGORITHMS)

    digest = hashlib.sha1(jpeg).hexdigest()
    client.upload_hashes("ncmec", [HashEntry("sha1", digest.upper(), label="A1", id="n-1")])
    assert exported(client, "ncmec", ids=True) == {(SHA1, digest, "A1", "n-1")}

    result = client.match_image(jpeg)
    assert [h.algorithm for h in result.hashes] == [*DEFAULT_ALGORITHMS, SHA1]
    assert [(m.list_name, m.entry_id, m.label, m.algorithm, m.distance, m.threshold) for m in result.matches] == [
        ("ncmec", "n-1", "A1", SHA1, 0, 0)
    ]
    assert result.hashes[result.matches[0].query_index].value == digest
    # Any other byte: no match (a digest is exact), and asking for algorithms means just those.
    other = encode(photo(11), "JPEG", quality=91)
    assert not client.match_image(other).matched
    assert [h.algorithm for h in client.match_image(jpeg, algorithms=["pdq"]).hashes] == [PDQ]
    assert client.match_hashes([("sha1", digest)])[0].entry_id == "n-1"

    # The hex form is exact: 40 digits, and a digest's threshold is 0.
    with pytest.raises(InvalidArgument, match="SHA1 hash must be 40 hex digits, got 39"):
        client.upload_hashes("ncmec", [HashEntry("sha1", digest[:-1])])
    with pytest.raises(InvalidArgument):
        client.update_list("ncmec", thresholds={"sha1": 1})


def test_sha1_survives_a_restart_from_the_store_and_from_the_snapshot(tmp_path: Path) -> None:
    """160 bits is not a whole number of 64-bit words: the index pads it, in every path."""
    path = tmp_path / "s.sqlite3"
    values = [secrets.token_bytes(20) for _ in range(50)]
    lists = HashLists(SQLiteStore(path))
    lists.create_list("l")
    lists.add_entries("l", [NewEntry(SHA1, v, entry_id=f"e{i}") for i, v in enumerate(values)])
    queries = [Hash(SHA1, v) for v in values] + [Hash(SHA1, bytes(20))]
    expected = {(f"e{i}", 0) for i in range(50)}
    assert {(h.entry_id, h.distance) for h in lists.match(queries).hits} == expected
    lists.close()  # writes the snapshot
    for use_snapshot, source in ((True, "snapshot"), (False, "store")):
        lists = HashLists(SQLiteStore(path), use_snapshot=use_snapshot)
        assert lists.startup["source"] == source
        assert {(h.entry_id, h.distance) for h in lists.match(queries).hits} == expected
        lists.close()


# -- every format, detected and loaded ----------------------------------------------------------

def test_threatexchange_csv_as_hma_writes_it(run: Run, client: Client, tmp_path: Path) -> None:
    pdq, md5 = hexes(2, 64), hexes(1, 32)
    path = tmp_path / "bank-export.csv"
    path.write_text(f"signal_type,signal\npdq,{pdq[0]}\nPDQ,{pdq[1]}\n\nvideo_md5,{md5[0]}\n")
    assert detect_format(path) == "threatexchange"
    client.create_list("hma")
    code, out, err = run("lists", "load", "hma", str(path), "--label", "bank-1")
    assert code == 0, err
    assert "received 3, added 3" in out
    assert exported(client, "hma") == {(PDQ, pdq[0], "bank-1"), (PDQ, pdq[1], "bank-1"), (MD5, md5[0], "bank-1")}


def test_threatexchange_dataset_csv_with_collab_category_and_tags(run: Run, client: Client, tmp_path: Path) -> None:
    """``threatexchange dataset -P --csv``: collab,signal_type,signal_str,category,tags."""
    pdq, sha256 = hexes(1, 64), hexes(1, 64)
    path = tmp_path / "dataset.txt"  # the content says what it is, whatever the suffix
    path.write_text(
        "collab,signal_type,signal_str,category,tags\n"
        f"Sample Data,pdq,{pdq[0]},POSITIVE_CLASS,terror violence\n"
        f"Sample Data,video_sha256,{sha256[0]},INVESTIGATION_SEED,\n"
    )
    assert detect_format(path) == "threatexchange"
    client.create_list("tx")
    code, _, err = run("lists", "load", "tx", str(path))
    assert code == 0, err
    assert exported(client, "tx") == {(PDQ, pdq[0], "terror violence"), (SHA256, sha256[0], "")}


def test_hma_pdq_export_one_hash_a_line_is_read_as_pdq(run: Run, client: Client, tmp_path: Path) -> None:
    pdq = hexes(3, 64)
    path = tmp_path / "pdq.csv"  # HMA's download is named .csv but holds bare hashes
    path.write_text("\n".join(pdq) + "\n")
    assert detect_format(path) == "text"
    client.create_list("pdq-only")
    code, out, err = run("lists", "load", "pdq-only", str(path))
    assert code == 0, err
    assert "read as PDQ" in err and "--algorithm" in err
    assert exported(client, "pdq-only") == {(PDQ, h, "") for h in pdq}
    # --algorithm says otherwise: the same 64-digit lines are SHA-256 digests.
    client.create_list("sha-only")
    code, _, err = run("lists", "load", "sha-only", str(path), "--algorithm", "sha256")
    assert code == 0 and "read as PDQ" not in err, err
    assert {a for a, *_ in exported(client, "sha-only")} == {SHA256}


def test_threatexchange_file_exchange_type_and_hash_a_line(run: Run, client: Client, tmp_path: Path) -> None:
    """python-threatexchange's local file exchange: ``SIGNAL_TYPE SIGNAL`` a line."""
    pdq, md5 = hexes(1, 64), hexes(1, 32)
    path = tmp_path / "signals.txt"
    path.write_text(f"# fetched\npdq {pdq[0]}\nvideo_md5 {md5[0]}\n")
    assert detect_format(path) == "text"
    client.create_list("te-file")
    code, _, err = run("lists", "load", "te-file", str(path))
    assert code == 0, err
    assert exported(client, "te-file") == {(PDQ, pdq[0], ""), (MD5, md5[0], "")}


def test_ncmec_type_names_in_our_csv_and_a_real_match(run: Run, client: Client, jpeg: bytes, tmp_path: Path) -> None:
    """NCMEC fingerprints as staff tabulate them: MD5, SHA1, PDQ by name; matched by an upload."""
    hashes = client.hash_image(jpeg, ["pdq", "md5", "sha1"])
    path = tmp_path / "ncmec.csv"
    path.write_text(
        "hash,algorithm,label,id\n"
        f"{hashes.get(MD5).value},MD5,A1,image1\n"
        f"{hashes.get(SHA1).value.upper()},SHA1,A1,image1\n"
        f"{hashes.get(PDQ).value},PDQ,A1,image1\n"
    )
    assert detect_format(path) == "csv"
    client.create_list("ncmec")
    code, out, err = run("lists", "load", "ncmec", str(path))
    assert code == 0, err
    assert exported(client, "ncmec", ids=True) == {
        (MD5, hashes.get(MD5).value, "A1", "image1"),
        (SHA1, hashes.get(SHA1).value, "A1", "image1"),
        (PDQ, hashes.get(PDQ).value, "A1", "image1"),
    }
    matched = client.match_image(jpeg, lists=["ncmec"])
    assert {(m.algorithm, m.entry_id, m.label, m.distance) for m in matched.matches} == {
        (MD5, "image1", "A1", 0), (SHA1, "image1", "A1", 0), (PDQ, "image1", "A1", 0),
    }


def test_stopncii_type_names_in_json_lines(run: Run, client: Client, tmp_path: Path) -> None:
    pdq, md5 = hexes(1, 64), hexes(1, 32)
    path = tmp_path / "stopncii.data"
    path.write_text(
        json.dumps({"hash": pdq[0], "algorithm": "ImagePDQ", "id": "case-1", "source": "StopNCII"}) + "\n"
        + json.dumps({"hash": md5[0], "algorithm": "VideoMD5", "id": "case-2"}) + "\n"
    )
    assert detect_format(path) == "jsonl"
    client.create_list("ncii")
    code, _, err = run("lists", "load", "ncii", str(path))
    assert code == 0, err
    assert exported(client, "ncii", ids=True) == {(PDQ, pdq[0], "", "case-1"), (MD5, md5[0], "", "case-2")}


def test_format_flag_overrides_detection(run: Run, client: Client, tmp_path: Path) -> None:
    sha1 = hexes(2, 40)
    path = tmp_path / "digests.csv"
    path.write_text("\n".join(sha1) + "\n")
    client.create_list("forced")
    # Detected as text (bare hashes), which needs --algorithm for 40-digit lines: exit 2.
    code, out, err = run("lists", "load", "forced", str(path))
    assert code == 2 and out == ""
    assert f"{path}:1: " in err and "--algorithm" in err and "64 hex digits" in err
    # Forced to CSV, the first line is a header without a 'hash' column.
    code, _, err = run("lists", "load", "forced", str(path), "--format", "csv", "--algorithm", "sha1")
    assert code == 1 and f"{path}:1: " in err and "no 'hash' column" in err
    code, _, err = run("lists", "load", "forced", str(path), "--format", "text", "--algorithm", "sha-1")
    assert code == 0, err
    assert exported(client, "forced") == {(SHA1, h, "") for h in sha1}


# -- refusals: whole file, named line ---------------------------------------------------------------

def _refused(run: Run, client: Client, path: Path, *extra: str, code: int = 1) -> str:
    if not any(hl.name == "strict" for hl in client.list_lists()):
        client.create_list("strict")
    got, out, err = run("lists", "load", "strict", str(path), *extra)
    assert got == code and out == "", err
    assert client.get_list("strict").entry_count == 0  # all or nothing
    return err


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("ncmec.csv", "hash,algorithm\n{md5},MD5\n{sha1},SHA1\n{pdna},PDNA\n{md5b},MD5\n", 4),
        ("bank.csv", "signal_type,signal\npdq,{pdq}\nphotodna,{pdna}\n", 3),
        ("signals.txt", "pdq {pdq}\nPhotoDNA {pdna}\n", 2),
        ("cases.jsonl", '{{"hash": "{pdq}", "algorithm": "pdq"}}\n{{"hash": "{pdna}", "algorithm": "Photo-DNA"}}\n', 2),
    ],
)
def test_photodna_by_type_name_refuses_the_whole_file(
    run: Run, client: Client, tmp_path: Path, name: str, content: str, line: int
) -> None:
    path = tmp_path / name
    path.write_text(content.format(
        md5=hexes(1, 32)[0], md5b=hexes(1, 32)[0], sha1=hexes(1, 40)[0], pdq=hexes(1, 64)[0], pdna=photodna_hex()
    ))
    err = _refused(run, client, path)
    assert f"{path}:{line}: " in err and "PhotoDNA" in err and "proprietary" in err
    assert "cannot compute or match" in err


def test_photodna_values_are_recognised_under_any_name(run: Run, client: Client, tmp_path: Path) -> None:
    pdq = hexes(2, 64)
    as_hex = tmp_path / "hashes.txt"
    as_hex.write_text(f"{pdq[0]}\n{pdq[1]}\n{photodna_hex()}\n")
    err = _refused(run, client, as_hex, "--algorithm", "pdq")
    assert f"{as_hex}:3: " in err and "PhotoDNA hash (144 bytes)" in err and "proprietary" in err
    # Without --algorithm too (not "needs --algorithm": the line is recognised for what it is).
    err = _refused(run, client, as_hex)
    assert f"{as_hex}:3: " in err and "PhotoDNA" in err

    as_base64 = tmp_path / "pdna.csv"
    as_base64.write_text("hash,algorithm\n%s,pdq\n" % base64.b64encode(secrets.token_bytes(144)).decode())
    err = _refused(run, client, as_base64)
    assert f"{as_base64}:2: " in err and "PhotoDNA" in err

    numbers = ",".join(str(b) for b in secrets.token_bytes(144))
    assert looks_like_photodna(numbers) and looks_like_photodna(numbers.replace(",", ", "))
    assert not any(looks_like_photodna(h) for h in (pdq[0], hexes(1, 40)[0], "ab" * 8))


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("signal_type,signal\npdq,{pdq}\nfoo,{pdq}\n", 3, "unknown algorithm or hash type 'foo'"),
        ("signal_type,signal\nvideo_tmk_pdqf,{pdq}\n", 2, "'video_tmk_pdqf' is a video hash (TMK+PDQF)"),
        ("signal_type,signal\nurl,https://example.com/\n", 2, "'url' is a URL signal"),
        ("collab,signal_type,signal_str,category\nc,pdq,{pdq},POSITIVE_CLASS\nc,pdq,{pdq},NEGATIVE_CLASS\n",
         3, "NEGATIVE_CLASS"),
        ("signal_type,signal\n,{pdq}\n", 2, "no algorithm"),
        ("signal_type,label\npdq,x\n", 1, "no 'signal' or 'signal_str' or 'hash' column"),
    ],
)
def test_threatexchange_rows_refused_with_their_line(
    run: Run, client: Client, tmp_path: Path, content: str, line: int, reason: str
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(content.format(pdq=hexes(1, 64)[0]))
    err = _refused(run, client, path)
    assert f"{path}:{line}: " in err and reason in err, err


def test_text_type_lines_refused_with_their_line(run: Run, client: Client, tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    path.write_text(f"pdq {hexes(1, 64)[0]}\nsha512 {hexes(1, 64)[0]}\n")
    err = _refused(run, client, path)
    assert f"{path}:2: unknown algorithm or hash type 'sha512'" in err
    path.write_text(f"pdq {hexes(1, 64)[0]} extra\n")
    err = _refused(run, client, path)
    assert f"{path}:1: " in err and "separated by a space" in err
    # Bare hashes that are not all PDQ-shaped: --algorithm is a missing option (exit 2), line named.
    path.write_text(f"{hexes(1, 64)[0]}\n{hexes(1, 32)[0]}\n")
    err = _refused(run, client, path, code=2)
    assert f"{path}:2: " in err and "--algorithm" in err and "32 characters" in err


# -- the name table ---------------------------------------------------------------------------------

def test_type_names_map_case_insensitively() -> None:
    cases = {
        "pdq": PDQ, "PDQ": PDQ, "ImagePDQ": PDQ, "ALGORITHM_PDQ": PDQ,
        "md5": MD5, "MD5": MD5, "Md5": MD5, "video_md5": MD5, "VideoMD5": MD5,
        "sha1": SHA1, "SHA1": SHA1, "SHA-1": SHA1, "Sha1": SHA1,
        "sha256": SHA256, "SHA-256": SHA256, "video_sha256": SHA256,
        "phash": PHASH, "pHash": PHASH,
    }
    assert {name: algorithm_for_type(name) for name in cases} == cases
    for name in ("PDNA", "pdna", "PhotoDNA", "photo_dna"):
        with pytest.raises(ValueError, match="PhotoDNA is Microsoft's proprietary hash"):
            algorithm_for_type(name)


def test_reader_streams_every_format_with_lines(tmp_path: Path) -> None:
    """The reader alone (no server): entries keep their file lines, in every format."""
    pdq = hexes(2, 64)
    files = {
        "a.csv": (f"hash,algorithm\n{pdq[0]},pdq\n\n{pdq[1]},pdq\n", [2, 4]),
        "b.csv": (f"signal_type,signal\npdq,{pdq[0]}\npdq,{pdq[1]}\n", [2, 3]),
        "c.jsonl": (json.dumps({"hash": pdq[0], "algorithm": "pdq"}) + "\n\n"
                    + json.dumps({"hash": pdq[1], "algorithm": "pdq"}) + "\n", [1, 3]),
        "d.txt": (f"# PDQ\n{pdq[0]}\n\n{pdq[1]}\n", [2, 4]),
        "e.txt": (f"pdq {pdq[0]}\n# x\npdq {pdq[1]}\n", [1, 3]),
    }
    for name, (content, lines) in files.items():
        path = tmp_path / name
        path.write_text(content)
        entries = list(HashFileReader(path))
        assert [(e.algorithm, e.hash, e.line) for e in entries] == [(PDQ, h, n) for h, n in zip(pdq, lines)], name
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"\xff\xfe" + b"ab" * 40)
    with pytest.raises(HashFileError, match="not UTF-8"):
        HashFileReader(bad)
