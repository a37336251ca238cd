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
    per_row: dict[int, tuple[list, list]] = {}
    if len(todo):
        whole = len(todo) == len(b)
        sub = b if whole else _Subset(b, todo)
        # evaluation images searched against an earlier training split that this one only added to,
        # whose candidates the added images cannot change: their kept candidates, not searched
        state_prefix = _key(b"search-state", _options_repr({k: v for k, v in opts.items() if k != "gate"}),
                            code_fingerprint(), _signature_versions())
        kept_cand = _unchanged_candidates(cache, state_prefix, a, b, todo, opts) if SKIP_SEARCH else {}
        rows = np.array([j for j in todo.tolist() if j not in kept_cand], np.int64)
        stats["eval_searched"] += len(rows)
        if kept_cand:
            stats["eval_search_kept"] = stats.get("eval_search_kept", 0) + len(kept_cand)
        at_todo = {j: s for s, j in enumerate(todo.tolist())}
        cand: dict[int, list[int]] = {}           # sub position -> its candidates' positions in a, in order
        if len(rows):
            sub_r = b if len(rows) == len(b) else _Subset(b, rows)
            ia_r, ib_r = search(sub_r)
            for i, j in zip(np.asarray(ia_r, np.int64).tolist(), np.asarray(ib_r, np.int64).tolist()):
                cand.setdefault(at_todo[int(rows[j])], []).append(i)
            _remember_search(cache, state_prefix, a, sub_r, [cand.get(at_todo[int(j)], []) for j in rows.tolist()],
                             int(opts["k"]))
        for j, ia_j in kept_cand.items():
            cand[at_todo[j]] = ia_j
        ia_t = np.array([i for s in sorted(cand) for i in cand[s]], np.int64)
        ib_t = np.array([s for s in sorted(cand) for _ in cand[s]], np.int64)
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


# ---- a grown training split: evaluation images whose candidates the added images cannot change ----
#
# candidate_pairs (image.py) ranks, per evaluation image j, the training images found by its hash
# searches (Hamming radius) and by its kNN sources (k nearest by cosine: 16 px thumbnails under 8
# transforms, Fourier magnitudes under 8, central discs under DISC_ANGLES), then one crop-window
# neighbour (the nearest training window). Training images added to a split (the earlier images still
# there, in the same order, none repeated) can change j's candidates only by entering one of those:
# a hash match within the radius, a cosine reaching the k-th best of a kNN source, or a window reaching
# the best window. The search state kept per j -- the training split it was searched against, its
# candidates (digests), each kNN source's k-th best cosine and best window cosine, and j's own
# descriptors -- lets a re-audit test the added images against j alone; when none can enter (with a
# margin of SEARCH_MARGIN on each cosine, far above float32 rounding), j's candidates are the kept
# ones and j is not searched. The mirror of candidate_pairs' sources is _search_floors /
# _added_can_enter: a new source there must be added here (tests/test_cache_incremental.py compares
# a grown re-audit with a full search).

SEARCH_MARGIN = 1e-4
SKIP_SEARCH = True  # False: every evaluation image of a changed training split is searched (tests switch it off)
STATE_KIND = f"image/search-state/{MEMO_VERSION}"


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _descriptors(b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z16 (n, 256), spectra (n, 8, s), discs (n, H, D)) of split data ``b``, as candidate_pairs queries them."""
    return (np.asarray(b.z16, np.float32), np.stack([b.spectra(d) for d in range(8)], axis=1).astype(np.float32),
            np.asarray(b.discs(), np.float32))


def _search_floors(a, b, k: int) -> np.ndarray:
    """(len(b), 8 + 8 + H + 1) float64: the k-th best cosine of each row of ``b`` among ``a`` in each kNN
    source of candidate_pairs, then its best crop-window cosine (the same ``nearest`` calls)."""
    from ..search.knn import nearest
    from .image import _dihedral_perms, window_descriptors

    kk = min(k, len(a))
    perms = _dihedral_perms(16)
    cols = [nearest(a.z16, b.z16[:, perms[d]], k=kk, metric="cosine")[0][:, kk - 1] for d in range(8)]
    cols += [nearest(a.spectra(0), b.spectra(d), k=kk, metric="cosine")[0][:, kk - 1] for d in range(8)]
    disc_a, disc_b = a.discs(), b.discs()
    cols += [nearest(disc_a[:, 0], disc_b[:, h], k=kk, metric="cosine")[0][:, kk - 1] for h in range(disc_b.shape[1])]
    win_a = window_descriptors(a)
    cols.append(nearest(win_a.reshape(-1, win_a.shape[2]), b.z16, k=1, metric="cosine")[0][:, 0]
                if win_a.shape[1] else np.full(len(b), -np.inf, np.float32))
    return np.stack(cols, axis=1).astype(np.float64)


def _added_can_enter(added, z16, spectra, discs, floors, phash, windows, radius: int) -> np.ndarray:
    """(m,) bool: whether any image of ``added`` (split data of the added training images) could be
    among the candidates of each of m evaluation images, given their descriptors, floors and hashes."""
    from .image import _dihedral_perms, window_descriptors

    m = len(floors)
    out = np.zeros(m, bool)
    if not len(added) or not m:
        return out
    # hash searches: added codes (8 transforms) vs j's identity code; added windows vs j's 8 codes;
    # j's windows vs added codes (8)
    step = max(1, 4_000_000 // max(1, len(added) * 8 * max(added.windows.shape[1], windows.shape[1], 1)))
    for lo in range(0, m, step):  # bounded memory: (rows, added, windows, 8) code comparisons per step
        sl = slice(lo, lo + step)
        pj, wj = phash[sl], windows[sl]
        d1 = np.bitwise_count(added.phash[None, :, :] ^ pj[:, None, None, 0]).min(axis=(1, 2))
        d2 = (np.bitwise_count(added.windows[None, :, :, None] ^ pj[:, None, None, :]).min(axis=(1, 2, 3))
              if added.windows.shape[1] else np.full(len(pj), 64))
        d3 = (np.bitwise_count(wj[:, None, :, None] ^ added.phash[None, :, None, :]).min(axis=(1, 2, 3))
              if wj.shape[1] else np.full(len(pj), 64))
        out[sl] |= np.minimum(np.minimum(d1, d2), d3) <= radius
    perms = _dihedral_perms(16)
    za = _normalised(added.z16)
    cos = [np.einsum("nf,mf->mn", za, _normalised(z16[:, perms[d]])).max(axis=1) for d in range(8)]
    sa = _normalised(added.spectra(0))
    cos += [np.einsum("nf,mf->mn", sa, _normalised(spectra[:, d])).max(axis=1) for d in range(8)]
    da = _normalised(added.discs()[:, 0])
    cos += [np.einsum("nf,mf->mn", da, _normalised(discs[:, h])).max(axis=1) for h in range(discs.shape[1])]
    win = window_descriptors(added)
    cos.append(np.einsum("nf,mf->mn", _normalised(win.reshape(-1, win.shape[2])), _normalised(z16)).max(axis=1)
               if win.shape[1] else np.full(m, -np.inf))
    cos = np.stack(cos, axis=1)
    if cos.shape != floors.shape:
        return np.ones(m, bool)
    out |= (cos >= floors - SEARCH_MARGIN).any(axis=1)
    return out


def _encode_state(split: bytes, cand_digests: list, floors: np.ndarray, z16, spectra, discs) -> bytes:
    """The search state of one evaluation image: the training split's content key, its candidates'
    digests, its floors (float64), its descriptors (float32) with their shapes."""
    feats = [np.ascontiguousarray(x, np.float32) for x in (z16, spectra, discs)]
    head = np.array([len(cand_digests), len(floors)] + [s for x in feats for s in (x.ndim, *x.shape)], np.int64)
    return (len(head).to_bytes(8, "little") + head.tobytes() + split + b"".join(cand_digests)
            + np.asarray(floors, np.float64).tobytes() + b"".join(x.tobytes() for x in feats))


def _decode_state(blob):
    """(split key, candidate digests, floors, z16, spectra, discs) or None."""
    if not blob or len(blob) < 8:
        return None
    try:
        n_head = int.from_bytes(blob[:8], "little")
        head = np.frombuffer(blob, np.int64, count=n_head, offset=8).tolist()
        at = 8 + 8 * n_head
        n_cand, n_floor, rest = head[0], head[1], head[2:]
        split = blob[at:at + 16]
        at += 16
        cand = [blob[at + 16 * i: at + 16 * (i + 1)] for i in range(n_cand)]
        at += 16 * n_cand
        floors = np.frombuffer(blob, np.float64, count=n_floor, offset=at)
        at += 8 * n_floor
        feats = []
        while rest:
            ndim, shape, rest = rest[0], rest[1:1 + rest[0]], rest[1 + rest[0]:]
            size = int(np.prod(shape)) if shape else 1
            feats.append(np.frombuffer(blob, np.float32, count=size, offset=at).reshape(shape))
            at += 4 * size
        if at != len(blob) or len(feats) != 3:
            return None
        return split, cand, floors, *feats
    except (ValueError, IndexError, TypeError):
        return None


def _split_blob_key(content: bytes) -> bytes:
    return _key(b"search-split", content)


def _remember_search(cache, prefix: bytes, a, sub, candidates: list, k: int) -> None:
    """Keep the search state of each row of ``sub`` (just searched against ``a``): ``candidates[r]`` are
    row r's candidate positions in ``a``. ``a``'s digests are kept once, under its content key."""
    from .memo import split_key as _split_key

    if len(a) < max(k, 1) or any(d is None for d in a.digest) or any(d is None for d in sub.digest):
        return
    content = _split_key(a.digest)
    cache.put(STATE_KIND, _split_blob_key(content), b"".join(bytes(d) for d in a.digest))
    floors = _search_floors(a, sub, k)
    z16, spectra, discs = _descriptors(sub)
    for r, d in enumerate(sub.digest):
        cache.put(STATE_KIND, prefix + bytes(d),
                  _encode_state(content, [bytes(a.digest[i]) for i in candidates[r]], floors[r], z16[r],
                                spectra[r], discs[r]))


def _unchanged_candidates(cache, prefix: bytes, a, b, rows: np.ndarray, opts: dict) -> dict[int, list[int]]:
    """{row of ``b``: its candidate positions in ``a``} for the rows whose kept search state was made
    against an earlier training split that ``a`` only added images to (same order, no digest twice in
    ``a``) and that none of the added images can enter (:func:`_added_can_enter`)."""
    from .image import _Subset

    if not len(rows) or any(d is None for d in a.digest):
        return {}
    digests = [bytes(d) for d in a.digest]
    position = {d: p for p, d in enumerate(digests)}
    if len(position) != len(digests):  # a content twice: which position a search names is not kept
        return {}
    found = cache.get_many(STATE_KIND, [prefix + bytes(b.digest[j]) for j in rows.tolist()])
    states = {}
    for j in rows.tolist():
        state = _decode_state(found.get(prefix + bytes(b.digest[j])))
        if state is not None:
            states[j] = state
    by_split: dict[bytes, list[int]] = {}
    for j, state in states.items():
        by_split.setdefault(state[0], []).append(j)
    k = int(opts["k"])
    out: dict[int, list[int]] = {}
    for split, js in by_split.items():
        blob = cache.get_many(STATE_KIND, [_split_blob_key(split)]).get(_split_blob_key(split))
        if not blob or len(blob) % 16:
            continue
        earlier = [blob[i:i + 16] for i in range(0, len(blob), 16)]
        at = np.array([position.get(d, -1) for d in earlier], np.int64)
        # every earlier image still there, in the same order, and k of them at least (kk unchanged)
        if len(earlier) < k or (at < 0).any() or (np.diff(at) <= 0).any():
            continue
        added_rows = np.setdiff1d(np.arange(len(a)), at)
        added = _Subset(a, added_rows)
        js = np.array(js, np.int64)
        z16 = np.stack([states[j][3] for j in js.tolist()])
        spectra = np.stack([states[j][4] for j in js.tolist()])
        discs = np.stack([states[j][5] for j in js.tolist()])
        floors = np.stack([states[j][2] for j in js.tolist()])
        try:
            moved = _added_can_enter(added, z16, spectra, discs, floors, b.phash[js], b.windows[js], int(opts["radius"]))
        except ValueError:  # descriptors of another shape (another thumbnail size): search
            continue
        for j, can in zip(js.tolist(), moved.tolist()):
            if not can:
                out[j] = [position[d] for d in states[j][1]]
    return out
