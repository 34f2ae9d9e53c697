"""The index snapshot beside the store, for a fast start-up: our own binary format, never pickle.

    header (64 bytes, little-endian)
        magic        8 bytes  b"HMINDEX\\0"
        version      uint32   FORMAT_VERSION
        header size  uint32   64
        generation   uint64   the store's entries generation the snapshot was taken at
        payload size uint64
        checksum     32 bytes SHA-256 of the payload
    payload
        toc size     uint64
        toc          UTF-8 JSON: per algorithm, its segments: sizes, plan, and where each array is
        arrays       raw little-endian arrays, each starting on a 64-byte boundary

Nothing in the file is trusted: the checksum is verified before anything is used, and every
number of the table of contents is checked against the file's size and the arrays' shapes
(read_snapshot raises SnapshotError; the caller rebuilds from the store). Written to a
temporary file, fsynced, then renamed over the old one: a crash leaves the old or the new file.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import BinaryIO, Mapping

import numpy as np

from hashmatch.hashing.algorithms import Algorithm

from .codes import words
from .mih import Plan
from .segment import Segment, with_tables
from .view import AlgorithmIndex

MAGIC = b"HMINDEX\0"
# 2: list ids may be stored as u1 or u2 (a version 1 reader would not know those dtypes).
FORMAT_VERSION = 2
# Version 1 is version 2 without those dtypes: still read, so an upgrade does not rebuild.
_READABLE_VERSIONS = (1, 2)
_HEADER = struct.Struct("<8sIIQQ32s")
_ALIGN = 64
# Only these dtypes may appear in a snapshot.
_DTYPES = {
    "u8": np.dtype("<u8"), "u4": np.dtype("<u4"), "u2": np.dtype("<u2"), "u1": np.dtype("u1"), "i8": np.dtype("<i8"),
}
_READ_CHUNK = 1 << 24


class SnapshotError(Exception):
    """The snapshot cannot be used (missing, corrupt, another format, or from another state)."""


def _dtype_name(array: np.ndarray) -> str:
    for name, dtype in _DTYPES.items():
        if array.dtype == dtype:
            return name
    raise TypeError(f"no snapshot encoding for {array.dtype}")


def write_snapshot(path: Path, entries_generation: int, indexes: Mapping[Algorithm, AlgorithmIndex]) -> int:
    """Writes the segments (with their dead positions) of every algorithm; returns bytes written."""
    arrays: list[np.ndarray] = []
    toc: dict = {"algorithms": {}}

    def place(array: np.ndarray) -> dict:
        arrays.append(np.ascontiguousarray(array))
        return {"index": len(arrays) - 1, "dtype": _dtype_name(array), "shape": list(array.shape)}

    for algorithm, index in indexes.items():
        segments = []
        for segment, dead in zip(index.segments, index.dead):
            entry = {
                "bits": segment.bits,
                "exact": segment.exact,
                "n": len(segment),
                "codes": place(segment.codes),
                "row_ids": place(segment.row_ids),
                "list_ids": place(segment.list_ids),
                "dead": place(dead.astype(np.int64)),
            }
            if segment.mih is not None:
                entry["plan"] = list(segment.mih.plan.lengths)
                entry["offsets"] = place(segment.mih.offsets)
                entry["perm"] = place(segment.mih.perm)
            if segment.order is not None:
                entry["order"] = place(segment.order)
            segments.append(entry)
        toc["algorithms"][algorithm.value] = segments
    # Offsets of the arrays, relative to the payload start, once the toc's own size is known.
    body = 8 + len(json.dumps(toc).encode()) + 64 * len(arrays) + 256
    offset = _aligned(body)
    positions = []
    for array in arrays:
        positions.append(offset)
        offset = _aligned(offset + array.nbytes)
    for segments in toc["algorithms"].values():
        for entry in segments:
            for value in entry.values():
                if isinstance(value, dict):
                    value["offset"] = positions[value.pop("index")]
    toc_bytes = json.dumps(toc).encode()
    if 8 + len(toc_bytes) > positions[0] if positions else False:
        raise AssertionError("snapshot table of contents outgrew its room")
    payload_size = offset if arrays else 8 + len(toc_bytes)

    tmp = path.with_name(path.name + ".tmp")
    digest = hashlib.sha256()
    with open(tmp, "wb") as f:
        f.write(b"\0" * _HEADER.size)
        written = 0

        def out(data) -> None:
            nonlocal written
            digest.update(data)
            f.write(data)
            written += len(memoryview(data).cast("B"))

        out(struct.pack("<Q", len(toc_bytes)))
        out(toc_bytes)
        for array, position in zip(arrays, positions):
            out(b"\0" * (position - written))
            out(array.view(np.uint8).reshape(-1).data if array.size else b"")
        out(b"\0" * (payload_size - written))
        f.seek(0)
        f.write(_HEADER.pack(MAGIC, FORMAT_VERSION, _HEADER.size, entries_generation, payload_size, digest.digest()))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return _HEADER.size + payload_size


def read_snapshot(path: Path) -> tuple[int, dict[Algorithm, AlgorithmIndex]]:
    """(entries generation, indexes). Raises SnapshotError for anything it cannot vouch for."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise SnapshotError(f"{path} does not exist") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: {exc}") from None
    with f:
        try:
            return _read(f, os.fstat(f.fileno()).st_size)
        except SnapshotError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, OverflowError, MemoryError, OSError) as exc:
            raise SnapshotError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None


def _read(f: BinaryIO, file_size: int) -> tuple[int, dict[Algorithm, AlgorithmIndex]]:
    raw = f.read(_HEADER.size)
    if len(raw) != _HEADER.size:
        raise SnapshotError("shorter than its header")
    magic, version, header_size, generation, payload_size, checksum = _HEADER.unpack(raw)
    if magic != MAGIC:
        raise SnapshotError("not a hashmatch index snapshot (bad magic)")
    if version not in _READABLE_VERSIONS:
        raise SnapshotError(f"format version {version}, this hashmatch reads {_READABLE_VERSIONS}")
    if header_size != _HEADER.size or file_size != _HEADER.size + payload_size:
        raise SnapshotError(f"size {file_size} does not match its header (payload {payload_size})")
    digest = hashlib.sha256()
    head = f.read(8)
    digest.update(head)
    (toc_size,) = struct.unpack("<Q", head)
    if toc_size > payload_size - 8:
        raise SnapshotError("table of contents larger than the file")
    toc_bytes = f.read(toc_size)
    digest.update(toc_bytes)
    # The toc is parsed before the checksum is known, so it is only used to size reads that
    # must fit in the file; nothing is built until the checksum matches.
    toc = json.loads(toc_bytes)
    specs = []
    for name, segments in toc["algorithms"].items():
        algorithm = Algorithm(name)
        for entry in segments:
            for key, value in entry.items():
                if isinstance(value, dict):
                    specs.append((value["offset"], key, value, entry, algorithm))
    for spec in specs:
        shape = tuple(int(d) for d in spec[2]["shape"])
        if any(d < 0 for d in shape) or len(shape) not in (1, 2) or not isinstance(spec[0], int):
            raise SnapshotError("bad array shape")
        spec[2]["nbytes"] = int(np.prod(shape, dtype=np.int64)) * _DTYPES[spec[2]["dtype"]].itemsize
    # Empty arrays share their offset with the next one: read them first.
    specs.sort(key=lambda s: (s[0], s[2]["nbytes"]))
    at = 8 + toc_size
    for offset, _key, spec, _entry, _algorithm in specs:
        dtype = _DTYPES[spec["dtype"]]
        shape = tuple(int(d) for d in spec["shape"])
        nbytes = spec["nbytes"]
        if not isinstance(offset, int) or offset < at or offset + nbytes > payload_size:
            raise SnapshotError("array outside the file")
        _skip(f, offset - at, digest)
        array = np.empty(shape, dtype)
        _read_into(f, array, digest)
        spec["array"] = array
        at = offset + nbytes
    _skip(f, payload_size - at, digest)
    if digest.digest() != checksum:
        raise SnapshotError("checksum mismatch")
    indexes: dict[Algorithm, AlgorithmIndex] = {}
    for name, segments in toc["algorithms"].items():
        algorithm = Algorithm(name)
        built, dead = [], []
        for entry in segments:
            segment, dead_positions = _segment(algorithm, entry)
            built.append(segment)
            dead.append(dead_positions)
        if not built:
            raise SnapshotError(f"{name}: no segments")
        indexes[algorithm] = AlgorithmIndex(algorithm, tuple(built), tuple(dead))
    return generation, indexes


def _segment(algorithm: Algorithm, entry: dict) -> tuple[Segment, np.ndarray]:
    spec = algorithm.spec
    n = int(entry["n"])
    bits = int(entry["bits"])
    exact = bool(entry["exact"])
    if bits != spec.bits or exact == spec.perceptual:
        raise SnapshotError(f"{algorithm.value}: segment of {bits} bits, exact={exact}")

    def get(key: str, dtypes: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
        array = entry[key]["array"]
        if entry[key]["dtype"] not in dtypes or array.shape != shape:
            raise SnapshotError(f"{algorithm.value}: {key} has shape {array.shape}, expected {shape}")
        return array

    codes = get("codes", ("u8",), (n, words(spec.nbytes)))
    row_ids = get("row_ids", ("u4", "i8"), (n,))
    list_ids = get("list_ids", ("u1", "u2", "u4", "i8"), (n,))
    dead = get("dead", ("i8",), (len(entry["dead"]["array"]),))
    if n and np.any(row_ids[1:] < row_ids[:-1]):
        raise SnapshotError(f"{algorithm.value}: row ids out of order")
    if len(dead) and (dead.min() < 0 or dead.max() >= n or np.any(dead[1:] <= dead[:-1])):
        raise SnapshotError(f"{algorithm.value}: bad dead positions")
    plan = tables = order = None
    if "plan" in entry:
        lengths = tuple(int(x) for x in entry["plan"])
        if sum(lengths) != bits or not all(1 <= x <= 32 for x in lengths):
            raise SnapshotError(f"{algorithm.value}: bad plan {lengths}")
        plan = Plan(bits, tuple(int(s) for s in np.cumsum((0,) + lengths[:-1])), lengths)
        offsets = get("offsets", ("u4",), (sum((1 << x) + 1 for x in lengths),))
        perm = get("perm", ("u4",), (n * len(lengths),))
        # Each table must end at n and never point past the codes.
        ends = np.cumsum([(1 << x) + 1 for x in lengths]) - 1
        if np.any(offsets[ends] != n) or (len(perm) and int(perm.max()) >= n):
            raise SnapshotError(f"{algorithm.value}: inconsistent multi-index tables")
        tables = (offsets, perm)
    if "order" in entry:
        order = get("order", ("u4",), (n,))
        if n and int(order.max()) >= n:
            raise SnapshotError(f"{algorithm.value}: bad order")
    if exact and order is None:
        raise SnapshotError(f"{algorithm.value}: exact segment without its order")
    return with_tables(bits, codes, row_ids, list_ids, plan, tables, order, exact), dead


def _read_into(f: BinaryIO, array: np.ndarray, digest) -> None:
    view = memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")
    done = 0
    while done < len(view):
        got = f.readinto(view[done : done + _READ_CHUNK])
        if not got:
            raise SnapshotError("file ends early")
        digest.update(view[done : done + got])
        done += got


def _skip(f: BinaryIO, count: int, digest) -> None:
    if count:
        data = f.read(count)
        if len(data) != count:
            raise SnapshotError("file ends early")
        digest.update(data)


def _aligned(offset: int) -> int:
    return (offset + _ALIGN - 1) // _ALIGN * _ALIGN


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
