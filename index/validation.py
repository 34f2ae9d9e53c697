"""Rules for what staff may name and set, shared by every store."""

from __future__ import annotations

import re
from typing import Mapping

from hashmatch.hashing.algorithms import Algorithm

from .errors import InvalidListSpec

_LIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_DESCRIPTION = 4096
MAX_LABEL = 1024
MAX_ENTRY_ID = 256
MAX_SOURCE = 1024


def check_list_name(name: str) -> str:
    if not _LIST_NAME.fullmatch(name):
        raise InvalidListSpec(
            f"list name {name[:140]!r} is not valid: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_description(text: str) -> str:
    if len(text) > MAX_DESCRIPTION:
        raise InvalidListSpec(f"description is {len(text)} characters, over the limit of {MAX_DESCRIPTION}")
    return text


def check_thresholds(thresholds: Mapping[Algorithm, int]) -> dict[Algorithm, int]:
    for algorithm, threshold in thresholds.items():
        spec = algorithm.spec
        if not 0 <= threshold <= spec.max_threshold:
            if spec.max_threshold == 0:
                raise InvalidListSpec(
                    f"{algorithm.name} is an exact digest: its threshold can only be 0, got {threshold}"
                )
            raise InvalidListSpec(
                f"{algorithm.name} threshold must be between 0 and {spec.max_threshold}, got {threshold}"
            )
    return dict(thresholds)


def check_confirmed_thresholds(
    confirmed: Mapping[Algorithm, int], thresholds: Mapping[Algorithm, int]
) -> dict[Algorithm, int]:
    """A confirmed threshold loosens a perceptual algorithm's own threshold: it must lie above it
    (otherwise it would change nothing) and within the hash's bits. ``thresholds`` are the
    list's thresholds as they will be."""
    for algorithm, loose in confirmed.items():
        spec = algorithm.spec
        if not spec.perceptual:
            raise InvalidListSpec(
                f"{algorithm.name} is an exact digest: it cannot have a confirmed threshold"
            )
        if not thresholds[algorithm] < loose <= spec.max_threshold:
            raise InvalidListSpec(
                f"{algorithm.name} confirmed threshold must be above its threshold {thresholds[algorithm]} "
                f"and at most {spec.max_threshold}, got {loose}"
            )
    return dict(confirmed)


def default_thresholds() -> dict[Algorithm, int]:
    return {a: a.spec.default_threshold for a in Algorithm}


def entry_problem(entry_id: str, label: str | None, source: str | None) -> str | None:
    """Why an entry's text fields are unacceptable, or None."""
    if len(entry_id) > MAX_ENTRY_ID:
        return f"id is {len(entry_id)} characters, over the limit of {MAX_ENTRY_ID}"
    if entry_id != entry_id.strip() or any(not ch.isprintable() for ch in entry_id):
        return f"id {entry_id[:60]!r} has leading/trailing spaces or unprintable characters"
    if label is not None and len(label) > MAX_LABEL:
        return f"label is {len(label)} characters, over the limit of {MAX_LABEL}"
    if source is not None and len(source) > MAX_SOURCE:
        return f"source is {len(source)} characters, over the limit of {MAX_SOURCE}"
    return None
