"""What can go wrong in a list operation, as plain exceptions: the server maps them to gRPC codes."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The shared database cannot be reached: not the caller's mistake, and worth a retry
    (a replica keeps matching from its last index meanwhile)."""


class ListError(Exception):
    """Base of every error the index raises for a caller's mistake."""


class ListNotFound(ListError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no list named {name!r}")
        self.name = name


class ListExists(ListError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a list named {name!r} already exists")
        self.name = name


class InvalidListSpec(ListError):
    """A list's name, description or threshold is not acceptable."""


class InvalidEntry(ListError):
    """An entry of an upload is not acceptable; ``line`` is its line (or position) in the upload."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason
