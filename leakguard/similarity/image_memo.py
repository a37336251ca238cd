"""What the image ``augmented_duplicate`` check worked out, kept between audits (``AuditConfig(cache_dir=...)``).

Two things are kept in the signature cache, both under the *training split's content* (the digests
of its readable images, in order), the check's options and a fingerprint of the code that computes
them (the source of the modules below and the versions of numpy / FAISS / OpenCV: an edit of the
check, or another library, invalidates what was kept without anyone bumping a version):

- the calibration (threshold, null scores, cheap-evidence gate): a re-audit whose training split
  is unchanged -- the same data again, or new evaluation data -- does not calibrate again;
- per evaluation image (its content digest): its candidate pairs and their verified matches, also
  keyed by the threshold and gate. Everything the audit pass does for one evaluation image --
  candidate search over the training split, same-framing scores, the gate, ``align_top``,
  ``stop_at`` -- depends on that image and the training split alone, so a re-audit searches and
  verifies only the evaluation images it has not seen with this training split; the others are
  read back, and the findings are those of an audit without cache (tests/test_cache_incremental.py).

A grown training split changes every key: the calibration and the search run again (each costly
pair verification still comes from :class:`leakguard.similarity.image.VerifiedPairs`).

>>> calib = kept_calibration(ctx, train_data, opts, lambda: calibrate(ctx, train_data, opts))  # doctest: +SKIP
"""
from __future__ import annotations

import json

import numpy as np

from .memo import code_fingerprint as _fingerprint
from .memo import memo_key as _key
from .memo import split_key

MEMO_VERSION = "1"  # bump when what is kept (or how it is encoded) changes
# modules whose code decides the calibration and the audit pass's candidates and matches
CODE_MODULES = ("leakguard.similarity.image", "leakguard.similarity.image_align", "leakguard.similarity.calibration",
                "leakguard.search.hamming", "leakguard.search.knn", "leakguard.signatures.image",
                "leakguard.similarity.image_memo")


def code_fingerprint() -> bytes:
    """16 bytes naming the code and libraries that compute what is kept."""
    return _fingerprint(CODE_MODULES)


def _signature_versions() -> str:
    from ..signatures.registry import get_signature
    from .image import AUGMENTED_NEEDS

    return "/".join(f"{k}:{get_signature('image', k).version}" for k in sorted(AUGMENTED_NEEDS))


def _options_repr(opts: dict) -> str:
    # the gate is a dict of floats; repr of floats round-trips, so equal options give equal keys
    return repr(sorted((k, repr(v)) for k, v in opts.items()))


def _stats(ctx) -> dict:
    return ctx.shared.setdefault("image_memo", {"calibration": None, "eval_read": 0, "eval_searched": 0})


KIND = f"image/memo/{MEMO_VERSION}"


def kept_calibration(ctx, train, opts: dict, compute) -> dict:
    """``compute()`` (the calibration of ``train``), or what it returned for the same training split,
    options and code in an earlier audit."""
    cache = getattr(ctx.signatures, "cache", None)
    content = split_key(train.digest) if cache is not None else None
    if content is None:
        return compute()
    from .image_align import have_opencv

    key = _key(b"calibration", code_fingerprint(), _signature_versions(), content,
               _options_repr({k: v for k, v in opts.items() if k != "gate"}),
               (float(ctx.config.fpr), ctx.config.random_state, have_opencv()))
    blob = cache.get_many(KIND, [key]).get(key)
    if blob is not None:
        kept = json.loads(blob.decode())
        _stats(ctx)["calibration"] = "read back"
        return {"threshold": kept["threshold"], "null": np.asarray(kept["null"], dtype=np.float64),
                "gate": kept["gate"], "source": kept["source"]}
    calib = compute()
    _stats(ctx)["calibration"] = "computed"
    cache.put(KIND, key, json.dumps({"threshold": float(calib["threshold"]),
                                     "null": [float(x) for x in np.asarray(calib["null"], np.float64)],
                                     "gate": calib.get("gate"), "source": calib["source"]}).encode())
    return calib


def kept_pairs(ctx, a, b, opts: dict, threshold: float, compute):
    """``compute(b)`` -> (ia, ib, matches): candidate pairs of split data ``a`` (training side) and
    ``b`` with their verified matches, grouped by ``ib`` ascending. Evaluation images of ``b`` seen
    in an earlier audit with the same ``a``, options, threshold and code are read back; ``compute``
    runs on the others only (rows of ``b``), so the result is what ``compute(b)`` gives."""
    cache = getattr(ctx.signatures, "cache", None)
    content = split_key(a.digest) if cache is not None else None
    if content is None or any(d is None for d in b.digest):
        return compute(b)
    from .image import _decode_match, _encode_match, _Subset
    from .image_align import Match, have_opencv

    prefix = _key(b"pairs", code_fingerprint(), _signature_versions(), content, _options_repr(opts),
                  repr(float(threshold)), have_opencv())
    keys = [prefix + bytes(d) for d in b.digest]
    found = cache.get_many(KIND, list(dict.fromkeys(keys)))
    todo = np.array([j for j, k in enumerate(keys) if k not in found], dtype=np.int64)
    stats = _stats(ctx)
    stats["eval_read"] += len(keys) - len(todo)
    stats["eval_searched"] += len(todo)
    per_row: dict[int, tuple[list, list]] = {}
    if len(todo):
        ia_t, ib_t, m_t = compute(_Subset(b, todo) if len(todo) < len(b) else b)
        ib_t = np.asarray(ib_t, np.int64)
        rows = todo[ib_t] if len(todo) < len(b) else ib_t
        for pos, j in enumerate(rows.tolist()):
            mine = per_row.setdefault(j, ([], []))
            mine[0].append(int(ia_t[pos]))
            mine[1].append(m_t[pos])
        for j in todo.tolist():
            ia_j, m_j = per_row.get(j, ([], []))
            if not all(isinstance(m, Match) for m in m_j):  # not a pair's verified match: not kept
                continue
            value = b"".join(np.float64(i).tobytes() + _encode_match(m) for i, m in zip(ia_j, m_j))
            cache.put(KIND, keys[j], value)
    ia, ib, matches = [], [], []
    for j in range(len(keys)):
        if j in per_row:
            ia_j, m_j = per_row[j]
        elif keys[j] in found:
            # 10 float64 per pair: the training-side position, then the match (image._encode_match)
            rows_j = np.frombuffer(found[keys[j]], dtype=np.float64).reshape(-1, 10)
            ia_j = [int(r[0]) for r in rows_j]
            m_j = [_decode_match(r[1:].tobytes()) for r in rows_j]
        else:
            continue
        ia += ia_j
        ib += [j] * len(ia_j)
        matches += m_j
    return np.array(ia, dtype=np.int64), np.array(ib, dtype=np.int64), matches
