"""How the CLI shows results: aligned text tables for people, JSON for scripts."""

from __future__ import annotations

import dataclasses
import enum
import json
from datetime import datetime
from typing import Any, Sequence

from hashmatch.client.errors import HashmatchError
from hashmatch.client.models import HashList


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; the last column is not padded (no trailing spaces)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths)] + [row[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """``name  value`` lines, the values aligned."""
    width = max((len(name) for name, _ in pairs), default=0)
    return "\n".join(f"{name.ljust(width)}  {value}".rstrip() for name, value in pairs)


def timestamp(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def per_algorithm(values: dict[Any, int]) -> str:
    return ", ".join(f"{alg.value} {n}" for alg, n in values.items()) or "-"


def show_list(hash_list: HashList) -> str:
    counts = per_algorithm({a: n for a, n in hash_list.entry_counts.items() if n})
    return fields(
        [
            ("name", hash_list.name),
            ("description", hash_list.description or "-"),
            ("enabled", "yes" if hash_list.enabled else "no"),
            ("entries", f"{hash_list.entry_count} ({counts})" if hash_list.entry_count else "0"),
            ("thresholds", per_algorithm(hash_list.thresholds)),
            ("confirmed", per_algorithm(hash_list.confirmed_thresholds)
             + (" (when another algorithm of the entry agrees)" if hash_list.confirmed_thresholds else "")),
            ("created", timestamp(hash_list.created)),
            ("updated", timestamp(hash_list.updated)),
        ]
    )


def lists_table(lists: Sequence[HashList]) -> str:
    rows = [
        (
            hl.name,
            "yes" if hl.enabled else "no",
            hl.entry_count,
            per_algorithm({a: n for a, n in hl.entry_counts.items() if n}),
            timestamp(hl.updated),
            hl.description,
        )
        for hl in lists
    ]
    return table(("NAME", "ENABLED", "ENTRIES", "BY ALGORITHM", "UPDATED", "DESCRIPTION"), rows)


def jsonable(value: Any) -> Any:
    """SDK results as plain JSON values: enums by value, datetimes ISO 8601, errors as objects."""
    if isinstance(value, HashmatchError):
        return {"code": value.code.name, "reason": value.reason, "message": value.details}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(value, "matched"):  # MatchImageResult: the answer most scripts want
            out["matched"] = value.matched
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(jsonable(value), indent=2, ensure_ascii=False)
