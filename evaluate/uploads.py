"""One upload of the evaluation: an image, edited, hashed (and matched) through the real path.

Runs in the worker processes. In process, the upload's bytes go through
``hashmatch.hashing.hash_image``, exactly as the server's MatchImage hashes them, and the region
variants through ``hashmatch.hashing.regions.region_crops`` and ``hash_pil_image``; the runner
then matches the hashes through ``HashLists`` in the main process (faiss and the store live
there). Against a server, every upload and every region crop (as PNG) goes through the SDK's
``match_image``: the server hashes and matches it, and its hits come back with the hashes.
"""

from __future__ import annotations

import functools
import io
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from hashmatch.hashing import DEFAULT_ALGORITHMS, PERCEPTUAL, Algorithm, hash_image, hash_pil_image
from hashmatch.hashing.decode import open_image
from hashmatch.hashing.errors import DEFAULT_MAX_PIXELS
from hashmatch.hashing.regions import Region, find_regions

from .edits import EDITS, Source, encode

#: The query as uploaded, then the region variants region_crops may add.
VARIANTS: tuple[str, ...] = ("image", "trimmed", "embedded")
#: What MatchImage hashes by default, so the cost ratio is the one the service would see.
COST_ALGORITHMS: tuple[Algorithm, ...] = tuple(DEFAULT_ALGORITHMS)
COST_PERCEPTUAL: tuple[Algorithm, ...] = tuple(a for a in DEFAULT_ALGORITHMS if a.spec.perceptual)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Job:
    index: int
    path: str
    role: str  # "listed" or "unrelated"
    edit: str


@dataclass(frozen=True)
class ServerHit:
    variant: str
    entry_id: str
    algorithm: Algorithm
    distance: int


@dataclass(frozen=True)
class Cost:
    """Milliseconds for one upload: hashing it as MatchImage does by default (decode, PDQ,
    pHash, MD5, SHA-256), finding its regions, and hashing the crops found (PDQ, pHash)."""

    base_ms: float
    regions_ms: float
    crops_ms: float
    crops: int

    @property
    def with_variants_ms(self) -> float:
        return self.base_ms + self.regions_ms + self.crops_ms


@dataclass
class Upload:
    job: Job
    # variant -> algorithm -> raw hash bytes; "image" always, region variants when found
    hashes: dict[str, dict[Algorithm, bytes]] = field(default_factory=dict)
    boxes: dict[str, Box] = field(default_factory=dict)
    hits: list[ServerHit] | None = None  # against a server: what it matched
    cost: Cost | None = None
    error: str | None = None


@dataclass(frozen=True)
class WorkerConfig:
    seed: int
    server: str | None = None  # None: in process
    list_name: str = ""
    measure_cost: bool = True
    timeout: float = 60.0


_config: WorkerConfig | None = None
_client = None  # the SDK client of this worker process, against a server


def init_worker(config: WorkerConfig) -> None:
    """Pool initializer: each worker process keeps the configuration and its own gRPC channel
    (with one worker, this process does, until close_worker)."""
    global _config, _client
    close_worker()
    _config = config
    if config.server:
        from hashmatch.client import Client

        _client = Client(config.server, timeout=config.timeout)


def close_worker() -> None:
    global _client
    if _client is not None:
        _client.close()
        _client = None


@functools.lru_cache(maxsize=4)
def load_source(path: str) -> Source:
    # Jobs come in image order, so each worker decodes an image about once.
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        rgb = image.convert("RGB")
    return Source(Path(path).name, data, rgb)


def edit_rng(seed: int, image: str, edit: str) -> np.random.Generator:
    """The same numbers for an (image, edit) whichever worker runs it, and in every run."""
    return np.random.default_rng([seed, zlib.crc32(image.encode()), zlib.crc32(edit.encode())])


def edited_bytes(job: Job, seed: int) -> bytes:
    source = load_source(job.path)
    return EDITS[job.edit].apply(source, edit_rng(seed, source.name, job.edit))


def run_job(job: Job) -> Upload:
    assert _config is not None, "init_worker was not called"
    upload = Upload(job)
    try:
        data = edited_bytes(job, _config.seed)
        if _client is not None:
            _match_on_server(upload, data)
        else:
            _hash_in_process(upload, data, _config.measure_cost)
    except Exception as exc:  # noqa: BLE001 - one bad image is reported, the run goes on
        upload.error = f"{type(exc).__name__}: {exc}"
    return upload


def hash_listed(path: str) -> dict[Algorithm, bytes]:
    """The hashes a listed original is loaded with: its file, as it is."""
    data = Path(path).read_bytes()
    if _client is not None:
        result = _client.hash_image(data, PERCEPTUAL)
        return {h.algorithm: h.to_hash().value for h in result.hashes}
    return {r.algorithm: r.hash.value for r in hash_image(data, PERCEPTUAL).results}


def _decode(data: bytes) -> Image.Image:
    opened = open_image(data, max_pixels=DEFAULT_MAX_PIXELS, decode=True)
    return opened.image


def _regions(image: Image.Image) -> tuple[list[Region], list[tuple[str, Image.Image]]]:
    # What region_crops() does, keeping the boxes for the report.
    regions = find_regions(image)
    return regions, [(region.name, image.crop(region.box)) for region in regions]


def _hash_in_process(upload: Upload, data: bytes, measure_cost: bool) -> None:
    upload.hashes["image"] = {r.algorithm: r.hash.value for r in hash_image(data, PERCEPTUAL).results}
    image = _decode(data)
    try:
        started = time.perf_counter()
        regions, crops = _regions(image)
        regions_ms = (time.perf_counter() - started) * 1000
        upload.boxes = {region.name: region.box for region in regions}
        crops_ms = 0.0
        for name, crop in crops:
            upload.hashes[name] = {r.algorithm: r.hash.value for r in hash_pil_image(crop, PERCEPTUAL)}
            if measure_cost:
                started = time.perf_counter()
                hash_pil_image(crop, COST_PERCEPTUAL)
                crops_ms += (time.perf_counter() - started) * 1000
        if measure_cost:
            started = time.perf_counter()
            hash_image(data, COST_ALGORITHMS)
            base_ms = (time.perf_counter() - started) * 1000
            upload.cost = Cost(base_ms, regions_ms, crops_ms, len(crops))
    finally:
        image.close()


def _match_on_server(upload: Upload, data: bytes) -> None:
    assert _client is not None and _config is not None
    queries: list[tuple[str, bytes]] = [("image", data)]
    image = _decode(data)
    try:
        regions, crops = _regions(image)
        upload.boxes = {region.name: region.box for region in regions}
        queries += [(name, encode(crop)) for name, crop in crops]
    finally:
        image.close()
    upload.hits = []
    for variant, payload in queries:
        result = _client.match_image(payload, [_config.list_name], PERCEPTUAL)
        upload.hashes[variant] = {h.algorithm: h.to_hash().value for h in result.hashes}
        upload.hits += [ServerHit(variant, m.entry_id, m.algorithm, m.distance) for m in result.matches]
