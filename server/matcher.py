"""MatcherService: upload pipelines send an image (or hashes) and get every listed match.

The flow is one way: request -> hashing (bytes -> hashes) -> index (hashes -> matches under each
list's thresholds) -> protobuf. Image bytes are never stored or logged.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import grpc

from hashmatch.hashing import DEFAULT_ALGORITHMS, Algorithm, ImageHashes, hash_image
from hashmatch.index import HashLists
from hashmatch.v1 import hashes_pb2, matcher_pb2, matcher_pb2_grpc

from . import convert
from .config import ServerConfig
from .errors import RequestError, status_of, streaming, unary


class MatcherServicer(matcher_pb2_grpc.MatcherServiceServicer):
    def __init__(self, lists: HashLists, config: ServerConfig) -> None:
        self._lists = lists
        self._config = config

    def _hash(self, image: bytes, algorithm_values: Sequence[int], field: str) -> ImageHashes:
        algorithms = convert.algorithms_from_proto(algorithm_values, field) or list(DEFAULT_ALGORITHMS)
        return hash_image(image, algorithms, max_pixels=self._config.max_pixels)

    @unary
    def HashImage(self, request: matcher_pb2.HashImageRequest, context: grpc.ServicerContext):
        hashes = self._hash(request.image, request.algorithms, "algorithms")
        return matcher_pb2.HashImageResponse(
            hashes=[convert.hash_result_to_proto(r) for r in hashes.results],
            image=convert.image_info_to_proto(hashes),
        )

    def _match_image(self, request: matcher_pb2.MatchImageRequest) -> matcher_pb2.MatchImageResponse:
        hashes = self._hash(request.image, request.algorithms, "algorithms")
        found = self._lists.match([r.hash for r in hashes.results], request.list_names)
        return matcher_pb2.MatchImageResponse(
            hashes=[convert.hash_result_to_proto(r) for r in hashes.results],
            matches=[convert.hit_to_proto(h) for h in found.hits],
            image=convert.image_info_to_proto(hashes),
            index_generation=found.generation,
        )

    @unary
    def MatchImage(self, request: matcher_pb2.MatchImageRequest, context: grpc.ServicerContext):
        return self._match_image(request)

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
            try:
                response = self._match_image(item.request)
            except Exception as exc:  # noqa: BLE001 - one bad image must not end the stream
                code, _reason, message = status_of(exc, "MatchImageStream")
                yield matcher_pb2.MatchImageStreamResponse(
                    request_id=item.request_id,
                    error=hashes_pb2.Error(code=code.value[0], message=message),
                )
            else:
                yield matcher_pb2.MatchImageStreamResponse(request_id=item.request_id, response=response)
