"""Candidate search: hash joins, Hamming search, LSH, dense kNN."""
from .hashjoin import duplicate_groups, hash_join, keys_array

__all__ = ["hash_join", "duplicate_groups", "keys_array"]
