"""Image ``augmented_duplicate`` on the Spark engine: the image backend's own code around a banded search and a kNN join.

What runs where:

- **signatures** (``phash``, ``phash_windows``, ``thumb``, ``thumb_kp``, ``shape``, ``digest``): the
  signature registry in the executors (``mapInPandas``), as for every Spark check;
- **hash candidates**: the three Hamming searches of
  :func:`leakguard.similarity.image.candidate_pairs` (a's 8 dihedral hashes against b's hash, a's
  crop-window hashes against b's 8 hashes, b's window hashes against a's 8 hashes, radius
  ``opts["radius"]``) as one band join (:func:`leakguard.search.spark.band_join`: multi-index
  hashing as an equi-join, exact within the radius), the closest ``max_candidates`` per
  evaluation image and every match as close as the last of them;
- **kNN candidates**: the ``k`` nearest images of the earlier split under every nearest-neighbour
  source of ``candidate_pairs`` (16 px thumbnails under the 8 dihedral transforms, Fourier
  magnitudes under the 8, rotated discs), by the distributed exact kNN join
  (:func:`leakguard.search.spark_knn.knn_join`), ties with the ``k``-th kept;
- **ranking**: each evaluation image grouped with all its candidate images (light signatures), and
  the backend's own ``candidate_pairs`` run on the group: the group holds the image's ``k``
  nearest under every source and every hash match that can make the cap, so it keeps what the
  search on the whole split keeps;
- **verification**: the kept pairs grouped by evaluation image in the executors, where
  :class:`~leakguard.similarity.image.ImageSplitData` is built from the signature values of the
  images in the group and :func:`~leakguard.similarity.image.verify_candidates` runs on them
  (the same gate, keypoint and alignment code, the same ``stop_at`` rule per evaluation image);
- **threshold**: the image backend's :func:`~leakguard.similarity.image.calibrate`, called on the
  driver on the training images it can touch: the sampled ones (:func:`stable_sample`, computed
  per batch in the executors and again over the union on the driver), every training image
  within the Hamming radius of them (band join) and every training image among the ``k + 1``
  nearest of one of them under every kNN source (the kNN join). The calibration's own candidate
  search then finds the same candidates as on the whole split, so the threshold and the gate
  are the local engine's;
- **finding**: built on the driver from the verified pairs, as the image backend builds it.

Where it can still differ from the local engine (not seen in any test or benchmark): FAISS's
choice among identical training images tied at the ``k``-th place depends on its blocking, so a
group may keep another of several identical images; and float32 kNN cosines differ in the last
bits with the matrix shapes, so two candidates within that of each other may swap at the cap.
``tests/test_spark.py::test_image_augmented_copies_same_as_local`` compares the whole report.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

IDX = "_lg_idx"
SLOT = 64  # code rows per image in the band join: code id = sample index * SLOT + slot
KINDS = ("phash", "phash_windows", "thumb", "thumb_kp", "shape")
SAMPLE = "__leakguard_calibration_sample__"  # the split name the sampled training images take in the band join
_DTYPES = {"phash": np.uint64, "phash_windows": np.uint64, "thumb": np.uint8, "thumb_kp": np.uint8,
           "shape": np.int32}


# --------------------------------------------------------------------------- signature values
def decode_signature(kind: str, raw):
    """A ``sig_<kind>`` cell (raw array bytes, as the executors store them) as the registry's array."""
    if raw is None:
        return None
    arr = np.frombuffer(bytes(raw), dtype=_DTYPES[kind])
    if kind in ("thumb", "thumb_kp"):  # square grey thumbnails
        side = int(round(np.sqrt(arr.size)))
        arr = arr.reshape(side, side)
    return arr


class _SignatureRows:
    """What :class:`~leakguard.similarity.image.ImageSplitData` reads of an audit context, over the
    signature values of a few samples (all readable)."""

    def __init__(self, columns: dict):
        self.columns = columns
        self.signatures = self
        self.n = len(columns["digest"])

    def get(self, split, kind):
        return self.columns[kind]

    def valid(self, split) -> np.ndarray:
        return np.ones(self.n, dtype=bool)

    def lazy(self, split, kind):
        """``SignatureStore.lazy``'s interface over values already here (the executors computed them)."""
        return _Computed(self.columns[kind])


class _Computed:
    """Signature values indexable like ``SignatureStore.lazy(...)``: already computed, ``fetch`` is free."""

    def __init__(self, values):
        self.values = values

    def __getitem__(self, i):
        return self.values[int(i)]

    def __len__(self):
        return len(self.values)

    def fetch(self, indices) -> None:
        return None


def image_data(split: str, index, columns: dict):
    """:class:`~leakguard.similarity.image.ImageSplitData` of the samples ``index`` of ``split`` from
    their signature values (``columns``: kind -> list, ``digest`` included), positions in that order."""
    from ..similarity.image import ImageSplitData

    data = ImageSplitData(_SignatureRows(columns), split)
    data.index = np.asarray(index, dtype=np.int64)
    return data


def _columns(pdf, prefix: str = "sig_", key: str = "key", kinds=KINDS) -> dict:
    cols = {"digest": [bytes(k) for k in pdf[key]]}
    for kind in KINDS:  # kinds not asked for: None (ImageSplitData reads every kind)
        col = f"{prefix}{kind}"
        cols[kind] = ([decode_signature(kind, v) for v in pdf[col]] if kind in kinds and col in pdf
                      else [None] * len(pdf))
    return cols


# --------------------------------------------------------------------------- hash candidates (band joins)
def _code_row_batches(batches):
    """``mapInPandas`` body: one row per hash code of each image (8 dihedral, then the windows)."""
    import pandas as pd

    for pdf in batches:
        if not len(pdf):
            continue
        # slots 0-7: the 8 dihedral hashes; 8 on: the crop-window hashes
        codes = [np.concatenate([np.frombuffer(bytes(p), dtype=np.uint64)[:8], np.frombuffer(bytes(w), dtype=np.uint64)])
                 for p, w in zip(pdf["sig_phash"], pdf["sig_phash_windows"])]
        counts = np.array([len(c) for c in codes], dtype=np.int64)
        if counts.max(initial=0) > SLOT:
            raise ValueError(f"{counts.max() - 8} window codes per image: more than the band join's {SLOT - 8} slots")
        flat = np.concatenate(codes) if codes else np.zeros(0, np.uint64)
        owner = np.repeat(pdf[IDX].to_numpy(np.int64), counts)
        slot = np.concatenate([np.arange(c) for c in counts])
        raw = flat.astype(">u8").tobytes()
        yield pd.DataFrame({"split": np.repeat(pdf["split"].to_numpy(object), counts),
                            IDX: owner * SLOT + slot,
                            "code": [raw[k:k + 8] for k in range(0, len(raw), 8)]})


def _code_rows(frame):
    return frame.select("split", IDX, "sig_phash", "sig_phash_windows").mapInPandas(
        _code_row_batches, f"split string, {IDX} long, code binary")


def hamming_layout(radius: int, n_index: int, code_bits: int = 64):
    """The band layout of a 64-bit Hamming search on Spark: the band count that ships the fewest rows.

    Per probed code the join ships ``bands x probes`` rows and meets about
    ``bands x probes x n_index / 2**band_bits`` random index codes; the local multi-index hash
    (:func:`~leakguard.search.hamming.best_substrings`) counts probes as cheap lookups, while here
    each probe is a shuffled row. Any layout finds every pair within the radius.
    """
    from math import comb

    from .spark import BandLayout

    best = None
    for n_bands in range(max(2, -(-code_bits // 32)), min(radius + 1, code_bits) + 1):
        width = code_bits / n_bands
        probes = sum(comb(int(round(width)), r) for r in range(radius // n_bands + 1))
        rows = n_bands * probes
        cost = rows * (1.0 + max(n_index, 1) / 2.0 ** width)
        if best is None or cost < best[0]:
            best = (cost, n_bands)
    return BandLayout.hamming(code_bits, radius, n_bands=best[1])


def hash_candidates(a_side, b_side, radius: int, n_a: int, max_candidates: int, keep):
    """Candidate pairs ``split_a, index_a, split_b, index_b, dist`` by the image backend's three
    Hamming searches, as one band join; per ``(split_a, split_b, index_b)`` the ``max_candidates``
    closest and those tied with the last of them. ``keep(split_a, split_b)``: a Column selecting the
    split pairs wanted (both frames may hold several splits). ``n_a``: images on the a side (band count).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from .spark import band_join

    # one join for the three searches: both sides list all their codes (slots 0-7: the 8
    # dihedral hashes, 8+: the crop windows) and each joined pair keeps the combinations the
    # searches make -- b's hash (slot 0) against a's 8, a's windows against b's 8, b's windows
    # against a's 8 (b is a dihedral transform / a crop, possibly transformed, of a / a is a
    # crop of b) -- and the split pairs wanted. b (evaluation images, or the calibration
    # sample) lists the probes: Hamming distance is symmetric, which side probes sets the cost only
    def wanted(sa, ia, sb, ib):
        slot_a, slot_b = F.pmod(ia, F.lit(SLOT)), F.pmod(ib, F.lit(SLOT))
        searches = (((slot_a < 8) & (slot_b == 0)) | ((slot_a >= 8) & (slot_b < 8))
                    | ((slot_a < 8) & (slot_b >= 8)))
        return searches & keep(sa, sb)

    pairs = band_join(_code_rows(a_side), _code_rows(b_side),
                      hamming_layout(int(radius), 26 * int(n_a)), where=wanted)
    found = pairs.select("split_a", F.floor(F.col("index_a") / SLOT).cast("long").alias("index_a"),
                         "split_b", F.floor(F.col("index_b") / SLOT).cast("long").alias("index_b"),
                         F.col("score").alias("dist"))
    found = found.groupBy("split_a", "index_a", "split_b", "index_b").agg(F.min("dist").alias("dist"))
    # the max_candidates closest, and every match as close as the last of them (the local ranking
    # breaks equal distances by its own order, see _verify_group)
    rank = F.rank().over(Window.partitionBy("split_a", "split_b", "index_b").orderBy("dist"))
    return found.withColumn("_lg_rank", rank).where(F.col("_lg_rank") <= int(max_candidates)).drop("_lg_rank")


# --------------------------------------------------------------------------- verification in executors
def _rank_group(pdf, opts: dict):
    """``applyInPandas`` body: a group of evaluation images with every training image that is one of
    their candidates (hash match or nearest neighbour), light signatures only. The image backend's
    own :func:`candidate_pairs` ranks and caps the candidates on these images: the group holds each
    evaluation image's hash matches up to its ``max_candidates``-th closest and its ``k`` nearest
    training images under every kNN source, so the search on the group keeps what the search on the
    whole split keeps for it. Returns the kept pairs with their rank (``cand``), exact copies left out."""
    import pandas as pd

    from ..similarity.image import candidate_pairs

    none, ints = np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    empty = pd.DataFrame({"split_a": none, "index_a": ints, "split_b": none, "index_b": ints, "cand": ints})
    if not len(pdf):
        return empty

    def side(s):
        first = pdf.drop_duplicates(f"index_{s}").sort_values(f"index_{s}")
        return image_data(str(pdf[f"split_{s}"].iat[0]), first[f"index_{s}"].to_numpy(np.int64),
                          _columns(first, prefix=f"{s}_", key=f"{s}_key", kinds=KNN_KINDS))

    A, B = side("a"), side("b")
    ia, ib = candidate_pairs(A, B, opts["radius"], opts["k"], opts["max_candidates"])
    cand = np.arange(len(ib)) - np.searchsorted(ib, ib, side="left")  # rank among the image's candidates
    # exact copies (same content) are the exact check's: dropped before verification, as locally
    same = np.array([A.digest[i] == B.digest[j] for i, j in zip(ia, ib)], dtype=bool)
    ia, ib, cand = ia[~same], ib[~same], cand[~same]
    return pd.DataFrame({"split_a": np.full(len(ia), A.name, dtype=object), "index_a": A.index[ia],
                         "split_b": np.full(len(ia), B.name, dtype=object), "index_b": B.index[ib],
                         "cand": cand.astype(np.int64)})


def _verify_group(pdf, opts: dict, threshold: float):
    """``applyInPandas`` body: the ranked candidates of a group of evaluation images, verified by the
    image backend's :func:`verify_candidates` on data built from their signature values."""
    import pandas as pd

    from ..similarity.image import _encode_match, verify_candidates

    # typed empty columns: an untyped empty column is float64, which Arrow cannot turn into strings
    none, ints = np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    empty = pd.DataFrame({"split_a": none, "index_a": ints, "split_b": none, "index_b": ints, "cand": ints,
                          "score": np.zeros(0), "match": none})
    if not len(pdf):
        return empty
    pdf = pdf.sort_values(["index_b", "cand"], kind="stable").reset_index(drop=True)

    def side(s):
        first = pdf.drop_duplicates(f"index_{s}").sort_values(f"index_{s}")
        data = image_data(str(pdf[f"split_{s}"].iat[0]), first[f"index_{s}"].to_numpy(np.int64),
                          _columns(first, prefix=f"{s}_", key=f"{s}_key"))
        return data, np.searchsorted(data.index, pdf[f"index_{s}"].to_numpy(np.int64))

    (A, ia), (B, ib) = side("a"), side("b")
    matches = verify_candidates(A, B, ia, ib, opts, False, stop_at=threshold)
    scores = np.array([m.score for m in matches], dtype=np.float64)
    hit = np.flatnonzero(scores >= threshold)
    return pd.DataFrame({"split_a": pdf["split_a"].to_numpy(object)[hit],
                         "index_a": pdf["index_a"].to_numpy(np.int64)[hit],
                         "split_b": pdf["split_b"].to_numpy(object)[hit],
                         "index_b": pdf["index_b"].to_numpy(np.int64)[hit],
                         "cand": pdf["cand"].to_numpy(np.int64)[hit], "score": scores[hit],
                         "match": [_encode_match(matches[k]) for k in hit]})


def _grouped(spark, pairs, images, kinds, n_pairs: int, per_group: int):
    """``pairs`` with both images' signature columns (``kinds``), and a bucket of evaluation images."""
    from pyspark.sql import functions as F

    sig_cols = ["key", *[f"sig_{k}" for k in kinds]]

    def signed(s):
        return images.select(F.col("split").alias(f"split_{s}"), F.col(IDX).alias(f"index_{s}"),
                             *[F.col(c).alias(f"{s}_{c.removeprefix('sig_')}") for c in sig_cols])

    parts = int(spark.conf.get("spark.sql.shuffle.partitions", "8"))
    buckets = max(4 * parts, n_pairs // per_group + 1)
    return (pairs.join(signed("a"), ["split_a", "index_a"]).join(signed("b"), ["split_b", "index_b"])
            .withColumn("_lg_bucket", F.pmod(F.xxhash64("index_b"), F.lit(buckets))))


def verified_hits(spark, candidates, images, opts: dict, threshold: float, n_eval: int):
    """pandas ``split_a, index_a, split_b, index_b, cand, score, match``: the candidates scoring
    ``>= threshold``, ranked then verified in the executors, grouped by evaluation image. Two
    passes: the ranking reads the light signatures of every candidate (a few dozen per evaluation
    image), the verification the 128 px keypoint thumbnails of the ``max_candidates`` kept.
    ``n_eval``: evaluation images (sets the group count: a few thousand pairs a group, without a
    counting job per pass)."""
    # the candidates per evaluation image: up to max_candidates hash matches plus 21 kNN sources x k
    per_image = int(opts["max_candidates"]) + 21 * int(opts["k"])
    schema = "split_a string, index_a long, split_b string, index_b long, cand long"
    ranked = (_grouped(spark, candidates, images, KNN_KINDS, n_eval * per_image, 4000)
              .groupBy("split_a", "split_b", "_lg_bucket")
              .applyInPandas(lambda pdf: _rank_group(pdf, opts), schema))
    # groups of a few thousand pairs: one group is one pandas frame with both images' signatures
    schema = "split_a string, index_a long, split_b string, index_b long, cand long, score double, match binary"
    hits = (_grouped(spark, ranked, images, KINDS, n_eval * int(opts["max_candidates"]), 2000)
            .groupBy("split_a", "split_b", "_lg_bucket")
            .applyInPandas(lambda pdf: _verify_group(pdf, opts, threshold), schema).toPandas())
    return hits if len(hits) else None


# --------------------------------------------------------------------------- calibration
def _sample_batches(batches, size: int, random_state):
    """``mapInPandas`` body: the images :func:`stable_sample` would pick in each batch (a superset
    of the split's pick: it takes the lowest ranks of a content hash)."""
    import pandas as pd

    from ..similarity.image import stable_sample

    for pdf in batches:
        if not len(pdf):
            continue
        rows = stable_sample([bytes(k) for k in pdf["key"]], size, random_state)
        yield pd.DataFrame({IDX: pdf[IDX].to_numpy(np.int64)[rows], "key": pdf["key"].to_numpy(object)[rows]})


# --------------------------------------------------------------------------- kNN candidates (knn_join)
KNN_KINDS = ("phash", "phash_windows", "thumb", "shape")  # what the kNN vectors are computed from


def _index_vectors(pdf) -> dict:
    """The index side of :func:`~leakguard.similarity.image.candidate_pairs`' nearest-neighbour
    searches (image ``a`` as it is): 16 px thumbnails, Fourier magnitudes, the unrotated disc, and
    each crop window's rendering as its own source (``win<j>``: one vector per image and window)."""
    from ..similarity.image import window_descriptors

    a = image_data("a", pdf[IDX].to_numpy(np.int64), _columns(pdf, kinds=KNN_KINDS))
    out = {"z16": a.z16, "spectra": a.spectra(0), "disc": a.discs()[:, 0]}
    win = window_descriptors(a)
    for j in range(win.shape[1]):
        out[f"win{j}"] = np.ascontiguousarray(win[:, j])
    return out


def _n_windows() -> int:
    """How many crop windows :func:`~leakguard.similarity.image.window_descriptors` renders per image."""
    from ..similarity.image import THUMB, _window_operators

    return len(_window_operators(THUMB // 2)[0])


def _query_searches(b) -> list:
    """The query side of the same searches, in ``candidate_pairs``' order: ``b``'s thumbnail under
    the 8 dihedral transforms, its Fourier magnitudes under the 8, its disc turned by each angle."""
    from ..similarity.image_align import _dihedral_perms

    perms = _dihedral_perms(16)
    disc_b = b.discs()
    # the crop-window search: b's thumbnail as it is against each window source. Each source's k
    # nearest hold the first window (of another image) over all windows, so the group's own
    # candidate_pairs finds the owner the whole split's search finds (k >= 2 for the calibration,
    # whose sampled image's own window can come first)
    return ([("z16", b.z16[:, perms[d]]) for d in range(8)] + [("spectra", b.spectra(d)) for d in range(8)]
            + [("disc", disc_b[:, h]) for h in range(disc_b.shape[1])]
            + [(f"win{j}", b.z16) for j in range(_n_windows())])


def knn_neighbours(spark, a_frame, b, k: int, query_ids=None):
    """Spark DataFrame ``q, index``: for every image of ``b`` (an ImageSplitData on the driver) and
    every nearest-neighbour search of ``candidate_pairs``, its ``k`` nearest images of ``a_frame``
    (ties with the ``k``-th kept), by :func:`leakguard.search.spark_knn.knn_join`."""
    from .spark_knn import knn_join

    frame = a_frame.select(IDX, *[f"sig_{kind}" for kind in KNN_KINDS], "key")
    return knn_join(spark, frame, _index_vectors, _query_searches(b), k, "cosine",
                    query_ids=query_ids).select("q", "index").distinct()


def _collect_images(spark, train_images, indices, kinds=KINDS) -> dict:
    """Signature columns (``kinds``) of the images ``indices`` (None: all) of a frame, by index, on the driver."""
    from pyspark.sql import functions as F

    frame = train_images.select(IDX, "key", *[f"sig_{kind}" for kind in kinds])
    if indices is not None:  # None: all of them
        ids = spark.createDataFrame([(int(i),) for i in indices], f"{IDX} long")
        frame = frame.join(F.broadcast(ids), IDX, "left_semi")
    pdf = frame.toPandas().sort_values(IDX, kind="stable")
    return {"index": pdf[IDX].to_numpy(np.int64), "columns": _columns(pdf, kinds=kinds)}


def calibrate_on_spark(spark, ctx, train_images, opts: dict, n_train: int, progress: bool = False) -> dict:
    """The image backend's :func:`~leakguard.similarity.image.calibrate` on the training images its
    candidate search can reach from the sampled ones (see the module docstring): same threshold,
    null and gate as on the whole training split."""
    from pyspark.sql import functions as F

    from ..similarity.image import calibrate, stable_sample

    size = min(n_train, int(opts["null_samples"]))
    rs = ctx.config.random_state
    if 3 <= size < n_train:
        picked = train_images.select(IDX, "key").mapInPandas(lambda it: _sample_batches(it, size, rs),
                                                              f"{IDX} long, key binary").toPandas()
        picked = picked.sort_values(IDX, kind="stable")
        rows = stable_sample([bytes(k) for k in picked["key"]], size, rs)
        sample_idx = picked[IDX].to_numpy(np.int64)[rows]
        sample = _collect_images(spark, train_images, sample_idx)
        # training images within the Hamming radius of a sampled one, by the three hash searches
        ids = spark.createDataFrame([(int(i),) for i in sample_idx], f"{IDX} long")
        as_sample = (train_images.join(F.broadcast(ids), IDX, "left_semi")
                     .withColumn("split", F.lit(SAMPLE)))
        hashed = hash_candidates(train_images, as_sample, opts["radius"], n_train, 1 << 30,
                                 lambda sa, sb: sb == F.lit(SAMPLE)).select("index_a").toPandas()
        # the nearest training images of each sampled one, per kNN source (distributed exact kNN);
        # calibrate()'s search asks each source for k + 1 (the sampled image finds itself first)
        kk = min(int(opts["k"]), n_train) + 1
        near = knn_neighbours(spark, train_images, image_data(SAMPLE, sample["index"], sample["columns"]),
                              kk).toPandas()
        near_idx = near["index"].to_numpy(np.int64)
        reach = np.unique(np.concatenate([sample_idx, hashed["index_a"].to_numpy(np.int64), near_idx]))
        train = _collect_images(spark, train_images, reach)
    else:  # the sample is the whole training split (or too small to calibrate): all of it
        train = _collect_images(spark, train_images, train_images.select(IDX).toPandas()[IDX].to_numpy(np.int64))
    data = image_data(ctx.train, train["index"], train["columns"])
    # the calibration reads the config and the (absent) cache of verifications, nothing else of ctx
    shell = SimpleNamespace(config=ctx.config, signatures=SimpleNamespace(cache=None), shared={})
    return calibrate(shell, data, opts, progress)


# --------------------------------------------------------------------------- the check
def _knn_candidates(spark, images, order: list, counts: dict, opts: dict):
    """Spark DataFrame ``split_a, index_a, split_b, index_b``: for every evaluation image ``b`` and
    earlier split ``a`` (the local loop's split pairs), its ``k`` nearest images of ``a`` under each
    nearest-neighbour search of ``candidate_pairs`` (ties with the ``k``-th kept). The evaluation
    images' query vectors are computed on the driver from their signatures (no 128 px thumbnails)."""
    from pyspark.sql import functions as F

    out = None
    for a_pos, a_name in enumerate(order[:-1]):
        n_a = int(counts.get(a_name, 0))
        if not n_a:
            continue
        later = [x for x in order[a_pos + 1:] if counts.get(x, 0)]
        if not later:
            continue
        k = min(int(opts["k"]), n_a)
        for b_name in later:  # one kNN join per split pair: the query vectors of one split at a time
            b_frame = images.where(F.col("split") == b_name)
            got = _collect_images(spark, b_frame, None, KNN_KINDS)
            b = image_data(b_name, got["index"], got["columns"])
            pairs = knn_neighbours(spark, images.where(F.col("split") == a_name), b, k, query_ids=b.index)
            pairs = pairs.select(F.lit(a_name).alias("split_a"), F.col("index").alias("index_a"),
                                 F.lit(b_name).alias("split_b"), F.col("q").alias("index_b"))
            out = pairs if out is None else out.unionByName(pairs)
    return out if out is not None else spark.createDataFrame(
        [], "split_a string, index_a long, split_b string, index_b long")


def image_augmented_on_spark(spark, ctx, check_name: str, sigs) -> list:
    """Image ``augmented_duplicate`` with its search and verification on Spark (module docstring)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..report import make_pairs
    from ..similarity.image import _decode_match, _exact_pairs, _options, _progress, augmented_image_finding
    from .spark import _phase

    opts = _options(ctx, check_name)
    splits = ctx.splits
    order = [splits.train] + splits.eval_names
    images = (sigs.where(F.col("sig_phash").isNotNull())
              .select("split", IDX, "key", *[f"sig_{k}" for k in KINDS]).persist(StorageLevel.MEMORY_AND_DISK))
    try:
        counts = dict(images.groupBy("split").count().toPandas().itertuples(index=False, name=None))
        n_train = int(counts.get(splits.train, 0))
        fixed = opts.get("threshold") or ctx.config.thresholds.get(check_name)
        calib = ctx.shared.get("image_calibration")
        if fixed is None and calib is None:
            _phase(spark, "augmented_duplicate (image): calibration sample, reach and verification")
            calib = calibrate_on_spark(spark, ctx, images.where(F.col("split") == splits.train), opts, n_train,
                                       _progress(ctx))
            ctx.shared["image_calibration"] = calib
        threshold = float(fixed) if fixed is not None else calib["threshold"]
        opts["gate"] = calib.get("gate") if calib is not None and fixed is None else None
        _phase(spark, "augmented_duplicate (image): candidates (hash band join, kNN join), ranking, verification")
        pos = {name: k for k, name in enumerate(order)}
        a_side = images.where(F.col("split").isin(order[:-1]))
        b_side = images.where(F.col("split").isin(order[1:]))

        def keep(sa, sb):  # split pairs in the local loop's order: train x every eval, then eval x later eval
            cond = None
            for x in order:
                for y in order[pos[x] + 1:]:
                    c = (sa == F.lit(x)) & (sb == F.lit(y))
                    cond = c if cond is None else cond | c
            return cond

        n_a = sum(int(counts.get(x, 0)) for x in order[:-1])
        cands = hash_candidates(a_side, b_side, opts["radius"], n_a, opts["max_candidates"], keep).select(
            "split_a", "index_a", "split_b", "index_b")
        cands = cands.unionByName(_knn_candidates(spark, images, order, counts, opts)).distinct()
        hits = verified_hits(spark, cands, images, opts, threshold, sum(int(counts.get(x, 0)) for x in order[1:]))
    finally:
        images.unpersist()
    exact = _exact_pairs(ctx)
    findings = []
    for a_pos, a_name in enumerate(order):
        for b_name in order[a_pos + 1:]:
            mine = hits[(hits["split_a"] == a_name) & (hits["split_b"] == b_name)] if hits is not None else None
            if mine is None or not len(mine):
                continue
            # one pair per evaluation image, as locally: the best score, the earlier candidate on ties
            mine = mine.sort_values(["index_b", "score", "cand"], ascending=[True, False, True], kind="stable")
            mine = mine.drop_duplicates("index_b")
            mine = mine[[(a_name, int(i), b_name, int(j)) not in exact
                         for i, j in zip(mine["index_a"], mine["index_b"])]]
            if not len(mine):
                continue
            idx_a, idx_b = mine["index_a"].to_numpy(np.int64), mine["index_b"].to_numpy(np.int64)
            scores = mine["score"].to_numpy(np.float64)
            pairs = make_pairs(a_name, idx_a, b_name, idx_b, check_name, scores)
            ctx.links.append(pairs)
            transforms = [_decode_match(bytes(m)).describe() for m in mine["match"]]
            findings.append(augmented_image_finding(ctx, check_name, a_name, b_name, pairs, transforms,
                                                    threshold, calib if fixed is None else None))
    return findings
