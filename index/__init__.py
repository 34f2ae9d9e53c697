"""Hash lists: the durable store (source of truth) and the in-memory search derived from it.

No gRPC here: the server turns these objects and errors into protobuf and status codes.
"""

from .compaction import CompactionPolicy
from .errors import InvalidEntry, InvalidListSpec, ListError, ListExists, ListNotFound
from .hashlists import HashLists
from .images import ImageOutcome, NewImage
from .records import Hit, ListInfo, Matches, NewEntry, UploadOutcome
from .store import AuditRecord, SQLiteStore, Store

__all__ = [
    "AuditRecord",
    "CompactionPolicy",
    "HashLists",
    "Hit",
    "ImageOutcome",
    "InvalidEntry",
    "InvalidListSpec",
    "ListError",
    "ListExists",
    "ListInfo",
    "ListNotFound",
    "Matches",
    "NewEntry",
    "NewImage",
    "SQLiteStore",
    "Store",
    "UploadOutcome",
]
