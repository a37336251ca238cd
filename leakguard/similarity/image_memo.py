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
import math

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
        # the options the search reads (image.py search -> candidate_pairs), not the calibrated ones
        state_prefix = _key(b"search-state", _options_repr({k: opts[k] for k in SEARCH_OPTIONS}),
                            code_fingerprint(), _signature_versions())
        kept_cand = _unchanged_candidates(cache, state_prefix, a, b, todo, opts, stats) if SKIP_SEARCH else {}
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
                             opts)
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
# candidate_pairs (image.py) lists, per evaluation image j, entries (training image, rank, source): its
# hash searches' matches (Hamming radius), the k nearest training images by cosine in each kNN source
# (16 px thumbnails under 8 transforms, Fourier magnitudes under 8, central discs under DISC_ANGLES),
# then ranks them (each source's best first, one entry per training image, capped) and adds one
# crop-window neighbour (the nearest training window, when it beats the kept candidates). The search
# state kept per j -- the training split it was searched against, its candidates (digests), all its
# entries (training positions and ranks, as candidate_pairs listed them), each kNN source's k-th best
# cosine and best window ("floors"), and j's own descriptors -- lets a re-audit with training images
# added to that split (the earlier ones still there, in order, none repeated) work out j's candidates
# from the added images alone:
# - none can enter any of j's lists (no hash match, every cosine below its floor): the kept candidates;
# - some enter a kNN list: the lists are merged (an added image displaces the list's last entry) and
#   ranked again as candidate_pairs ranks them (rank_capped, the same float32 arithmetic), the window
#   neighbour worked out from the kept and the added windows. This needs every comparison of an added
#   image's cosine with a kept one decided by more than SEARCH_MARGIN (far above float32 rounding: the
#   added images' cosines are computed here, not by ``nearest``); otherwise, or with a hash match of an
#   added image (integer ranks tie), j is searched.
# The mirror of candidate_pairs is _search_entries / rank_capped / _merged_candidates: a new source
# there must be added here (tests/test_cache_incremental.py compares grown re-audits with a full search).

SEARCH_MARGIN = 1e-4
SEARCH_OPTIONS = ("radius", "k", "max_candidates")  # what candidate_pairs is given by the search
SKIP_SEARCH = True  # False: every evaluation image of a changed training split is searched (tests switch it off)
MERGE_RANKED = True  # False: an image an added training image can enter is searched (tests switch it off)
STATE_KIND = f"image/search-state/{MEMO_VERSION}.2"  # .2: with the ranked entries


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _descriptors(b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z16 (n, 256), spectra (n, 8, s), discs (n, H, D)) of split data ``b``, as candidate_pairs queries them."""
    return (np.asarray(b.z16, np.float32), np.stack([b.spectra(d) for d in range(8)], axis=1).astype(np.float32),
            np.asarray(b.discs(), np.float32))


def _hash_entries(a, b, radius: int):
    """candidate_pairs' three hash searches of ``b`` against ``a``: (ia, ib, rank float32), in its order."""
    from ..search.hamming import MultiIndexHash

    rep = lambda n, m: np.repeat(np.arange(n), m)  # noqa: E731
    searches = (
        (a.phash.ravel(), rep(len(a), 8), b.phash[:, 0], np.arange(len(b)), True),
        (a.windows.ravel(), rep(len(a), a.windows.shape[1]), b.phash.ravel(), rep(len(b), 8), True),
        (b.windows.ravel(), rep(len(b), b.windows.shape[1]), a.phash.ravel(), rep(len(a), 8), False),
    )
    ia, ib, rank = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    for index_codes, index_owner, query_codes, query_owner, index_is_a in searches:
        if len(index_codes) == 0 or len(query_codes) == 0:
            continue
        qi, ii, dist = MultiIndexHash(index_codes, radius=radius).query(query_codes, radius)
        ia.append(index_owner[ii] if index_is_a else query_owner[qi])
        ib.append(query_owner[qi] if index_is_a else index_owner[ii])
        rank.append(dist.astype(np.float32) / 64.0)
    return np.concatenate(ia).astype(np.int64), np.concatenate(ib).astype(np.int64), np.concatenate(rank)


def _search_entries(a, b, radius: int, k: int) -> dict:
    """Per row of ``b``, what candidate_pairs ranks against ``a`` (the same calls): ``hash`` (per row:
    training positions, ranks float32, in candidate_pairs' order), ``list_i`` / ``list_rank`` (n, L, kk)
    the kNN lists (8 thumbnail, 8 Fourier, H disc sources) best first, ``floors`` (n, L + 1) float64 each
    list's k-th best cosine then the best window cosine, ``window`` (n,) the best window's owner (-1: none)."""
    from ..search.knn import nearest
    from .image import _dihedral_perms, window_descriptors

    kk = min(k, len(a))
    perms = _dihedral_perms(16)
    found = [nearest(a.z16, b.z16[:, perms[d]], k=kk, metric="cosine") for d in range(8)]
    found += [nearest(a.spectra(0), b.spectra(d), k=kk, metric="cosine") for d in range(8)]
    disc_a, disc_b = a.discs(), b.discs()
    found += [nearest(disc_a[:, 0], disc_b[:, h], k=kk, metric="cosine") for h in range(disc_b.shape[1])]
    win_a = window_descriptors(a)
    if win_a.shape[1]:
        sims, idx = nearest(win_a.reshape(-1, win_a.shape[2]), b.z16, k=1, metric="cosine")
        win_cos, owner = sims[:, 0], np.where(idx[:, 0] >= 0, idx[:, 0] // win_a.shape[1], -1)
    else:
        win_cos, owner = np.full(len(b), -np.inf, np.float32), np.full(len(b), -1, np.int64)
    ia, ib, rank = _hash_entries(a, b, radius)
    order = np.argsort(ib, kind="stable")
    bounds = np.searchsorted(ib[order], np.arange(len(b) + 1))
    return {"hash": [(ia[order[bounds[r]:bounds[r + 1]]], rank[order[bounds[r]:bounds[r + 1]]]) for r in range(len(b))],
            "list_i": np.stack([idx for _, idx in found], axis=1).astype(np.int64),
            # rank as candidate_pairs computes it: (1 - cosine) / 2 in float32
            "list_rank": np.stack([(1.0 - sims) / 2.0 for sims, _ in found], axis=1),
            "floors": np.stack([sims[:, kk - 1] for sims, _ in found] + [win_cos], axis=1).astype(np.float64),
            "window": np.asarray(owner, np.int64)}


def rank_capped(ia, ib, rank, source, n_a: int, max_candidates: int):
    """candidate_pairs' ranking of entries (evaluation rows ``ib``, self pairs already removed): each
    source's best first, one entry per training image, at most ``max_candidates`` per row. Used by
    candidate_pairs itself and by the re-audit's merge, so both order ties the same way."""
    order = np.lexsort((rank, ib, source))
    lead = np.r_[True, (source[order][1:] != source[order][:-1]) | (ib[order][1:] != ib[order][:-1])]
    best_of_source = np.zeros(len(ia), bool)
    best_of_source[order[lead]] = True
    rank = rank - best_of_source.astype(rank.dtype)
    order = np.lexsort((rank, ib))
    ia, ib, rank = ia[order], ib[order], rank[order]
    key = ib * max(n_a, 1) + ia
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    ia, ib, rank = ia[first], ib[first], rank[first]
    order = np.lexsort((rank, ib))
    ia, ib = ia[order], ib[order]
    pos_in_group = np.arange(len(ib)) - np.searchsorted(ib, ib, side="left")
    keep = pos_in_group < max_candidates
    return ia[keep], ib[keep]


def _list_sources(n_lists: int) -> np.ndarray:
    """candidate_pairs' source number of each kNN list: 1 thumbnails (8), 2 Fourier (8), 3 discs."""
    return np.r_[np.full(8, 1), np.full(8, 2), np.full(n_lists - 16, 3)].astype(np.int64)


def _hash_reach(added, phash, windows, radius: int) -> np.ndarray:
    """(m,) bool: whether any image of ``added`` is within the hash searches' radius of each of m
    evaluation images (their codes ``phash`` (m, 8), window codes ``windows`` (m, W))."""
    m = len(phash)
    out = np.zeros(m, bool)
    if not len(added) or not m:
        return out
    # added codes (8 transforms) vs j's identity code; added windows vs j's 8 codes; j's windows vs added codes (8)
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
    return out


def _added_cosines(added, z16, spectra, discs) -> tuple[np.ndarray, np.ndarray]:
    """((m, L, n_added) cosine of each added image in each kNN list of each of m evaluation images,
    (m, n_added) each added image's best window cosine with their 16 px thumbnails)."""
    from .image import _dihedral_perms, window_descriptors

    perms = _dihedral_perms(16)
    za = _normalised(added.z16)
    cos = [np.einsum("nf,mf->mn", za, _normalised(z16[:, perms[d]])) for d in range(8)]
    sa = _normalised(added.spectra(0))
    cos += [np.einsum("nf,mf->mn", sa, _normalised(spectra[:, d])) for d in range(8)]
    da = _normalised(added.discs()[:, 0])
    cos += [np.einsum("nf,mf->mn", da, _normalised(discs[:, h])) for h in range(discs.shape[1])]
    win = window_descriptors(added)
    if win.shape[1]:
        wc = np.einsum("nwf,mf->mnw", _normalised(win), _normalised(z16)).max(axis=2)
    else:
        wc = np.full((len(z16), len(added)), -np.inf)
    return np.stack(cos, axis=1), wc


def _added_can_enter(added, z16, spectra, discs, floors, phash, windows, radius: int,
                     measured: dict | None = None) -> np.ndarray:
    """(m,) bool: whether any image of ``added`` (split data of the added training images) could be
    among the candidates of each of m evaluation images, given their descriptors, floors and hashes.
    ``measured``: filled with what was worked out (``cos``, ``wc``, ``reach``) for _merged_candidates."""
    m = len(floors)
    if not len(added) or not m:
        return np.zeros(m, bool)
    cos, wc = _added_cosines(added, z16, spectra, discs)
    reach = _hash_reach(added, phash, windows, radius)
    if measured is not None:
        measured.update(cos=cos, wc=wc, reach=reach)
    best = np.concatenate([cos.max(axis=2), wc.max(axis=1)[:, None]], axis=1)
    if best.shape != floors.shape:
        return np.ones(m, bool)
    return reach | (best >= floors - SEARCH_MARGIN).any(axis=1)


def _decided(ia, ib, rank, source, added, max_candidates: int) -> np.ndarray:
    """Per row of ``ib`` (0..m-1): whether candidate_pairs' ranking of its entries (training positions
    ``ia``, float32 ``rank``, ``source``; ``added`` marks the added images' entries, whose ranks are
    computed here, not by ``nearest``) is the same for any of those ranks within SEARCH_MARGIN of the
    given ones. What the ranking decides with them: each source's best entry (marked down by 1), then
    the order of the training images by their best marked rank, capped. So: no added entry within the
    margin of another image's entry at the top of its source, and no added image within the margin of
    another image near or above the cap (below it, nothing it is compared with is kept)."""
    m = int(ib.max()) + 1 if len(ib) else 0
    ok = np.ones(m, bool)
    if not added.any():
        return ok
    order = np.lexsort((rank, ib, source))
    s_o, b_o, r_o = source[order], ib[order], rank[order]
    lead = np.r_[True, (s_o[1:] != s_o[:-1]) | (b_o[1:] != b_o[:-1])]
    group = np.cumsum(lead) - 1
    best = r_o[lead][group]
    near = r_o <= best + SEARCH_MARGIN
    # a group (row, source) whose near-best entries include an added one and more than one image
    near_added = np.zeros(group[-1] + 1, bool)
    np.logical_or.at(near_added, group[near], added[order][near])
    pairs = np.unique(group[near] * (int(ia.max()) + 1) + ia[order][near])
    images = np.bincount(pairs // (int(ia.max()) + 1), minlength=len(near_added))
    bad = near_added & (images > 1)
    ok[np.unique(b_o[lead][bad])] = False
    marked = rank.astype(np.float64)
    marked[order[lead]] -= 1.0
    # each training image's best marked rank per row, then the rows' images in order
    key = ib * (int(ia.max()) + 1) + ia
    o2 = np.lexsort((marked, key))
    first = np.r_[True, key[o2][1:] != key[o2][:-1]]
    item_b, item_v = ib[o2][first], marked[o2][first]
    item_new = np.zeros(int(first.sum()), bool)
    np.logical_or.at(item_new, np.cumsum(first) - 1, added[o2])  # an added image's entries are all added
    o3 = np.lexsort((item_v, item_b))
    item_b, item_v, item_new = item_b[o3], item_v[o3], item_new[o3]
    pos = np.arange(len(item_b)) - np.searchsorted(item_b, item_b, side="left")
    edge = np.full(m, np.inf)
    at_cap = pos == max_candidates - 1
    edge[item_b[at_cap]] = item_v[at_cap] + SEARCH_MARGIN
    top = item_v <= edge[item_b]
    # among each row's top images (sorted), an added one must be apart from its neighbours
    gap_before = np.r_[np.inf, np.where(item_b[1:] == item_b[:-1], item_v[1:] - item_v[:-1], np.inf)]
    gap_after = np.r_[gap_before[1:], np.inf]
    next_top = np.r_[top[1:], False]
    close = (gap_before <= SEARCH_MARGIN) | ((gap_after <= SEARCH_MARGIN) & next_top)
    ok[np.unique(item_b[top & item_new & close])] = False
    return ok


def _merged_candidates(a, b, js, states, at, added_rows, added, opts: dict,
                       measured: dict | None = None) -> dict[int, list[int]]:
    """{row j of ``b``: its candidate positions in ``a``} for the rows ``js`` whose kept entries (made
    against the earlier training split, whose images are now at positions ``at``) merged with the added
    images' (``added``: split data of ``a``'s rows ``added_rows``) give candidate_pairs' result with every
    comparison decided by more than SEARCH_MARGIN; the other rows are not in it (searched)."""
    from .image_align import whole_frame_scores

    js = np.asarray(js, np.int64)
    if not len(js) or not len(added):
        return {}
    st = [states[j] for j in js.tolist()]
    n_lists = st[0]["list_rank"].shape[0]
    if any(s["list_rank"].shape != st[0]["list_rank"].shape for s in st):
        return {}
    z16 = np.stack([s["z16"] for s in st])
    if measured:  # _added_can_enter's, for these rows
        cos, wc, reach = measured["cos"], measured["wc"], measured["reach"]
    else:
        cos, wc = _added_cosines(added, z16, np.stack([s["spectra"] for s in st]), np.stack([s["discs"] for s in st]))
        reach = _hash_reach(added, b.phash[js], b.windows[js], int(opts["radius"]))
    added_rank = (1.0 - cos) / 2.0                                                  # (m, L, n_added), float64
    old_rank = np.stack([s["list_rank"] for s in st])                               # (m, L, kk) float32
    old_i = at[np.stack([s["list_i"] for s in st]).astype(np.int64)]
    last = old_rank[:, :, -1:].astype(np.float64)
    ok = ~reach                                                                      # integer ranks tie: search
    ok &= ~(np.abs(added_rank - last) <= SEARCH_MARGIN).any(axis=(1, 2))           # at a list's edge: search
    # the window neighbour: the kept best window, or an added image's when it is better
    w_old = np.array([float(s["floors"][-1]) for s in st])
    o_old = np.array([int(at[s["window"][0]]) if s["window"][0] >= 0 else -1 for s in st], np.int64)
    x = wc.argmax(axis=1) if wc.shape[1] else np.zeros(len(st), np.int64)
    w_add = wc[np.arange(len(st)), x] if wc.shape[1] else np.full(len(st), -np.inf)
    ok &= ~(np.isfinite(w_add) & (np.abs(w_add - w_old) <= SEARCH_MARGIN))
    w = np.where(w_add > w_old, w_add, w_old)
    owner = np.where(w_add > w_old, added_rows[x] if len(added_rows) else -1, o_old)
    # each kNN list merged: kept entries, then entering added ones, best kk (stable: kept ties keep their order)
    kk = old_rank.shape[2]
    entering = np.where(added_rank < last, added_rank, np.inf)
    merged_rank = np.concatenate([old_rank.astype(np.float64), entering], axis=2)
    merged_i = np.concatenate([old_i, np.broadcast_to(added_rows, entering.shape)], axis=2)
    keep = np.argsort(merged_rank, axis=2, kind="stable")[:, :, :kk]
    new_rank = np.take_along_axis(merged_rank, keep, axis=2).astype(np.float32)
    new_i = np.take_along_axis(merged_i, keep, axis=2)
    new_added = keep >= kk
    # every row's entries in candidate_pairs' order: its hash matches, then the lists in order
    rows = np.flatnonzero(ok)
    if not len(rows):
        return {}
    hash_n = np.array([len(st[t]["hash_i"]) for t in rows.tolist()], np.int64)
    hash_b = np.repeat(np.arange(len(rows)), hash_n)
    hash_i = at[np.concatenate([st[t]["hash_i"] for t in rows.tolist()]).astype(np.int64)] if hash_n.sum() \
        else np.zeros(0, np.int64)
    hash_r = np.concatenate([st[t]["hash_rank"] for t in rows.tolist()]).astype(np.float32) if hash_n.sum() \
        else np.zeros(0, np.float32)
    list_src = np.broadcast_to(np.repeat(_list_sources(n_lists), kk), (len(rows), n_lists * kk)).ravel()
    list_b = np.repeat(np.arange(len(rows)), n_lists * kk)
    capped, decided = [], np.ones(len(rows), bool)
    for li, lr, la in ((old_i[rows], old_rank[rows], np.zeros(old_rank[rows].shape, bool)),
                       (new_i[rows], new_rank[rows], new_added[rows])):
        ia_all = np.r_[hash_i, li.reshape(-1)]
        ib_all = np.r_[hash_b, list_b]
        rank_all = np.r_[hash_r, lr.reshape(-1)].astype(np.float32)
        src_all = np.r_[np.zeros(len(hash_i), np.int64), list_src]
        ia_c, ib_c = rank_capped(ia_all, ib_all, rank_all, src_all, len(a), int(opts["max_candidates"]))
        bounds = np.searchsorted(ib_c, np.arange(len(rows) + 1))
        capped.append([ia_c[bounds[u]:bounds[u + 1]] for u in range(len(rows))])
        if la.any():  # the merged entries: decided by more than the margin?
            decided = _decided(ia_all, ib_all, rank_all, src_all,
                               np.r_[np.zeros(len(hash_i), bool), la.reshape(-1)], int(opts["max_candidates"]))
    out = {}
    changed = []
    for u, t in enumerate(rows.tolist()):
        if not decided[u]:
            continue
        if np.array_equal(capped[0][u], capped[1][u]) and owner[t] == o_old[t]:
            out[int(js[t])] = [int(i) for i in st[t]["position"]]  # nothing the ranking uses changed
        else:
            changed.append(u)
    if changed:  # the window neighbour joins when it beats every candidate's whole 16 px thumbnail
        c_ia = np.concatenate([capped[1][u] for u in changed]).astype(np.int64)
        c_ib = np.repeat(np.arange(len(changed)), [len(capped[1][u]) for u in changed])
        best_kept = np.full(len(changed), -np.inf)
        if len(c_ia):
            np.maximum.at(best_kept, c_ib, whole_frame_scores(a.z16, z16[rows[changed]], c_ia, c_ib).max(axis=1))
        for v, u in enumerate(changed):
            t = int(rows[u])
            j = int(js[t])
            cand = [int(i) for i in capped[1][u]]
            if owner[t] >= 0:
                if np.isfinite(best_kept[v]) and abs(w[t] - best_kept[v]) <= SEARCH_MARGIN:
                    continue  # not decided here: searched
                if w[t] > best_kept[v] and int(owner[t]) not in cand:
                    cand.append(int(owner[t]))
            # the search's own filter (image.py search): a training image with j's own content is no candidate
            out[j] = [i for i in cand if bytes(a.digest[i]) != bytes(b.digest[j])]
    return out


_DTYPES = (np.float64, np.float32, np.int32)


def _encode_state(split: bytes, cand_digests: list, arrays: dict) -> bytes:
    """The search state of one evaluation image: the training split's content key, its candidates'
    digests, then named arrays (floors, descriptors, entries) with their dtypes and shapes."""
    names = sorted(arrays)
    arrs = [np.ascontiguousarray(arrays[n]) for n in names]
    head = [len(cand_digests), len(names)]
    for n, x in zip(names, arrs):
        code = next(c for c, t in enumerate(_DTYPES) if x.dtype == t)
        head += [len(n.encode()), code, x.ndim, *x.shape]
    head = np.array(head, np.int64)
    return (len(head).to_bytes(8, "little") + head.tobytes() + split + b"".join(cand_digests)
            + b"".join(n.encode() for n in names) + b"".join(x.tobytes() for x in arrs))


def _state_layout(blob, n_head: int):
    """(number of candidates, [(name, dtype, shape, size, offset after the names)], length of the names) of a
    state's head; states of one audit share a few heads, so each is parsed once (_LAYOUTS)."""
    head = np.frombuffer(blob, np.int64, count=n_head, offset=8).tolist()
    n_cand, n_arrays, rest = head[0], head[1], head[2:]
    specs = []
    for _ in range(n_arrays):
        name_len, code, ndim = rest[:3]
        specs.append((name_len, np.dtype(_DTYPES[code]), tuple(rest[3:3 + ndim])))
        rest = rest[3 + ndim:]
    if rest:
        raise ValueError("state head too long")
    at = 8 + 8 * n_head + 16 + 16 * n_cand
    names_at, names_len = at, sum(n for n, _, _ in specs)
    names, arrays, offset = [], [], names_at + names_len
    for name_len, dtype, shape in specs:
        names.append(blob[at:at + name_len].decode())
        at += name_len
    for name, (_, dtype, shape) in zip(names, specs):
        size = math.prod(shape)
        arrays.append((name, dtype, shape, size, offset))
        offset += dtype.itemsize * size
    return n_cand, arrays, bytes(blob[names_at:names_at + names_len]), offset


_LAYOUTS: dict[bytes, tuple] = {}


def _decode_state(blob):
    """{"split", "candidates", and the named arrays} or None."""
    if not blob or len(blob) < 8:
        return None
    try:
        n_head = int.from_bytes(blob[:8], "little")
        head = blob[8:8 + 8 * n_head]
        layout = _LAYOUTS.get(head)
        if layout is None:
            layout = _state_layout(blob, n_head)
            if len(_LAYOUTS) < 1024:
                _LAYOUTS[head] = layout
        n_cand, arrays, names, end = layout
        at = 8 + 8 * n_head
        names_at = at + 16 + 16 * n_cand
        if end != len(blob) or blob[names_at:names_at + len(names)] != names:
            return None
        out = {"split": blob[at:at + 16]}
        at += 16
        out["candidates"] = [blob[at + 16 * i: at + 16 * (i + 1)] for i in range(n_cand)]
        for name, dtype, shape, size, offset in arrays:
            out[name] = np.frombuffer(blob, dtype, count=size, offset=offset).reshape(shape)
        return out
    except (ValueError, IndexError, TypeError, UnicodeDecodeError, StopIteration):
        return None


def _split_blob_key(content: bytes) -> bytes:
    return _key(b"search-split", content)


def _remember_search(cache, prefix: bytes, a, sub, candidates: list, opts: dict) -> None:
    """Keep the search state of each row of ``sub`` (just searched against ``a``): ``candidates[r]`` are
    row r's candidate positions in ``a``. ``a``'s digests are kept once, under its content key."""
    from .memo import split_key as _split_key

    k = int(opts["k"])
    if len(a) < max(k, 1) or any(d is None for d in a.digest) or any(d is None for d in sub.digest):
        return
    content = _split_key(a.digest)
    cache.put(STATE_KIND, _split_blob_key(content), b"".join(bytes(d) for d in a.digest))
    entries = _search_entries(a, sub, int(opts["radius"]), k)
    z16, spectra, discs = _descriptors(sub)
    for r, d in enumerate(sub.digest):
        hash_i, hash_rank = entries["hash"][r]
        cache.put(STATE_KIND, prefix + bytes(d), _encode_state(
            content, [bytes(a.digest[i]) for i in candidates[r]],
            {"floors": entries["floors"][r], "z16": z16[r], "spectra": spectra[r], "discs": discs[r],
             "hash_i": hash_i.astype(np.int32), "hash_rank": hash_rank.astype(np.float32),
             "list_i": entries["list_i"][r].astype(np.int32), "list_rank": entries["list_rank"][r].astype(np.float32),
             "window": np.array([entries["window"][r]], np.int32)}))


_STATE_ARRAYS = ("floors", "z16", "spectra", "discs", "hash_i", "hash_rank", "list_i", "list_rank", "window")


def _unchanged_candidates(cache, prefix: bytes, a, b, rows: np.ndarray, opts: dict,
                          stats: dict | None = None) -> dict[int, list[int]]:
    """{row of ``b``: its candidate positions in ``a``} for the rows whose kept search state was made
    against an earlier training split that ``a`` only added images to (same order, no digest twice in
    ``a``): the kept candidates when none of the added images can enter (:func:`_added_can_enter`),
    else the merge of the kept entries with the added images' when it is decided (:func:`_merged_candidates`)."""
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
        if state is not None and all(n in state for n in _STATE_ARRAYS):
            states[j] = state
    by_split: dict[bytes, list[int]] = {}
    for j, state in states.items():
        by_split.setdefault(state["split"], []).append(j)
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
        for j in js.tolist():
            states[j]["position"] = [position[d] for d in states[j]["candidates"]]
        z16 = np.stack([states[j]["z16"] for j in js.tolist()])
        spectra = np.stack([states[j]["spectra"] for j in js.tolist()])
        discs = np.stack([states[j]["discs"] for j in js.tolist()])
        floors = np.stack([states[j]["floors"] for j in js.tolist()])
        try:
            measured: dict = {}
            moved = _added_can_enter(added, z16, spectra, discs, floors, b.phash[js], b.windows[js], int(opts["radius"]),
                                     measured)
            merged = (_merged_candidates(a, b, js[moved], states, at, added_rows, added, opts,
                                         {k: v[moved] for k, v in measured.items()}) if MERGE_RANKED else {})
        except ValueError:  # descriptors of another shape (another thumbnail size): search
            continue
        for j, can in zip(js.tolist(), moved.tolist()):
            if not can:
                out[j] = states[j]["position"]
            elif j in merged:
                out[j] = merged[j]
        if merged and stats is not None:  # of eval_search_kept: those an added image entered a list of
            stats["eval_search_merged"] = stats.get("eval_search_merged", 0) + len(merged)
    return out
