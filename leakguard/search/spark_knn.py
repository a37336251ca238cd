"""Exact k-nearest-neighbour search on Spark: every query's ``k`` nearest vectors of a Spark frame.

One primitive for the similarity checks whose local candidate search is a
:func:`leakguard.search.knn.nearest` call (image thumbnails, Fourier magnitudes and rotated
discs, embeddings): the query vectors (evaluation samples) sit on the driver and travel to the
executors as broadcast blocks of ``block_rows`` rows; each partition of the index frame (training
samples) computes its vectors in the executors and, for each block, keeps a running top-``k`` per
query over its batches with the local engine's own ``nearest`` (FAISS exact flat search when
installed, else numpy), so each partition ships ``k`` rows per query and search; one shuffle by
``(search, query)`` then merges the partitions' lists. The search is exact: the ``k`` best of the
union are among the union of each part's ``k`` best.

Ties: every index vector whose score equals the ``k``-th best is kept (up to ``extra`` more per
partition), so the result holds whichever of several identical vectors the local search would
pick at the ``k``-th place (FAISS's choice among equal scores depends on its blocking, not on a
documented rule). Callers that need the local engine's exact pick run the local search again on
the union of these neighbours (:mod:`leakguard.search.spark_image` does), which contains it.

Cost per block: the index frame is read once (its vectors recomputed), each partition ships
``n_searches x block_rows x (k + ties)`` rows of 28 B, and the broadcast is ``block_rows x sum(d)``
float32 values. See ``docs/scale.md`` (kNN on Spark) for figures.

>>> rows = knn_join(spark, train_frame, lambda pdf: {"v": np.stack(pdf["vec"])},
...                 [("v", query_matrix)], k=3)                    # doctest: +SKIP
"""
from __future__ import annotations

from functools import reduce

import numpy as np

IDX = "_lg_idx"
SCHEMA = "search int, q long, index long, score float"


def _merge_rows(good_a, ids_a, good_b, ids_b, keep: int):
    """Per row the ``keep`` best of two candidate lists: goodness descending, then index ascending."""
    good = np.concatenate([good_a, good_b], axis=1)
    ids = np.concatenate([ids_a, ids_b], axis=1)
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -good), axis=-1)[:, :keep]
    return np.take_along_axis(good, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _partition_top_k(batches, block, vectors, k: int, extra: int, metric: str, id_col: str, q_ids):
    """``mapInPandas`` body: per search of ``block`` (``(kind, query matrix)``) and query, the
    partition's ``k`` best index vectors and those tied with the ``k``-th (up to ``k + extra``)."""
    from threadpoolctl import threadpool_limits

    keep = k + extra
    sign = 1.0 if metric == "cosine" else -1.0  # goodness: higher is closer for both metrics
    # one task, one core (Spark's model): FAISS's OpenMP and BLAS threads would compete with the
    # other tasks' (the local engine limits small searches to one thread for the same reason)
    limits = threadpool_limits(1)
    try:
        yield from _top_k_batches(batches, block, vectors, k, keep, sign, metric, id_col, q_ids)
    finally:
        limits.unregister()


def _top_k_batches(batches, block, vectors, k, keep, sign, metric, id_col, q_ids):
    import pandas as pd

    from .knn import nearest

    best = None
    for pdf in batches:
        if not len(pdf):
            continue
        ids = pdf[id_col].to_numpy(np.int64)
        vecs = vectors(pdf)
        if best is None:
            best = [(np.full((len(q), 0), -np.inf, np.float32), np.zeros((len(q), 0), np.int64)) for _, q in block]
        for s, (kind, queries) in enumerate(block):
            scores, pos = nearest(vecs[kind], queries, k=min(keep, len(ids)), metric=metric)
            found = pos >= 0
            good = np.where(found, sign * scores, -np.inf).astype(np.float32)
            best[s] = _merge_rows(*best[s], good, np.where(found, ids[np.maximum(pos, 0)], -1), keep)
    if best is None:
        return
    out = []
    for s, (good, ids) in enumerate(best):
        if not good.shape[1]:
            continue
        kth = good[:, min(k, good.shape[1]) - 1][:, None]
        ok = (ids >= 0) & (good >= kth)
        rows, cols = np.nonzero(ok)
        out.append(pd.DataFrame({"search": np.full(len(rows), s, np.int32), "q": q_ids[rows],
                                 "index": ids[rows, cols], "score": (sign * good[rows, cols]).astype(np.float32)}))
    if out:
        yield pd.concat(out, ignore_index=True)


def knn_join(spark, index_frame, vectors, queries, k: int, metric: str = "cosine", *, query_ids=None,
             id_col: str = IDX, block_rows: int = 8192, extra: int = 4):
    """Every query's ``k`` nearest index vectors (exact), as a Spark DataFrame
    ``search int, q long, index long, score float``.

    - ``index_frame``: Spark DataFrame with a long ``id_col`` (the index sample's number) and the
      columns ``vectors`` reads;
    - ``vectors(pdf) -> {kind: (n, d) array}``: the index vectors of a pandas batch, rows in the
      batch's order (runs in the executors; the local engine's own vector code);
    - ``queries``: list of ``(kind, (n_q, d) array)``, one per search; every matrix has the same
      ``n_q`` rows, query ``q`` being row ``q``; search ``s`` compares ``vectors[kind]`` with the
      ``s``-th matrix;
    - ``query_ids``: the ``q`` each query row reports (int64, default its row number).

    Scores as :func:`leakguard.search.knn.nearest` gives them (cosine similarity, or Euclidean
    distance for ``metric="l2"``). Per ``(search, q)``: the ``k`` best and every index vector tied
    with the ``k``-th (see the module docstring); fewer when the index frame holds fewer vectors.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if metric not in ("cosine", "l2"):
        raise ValueError(f"metric must be 'cosine' or 'l2', got {metric!r}")
    n_q = {len(q) for _, q in queries}
    if len(n_q) != 1:
        raise ValueError(f"every query matrix needs the same number of rows, got {sorted(n_q)}")
    n_q = n_q.pop()
    if not n_q or not queries:
        return spark.createDataFrame([], SCHEMA)
    ids = np.arange(n_q, dtype=np.int64) if query_ids is None else np.asarray(query_ids, dtype=np.int64)
    if len(ids) != n_q:
        raise ValueError(f"{len(ids)} query ids for {n_q} query rows")
    sc = spark.sparkContext
    parts = []
    # blocks of equal size: FAISS scores a search of fewer than 20 queries by another code path
    # (its BLAS threshold), whose float32 rounding differs; equal blocks keep every block past it
    # whenever the whole query set is
    bounds = np.linspace(0, n_q, -(-n_q // int(block_rows)) + 1).round().astype(np.int64)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        block = [(kind, np.ascontiguousarray(np.asarray(q[lo:hi], dtype=np.float32))) for kind, q in queries]
        bc = sc.broadcast((block, ids[lo:hi]))
        parts.append(index_frame.mapInPandas(
            lambda it, bc=bc: _partition_top_k(it, bc.value[0], vectors, int(k), int(extra), metric, id_col,
                                               bc.value[1]), SCHEMA))
    found = reduce(lambda x, y: x.unionByName(y), parts)
    # merge the partitions' lists: the k best per (search, q), goodness then index, ties with the k-th kept
    good = F.col("score") if metric == "cosine" else -F.col("score")
    per_query = Window.partitionBy("search", "q")
    ranked = found.withColumn("_g", good).withColumn(
        "_r", F.row_number().over(per_query.orderBy(F.col("_g").desc(), F.col("index"))))
    kth = F.min(F.when(F.col("_r") <= int(k), F.col("_g"))).over(per_query)
    return ranked.withColumn("_kth", kth).where(F.col("_g") >= F.col("_kth")).select("search", "q", "index", "score")
