"""HashLists: the lists as the server sees them.

Writes commit to the store, then publish a new immutable index view (the previous one plus a
delta segment, or with removed rows masked) by swapping one reference: a match takes the
current view once and reads only it, so it never waits for a writer and never sees part of a
change. Each view holds a read transaction of the store opened right after its commit, so the
ids and labels of the hits are read as of that same state. A background compactor folds the
deltas into a new main segment and keeps the snapshot beside the store fresh (see compaction.py).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.hashing.orientation import Orientation

from .codes import from_bytes, from_rows
from .compaction import CompactionPolicy, Compactor
from .errors import InvalidEntry, ListNotFound
from .images import ImageOutcome, Listed, NewImage, plan
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
        # The follower (follow()): the store generation this view is complete up to, so changes
        # other processes commit are applied once each, as deltas.
        self._applied = self._view.generation
        self._follower: threading.Thread | None = None
        self._stop_following = threading.Event()
        self.store_connected = True
        self._synced_at = time.time()
        self.follower_stats = {"deltas": 0, "changes": 0, "reloads": 0, "failures": 0}
        # Called after every round of the follower (the server updates health from it).
        self.on_follow: Callable[[], None] | None = None
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
        of the lists in play; each list's own threshold is applied to that one result.

        A list with confirmed thresholds (its confirmation policy) also accepts a hit beyond its
        threshold but within the confirmed one, when a hit of another algorithm on the same
        entry, from a query of the same variant (orientation and region) in this batch, is
        within that algorithm's threshold or confirmed threshold; such a hit says which
        algorithm confirmed it (``Hit.confirmed_by``)."""
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
        # (row id, list id, algorithm, distance, position, loose: beyond the list's threshold)
        found: list[tuple[int, int, Algorithm, int, int, bool]] = []
        for algorithm, positions in by_algorithm.items():
            index = view.indexes.get(algorithm)
            if index is None or index.live == 0:
                continue
            thresholds = np.full(size, -1, np.int64)
            reach = np.full(size, -1, np.int64)  # the confirmed threshold where a list has one
            for list_id, info in active.items():
                thresholds[list_id] = info.thresholds[algorithm]
                reach[list_id] = max(info.thresholds[algorithm], info.confirmed_thresholds.get(algorithm, -1))
            codes = from_bytes([queries[p].value for p in positions], algorithm.spec.nbytes)
            q, rows, lists, distances = index.search(codes, int(reach.max()))
            inside = lists < size
            q, rows, lists, distances = q[inside], rows[inside], lists[inside], distances[inside]
            upright = np.array([orientations[p] is Orientation.ORIGINAL for p in positions], bool)
            keep = (distances <= reach[lists]) & (upright[q] | turns_ok[lists])
            loose = distances > thresholds[lists]
            for qi, row, list_id, distance, beyond in zip(q[keep].tolist(), rows[keep].tolist(), lists[keep].tolist(),
                                                          distances[keep].tolist(), loose[keep].tolist()):
                found.append((row, list_id, algorithm, distance, positions[qi], beyond))
        if not found:
            return Matches([], view.generation)
        names = view.reader.entries(sorted({f[0] for f in found})) if view.reader is not None else {}
        found = [f for f in found if f[0] in names or _missing(f[0], view.generation)]
        confirmers = _confirmers(found, names, orientations, regions) if any(f[5] for f in found) else {}
        hits = []
        for row, list_id, algorithm, distance, position, beyond in found:
            entry_id, label = names[row]
            info = active[list_id]
            confirmed_by = None
            if beyond:
                confirmed_by = _confirmer(confirmers.get((list_id, entry_id, _variant(position, orientations, regions))),
                                          algorithm)
                if confirmed_by is None:
                    continue  # beyond the threshold and nothing else of the entry agrees
            hits.append(Hit(
                info.name, entry_id, label, algorithm, distance, info.thresholds[algorithm],
                query_indexes[position], orientations[position],
                regions[position] if regions else "whole", confirmed_by,
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
        confirmed_thresholds: Mapping[Algorithm, int] | None = None,
    ) -> ListInfo:
        with self._write_lock:
            info = self.store.create_list(name, description, thresholds or {}, enabled, match_orientations, actor=actor,
                                          confirmed_thresholds=confirmed_thresholds)
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
        confirmed_thresholds: Mapping[Algorithm, int] | None = None,
    ) -> ListInfo:
        """``confirmed_thresholds`` changes the algorithms it names; 0 turns one's confirmation off."""
        with self._write_lock:
            info = self.store.update_list(name, description, thresholds, enabled, match_orientations, actor=actor,
                                          confirmed_thresholds=confirmed_thresholds)
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

    def add_images(
        self, name: str, images: Sequence[NewImage], actor: str = UNKNOWN_ACTOR
    ) -> tuple[list[ImageOutcome], UploadOutcome, ListInfo]:
        """Every hash of each image under one entry id per image (see images.plan); all or
        nothing, audited as a load. Errors are InvalidEntry with ``line`` the image's position."""
        with self._write_lock:
            for attempt in (1, 2):
                by_hash, held = self.store.lookup_entries(
                    name, [h for image in images for h in image.hashes], [i.entry_id for i in images if i.entry_id]
                )
                entries, outcomes = plan(images, Listed(by_hash, held), _fresh_ids())
                try:
                    outcome, change = self.store.add_entries(name, entries, actor=actor)
                    break
                except InvalidEntry:
                    # Another process (a worker on the same store) may have listed one of these
                    # images between the lookup and the write: plan again from what is listed now.
                    if attempt == 2:
                        raise
            self._publish(change)
        return outcomes, outcome, self.store.get_list(name)

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

    def fold_store(self) -> int:
        """Move the store's recent loads into its main table now (the compactor does this by
        itself when the store is idle); returns how many rows moved (0 for a store without)."""
        return self._compactor.fold_store(force=True)

    def write_snapshot(self) -> bool:
        """Write the snapshot of the current view now, if it is not already on disk."""
        return self._compactor.snapshot()

    def close(self) -> None:
        self.stop_following()
        self._compactor.stop()
        self.store.close()

    # -- following other processes' writes -------------------------------------------------------

    def follow(self, interval: float = 0.5) -> None:
        """Apply the writes of other processes sharing the store, in a background thread: poll
        the change feed every ``interval`` seconds (a store that can wake the thread at once, as
        PostgreSQL's LISTEN does, offers ``wait_for_change``). If the store cannot be reached the
        current view keeps serving and ``store_connected`` turns False until it can."""
        if self._follower is not None:
            return
        self._stop_following.clear()
        self._follower = threading.Thread(target=self._follow, args=(interval,), name="hashmatch-follower", daemon=True)
        self._follower.start()

    def stop_following(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            self._stop_following.set()
            follower.join(timeout=30)

    @property
    def following(self) -> bool:
        return self._follower is not None

    @property
    def stale_seconds(self) -> float:
        """Seconds since this view was last known to be the store's latest (0 when not following:
        then only this process writes, and every write publishes at once)."""
        return max(0.0, time.time() - self._synced_at) if self.following else 0.0

    def sync(self) -> int:
        """Apply every change committed since this view (by any process) now, as one delta;
        returns how many writes that was. Raises the store's error if it cannot be read."""
        with self._write_lock:
            reader = self.store.reader()
            if reader.generation == self._applied:
                if not self._renew_reader(reader):
                    reader.close()
                return 0
            before = self._applied
            self._publish(Change(), reader)
            return self._applied - before

    def _follow(self, interval: float) -> None:
        wait = getattr(self.store, "wait_for_change", None)
        while not self._stop_following.is_set():
            try:
                self.sync()
                if not self.store_connected:
                    log.warning("store reachable again: caught up to generation %d", self._applied)
                self.store_connected = True
                self._synced_at = time.time()
            except Exception as exc:  # noqa: BLE001 - any failure to read the store: keep serving, report stale
                self.follower_stats["failures"] += 1
                if self.store_connected:
                    log.warning("store unreachable (%s): serving the index of generation %d until it is back",
                                exc, self._applied)
                self.store_connected = False
            if self.on_follow is not None:
                self.on_follow()
            if wait is not None and self.store_connected:
                try:
                    wait(interval)
                    continue
                except Exception:  # noqa: BLE001 - lost while waiting: the next round reports it
                    pass
            self._stop_following.wait(interval)

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def view(self) -> View:
        return self._view

    @property
    def last_change_time(self) -> float:
        """When the lists served last changed (or were loaded): the index's age starts here."""
        return self._view.published

    def _renew_reader(self, reader) -> bool:
        """Under the write lock: the current view on ``reader`` when a store fold (no change to
        any entry, so no new generation) happened since the view's own read transaction, which
        would otherwise keep SQLite from checkpointing the fold's pages until the next write."""
        current = self._view
        if reader.generation != current.generation or getattr(reader, "folds", 0) == getattr(current.reader, "folds", 0):
            return False
        self._view = dataclasses.replace(current, reader=reader)
        return True

    def _swap(self, expected: View, view: View) -> None:
        """Used by the compactor (under the write lock) to publish a restructured view."""
        assert self._view is expected
        self._view = view

    def _publish(self, change: Change, reader=None) -> None:
        """The next view: this process's own ``change`` (applied from memory) plus whatever other
        processes committed since the current view (read from the store's change feed), under
        the write lock. A write that directly follows the view needs no read of the feed."""
        # The store committed; this reader pins exactly that state for the new view.
        reader = reader or self.store.reader()
        added_entries = list(change.added)
        removed_rows = list(change.removed)
        if not (change.seq and change.seq == self._applied + 1 == reader.generation):
            feed = getattr(reader, "changes_since", None)
            batch = feed(self._applied, skip=change.seq) if feed is not None and reader.generation > self._applied else None
            if batch is not None and not batch.complete:
                log.warning("change feed does not reach back to generation %d: rebuilding the index", self._applied)
                self.follower_stats["reloads"] += 1
                self._view = self._rebuilt(reader)
                self._applied = self._view.generation
                self._compactor.poke()
                return
            if batch is not None:
                own = {e.row_id for e in change.added}
                # Removals first: a row id freed by one write may be reused by a later one.
                removed_rows = list(batch.removed) + removed_rows
                added_entries = [e for e in batch.added if e.row_id not in own] + added_entries
                others = batch.records - (1 if change.seq else 0)
                if others > 0:
                    self.follower_stats["deltas"] += 1
                    self.follower_stats["changes"] += others
        lists = {info.list_id: info for info in self.store.list_lists()}
        old = self._view
        indexes = dict(old.indexes)
        removed: dict[Algorithm, list[int]] = defaultdict(list)
        for algorithm, row_id in removed_rows:
            removed[algorithm].append(row_id)
        for algorithm, row_ids in removed.items():
            if algorithm in indexes:
                indexes[algorithm] = indexes[algorithm].without_rows(np.array(sorted(row_ids), np.int64))
        added: dict[Algorithm, list] = defaultdict(list)
        for entry in added_entries:
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
        self._applied = reader.generation
        self._compactor.poke()

    def _rebuilt(self, reader) -> View:
        """A whole new view from the store (when the change feed cannot bring this one up to date)."""
        lists = {info.list_id: info for info in self.store.list_lists()}
        scanned = self.store.scan_entries()
        if any(a.entries_generation != reader.entries_generation for a in scanned.values()):
            reader.close()  # another process wrote in between: start again from the new state
            return self._rebuilt(self.store.reader())
        indexes = {algorithm: AlgorithmIndex.of(algorithm, _segment_of(algorithm, arrays))
                   for algorithm, arrays in scanned.items()}
        return View(reader.generation, reader.entries_generation, lists, indexes, reader)

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
    codes = from_rows(arrays.values, algorithm.spec.nbytes)
    return Segment.build(algorithm.spec.bits, codes, arrays.row_ids, arrays.list_ids, exact=not algorithm.spec.perceptual)


def _fresh_ids() -> Iterator[str]:
    # Random, like the store's own (an id never reveals a listed hash); one per new image.
    while True:
        yield secrets.token_bytes(8).hex()


def _missing(row: int, generation: int) -> bool:
    # Cannot happen: the reader sees the view's own state.
    log.error("row %d of the index is not in the store's state %d", row, generation)
    return False


_Variant = tuple[Orientation, str]


def _variant(position: int, orientations: Sequence[Orientation], regions: Sequence[str] | None) -> _Variant:
    """The variant of the upload a query was hashed from: only hashes of one variant confirm each other."""
    return orientations[position], regions[position] if regions else "whole"


def _confirmers(
    found: Sequence[tuple[int, int, Algorithm, int, int, bool]],
    names: Mapping[int, tuple[str, str]],
    orientations: Sequence[Orientation],
    regions: Sequence[str] | None,
) -> dict[tuple[int, str, _Variant], dict[Algorithm, bool]]:
    """(list id, entry id, variant) -> the algorithms that hit it, each with whether some hit of
    it is within the list's own threshold (such a hit is preferred as the confirmer)."""
    out: dict[tuple[int, str, _Variant], dict[Algorithm, bool]] = defaultdict(dict)
    for row, list_id, algorithm, _distance, position, beyond in found:
        key = (list_id, names[row][0], _variant(position, orientations, regions))
        out[key][algorithm] = out[key].get(algorithm, False) or not beyond
    return out


def _confirmer(algorithms: Mapping[Algorithm, bool] | None, algorithm: Algorithm) -> Algorithm | None:
    """Another algorithm that hit the same entry and variant, one within its own threshold first."""
    others = [(not within, list(Algorithm).index(a), a) for a, within in (algorithms or {}).items() if a is not algorithm]
    return min(others)[2] if others else None


def _preference(hit: Hit) -> tuple[int, bool, int]:
    # The closest first; among equals, the whole upload before a region, as uploaded before a turn.
    return hit.distance, hit.region != "whole", _rank(hit.orientation)


def _rank(orientation: Orientation) -> int:
    # Among equally close orientations, report the picture as uploaded first.
    return list(Orientation).index(orientation)
