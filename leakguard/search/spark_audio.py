"""Audio ``augmented_duplicate`` and ``partial_duplicate`` on the Spark engine.

The local backends (:mod:`leakguard.similarity.audio`) run unchanged on the driver: they read the
candidates, alignments and calibrated thresholds that ``_alignments`` computes once for both
checks, and ``_alignments`` itself runs as it does locally, with its four searches answered by
:class:`SparkAudioSearch` instead of the local store:

- ``ids``: the recordings of a split with 8 or more sounding frames (the ``spectral_frames``
  signature, computed in the executors as every Spark signature), their indices to the driver;
- ``index`` / ``candidates``: every training recording's window descriptors
  (:func:`~leakguard.similarity.audio.window_descriptors`) computed in the executors, one row per
  window; the query recordings' frames come to the driver in chunks, where the local
  :func:`~leakguard.similarity.audio.query_windows` describes them at the 7 semitone shifts; each
  query window's ``k`` nearest training windows come from the distributed exact kNN
  (:func:`leakguard.search.spark_knn.knn_join`), and the local
  :func:`~leakguard.similarity.audio.pick_candidates` turns them into candidate recordings;
- ``same_frames`` (exact copies left out of the null) and ``verify``: the pairs are joined with
  both recordings' frames and compared / aligned in the executors by the local
  :func:`numpy.array_equal` rule and :func:`~leakguard.similarity.audio_align.align_many`
  (each pair's alignment does not depend on the other pairs of its batch).

Where the report can differ from the local one: the window similarities are FAISS float32 cosines
of the same vectors in other matrix shapes (last-bit differences, measured <= 5e-7), and equal
similarities are ordered by the lower window (the local FAISS search's pick among exact ties
depends on its blocking); both only reorder candidates whose window similarities tie or nearly
tie. No alignment cache (``AuditConfig(cache_dir=...)``) on Spark: every pair is aligned.

>>> report = lg.audit({"train": "s3a://b/train/", "val": "s3a://b/val/"}, modality="audio",
...                   checks=["augmented_duplicate", "partial_duplicate"],
...                   config=lg.AuditConfig(engine="spark"))                       # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

IDX = "_lg_idx"
FRAMES = "sig_spectral_frames"
WINDOW_BITS = 24           # window id = recording index << 24 | window number (index order = local order)
QUERY_RECORDINGS = 2048    # query recordings whose frames are on the driver at once


def _frames(raw) -> np.ndarray:
    from ..signatures.audio import N_BANDS

    return np.frombuffer(bytes(raw), dtype=np.float16).reshape(-1, N_BANDS)


def _window_batches(batches):
    """``mapInPandas`` body: one row per window descriptor of each recording (the local code)."""
    import pandas as pd

    from ..similarity.audio import window_descriptors

    for pdf in batches:
        wins, descs = [], []
        for i, raw in zip(pdf[IDX].to_numpy(np.int64), pdf[FRAMES]):
            d = window_descriptors(_frames(raw))
            wins.append((int(i) << WINDOW_BITS) + np.arange(len(d), dtype=np.int64))
            descs.extend(np.ascontiguousarray(row).tobytes() for row in d)
        if descs:
            yield pd.DataFrame({"win": np.concatenate(wins), "desc": descs})


def _window_vectors(pdf) -> dict:
    return {"w": np.stack([np.frombuffer(bytes(v), dtype=np.float32) for v in pdf["desc"]])}


def _pair_batches(batches, align: bool):
    """``mapInPandas`` body: per pair, whether the two frame sequences are equal (``align=False``)
    or their alignment as ``Alignment.to_array`` bytes (``align=True``, the local ``align_many``)."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from ..signatures.audio import BANDS_PER_SEMITONE
    from ..similarity.audio import VERIFY_SEMITONES
    from ..similarity.audio_align import align_many

    with threadpool_limits(1):  # one task, one core; the local alignments run on one thread too
        for pdf in batches:
            if not len(pdf):
                continue
            fa = [_frames(v) for v in pdf["fa"]]
            fb = [_frames(v) for v in pdf["fb"]]
            if align:
                done = align_many([(a, b, int(h) * BANDS_PER_SEMITONE) for a, b, h in zip(fa, fb, pdf["hint"])],
                                  max_semitones=VERIFY_SEMITONES)
                out = [a.to_array().tobytes() for a in done]
            else:
                out = [b"\x01" if np.array_equal(a, b) else b"\x00" for a, b in zip(fa, fb)]
            yield pd.DataFrame({"job": pdf["job"].to_numpy(np.int64), "out": out})


class SparkAudioSearch:
    """:class:`~leakguard.similarity.audio.LocalAudioSearch`'s four searches on Spark (module docstring)."""

    def __init__(self, spark, ctx, sigs):
        from pyspark.sql import functions as F

        from ..signatures.audio import N_BANDS

        self.spark, self.ctx = spark, ctx
        # 2 bytes per float16 band value: the frame count without decoding
        self.frames = (sigs.where(F.col(FRAMES).isNotNull()).select("split", IDX, FRAMES)
                       .withColumn("_lg_nf", (F.length(FRAMES) / (2 * N_BANDS)).cast("long")))
        self.windows = None
        self.n_windows = 0
        self.t_pos = {}

    def _split(self, split: str):
        from pyspark.sql import functions as F

        return self.frames.where((F.col("split") == split) & (F.col("_lg_nf") >= 8))

    def ids(self, split: str) -> np.ndarray:
        return np.sort(self._split(split).select(IDX).toPandas()[IDX].to_numpy(np.int64))

    def index(self, t_ids) -> None:
        from pyspark import StorageLevel

        from .spark import _phase

        self.t_pos = {int(i): p for p, i in enumerate(t_ids)}  # window owner -> position, as _index numbers them
        _phase(self.spark, "augmented/partial_duplicate (audio): training window descriptors")
        self.windows = (self._split(self.ctx.train).select(IDX, FRAMES)
                        .mapInPandas(_window_batches, "win long, desc binary")
                        .persist(StorageLevel.MEMORY_AND_DISK))
        self.n_windows = self.windows.count()

    def candidates(self, split: str, ids, n_candidates: int, exclude=None):
        from pyspark.sql import functions as F

        from ..similarity.audio import knn_k, pick_candidates, query_windows
        from .spark import _phase
        from .spark_knn import knn_join

        ids = np.asarray(ids, dtype=np.int64)
        out = []
        frame = self._split(split)
        for lo in range(0, len(ids), QUERY_RECORDINGS):
            chunk = ids[lo:lo + QUERY_RECORDINGS]
            ex = None if exclude is None else list(exclude[lo:lo + QUERY_RECORDINGS])
            wanted = self.spark.createDataFrame([(int(i),) for i in chunk], f"{IDX} long")
            pdf = frame.join(F.broadcast(wanted), IDX, "left_semi").select(IDX, FRAMES).toPandas()
            got = {int(i): _frames(raw) for i, raw in zip(pdf[IDX], pdf[FRAMES])}
            q_desc, q_owner, q_shift = query_windows([got[int(i)] for i in chunk])
            if not len(q_desc) or not self.n_windows:
                out.extend([] for _ in chunk)
                continue
            k = knn_k(self.n_windows, exclude is not None)
            _phase(self.spark, f"augmented/partial_duplicate (audio): window kNN join, {split!r} recordings")
            near = knn_join(self.spark, self.windows, _window_vectors, [("w", q_desc)], k, "cosine",
                            id_col="win").toPandas()
            # each query window's k best, as the local search lists them: similarity, then window
            near = near.sort_values(["q", "score", "index"], ascending=[True, False, True], kind="stable")
            near["_r"] = near.groupby("q").cumcount()
            near = near[near["_r"] < k]
            sims = np.full((len(q_desc), k), -np.inf, dtype=np.float32)
            rec = np.zeros((len(q_desc), k), dtype=np.int64)
            valid = np.zeros((len(q_desc), k), dtype=bool)
            q, r = near["q"].to_numpy(np.int64), near["_r"].to_numpy(np.int64)
            sims[q, r] = near["score"].to_numpy(np.float32)
            rec[q, r] = [self.t_pos[int(w) >> WINDOW_BITS] for w in near["index"]]
            valid[q, r] = True
            out.extend(pick_candidates(len(chunk), q_owner, q_shift, sims, rec, valid, n_candidates, ex))
        return out

    def _pairs(self, rows, align: bool) -> list:
        """``rows``: (training index, other split, index, semitone hint); the executors' answers in order."""
        from pyspark.sql import functions as F

        if not rows:
            return []
        jobs = self.spark.createDataFrame(
            [(k, int(a), str(s), int(b), int(h)) for k, (a, s, b, h) in enumerate(rows)],
            "job long, a long, split_b string, b long, hint int")
        fa = (self.frames.where(F.col("split") == self.ctx.train)
              .select(F.col(IDX).alias("a"), F.col(FRAMES).alias("fa")))
        fb = self.frames.select(F.col("split").alias("split_b"), F.col(IDX).alias("b"), F.col(FRAMES).alias("fb"))
        joined = jobs.join(fa, "a").join(fb, ["split_b", "b"]).select("job", "hint", "fa", "fb")
        got = joined.mapInPandas(lambda it: _pair_batches(it, align), "job long, out binary").toPandas()
        by_job = dict(zip(got["job"].to_numpy(np.int64).tolist(), got["out"]))
        return [bytes(by_job[k]) for k in range(len(rows))]

    def same_frames(self, pairs) -> list[bool]:
        from .spark import _phase

        _phase(self.spark, "augmented/partial_duplicate (audio): exact copies among calibration pairs")
        return [v == b"\x01" for v in self._pairs([(a, self.ctx.train, b, 0) for a, b in pairs], align=False)]

    def verify(self, jobs) -> list:
        from ..similarity.audio_align import Alignment
        from .spark import _phase

        _phase(self.spark, "augmented/partial_duplicate (audio): alignments")
        return [Alignment.from_array(np.frombuffer(v, dtype=np.float64)) for v in self._pairs(list(jobs), align=True)]

    def close(self) -> None:
        if self.windows is not None:
            self.windows.unpersist()


def audio_similarity_on_spark(spark, ctx, check, sigs) -> list:
    """Audio ``augmented_duplicate`` or ``partial_duplicate``: the local backend, after
    ``_alignments`` ran with its searches on Spark (once for both checks, as locally)."""
    from ..checks.similarity import BACKENDS
    from ..similarity.audio import _alignments

    if ("audio", "alignments") not in ctx.shared:
        search = SparkAudioSearch(spark, ctx, sigs)
        try:
            _alignments(ctx, search)
        finally:
            search.close()
    return BACKENDS[(check.name, "audio")].run(ctx, check)


# --------------------------------------------------------------------------- semantic duplicates
STATS = "sig_spectral_stats"


def _finite_batches(batches):
    """``mapInPandas`` body: the recordings whose statistics are all finite (some sound), as the
    local ``_audio_embeddings`` keeps them."""
    for pdf in batches:
        ok = [bool(np.isfinite(np.frombuffer(bytes(v), dtype=np.float32)).all()) for v in pdf[STATS]]
        if any(ok):
            yield pdf[np.asarray(ok, dtype=bool)]


def _streamed_mean_std(frame, n: int, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """``X.mean(axis=0)`` and ``X.std(axis=0)`` of the float32 vectors in ``frame`` (``n`` rows),
    to the bit: numpy adds float32 rows one after another in row order along axis 0, so the rows
    stream to the driver in sample order (two passes: the spread needs the mean first)."""
    def passes(mu=None):
        acc = None
        rows = []
        for r in frame.orderBy(IDX).select(STATS).toLocalIterator(prefetchPartitions=True):
            rows.append(np.frombuffer(bytes(r[STATS]), dtype=np.float32))
            if len(rows) == chunk:
                acc = _accumulate(acc, np.stack(rows), mu)
                rows = []
        if rows:
            acc = _accumulate(acc, np.stack(rows), mu)
        return acc

    total = passes()
    mu = np.true_divide(total, n, dtype=np.float32)
    sq = passes(mu)
    return mu, np.sqrt(np.true_divide(sq, n, dtype=np.float32))


def _accumulate(acc, rows: np.ndarray, mu=None) -> np.ndarray:
    if mu is not None:
        rows = rows - mu
        rows = rows * rows
    # one reduction along axis 0 that starts from the running sum: the same additions, in the
    # same order, as numpy's over the whole matrix
    return np.add.reduce(rows if acc is None else np.vstack([acc[None, :], rows]), axis=0)


def audio_semantic_on_spark(spark, ctx, check_name: str, sigs) -> list:
    """Audio ``semantic_duplicate`` with the default embedder (``spectral_stats``), its searches on Spark.

    The statistics are computed in the executors; their training mean and spread stream to the
    driver in sample order (numpy's float32 sums, to the bit); the null is the local
    ``null_scores`` rule over the standardised vectors (:func:`leakguard.search.spark_semantic.null_on_spark`:
    the sampled recordings' nearest by the kNN join, then ``null_scores`` itself on each); every
    evaluation recording's nearest training recording by the kNN join (k = 1, equal scores: the
    lower index); threshold and finding by the local ``semantic_audio_threshold`` /
    ``semantic_audio_finding``. Cosines are FAISS float32 values computed in other matrix shapes
    than locally (last bits). A user's embedder (``AuditConfig(embedder=callable)``): its vectors
    from the executors (:func:`leakguard.search.spark_embedders.user_item_vectors`) for the
    recordings the default statistics keep (readable, some sound, as locally), used as they are
    (no standardisation, the local rule), then the same null, search and finding.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..similarity.audio import (
        SpectralStatsEmbedder, audio_embedder, semantic_audio_finding, semantic_audio_threshold, standard_scale)
    from .spark import _phase
    from .spark_knn import knn_join
    from .spark_semantic import _collect, _index_vectors, null_on_spark

    embedder = audio_embedder(ctx.config.embedder)
    default = isinstance(embedder, SpectralStatsEmbedder)
    train = ctx.train
    stats = (sigs.where(F.col(STATS).isNotNull()).select("split", IDX, "key", STATS)
             .mapInPandas(_finite_batches, f"split string, {IDX} long, key binary, {STATS} binary"))
    if not default:  # a user's embedder, on the recordings the statistics keep (leakguard.search.spark_embedders)
        from .spark_embedders import user_item_vectors

        stats = user_item_vectors(spark, ctx, ctx.shared["spark_prepared"], column=STATS).join(
            stats.select("split", IDX), ["split", IDX], "left_semi")
    stats = stats.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = dict(stats.groupBy("split").count().toPandas().itertuples(index=False, name=None))
        n = int(counts.get(train, 0))
        if n < 3:
            return []
        t_frame = stats.where(F.col("split") == train)
        scale = None  # a user's embedder is used as it is
        if default:
            _phase(spark, "semantic_duplicate (audio): training mean and spread (streamed in sample order)")
            mu, sd = standard_scale(*_streamed_mean_std(t_frame, n))

            def standardised(x):
                return (x - mu) / sd

            scale = standardised

        def null():
            _phase(spark, "semantic_duplicate (audio): null of nearest training neighbours (kNN join)")
            return null_on_spark(spark, t_frame, n, 1, 5000, ctx.config.random_state, column=STATS, transform=scale)

        threshold, source, n_null = semantic_audio_threshold(ctx, check_name, null)
        findings = []
        for name in ctx.splits.eval_names:
            if not counts.get(name):
                continue
            _phase(spark, f"semantic_duplicate (audio): nearest training recording of each {name!r} recording")
            e_ids, _, e_vecs = _collect(spark, stats.where(F.col("split") == name), column=STATS, transform=scale)
            near = knn_join(spark, t_frame.select(IDX, STATS), lambda pdf: _index_vectors(pdf, STATS, scale),
                            [("e", e_vecs)], 1, "cosine", query_ids=e_ids).toPandas()
            # one neighbour per evaluation recording (equal scores: the lowest index)
            near = near.sort_values(["q", "score", "index"], ascending=[True, False, True], kind="stable")
            near = near.drop_duplicates("q").set_index("q")
            t_idx = near["index"].reindex(e_ids, fill_value=-1).to_numpy(np.int64)
            sims = near["score"].reindex(e_ids, fill_value=-np.inf).to_numpy(np.float32).astype(np.float64)
            f = semantic_audio_finding(ctx, check_name, name, t_idx, e_ids, sims, threshold, source, n_null,
                                       embedder)
            if f is not None:
                findings.append(f)
        return findings
    finally:
        stats.unpersist()
