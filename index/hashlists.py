"""HashLists: the lists as the server sees them. Writes go to the store, then to the search
structures as a delta; matches are answered from memory under each list's thresholds."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np

from hashmatch.hashing.algorithms import Algorithm, Hash

from .errors import InvalidEntry, ListNotFound
from .records import Hit, ListInfo, NewEntry, UploadOutcome
from .search import DigestIndex, HammingIndex, pack
from .store import Change, Store, StoredEntry


class HashLists:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._write_lock = threading.Lock()  # keeps store commits and index deltas in one order
        self._read_lock = threading.RLock()  # guards the in-memory structures
        self._hamming = {a: HammingIndex(a) for a in Algorithm if a.spec.perceptual}
        self._digests = {a: DigestIndex(a) for a in Algorithm if not a.spec.perceptual}
        # row id -> (list id, entry id, label); the listed hash itself stays in the search structures.
        self._rows: dict[int, tuple[int, str, str]] = {}
        self._lists: dict[int, ListInfo] = {}
        self._list_ids: dict[str, int] = {}
        self._reload_lists()
        self._apply(Change(added=tuple(store.iter_entries())))

    # -- reads ---------------------------------------------------------------------------------

    def get_list(self, name: str) -> ListInfo:
        return self.store.get_list(name)

    def list_lists(self) -> list[ListInfo]:
        return self.store.list_lists()

    def entry_count(self, algorithm: Algorithm) -> int:
        structure = self._hamming.get(algorithm) or self._digests[algorithm]
        return len(structure)

    def match(self, queries: Sequence[Hash], list_names: Iterable[str] = ()) -> list[Hit]:
        """Every listed entry within its list's threshold of each query, over the enabled lists
        (restricted to ``list_names`` when given). Raises ListNotFound for an unknown name."""
        wanted = set(list_names)
        with self._read_lock:
            for name in wanted:
                if name not in self._list_ids:
                    raise ListNotFound(name)
            active = {
                list_id: info
                for list_id, info in self._lists.items()
                if info.enabled and (not wanted or info.name in wanted)
            }
            if not active:
                return []
            by_algorithm: dict[Algorithm, list[int]] = defaultdict(list)
            for position, query in enumerate(queries):
                by_algorithm[query.algorithm].append(position)
            hits: list[Hit] = []
            for algorithm, positions in by_algorithm.items():
                if algorithm.spec.perceptual:
                    hits.extend(self._match_hamming(algorithm, queries, positions, active))
                else:
                    hits.extend(self._match_digest(algorithm, queries, positions, active))
        hits.sort(key=lambda h: (h.query_index, h.distance, h.list_name, h.entry_id))
        return hits

    def _match_hamming(
        self, algorithm: Algorithm, queries: Sequence[Hash], positions: list[int], active: Mapping[int, ListInfo]
    ) -> list[Hit]:
        # One search at the largest threshold in play, then each list's own threshold: several
        # lists with different thresholds cost one search, not one per list.
        radius = max(info.thresholds[algorithm] for info in active.values())
        found = self._hamming[algorithm].within(pack([queries[p].value for p in positions], algorithm.spec.nbytes), radius)
        hits = []
        for q, position in enumerate(positions):
            row_ids, distances = found.of(q)
            for row_id, distance in zip(row_ids.tolist(), distances.tolist()):
                hits.extend(self._hit(row_id, algorithm, distance, position, active))
        return hits

    def _match_digest(
        self, algorithm: Algorithm, queries: Sequence[Hash], positions: list[int], active: Mapping[int, ListInfo]
    ) -> list[Hit]:
        hits = []
        for position in positions:
            for row_id in self._digests[algorithm].lookup(queries[position].value):
                hits.extend(self._hit(row_id, algorithm, 0, position, active))
        return hits

    def _hit(
        self, row_id: int, algorithm: Algorithm, distance: int, position: int, active: Mapping[int, ListInfo]
    ) -> list[Hit]:
        list_id, entry_id, label = self._rows[row_id]
        info = active.get(list_id)
        if info is None or distance > info.thresholds[algorithm]:
            return []
        return [Hit(info.name, entry_id, label, algorithm, distance, info.thresholds[algorithm], position)]

    # -- writes --------------------------------------------------------------------------------

    def create_list(
        self, name: str, description: str = "", thresholds: Mapping[Algorithm, int] | None = None, enabled: bool = True
    ) -> ListInfo:
        with self._write_lock:
            info = self.store.create_list(name, description, thresholds or {}, enabled)
            self._reload_lists()
        return info

    def update_list(
        self,
        name: str,
        description: str | None = None,
        thresholds: Mapping[Algorithm, int] | None = None,
        enabled: bool | None = None,
    ) -> ListInfo:
        with self._write_lock:
            info = self.store.update_list(name, description, thresholds, enabled)
            self._reload_lists()
        return info

    def delete_list(self, name: str) -> int:
        with self._write_lock:
            removed, change = self.store.delete_list(name)
            self._apply(change)
            self._reload_lists()
        return removed

    def add_entries(
        self, name: str, entries: Sequence[NewEntry], rejected: Sequence[InvalidEntry] = ()
    ) -> tuple[UploadOutcome, ListInfo]:
        """All or nothing; ``rejected`` are lines the caller could not parse (reported by line order)."""
        with self._write_lock:
            outcome, change = self.store.add_entries(name, entries, rejected)
            self._apply(change)
            self._reload_lists()
        return outcome, self.store.get_list(name)

    def remove_entries(self, name: str, entry_ids: Sequence[str] = (), hashes: Sequence[Hash] = ()) -> int:
        with self._write_lock:
            removed, change = self.store.remove_entries(name, entry_ids, hashes)
            self._apply(change)
            self._reload_lists()
        return removed

    def close(self) -> None:
        self.store.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _reload_lists(self) -> None:
        lists = {info.list_id: info for info in self.store.list_lists()}
        with self._read_lock:
            self._lists = lists
            self._list_ids = {info.name: list_id for list_id, info in lists.items()}

    def _apply(self, change: Change) -> None:
        added: dict[Algorithm, list[StoredEntry]] = defaultdict(list)
        for entry in change.added:
            added[entry.algorithm].append(entry)
        removed: dict[Algorithm, list[int]] = defaultdict(list)
        for algorithm, row_id in change.removed:
            removed[algorithm].append(row_id)
        with self._read_lock:
            for algorithm, row_ids in removed.items():
                self._structure(algorithm).remove(np.array(row_ids, np.int64))
                for row_id in row_ids:
                    self._rows.pop(row_id, None)
            for algorithm, entries in added.items():
                row_ids = np.array([e.row_id for e in entries], np.int64)
                values = [e.value for e in entries]
                if algorithm.spec.perceptual:
                    self._hamming[algorithm].add(row_ids, pack(values, algorithm.spec.nbytes))
                else:
                    self._digests[algorithm].add(row_ids, values)
                for e in entries:
                    self._rows[e.row_id] = (e.list_id, e.entry_id, e.label)
            for e in change.relabelled:
                self._rows[e.row_id] = (e.list_id, e.entry_id, e.label)

    def _structure(self, algorithm: Algorithm) -> HammingIndex | DigestIndex:
        return self._hamming[algorithm] if algorithm.spec.perceptual else self._digests[algorithm]
