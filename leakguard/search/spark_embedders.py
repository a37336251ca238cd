"""A user's embedder (``AuditConfig(embedder=callable)``) on the Spark engine, for images.

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
