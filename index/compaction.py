"""Background compaction: folds delta segments and masked rows into a new main segment, and keeps
the snapshot beside the store up to date, without holding up matches or writers.

The fold is built from a view taken at the start, outside every lock; only the swap takes the
write lock, and it rebases whatever was loaded or removed meanwhile onto the new main segment.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .snapshot import write_snapshot
from .view import AlgorithmIndex

if TYPE_CHECKING:
    from .hashlists import HashLists

log = logging.getLogger("hashmatch.index")


@dataclass(frozen=True)
class CompactionPolicy:
    # Fold when the deltas (or the masked rows) of an algorithm pass this share of its main
    # segment, and at least fold_min_entries: deltas are flat-scanned or carry small tables,
    # so beyond that they cost matches more than a fold costs in the background.
    fold_fraction: float = 0.05
    fold_min_entries: int = 100_000
    # ... or when there are more delta segments than this (each adds a fixed cost per match).
    max_segments: int = 8
    # Write the snapshot once no change has come for this long (and after every fold).
    snapshot_idle_seconds: float = 5.0
    interval_seconds: float = 1.0
    # The store's side table of recent loads (SQLite's recent_entries, see store.py) is folded
    # into its main table once no change has come for this long, or at once when it holds this
    # many rows. The fold holds the store's write lock (seconds at 10M entries), so it waits for
    # a quiet moment unless the side table has grown past the point where it saves anything.
    store_fold_idle_seconds: float = 30.0
    store_fold_rows: int = 500_000


def needs_fold(index: AlgorithmIndex, policy: CompactionPolicy) -> bool:
    limit = max(policy.fold_min_entries, policy.fold_fraction * len(index.main))
    return (
        len(index.segments) - 1 > policy.max_segments
        or index.delta_entries > limit
        or index.dead_entries > limit
    )


class Compactor:
    def __init__(self, lists: "HashLists", policy: CompactionPolicy, *, background: bool = True) -> None:
        self._lists = lists
        self.policy = policy
        self._lock = threading.Lock()  # one compaction or snapshot write at a time
        self._wake = threading.Event()
        self._stopping = False
        self._last_change = time.monotonic()
        source = lists.startup.get("source")
        self._written = lists.view.entries_generation if source == "snapshot" else None
        self.folds = 0
        self.snapshots = 0
        self.store_folds = 0
        # Until the first check: rows a previous run left in the store's side table.
        self._store_dirty = True
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="hashmatch-compactor", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        """A change was published."""
        self._last_change = time.monotonic()
        self._store_dirty = True
        self._wake.set()

    def request_snapshot(self) -> None:
        self._written = None
        self._last_change = 0.0
        self._wake.set()

    def compact(self, force: bool = True) -> bool:
        with self._lock:
            base = self._lists.view
            chosen = {
                algorithm: index
                for algorithm, index in base.indexes.items()
                if (force and (len(index.segments) > 1 or index.dead_entries)) or needs_fold(index, self.policy)
            }
            if not chosen:
                return False
            started = time.perf_counter()
            folded = {algorithm: index.folded() for algorithm, index in chosen.items()}
            del base  # hold no view (nor its read transaction) while waiting for the write lock
            with self._lists._write_lock:
                current = self._lists.view
                indexes = dict(current.indexes)
                for algorithm, main in folded.items():
                    indexes[algorithm] = current.indexes[algorithm].rebased(chosen[algorithm], main)
                self._lists._swap(current, dataclasses.replace(current, indexes=indexes))
            self.folds += 1
            log.info("compacted %s in %.2fs", ", ".join(a.value for a in folded), time.perf_counter() - started)
        self.snapshot(after_fold=True)
        return True

    def snapshot(self, after_fold: bool = False) -> bool:
        path = self._lists.snapshot_path
        if path is None:
            return False
        with self._lock:
            view = self._lists.view
            if view.entries_generation == self._written and not after_fold:
                return False
            started = time.perf_counter()
            size = write_snapshot(path, view.entries_generation, view.indexes)
            self._written = view.entries_generation
            self.snapshots += 1
            log.info("wrote index snapshot %s (%d bytes, entries generation %d) in %.2fs",
                     path, size, view.entries_generation, time.perf_counter() - started)
            return True

    def fold_store(self, force: bool = False) -> int:
        """Folds the store's recent loads into its main table (where the store has one) when the
        policy says so, or at once with ``force``; returns how many rows moved."""
        store = self._lists.store
        fold = getattr(store, "fold_recent", None)
        if fold is None or not (force or self._store_dirty):
            return 0
        idle = time.monotonic() - self._last_change >= self.policy.store_fold_idle_seconds
        if not (force or idle or store.recent_rows() >= self.policy.store_fold_rows):
            return 0
        started = time.perf_counter()
        self._store_dirty = False
        try:
            moved = fold(wait=force)
        except BaseException:
            self._store_dirty = True  # try again at the next turn
            raise
        if moved is None:  # another process is writing (or folding): try again later
            self._store_dirty = True
            return 0
        if moved:
            self.store_folds += 1
            self._renew_reader()
            log.info("folded %d recent store rows into the main table in %.2fs", moved, time.perf_counter() - started)
        return moved

    def _renew_reader(self) -> None:
        """The current view, on a read transaction opened after the fold. The fold changes no
        entry, so the view's answers stay the same; but its old read transaction would keep
        SQLite from checkpointing the fold's pages (hundreds of MB of WAL) until the next write."""
        with self._lists._write_lock:
            reader = self._lists.store.reader()
            if not self._lists._renew_reader(reader):  # another process wrote since the fold:
                reader.close()  # its change reaches this process as a new view, on a new reader

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        try:
            # A clean stop leaves a snapshot of the last state, for a fast next start.
            self.snapshot()
        except Exception:  # noqa: BLE001 - the store is the truth; a missing snapshot only slows a start
            log.exception("could not write the index snapshot on close")

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.policy.interval_seconds)
            self._wake.clear()
            if self._stopping:
                break
            try:
                view = self._lists.view
                if any(needs_fold(index, self.policy) for index in view.indexes.values()):
                    del view
                    self.compact(force=False)
                elif (
                    view.entries_generation != self._written
                    and time.monotonic() - self._last_change >= self.policy.snapshot_idle_seconds
                ):
                    del view
                    self.snapshot()
                self.fold_store()
            except Exception:  # noqa: BLE001 - keep compacting later; matches are unaffected
                log.exception("index compaction failed")
