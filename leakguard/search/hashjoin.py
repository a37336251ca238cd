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
    """For each eval sample whose key occurs in train: (eval index, first train index with that key).

    Integer keys (tabular row hashes) are joined by sorting: numpy's vectorised sort of a million
    uint64 keys costs a fraction of building a hash table over them. Other keys (byte digests) go
    through pandas' hash table (khash). Either way O(n log n) at worst, never all pairs.
    """
    import pandas as pd

    tk, ti = keys_array(train_keys)
    ek, ei = keys_array(eval_keys)
    if len(tk) == 0 or len(ek) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if tk.dtype.kind in "iu" and ek.dtype == tk.dtype:
        rows_e, rows_t = _sorted_join(tk, ek)
        return ei[rows_e].astype(np.int64), ti[rows_t].astype(np.int64)
    tk, ek = _hashable(tk), _hashable(ek)
    first = ~pd.Series(tk).duplicated(keep="first").to_numpy()
    index = pd.Index(tk[first])
    pos = index.get_indexer(ek)
    hit = pos >= 0
    return ei[hit].astype(np.int64), ti[first][pos[hit]].astype(np.int64)


def duplicate_groups(keys) -> list[np.ndarray]:
    """Groups (index arrays, 2 or more members) of samples of one split sharing a key."""
    import pandas as pd

    k, idx = keys_array(keys)
    if len(k) == 0:
        return []
    if k.dtype.kind in "iu":
        sk = np.sort(k)
        repeated_keys = _sorted_unique(sk[1:][sk[1:] == sk[:-1]])
        if not len(repeated_keys):
            return []
        rows, codes = _rows_with_keys(k, repeated_keys)
        k, idx = codes, idx[rows]
    else:
        k = _hashable(k)
        repeated = pd.Series(k).duplicated(keep=False).to_numpy()
        if not repeated.any():
            return []
        k, idx = k[repeated], idx[repeated]  # only the repeated keys are sorted
    order = np.argsort(k, kind="stable")
    sk = k[order]
    starts = np.flatnonzero(np.concatenate([[True], sk[1:] != sk[:-1]]))
    ends = np.append(starts[1:], len(sk))
    return [idx[order[s:e]] for s, e in zip(starts, ends)]


def _sorted_join(tk: np.ndarray, ek: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eval rows, first train row with the same key) for integer keys, by sorting."""
    st, se = np.sort(tk), np.sort(ek)
    pos = np.minimum(np.searchsorted(st, se), len(st) - 1)
    shared = _sorted_unique(se[st[pos] == se])  # the keys in both: usually few
    if not len(shared):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    eval_rows, eval_codes = _rows_with_keys(ek, shared)
    train_rows, train_codes = _rows_with_keys(tk, shared)
    # the first train row per key: rows ascend, so the first of each run after a stable sort
    order = np.argsort(train_codes, kind="stable")
    sorted_codes = train_codes[order]
    heads = np.flatnonzero(np.concatenate([[True], sorted_codes[1:] != sorted_codes[:-1]]))
    first = np.empty(len(shared), dtype=np.int64)
    first[sorted_codes[heads]] = train_rows[order[heads]]
    return eval_rows, first[eval_codes]


def _sorted_unique(sorted_keys: np.ndarray) -> np.ndarray:
    """Unique values of a sorted array (np.unique would hash them again)."""
    if len(sorted_keys) < 2:
        return sorted_keys
    return sorted_keys[np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]])]


def _rows_with_keys(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose key is in the unique array ``wanted``, position of that key in it).

    A hash table over the few wanted keys stays in the CPU cache; a binary search of every key
    (``searchsorted``) was several times slower.
    """
    import pandas as pd

    pos = pd.Index(wanted).get_indexer(keys)
    rows = np.flatnonzero(pos >= 0)
    return rows, pos[rows]


def _hashable(keys: np.ndarray) -> np.ndarray:
    """Fixed-width byte keys as bytes objects for pandas' hash table; numbers stay as they are.

    (Trailing NUL bytes are dropped by the S view, which keeps equal-width keys distinct.)
    """
    if keys.dtype.kind == "V":
        return keys.view(f"S{keys.dtype.itemsize}").astype(object)
    return keys
