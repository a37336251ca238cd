"""Candidate search: hash joins, Hamming search, LSH, dense kNN."""
from .hashjoin import duplicate_groups, hash_join, keys_array
from .knn import nearest, normalize_rows

__all__ = ["hash_join", "duplicate_groups", "keys_array", "nearest", "normalize_rows",
           "calibrated_threshold", "null_scores"]


def __getattr__(name):
    # calibration lives in leakguard.similarity; re-exported here lazily (no import cycle)
    if name in ("calibrated_threshold", "null_scores"):
        from ..similarity import calibration

        return getattr(calibration, name)
    raise AttributeError(name)
