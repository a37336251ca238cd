"""A user's embedder (``AuditConfig(embedder=callable)``) on the Spark engine: images, audio, tables.

The local image ``semantic_duplicate`` calls the user's embedder on the canonical images of each
split (:func:`leakguard.embedders.embed_split`) and then searches those vectors. On Spark the same
callable runs in the executors and the search is the default embedder's
(:func:`leakguard.search.spark_semantic.image_semantic_on_spark`) on its vectors; audio the same way
(canonical ``(wave, rate)``, then :func:`leakguard.search.spark_audio.audio_semantic_on_spark` on the
recordings the default statistics keep, unstandardised as locally); tables: see
:func:`tabular_user_semantic_on_spark`:

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


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


@register_signature("image", "npy")
def image_npy(image: np.ndarray) -> np.ndarray:
    """The canonical image itself as an ``.npy`` blob (shape and dtype kept): what the Spark engine
    gives a user's embedder in the executors. No local check asks for it."""
    return np.frombuffer(_npy(image), dtype=np.uint8)


@register_signature("audio", "npy")
def audio_npy(item) -> np.ndarray:
    """The canonical recording ``(wave, rate)``: the rate (8 bytes, little-endian) then the wave as
    an ``.npy`` blob; what the Spark engine gives a user's embedder. No local check asks for it."""
    wave, rate = item
    return np.frombuffer(np.int64(rate).astype("<i8").tobytes() + _npy(wave), dtype=np.uint8)


def _from_npy(modality: str, raw):
    raw = bytes(raw)
    if modality == "audio":
        return np.load(io.BytesIO(raw[8:]), allow_pickle=False), int(np.frombuffer(raw[:8], "<i8")[0])
    return np.load(io.BytesIO(raw), allow_pickle=False)


def check_item_vectors(modality: str, vecs, n: int, split: str) -> np.ndarray:
    """The local engine's shape rule and message (:func:`~leakguard.embedders.embed_split` for
    images, ``similarity.audio._audio_embeddings`` for recordings)."""
    from ..errors import InputError

    vecs = np.asarray(vecs, dtype=np.float32)
    if vecs.ndim != 2 or len(vecs) != n:
        if modality == "audio":
            raise InputError(f"the audio embedder returned shape {vecs.shape} for {n} recordings "
                             f"of split {split!r}; expected (n, d)")
        raise InputError(f"the embedder returned shape {vecs.shape} for {n} images of split {split!r}; "
                         "it must return one row per image")
    return vecs


def _item_batches(pdfs, split: str, modality: str, kind: str, user: bytes, column: str):
    """``mapInPandas`` body: each readable item's vector from the user's embedder (float32 bytes)."""
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
        items = [_from_npy(modality, b) for b in sigs["sig_npy"]]
        vecs = check_item_vectors(modality, embedder(items), len(sigs), split)
        yield pd.DataFrame({"split": sigs["split"].to_numpy(object), IDX: sigs[IDX].to_numpy(np.int64),
                            "key": sigs["key"].to_numpy(object),
                            column: [np.ascontiguousarray(v).tobytes() for v in vecs]})


def user_item_vectors(spark, ctx, prepared: dict, column: str = VEC):
    """``(split, _lg_idx, key, <column>)`` of every readable image or recording, the vectors from
    the user's embedder (``ctx.config.embedder``) computed in the executors (module docstring)."""
    from pyspark import cloudpickle

    from .spark import item_signature_batches

    train = prepared[ctx.train]
    modality = train.modality
    if modality == "audio":
        from ..similarity.audio import audio_embedder

        embedder = audio_embedder(ctx.config.embedder)
    else:
        from ..embedders import get_embedder

        embedder = get_embedder(ctx.config.embedder)
    user = cloudpickle.dumps(embedder)
    # the shape probe on the driver: the first two readable training items, by the same reader
    probe = train.frame.orderBy(IDX).limit(8).toPandas()
    got = list(item_signature_batches([probe], train.name, modality, train.kind, ["digest", "npy"]))
    items = [_from_npy(modality, b) for p in got for b, e in zip(p["sig_npy"], p["error"]) if e is None][:2]
    if items:
        check_item_vectors(modality, embedder(items), len(items), train.name)
    out = None
    for name, sp in prepared.items():
        kind = sp.kind
        part = sp.frame.mapInPandas(lambda it, n=name, k=kind: _item_batches(it, n, modality, k, user, column),
                                    f"split string, {IDX} long, key binary, {column} binary")
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
