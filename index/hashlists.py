"""HashLists: the lists as the server sees them.

Writes commit to the store, then publish a new immutable index view (the previous one plus a
delta segment, or with removed rows masked) by swapping one reference: a match takes the
current view once and reads only it, so it never waits for a writer and never sees part of a
change. Each view holds a read transaction of the store opened right after its commit, so the
ids and labels of the hits are read as of that same state. A background compactor folds the
deltas into a new main segment and keeps the snapshot beside the store fresh (see compaction.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.hashing.orientation import Orientation

from .codes import from_bytes
from .compaction import CompactionPolicy, Compactor
from .errors import InvalidEntry, ListNotFound
from .records import Hit, ListInfo, Matches, NewEntry, UploadOutcome
from .segment import Segment
from .snapshot import SnapshotError, read_snapshot
from .store import UNKNOWN_ACTOR, AuditRecord, Change, EntryArrays, Store
from .view import AlgorithmIndex, View

log = logging.getLogger("hashmatch.index")


def snapshot_path_for(store: Store) -> Path | None:
    """Where the index snapshot of a store lives: beside its file (None for a store without one)."""
    path = getattr(store, "path", None)
    return Path(path).with_suffix(".index") if path is not None else None


class HashLists:
    def __init__(
        self,
        store: Store,
        *,
        snapshot_path: Path | None = None,
        use_snapshot: bool = True,
        policy: CompactionPolicy | None = None,
        background: bool = True,
    ) -> None:
        self.store = store
        self.snapshot_path = (snapshot_path or snapshot_path_for(store)) if use_snapshot else None
        self._write_lock = threading.Lock()  # keeps store commits and view swaps in one order
        self.startup: dict[str, float | str] = {}
        self._view = self._first_view()
        self._compactor = Compactor(self, policy or CompactionPolicy(), background=background)
        if self.startup.get("source") == "store":
            self._compactor.request_snapshot()

    # -- reads: from the current view only, never waiting for a writer -----------------------------

    def get_list(self, name: str) -> ListInfo:
        return self.store.get_list(name)

    def list_lists(self) -> list[ListInfo]:
        return self.store.list_lists()

    def entry_count(self, algorithm: Algorithm) -> int:
        index = self._view.indexes.get(algorithm)
        return index.live if index is not None else 0

    @property
    def generation(self) -> int:
        return self._view.generation

    def audit_trail(self, list_name: str | None = None, limit: int = 1000) -> list[AuditRecord]:
        """Who changed which list when, newest first (see Store.audit_trail)."""
        return self.store.audit_trail(list_name, limit)

    def match(
        self,
        queries: Sequence[Hash],
        list_names: Iterable[str] = (),
        orientations: Sequence[Orientation] | None = None,
        query_indexes: Sequence[int] | None = None,
        regions: Sequence[str] | None = None,
    ) -> Matches:
        """Every listed entry within its list's threshold of each query, over the enabled lists
        (restricted to ``list_names`` when given). Raises ListNotFound for an unknown name.

        ``orientations[i]`` says which orientation of the picture ``queries[i]`` was hashed from
        (default: all ORIGINAL); lists that do not match orientations ignore the other ones.
        ``query_indexes[i]`` is what a hit of ``queries[i]`` reports as its query index
        (default: ``i``), so variants can point at the hash of the image as uploaded.
        ``regions[i]`` names the region of the upload ``queries[i]`` was hashed from (default:
        all "whole"), reported by its hits.

        All queries of one algorithm are searched as one batch, once, at the largest threshold
        of the lists in play; each list's own threshold is applied to that one result."""
        view = self._view  # one read of one reference: everything below is from this view
        wanted = set(list_names)
        for name in wanted:
            if name not in view.list_ids:
                raise ListNotFound(name)
        orientations = orientations or [Orientation.ORIGINAL] * len(queries)
        query_indexes = query_indexes or range(len(queries))
        active = {
            list_id: info
            for list_id, info in view.lists.items()
            if info.enabled and (not wanted or info.name in wanted)
        }
        if not active:
            return Matches([], view.generation)
        turns = any(info.match_orientations for info in active.values())
        by_algorithm: dict[Algorithm, list[int]] = defaultdict(list)
        for position, query in enumerate(queries):
            if orientations[position] is Orientation.ORIGINAL or turns:
                by_algorithm[query.algorithm].append(position)
        size = max(active) + 1
        turns_ok = np.zeros(size, bool)
        for list_id, info in active.items():
            turns_ok[list_id] = info.match_orientations
        found: list[tuple[int, int, Algorithm, int, int]] = []  # (row id, list id, algorithm, distance, position)
        for algorithm, positions in by_algorithm.items():
            index = view.indexes.get(algorithm)
            if index is None or index.live == 0:
                continue
            thresholds = np.full(size, -1, np.int64)
            for list_id, info in active.items():
                thresholds[list_id] = info.thresholds[algorithm]
            codes = from_bytes([queries[p].value for p in positions], algorithm.spec.nbytes)
            q, rows, lists, distances = index.search(codes, int(thresholds.max()))
            inside = lists < size
            q, rows, lists, distances = q[inside], rows[inside], lists[inside], distances[inside]
            upright = np.array([orientations[p] is Orientation.ORIGINAL for p in positions], bool)
            keep = (distances <= thresholds[lists]) & (upright[q] | turns_ok[lists])
            for qi, row, list_id, distance in zip(q[keep].tolist(), rows[keep].tolist(), lists[keep].tolist(),
                                                  distances[keep].tolist()):
                found.append((row, list_id, algorithm, distance, positions[qi]))
        if not found:
            return Matches([], view.generation)
        names = view.reader.entries(sorted({f[0] for f in found})) if view.reader is not None else {}
        hits = []
        for row, list_id, algorithm, distance, position in found:
            if row not in names:  # cannot happen: the reader sees the view's own state
                log.error("row %d of the index is not in the store's state %d", row, view.generation)
                continue
            entry_id, label = names[row]
            info = active[list_id]
            hits.append(Hit(
                info.name, entry_id, label, algorithm, distance, info.thresholds[algorithm],
                query_indexes[position], orientations[position],
                regions[position] if regions else "whole",
            ))
        # One hit per (list, entry, algorithm, query): the closest variant wins.
        best: dict[tuple, Hit] = {}
        for hit in hits:
            key = (hit.list_name, hit.entry_id, hit.algorithm, hit.query_index)
            kept = best.get(key)
            if kept is None or _preference(hit) < _preference(kept):
                best[key] = hit
        ordered = sorted(best.values(), key=lambda h: (h.query_index, h.distance, h.list_name, h.entry_id))
        return Matches(ordered, view.generation)

    # -- writes: store first, then the next view ---------------------------------------------------

    def create_list(
        self,
        name: str,
        description: str = "",
        thresholds: Mapping[Algorithm, int] | None = None,
        enabled: bool = True,
        match_orientations: bool = True,
        actor: str = UNKNOWN_ACTOR,
    ) -> ListInfo:
        with self._write_lock:
            info = self.store.create_list(name, description, thresholds or {}, enabled, match_orientations, actor=actor)
            self._publish(Change())
        return info

    def update_list(
        self,
        name: str,
        description: str | None = None,
        thresholds: Mapping[Algorithm, int] | None = None,
        enabled: bool | None = None,
        match_orientations: bool | None = None,
        actor: str = UNKNOWN_ACTOR,
    ) -> ListInfo:
        with self._write_lock:
            info = self.store.update_list(name, description, thresholds, enabled, match_orientations, actor=actor)
            self._publish(Change())
        return info

    def delete_list(self, name: str, actor: str = UNKNOWN_ACTOR) -> int:
        with self._write_lock:
            removed, change = self.store.delete_list(name, actor=actor)
            self._publish(change)
        return removed

    def add_entries(
        self, name: str, entries: Sequence[NewEntry], rejected: Sequence[InvalidEntry] = (), actor: str = UNKNOWN_ACTOR
    ) -> tuple[UploadOutcome, ListInfo]:
        """All or nothing; ``rejected`` are lines the caller could not parse (reported by line order)."""
        with self._write_lock:
            outcome, change = self.store.add_entries(name, entries, rejected, actor=actor)
            self._publish(change)
        return outcome, self.store.get_list(name)

    def remove_entries(
        self, name: str, entry_ids: Sequence[str] = (), hashes: Sequence[Hash] = (), actor: str = UNKNOWN_ACTOR
    ) -> int:
        with self._write_lock:
            removed, change = self.store.remove_entries(name, entry_ids, hashes, actor=actor)
            self._publish(change)
        return removed

    def compact(self) -> bool:
        """Fold every delta into new main segments now (the compactor does this by itself)."""
        return self._compactor.compact()

    def write_snapshot(self) -> bool:
        """Write the snapshot of the current view now, if it is not already on disk."""
        return self._compactor.snapshot()

    def close(self) -> None:
        self._compactor.stop()
        self.store.close()

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def view(self) -> View:
        return self._view

    @property
    def last_change_time(self) -> float:
        """When the lists served last changed (or were loaded): the index's age starts here."""
        return self._view.published

    def _swap(self, expected: View, view: View) -> None:
        """Used by the compactor (under the write lock) to publish a restructured view."""
        assert self._view is expected
        self._view = view

    def _publish(self, change: Change) -> None:
        # The store committed; this reader pins exactly that state for the new view.
        reader = self.store.reader()
        lists = {info.list_id: info for info in self.store.list_lists()}
        old = self._view
        indexes = dict(old.indexes)
        removed: dict[Algorithm, list[int]] = defaultdict(list)
        for algorithm, row_id in change.removed:
            removed[algorithm].append(row_id)
        for algorithm, row_ids in removed.items():
            if algorithm in indexes:
                indexes[algorithm] = indexes[algorithm].without_rows(np.array(sorted(row_ids), np.int64))
        added: dict[Algorithm, list] = defaultdict(list)
        for entry in change.added:
            added[entry.algorithm].append(entry)
        for algorithm, entries in added.items():
            segment = Segment.build(
                algorithm.spec.bits,
                from_bytes([e.value for e in entries], algorithm.spec.nbytes),
                np.array([e.row_id for e in entries], np.int64),
                np.array([e.list_id for e in entries], np.int64),
                exact=not algorithm.spec.perceptual,
            )
            indexes[algorithm] = indexes[algorithm].with_segment(segment) if algorithm in indexes else AlgorithmIndex.of(algorithm, segment)
        self._view = View(reader.generation, reader.entries_generation, lists, indexes, reader)
        self._compactor.poke()

    def _first_view(self) -> View:
        started = time.perf_counter()
        reader = self.store.reader()
        lists = {info.list_id: info for info in self.store.list_lists()}
        indexes = None
        if self.snapshot_path is not None:
            try:
                generation, indexes = read_snapshot(self.snapshot_path)
                if generation != reader.entries_generation:
                    log.warning("index snapshot %s is stale (entries generation %d, store %d): rebuilding from the store",
                                self.snapshot_path, generation, reader.entries_generation)
                    indexes = None
                else:
                    self.startup["source"] = "snapshot"
            except SnapshotError as exc:
                if self.snapshot_path.exists():
                    log.warning("index snapshot not used (%s): rebuilding from the store", exc)
                indexes = None
        if indexes is None:
            scanned = self.store.scan_entries()
            if any(a.entries_generation != reader.entries_generation for a in scanned.values()):
                # Only another process writing could do this; the next view will not be torn.
                reader.close()
                return self._first_view()
            indexes = {algorithm: AlgorithmIndex.of(algorithm, _segment_of(algorithm, arrays))
                       for algorithm, arrays in scanned.items()}
            self.startup["source"] = "store"
        self.startup["seconds"] = time.perf_counter() - started
        return View(reader.generation, reader.entries_generation, lists, indexes, reader)


def _segment_of(algorithm: Algorithm, arrays: EntryArrays) -> Segment:
    values = arrays.values
    codes = values.view(np.uint64).reshape(len(values), algorithm.spec.nbytes // 8) if len(values) else \
        np.empty((0, algorithm.spec.nbytes // 8), np.uint64)
    return Segment.build(algorithm.spec.bits, codes, arrays.row_ids, arrays.list_ids, exact=not algorithm.spec.perceptual)


def _preference(hit: Hit) -> tuple[int, bool, int]:
    # The closest first; among equals, the whole upload before a region, as uploaded before a turn.
    return hit.distance, hit.region != "whole", _rank(hit.orientation)


def _rank(orientation: Orientation) -> int:
    # Among equally close orientations, report the picture as uploaded first.
    return list(Orientation).index(orientation)
