"""Per-sample signatures: exact digests, perceptual codes, MinHash, audio fingerprints, embeddings."""
from . import exact  # noqa: F401  (registers the digest signatures)
from .cache import SignatureCache
from .compute import SignatureStore
from .registry import SIGNATURES, SignatureSpec, get_signature, register_signature

__all__ = ["SIGNATURES", "SignatureSpec", "SignatureCache", "SignatureStore", "get_signature",
           "register_signature"]
