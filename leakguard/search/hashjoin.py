"""Equality joins on per-sample keys: cost O(n log n), never all pairs."""
from __future__ import annotations

import numpy as np


def keys_array(keys) -> tuple[np.ndarray, np.ndarray]:
    """(sortable key array, indices of the samples that have a key) from a list with Nones."""
    if isinstance(keys, np.ndarray) and keys.dtype != object:
        return keys, np.arange(len(keys))
    idx = np.array([i for i, k in enumerate(keys) if k is not None], dtype=np.int64)
    if len(idx) == 0:
        return np.zeros(0, dtype="V1"), idx
    first = keys[idx[0]]
    if isinstance(first, bytes):
        width = len(first)
        arr = np.frombuffer(b"".join(keys[i] for i in idx), dtype=f"V{width}")
    else:
        arr = np.asarray([keys[i] for i in idx])
    return arr, idx


def hash_join(train_keys, eval_keys) -> tuple[np.ndarray, np.ndarray]:
    """For each eval sample whose key occurs in train: (eval index, first train index with that key)."""
    tk, ti = keys_array(train_keys)
    ek, ei = keys_array(eval_keys)
    if len(tk) == 0 or len(ek) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(tk, kind="stable")
    sorted_keys = tk[order]
    # first occurrence of each key in sorted order keeps the lowest train index (stable sort)
    uniq_mask = np.ones(len(sorted_keys), dtype=bool)
    uniq_mask[1:] = sorted_keys[1:] != sorted_keys[:-1]
    uniq_keys = sorted_keys[uniq_mask]
    uniq_first = ti[order[uniq_mask]]
    pos = np.searchsorted(uniq_keys, ek)
    pos_clip = np.minimum(pos, len(uniq_keys) - 1)
    hit = (pos < len(uniq_keys)) & (uniq_keys[pos_clip] == ek)
    return ei[hit].astype(np.int64), uniq_first[pos_clip[hit]].astype(np.int64)


def duplicate_groups(keys) -> list[np.ndarray]:
    """Groups (index arrays, 2 or more members) of samples of one split sharing a key."""
    k, idx = keys_array(keys)
    if len(k) == 0:
        return []
    order = np.argsort(k, kind="stable")
    sk = k[order]
    starts = np.flatnonzero(np.concatenate([[True], sk[1:] != sk[:-1]]))
    ends = np.append(starts[1:], len(sk))
    return [idx[order[s:e]] for s, e in zip(starts, ends) if e - s > 1]
