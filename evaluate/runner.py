"""Runs an evaluation: split, list, edit and hash on every core, match, measure.

Hashing dominates, so it runs in a pool of worker processes (``spawn``: a forked gRPC channel
or Pillow state is never shared). The list and the index stay in this process: in process the
listed originals go into a ``HashLists`` on a temporary SQLite store; against a server into a
list of its own, deleted at the end.
"""

from __future__ import annotations

import multiprocessing
import secrets
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from hashmatch.hashing import PERCEPTUAL, Algorithm

from . import crosscheck
from .dataset import Split, find_images, split
from .edits import QUICK, Edit, select
from .uploads import Job, ServerHit, Upload, WorkerConfig, close_worker, hash_listed, init_worker, run_job

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Options:
    folder: Path
    listed_fraction: float = 0.5
    seed: int = 1
    server: str | None = None
    workers: int = 2
    quick: bool = False
    edits: tuple[str, ...] = ()  # empty: the whole suite (or the quick one)
    limit: int | None = None  # use at most this many images of the folder
    measure_cost: bool = True
    progress: bool = True


QUICK_IMAGES = 12


@dataclass
class Run:
    options: Options
    split: Split
    edits: tuple[Edit, ...]
    listed: dict[str, dict[Algorithm, bytes]]  # entry id (file name) -> its hashes
    uploads: list[Upload]
    # The matches the index (or server) returned, by row among the uploads that hashed.
    hits: dict[int, list[ServerHit]] = field(default_factory=dict)
    thresholds: dict[Algorithm, int] = field(default_factory=dict)  # of the list matched against
    seconds: float = 0.0

    @property
    def errors(self) -> list[Upload]:
        return [u for u in self.uploads if u.error is not None]


def _map(pool: multiprocessing.pool.Pool | None, function: Callable[[T], R], items: list[T],
         label: str, progress: bool) -> list[R]:
    """``function`` over ``items`` in the pool (results in the items' order), with a progress bar on stderr."""
    results: Iterable[R] = pool.imap(function, items) if pool is not None else map(function, items)
    bar = tqdm(results, total=len(items), desc=label, unit="img", file=sys.stderr, disable=not progress, leave=True)
    return list(bar)


@dataclass
class _ServerList:
    address: str
    name: str
    thresholds: dict[Algorithm, int]


def _load_server_list(address: str, listed: dict[str, dict[Algorithm, bytes]], seed: int) -> _ServerList:
    from hashmatch.client import Client, HashEntry

    name = f"eval-{seed}-{secrets.token_hex(4)}"
    with Client(address, timeout=60) as client:
        client.create_list(name, description="hashmatch eval (temporary)")
        client.upload_hashes(
            name,
            [HashEntry(algorithm, value.hex(), label="eval", id=entry)
             for entry, hashes in sorted(listed.items()) for algorithm, value in hashes.items()],
        )
        info = client.get_list(name)
    return _ServerList(address, name, {a: info.thresholds[a] for a in PERCEPTUAL})


def _delete_server_list(server_list: _ServerList) -> None:
    from hashmatch.client import Client

    with Client(server_list.address, timeout=60) as client:
        client.delete_list(server_list.name)


@dataclass
class _Pool:
    """A worker pool (or None for one worker: everything in this process, easier to debug)."""

    config: WorkerConfig
    workers: int
    pool: multiprocessing.pool.Pool | None = None

    def __enter__(self) -> "_Pool":
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")
            self.pool = context.Pool(self.workers, initializer=init_worker, initargs=(self.config,))
        else:
            init_worker(self.config)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
        else:
            close_worker()


def jobs(run_split: Split, edits: tuple[Edit, ...]) -> list[Job]:
    """Every edit of every image, grouped by image (each worker then decodes an image once)."""
    out: list[Job] = []
    for role, paths in (("listed", run_split.listed), ("unrelated", run_split.unrelated)):
        for path in paths:
            for edit in edits:
                out.append(Job(len(out), str(path), role, edit.name))
    return out


def run(options: Options) -> Run:
    started = time.perf_counter()
    images = find_images(options.folder)
    limit = options.limit if options.limit is not None else (QUICK_IMAGES if options.quick else None)
    run_split = split(images, options.listed_fraction, options.seed, limit)
    edits = select(options.edits or (QUICK if options.quick else ()))
    config = WorkerConfig(options.seed, options.server, measure_cost=options.measure_cost and not options.server)
    progress = options.progress

    # 1. the listed originals' hashes (in process here, or by the server's HashImage)
    with _Pool(config, options.workers) as pool:
        listed_hashes = _map(pool.pool, hash_listed, [str(p) for p in run_split.listed], "listing", progress)
    listed = {p.name: h for p, h in zip(run_split.listed, listed_hashes)}

    server_list = _load_server_list(options.server, listed, options.seed) if options.server else None
    try:
        if server_list is not None:
            config = WorkerConfig(options.seed, options.server, server_list.name, measure_cost=False)
        # 2. every upload: edit, hash (and match, against a server)
        with _Pool(config, options.workers) as pool:
            uploads = _map(pool.pool, run_job, jobs(run_split, edits), "uploads", progress)
    finally:
        if server_list is not None:
            _delete_server_list(server_list)

    result = Run(options, run_split, edits, listed, uploads)
    good = [u for u in uploads if u.error is None and "image" in u.hashes]
    # 3. the matches the service gives at the list's thresholds, for the cross-check
    if server_list is not None:
        result.thresholds = server_list.thresholds
        result.hits = {row: list(u.hits or []) for row, u in enumerate(good)}
    else:
        with crosscheck.in_process_lists(listed) as lists:
            thresholds = lists.get_list(crosscheck.LIST_NAME).thresholds  # type: ignore[attr-defined]
            result.thresholds = {a: thresholds[a] for a in PERCEPTUAL}
            result.hits = crosscheck.index_hits(lists, good)
    result.seconds = time.perf_counter() - started
    return result

