"""Image ``partial_duplicate`` at any scale (``resized=True``) on the Spark engine.

The local path (:func:`leakguard.similarity.image_partial.partial_duplicates`, ``resized``) finds
SIFT keypoints on every image (the ``partial_kp`` signature), lets each evaluation descriptor vote
for the images of its nearest training descriptors (:func:`descriptor_candidates`), and verifies
each candidate pair with a RANSAC similarity transform and a post-warp correlation
(:func:`verify_overlap`), against a threshold calibrated on mirrored training images. Here:

- **signatures**: ``partial_kp``, ``thumb_kp`` and ``shape`` come from the registry in the
  executors, as every Spark signature does; the first ``KP_SEARCH`` descriptors of each image are
  exploded to one row per descriptor (``mapInPandas``);
- **candidate search**: the local search's own branch (:func:`exact_descriptor_search`). Where the
  local search is exact, both sides are cut into cells (training descriptors by image into ``P``
  chunks, query descriptors by image into ``Q`` buckets, each cell one chunk x one bucket); where
  it is FAISS IVF, the inverted lists are the cells: the driver trains the same IVF quantizer on
  the same descriptor sample (:func:`ivf_sample_positions`, :func:`train_ivf`, one thread), the
  executors put each training descriptor in its list and each query descriptor in its
  ``IVF_PROBES`` lists with that quantizer, and an equi-join on the list (``cogroup``) meets them.
  In each cell every query's ``k`` nearest training descriptors are found exactly; per evaluation
  image the cells' lists are merged to its ``k`` nearest and the local
  :func:`neighbour_votes` picks its ``kp_candidates`` candidates;
- **verification**: candidate pairs not linked already are joined with both images' keypoints,
  thumbnails and shapes and verified in the executors by :func:`verify_overlap`;
- **calibration**: the sampled training images (:func:`stable_sample` on the digests, per batch
  then on the driver) are mirrored on the driver, searched against the training split by the same
  search (their own image left out, as locally) and verified in the executors; the threshold is
  the local :func:`calibrated_threshold` of their best scores;
- **finding**: on the driver, the verified pairs above the threshold in the local order (by
  evaluation image, then votes, then training image), after the same-scale rows, by the local
  :func:`partial_finding`.

Squared descriptor distances are integers below 2^24 (SIFT descriptors are uint8 of norm ~512),
so float32 arithmetic gives them exactly in every matrix shape, and ties at the ``k``-th place
cannot change a vote (a vote needs a distance below 0.64 x the ``k``-th). So the report equals
the local engine's, up to what the tests cannot show: a query descriptor about as near to two
IVF centroids within float32 rounding may be put in another list (FAISS's k-means and list
assignment are rerun with the same inputs, not shared), and in the calibration a training
image's own descriptor tied at the 6th place with another image's one.

The executors need OpenCV (as the driver does for this path) and, where the driver has FAISS,
faiss-cpu (the IVF branch); without them an ``InputError`` names the option and the package.

>>> report = lg.audit({"train": "s3a://b/crops/train/", "val": "s3a://b/crops/val/"}, modality="image",
...                   checks=["partial_duplicate"], config=lg.AuditConfig(
...                       engine="spark", check_options={"partial_duplicate": {"resized": True}}))  # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

IDX = "_lg_idx"
DESC = 128               # bytes of one SIFT descriptor
CELL_ROWS = 20_000       # descriptors per side of one cell of the exact search
QUERY_BLOCK = 1024       # query descriptors scored at once in a cell (fewer past 2^24 distances)
DESC_SCHEMA = "img long, q int, desc binary"
NEAR_SCHEMA = "b long, q int, a long, d double"
CAND_SCHEMA = "a long, b long, n long"
VERIFIED_SCHEMA = ("a long, b long, n long, score double, r double, share double, scale double, rotation double, "
                   "oy double, ox double, inliers long")


# --------------------------------------------------------------------------- descriptors
def _kp_rows(raw) -> np.ndarray:
    from ..similarity.image_partial import KP_ROW

    return np.frombuffer(bytes(raw), dtype=np.uint8).reshape(-1, KP_ROW)


def _descriptor_batches(batches, head: int):
    """``mapInPandas`` body: one row per search descriptor (the first ``head`` of each image), as
    the local :class:`Descriptors` stacks them."""
    import pandas as pd

    from ..errors import InputError
    from ..similarity.image_align import have_opencv

    if not have_opencv():
        raise InputError("partial_duplicate with resized=True needs OpenCV (opencv-python-headless) on the Spark "
                         "executors as well as on the driver; install it there or leave resized off")
    for pdf in batches:
        splits, imgs, qs, descs = [], [], [], []
        for split, i, raw in zip(pdf["split"], pdf[IDX].to_numpy(np.int64), pdf["sig_partial_kp"]):
            rows = _kp_rows(raw)[:head]
            splits.extend([str(split)] * len(rows))
            imgs.append(np.full(len(rows), i, np.int64))
            qs.append(np.arange(len(rows), dtype=np.int32))
            descs.extend(bytes(r) for r in rows[:, 8:])
        if descs:
            yield pd.DataFrame({"split": splits, "img": np.concatenate(imgs), "q": np.concatenate(qs),
                                "desc": descs})


def _matrix(col) -> np.ndarray:
    return np.frombuffer(b"".join(bytes(v) for v in col), dtype=np.uint8).reshape(-1, DESC).astype(np.float32)


def _squared_distances(q: np.ndarray, t: np.ndarray, t_sq: np.ndarray) -> np.ndarray:
    """Exact squared L2 distances (integers: uint8 descriptors; float32 is exact below 2^24)."""
    return (q * q).sum(axis=1)[:, None] + t_sq[None, :] - 2.0 * (q @ t.T)


def _cell_nearest(index_pdf, query_pdf, k: int):
    """``cogroup`` body: in one cell, each query descriptor's ``k`` nearest index descriptors."""
    import pandas as pd

    empty = pd.DataFrame({"b": np.zeros(0, np.int64), "q": np.zeros(0, np.int32), "a": np.zeros(0, np.int64),
                          "d": np.zeros(0)})
    if not len(index_pdf) or not len(query_pdf):
        return empty
    t = _matrix(index_pdf["a_desc"])
    t_img = index_pdf["a"].to_numpy(np.int64)
    if float((t * t).sum(axis=1).max()) >= 1 << 22:  # not SIFT-normalised: keep the sums exact in float64
        t = t.astype(np.float64)
    t_sq = (t * t).sum(axis=1)
    qm = _matrix(query_pdf["b_desc"]).astype(t.dtype)
    kk = min(k, len(t))
    block = max(1, min(QUERY_BLOCK, (1 << 24) // len(t)))  # at most 2^24 distances (64 MB) at once
    out_b, out_q, out_a, out_d = [], [], [], []
    for lo in range(0, len(qm), block):
        d = _squared_distances(qm[lo:lo + block], t, t_sq)
        part = np.argpartition(d, kk - 1, axis=1)[:, :kk] if kk < d.shape[1] else np.broadcast_to(
            np.arange(d.shape[1]), d.shape)
        rows = np.repeat(np.arange(lo, lo + len(d)), kk)
        out_b.append(query_pdf["b"].to_numpy(np.int64)[rows])
        out_q.append(query_pdf["q"].to_numpy(np.int32)[rows])
        out_a.append(t_img[part.ravel()])
        out_d.append(np.take_along_axis(d, part, axis=1).ravel().astype(np.float64))
    return pd.DataFrame({"b": np.concatenate(out_b), "q": np.concatenate(out_q), "a": np.concatenate(out_a),
                         "d": np.concatenate(out_d)})


def _merged_votes(pdf, k: int, per_b: int, exclude_self: bool, exact: bool):
    """``applyInPandas`` body: per query descriptor its ``k`` nearest over every cell, then the
    local :func:`neighbour_votes` on a group of whole evaluation images."""
    import pandas as pd

    from ..similarity.image_partial import neighbour_votes

    empty = pd.DataFrame({"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64), "n": np.zeros(0, np.int64)})
    if not len(pdf):
        return empty
    # equal distances: any order (a tie with the k-th never votes, see the module docstring)
    pdf = pdf.sort_values(["b", "q", "d", "a"], kind="stable")
    rank = pdf.groupby(["b", "q"], sort=False).cumcount().to_numpy()
    pdf = pdf[rank < k]
    rank = rank[rank < k]
    row = pdf.groupby(["b", "q"], sort=False).ngroup().to_numpy()
    n = int(row.max()) + 1
    d2 = np.full((n, k), np.inf)
    img_a = np.full((n, k), -1, np.int64)
    d2[row, rank] = pdf["d"].to_numpy(np.float64)
    img_a[row, rank] = pdf["a"].to_numpy(np.int64)
    img_b = np.zeros(n, np.int64)
    img_b[row] = pdf["b"].to_numpy(np.int64)
    if exact:  # the exact local search returns distances (float32 square roots), squared again in float64
        d2 = np.where(np.isfinite(d2), np.sqrt(d2.astype(np.float32)).astype(np.float64) ** 2, d2)
    ia, ib, votes = neighbour_votes(d2, img_a, np.repeat(img_b[:, None], k, axis=1), per_b, exclude_self)
    return pd.DataFrame({"a": ia, "b": ib, "n": votes})


# --------------------------------------------------------------------------- IVF lists
def _ivf_assign(batches, centroids, probes: int, side: str):
    """``mapInPandas`` body: each descriptor's inverted list(s) by the driver's quantizer (``cell``);
    ``side``: ``"a"`` (index descriptors) or ``"b"`` (queries)."""
    from threadpoolctl import threadpool_limits

    try:
        import faiss
    except ImportError:
        from ..errors import InputError

        # the driver has FAISS, so the local engine would search this split with IVF: same here
        raise InputError("partial_duplicate with resized=True: the descriptor search of this split is FAISS IVF "
                         "(FAISS is on the driver), so the Spark executors need faiss-cpu too; install it there")

    limits = threadpool_limits(1)
    try:
        quantizer = faiss.IndexFlatL2(DESC)
        quantizer.add(centroids)
        for pdf in batches:
            if not len(pdf):
                continue
            x = _matrix(pdf[f"{side}_desc"])
            n = len(x)
            if n < 20:  # FAISS scores fewer than 20 queries by another code path: pad (see module docstring)
                x = np.concatenate([x, np.zeros((20 - n, DESC), np.float32)])
            _, lists = quantizer.search(x, probes)
            out = pdf.iloc[np.repeat(np.arange(n), probes)].reset_index(drop=True)
            out["cell"] = lists[:n].ravel().astype(np.int64)
            yield out
    finally:
        limits.unregister()


def _ivf_centroids(spark, index_desc, n_index: int, random_state: int, counts) -> np.ndarray:
    """The local IVF quantizer's centroids: the same descriptor sample (positions in the split's
    stacked descriptors, images by index), trained by the same code on the driver."""
    import pandas as pd
    from pyspark.sql import functions as F
    from threadpoolctl import threadpool_limits

    from ..similarity.image_partial import ivf_sample_positions, train_ivf

    positions = ivf_sample_positions(n_index, random_state)
    imgs = counts[IDX].to_numpy(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts["n"].to_numpy(np.int64))[:-1]])
    owner = np.searchsorted(starts, positions, side="right") - 1
    img, q = imgs[owner], (positions - starts[owner]).astype(np.int32)
    # up to 524,288 rows: from pandas (Arrow), not a list of tuples
    wanted = spark.createDataFrame(pd.DataFrame({"img": img, "q": q}), "img long, q int")
    got = index_desc.join(F.broadcast(wanted), ["img", "q"], "left_semi").select("img", "q", "desc").toPandas()
    at = {(int(i), int(j)): d for i, j, d in zip(got["img"], got["q"], got["desc"])}
    sample = _matrix([at[(int(i), int(j))] for i, j in zip(img, q)])
    with threadpool_limits(1):
        index = train_ivf(sample, n_index)
    return index.quantizer.reconstruct_n(0, index.nlist)


# --------------------------------------------------------------------------- the search
def candidates_on_spark(spark, index_desc, query_desc, n_index: int, n_query: int, per_b: int,
                        exclude_self: bool, random_state: int, ivf_cache: dict):
    """Spark DataFrame ``a, b, n``: the local :func:`descriptor_candidates` of the query images
    (``query_desc``: ``img, q, desc``) against the index images (``index_desc``), see the module
    docstring. ``ivf_cache`` (per index split): ``counts()`` gives pandas ``_lg_idx, n`` (search
    descriptors per index image, by index) for the IVF sample; the centroids are kept in it, so
    they are trained once per index split, as locally."""
    from pyspark.sql import functions as F

    from ..similarity.image_partial import IVF_PROBES, VOTE_K, exact_descriptor_search

    if n_index < 2 or not n_query:
        return spark.createDataFrame([], CAND_SCHEMA)
    k = min(VOTE_K + (1 if exclude_self else 0), n_index)
    exact = exact_descriptor_search(n_index, n_query)
    if not exact and "centroids" not in ivf_cache:
        ivf_cache["centroids"] = _ivf_centroids(spark, index_desc, n_index, random_state, ivf_cache["counts"]())
    # both sides come from one frame: new column names (and so new attributes), or the cogroup
    # below mixes up the two sides' columns
    index_desc = index_desc.select(F.col("img").alias("a"), F.col("desc").alias("a_desc"))
    query_desc = query_desc.select(F.col("img").alias("b"), "q", F.col("desc").alias("b_desc"))
    if exact:
        chunks, buckets = -(-n_index // CELL_ROWS), -(-n_query // CELL_ROWS)
        left = index_desc.select("a", "a_desc", F.explode(F.array(*[
            F.pmod(F.col("a"), F.lit(chunks)) * buckets + F.lit(j) for j in range(buckets)])).alias("cell"))
        right = query_desc.select("b", "q", "b_desc", F.explode(F.array(*[
            F.lit(c * buckets) + F.pmod(F.col("b"), F.lit(buckets)) for c in range(chunks)])).alias("cell"))
    else:
        bc = spark.sparkContext.broadcast(ivf_cache["centroids"])
        left = index_desc.mapInPandas(lambda it: _ivf_assign(it, bc.value, 1, "a"), "a long, a_desc binary, cell long")
        right = query_desc.mapInPandas(lambda it: _ivf_assign(it, bc.value, IVF_PROBES, "b"),
                                       "b long, q int, b_desc binary, cell long")
    near = left.groupBy("cell").cogroup(right.groupBy("cell")).applyInPandas(
        lambda i, q: _cell_nearest(i, q, k), NEAR_SCHEMA)
    groups = max(2 * int(spark.conf.get("spark.sql.shuffle.partitions", "8")), n_query // 50_000 + 1)
    return (near.withColumn("_lg_bucket", F.pmod(F.col("b"), F.lit(groups))).groupBy("_lg_bucket")
            .applyInPandas(lambda pdf: _merged_votes(pdf, k, per_b, exclude_self, exact), CAND_SCHEMA))


# --------------------------------------------------------------------------- verification
def _verify_batch(pdf, min_inliers: int, mirror_b: bool):
    """``applyInPandas`` body: :func:`verify_overlap` on each candidate pair (with both images'
    signatures); ``mirror_b``: b is a training image to mirror (the calibration)."""
    import pandas as pd

    from .spark_image import decode_signature
    from ..similarity.image_partial import mirrored, verify_overlap

    out = {c.split()[0]: [] for c in VERIFIED_SCHEMA.split(", ")}
    for row in pdf.itertuples(index=False):
        if mirror_b and bytes(row.a_key) == bytes(row.b_key):
            continue  # identical images: not an unrelated pair (dropped before verification, as locally)
        shape_a = np.frombuffer(bytes(row.a_shape), np.int32).astype(np.int64)
        shape_b = np.frombuffer(bytes(row.b_shape), np.int32).astype(np.int64)
        kp_b, th_b = _kp_rows(row.b_kp), decode_signature("thumb_kp", row.b_thumb)
        if mirror_b:
            kp_b, th_b = mirrored(kp_b, shape_b), np.ascontiguousarray(th_b[:, ::-1])
        ev = verify_overlap(_kp_rows(row.a_kp), kp_b, shape_a, shape_b, decode_signature("thumb_kp", row.a_thumb),
                            th_b, min_inliers)
        if ev is None:
            continue
        for c, v in (("a", row.a), ("b", row.b), ("n", row.n), ("score", ev["score"]), ("r", ev["r"]),
                     ("share", ev["share"]), ("scale", ev["scale"]), ("rotation", ev["rotation"]),
                     ("oy", ev["offset"][0]), ("ox", ev["offset"][1]), ("inliers", ev["inliers"])):
            out[c].append(v)
    ints = ("a", "b", "n", "inliers")
    return pd.DataFrame({c: np.asarray(v, dtype=np.int64 if c in ints else np.float64) for c, v in out.items()})


def verified_on_spark(spark, cands, images_a, images_b, min_inliers: int, mirror_b: bool, n_pairs: int):
    """pandas (``VERIFIED_SCHEMA``): every candidate pair that :func:`verify_overlap` accepts."""
    from pyspark.sql import functions as F

    def side(frame, s):
        return frame.select(F.col(IDX).alias(s), F.col("key").alias(f"{s}_key"), F.col("sig_partial_kp").alias(f"{s}_kp"),
                            F.col("sig_thumb_kp").alias(f"{s}_thumb"), F.col("sig_shape").alias(f"{s}_shape"))

    groups = max(2 * int(spark.conf.get("spark.sql.shuffle.partitions", "8")), n_pairs // 500 + 1)
    pairs = (cands.join(side(images_a, "a"), "a").join(side(images_b, "b"), "b")
             .withColumn("_lg_bucket", F.pmod(F.xxhash64("a", "b"), F.lit(groups))))
    return pairs.groupBy("_lg_bucket").applyInPandas(lambda pdf: _verify_batch(pdf, min_inliers, mirror_b),
                                                     VERIFIED_SCHEMA).toPandas()


# --------------------------------------------------------------------------- calibration
def calibrate_kp_on_spark(spark, ctx, train_images, train_desc, n_train: int, n_desc: int, opts: dict,
                          ivf_cache: dict) -> dict:
    """The local :func:`calibrate_partial`: sampled training images, mirrored, searched and verified
    against the training split; the threshold from their best scores."""
    from ..similarity.calibration import calibrated_threshold
    from ..similarity.image import stable_sample
    from ..similarity.image_partial import KP_SEARCH, mirrored
    from .spark_image import _sample_batches

    if opts.get("threshold") is not None:
        return {"threshold": float(opts["threshold"]), "source": "given", "null": []}
    if n_train < 3:
        return {"threshold": max(float(opts["min_score"]), 0.9), "source": "default (training split too small)",
                "null": []}
    size = min(n_train, int(opts["null_samples"]))
    rs = ctx.config.random_state
    picked = train_images.select(IDX, "key").mapInPandas(lambda it: _sample_batches(it, size, rs),
                                                          f"{IDX} long, key binary").toPandas()
    picked = picked.sort_values(IDX, kind="stable")
    sample_idx = picked[IDX].to_numpy(np.int64)[stable_sample([bytes(k) for k in picked["key"]], size, rs)]
    from pyspark.sql import functions as F

    ids = spark.createDataFrame([(int(i),) for i in sample_idx], f"{IDX} long")
    got = train_images.join(F.broadcast(ids), IDX, "left_semi").select(IDX, "sig_partial_kp", "sig_shape").toPandas()
    # the sampled images mirrored on the driver (a few hundred), their search descriptors as queries
    rows = []
    for i, raw, shape in zip(got[IDX], got["sig_partial_kp"], got["sig_shape"]):
        m = mirrored(_kp_rows(raw), np.frombuffer(bytes(shape), np.int32))[:KP_SEARCH]
        rows.extend((int(i), q, bytes(m[q, 8:])) for q in range(len(m)))
    query = spark.createDataFrame(rows, DESC_SCHEMA)
    cands = candidates_on_spark(spark, train_desc, query, n_desc, len(rows), int(opts["kp_candidates"]),
                                exclude_self=True, random_state=rs or 0, ivf_cache=ivf_cache)
    found = verified_on_spark(spark, cands, train_images, train_images, int(opts["min_inliers"]), True,
                              len(sample_idx) * int(opts["kp_candidates"]))
    best = {int(j): -1.0 for j in sample_idx}
    for j, score, share in zip(found["b"], found["score"], found["share"]):
        if opts["min_share"] <= share:
            best[int(j)] = max(best[int(j)], float(score))
    null = np.array(list(best.values()), dtype=np.float64)
    q = calibrated_threshold(null, ctx.config.fpr, default=opts["min_score"])
    return {"threshold": float(max(q, opts["min_score"])),
            "source": f"{len(sample_idx)} training images, mirrored, vs the training split", "null": null.tolist()}


# --------------------------------------------------------------------------- the any-scale path
class KeypointSearch:
    """The any-scale path's state over one audit: the images with keypoints, their search
    descriptors, per-split counts, the calibration and the IVF centroids per index split."""

    def __init__(self, spark, ctx, sigs, opts: dict):
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        from ..similarity.image_partial import KP_SEARCH

        self.spark, self.ctx, self.opts = spark, ctx, opts
        self.images = (sigs.where(F.col("sig_partial_kp").isNotNull())
                       .select("split", IDX, "key", "sig_partial_kp", "sig_thumb_kp", "sig_shape")
                       .persist(StorageLevel.MEMORY_AND_DISK))
        head = KP_SEARCH
        self.desc = (self.images.select("split", IDX, "sig_partial_kp")
                     .mapInPandas(lambda it: _descriptor_batches(it, head), "split string, " + DESC_SCHEMA)
                     .persist(StorageLevel.MEMORY_AND_DISK))
        per_image = (self.images.select("split", IDX, F.least(
            F.length("sig_partial_kp") / F.lit(8 + DESC), F.lit(head)).cast("long").alias("n")))
        self.per_image = per_image
        stats = per_image.groupBy("split").agg(F.count(F.lit(1)).alias("images"), F.sum("n").alias("desc")).toPandas()
        self.n_images = {str(s): int(n) for s, n in zip(stats["split"], stats["images"])}
        self.n_desc = {str(s): int(n or 0) for s, n in zip(stats["split"], stats["desc"])}
        self.ivf: dict = {}
        self.calib = None

    def _split(self, frame, name):
        from pyspark.sql import functions as F

        return frame.where(F.col("split") == name)

    def _counts(self, name):
        """pandas ``_lg_idx, n`` of the split's images by index (the IVF sample's positions)."""
        return self._split(self.per_image, name).select(IDX, "n").toPandas().sort_values(IDX, kind="stable")

    def _ivf(self, name) -> dict:
        """The IVF state of an index split: its centroids once trained, and how to count its
        descriptors per image (read only when the search is IVF)."""
        cache = self.ivf.setdefault(name, {})
        cache.setdefault("counts", lambda: self._counts(name))
        return cache

    def calibrate(self) -> dict:
        from .spark import _phase

        train = self.ctx.splits.train
        _phase(self.spark, "partial_duplicate (image, resized): calibration (mirrored sample, search, verification)")
        self.calib = calibrate_kp_on_spark(
            self.spark, self.ctx, self._split(self.images, train), self._split(self.desc, train).drop("split"),
            self.n_images.get(train, 0), self.n_desc.get(train, 0), self.opts, self._ivf(train))
        return self.calib

    def rows(self, a_name: str, b_name: str, seen: set) -> list:
        """The keypoint rows of the local loop for ``b_name`` against ``a_name`` (pairs in ``seen``
        left out), in the local order."""
        from pyspark.sql import functions as F

        from .spark import _phase

        opts = self.opts
        _phase(self.spark, f"partial_duplicate (image, resized): descriptor search and verification, "
                           f"{a_name!r} x {b_name!r}")
        cands = candidates_on_spark(
            self.spark, self._split(self.desc, a_name).drop("split"), self._split(self.desc, b_name).drop("split"),
            self.n_desc.get(a_name, 0), self.n_desc.get(b_name, 0), int(opts["kp_candidates"]), False,
            self.ctx.config.random_state or 0, self._ivf(a_name))
        if seen:
            import pandas as pd

            pairs = np.array(sorted(seen), dtype=np.int64).reshape(-1, 2)
            done = self.spark.createDataFrame(pd.DataFrame({"a": pairs[:, 0], "b": pairs[:, 1]}), "a long, b long")
            cands = cands.join(F.broadcast(done), ["a", "b"], "left_anti")
        found = verified_on_spark(self.spark, cands, self._split(self.images, a_name),
                                  self._split(self.images, b_name), int(opts["min_inliers"]), False,
                                  self.n_images.get(b_name, 0) * int(opts["kp_candidates"]))
        keep = ((found["score"] >= self.calib["threshold"]) & (found["share"] >= opts["min_share"])
                & (found["share"] <= opts["max_share"]))
        # the local order: evaluation image, most votes first, then training image
        found = found[keep].sort_values(["b", "n", "a"], ascending=[True, False, True], kind="stable")
        return [{"a": int(r.a), "b": int(r.b), "share": float(r.share), "scale": float(r.scale),
                 "rotation": float(r.rotation), "offset": (round(float(r.oy), 1), round(float(r.ox), 1)),
                 "method": "keypoints", "r": round(float(r.r), 4), "inliers": int(r.inliers)}
                for r in found.itertuples(index=False)]

    def close(self) -> None:
        self.desc.unpersist()
        self.images.unpersist()

