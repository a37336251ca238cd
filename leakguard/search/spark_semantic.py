"""Image ``semantic_duplicate`` on the Spark engine: the default embedder's vectors, the kNN join.

What runs where:

- **embeddings**: the ``embed_pyramid`` signature (the default ``PyramidEmbedder``'s vector) by the
  signature registry in the executors, as every Spark signature;
- **threshold**: the local :func:`~leakguard.similarity.calibration.null_scores` rule on the
  training split: the same sampled training images (the sampling is the one ``null_scores`` makes
  over the split's readable images), their nearest training images found by
  :func:`leakguard.search.spark_knn.knn_join` (``neighbor_rank + extra_k + 1`` each, ties kept),
  then ``null_scores`` itself on each sampled image with its neighbours (the same skip of the image
  itself and of its exact copies, the same rank); :func:`calibrated_threshold` on the driver;
- **search**: every evaluation image's nearest image of each earlier split (``knn_join``, k = 1);
- **finding**: pairs at or above the threshold, images other checks already linked left out, on
  the driver.

Scores are FAISS (or numpy) cosines computed on each partition's vectors: BLAS rounds float32
products differently for different matrix shapes, so a score can differ from the local engine's
in its last bits (measured <= 5e-7); the report is otherwise the local one. A user embedder
(``AuditConfig(embedder=callable)``): its vectors are computed in the executors by
:mod:`leakguard.search.spark_embedders`, then the same threshold, search and finding.
"""
from __future__ import annotations

import numpy as np

IDX = "_lg_idx"
KIND = "embed_pyramid"


def _vectors(raw_column, transform=None) -> np.ndarray:
    rows = [np.frombuffer(bytes(v), dtype=np.float32) for v in raw_column]
    out = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
    return out if transform is None or not len(out) else transform(out)


def _index_vectors(pdf, column: str = f"sig_{KIND}", transform=None) -> dict:
    return {"e": _vectors(pdf[column], transform)}


def _collect(spark, frame, indices=None, column: str = f"sig_{KIND}", transform=None):
    """(index, key, vectors) of a frame's samples (``indices``: those only), sorted by index;
    ``transform``: applied to the vectors (as the local check does before its search)."""
    from pyspark.sql import functions as F

    if indices is not None:
        ids = spark.createDataFrame([(int(i),) for i in indices], f"{IDX} long")
        frame = frame.join(F.broadcast(ids), IDX, "left_semi")
    pdf = frame.select(IDX, "key", column).toPandas().sort_values(IDX, kind="stable")
    return (pdf[IDX].to_numpy(np.int64), [bytes(k) for k in pdf["key"]], _vectors(pdf[column], transform))


def null_on_spark(spark, train_frame, n: int, rank: int, max_samples: int, random_state, extra_k: int = 8,
                  column: str = f"sig_{KIND}", transform=None):
    """The null of :func:`~leakguard.similarity.calibration.null_scores` (cosine, exact copies by
    digest) over the training split held in ``train_frame`` (``n`` samples, vectors in ``column``,
    through ``transform`` as the local check's are)."""
    from ..similarity.calibration import null_scores
    from .spark_knn import knn_join

    if n < 2:
        return np.zeros(0)
    train_ids = np.sort(train_frame.select(IDX).toPandas()[IDX].to_numpy(np.int64))
    # the rows null_scores samples (its own rule, by position among the split's readable images)
    rng = np.random.default_rng(random_state)
    rows = np.arange(n) if max_samples is None or n <= max_samples else np.sort(
        rng.choice(n, size=max_samples, replace=False))
    sample_idx, sample_keys, sample_vecs = _collect(spark, train_frame, train_ids[rows], column, transform)
    k = min(n - 1, rank + extra_k) + 1  # null_scores asks for k + 1: the image finds itself
    near = knn_join(spark, train_frame.select(IDX, column),
                    lambda pdf: _index_vectors(pdf, column, transform), [("e", sample_vecs)], k,
                    "cosine", query_ids=np.arange(len(sample_idx))).toPandas()
    near = near.sort_values(["q", "score", "index"], ascending=[True, False, True], kind="stable")
    nb_idx, nb_keys, nb_vecs = _collect(spark, train_frame, np.unique(near["index"].to_numpy(np.int64)), column,
                                        transform)
    pos = {int(i): p for p, i in enumerate(nb_idx)}
    out = []
    for q, group in near.groupby("q", sort=True):
        me = int(sample_idx[q])
        others = [int(j) for j in group["index"] if int(j) != me]
        # the sampled image first, then its neighbours: null_scores' own rule on them (the same
        # neighbours as in the whole split, so the same rank-th non-copy neighbour)
        X = np.vstack([sample_vecs[q][None, :], nb_vecs[[pos[j] for j in others]]])
        keys = [sample_keys[q]] + [nb_keys[pos[j]] for j in others]
        s, (r, _) = null_scores(X, metric="cosine", exact_keys=keys, neighbor_rank=rank, max_samples=None,
                                extra_k=extra_k, return_pairs=True)
        out.extend(s[r == 0].tolist())
    return np.asarray(out, dtype=np.float64)


def image_semantic_on_spark(spark, ctx, check_name: str, sigs) -> list:
    """Image ``semantic_duplicate`` with the default embedder, its searches on Spark (module docstring)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..report import make_pairs
    from ..similarity.image import _linked_eval, semantic_image_finding, semantic_threshold
    from .spark import _phase
    from .spark_knn import knn_join

    spec = ctx.config.embedder
    if spec is None or spec == "pyramid":
        images = sigs.where(F.col(f"sig_{KIND}").isNotNull()).select("split", IDX, "key", f"sig_{KIND}")
    else:  # a user's embedder, run in the executors (leakguard.search.spark_embedders); the same search
        from .spark_embedders import user_item_vectors

        images = user_item_vectors(spark, ctx, ctx.shared["spark_prepared"])
    splits = ctx.splits
    opts = {"null_samples": 5000, **ctx.config.options(check_name)}
    fixed = opts.get("threshold") or ctx.config.thresholds.get(check_name)
    images = images.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = dict(images.groupBy("split").count().toPandas().itertuples(index=False, name=None))
        train = splits.train

        def null_for_rank(rank: int) -> np.ndarray:
            _phase(spark, "semantic_duplicate (image): null of nearest training neighbours (kNN join)")
            return null_on_spark(spark, images.where(F.col("split") == train), int(counts.get(train, 0)), rank,
                                 int(opts["null_samples"]), ctx.config.random_state)

        threshold, null, source = semantic_threshold(ctx, opts, fixed, null_for_rank)
        findings = []
        order = [train] + splits.eval_names
        for a_pos, a_name in enumerate(order):
            for b_name in order[a_pos + 1:]:
                if not counts.get(a_name) or not counts.get(b_name):
                    continue
                _phase(spark, f"semantic_duplicate (image): nearest {a_name!r} image of each {b_name!r} image")
                b_idx, _, b_vecs = _collect(spark, images.where(F.col("split") == b_name))
                near = knn_join(spark, images.where(F.col("split") == a_name).select(IDX, f"sig_{KIND}"),
                                _index_vectors, [("e", b_vecs)], 1, "cosine", query_ids=b_idx).toPandas()
                # one neighbour per evaluation image (equal scores: the lowest index)
                near = near.sort_values(["q", "score", "index"], ascending=[True, False, True], kind="stable")
                near = near.drop_duplicates("q")
                near = near[near["score"] >= threshold]
                already = _linked_eval(ctx, a_name, b_name)
                near = near[[int(j) not in already for j in near["q"]]]
                if not len(near):
                    continue
                ib, ia = near["q"].to_numpy(np.int64), near["index"].to_numpy(np.int64)
                pairs = make_pairs(a_name, ia, b_name, ib, check_name, near["score"].to_numpy(np.float32))
                ctx.links.append(pairs)
                findings.append(semantic_image_finding(ctx, check_name, a_name, b_name, pairs, ib, threshold,
                                                       source, null))
        return findings
    finally:
        images.unpersist()
