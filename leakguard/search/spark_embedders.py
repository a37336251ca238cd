"""A user's embedder (``AuditConfig(embedder=callable)``) on the Spark engine, for images and tables.

The local image ``semantic_duplicate`` calls the user's embedder on the canonical images of each
split (:func:`leakguard.embedders.embed_split`) and then searches those vectors. On Spark the same
callable runs in the executors and the search is the default embedder's
(:func:`leakguard.search.spark_semantic.image_semantic_on_spark`) on its vectors:

- **shipping the embedder** (as the text check does, :mod:`leakguard.search.spark_text_semantic`):
  the callable is cloudpickled on the driver and travels with the tasks (a function or class
  defined in a module the executors cannot import is shipped by value). It is probed on the driver
  on the first two training images, so a wrong output shape is the local ``InputError`` raised on
  the driver, not a task failure. The local image check never fits the embedder, so neither does
  this one (a fitted model is given already fitted);
- **reading the images**: each split's rows go through the engine's own signature pass
  (:func:`leakguard.search.spark.item_signature_batches`: the same readers and canonical form),
  asked for the ``digest`` and the ``npy`` signature registered here (the canonical pixels, an
  ``.npy`` blob) so the images reach the embedder as the local engine gives them; unreadable images
  are left out, as ``ctx.valid`` leaves them out locally. The images are read a second time for
  this (the first pass computes the other checks' signatures);
- **embedding**: one call of the embedder per Arrow batch of readable images, in the executors.

The report equals the local one when the embedder gives an image the vector it gives it in the local
engine's calls (batches of 256 in index order), i.e. when an image's vector does not depend on the
other images of its batch (true of per-image functions and of models in eval mode, up to float
rounding).
"""
from __future__ import annotations

import io

import numpy as np

from ..signatures import register_signature

IDX = "_lg_idx"
VEC = "sig_embed_pyramid"  # the column the image semantic search reads


@register_signature("image", "npy")
def image_npy(image: np.ndarray) -> np.ndarray:
    """The canonical image itself as an ``.npy`` blob (shape and dtype kept): what the Spark engine
    gives a user's embedder in the executors. No local check asks for it."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(image), allow_pickle=False)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def _from_npy(raw) -> np.ndarray:
    return np.load(io.BytesIO(bytes(raw)), allow_pickle=False)


def check_image_vectors(vecs, n: int, split: str) -> np.ndarray:
    """The local :func:`~leakguard.embedders.embed_split`'s shape rule and message."""
    from ..errors import InputError

    vecs = np.asarray(vecs, dtype=np.float32)
    if vecs.ndim != 2 or len(vecs) != n:
        raise InputError(f"the embedder returned shape {vecs.shape} for {n} images of split {split!r}; "
                         "it must return one row per image")
    return vecs


def _image_batches(pdfs, split: str, modality: str, kind: str, user: bytes):
    """``mapInPandas`` body: each readable image's vector from the user's embedder (float32 bytes)."""
    import pickle

    import pandas as pd

    from .spark import item_signature_batches

    embedder = None
    for sigs in item_signature_batches(pdfs, split, modality, kind, ["digest", "npy"]):
        sigs = sigs[sigs["error"].isna()]
        if not len(sigs):
            continue
        if embedder is None:  # cloudpickle's bytes: plain pickle reads them
            embedder = pickle.loads(user)
        vecs = check_image_vectors(embedder([_from_npy(b) for b in sigs["sig_npy"]]), len(sigs), split)
        yield pd.DataFrame({"split": sigs["split"].to_numpy(object), IDX: sigs[IDX].to_numpy(np.int64),
                            "key": sigs["key"].to_numpy(object),
                            VEC: [np.ascontiguousarray(v).tobytes() for v in vecs]})


def user_image_vectors(spark, ctx, prepared: dict):
    """``(split, _lg_idx, key, sig_embed_pyramid)`` of every readable image, the vectors from the
    user's embedder (``ctx.config.embedder``) computed in the executors (module docstring)."""
    from pyspark import cloudpickle

    from ..embedders import get_embedder
    from .spark import item_signature_batches

    embedder = get_embedder(ctx.config.embedder)
    user = cloudpickle.dumps(embedder)
    train = prepared[ctx.train]
    # the shape probe on the driver: the first two readable training images, by the same reader
    probe = train.frame.orderBy(IDX).limit(8).toPandas()
    got = [p for p in item_signature_batches([probe], train.name, train.modality, train.kind, ["digest", "npy"])]
    images = [_from_npy(b) for p in got for b, e in zip(p["sig_npy"], p["error"]) if e is None][:2]
    if images:
        check_image_vectors(embedder(images), len(images), train.name)
    out = None
    for name, sp in prepared.items():
        modality, kind = sp.modality, sp.kind
        part = sp.frame.mapInPandas(lambda it, n=name, m=modality, k=kind: _image_batches(it, n, m, k, user),
                                    f"split string, {IDX} long, key binary, {VEC} binary")
        out = part if out is None else out.unionByName(part)
    return out


# --------------------------------------------------------------------------- tables
def _table_batches(pdfs, split: str, features: list[str], user: bytes):
    """``mapInPandas`` body: each row's vector from the user's embedder (given the batch's rows as a
    DataFrame of the training split's columns, in its order) and the row's exact-copy key."""
    import pickle

    import pandas as pd

    from ..signatures.exact import frame_row_hashes
    from ..similarity.tabular import embedded_rows_checked

    embedder = None
    for pdf in pdfs:
        if not len(pdf):
            continue
        if embedder is None:
            embedder = pickle.loads(user)
        frame = pdf[features].reset_index(drop=True)
        vecs = embedded_rows_checked(embedder(frame), len(frame), split)
        raw = frame_row_hashes(frame, sorted(features)).astype(">u8").tobytes()  # the exact check's row hash
        yield pd.DataFrame({IDX: pdf[IDX].to_numpy(np.int64), "key": [raw[k:k + 8] for k in range(0, len(raw), 8)],
                            VEC: [np.ascontiguousarray(v).tobytes() for v in vecs]})


def tabular_user_semantic_on_spark(spark, ctx, check_name: str, prepared: dict) -> list:
    """Tabular ``semantic_duplicate`` with a user's embedder (``embedder(DataFrame) -> (n, d)``): the
    callable shipped with the tasks and called on each Arrow batch of rows in the executors (probed
    on two training rows on the driver: the local shape error there); the local rule after it: the
    cosine null of the training rows by :func:`~leakguard.search.spark_semantic.null_on_spark`
    (row hashes as exact keys), :func:`~leakguard.similarity.tabular.embedded_threshold`, each
    evaluation row's nearest training row by the kNN join (ties to the lower index, as locally) and
    :func:`~leakguard.similarity.tabular.embedded_finding`. Equal to the local report when a row's
    vector does not depend on the other rows of its batch (the local engine calls the embedder once
    per split)."""
    from pyspark import StorageLevel, cloudpickle
    from pyspark.sql import functions as F

    from ..similarity.tabular import embedded_finding, embedded_rows_checked, embedded_threshold
    from .spark import _phase
    from .spark_knn import knn_join
    from .spark_semantic import _collect, _vectors, null_on_spark

    embedder = ctx.config.embedder
    train = prepared[ctx.train]
    features = [str(c) for c in train.features]
    user = cloudpickle.dumps(embedder)
    probe = train.frame.orderBy(IDX).limit(2).select(*[F.col(f"`{c}`") for c in features]).toPandas()
    embedded_rows_checked(embedder(probe), len(probe), train.name)
    _phase(spark, "semantic_duplicate (tabular): the user's embedder in the executors")
    vectors = {}
    for name, sp in prepared.items():
        cols = [IDX, *[F.col(f"`{c}`") for c in features]]
        vectors[name] = sp.frame.select(*cols).mapInPandas(
            lambda it, n=name: _table_batches(it, n, features, user), f"{IDX} long, key binary, {VEC} binary"
        ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        fixed = ctx.config.thresholds.get(check_name)
        if fixed is not None:
            threshold = float(fixed)
        else:
            _phase(spark, "semantic_duplicate (tabular): null of nearest training rows (kNN join)")
            threshold = embedded_threshold(ctx, null_on_spark(spark, vectors[ctx.train], train.n, 1, 5000,
                                                              ctx.config.random_state, column=VEC))
        findings = []
        for name in ctx.splits.eval_names:
            if not prepared[name].n or train.n < 1:
                continue
            _phase(spark, f"semantic_duplicate (tabular): nearest training row of each {name!r} row")
            e_idx, _, e_mat = _collect(spark, vectors[name], column=VEC)
            near = knn_join(spark, vectors[ctx.train].select(IDX, VEC), lambda p: {"e": _vectors(p[VEC])},
                            [("e", e_mat)], 1, "cosine", query_ids=e_idx).toPandas()
            near = near.sort_values(["q", "score", "index"], ascending=[True, False, True], kind="stable")
            near = near.drop_duplicates("q")
            sims, idx = np.full(prepared[name].n, -np.inf), np.full(prepared[name].n, -1, np.int64)
            sims[near["q"].to_numpy(np.int64)] = near["score"].to_numpy(np.float64)
            idx[near["q"].to_numpy(np.int64)] = near["index"].to_numpy(np.int64)
            f = embedded_finding(ctx, check_name, name, sims, idx, threshold)
            if f is not None:
                findings.append(f)
        return findings
    finally:
        for frame in vectors.values():
            frame.unpersist()
