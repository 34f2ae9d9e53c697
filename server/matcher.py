"""MatcherService: upload pipelines send an image (or hashes) and get every listed match.

The flow is one way: request -> hashing (bytes -> hashes) -> index (hashes -> matches under each
list's thresholds) -> protobuf. Image bytes are never stored or logged.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import grpc

from hashmatch.hashing import DEFAULT_ALGORITHMS, DIGESTS, Algorithm, ImageHashes, hash_image
from hashmatch.index import HashLists
from hashmatch.v1 import hashes_pb2, matcher_pb2, matcher_pb2_grpc

from . import convert
from .config import ServerConfig
from .errors import RequestError, status_of, streaming, unary
from .hashing_slots import HashingSlots, default_slots
from .limits import ensure_active


class MatcherServicer(matcher_pb2_grpc.MatcherServiceServicer):
    def __init__(self, lists: HashLists, config: ServerConfig) -> None:
        self._lists = lists
        self._config = config
        self.slots = HashingSlots(config.hashing_slots or default_slots(config.workers))

    def _hash(
        self,
        image: bytes,
        algorithm_values: Sequence[int],
        field: str,
        context: grpc.ServicerContext,
        *,
        fast: bool,
        orientations: bool,
        regions: bool = False,
        also: Sequence[Algorithm] = (),
    ) -> ImageHashes:
        # ``also``: computed beside the defaults when the request names no algorithm.
        algorithms = convert.algorithms_from_proto(algorithm_values, field) or [*DEFAULT_ALGORITHMS, *also]
        with self.slots.held(context):
            return hash_image(
                image,
                algorithms,
                max_pixels=self._config.max_pixels,
                orientations=orientations,
                fast=fast or self._config.fast,
                regions=regions,
            )

    @unary
    def HashImage(self, request: matcher_pb2.HashImageRequest, context: grpc.ServicerContext):
        hashes = self._hash(
            request.image, request.algorithms, "algorithms", context,
            fast=request.fast, orientations=request.include_orientations,
        )
        return matcher_pb2.HashImageResponse(
            hashes=[convert.hash_result_to_proto(r) for r in hashes.results + hashes.variants],
            image=convert.image_info_to_proto(hashes),
        )

    def _match_image(
        self, request: matcher_pb2.MatchImageRequest, context: grpc.ServicerContext
    ) -> matcher_pb2.MatchImageResponse:
        # Every orientation is hashed and searched; lists with match_orientations off ignore the
        # variants (HashLists.match), and a variant's hit points at its algorithm's original hash.
        hashes = self._hash(
            request.image, request.algorithms, "algorithms", context,
            fast=request.fast, orientations=True, regions=self._config.match_regions,
            also=self._listed_digests(),
        )
        # Hashing is the costly step: a client that gave up meanwhile gets no search.
        ensure_active(context)
        original_index = {r.hash.algorithm: i for i, r in enumerate(hashes.results)}
        # Variants (turns, regions) are searched in the same batch; a hit of one points at its
        # algorithm's hash of the whole image as uploaded.
        queries = hashes.results + hashes.variants + hashes.region_variants
        found = self._lists.match(
            [r.hash for r in queries],
            request.list_names,
            [r.orientation for r in queries],
            [original_index[r.hash.algorithm] for r in queries],
            [r.region for r in queries],
        )
        return matcher_pb2.MatchImageResponse(
            hashes=[convert.hash_result_to_proto(r) for r in hashes.results],
            matches=[convert.hit_to_proto(h) for h in found.hits],
            image=convert.image_info_to_proto(hashes),
            index_generation=found.generation,
        )

    def _listed_digests(self) -> list[Algorithm]:
        """The digests outside the defaults (SHA-1) that some list holds entries of.

        MatchImage computes them too when the request names no algorithm, so loading an NCMEC
        SHA-1 list is enough for uploads to match it. A digest is one hashlib pass over bytes
        already in memory (well under a millisecond per megabyte beside tens for decoding and
        PDQ), and asking the index keeps the response's hashes the documented four for every
        deployment that lists no SHA-1.
        """
        return [a for a in DIGESTS if a not in DEFAULT_ALGORITHMS and self._lists.entry_count(a)]

    @unary
    def MatchImage(self, request: matcher_pb2.MatchImageRequest, context: grpc.ServicerContext):
        return self._match_image(request, context)

    @unary
    def MatchHashes(self, request: matcher_pb2.MatchHashesRequest, context: grpc.ServicerContext):
        if not request.hashes:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "hashes: at least one hash is required")
        if len(request.hashes) > self._config.max_query_hashes:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"hashes: {len(request.hashes)} hashes, over the limit of {self._config.max_query_hashes}",
            )
        queries = [convert.hash_from_proto(h, f"hashes[{i}]") for i, h in enumerate(request.hashes)]
        orientations = [
            convert.orientation_from_proto(h.orientation, f"hashes[{i}].orientation")
            for i, h in enumerate(request.hashes)
        ]
        found = self._lists.match(queries, request.list_names, orientations)
        return matcher_pb2.MatchHashesResponse(
            matches=[convert.hit_to_proto(h) for h in found.hits], index_generation=found.generation
        )

    @streaming
    def MatchImageStream(
        self, request_iterator: Iterator[matcher_pb2.MatchImageStreamRequest], context: grpc.ServicerContext
    ):
        for item in request_iterator:
            ensure_active(context)
            try:
                response = self._match_image(item.request, context)
            except Exception as exc:  # noqa: BLE001 - one bad image must not end the stream
                code, _reason, message = status_of(exc, "MatchImageStream")
                yield matcher_pb2.MatchImageStreamResponse(
                    request_id=item.request_id,
                    error=hashes_pb2.Error(code=code.value[0], message=message),
                )
            else:
                yield matcher_pb2.MatchImageStreamResponse(request_id=item.request_id, response=response)
