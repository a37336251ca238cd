"""Image ``partial_duplicate`` (same-scale overlaps, and with ``resized=True`` any scale) on the Spark engine.

The local check (:func:`leakguard.similarity.image_partial.partial_duplicates`) joins corner-patch
codes on equal values and votes on the offset; here:

- the ``patches`` signature (rows of code, y, x per image) is computed in the executors and
  exploded to one row per code;
- per pair of splits (the training split, then each evaluation split against the earlier ones, as
  locally): codes held more than ``MAX_CODE_REPEATS`` times in the earlier split are dropped (one
  window count), the rest joined on the code (an equi-join), and each image pair's matches go to
  the local :func:`~leakguard.similarity.image_partial.offset_votes` (``applyInPandas`` grouped by
  pair: a pair's votes depend on its own matches only);
- on the driver, the votes in the local order (sorted by pair and offset bin, as pandas' groupby
  gives them), then the local ``best_offsets`` (the most voted offset per pair, the overlap share
  from the two shapes), ``patch_code_rows`` and ``partial_finding``.

The driver holds the vote table (one row per image pair and offset bin with a shared code), as the
local engine does: it is what fixes the local order of the pairs, which pandas' sort by votes (not
stable) decides among pairs with equal votes. The any-scale path (``resized=True``: SIFT keypoints,
descriptor votes, RANSAC verification) adds its rows after the same-scale ones, as locally; its
search and verification run in the executors (:mod:`leakguard.search.spark_image_partial_kp`).

>>> report = lg.audit({"train": "s3a://b/tiles/train/", "val": "s3a://b/tiles/val/"}, modality="image",
...                   checks=["partial_duplicate"], config=lg.AuditConfig(engine="spark"))  # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

IDX = "_lg_idx"
VOTE_SCHEMA = "ia long, ib long, by long, bx long, n long, dy double, dx double"


def _code_batches(batches):
    """``mapInPandas`` body: one row per patch code of each image (the local ``patches`` rows)."""
    import pandas as pd

    for pdf in batches:
        splits, owners, parts = [], [], []
        for split, i, raw in zip(pdf["split"], pdf[IDX].to_numpy(np.int64), pdf["sig_patches"]):
            rows = np.frombuffer(bytes(raw), dtype=np.int64).reshape(-1, 3)
            splits.extend([str(split)] * len(rows))
            owners.append(np.full(len(rows), i, np.int64))
            parts.append(rows)
        if splits:
            # one frame, not a concat of many: Arrow receives one array per column
            rows = np.concatenate(parts)
            yield pd.DataFrame({"split": splits, "i": np.concatenate(owners), "code": rows[:, 0],
                                "y": rows[:, 1], "x": rows[:, 2]})


def _pair_votes(pdf, tolerance: int):
    from ..similarity.image_partial import offset_votes

    return offset_votes(pdf, tolerance)[["ia", "ib", "by", "bx", "n", "dy", "dx"]]


def _shapes(spark, frame, indices) -> dict:
    from pyspark.sql import functions as F

    ids = spark.createDataFrame([(int(i),) for i in indices], f"{IDX} long")
    pdf = frame.join(F.broadcast(ids), IDX, "left_semi").select(IDX, "sig_shape").toPandas()
    return {int(i): np.frombuffer(bytes(v), dtype=np.int32) for i, v in zip(pdf[IDX], pdf["sig_shape"])}


def _shape_array(shapes: dict, indices) -> np.ndarray:
    """(max index + 1, 2) shapes, rows of the given indices filled (what ``best_offsets`` indexes)."""
    top = int(max(indices)) + 1 if len(indices) else 0
    out = np.zeros((top, 2), dtype=np.int64)
    for i in np.unique(indices):
        out[int(i)] = shapes[int(i)]
    return out


def image_partial_on_spark(spark, ctx, check_name: str, sigs) -> list:
    """Image ``partial_duplicate`` (same-scale path), its join and votes on Spark (module docstring)."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from ..similarity.image_align import have_opencv
    from ..similarity.image_partial import (
        EMPTY_OVERLAPS, MAX_CODE_REPEATS, PARTIAL_DEFAULTS, _linked_pairs, best_offsets, partial_finding,
        patch_code_rows)
    from .spark import _phase

    opts = {**PARTIAL_DEFAULTS, **ctx.config.options(check_name)}
    tolerance, min_votes = int(opts["tolerance"]), int(opts["min_votes"])
    # the any-scale path, as locally only with OpenCV (leakguard.search.spark_image_partial_kp)
    keypoints, calib = None, None
    if bool(opts["resized"]) and have_opencv():
        from .spark_image_partial_kp import KeypointSearch

        keypoints = KeypointSearch(spark, ctx, sigs, opts)
    splits = ctx.splits
    order = [splits.train] + splits.eval_names
    images = sigs.where(F.col("sig_patches").isNotNull()).select("split", IDX, "sig_patches", "sig_shape")
    codes = (images.select("split", IDX, "sig_patches")
             .mapInPandas(_code_batches, "split string, i long, code long, y long, x long")
             .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        if keypoints is not None:
            calib = keypoints.calibrate()
        findings = []
        for a_pos, a_name in enumerate(order):
            # codes repeated many times inside the earlier split (flat skies, borders) are not evidence
            held = F.count(F.lit(1)).over(Window.partitionBy("code"))
            fa = (codes.where(F.col("split") == a_name).withColumn("_lg_n", held)
                  .where(F.col("_lg_n") <= MAX_CODE_REPEATS)
                  .select(F.col("i").alias("ia"), "code", F.col("y").alias("ya"), F.col("x").alias("xa")))
            for b_name in order[a_pos + 1:]:
                _phase(spark, f"partial_duplicate (image): patch-code join and offset votes, {a_name!r} x {b_name!r}")
                fb = codes.where(F.col("split") == b_name).select(
                    F.col("i").alias("ib"), "code", F.col("y").alias("yb"), F.col("x").alias("xb"))
                votes = (fa.join(fb, "code").select("ia", "ib", "code", "ya", "xa", "yb", "xb")
                         .groupBy("ia", "ib").applyInPandas(lambda pdf: _pair_votes(pdf, tolerance), VOTE_SCHEMA)
                         .toPandas())
                if votes.empty:
                    ia, ib, share, dy, dx = EMPTY_OVERLAPS
                else:
                    # the local vote table's order (pandas' groupby sorts its keys), then the local pick
                    votes = votes.sort_values(["ia", "ib", "by", "bx"], kind="stable").reset_index(drop=True)
                    strong = votes.loc[votes["n"] >= min_votes]
                    need_a, need_b = strong["ia"].unique(), strong["ib"].unique()
                    sa = _shape_array(_shapes(spark, images.where(F.col("split") == a_name), need_a), need_a)
                    sb = _shape_array(_shapes(spark, images.where(F.col("split") == b_name), need_b), need_b)
                    ia, ib, share, dy, dx = best_offsets(votes, sa, sb, min_votes)
                rows = patch_code_rows(ctx, a_name, b_name, ia, ib, share, dy, dx, opts)
                if keypoints is not None:
                    # a tile overlaps several others: only the pairs already linked are skipped (as locally)
                    seen = {(r["a"], r["b"]) for r in rows} | _linked_pairs(ctx, a_name, b_name)
                    rows += keypoints.rows(a_name, b_name, seen)
                f = partial_finding(ctx, check_name, a_name, b_name, rows, calib)
                if f is not None:
                    findings.append(f)
        return findings
    finally:
        codes.unpersist()
        if keypoints is not None:
            keypoints.close()
