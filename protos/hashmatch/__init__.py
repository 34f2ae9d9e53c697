"""hashmatch: perceptual-hash image matching over gRPC.

Subpackages: hashing (image -> hashes, pure), index (lists, store, search),
server (the gRPC service), client (SDK and staff CLI), v1 (generated stubs).
"""

__version__ = "0.1.0"
