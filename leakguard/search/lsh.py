"""MinHash LSH by banding: candidate pairs of sets whose Jaccard similarity may pass a threshold.

A MinHash sketch of ``num_perm`` values is cut into ``bands`` bands of ``rows`` values; two sets
become candidates when any band is equal in both. With Jaccard similarity ``s`` that happens with
probability ``1 - (1 - s**rows)**bands``, an S-curve whose steep part sits near
``(1 / bands) ** (1 / rows)``. :func:`lsh_params` picks the bands and rows that minimise the
weighted false-positive and false-negative areas around a threshold (the rule datasketch uses).

Cost: one sort per band, then a join of equal band keys, so about ``bands * n log n``; buckets
holding more than ``max_bucket`` training sets (boilerplate every document shares) are skipped,
so one common band cannot make the pair count quadratic.

>>> import numpy as np
>>> from leakguard.search.lsh import lsh_candidates
>>> rng = np.random.default_rng(0)
>>> train = rng.integers(0, 2**32, size=(100, 128), dtype=np.uint64).astype(np.uint32)
>>> query = train[[3, 7]].copy(); query[:, :40] += 1          # about 69 % of values kept
>>> q_idx, t_idx = lsh_candidates(train, query, threshold=0.5)
>>> sorted(zip(q_idx.tolist(), t_idx.tolist()))
[(0, 3), (1, 7)]
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


def _false_positive_area(threshold: float, bands: int, rows: int) -> float:
    s = np.linspace(0.0, threshold, 201)
    return float(np.trapezoid(1 - (1 - s ** rows) ** bands, s))


def _false_negative_area(threshold: float, bands: int, rows: int) -> float:
    s = np.linspace(threshold, 1.0, 201)
    return float(np.trapezoid((1 - s ** rows) ** bands, s))


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, fn_weight: float = 0.7) -> tuple[int, int]:
    """(bands, rows) with ``bands * rows <= num_perm`` minimising weighted FP + FN areas.

    ``fn_weight`` > 0.5 favours recall: a missed copy is lost for good, while a false candidate
    only costs one exact verification.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    best, best_err = (1, num_perm), np.inf
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            err = ((1 - fn_weight) * _false_positive_area(threshold, bands, rows)
                   + fn_weight * _false_negative_area(threshold, bands, rows))
            if err < best_err:
                best, best_err = (bands, rows), err
    return best


def candidate_probability(similarity, bands: int, rows: int):
    """Probability that two sets with this Jaccard similarity become candidates."""
    s = np.asarray(similarity, dtype=np.float64)
    return 1 - (1 - s ** rows) ** bands


def _band_keys(sketches: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 keys: each band's ``rows`` values hashed into one 64-bit key."""
    sk = np.ascontiguousarray(sketches[:, :bands * rows]).astype(np.uint64)
    sk = sk.reshape(len(sketches), bands, rows)
    mult = (np.arange(1, rows + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
    with np.errstate(over="ignore"):
        keys = (sk * mult[None, None, :]).sum(axis=2, dtype=np.uint64)
        keys ^= keys >> np.uint64(29)
        keys *= np.uint64(0xBF58476D1CE4E5B9)
        keys ^= keys >> np.uint64(32)
        # the band number is part of the key, so equal values in different bands never join
        keys += np.arange(bands, dtype=np.uint64)[None, :] * np.uint64(0xD6E8FEB86659FD93)
    return keys


def lsh_candidates(index_sketches, query_sketches, threshold: float = 0.5, bands: int | None = None,
                   rows: int | None = None, max_bucket: int = 200, exclude_self: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Unique (query index, index index) pairs that share at least one LSH band.

    ``index_sketches`` ``(n, num_perm)`` and ``query_sketches`` ``(m, num_perm)`` are MinHash
    sketches (any integer dtype). ``bands``/``rows`` default to :func:`lsh_params` for
    ``threshold``. Buckets with more than ``max_bucket`` index members are skipped.
    ``exclude_self=True`` (query set is the index set) drops pairs ``(i, i)`` and keeps each
    unordered pair once, as ``(larger, smaller)``.
    """
    index = np.asarray(index_sketches)
    query = np.asarray(query_sketches)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if index.ndim != 2 or query.ndim != 2 or not len(index) or not len(query):
        return empty
    num_perm = index.shape[1]
    if query.shape[1] != num_perm:
        raise ValueError(f"sketches differ in length: index {num_perm}, query {query.shape[1]}")
    if bands is None or rows is None:
        bands, rows = lsh_params(float(threshold), int(num_perm))
    ik = _band_keys(index, bands, rows)
    qk = _band_keys(query, bands, rows)
    found_q, found_i = [], []
    for band in range(bands):
        keys = ik[:, band]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        lo = np.searchsorted(sorted_keys, qk[:, band], side="left")
        hi = np.searchsorted(sorted_keys, qk[:, band], side="right")
        size = hi - lo
        hit = np.flatnonzero((size > 0) & (size <= max_bucket))
        if not len(hit):
            continue
        counts = size[hit]
        q_rep = np.repeat(hit, counts)
        # positions lo..hi-1 of every hit query, flattened without a Python loop
        starts = np.repeat(lo[hit] - np.cumsum(np.concatenate([[0], counts[:-1]])), counts)
        pos = starts + np.arange(counts.sum())
        found_q.append(q_rep)
        found_i.append(order[pos])
    if not found_q:
        return empty
    q = np.concatenate(found_q).astype(np.int64)
    i = np.concatenate(found_i).astype(np.int64)
    if exclude_self:
        keep = q != i
        q, i = q[keep], i[keep]
        q, i = np.maximum(q, i), np.minimum(q, i)
    pair = np.unique(np.stack([q, i], axis=1), axis=0) if len(q) else np.zeros((0, 2), np.int64)
    return pair[:, 0], pair[:, 1]
