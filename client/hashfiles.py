"""Reading hash-list files (CSV, JSON Lines, plain text) into HashEntry, lazily, for ``lists load``.

Each entry keeps its 1-based file line, so an error -- ours or the server's -- names the line.
Problems visible without the server (missing column, bad JSON, unknown algorithm, empty hash)
raise :class:`HashFileError` as ``FILE:LINE: reason``. Whether a hash's hex is right is left to
the server, which checks it against the algorithm's exact form and names the line too.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator, Literal

from hashmatch.client.models import HashEntry
from hashmatch.hashing.algorithms import Algorithm

Format = Literal["csv", "jsonl", "text"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl", "text")

# Columns (CSV) and keys (JSON Lines) an entry may have.
FIELDS = ("hash", "algorithm", "label", "id", "source")


class HashFileError(ValueError):
    """A problem in a hash file, with where it is: ``str()`` is ``FILE:LINE: reason``."""

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


def detect_format(path: str | Path) -> Format:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "text"


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
        self.format: Format = format or detect_format(path)
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {format!r} (expected one of: {', '.join(FORMATS)})")
        self.algorithm = algorithm
        self.label = label
        self.source = source

    def __iter__(self) -> Iterator[HashEntry]:
        try:
            # utf-8-sig: spreadsheets often save CSV with a byte-order mark.
            with open(self.path, encoding="utf-8-sig", newline="") as f:
                if self.format == "csv":
                    yield from self._csv(f)
                elif self.format == "jsonl":
                    yield from self._jsonl(f)
                else:
                    yield from self._text(f)
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
                algorithm = Algorithm.parse(name)
            except ValueError as exc:
                raise HashFileError(self.path, line, str(exc)) from None
        elif self.algorithm is not None:
            algorithm = self.algorithm
        else:
            raise HashFileError(self.path, line, "no algorithm (empty algorithm field and no --algorithm)")
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

    def _csv(self, f: Any) -> Iterator[HashEntry]:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            while header is not None and not any(cell.strip() for cell in header):
                header = next(reader, None)  # blank lines before the header
        except csv.Error as exc:
            raise HashFileError(self.path, reader.line_num, f"bad CSV: {exc}") from None
        if header is None:
            raise HashFileError(self.path, 0, "empty file: expected a CSV header naming at least 'hash'")
        header_line = reader.line_num
        columns = [cell.strip().lower() for cell in header]
        if "hash" not in columns:
            raise HashFileError(self.path, header_line, f"CSV header has no 'hash' column (found: {', '.join(columns)})")
        if "algorithm" not in columns and self.algorithm is None:
            raise HashFileError(
                self.path, header_line, "CSV header has no 'algorithm' column; add one or give --algorithm"
            )
        # The first column of each known name wins; unknown columns are ignored.
        where = {name: columns.index(name) for name in FIELDS if name in columns}
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

    def _text(self, f: Any) -> Iterator[HashEntry]:
        if self.algorithm is None:
            raise HashFileError(self.path, 0, "a text hash file needs --algorithm")
        for number, text in enumerate(f, start=1):
            value = text.strip()
            if not value or value.startswith("#"):
                continue
            yield self._entry(number, {"hash": value})
