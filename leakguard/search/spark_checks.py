"""Checks past exact duplicates on the Spark engine: text near-copies, groups, time.

Each runs the local engine's own code for everything but the search:

- ``augmented_duplicate`` on text: MinHash LSH bands as an equi-join. The band keys come from the
  local :func:`leakguard.search.lsh._band_keys` (same ``lsh_params`` bands and rows, computed in
  the executors), buckets holding more than ``max_bucket`` training texts are skipped as
  :func:`~leakguard.search.lsh.lsh_candidates` skips them, and every candidate is verified in the
  executors with the exact shingle Jaccard of :func:`leakguard.signatures.text.jaccard_sorted`.
  The threshold (second-nearest-neighbour null inside the training split), the choice of one pair
  per evaluation text and the finding are the text backend's own functions
  (:mod:`leakguard.similarity.text`), called on the driver with the verified pairs.
- ``group_overlap`` and ``temporal_overlap``: they read per-sample group ids / timestamps and the
  links earlier checks found. Those columns (not the samples) come to the driver and the local
  checks run there unchanged, on a context whose splits carry only lengths, ids and times. The
  content links group inference adds (static-scene links between images, shared passages between
  texts) are computed in the executors by :mod:`leakguard.search.spark_groups` and handed to the
  local check through its ``ENGINE_LINKS`` hook.

>>> report = lg.audit({"train": "s3a://b/train/", "val": "s3a://b/val/"}, modality="text",
...                   checks=["exact_duplicate", "augmented_duplicate"],
...                   config=lg.AuditConfig(engine="spark"))                        # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

IDX = "_lg_idx"
# (check, modality) pairs the Spark engine runs with a banded search; "*" = any modality
SPARK_SEARCH_CHECKS = {("exact_duplicate", "*"), ("augmented_duplicate", "text"),
                       ("augmented_duplicate", "image"),  # image: leakguard.search.spark_image
                       ("semantic_duplicate", "image"),   # any embedder: leakguard.search.spark_semantic (+ spark_embedders)
                       ("semantic_duplicate", "tabular"),  # any embedder: leakguard.search.spark_tabular (+ spark_embedders)
                       ("augmented_duplicate", "tabular"),  # leakguard.search.spark_tabular
                       ("augmented_duplicate", "audio"),    # leakguard.search.spark_audio
                       ("partial_duplicate", "audio"),
                       ("semantic_duplicate", "audio"),     # any embedder: leakguard.search.spark_audio (+ spark_embedders)
                       ("augmented_duplicate", "series"),   # leakguard.search.spark_tabular
                       ("partial_duplicate", "image"),      # same-scale path: leakguard.search.spark_image_partial
                       ("partial_duplicate", "text"),       # leakguard.search.spark_text_partial
                       ("preprocessing_contamination", "*"),  # leakguard.search.spark_tabular_checks
                       ("target_leakage", "tabular"),         # leakguard.search.spark_tabular_checks
                       ("oversampling_leakage", "tabular"),   # leakguard.search.spark_tabular_checks (driver)
                       ("oversampling_leakage", "series"),    # leakguard.search.spark_tabular_checks (driver)
                       ("semantic_duplicate", "text")}      # any embedder: leakguard.search.spark_text_semantic
DRIVER_CHECKS = ("group_overlap", "temporal_overlap")  # local checks on collected ids / times / links


def runs_on_spark(check: str, modality: str) -> bool:
    """True when the Spark engine runs ``check`` on ``modality`` splits."""
    return (check, "*") in SPARK_SEARCH_CHECKS or (check, modality) in SPARK_SEARCH_CHECKS \
        or check in DRIVER_CHECKS


# --------------------------------------------------------------------------- MinHash LSH on Spark
def _band_key_batches(batches, bands: int, rows: int):
    """``mapInPandas`` body: the local LSH band keys of each sketch, one row per (sample, band)."""
    import pandas as pd

    from .lsh import _band_keys

    for pdf in batches:
        if not len(pdf):
            continue
        sketches = np.stack([np.frombuffer(bytes(s), dtype=np.uint32) for s in pdf["sig_minhash"]])
        keys = _band_keys(sketches, bands, rows).view(np.int64)  # (n, bands), as the local search keys them
        yield pd.DataFrame({IDX: np.repeat(pdf[IDX].to_numpy(np.int64), bands),
                            "band": np.tile(np.arange(bands, dtype=np.int32), len(pdf)),
                            "bkey": keys.ravel()})


def _band_rows(sketches, bands: int, rows: int):
    return sketches.mapInPandas(lambda it: _band_key_batches(it, bands, rows),
                                f"{IDX} long, band int, bkey long")


def lsh_pairs(index_sketches, query_sketches, bands: int, rows: int, max_bucket: int = 200,
              exclude_self: bool = False):
    """Candidate pairs ``(q, i)`` sharing an LSH band, as :func:`~leakguard.search.lsh.lsh_candidates`.

    ``index_sketches`` / ``query_sketches``: frames of ``(_lg_idx, sig_minhash)``. Buckets with more
    than ``max_bucket`` index members are skipped. ``exclude_self``: one frame against itself, each
    unordered pair once as ``(larger, smaller)``. Returns a DataFrame ``q, i`` (sample indices).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    index_rows = _band_rows(index_sketches, bands, rows)
    size = F.count(F.lit(1)).over(Window.partitionBy("band", "bkey"))
    index_rows = index_rows.withColumn("_lg_n", size).where(F.col("_lg_n") <= max_bucket).drop("_lg_n")
    index_rows = index_rows.select(F.col(IDX).alias("i"), "band", "bkey")
    query_rows = (index_rows.select(F.col("i").alias("q"), "band", "bkey") if exclude_self
                  else _band_rows(query_sketches, bands, rows).select(F.col(IDX).alias("q"), "band", "bkey"))
    pairs = index_rows.join(query_rows, ["band", "bkey"]).select("q", "i")
    if exclude_self:
        pairs = pairs.where(F.col("q") > F.col("i"))
    return pairs.dropDuplicates(["q", "i"])


def _jaccard_batches(batches):
    """``mapInPandas`` body: exact Jaccard of the two shingle sets of each candidate pair."""
    import pandas as pd

    from ..signatures.text import jaccard_sorted

    for pdf in batches:
        if not len(pdf):
            continue
        jac = [jaccard_sorted(np.frombuffer(bytes(a), dtype=np.uint64), np.frombuffer(bytes(b), dtype=np.uint64))
               for a, b in zip(pdf["sh_q"], pdf["sh_i"])]
        yield pd.DataFrame({"q": pdf["q"].to_numpy(np.int64), "i": pdf["i"].to_numpy(np.int64),
                            "jac": np.asarray(jac, dtype=np.float64)})


def verified_jaccard(pairs, query_shingles, index_shingles):
    """``q, i, jac``: the candidates with the exact Jaccard of their shingle sets (in the executors)."""
    from pyspark.sql import functions as F

    joined = (pairs.join(query_shingles.select(F.col(IDX).alias("q"), F.col("sig_shingles").alias("sh_q")), "q")
              .join(index_shingles.select(F.col(IDX).alias("i"), F.col("sig_shingles").alias("sh_i")), "i"))
    return joined.mapInPandas(_jaccard_batches, "q long, i long, jac double")


def text_augmented_on_spark(spark, ctx, check_name: str, sigs) -> list:
    """The text ``augmented_duplicate`` check with its search on Spark (see the module docstring)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from ..signatures.text import NUM_PERM
    from ..similarity.text import (
        NULL_QUERIES, augmented_finding, augmented_lsh_threshold, augmented_null, augmented_null_sample,
        augmented_threshold_from_null)
    from .lsh import lsh_params
    from .spark import _phase

    opts = ctx.config.options(check_name)
    train = ctx.train
    valid = sigs.where(F.col("sig_minhash").isNotNull()).select("split", IDX, "sig_minhash", "sig_shingles")
    t_frame = valid.where(F.col("split") == train)
    n = t_frame.count()
    if not n:
        return []
    # the threshold, as similarity.text._augmented_threshold computes it, the LSH join on Spark
    fixed = ctx.config.thresholds.get(check_name)
    if fixed is not None:
        threshold, n_null = float(fixed), 0
    elif n < 3:
        threshold, n_null = float(opts.get("min_jaccard", 0.45)), 0
    else:
        _phase(spark, "augmented_duplicate (text): calibration, train x train LSH")
        bands, rows = lsh_params(float(opts.get("lsh_threshold", 0.35)), NUM_PERM)
        sample = augmented_null_sample(int(n), ctx.config.random_state,
                                       int(opts.get("null_queries", NULL_QUERIES)))
        if sample is None:  # every training text against every other, each unordered pair once
            got = verified_jaccard(lsh_pairs(t_frame, t_frame, bands, rows, exclude_self=True),
                                   t_frame, t_frame).select("q", "i", "jac").toPandas()
            # the null is a multiset over the training texts: the texts with pairs are numbered
            # 0..m-1, the others keep the 0 the local function gives texts without neighbours
            q, i = got["q"].to_numpy(np.int64), got["i"].to_numpy(np.int64)
            _, pos = np.unique(np.concatenate([q, i]), return_inverse=True)
            null = augmented_null(int(n), pos[:len(q)], pos[len(q):], got["jac"].to_numpy(np.float64))
        else:  # the sampled training texts (positions among the readable ones) against all of them
            sample_idx = _positions_to_indices(spark, t_frame, sample, int(n))
            queries = t_frame.join(F.broadcast(spark.createDataFrame(
                [(int(v),) for v in sample_idx], f"{IDX} long")), IDX, "left_semi")
            pairs = lsh_pairs(t_frame, queries, bands, rows).where(F.col("q") != F.col("i"))
            got = verified_jaccard(pairs, queries, t_frame).select("q", "jac").toPandas()
            q = np.searchsorted(sample_idx, got["q"].to_numpy(np.int64))
            null = augmented_null(int(n), q, np.zeros(len(q), np.int64), got["jac"].to_numpy(np.float64),
                                  queries=sample)
        threshold, n_null = augmented_threshold_from_null(ctx, null, opts), len(null)
    ctx.shared[("text", "augmented_threshold")] = threshold
    bands, rows = lsh_params(augmented_lsh_threshold(opts, threshold), NUM_PERM)
    findings = []
    for name in ctx.splits.eval_names:
        e_frame = valid.where(F.col("split") == name)
        _phase(spark, f"augmented_duplicate (text): LSH join and Jaccard, {train} x {name}")
        scored = verified_jaccard(lsh_pairs(t_frame, e_frame, bands, rows), e_frame, t_frame)
        # one pair per evaluation text, as best_per_query picks it: highest Jaccard, then lowest index
        rank = F.row_number().over(Window.partitionBy("q").orderBy(F.col("jac").desc(), F.col("i").asc()))
        best = scored.withColumn("_lg_r", rank).where(F.col("_lg_r") == 1).drop("_lg_r").persist()
        try:
            n_candidates = best.count()
            hits = best.where(F.col("jac") >= threshold).toPandas()
        finally:
            best.unpersist()
        f = augmented_finding(ctx, check_name, name, hits["i"].to_numpy(np.int64), hits["q"].to_numpy(np.int64),
                              hits["jac"].to_numpy(np.float64), threshold, n_null, n_candidates=n_candidates)
        if f is not None:
            findings.append(f)
    return findings


def _positions_to_indices(spark, frame, positions: np.ndarray, n: int) -> np.ndarray:
    """Sample indices of the readable samples at ``positions`` (their order among readable ones)."""
    from pyspark.sql import functions as F

    top = frame.agg(F.max(IDX).alias("m")).collect()[0]["m"]
    if top == n - 1:  # every sample readable: position = index
        return np.asarray(positions, dtype=np.int64)
    valid = np.sort(frame.select(IDX).toPandas()[IDX].to_numpy(np.int64))
    return valid[np.asarray(positions, dtype=np.int64)]


# --------------------------------------------------------------------------- checks run on the driver
class _DriverSource:
    """What the group and temporal checks read of a split's samples: length, modality, names."""

    def __init__(self, modality: str, n: int, names=None):
        self.modality, self.n = modality, n
        self._names = names

    def __len__(self) -> int:
        return self.n

    def name(self, i: int):
        return None if self._names is None else self._names[i]

    @property
    def names(self):
        return list(self._names) if self._names is not None else [None] * self.n


def _column_values(sp, column: str) -> np.ndarray:
    """One column of a table split, in sample order, on the driver."""
    pdf = sp.frame.select(IDX, column).toPandas().sort_values(IDX, kind="stable")
    return np.asarray(pdf[column].to_numpy())


def driver_context(prepared: dict, train: str, config, links: list, groups=None, timestamps=None,
                   collect: bool = True):
    """An :class:`~leakguard.checks.base.AuditContext` for checks that need ids, times and links only.

    Group ids and timestamps are resolved as the local engine resolves them
    (:func:`leakguard.splits._per_split`, ``_as_times``); column values are collected from Spark.
    ``collect=False``: empty placeholders where a split has them (enough to select checks).
    """
    from ..checks.base import AuditContext
    from ..splits import Split, Splits, _as_times, _per_split

    built = {}
    for name, sp in prepared.items():
        values = {}
        for kind, value, column in (("groups", groups, "_lg_group"), ("timestamps", timestamps, "_lg_time")):
            if value is None:
                values[kind] = None
            elif not collect:
                present = (sp.has_groups if kind == "groups" else sp.has_timestamps)
                values[kind] = np.zeros(0) if present else None
            elif isinstance(value, str):
                values[kind] = _column_values(sp, column) if column in sp.frame.columns else None
            else:
                values[kind] = _per_split(value, name, None, kind, sp.n)[0]
        if values["timestamps"] is not None and collect:
            values["timestamps"] = _as_times(values["timestamps"], name)
        if sp.local_source is not None:
            source = sp.local_source
        elif sp.kind == "files":  # files Spark read (URIs): their names, for times parsed from names
            source = _DriverSource(sp.modality, sp.n, sp.names)
        else:
            source = _DriverSource(sp.modality, sp.n)
        built[name] = Split(name, source, None, values["groups"], values["timestamps"], role=sp.role)
    return AuditContext(Splits(built, train), config, signatures=None, links=list(links))
