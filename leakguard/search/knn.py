"""Dense nearest-neighbour search: FAISS when installed, else exact numpy in blocks.

Both paths are exact (flat) searches, so results do not depend on which one ran. Memory stays
bounded: the numpy path scores ``block`` queries at a time against the whole index.
"""
from __future__ import annotations

import numpy as np

METRICS = ("cosine", "l2")


def _as_matrix(x, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :] if arr.size else arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n, d), got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{what} row {bad} holds NaN or infinite values")
    return np.ascontiguousarray(arr)


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0))


# Searches with more scores than this (query x index vectors) go to FAISS when it is installed,
# smaller ones to numpy. Both are exact; their cosines differ in the last float32 bits (another
# summation order). Measured on the 2-core box with one thread (the image checks' searches run
# under threadpool_limits(1)), CPU s numpy / FAISS 1.15 (its own OpenBLAS 0.3.15): 800 x 250 x 256
# 0.005 / 0.007, 1778 x 444 0.011 / 0.033, 3000 x 1000 0.038 / 0.147, 32000 x 444 0.17 / 0.99; with
# both libraries' default threads, 100 000 x 2000 x 256 still 4.4 / 6.9 (wall 15.8 / 27.1, load 10).
# FAISS's threads keep the largest searches, where numpy's per-row selection runs on one core.
FAISS_FROM = 1 << 28


def _faiss():
    try:
        import faiss  # noqa: F401
    except ImportError:
        return None
    return faiss


def nearest(index_vectors, query_vectors, k: int = 1, metric: str = "cosine",
            exclude_self: bool = False, block: int = 2048, use_faiss: bool | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest index vectors of every query vector.

    Returns ``(scores, indices)``, both ``(n_query, k)``, best first:

    - ``metric="cosine"``: scores are cosine **similarities** (higher = closer, 1 = same direction);
    - ``metric="l2"``: scores are Euclidean **distances** (lower = closer, not squared).

    When the index has fewer than ``k`` vectors, missing slots hold index ``-1`` and score
    ``-inf`` (cosine) or ``+inf`` (l2). ``exclude_self=True`` is for querying a set against
    itself (``query_vectors is index_vectors`` or equal length and order): row ``i`` never
    returns ``i``. FAISS (exact flat index) is used when installed for searches of more than
    ``FAISS_FROM`` scores (query x index vectors), or always with ``use_faiss=True``; smaller ones
    take numpy's BLAS product (see ``FAISS_FROM``). ``use_faiss=False``: numpy always.

    >>> import numpy as np
    >>> X = np.eye(3)
    >>> sims, idx = nearest(X, np.array([[1.0, 0.1, 0.0]]), k=1)
    >>> int(idx[0, 0]), round(float(sims[0, 0]), 3)
    (0, 0.995)
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    base = _as_matrix(index_vectors, "index_vectors")
    query = _as_matrix(query_vectors, "query_vectors")
    n_q = len(query)
    worst = -np.inf if metric == "cosine" else np.inf
    scores = np.full((n_q, k), worst, dtype=np.float32)
    indices = np.full((n_q, k), -1, dtype=np.int64)
    if n_q == 0 or len(base) == 0:
        return scores, indices
    if base.shape[1] != query.shape[1]:
        raise ValueError(f"index vectors have {base.shape[1]} dimensions, query vectors {query.shape[1]}")
    if exclude_self and len(base) != n_q:
        raise ValueError("exclude_self=True needs the query set to be the index set")
    if metric == "cosine":
        base, query = normalize_rows(base), normalize_rows(query)
    kk = min(k + (1 if exclude_self else 0), len(base))
    if use_faiss is None:
        use_faiss = n_q * len(base) > FAISS_FROM
    faiss = _faiss() if use_faiss else None
    if faiss is not None:
        index = faiss.IndexFlatIP(base.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(base.shape[1])
        index.add(base)
        s, i = index.search(query, kk)
        if metric == "l2":
            s = np.sqrt(np.maximum(s, 0))
        s, i = s.astype(np.float32), i.astype(np.int64)
    else:
        s, i = _numpy_search(base, query, kk, metric, block)
    if exclude_self:
        s, i = _drop_self(s, i, worst)
    take = min(k, s.shape[1])
    scores[:, :take] = s[:, :take]
    indices[:, :take] = i[:, :take]
    return scores, indices


def _numpy_search(base, query, kk, metric, block):
    n_q = len(query)
    # at most 2**24 scores (64 MB) in flight, whatever the index size
    block = max(1, min(block, (1 << 24) // max(len(base), 1)))
    s_out = np.empty((n_q, kk), dtype=np.float32)
    i_out = np.empty((n_q, kk), dtype=np.int64)
    base_sq = (base ** 2).sum(axis=1) if metric == "l2" else None
    for start in range(0, n_q, block):
        q = query[start:start + block]
        sims = q @ base.T
        if metric == "l2":
            # distance order == order of (|b|^2 - 2 q.b); negate so larger is closer, as for cosine
            sims = 2 * sims - base_sq[None, :]
        if kk == 1:  # the best one: argmax (the first of equal scores), 14x cheaper than a partition
            part = np.argmax(sims, axis=1)[:, None]
        elif kk < sims.shape[1]:
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        else:
            part = np.broadcast_to(np.arange(sims.shape[1]), sims.shape).copy()
        vals = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        idx = np.take_along_axis(part, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        if metric == "l2":
            q_sq = (q ** 2).sum(axis=1, keepdims=True)
            vals = np.sqrt(np.maximum(q_sq - vals, 0))
        s_out[start:start + len(q)] = vals
        i_out[start:start + len(q)] = idx
    return s_out, i_out


def _drop_self(s, i, worst):
    """Remove each row's own index (wherever ties put it) and shift the rest left."""
    rows = np.arange(len(i))[:, None]
    is_self = i == rows
    # rows where self did not appear lose their last (worst) neighbour instead
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    keep = ~is_self
    n_keep = s.shape[1] - 1
    s2 = s[keep].reshape(len(s), n_keep) if n_keep else np.full((len(s), 0), worst, np.float32)
    i2 = i[keep].reshape(len(i), n_keep) if n_keep else np.full((len(i), 0), -1, np.int64)
    return s2, i2
