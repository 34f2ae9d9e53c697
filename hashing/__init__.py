"""Image -> hashes, in process: PDQ, pHash, dHash, aHash, wHash, MD5, SHA-1, SHA-256. No gRPC here.

The algorithm table, hash values and errors import without Pillow or numpy (the thin client uses
``hashmatch.hashing.algorithms``, which runs this file first). The hashing functions and their
result types load Pillow, numpy, scipy and imagehash on first use:
``from hashmatch.hashing import hash_image`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .algorithms import (
    DEFAULT_ALGORITHMS,
    DIGESTS,
    PERCEPTUAL,
    SPECS,
    Algorithm,
    AlgorithmSpec,
    Hash,
    HashFormatError,
    Metric,
    parse_hex,
)
from .errors import DEFAULT_MAX_PIXELS, ImageError, ImageTooLarge, InvalidImage
from .orientation import ALL_ORIENTATIONS, Orientation

if TYPE_CHECKING:
    from .compute import SUPPORTED_FORMATS, HashResult, ImageHashes, hash_image, hash_pil_image

# name -> submodule that defines it, imported on first access (PEP 562)
_LAZY = {
    "HashResult": "compute",
    "ImageHashes": "compute",
    "hash_image": "compute",
    "hash_pil_image": "compute",
    "SUPPORTED_FORMATS": "compute",
}

__all__ = [
    "ALL_ORIENTATIONS",
    "Orientation",
    "Algorithm",
    "AlgorithmSpec",
    "Metric",
    "SPECS",
    "PERCEPTUAL",
    "DIGESTS",
    "DEFAULT_ALGORITHMS",
    "Hash",
    "HashFormatError",
    "parse_hex",
    "HashResult",
    "ImageHashes",
    "ImageError",
    "InvalidImage",
    "ImageTooLarge",
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "hash_image",
    "hash_pil_image",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
