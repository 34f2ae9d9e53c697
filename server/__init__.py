"""The gRPC service: servicers that turn requests into hashing and index calls."""
