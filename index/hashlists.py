"""HashLists: the lists as the server sees them. Writes go to the store, then to the search
structures as a delta; matches are answered from memory under each list's thresholds."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np

from hashmatch.hashing.algorithms import Algorithm, Hash
from hashmatch.hashing.orientation import Orientation

from .errors import InvalidEntry, ListNotFound
from .records import Hit, ListInfo, Matches, NewEntry, UploadOutcome
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
        self._generation = 0
        self._reload_lists()
        self._apply(Change(added=tuple(store.iter_entries())))

    # -- reads ---------------------------------------------------------------------------------

    def get_list(self, name: str) -> ListInfo:
        return self.store.get_list(name)

    def list_lists(self) -> list[ListInfo]:
        return self.store.list_lists()

    def entry_count(self, algorithm: Algorithm) -> int:
        return len(self._structure(algorithm))

    @property
    def generation(self) -> int:
        return self._generation

    def match(
        self,
        queries: Sequence[Hash],
        list_names: Iterable[str] = (),
        orientations: Sequence[Orientation] | None = None,
        query_indexes: Sequence[int] | None = None,
    ) -> Matches:
        """Every listed entry within its list's threshold of each query, over the enabled lists
        (restricted to ``list_names`` when given). Raises ListNotFound for an unknown name.

        ``orientations[i]`` says which orientation of the picture ``queries[i]`` was hashed from
        (default: all ORIGINAL); lists that do not match orientations ignore the other ones.
        ``query_indexes[i]`` is what a hit of ``queries[i]`` reports as its query index
        (default: ``i``), so variants can point at the hash of the image as uploaded."""
        wanted = set(list_names)
        orientations = orientations or [Orientation.ORIGINAL] * len(queries)
        query_indexes = query_indexes or range(len(queries))
        with self._read_lock:
            for name in wanted:
                if name not in self._list_ids:
                    raise ListNotFound(name)
            generation = self._generation
            active = {
                list_id: info
                for list_id, info in self._lists.items()
                if info.enabled and (not wanted or info.name in wanted)
            }
            if not active:
                return Matches([], generation)
            by_algorithm: dict[Algorithm, list[int]] = defaultdict(list)
            for position, query in enumerate(queries):
                if orientations[position] is Orientation.ORIGINAL or any(
                    info.match_orientations for info in active.values()
                ):
                    by_algorithm[query.algorithm].append(position)
            found: list[tuple[int, Algorithm, int, int]] = []  # (row id, algorithm, distance, position)
            for algorithm, positions in by_algorithm.items():
                if algorithm.spec.perceptual:
                    found.extend(self._search_hamming(algorithm, queries, positions, active))
                else:
                    found.extend(self._search_digest(algorithm, queries, positions))
            hits = []
            for row_id, algorithm, distance, position in found:
                list_id, entry_id, label = self._rows[row_id]
                info = active.get(list_id)
                orientation = orientations[position]
                if info is None or distance > info.thresholds[algorithm]:
                    continue
                if orientation is not Orientation.ORIGINAL and not info.match_orientations:
                    continue
                hits.append(Hit(
                    info.name, entry_id, label, algorithm, distance, info.thresholds[algorithm],
                    query_indexes[position], orientation,
                ))
        # One hit per (list, entry, algorithm, query): the closest orientation wins.
        best: dict[tuple, Hit] = {}
        for hit in hits:
            key = (hit.list_name, hit.entry_id, hit.algorithm, hit.query_index)
            kept = best.get(key)
            if kept is None or (hit.distance, _rank(hit.orientation)) < (kept.distance, _rank(kept.orientation)):
                best[key] = hit
        ordered = sorted(best.values(), key=lambda h: (h.query_index, h.distance, h.list_name, h.entry_id))
        return Matches(ordered, generation)

    def _search_hamming(
        self, algorithm: Algorithm, queries: Sequence[Hash], positions: list[int], active: Mapping[int, ListInfo]
    ) -> list[tuple[int, Algorithm, int, int]]:
        # One search at the largest threshold in play, then each list's own threshold: several
        # lists with different thresholds cost one search, not one per list.
        radius = max(info.thresholds[algorithm] for info in active.values())
        values = pack([queries[p].value for p in positions], algorithm.spec.nbytes)
        neighbours = self._hamming[algorithm].within(values, radius)
        found = []
        for q, position in enumerate(positions):
            row_ids, distances = neighbours.of(q)
            found.extend((r, algorithm, d, position) for r, d in zip(row_ids.tolist(), distances.tolist()))
        return found

    def _search_digest(
        self, algorithm: Algorithm, queries: Sequence[Hash], positions: list[int]
    ) -> list[tuple[int, Algorithm, int, int]]:
        return [
            (row_id, algorithm, 0, position)
            for position in positions
            for row_id in self._digests[algorithm].lookup(queries[position].value)
        ]

    # -- writes --------------------------------------------------------------------------------

    def create_list(
        self,
        name: str,
        description: str = "",
        thresholds: Mapping[Algorithm, int] | None = None,
        enabled: bool = True,
        match_orientations: bool = True,
    ) -> ListInfo:
        with self._write_lock:
            info = self.store.create_list(name, description, thresholds or {}, enabled, match_orientations)
            self._reload_lists()
        return info

    def update_list(
        self,
        name: str,
        description: str | None = None,
        thresholds: Mapping[Algorithm, int] | None = None,
        enabled: bool | None = None,
        match_orientations: bool | None = None,
    ) -> ListInfo:
        with self._write_lock:
            info = self.store.update_list(name, description, thresholds, enabled, match_orientations)
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
        generation = self.store.generation()
        with self._read_lock:
            self._generation = generation
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


def _rank(orientation: Orientation) -> int:
    # Among equally close orientations, report the picture as uploaded first.
    return list(Orientation).index(orientation)
