"""Reading hash-list files into HashEntry, lazily, for ``lists load``.

Formats: our CSV and JSON Lines, ThreatExchange/HMA CSV, plain text (see
:mod:`hashmatch.client.listformats` for the formats, their detection and the type names read).

Each entry keeps its 1-based file line, so an error -- ours or the server's -- names the line.
Problems visible without the server (missing column, bad JSON, unknown or refused hash type,
empty hash) raise :class:`HashFileError` as ``FILE:LINE: reason``. Whether a hash's hex is right
is left to the server, which checks it against the algorithm's exact form and names the line too.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Iterator

from hashmatch.client.listformats import (
    FORMATS,
    PHOTODNA_REFUSED,
    Format,
    algorithm_for_type,
    looks_like_photodna,
)
from hashmatch.client.listformats import detect_format as _detect_format
from hashmatch.client.models import HashEntry
from hashmatch.hashing.algorithms import Algorithm

__all__ = ["FORMATS", "FIELDS", "Format", "HashFileError", "AlgorithmNeeded", "HashFileReader", "detect_format"]

# Columns (CSV) and keys (JSON Lines) an entry may have.
FIELDS = ("hash", "algorithm", "label", "id", "source")

# Where each field is read from, by format: the first column present of each tuple.
_OUR_COLUMNS: dict[str, tuple[str, ...]] = {name: (name,) for name in FIELDS}
_THREATEXCHANGE_COLUMNS: dict[str, tuple[str, ...]] = {
    "hash": ("signal", "signal_str", "hash"),
    "algorithm": ("signal_type",),
    "label": ("label", "tags"),
    "id": ("id",),
    "source": ("source", "collab"),
    "category": ("category",),
}

_PDQ_HEX = re.compile(r"[0-9a-fA-F]{64}")


class HashFileError(ValueError):
    """A problem in a hash file, with where it is: ``str()`` is ``FILE:LINE: reason``."""

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


class AlgorithmNeeded(HashFileError):
    """A plain-text file whose hashes do not say their algorithm: ``--algorithm`` is needed."""


def detect_format(path: str | Path) -> Format:
    """The file's format from its content, then its suffix. Raises HashFileError (not UTF-8)
    and OSError (cannot be read)."""
    try:
        return _detect_format(path)
    except UnicodeDecodeError as exc:
        raise HashFileError(path, 0, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


class HashFileReader:
    """Iterating yields the file's entries in order; every iteration reads the file afresh.

    That lets ``lists load`` check the whole file first (nothing is sent if any line is bad)
    and then stream it, without ever holding more than a line in memory.
    """

    def __init__(
        self,
        path: str | Path,
        format: Format | None = None,
        *,
        algorithm: Algorithm | None = None,
        label: str | None = None,
        source: str | None = None,
    ) -> None:
        self.path = Path(path)
        if format is not None and format not in FORMATS:
            raise ValueError(f"unknown format {format!r} (expected one of: {', '.join(FORMATS)})")
        self.format: Format = format or detect_format(path)
        self.algorithm = algorithm
        self.label = label
        self.source = source
        # Set by reading a text file without --algorithm whose bare hashes are all PDQ-shaped.
        self.read_as_pdq = False

    def __iter__(self) -> Iterator[HashEntry]:
        try:
            # utf-8-sig: spreadsheets often save CSV with a byte-order mark.
            with open(self.path, encoding="utf-8-sig", newline="") as f:
                if self.format == "csv":
                    yield from self._csv(f, _OUR_COLUMNS)
                elif self.format == "threatexchange":
                    yield from self._csv(f, _THREATEXCHANGE_COLUMNS)
                elif self.format == "jsonl":
                    yield from self._jsonl(f)
                else:
                    yield from self._text(f, self._bare_algorithm())
        except UnicodeDecodeError as exc:
            raise HashFileError(self.path, 0, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None

    def count(self) -> int:
        """Read the whole file, checking every line; the number of entries. Raises HashFileError."""
        return sum(1 for _ in self)

    # -- one entry --

    def _entry(self, line: int, fields: dict[str, str]) -> HashEntry:
        hash_text = fields.get("hash", "").strip()
        if not hash_text:
            raise HashFileError(self.path, line, "empty hash")
        name = fields.get("algorithm", "").strip()
        if name:
            try:
                algorithm = algorithm_for_type(name)
            except ValueError as exc:
                raise HashFileError(self.path, line, str(exc)) from None
        elif self.algorithm is not None:
            algorithm = self.algorithm
        else:
            raise HashFileError(self.path, line, "no algorithm (empty algorithm field and no --algorithm)")
        # A PhotoDNA value under another name (a mislabelled column, --algorithm pdq on an NCMEC
        # file) would otherwise reach the server as "not a PDQ hash": say what it is instead.
        if looks_like_photodna(hash_text):
            raise HashFileError(self.path, line, f"this is a PhotoDNA hash (144 bytes). {PHOTODNA_REFUSED}")
        return HashEntry(
            algorithm=algorithm,
            hash=hash_text,
            # An empty cell is "not given": a reload without labels keeps the listed ones.
            label=fields.get("label", "").strip() or self.label,
            id=fields.get("id", "").strip(),
            source=fields.get("source", "").strip() or self.source,
            line=line,
        )

    # -- formats --

    def _csv(self, f: Any, names: dict[str, tuple[str, ...]]) -> Iterator[HashEntry]:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            while header is not None and not any(cell.strip() for cell in header):
                header = next(reader, None)  # blank lines before the header
        except csv.Error as exc:
            raise HashFileError(self.path, reader.line_num, f"bad CSV: {exc}") from None
        hash_names = " or ".join(repr(n) for n in names["hash"])
        if header is None:
            raise HashFileError(self.path, 0, f"empty file: expected a CSV header naming at least {hash_names}")
        header_line = reader.line_num
        columns = [cell.strip().lower() for cell in header]
        # The first column of each known name wins; unknown columns are ignored.
        where = {
            field: columns.index(column)
            for field, candidates in names.items()
            if (column := next((c for c in candidates if c in columns), None)) is not None
        }
        if "hash" not in where:
            raise HashFileError(
                self.path, header_line, f"CSV header has no {hash_names} column (found: {', '.join(columns)})"
            )
        if "algorithm" not in where and self.algorithm is None:
            raise HashFileError(
                self.path, header_line,
                f"CSV header has no {names['algorithm'][0]!r} column; add one or give --algorithm",
            )
        end = header_line
        while True:
            start = end + 1  # a quoted field may span lines: name the record's first line
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise HashFileError(self.path, reader.line_num, f"bad CSV: {exc}") from None
            end = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            fields = {name: row[i] if i < len(row) else "" for name, i in where.items()}
            if fields.get("category", "").strip().upper() == "NEGATIVE_CLASS":
                raise HashFileError(
                    self.path, start,
                    "category NEGATIVE_CLASS: the exchange marks this signal as not harmful (a false "
                    "positive), so it must not be listed; remove these rows and load the rest",
                )
            yield self._entry(start, fields)

    def _jsonl(self, f: Any) -> Iterator[HashEntry]:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise HashFileError(self.path, number, f"bad JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise HashFileError(self.path, number, f"expected a JSON object, got {type(obj).__name__}")
            fields: dict[str, str] = {}
            for key, value in obj.items():
                name = str(key).lower()
                if name not in FIELDS or value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, (str, int)):
                    raise HashFileError(self.path, number, f"{key!r} must be a string, got {type(value).__name__}")
                fields[name] = str(value)
            if "hash" not in fields:
                raise HashFileError(self.path, number, "no 'hash' key")
            yield self._entry(number, fields)

    @staticmethod
    def _lines(f: Any) -> Iterator[tuple[int, str]]:
        """(line number, text) of the lines that hold something: not blank, not a # comment."""
        for number, text in enumerate(f, start=1):
            value = text.strip()
            if value and not value.startswith("#"):
                yield number, value

    def _split(self, number: int, value: str) -> tuple[str, str]:
        """A text line -> (type name or "", hash). A PhotoDNA value may hold spaces (after commas)."""
        if looks_like_photodna(value):
            return "", value
        parts = value.split()
        if len(parts) == 1:
            return "", value
        if len(parts) == 2:
            return parts[0], parts[1]
        raise HashFileError(self.path, number, "expected a hash, or a hash type and a hash separated by a space")

    def _bare_algorithm(self) -> Algorithm | None:
        """The algorithm of a text file's bare hashes (lines without a type): --algorithm, or PDQ
        when every bare hash is 64 hex digits (HMA's PDQ export); None if there are none. Reads
        the file once to decide, stopping at its first bad line (whatever is wrong with it)."""
        if self.algorithm is not None:
            return self.algorithm
        bare = False
        with open(self.path, encoding="utf-8-sig", newline="") as f:
            for number, value in self._lines(f):
                type_name, hash_text = self._split(number, value)
                if type_name:
                    self._entry(number, {"hash": hash_text, "algorithm": type_name})  # raises if bad
                    continue
                bare = True
                if looks_like_photodna(hash_text):
                    raise HashFileError(self.path, number, f"this is a PhotoDNA hash (144 bytes). {PHOTODNA_REFUSED}")
                if not _PDQ_HEX.fullmatch(hash_text):
                    raise AlgorithmNeeded(
                        self.path, number,
                        "a plain-text hash file needs --algorithm, unless every hash in it is 64 hex digits "
                        f"(then it is read as PDQ, as HMA exports PDQ); this line's hash is {len(hash_text)} "
                        "characters",
                    )
        if not bare:
            return None
        self.read_as_pdq = True
        return Algorithm.PDQ

    def _text(self, f: Any, bare: Algorithm | None) -> Iterator[HashEntry]:
        for number, value in self._lines(f):
            type_name, hash_text = self._split(number, value)
            if not type_name and bare is None:  # the file changed since _bare_algorithm read it
                raise AlgorithmNeeded(self.path, number, "a plain-text hash file needs --algorithm")
            algorithm = type_name or (bare.value if bare is not None else "")
            yield self._entry(number, {"hash": hash_text, "algorithm": algorithm})

