"""Protobuf <-> the hashing and index objects. Nothing here decides anything."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.timestamp_pb2 import Timestamp

from hashmatch.hashing import Algorithm, Hash, HashFormatError, HashResult, ImageHashes, Orientation
from hashmatch.index import Hit, ListInfo
from hashmatch.v1 import hashes_pb2, lists_pb2


class BadField(ValueError):
    """A request field is not acceptable; the message names the field."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


def _table(enum_type, prefix: str, members) -> dict:
    """{proto number: member} for the members whose name the proto enum has as ``prefix + NAME``."""
    names = set(enum_type.keys())
    return {enum_type.Value(f"{prefix}{m.name}"): m for m in members if f"{prefix}{m.name}" in names}


# The conversions run for every hash of every request: dictionaries built once, not names formatted
# and parsed each time. Numbers missing from them take the checking path below.
_ALGORITHM_OF = _table(hashes_pb2.Algorithm, "ALGORITHM_", Algorithm)
_ALGORITHM_NUMBER = {a: n for n, a in _ALGORITHM_OF.items()}
_ORIENTATION_OF = _table(hashes_pb2.Orientation, "ORIENTATION_", Orientation)
_ORIENTATION_NUMBER = {o: n for n, o in _ORIENTATION_OF.items()}
_REGION_NUMBER = {name.removeprefix("IMAGE_REGION_").lower(): number
                  for name, number in hashes_pb2.ImageRegion.items() if number}


def algorithm_from_proto(value: int, field: str) -> Algorithm:
    known = _ALGORITHM_OF.get(value)
    if known is not None:
        return known
    try:
        name = hashes_pb2.Algorithm.Name(value)
    except ValueError:
        raise BadField(f"{field}: unknown algorithm number {value}") from None
    if value == hashes_pb2.ALGORITHM_UNSPECIFIED:
        raise BadField(f"{field}: algorithm is not set (ALGORITHM_UNSPECIFIED)")
    return Algorithm.parse(name)


def algorithm_to_proto(algorithm: Algorithm) -> int:
    number = _ALGORITHM_NUMBER.get(algorithm)
    return number if number is not None else hashes_pb2.Algorithm.Value(f"ALGORITHM_{algorithm.name}")


def orientation_from_proto(value: int, field: str) -> Orientation:
    if value == hashes_pb2.ORIENTATION_UNSPECIFIED:
        return Orientation.ORIGINAL
    known = _ORIENTATION_OF.get(value)
    if known is not None:
        return known
    try:
        name = hashes_pb2.Orientation.Name(value)
    except ValueError:
        raise BadField(f"{field}: unknown orientation number {value}") from None
    return Orientation[name.removeprefix("ORIENTATION_")]


def orientation_to_proto(orientation: Orientation) -> int:
    number = _ORIENTATION_NUMBER.get(orientation)
    return number if number is not None else hashes_pb2.Orientation.Value(f"ORIENTATION_{orientation.name}")


def algorithms_from_proto(values, field: str) -> list[Algorithm]:
    return [algorithm_from_proto(v, f"{field}[{i}]") for i, v in enumerate(values)]


def hash_from_proto(message: hashes_pb2.Hash, field: str) -> Hash:
    algorithm = algorithm_from_proto(message.algorithm, f"{field}.algorithm")
    try:
        return Hash.from_hex(algorithm, message.value)
    except HashFormatError as exc:
        raise BadField(f"{field}.value: {exc}", "INVALID_HASH") from None


def hash_result_to_proto(result: HashResult) -> hashes_pb2.Hash:
    message = hashes_pb2.Hash(algorithm=algorithm_to_proto(result.hash.algorithm), value=result.hash.hex)
    if result.quality is not None:
        message.quality = result.quality
    if result.orientation is not Orientation.ORIGINAL:  # unset means the image as uploaded
        message.orientation = orientation_to_proto(result.orientation)
    return message


def image_info_to_proto(hashes: ImageHashes) -> hashes_pb2.ImageInfo:
    return hashes_pb2.ImageInfo(
        width=hashes.width, height=hashes.height, format=hashes.format, frame_count=hashes.frame_count
    )


def hit_to_proto(hit: Hit) -> hashes_pb2.Match:
    return hashes_pb2.Match(
        list_name=hit.list_name,
        entry_id=hit.entry_id,
        label=hit.label,
        algorithm=algorithm_to_proto(hit.algorithm),
        distance=hit.distance,
        threshold=hit.threshold,
        query_index=hit.query_index,
        orientation=orientation_to_proto(hit.orientation),
        region=_REGION_NUMBER.get(hit.region) or hashes_pb2.ImageRegion.Value(f"IMAGE_REGION_{hit.region.upper()}"),
        confirmed_by=algorithm_to_proto(hit.confirmed_by) if hit.confirmed_by is not None else 0,
    )


def thresholds_from_proto(values, field: str) -> dict[Algorithm, int]:
    thresholds: dict[Algorithm, int] = {}
    for i, item in enumerate(values):
        algorithm = algorithm_from_proto(item.algorithm, f"{field}[{i}].algorithm")
        if algorithm in thresholds:
            raise BadField(f"{field}[{i}]: {algorithm.name} is given twice")
        thresholds[algorithm] = item.threshold
    return thresholds


def _timestamp(value) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def thresholds_to_proto(thresholds: Mapping[Algorithm, int]) -> list[lists_pb2.AlgorithmThreshold]:
    return [lists_pb2.AlgorithmThreshold(algorithm=algorithm_to_proto(a), threshold=t) for a, t in thresholds.items()]


def list_to_proto(info: ListInfo) -> lists_pb2.HashList:
    return lists_pb2.HashList(
        name=info.name,
        description=info.description,
        thresholds=thresholds_to_proto(info.thresholds),
        enabled=info.enabled,
        entry_counts=[
            lists_pb2.AlgorithmCount(algorithm=algorithm_to_proto(a), count=n) for a, n in info.counts.items()
        ],
        entry_count=info.entry_count,
        create_time=_timestamp(info.created),
        update_time=_timestamp(info.updated),
        match_orientations=info.match_orientations,
        confirmed_thresholds=thresholds_to_proto(info.confirmed_thresholds),
    )
