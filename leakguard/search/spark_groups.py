"""``group_overlap``'s content inference on the Spark engine: scene links and passage links.

The check itself runs on the driver (:mod:`leakguard.search.spark_checks`: group ids, timestamps and
the links earlier checks found). When ids are missing, the local engine also links

- **images of one static scene** (:func:`leakguard.checks.groups.scene_links`): each image's
  ``SCENE_NEIGHBOURS`` nearest images on 16 x 16 block means of the ``thumb`` signature, every
  candidate pair verified pixel by pixel (:func:`~leakguard.checks.groups.scene_verdicts`);
- **evaluation texts sharing a passage** (:func:`leakguard.checks.groups.passage_links`): a search
  outward from the evaluation texts some check linked, round by round, through winnowed fingerprints
  of the ``passages`` signature, each pair measured by the text backend's ``shared_passage``.

Both read every sample's signature, which the Spark driver does not hold; here they run on Spark with
the same functions and hand the check only the links (``ctx.shared[ENGINE_LINKS]``):

- scenes: the block means are computed in the executors (``scene_block_means``) and the neighbours
  found by the exact distributed kNN join (:func:`leakguard.search.spark_knn.knn_join`, the block
  means of every image as its queries: 1 kB an image on the driver, at most ``scene_max`` images);
  each candidate pair is joined with both thumbnails and verified in the executors by the local
  ``scene_verdicts`` (a pair's verdict depends on its two thumbnails alone). Only the linked pairs
  come to the driver.
- passages: the training split's boilerplate (6-grams in ``partial_limits``' bar of training texts)
  and the evaluation texts' postings and document frequencies are group-bys; each round joins the
  frontier's fingerprints with the evaluation postings (an equi-join on the hash), keeps each pair
  once in the direction the local loop meets it first (the earlier round, then the smaller pooled
  position), and measures it in the executors with ``shared_passage`` (run, and the null's chance
  run through phrases in 3+ texts). The driver holds the reached texts, one null value per compared
  text (for the local ``passage_min_run``) and the kept links.

Where it can differ from the local engine: the kNN join keeps the ``k`` nearest by (distance, index);
the local search picks among images tied at the ``k``-th place in no documented order, and float32
distances computed in other matrix shapes may order near-ties differently, so a candidate pair at the
boundary may differ (not seen in the tests). The passage search is the local one, pair for pair.

>>> report = lg.audit({"train": "s3a://b/frames/train/", "val": "s3a://b/frames/val/"},
...                   checks=["group_overlap"], config=lg.AuditConfig(engine="spark"))  # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

IDX = "_lg_idx"
KEY_BITS = 40  # pooled key = split rank * 2**40 + sample index: sorts as the local pooled positions


def _keyed(sigs, names: list[str], column: str):
    """The rows of ``sigs`` of the splits ``names`` with a value in ``column``, their pooled key as ``_lg_idx``."""
    from pyspark.sql import functions as F

    rank = F.create_map(*[x for r, n in enumerate(names) for x in (F.lit(n), F.lit(r))])
    return (sigs.where(F.col(column).isNotNull() & F.col("split").isin(list(names)))
            .select((F.element_at(rank, F.col("split")).cast("long") * F.lit(1 << KEY_BITS) + F.col(IDX)).alias(IDX),
                    column))


def _unkey(names: list[str], keys) -> tuple[np.ndarray, np.ndarray]:
    keys = np.asarray(keys, dtype=np.int64)
    return np.asarray(names, dtype=object)[keys >> KEY_BITS], keys & ((1 << KEY_BITS) - 1)


def _pairs_frame(names, a, b, score):
    import pandas as pd

    from ..checks.groups import NAME

    sa, ia = _unkey(names, a)
    sb, ib = _unkey(names, b)
    return pd.DataFrame({"split_a": sa, "index_a": ia, "split_b": sb, "index_b": ib, "check": NAME,
                         "score": np.asarray(score, dtype=np.float64)})


# --------------------------------------------------------------------------- scenes
def _thumbs(raws) -> np.ndarray:
    from .spark_image import decode_signature

    return np.stack([decode_signature("thumb", r) for r in raws])


def _block_mean_vectors(pdf) -> dict:
    from ..checks.groups import scene_block_means

    thumbs = _thumbs(pdf["sig_thumb"])
    return {"small": scene_block_means(thumbs).reshape(len(thumbs), -1)}


def _block_mean_batches(batches):
    """``mapInPandas`` body: each image's block means (the kNN join's queries), as float32 bytes."""
    import pandas as pd

    for pdf in batches:
        if len(pdf):
            small = _block_mean_vectors(pdf)["small"]
            yield pd.DataFrame({IDX: pdf[IDX].to_numpy(np.int64), "small": [r.tobytes() for r in small]})


def _scene_verdict_batches(batches, max_shift: int):
    """``mapInPandas`` body: the local ``scene_verdicts`` of each candidate pair; linked pairs only."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from ..checks.groups import scene_verdicts

    with threadpool_limits(1):  # one task, one core (Spark's model)
        for pdf in batches:
            if not len(pdf):
                continue
            keys = np.concatenate([pdf["lo"].to_numpy(np.int64), pdf["hi"].to_numpy(np.int64)])
            raws = list(pdf["ta"]) + list(pdf["tb"])
            used, first, inv = np.unique(keys, return_index=True, return_inverse=True)
            thumbs = _thumbs([raws[i] for i in first])
            verdict = scene_verdicts(thumbs, inv.reshape(2, -1).T, max_shift)
            ok = verdict[:, 0] > 0
            if ok.any():
                yield pd.DataFrame({"lo": pdf["lo"].to_numpy(np.int64)[ok], "hi": pdf["hi"].to_numpy(np.int64)[ok],
                                    "stage": verdict[ok, 0].astype(np.int32), "share": verdict[ok, 1]})


def scene_links_on_spark(spark, ctx, sigs):
    """:func:`leakguard.checks.groups.scene_links` with its search and verification on Spark."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from ..checks.groups import NAME, SCENE_MAX, SCENE_NEIGHBOURS, SCENE_SHIFT
    from ..report import empty_pairs
    from .spark import _phase
    from .spark_knn import knn_join

    opts = ctx.config.options(NAME)
    names = list(ctx.splits)
    _phase(spark, "group_overlap: scene links (block-mean kNN join, verification)")
    images = _keyed(sigs, names, "sig_thumb").persist(StorageLevel.MEMORY_AND_DISK)
    try:
        stats = images.agg(F.count(F.lit(1)).alias("n"),
                           F.countDistinct(F.length("sig_thumb")).alias("sizes")).collect()[0]
        n, sizes = int(stats["n"]), int(stats["sizes"])
        if n < 2 or n > int(opts.get("scene_max", SCENE_MAX)) or sizes != 1:  # as scene_links skips them
            return empty_pairs()
        shift = int(opts.get("scene_shift", SCENE_SHIFT))
        queries = (images.mapInPandas(_block_mean_batches, f"{IDX} long, small binary").toPandas()
                   .sort_values(IDX, kind="stable"))
        q_ids = queries[IDX].to_numpy(np.int64)
        q_small = np.stack([np.frombuffer(bytes(r), dtype=np.float32) for r in queries["small"]])
        del queries
        k = min(SCENE_NEIGHBOURS, n - 1)
        # k + 1 with the image itself (as nearest(exclude_self=True)), then the k best of the others by
        # (distance, index)
        near = knn_join(spark, images, _block_mean_vectors, [("small", q_small)], k=min(k + 1, n), metric="l2",
                        query_ids=q_ids).where(F.col("q") != F.col("index"))
        rank = F.row_number().over(Window.partitionBy("q").orderBy(F.col("score"), F.col("index")))
        cand = (near.withColumn("_r", rank).where(F.col("_r") <= k)
                .select(F.least("q", "index").alias("lo"), F.greatest("q", "index").alias("hi")).distinct())
        thumbs = images.select(F.col(IDX).alias("key"), "sig_thumb")
        joined = (cand.join(thumbs.withColumnRenamed("key", "lo").withColumnRenamed("sig_thumb", "ta"), "lo")
                  .join(thumbs.withColumnRenamed("key", "hi").withColumnRenamed("sig_thumb", "tb"), "hi"))
        linked = joined.select("lo", "hi", "ta", "tb").mapInPandas(
            lambda it: _scene_verdict_batches(it, shift), "lo long, hi long, stage int, share double").toPandas()
    finally:
        images.unpersist()
    if not len(linked):
        return empty_pairs()
    # unshifted links first, then those at a shift, each in pooled order (as scene_pairs lists them)
    linked = linked.sort_values(["stage", "lo", "hi"], kind="stable")
    return _pairs_frame(names, linked["lo"], linked["hi"], linked["share"])


# --------------------------------------------------------------------------- passages
def _passage_pair_batches(batches):
    """``mapInPandas`` body: per pair (query ``q``, other ``d``), the local ``shared_passage`` run with
    the boilerplate mask, and (docs not equal) the null's chance run with the null's mask; NaN chance
    for equal docs (the local loop leaves them out of the null)."""
    import pandas as pd

    from ..similarity.text import shared_passage
    from .spark_text_partial import _doc

    empty = np.zeros(0, np.uint64)

    def mask(doc, bad):
        return ~np.isin(doc, np.asarray([] if bad is None else list(bad), np.int64).view(np.uint64))

    for pdf in batches:
        if not len(pdf):
            continue
        runs, chances = [], []
        for raw_a, raw_b, bad, bad_null in zip(pdf["pa"], pdf["pb"], pdf["bad"], pdf["bad_null"]):
            doc_a, doc_b = _doc(raw_a), _doc(raw_b)
            other = np.sort(doc_b)
            run, _ = shared_passage(doc_a, doc_b, empty, other_sorted=other, boiler_free=mask(doc_a, bad))
            runs.append(run)
            if np.array_equal(doc_a, doc_b):
                chances.append(np.nan)
            else:
                chances.append(shared_passage(doc_a, doc_b, empty, other_sorted=other,
                                              boiler_free=mask(doc_a, bad_null))[0])
        yield pd.DataFrame({"q": pdf["q"].to_numpy(np.int64), "d": pdf["d"].to_numpy(np.int64),
                            "run": np.asarray(runs, np.float64), "chance": np.asarray(chances, np.float64)})


def passage_links_on_spark(spark, ctx, sigs):
    """:func:`leakguard.checks.groups.passage_links` with its index, rounds and measurements on Spark."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..checks.groups import content_links, passage_min_run, passage_reach
    from ..report import empty_pairs
    from ..similarity.text import partial_limits
    from .spark import _phase
    from .spark_text_partial import _fingerprint_batches, _postings_batches

    links = content_links(ctx)
    if not len(links) or not (links["check"] == "partial_duplicate").any():
        return empty_pairs()
    train, names = ctx.train, list(ctx.splits.eval_names)
    _phase(spark, "group_overlap: passage links (postings, frequencies)")
    n_train = sigs.where(F.col("sig_passages").isNotNull() & (F.col("split") == train)).count()
    min_docs, max_postings = partial_limits(ctx.config.options("partial_duplicate"), int(n_train))
    t_post = (sigs.where(F.col("sig_passages").isNotNull() & (F.col("split") == train))
              .select(IDX, "sig_passages").mapInPandas(_postings_batches, "d long, h long"))
    boiler = t_post.groupBy("h").agg(F.count(F.lit(1)).alias("tdf")).where(F.col("tdf") >= min_docs).select("h")
    texts = _keyed(sigs, names, "sig_passages").persist(StorageLevel.MEMORY_AND_DISK)
    cached = [texts]
    try:
        if texts.count() < 2:
            return empty_pairs()
        e_post = texts.mapInPandas(_postings_batches, "d long, h long")
        edf = e_post.groupBy("h").agg(F.count(F.lit(1)).alias("edf"))
        flags = (edf.join(boiler.withColumn("boiler", F.lit(True)), "h", "left")
                 .select("h", "edf", F.coalesce("boiler", F.lit(False)).alias("boiler"))
                 .persist(StorageLevel.MEMORY_AND_DISK))
        cached.append(flags)
        # the evaluation index the local _passage_candidates searches: postings of hashes that are not
        # training boilerplate, held by at most max_postings evaluation texts
        usable = (e_post.join(flags.where(~F.col("boiler") & (F.col("edf") <= max_postings)).select("h"), "h")
                  .persist(StorageLevel.MEMORY_AND_DISK))
        cached.append(usable)
        fps = (texts.mapInPandas(_fingerprint_batches, "q long, h long")
               .join(flags.where(F.col("boiler")).select("h"), "h", "left_anti").persist(StorageLevel.MEMORY_AND_DISK))
        cached.append(fps)  # read by every round
        # each text's own boilerplate hashes (its masks): training boilerplate; for the null also the
        # hashes exactly two evaluation texts hold (the null counts phrases in 3+ texts, as locally)
        masks = (e_post.join(flags.where(F.col("boiler") | (F.col("edf") == 2)), "h")
                 .groupBy(F.col("d").alias("q"))
                 .agg(F.collect_list(F.when(F.col("boiler"), F.col("h"))).alias("bad"),
                      F.collect_list("h").alias("bad_null")).persist(StorageLevel.MEMORY_AND_DISK))
        cached.append(masks)
        docs = texts.select(F.col(IDX).alias("key"), "sig_passages")
        # the frontier: the evaluation texts some check linked (and that hold a passage signature)
        keys_of = {n: r for r, n in enumerate(names)}
        linked_keys = sorted({(keys_of[s] << KEY_BITS) + int(i) for side in ("a", "b")
                              for s, i in zip(links[f"split_{side}"], links[f"index_{side}"]) if s in keys_of})
        frontier_df = spark.createDataFrame([(k,) for k in linked_keys], "key long")
        frontier = sorted(int(k) for k in texts.select(IDX).join(
            F.broadcast(frontier_df), F.col(IDX) == frontier_df["key"], "left_semi").toPandas()[IDX])
        reached, reach_at = set(frontier), passage_reach(ctx)
        rounds, level = [], 0
        while frontier:
            _phase(spark, f"group_overlap: passage links, round {level + 1} ({len(frontier)} texts)")
            here = F.broadcast(spark.createDataFrame([(k,) for k in frontier], "q long"))
            cand = (fps.join(here, "q", "left_semi").join(usable, "h").select("q", "d")
                    .where(F.col("q") != F.col("d")).distinct())
            if level == 0:  # two texts some check linked already: a link between them ties nothing new
                cand = cand.join(here.withColumnRenamed("q", "d"), "d", "left_anti")
            cand = cand.select("q", "d", F.least("q", "d").alias("lo"), F.greatest("q", "d").alias("hi"))
            for done in rounds:  # met in an earlier round
                cand = cand.join(done.select("lo", "hi"), ["lo", "hi"], "left_anti")
            # met from both ends in this round: the local loop queries the smaller position first
            cand = cand.groupBy("lo", "hi").agg(F.min("q").alias("q")).select(
                "q", (F.col("lo") + F.col("hi") - F.col("q")).alias("d"), "lo", "hi")
            scored = (cand.join(docs.withColumnRenamed("key", "q").withColumnRenamed("sig_passages", "pa"), "q")
                      .join(docs.withColumnRenamed("key", "d").withColumnRenamed("sig_passages", "pb"), "d")
                      .join(masks, "q", "left")
                      .select("q", "d", "pa", "pb", "bad", "bad_null")
                      .mapInPandas(_passage_pair_batches, "q long, d long, run double, chance double")
                      .select("q", "d", F.least("q", "d").alias("lo"), F.greatest("q", "d").alias("hi"), "run",
                              "chance")
                      .persist(StorageLevel.MEMORY_AND_DISK))
            cached.append(scored)
            rounds.append(scored)
            new = scored.where(F.col("run") >= reach_at).select("d").distinct().toPandas()["d"]
            frontier = sorted(set(int(x) for x in new) - reached)
            reached |= set(frontier)
            level += 1
        if not rounds:
            return empty_pairs()
        pairs = rounds[0]
        for more in rounds[1:]:
            pairs = pairs.unionByName(more)
        # the null: each compared text's longest chance run (0 where its only pairs are equal texts)
        ends = pairs.select(F.col("q").alias("t"), "chance").unionByName(pairs.select(F.col("d").alias("t"), "chance"))
        null = (ends.groupBy("t").agg(F.max(F.coalesce(F.nanvl("chance", F.lit(0.0)), F.lit(0.0))).alias("c"))
                .toPandas()["c"].to_numpy(np.float64))
        if not len(null):
            return empty_pairs()
        min_run = passage_min_run(ctx, np.sort(null))
        kept = pairs.where(F.col("run") >= min_run).select("lo", "hi", "run").toPandas().sort_values(["lo", "hi"])
    finally:
        for frame in cached:
            frame.unpersist()
    if not len(kept):
        return empty_pairs()
    return _pairs_frame(names, kept["lo"], kept["hi"], kept["run"])


def engine_links(spark, sigs) -> dict:
    """What ``ctx.shared[leakguard.checks.groups.ENGINE_LINKS]`` holds on Spark: the scene and passage
    searches over the signature frame ``sigs``."""
    return {"scenes": lambda ctx: scene_links_on_spark(spark, ctx, sigs),
            "passages": lambda ctx: passage_links_on_spark(spark, ctx, sigs)}
