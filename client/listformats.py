"""Hash lists as the industry ships them: the type names exchanges use, and telling a file's format.

Type names (case, ``-``, ``_`` and spaces ignored) -> :class:`Algorithm`:

- ours: ``pdq``, ``phash``, ``dhash``, ``ahash``, ``whash``, ``md5``, ``sha1``, ``sha256`` (and
  ``ALGORITHM_PDQ``, ``SHA-1``, ...);
- python-threatexchange / HMA signal types (``SignalType.get_name()``): ``pdq``, ``video_md5``,
  ``video_sha256``; their file digests are digests of the file's bytes, as ours;
- StopNCII's ``ImagePDQ`` and ``VideoMD5``; NCMEC's fingerprint names ``PDQ``, ``MD5``, ``SHA1``.

PhotoDNA (NCMEC's ``PDNA``, python-threatexchange's ``photodna``) is Microsoft's proprietary hash:
hashmatch can neither compute nor match it, so a file holding it is refused whole, naming its
first PhotoDNA line, rather than loaded without it (staff would believe the list complete). The
same goes for a PhotoDNA value (144 bytes: 288 hex digits, 192 base64 characters or 144
comma-separated numbers) given under any name. Signal types that are not image hashes (video
TMK+PDQF, URLs, text) are refused the same way, each with what it is.

Formats (``--format``), detected from the first line that is not blank or a ``#`` comment, then
from the suffix:

- ``csv``: our CSV, a header naming ``hash`` (and ``algorithm``, ``label``, ``id``, ``source``);
- ``threatexchange``: CSV with ``signal_type`` and ``signal`` (or ``signal_str``) columns, as HMA
  and ``threatexchange dataset -P --csv`` write (``collab`` is read as the source, ``tags`` as the
  label; a ``category`` of ``NEGATIVE_CLASS``, a signal marked harmless, is refused);
- ``jsonl``: one JSON object a line, with the CSV's names as keys;
- ``text``: one hash a line, or ``TYPE HASH`` a line as python-threatexchange's file exchange
  writes. A bare hash takes ``--algorithm``; without it, the file is read as PDQ when every bare
  hash is 64 hex digits (an HMA PDQ export) and refused otherwise.
"""

from __future__ import annotations

import base64
import binascii
import csv
import re
from pathlib import Path
from typing import Literal

from hashmatch.hashing.algorithms import Algorithm

Format = Literal["csv", "threatexchange", "jsonl", "text"]
FORMATS: tuple[Format, ...] = ("csv", "threatexchange", "jsonl", "text")

PHOTODNA_REFUSED = (
    "PhotoDNA is Microsoft's proprietary hash: hashmatch cannot compute or match it, so the file is "
    "refused whole and nothing was loaded. Remove the PhotoDNA rows (keep the PDQ, MD5 and SHA-1 ones) "
    "and load it again"
)


class PhotoDNARefused(ValueError):
    """A PhotoDNA type name or value: ``str()`` says why hashmatch refuses it."""


def _key(name: str) -> str:
    return re.sub(r"[-_\s]", "", name.strip().lower().removeprefix("algorithm_"))


# Normalised (see _key) exchange names -> ours. Our own names are looked up first.
_ALIASES: dict[str, Algorithm] = {
    "imagepdq": Algorithm.PDQ,  # StopNCII
    "videomd5": Algorithm.MD5,  # python-threatexchange / HMA, StopNCII
    "videosha256": Algorithm.SHA256,  # python-threatexchange
}

_PHOTODNA = {"photodna", "pdna"}

# Types exchanges carry that are not image hashes hashmatch computes: what each is.
_NOT_IMAGE_HASHES: dict[str, str] = {
    "videotmkpdqf": "a video hash (TMK+PDQF)",
    "tmkpdqf": "a video hash (TMK+PDQF)",
    "videotmk": "a video hash (TMK+PDQF)",
    "vpdq": "a video hash (vPDQ)",
    "videovpdq": "a video hash (vPDQ)",
    "videntifier": "a video fingerprint (Videntifier)",
    "netclean": "NetClean's proprietary hash",
    "url": "a URL signal",
    "urlmd5": "a URL signal",
    "rawtext": "a text signal",
    "text": "a text signal",
    "textmd5": "a text signal",
    "trendquery": "a text signal",
    "tlsh": "a document hash (TLSH)",
    "tlshpdf": "a document hash (TLSH)",
    "pdqocr": "PDQ combined with OCR text",
    "clip": "an image embedding (CLIP), not a hash",
}

KNOWN_NAMES = (
    ", ".join(a.value for a in Algorithm)
    + "; and the exchanges' ImagePDQ, VideoMD5, video_md5, video_sha256 (PhotoDNA/PDNA is refused)"
)


def algorithm_for_type(name: str) -> Algorithm:
    """A hash type name from a list file -> Algorithm. Raises PhotoDNARefused, or ValueError
    saying what the type is (or that it is unknown)."""
    key = _key(name)
    try:
        return Algorithm(key)
    except ValueError:
        pass
    if key in _ALIASES:
        return _ALIASES[key]
    if key in _PHOTODNA:
        raise PhotoDNARefused(f"hash type {name.strip()!r} is PhotoDNA. {PHOTODNA_REFUSED}")
    if key in _NOT_IMAGE_HASHES:
        raise ValueError(
            f"hash type {name.strip()!r} is {_NOT_IMAGE_HASHES[key]}: hashmatch matches images with "
            f"{', '.join(a.value for a in Algorithm)}; remove these rows"
        )
    raise ValueError(f"unknown algorithm or hash type {name.strip()!r} (known: {KNOWN_NAMES})")


# -- PhotoDNA values --------------------------------------------------------------------------------

PHOTODNA_BYTES = 144
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def looks_like_photodna(value: str) -> bool:
    """True for a 144-byte PhotoDNA hash as exchanged: 288 hex digits, base64, or 144 numbers.

    No hash hashmatch knows has any of these forms (the longest, PDQ and SHA-256, is 64 hex digits)."""
    text = value.strip()
    if len(text) == 2 * PHOTODNA_BYTES and _HEX.fullmatch(text):
        return True
    if len(text) == 4 * PHOTODNA_BYTES // 3 and _BASE64.fullmatch(text):
        try:
            return len(base64.b64decode(text, validate=True)) == PHOTODNA_BYTES
        except binascii.Error:
            return False
    if text.count(",") == PHOTODNA_BYTES - 1:
        parts = [p.strip() for p in text.split(",")]
        return all(p.isdigit() and int(p) <= 255 for p in parts)
    return False


# -- format detection -------------------------------------------------------------------------------

_DETECT_LIMIT = 64 * 1024  # bytes of a first line looked at: a header or a hash is far shorter


def first_line(path: str | Path) -> str | None:
    """The file's first line that is not blank or a ``#`` comment (at most 64 KiB of it), or None.

    Raises OSError (no such file, ...) and UnicodeDecodeError (not UTF-8 text)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        read = 0
        while read < 16 * _DETECT_LIMIT:
            line = f.readline(_DETECT_LIMIT)
            if not line:
                return None
            read += len(line)
            text = line.strip()
            if text and not text.startswith("#"):
                return text
    return None


def header_columns(line: str) -> list[str]:
    """A CSV header line's column names, lower case."""
    try:
        row = next(csv.reader([line]), [])
    except csv.Error:
        return []
    return [cell.strip().lower() for cell in row]


def detect_format(path: str | Path) -> Format:
    """The format of a list file, from its first line, then its suffix (see the module docstring).

    Raises OSError and UnicodeDecodeError as :func:`first_line`."""
    line = first_line(path)
    if line is not None:
        if line.startswith("{"):
            return "jsonl"
        columns = header_columns(line)
        if "signal_type" in columns:
            return "threatexchange"
        if "hash" in columns:
            return "csv"
        if _HEX.fullmatch(line) or looks_like_photodna(line):
            return "text"  # a bare hash, whatever the suffix says
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "text"
