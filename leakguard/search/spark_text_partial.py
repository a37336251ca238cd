"""Text ``partial_duplicate`` (shared passages) on the Spark engine.

The local check (:func:`leakguard.similarity.text.text_partial`) indexes the training texts' word
6-gram hashes, finds candidate pairs through winnowed fingerprints and measures each pair's longest
shared run. Here the same steps, with the local functions:

- the ``passages`` signature (word 6-gram hashes in text order) is computed in the executors;
  each training text's distinct hashes are exploded to postings ``(d, h)`` and counted per hash
  (document frequency, one group-by): the boilerplate bar and postings limit are the local
  :func:`~leakguard.similarity.text.partial_limits`;
- candidates: each query text's :func:`~leakguard.similarity.text.winnow` fingerprints (executors)
  joined on the hash with the postings whose frequency is at most the postings limit and not
  boilerplate (an equi-join); for the calibration null, training against training, hashes held by
  exactly two training texts count as boilerplate too, and self pairs are dropped, as locally;
- each pair is verified in the executors with the local
  :func:`~leakguard.similarity.text.shared_passage`, the query's boilerplate-free mask made from its
  own boilerplate hashes (the query's postings joined with the frequencies): ``~isin(doc, boiler)``
  restricted to the doc's hashes is the same mask;
- on the driver: the null (each training text's longest run, as a multiset) goes through
  :func:`~leakguard.similarity.text.partial_min_run_from_null`; the candidate pairs with their
  run and share, through :func:`~leakguard.similarity.text.partial_unlinked` and
  :func:`~leakguard.similarity.text.partial_finding`.

The driver holds one evaluation split's candidate pairs (four numbers each), as the local engine
does: the best pair per evaluation text and the candidate count come from the local function. No
cache on Spark (the local engine keeps the inverted index and pair values with ``cache_dir``).

>>> report = lg.audit({"train": "s3a://b/docs/train.parquet", "val": "s3a://b/docs/val.parquet"},
...                   modality="text", checks=["partial_duplicate"],
...                   config=lg.AuditConfig(engine="spark"))                       # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

IDX = "_lg_idx"


class _SameIndex:
    """``t_ids`` / ``e_ids`` for the local functions when positions already are sample indices."""

    def __getitem__(self, i):
        return i


def _doc(raw) -> np.ndarray:
    return np.frombuffer(bytes(raw), dtype=np.uint64)


def _postings_batches(batches):
    """``mapInPandas`` body: one row per (text, distinct word 6-gram hash)."""
    import pandas as pd

    for pdf in batches:
        owners, hashes = [], []
        for i, raw in zip(pdf[IDX].to_numpy(np.int64), pdf["sig_passages"]):
            u = np.unique(_doc(raw))
            owners.append(np.full(len(u), i, np.int64))
            hashes.append(u.view(np.int64))
        if owners:
            yield pd.DataFrame({"d": np.concatenate(owners), "h": np.concatenate(hashes)})


def _fingerprint_batches(batches):
    """``mapInPandas`` body: one row per (query text, winnowing fingerprint), the local ``winnow``."""
    import pandas as pd

    from ..similarity.text import winnow

    for pdf in batches:
        owners, hashes = [], []
        for i, raw in zip(pdf[IDX].to_numpy(np.int64), pdf["sig_passages"]):
            fp = winnow(_doc(raw))
            owners.append(np.full(len(fp), i, np.int64))
            hashes.append(np.asarray(fp, np.uint64).view(np.int64))
        if owners:
            yield pd.DataFrame({"q": np.concatenate(owners), "h": np.concatenate(hashes)})


def _passage_batches(batches, skip_equal: bool):
    """``mapInPandas`` body: (longest shared run, share) of each pair, the local ``shared_passage``."""
    import pandas as pd

    from ..similarity.text import shared_passage

    empty = np.zeros(0, np.uint64)
    for pdf in batches:
        q, d, runs, shares = [], [], [], []
        for a, b, raw_a, raw_b, bad in zip(pdf["q"], pdf["d"], pdf["pa"], pdf["pb"], pdf["bad"]):
            doc_a, doc_b = _doc(raw_a), _doc(raw_b)
            if skip_equal and np.array_equal(doc_a, doc_b):
                continue  # exact copies inside the training split are not the null (as _passage_null)
            bad = np.asarray([] if bad is None else list(bad), np.int64).view(np.uint64)
            free = ~np.isin(doc_a, bad)
            run, share = shared_passage(doc_a, doc_b, empty, other_sorted=np.sort(doc_b), boiler_free=free)
            q.append(int(a))
            d.append(int(b))
            runs.append(run)
            shares.append(share)
        if q:
            yield pd.DataFrame({"q": np.asarray(q, np.int64), "d": np.asarray(d, np.int64),
                                "run": np.asarray(runs, np.float64), "share": np.asarray(shares, np.float64)})


def _scored_pairs(queries, train_docs, postings, freq, min_docs: int, max_postings: int, null: bool):
    """``q, d, run, share`` for the candidate pairs of the texts ``queries`` against ``train_docs``."""
    from pyspark.sql import functions as F

    bad = F.col("df") >= min_docs
    if null:  # a hash only two training texts hold is a passage copied between them: not the null's
        bad = bad | (F.col("df") == 2)
    flagged = freq.withColumn("bad", bad)
    usable = postings.join(flagged.where(~F.col("bad") & (F.col("df") <= max_postings)), "h").select("h", "d")
    fps = queries.mapInPandas(_fingerprint_batches, "q long, h long")
    pairs = fps.join(usable, "h").select("q", "d")
    if null:
        pairs = pairs.where(F.col("q") != F.col("d"))
    pairs = pairs.dropDuplicates(["q", "d"])
    # each query text's boilerplate hashes (its distinct hashes that are flagged), for its mask
    q_post = queries.mapInPandas(_postings_batches, "d long, h long").withColumnRenamed("d", "q")
    q_bad = (q_post.join(flagged.where(F.col("bad")).select("h"), "h")
             .groupBy("q").agg(F.collect_list("h").alias("bad")))
    joined = (pairs.join(queries.select(F.col(IDX).alias("q"), F.col("sig_passages").alias("pa")), "q")
              .join(q_bad, "q", "left")
              .join(train_docs.select(F.col(IDX).alias("d"), F.col("sig_passages").alias("pb")), "d"))
    return joined.mapInPandas(lambda it: _passage_batches(it, null), "q long, d long, run double, share double")


def text_partial_on_spark(spark, ctx, check_name: str, sigs) -> list:
    """The text ``partial_duplicate`` check with its index, candidates and verification on Spark."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..similarity.findings import linked_pairs
    from ..similarity.text import partial_finding, partial_limits, partial_min_run_from_null, partial_unlinked
    from .spark import _phase

    opts = ctx.config.options(check_name)
    train = ctx.train
    valid = sigs.where(F.col("sig_passages").isNotNull()).select("split", IDX, "sig_passages")
    t_frame = valid.where(F.col("split") == train)
    n = t_frame.count()
    if not n:
        return []
    _phase(spark, "partial_duplicate (text): training postings and document frequencies")
    min_docs, max_postings = partial_limits(opts, int(n))
    postings = t_frame.mapInPandas(_postings_batches, "d long, h long").persist(StorageLevel.MEMORY_AND_DISK)
    freq = postings.groupBy("h").agg(F.count(F.lit(1)).alias("df")).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n_boiler = freq.where(F.col("df") >= min_docs).count()
        fixed = ctx.config.thresholds.get(check_name)
        if fixed is not None:
            min_run = float(fixed)
        else:
            _phase(spark, "partial_duplicate (text): calibration, training passages against each other")
            best = (_scored_pairs(t_frame, t_frame, postings, freq, min_docs, max_postings, null=True)
                    .groupBy("q").agg(F.max("run").alias("run")).toPandas())
            null = np.zeros(int(n))  # texts sharing no run keep 0, as locally; the null is a multiset
            null[:len(best)] = best["run"].to_numpy(np.float64)
            min_run = partial_min_run_from_null(ctx, null, opts)
        min_share = float(opts.get("min_share", 0.0))
        same = _SameIndex()
        findings = []
        for name in ctx.splits.eval_names:
            e_frame = valid.where(F.col("split") == name)
            _phase(spark, f"partial_duplicate (text): fingerprint join and shared runs, {train} x {name}")
            got = _scored_pairs(e_frame, t_frame, postings, freq, min_docs, max_postings, null=False).toPandas()
            q, d = got["q"].to_numpy(np.int64), got["d"].to_numpy(np.int64)
            runs, shares = got["run"].to_numpy(np.float64), got["share"].to_numpy(np.float64)
            todo = partial_unlinked(linked_pairs(ctx, train, name), same, same, q, d)
            runs, shares = np.where(todo, runs, 0.0), np.where(todo, shares, 0.0)
            f = partial_finding(ctx, check_name, name, same, same, q, d, runs, shares, min_run, min_share, n_boiler)
            if f is not None:
                findings.append(f)
        return findings
    finally:
        freq.unpersist()
        postings.unpersist()
