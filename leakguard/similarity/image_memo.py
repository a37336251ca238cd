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

A grown training split changes every key: the search runs again (each costly pair verification
still comes from :class:`leakguard.similarity.image.VerifiedPairs`, and an evaluation image whose
candidates held gets its matches back); the calibration runs again too, unless the split only grew
by at most ``AuditConfig.recalibrate_growth`` since the audit that calibrated it (then that
calibration is kept, and the report says so).

>>> calib = kept_calibration(ctx, train_data, opts, lambda: calibrate(ctx, train_data, opts))  # doctest: +SKIP
"""
from __future__ import annotations

import json

import numpy as np

from .memo import code_fingerprint as _fingerprint
from .memo import earlier_calibration, note_calibration, remember_calibration, split_key
from .memo import memo_key as _key

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
    options and code in an earlier audit -- or, when the training split only grew a little since an
    earlier audit (``AuditConfig.recalibrate_growth``, :func:`memo.earlier_calibration`), that
    audit's calibration (threshold, null and gate: new training images are still searched)."""
    cache = getattr(ctx.signatures, "cache", None)
    content = split_key(train.digest) if cache is not None else None
    if content is None:
        return compute()
    from .image_align import have_opencv

    lineage = (code_fingerprint(), _signature_versions(), _options_repr({k: v for k, v in opts.items() if k != "gate"}),
               (float(ctx.config.fpr), ctx.config.random_state, have_opencv()))
    key = _key(b"calibration", lineage[0], lineage[1], content, *lineage[2:])
    n = len(train.digest)
    kept = _read_calibration(cache, key)
    if kept is not None:
        _stats(ctx)["calibration"] = "read back"
        note_calibration(ctx, CALIBRATION, "read back", n)
        return kept
    earlier = earlier_calibration(ctx, CALIBRATION, train.digest, lineage, CODE_MODULES)
    kept = _read_calibration(cache, earlier["key"]) if earlier is not None else None
    if kept is not None:
        _stats(ctx)["calibration"] = "kept"
        note_calibration(ctx, CALIBRATION, "kept", n, earlier)
        return kept
    calib = compute()
    _stats(ctx)["calibration"] = "computed"
    note_calibration(ctx, CALIBRATION, "computed", n)
    cache.put(KIND, key, json.dumps({"threshold": float(calib["threshold"]),
                                     "null": [float(x) for x in np.asarray(calib["null"], np.float64)],
                                     "gate": calib.get("gate"), "source": calib["source"]}).encode())
    remember_calibration(ctx, CALIBRATION, train.digest, lineage, CODE_MODULES, key)
    return calib


CALIBRATION = "image/augmented/calibration"  # its name in memo's lineage and in the report


def _read_calibration(cache, key: bytes) -> dict | None:
    blob = cache.get_many(KIND, [key]).get(key)
    if blob is None:
        return None
    try:
        kept = json.loads(blob.decode())
        return {"threshold": kept["threshold"], "null": np.asarray(kept["null"], dtype=np.float64),
                "gate": kept["gate"], "source": kept["source"]}
    except (ValueError, KeyError, TypeError):  # unreadable: a miss
        return None


def kept_pairs(ctx, a, b, opts: dict, threshold: float, search, verify):
    """Candidate pairs of split data ``a`` (training side) and ``b`` with their verified matches:
    ``(ia, ib, matches)`` grouped by ``ib`` ascending, what ``ia, ib = search(b)`` and
    ``verify(b, ia, ib)`` give -- doing only the work the cache cannot answer.

    Two keys per evaluation image (its digest), both with the options, gate, threshold and code:

    1. with the training split's content: the image was audited against this very training split;
       its pairs and matches are read back, nothing is searched;
    2. without it: after a search (the training split changed), an image whose candidates are the
       same training images, in the same order, as when it was last verified gets those matches back
       (the verification of one evaluation image is a function of it and its candidates' content).
    ``search`` and ``verify`` run on the rows of ``b`` that need them only (``image._Subset``).
    """
    cache = getattr(ctx.signatures, "cache", None)
    content = split_key(a.digest) if cache is not None else None
    if content is None or any(d is None for d in b.digest):
        ia, ib = search(b)
        return ia, ib, verify(b, ia, ib)
    from .image import _Subset
    from .image_align import have_opencv

    common = (code_fingerprint(), _signature_versions(), repr(float(threshold)), have_opencv())
    gate = opts.get("gate")
    by_split = _key(b"pairs", content, _options_repr(opts), *common)
    # the gate (a function of the training split) is not in key 2: each kept pair's cheap evidence
    # is judged again by the current gate, and the matches are reused only if no decision changed
    by_candidates = _key(b"pairs-by-candidates", _options_repr({k: v for k, v in opts.items() if k != "gate"}),
                         *common)
    keys = [by_split + bytes(d) for d in b.digest]
    found = cache.get_many(KIND, list(dict.fromkeys(keys)))
    todo = np.array([j for j, k in enumerate(keys) if k not in found], dtype=np.int64)
    stats = _stats(ctx)
    stats["eval_read"] += len(keys) - len(todo)
    stats["eval_searched"] += len(todo)
    per_row: dict[int, tuple[list, list]] = {}
    if len(todo):
        whole = len(todo) == len(b)
        sub = b if whole else _Subset(b, todo)
        ia_t, ib_t = search(sub)
        ia_t, ib_t = np.asarray(ia_t, np.int64), np.asarray(ib_t, np.int64)
        cand: dict[int, list[int]] = {}           # sub position -> its candidates' positions in a, in order
        for i, j in zip(ia_t.tolist(), ib_t.tolist()):
            cand.setdefault(j, []).append(i)
        keys2 = {int(s): by_candidates + bytes(b.digest[int(j)]) for s, j in enumerate(todo)}
        found2 = cache.get_many(KIND, list(dict.fromkeys(keys2.values())))
        reverify, same = [], []
        for s, j in enumerate(todo.tolist()):
            ia_s = cand.get(s, [])
            kept = _decode_by_candidates(found2.get(keys2[s]))
            if kept is not None and kept[0] == [bytes(a.digest[i]) for i in ia_s]:
                same.append((s, j, ia_s, kept))
            else:
                reverify.append(s)
        if same:  # the current gate judges every kept pair's evidence again, in one call
            decided = _gate_decisions(gate, np.concatenate([kept[2] for *_, kept in same]))
            at = 0
            for s, j, ia_s, kept in same:
                n_s = len(kept[3])
                if np.array_equal(decided[at:at + n_s], kept[3]):
                    per_row[j] = (ia_s, kept[1])
                    stats["eval_reused"] = stats.get("eval_reused", 0) + 1
                else:
                    reverify.append(s)
                at += n_s
            reverify.sort()
        if reverify:
            from .image import cheap_evidence

            rows_v = np.array(reverify, np.int64)  # sorted positions in sub
            sel = np.isin(ib_t, rows_v)
            if len(rows_v) == len(sub):
                ver, ib_v = sub, ib_t[sel]
            else:  # a grown training split: only these rows' thumbnails and windows are made, not the split's
                ver, ib_v = _Subset(b, todo[rows_v]), np.searchsorted(rows_v, ib_t[sel])
            m_v = verify(ver, ia_t[sel], ib_v)
            ev = cheap_evidence(a, ver, ia_t[sel], ib_v)
            ev = np.stack([np.asarray(ev.get(kind, np.full(int(sel.sum()), np.nan)), np.float64)
                           for kind in EVIDENCE], axis=1).reshape(-1, len(EVIDENCE))
            decided = _gate_decisions(gate, ev)
            done: dict[int, tuple[list, list, list, list]] = {}
            for p, (i, s, m) in enumerate(zip(ia_t[sel].tolist(), ib_t[sel].tolist(), m_v)):
                mine = done.setdefault(s, ([], [], [], []))
                mine[0].append(i)
                mine[1].append(m)
                mine[2].append(ev[p])
                mine[3].append(decided[p])
            for s in reverify:
                j = int(todo[s])
                ia_j, m_j, ev_j, dec_j = done.get(s, ([], [], [], []))
                per_row[j] = (ia_j, m_j)
                blob = _encode_by_candidates([bytes(a.digest[i]) for i in ia_j], m_j, ev_j, dec_j)
                if blob:
                    cache.put(KIND, keys2[s], blob)
        for j in todo.tolist():
            value = _encode_by_position(*per_row[j])
            if value is not None:
                cache.put(KIND, keys[j], value)
    ia, ib, matches = [], [], []
    for j in range(len(keys)):
        if j in per_row:
            ia_j, m_j = per_row[j]
        else:
            ia_j, m_j = _decode_by_position(found[keys[j]])
        ia += ia_j
        ib += [j] * len(ia_j)
        matches += m_j
    return np.array(ia, dtype=np.int64), np.array(ib, dtype=np.int64), matches


def _match_rows(matches: list) -> np.ndarray:
    """(n, 9) float64: each Match as image._encode_match writes it, for all pairs in one array (a grown
    training split re-encodes every evaluation image's pairs: one call per match cost 0.05-0.08 CPU s
    per 800 images)."""
    return np.array([[1.0, m.score, m.dihedral, m.angle, m.window[0], m.window[1], m.swapped, m.shift, m.inliers]
                     for m in matches], dtype=np.float64).reshape(len(matches), 9)


def _matches_of_rows(rows: np.ndarray) -> list:
    """image._decode_match of each row of ``rows`` (n, 9), from one ``tolist``: the same objects."""
    from .image import _FEATURELESS
    from .image_align import Match

    return [None if r[0] == 0.0 else _FEATURELESS if r[0] < 0.0 else
            Match(r[1], int(r[2]), r[3], (r[4], r[5]), bool(r[6]), bool(r[7]), int(r[8]))
            for r in np.asarray(rows, np.float64).reshape(-1, 9).tolist()]


def _encode_by_position(ia: list, matches: list) -> bytes | None:
    """10 float64 per pair: the training-side position, then the match (image._encode_match)."""
    from .image_align import Match

    if not all(isinstance(m, Match) for m in matches):  # not a pair's verified match: not kept
        return None
    return np.concatenate([np.asarray(ia, np.float64).reshape(-1, 1), _match_rows(matches)], axis=1).tobytes()


def _decode_by_position(blob: bytes) -> tuple[list, list]:
    rows = np.frombuffer(blob, dtype=np.float64).reshape(-1, 10)
    return rows[:, 0].astype(np.int64).tolist(), _matches_of_rows(rows[:, 1:])


EVIDENCE = ("r16", "rwin", "rdisc", "bits")  # image.cheap_evidence kinds kept per pair (NaN: not measured)


def _gate_decisions(gate, evidence: np.ndarray) -> np.ndarray:
    """Which pairs pass ``gate`` (image.passes_gate on kept evidence); all of them without a gate."""
    from .image import passes_gate

    evidence = np.asarray(evidence, np.float64).reshape(-1, len(EVIDENCE))
    if gate is None:
        return np.ones(len(evidence), bool)
    ev = {kind: evidence[:, c] for c, kind in enumerate(EVIDENCE)}
    return np.asarray(passes_gate(None, None, None, None, gate, evidence=ev), bool)


def _encode_by_candidates(digests: list, matches: list, evidence: list, decisions: list) -> bytes:
    """Pair count, then per pair: the candidate's 16-byte digest, its cheap evidence (4 float64), its
    gate decision (1 byte), its match (9 float64). Empty: not kept."""
    from .image_align import Match

    if not all(isinstance(m, Match) and len(d) == 16 for d, m in zip(digests, matches)):
        return b""
    ev = np.asarray(evidence, np.float64).reshape(len(digests), len(EVIDENCE))
    return (len(digests).to_bytes(8, "little") + b"".join(digests) + ev.tobytes()
            + np.asarray(decisions, np.uint8).tobytes() + _match_rows(matches).tobytes())


def _decode_by_candidates(blob):
    """(digests, matches, evidence (n, 4), gate decisions (n,)) or None."""
    if not blob or len(blob) < 8:
        return None
    n = int.from_bytes(blob[:8], "little")
    width = 8 * len(EVIDENCE)
    if len(blob) != 8 + n * (16 + width + 1 + 72):
        return None
    digests = [blob[8 + 16 * i: 24 + 16 * i] for i in range(n)]
    at = 8 + 16 * n
    evidence = np.frombuffer(blob[at:at + width * n], np.float64).reshape(n, len(EVIDENCE))
    at += width * n
    decisions = np.frombuffer(blob[at:at + n], np.uint8).astype(bool)
    at += n
    return digests, _matches_of_rows(np.frombuffer(blob, np.float64, count=9 * n, offset=at)), evidence, decisions
