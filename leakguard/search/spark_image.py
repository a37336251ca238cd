"""Image ``augmented_duplicate`` on the Spark engine: the image backend's own code around a banded search.

What runs where:

- **signatures** (``phash``, ``phash_windows``, ``thumb``, ``thumb_kp``, ``shape``, ``digest``): the
  signature registry in the executors (``mapInPandas``), as for every Spark check;
- **hash candidates**: the three Hamming searches of
  :func:`leakguard.similarity.image.candidate_pairs` (a's 8 dihedral hashes against b's hash, a's
  crop-window hashes against b's 8 hashes, b's window hashes against a's 8 hashes, radius
  ``opts["radius"]``) as band joins (:func:`leakguard.search.spark.band_join`: multi-index
  hashing as an equi-join, exact within the radius), the closest ``max_candidates`` per
  evaluation image (Hamming distance, then training index);
- **verification**: candidate pairs grouped by evaluation image in the executors, where
  :class:`~leakguard.similarity.image.ImageSplitData` is built from the signature values of the
  images in the group and :func:`~leakguard.similarity.image.verify_candidates` runs on them
  (the same gate, keypoint and alignment code, the same ``stop_at`` rule per evaluation image);
- **threshold**: the image backend's :func:`~leakguard.similarity.image.calibrate`, called on the
  driver on the training images it can touch: the sampled ones (:func:`stable_sample`, computed
  per batch in the executors and again over the union on the driver), every training image
  within the Hamming radius of them (band join) and every training image among the ``k``
  nearest of one of them under the nearest-thumbnail, Fourier-magnitude and rotated-disc
  searches (exact kNN per batch in the executors, the best ``k`` kept on the driver). The
  calibration's own candidate search then finds the same candidates as on the whole split, so
  the threshold and the gate are the local engine's;
- **finding**: built on the driver from the verified pairs, as the image backend builds it.

What differs from the local engine: the local candidate search also takes, for every
evaluation image, its nearest training images under the 16 px thumbnail (8 dihedral
transforms), Fourier magnitudes (8) and rotated central discs (``DISC_ANGLES``), ``k`` each;
no band key reproduces those, and an exact kNN of every evaluation image over every training
image is quadratic. On Spark the audit's candidates are the hash matches only, so copies only
the kNN sources put among the candidates (mostly rotations by a few degrees, heavy crops and
strong photometric changes that move the hashes past the radius) are not found; and the local
engine keeps at most ``max_candidates`` per evaluation image over all sources (each source's
best first), Spark the ``max_candidates`` closest hash matches. Where the candidates that verify
agree, the findings and the report are the same (``tests/test_spark_image.py``).
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
    Hamming searches, as one band join; at most ``max_candidates`` per ``(split_a, split_b, index_b)``
    (closest first, then lowest ``index_a``). ``keep(split_a, split_b)``: a Column selecting the
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
    rank = F.row_number().over(Window.partitionBy("split_a", "split_b", "index_b").orderBy("dist", "index_a"))
    return found.withColumn("cand", rank - 1).where(F.col("cand") < int(max_candidates))


# --------------------------------------------------------------------------- verification in executors
def _verify_group(pdf, opts: dict, threshold: float):
    """``applyInPandas`` body: the candidates of a group of evaluation images, verified by the
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
    # exact copies (same content) are the exact check's: dropped before verification, as locally
    same = np.array([bytes(x) == bytes(y) for x, y in zip(pdf["a_key"], pdf["b_key"])], dtype=bool)
    pdf = pdf[~same].reset_index(drop=True)
    if not len(pdf):
        return empty

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


def verified_hits(spark, candidates, images, opts: dict, threshold: float):
    """pandas ``split_a, index_a, split_b, index_b, cand, score, match``: the candidates scoring
    ``>= threshold``, verified in the executors, grouped by evaluation image."""
    from pyspark.sql import functions as F

    sig_cols = ["key", *[f"sig_{k}" for k in KINDS]]

    def signed(s):
        return images.select(F.col("split").alias(f"split_{s}"), F.col(IDX).alias(f"index_{s}"),
                             *[F.col(c).alias(f"{s}_{c.removeprefix('sig_')}") for c in sig_cols])

    candidates = candidates.persist()
    try:
        n = candidates.count()
        if not n:
            return None
        # groups of a few thousand pairs: one group is one pandas frame with both images' signatures
        parts = int(spark.conf.get("spark.sql.shuffle.partitions", "8"))
        buckets = max(4 * parts, n // 2000 + 1)
        joined = (candidates.join(signed("a"), ["split_a", "index_a"]).join(signed("b"), ["split_b", "index_b"])
                  .withColumn("_lg_bucket", F.pmod(F.xxhash64("index_b"), F.lit(buckets))))
        schema = "split_a string, index_a long, split_b string, index_b long, cand long, score double, match binary"
        return (joined.groupBy("split_a", "split_b", "_lg_bucket")
                .applyInPandas(lambda pdf: _verify_group(pdf, opts, threshold), schema).toPandas())
    finally:
        candidates.unpersist()


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


def _knn_batches(batches, sample: dict, kk: int):
    """``mapInPandas`` body: per sampled image and kNN source of ``candidate_pairs`` (nearest
    16 px thumbnails under the 8 dihedral transforms, Fourier magnitudes under 8, rotated discs),
    its ``kk`` nearest training images of the batch (a superset of the split's nearest)."""
    import pandas as pd

    from ..search.knn import nearest
    from ..similarity.image_align import _dihedral_perms

    b = image_data(SAMPLE, sample["index"], sample["columns"])
    perms = _dihedral_perms(16)
    for pdf in batches:
        if not len(pdf):
            continue
        a = image_data("train", pdf[IDX].to_numpy(np.int64), _columns(pdf, kinds=("phash", "phash_windows",
                                                                                  "thumb", "shape")))
        k = min(kk, len(a))
        searches = [(a.z16, b.z16[:, perms[d]]) for d in range(8)] + \
                   [(a.spectra(0), b.spectra(d)) for d in range(8)]
        disc_a, disc_b = a.discs(), b.discs()
        searches += [(disc_a[:, 0], disc_b[:, h]) for h in range(disc_b.shape[1])]
        out = []
        for s, (x, y) in enumerate(searches):
            sims, idx = nearest(x, y, k=k, metric="cosine")
            q = np.repeat(np.arange(len(b)), idx.shape[1])
            ok = idx.ravel() >= 0
            out.append(pd.DataFrame({"q": q[ok], "search": s, "sim": sims.ravel()[ok].astype(np.float64),
                                     IDX: a.index[idx.ravel()[ok]]}))
        yield pd.concat(out, ignore_index=True)


def _collect_images(spark, train_images, indices) -> dict:
    """Signature columns of the training images ``indices`` (sorted), on the driver."""
    from pyspark.sql import functions as F

    ids = spark.createDataFrame([(int(i),) for i in indices], f"{IDX} long")
    pdf = train_images.join(F.broadcast(ids), IDX, "left_semi").toPandas().sort_values(IDX, kind="stable")
    return {"index": pdf[IDX].to_numpy(np.int64), "columns": _columns(pdf)}


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
        # the nearest training images of each sampled one, per kNN source: the best kk over all batches
        kk = min(int(opts["k"]), n_train)
        near = train_images.mapInPandas(lambda it: _knn_batches(it, sample, kk),
                                        f"q long, search long, sim double, {IDX} long").toPandas()
        kth = near.groupby(["q", "search"])["sim"].transform(lambda s: np.sort(s.to_numpy())[::-1][min(kk, len(s)) - 1])
        near_idx = near.loc[near["sim"] >= kth, IDX].to_numpy(np.int64)
        reach = np.unique(np.concatenate([sample_idx, hashed["index_a"].to_numpy(np.int64), near_idx]))
        train = _collect_images(spark, train_images, reach)
    else:  # the sample is the whole training split (or too small to calibrate): all of it
        train = _collect_images(spark, train_images, train_images.select(IDX).toPandas()[IDX].to_numpy(np.int64))
    data = image_data(ctx.train, train["index"], train["columns"])
    # the calibration reads the config and the (absent) cache of verifications, nothing else of ctx
    shell = SimpleNamespace(config=ctx.config, signatures=SimpleNamespace(cache=None), shared={})
    return calibrate(shell, data, opts, progress)


# --------------------------------------------------------------------------- the check
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
        _phase(spark, "augmented_duplicate (image): hash band joins, verification in executors")
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
        cands = hash_candidates(a_side, b_side, opts["radius"], n_a, opts["max_candidates"], keep)
        hits = verified_hits(spark, cands, images, opts, threshold)
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
