"""Text ``semantic_duplicate`` (rewordings) on the Spark engine.

The local check (:func:`leakguard.similarity.text.text_semantic`) fits a
:class:`~leakguard.similarity.text.TfidfTextEmbedder` on the training split, embeds every text,
calibrates a cosine threshold on the training split's nearest-neighbour null and reports each
evaluation text whose nearest training text is at or above it. Here the same steps, with the local
functions:

- **fit, on the driver (the one serial step)**: the vocabulary and IDF weights depend on the whole
  training split (the top ``max_features`` terms by corpus frequency), so the readable training
  texts are collected to the driver in sample order and fitted there by the local
  ``TfidfTextEmbedder.fit``. The driver holds every training text and sklearn's count matrices
  while it fits (measured in ``docs/scale.md``: this bounds the training split this path can take);
  nothing else in the check needs more than one evaluation split's vectors on the driver;
- **embed, in the executors**: the fitted state (:meth:`~TfidfTextEmbedder.fitted_state`, terms and
  IDF weights, and :meth:`~TfidfTextEmbedder.projection_components`, the random projection; bytes,
  no pickle) is broadcast; each task loads it (:meth:`~TfidfTextEmbedder.load_state`) and embeds its
  texts (``mapInPandas``; the ``utf8`` signature carries the canonical text there). The TF-IDF
  vectors and the projection are computed row by row, so a batch's vectors are the bytes the local
  engine gets for the same texts;
- **threshold**: the local :func:`~leakguard.similarity.calibration.null_scores` rule on the
  training vectors by :func:`leakguard.search.spark_semantic.null_on_spark` (digests as exact
  keys), then :func:`~leakguard.similarity.text.semantic_threshold_from_null` on the driver;
- **search, in the executors**: each evaluation text's ``SEMANTIC_CANDIDATES`` (4) nearest training
  texts by :func:`leakguard.search.spark_knn.knn_join` (FAISS float32 scores, ties with the 4th
  kept), each candidate joined with both vectors and rescored in float64 by the local
  :func:`~leakguard.similarity.text.rescore_candidates` (best kept, ties to the lower index), the
  pick moved to the first training text with the same digest, as locally;
- **finding**: the pairs at or above the threshold come to the driver, where the local
  :func:`~leakguard.similarity.text.semantic_finding` leaves out texts other checks linked.

The reported similarities are the float64 rescored values, equal to the local engine's; the
threshold comes from FAISS's float32 null scores, which round differently for other matrix shapes
(within 1e-6 of the local one). No cache on Spark (the local engine keeps the fit and vectors with
``cache_dir``).

**Other embedders** (``AuditConfig(embedder="minilm")`` or a callable): one with a ``fit`` method
is fitted on the driver on the training texts, as above; the embedder object then travels to the
executors with the tasks (cloudpickle: a function or class defined in a module the executors cannot
import is shipped by value; a model it loads is loaded in each Python worker) and embeds each
batch of texts there. The report equals the local one when the embedder gives each text the vector
it gives it in the local engine's one call per split, i.e. when a text's vector does not depend on
the other texts of its batch (true of TF-IDF, of bag-of-words functions and, up to float rounding,
of sentence-embedding models: ``embedder="minilm"`` gave the local report with floats within 1e-6
on 100 + 34 docstrings, session 6). A wrong output shape is caught on the driver on two training texts.

>>> report = lg.audit({"train": "s3a://b/docs/train/", "val": "s3a://b/docs/val/"},
...                   modality="text", checks=["semantic_duplicate"],
...                   config=lg.AuditConfig(engine="spark"))                       # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

IDX = "_lg_idx"
TEXT = "sig_utf8"
VEC = "vec"


class _SameIndex:
    """``t_ids`` for the local finding when positions already are sample indices."""

    def __getitem__(self, i):
        return i


def _decode(raw) -> str:
    return bytes(raw).decode("utf-8", "surrogatepass")


def _embedder_from(params: dict):
    """The fitted embedder in a task: a user's (shipped with the task), or the TF-IDF embedder
    loaded from the broadcast state."""
    from ..similarity.text import TfidfTextEmbedder

    if params.get("user") is not None:  # cloudpickle's bytes: plain pickle reads them
        import pickle

        return pickle.loads(params["user"])
    emb = TfidfTextEmbedder(n_components=params["n_components"], max_features=params["max_features"],
                            random_state=params["random_state"])
    return emb.load_state(params["state"], params["projection"])


def _embed_batches(batches, fitted, user=None):
    """``mapInPandas`` body: each readable text's vector (float32 bytes), the local ``_embed``."""
    import pandas as pd

    from ..similarity.text import _embed

    embedder = None
    for pdf in batches:
        if not len(pdf):
            continue
        if embedder is None:  # loaded once per task, on its first rows
            embedder = _embedder_from({"user": user} if user is not None else fitted.value)
        out = []
        for split, part in pdf.groupby("split", sort=False):
            vecs = _embed(embedder, [_decode(t) for t in part[TEXT]], str(split))
            out.append(pd.DataFrame({"split": part["split"].to_numpy(object), IDX: part[IDX].to_numpy(np.int64),
                                     "key": part["key"].to_numpy(object),
                                     VEC: [np.ascontiguousarray(v).tobytes() for v in vecs]}))
        yield pd.concat(out, ignore_index=True)


def _rescore_batches(batches):
    """``mapInPandas`` body: each evaluation text's best candidate by the local float64 rescoring."""
    import pandas as pd

    from ..similarity.text import rescore_candidates

    for pdf in batches:
        if not len(pdf):
            continue
        e = np.stack([np.frombuffer(bytes(v), np.float32) for v in pdf["ev"]])
        width = max(len(c) for c in pdf["cands"])
        cand = np.full((len(pdf), width), -1, np.int64)
        t = np.zeros((len(pdf), width, e.shape[1]), np.float32)
        for r, cands in enumerate(pdf["cands"]):
            for j, c in enumerate(cands):
                cand[r, j] = int(c["i"])
                t[r, j] = np.frombuffer(bytes(c["tv"]), np.float32)
        sims, best = rescore_candidates(t, e, cand)
        yield pd.DataFrame({"q": pdf["q"].to_numpy(np.int64), "i": best.astype(np.int64),
                            "sim": sims.astype(np.float64)})


def text_semantic_on_spark(spark, ctx, check_name: str, sigs) -> list:
    """Text ``semantic_duplicate`` on Spark (see the module docstring)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..similarity.text import (
        SEMANTIC_CANDIDATES, TfidfTextEmbedder, _embed, semantic_finding, semantic_threshold_from_null,
        text_embedder)
    from .spark import _phase
    from .spark_knn import knn_join
    from .spark_semantic import _collect, _vectors, null_on_spark

    opts = ctx.config.options(check_name)
    train = ctx.train
    texts = sigs.where(F.col(TEXT).isNotNull()).select("split", IDX, "key", TEXT)
    t_texts = texts.where(F.col("split") == train)
    embedder = text_embedder(ctx.config.embedder)  # the local check's: TfidfTextEmbedder() by default
    fits = hasattr(embedder, "fit") and callable(embedder.fit)
    if fits:  # the one serial step: a fitted embedder learns from the whole training split
        _phase(spark, "semantic_duplicate (text): training texts to the driver, embedder fit")
        pdf = t_texts.select(IDX, TEXT).toPandas().sort_values(IDX, kind="stable")
        n = len(pdf)
        if n >= 2:
            embedder.fit([_decode(t) for t in pdf[TEXT]])
        del pdf
    else:
        n = t_texts.count()
    if n < 2:
        return []
    if type(embedder) is TfidfTextEmbedder:  # its fitted state as bytes: terms, IDF weights, projection
        fitted, user = spark.sparkContext.broadcast({
            "n_components": embedder.n_components, "max_features": embedder.max_features,
            "random_state": embedder.random_state, "state": embedder.fitted_state(),
            "projection": embedder.projection_components()}), None
    else:  # a user's embedder travels with the tasks (cloudpickle); a wrong output shape is caught here
        from pyspark import cloudpickle

        # pickled before the probe: a model the embedder loads on its first call (MiniLM) is loaded by
        # each Python worker, not shipped from the driver
        user, fitted = cloudpickle.dumps(embedder), None
        probe = [_decode(r[TEXT]) for r in t_texts.orderBy(IDX).limit(2).collect()]
        _embed(embedder, probe, train)
    vectors = texts.mapInPandas(lambda it: _embed_batches(it, fitted, user),
                                f"split string, {IDX} long, key binary, {VEC} binary")
    vectors = vectors.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        t_vecs = vectors.where(F.col("split") == train).select(IDX, "key", VEC)
        fixed = ctx.config.thresholds.get(check_name)
        if fixed is not None:
            threshold = float(fixed)
        else:
            _phase(spark, "semantic_duplicate (text): null of nearest training neighbours (kNN join)")
            null = null_on_spark(spark, t_vecs, n, 1, 5000, ctx.config.random_state, column=VEC)
            threshold = semantic_threshold_from_null(ctx, null, opts)
        # identical training texts: the first one holding the digest is reported, as locally
        first = t_vecs.groupBy("key").agg(F.min(IDX).alias("first"))
        t_side = t_vecs.select(F.col(IDX).alias("i"), F.col(VEC).alias("tv"))
        findings = []
        for name in ctx.splits.eval_names:
            e_vecs = vectors.where(F.col("split") == name).select(IDX, "key", VEC)
            _phase(spark, f"semantic_duplicate (text): nearest training texts of each {name!r} text, rescored")
            e_idx, _, e_mat = _collect(spark, e_vecs, column=VEC)
            if not len(e_idx):
                continue
            cands = knn_join(spark, t_vecs.select(IDX, VEC), lambda p: {"e": _vectors(p[VEC])}, [("e", e_mat)],
                             SEMANTIC_CANDIDATES, "cosine", query_ids=e_idx).select("q", F.col("index").alias("i"))
            grouped = (cands.join(t_side, "i").groupBy("q")
                       .agg(F.collect_list(F.struct("i", "tv")).alias("cands"))
                       .join(e_vecs.select(F.col(IDX).alias("q"), F.col(VEC).alias("ev")), "q"))
            best = grouped.mapInPandas(_rescore_batches, "q long, i long, sim double")
            best = (best.join(t_vecs.select(F.col(IDX).alias("i"), "key"), "i").join(first, "key")
                    .select("q", F.col("first").alias("i"), "sim"))
            hits = best.where(F.col("sim") >= threshold).toPandas().sort_values("q", kind="stable")
            f = semantic_finding(ctx, check_name, name, _SameIndex(), hits["q"].to_numpy(np.int64),
                                 hits["sim"].to_numpy(np.float64), hits["i"].to_numpy(np.int64), threshold,
                                 type(embedder).__name__)
            if f is not None:
                findings.append(f)
        return findings
    finally:
        vectors.unpersist()
        if fitted is not None:
            fitted.unpersist()
