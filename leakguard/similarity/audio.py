"""Audio backends of the similarity checks: augmented copies, shared segments, look-alikes.

Signature: :func:`leakguard.signatures.audio.spectral_frames` (log-frequency frames of the
sounding part, gain-normalised, noise-floored). Then:

1. **Candidates** (sub-quadratic): every recording is cut into windows of 16 sounding frames
   (about half a second), each summarised by the mean and spread of its semitone bands. Each
   evaluation window, slid by -3 to +3 semitones, asks a dense kNN index
   (:func:`leakguard.search.knn.nearest`, FAISS when installed) for its nearest training windows;
   the training recordings behind them, best first, are the candidates of that recording, with
   the pitch shifts at which they were hit.
2. **Verification** (:func:`leakguard.similarity.audio_align.align_many`, all pairs of a split in
   one batch): the two frame sequences are aligned over pitch shifts (half-semitone steps around
   the kNN hit), stretches (0.7 to 1.42) and offsets, comparing 160 ms patches of frames;
   frames matching on the best line give ``share`` (of the *longer* recording, so a short clip
   whose few words recur by chance in a long one is not a copy) and the longest matched stretch
   ``run_seconds``. Alignments are cached with the signatures (``AuditConfig(cache_dir=...)``),
   keyed by the two recordings' digests: a re-audit aligns only pairs it has not seen, the
   calibration pairs included.
3. **Decision**, with thresholds calibrated on the training split (each sampled training
   recording aligned with as many candidates among the *other* training recordings as an
   evaluation recording gets; the
   ``1 - fpr`` quantile of those scores, tail extrapolated):
   ``augmented_duplicate`` when ``reference_share`` (the share of the training recording's frames
   that the matched frames land on, in order; a phase vocoder's smeared word edges in a pitch-shifted
   or stretched copy do not count against it, as they do against ``share``) *less that training
   recording's chance level* passes (clipped to 0.25 .. 0.45) and the match spans at least
   ``min_coverage`` (0.7) of both recordings from its first to its last matched frame. The
   chance level is the best match the training recording has with *other* training recordings in
   the calibration alignments, or the best match the evaluation recording has with its other
   candidates, whichever is higher (pairs matching 0.7 or more are near-copies, not chance, and
   are left out): a monotone voice (espeak-ng) renders a phoneme the same way every time, so its other
   sentences match each other over 0.5-0.65 of their length, while another voice's stay under
   0.3; one fixed share cannot separate copies from other sentences for both. Training recordings
   that some evaluation recording may copy are aligned with their own candidates for that level;
   ``partial_duplicate`` when it is not such a copy, but a stretch of at least ``run_seconds`` (floor 1.5 s
   of sound: other sentences of one monotone voice match for up to about 1.1 s; at most 3 s) matches: a shared segment, as when one speaker of a two-speaker clip was replaced and
   the other one's part leaked.

4. ``semantic_duplicate`` (:func:`audio_semantic`): recordings that *sound alike overall*
   without sharing a segment, by cosine nearest neighbours of an embedding (default
   :class:`SpectralStatsEmbedder`, no download: per-band quiet-side levels (the steady background)
   that catch other excerpts of one
   recording or session; or the user's ``AuditConfig(embedder=callable)``), threshold calibrated
   on the training split's own nearest neighbours.

Every pair carries the transform that explains it: pitch shift in semitones, stretch factor,
offset, matched seconds. The stretch is that of the *sounding* parts: a phase vocoder smears
pauses into faint sound, so a librosa-stretched copy can read a step or two off the true factor.
Options (``AuditConfig(check_options=...)``): ``min_share`` / ``max_share`` (threshold floor
and cap, 0.25 / 0.45), ``level_weight`` (1.0; 0 decides on the raw share), ``level_cap`` (0.7) and
``min_run_seconds`` (augmented, off: a copy must also match for that long in one piece),
``min_seconds`` / ``max_seconds`` (partial), ``candidates`` (training recordings verified per
evaluation recording, 4), ``null_samples`` (training recordings used for calibration, 300),
``null_candidates`` (as ``candidates``).
"""
from __future__ import annotations

import numpy as np

from ..checks.similarity import register_backend
from ..signatures.audio import BANDS_PER_SEMITONE, FRAME_SECONDS, N_BANDS
from .audio_align import MAX_SHIFT_SEMITONES, STRONG_MATCH, Alignment, align_many
from .findings import linked_pairs, pair_finding, tail_threshold

WINDOW_FRAMES = 16
MEAN_WINDOW = 32      # frames either side of the moving mean removed from the candidates' frames (1 s)
WINDOW_HOP = 8
KNN_K = 4


def _pooled(frames: np.ndarray) -> np.ndarray:
    """Frames pooled to whole semitones (56 bands), minus the recording's mean pooled frame:
    windows are compared a semitone at a time, on how they differ from the recording's long-term
    spectrum (a speaker's steady voice, common to all of its utterances, would otherwise make
    them all each other's nearest neighbours and push the real source out of the candidates)."""
    f = np.asarray(frames, dtype=np.float32)
    p = f.reshape(len(f), N_BANDS // BANDS_PER_SEMITONE, BANDS_PER_SEMITONE).mean(axis=2)
    n = len(p)
    if n <= 2 * MEAN_WINDOW + 1:
        return p - p.mean(axis=0, keepdims=True) if n else p
    # a moving mean on longer recordings: in a clip of two speakers each part is measured against
    # its own speaker's average, so a part shared with another clip keeps its descriptors
    c = np.vstack([np.zeros((1, p.shape[1])), np.cumsum(p, axis=0, dtype=np.float64)])
    lo = np.clip(np.arange(n) - MEAN_WINDOW, 0, n)
    hi = np.clip(np.arange(n) + MEAN_WINDOW + 1, 0, n)
    return (p - (c[hi] - c[lo]) / (hi - lo)[:, None]).astype(np.float32)


def window_descriptors(frames: np.ndarray, shift: int = 0, pooled: np.ndarray | None = None) -> np.ndarray:
    """(windows, 2 * bands) mean and spread of each window of semitone-pooled frames.

    ``shift`` (semitones) moves the bands down by that much, so a query pitched up by ``shift``
    lines up with the original; bands that fall off the edge are zero. ``pooled``: the frames
    already through :func:`_pooled` (a query is described at 7 shifts: pooled once).
    """
    p = _pooled(frames) if pooled is None else pooled
    if len(p) == 0:
        return np.zeros((0, 2 * p.shape[1]), dtype=np.float32)
    if shift:
        out = np.zeros_like(p)
        if shift > 0:
            out[:, :-shift] = p[:, shift:]
        else:
            out[:, -shift:] = p[:, :shift]
        p = out
    if len(p) < WINDOW_FRAMES:
        return np.concatenate([p.mean(axis=0), p.std(axis=0)])[None, :].astype(np.float32)
    from numpy.lib.stride_tricks import sliding_window_view

    win = sliding_window_view(p, WINDOW_FRAMES, axis=0)[::WINDOW_HOP]      # (windows, bands, frames)
    return np.concatenate([win.mean(axis=2), win.std(axis=2)], axis=1).astype(np.float32)


def _index(signatures: list, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Window descriptors of all recordings and the recording (position in ``ids``) of each."""
    descs, owner = [], []
    for pos, i in enumerate(ids):
        d = window_descriptors(signatures[i])
        descs.append(d)
        owner.append(np.full(len(d), pos, dtype=np.int64))
    if not descs:
        return np.zeros((0, 2 * N_BANDS // BANDS_PER_SEMITONE), np.float32), np.zeros(0, np.int64)
    return np.concatenate(descs), np.concatenate(owner)


def query_windows(query_frames: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window descriptors of query recordings at every semitone shift (-3 .. +3): ``(descriptors,
    query position, shift)`` per row, recording by recording, shift by shift."""
    max_shift = int(MAX_SHIFT_SEMITONES)
    q_desc, q_owner, q_shift = [], [], []
    for pos, frames in enumerate(query_frames):
        if frames is None or len(frames) == 0:
            continue
        pooled = _pooled(frames)
        for shift in range(-max_shift, max_shift + 1):
            d = window_descriptors(frames, shift, pooled=pooled)
            q_desc.append(d)
            q_owner.append(np.full(len(d), pos, dtype=np.int64))
            q_shift.append(np.full(len(d), shift, dtype=np.int64))
    if not q_desc:
        return (np.zeros((0, 2 * N_BANDS // BANDS_PER_SEMITONE), np.float32), np.zeros(0, np.int64),
                np.zeros(0, np.int64))
    return np.concatenate(q_desc), np.concatenate(q_owner), np.concatenate(q_shift)


def knn_k(n_index_windows: int, exclude: bool) -> int:
    """Neighbours asked per query window (two more when the query's own recording is in the index)."""
    return min(KNN_K + (2 if exclude else 0), n_index_windows)


def pick_candidates(n_queries: int, q_owner, q_shift, sims, rec, valid, n_candidates: int,
                    exclude: list | None = None) -> list[list[tuple[int, int]]]:
    """Per query recording, up to ``n_candidates`` (index recording, semitone shift), best first,
    from its windows' nearest index windows: ``sims`` (query windows, k) similarities, ``rec`` the
    index recording behind each neighbour, ``valid`` where a neighbour was found."""
    k = sims.shape[1]
    out: list[list[tuple[int, int]]] = [[] for _ in range(n_queries)]
    flat_q = np.repeat(q_owner, k)
    flat_rec = rec.ravel()
    flat_s = sims.ravel()
    flat_shift = np.repeat(q_shift, k)
    valid = valid.ravel()
    order = np.lexsort((-flat_s, flat_q))
    for o in order[valid[order]]:
        q, r = int(flat_q[o]), int(flat_rec[o])
        if exclude is not None and exclude[q] == r:
            continue
        found = out[q]
        if len(found) < n_candidates and all(r != fr for fr, _ in found):
            found.append((r, int(flat_shift[o])))
    return out


def candidates(index_desc, index_owner, query_frames: list, n_candidates: int,
               exclude: list | None = None) -> list[list[tuple[int, int]]]:
    """Per query recording: up to ``n_candidates`` (index recording position, semitone shift), best first."""
    from ..search.knn import nearest

    q_desc, q_owner, q_shift = query_windows(query_frames)
    if not len(q_desc) or not len(index_desc):
        return [[] for _ in query_frames]
    k = knn_k(len(index_desc), exclude is not None)
    sims, idx = nearest(index_desc, q_desc, k=k, metric="cosine")
    rec = index_owner[np.maximum(idx, 0)]
    return pick_candidates(len(query_frames), q_owner, q_shift, sims, rec, idx >= 0, n_candidates, exclude)


ALIGN_VERSION = "8"   # bump when the alignment's scores change: cached alignments are keyed by it
VERIFY_SEMITONES = 1.0  # the kNN hit fixes the pitch shift to within a semitone
LEVEL_WEIGHT = 1.0      # share of a training recording's chance-match level taken off its pairs' scores
LEVEL_CAP = 0.7         # calibration pairs matching this much are near-copies, not chance: no level
MIN_SHARE = 0.25        # floor of the augmented threshold (on the level-corrected share)
MAX_SHARE = 0.45        # cap of the augmented threshold
MIN_COVERAGE = 0.7      # first-to-last matched frame, share of each recording, for a whole copy
MIN_SECONDS = 1.5       # floor of the partial threshold on the longest matched stretch
MAX_SECONDS = 3.0       # its cap
# floor and cap of the partial threshold on the longest *strong* stretch (patches correlating at
# STRONG_MATCH or more, the same sound sample for sample): chance stretches of another sentence by
# one monotone espeak voice reach 0.77 s at that quality (1.5 s at the ordinary one), a leaked
# segment is near 1.0 all along
MIN_STRONG_SECONDS = 1.0
MAX_STRONG_SECONDS = 2.0


def _verify_pairs(ctx, pairs: list[tuple[int, str, int, int, int]]) -> list[Alignment]:
    """Alignments of ``(train index, other split, index, semitone hint)`` pairs, read from the
    signature cache when an earlier audit aligned the same two recordings, else aligned in one
    batch (:func:`~leakguard.similarity.audio_align.align_many`) and cached.

    Keys are the two recordings' content digests plus the hint, so a re-audit of a grown dataset
    aligns only the pairs it has not seen.
    """
    train = ctx.train
    t_sigs = ctx.signatures.get(train, "spectral_frames")
    cache = getattr(ctx.signatures, "cache", None)
    keys = [None] * len(pairs)
    out: list[Alignment | None] = [None] * len(pairs)
    if cache is not None:
        digests = {name: ctx.signatures.get(name, "digest") for name in {train, *(p[1] for p in pairs)}}
        for k, (a, split_b, b, hint) in enumerate(pairs):
            da, db = digests[train][a], digests[split_b][b]
            if da is not None and db is not None:
                keys[k] = bytes(da) + bytes(db) + int(hint).to_bytes(1, "little", signed=True)
        kind = f"audio/alignment/{ALIGN_VERSION}"
        found = cache.get_many(kind, [k for k in keys if k is not None])
        for k, key in enumerate(keys):
            if key in found:
                out[k] = Alignment.from_array(np.frombuffer(found[key], dtype=np.float64))
    todo = [k for k, a in enumerate(out) if a is None]
    sigs = {name: ctx.signatures.get(name, "spectral_frames") for name in {p[1] for p in pairs}}
    fresh = align_many([(t_sigs[pairs[k][0]], sigs[pairs[k][1]][pairs[k][2]], pairs[k][3] * BANDS_PER_SEMITONE)
                        for k in todo], max_semitones=VERIFY_SEMITONES)
    for k, a in zip(todo, fresh):
        out[k] = a
        if cache is not None and keys[k] is not None:
            cache.put(f"audio/alignment/{ALIGN_VERSION}", keys[k], a.to_array().tobytes())
    return out


def _rank(a: Alignment) -> tuple:
    """Better alignment first: more matched, then the simpler transform."""
    return (round(a.share, 6), round(a.run_seconds, 6), -abs(a.semitones), -abs(a.stretch - 1.0))


def _levels(null_pairs: list, cap: float) -> dict:
    """Per training recording: the ``(other recording, reference_share)`` pairs of the calibration
    alignments it takes part in (as query or as candidate), leaving out pairs at or above ``cap``
    (near-copies inside the training split are not chance matches)."""
    out: dict = {}
    for a_idx, b_idx, al in null_pairs:
        if al.reference_share < cap:
            out.setdefault(a_idx, []).append((b_idx, al.reference_share))
            out.setdefault(b_idx, []).append((a_idx, al.reference_share))
    return out


def _level(levels: dict, idx: int, leave_out: int | None = None) -> float:
    """How much of training recording ``idx`` other training recordings match by chance (the best
    calibration match it takes part in, the pair with ``leave_out`` left out)."""
    return max((v for other, v in levels.get(int(idx), ()) if other != leave_out), default=0.0)


def _runner_up(shares: list, best: float, cap: float) -> float:
    """The query's own chance level: the best share among its *other* candidates (under ``cap``:
    a second near-copy is not chance)."""
    rest = sorted(shares, reverse=True)
    if best in rest:
        rest.remove(best)
    return max((v for v in rest if v < cap), default=0.0)


class LocalAudioSearch:
    """The searches :func:`_alignments` runs, on the signatures of the local engine's store.

    The Spark engine passes its own (:mod:`leakguard.search.spark_audio`): the same four calls,
    with the window kNN and the alignments run in the executors.
    """

    def __init__(self, ctx):
        self.ctx = ctx
        self.t_sigs = ctx.signatures.get(ctx.train, "spectral_frames")

    def ids(self, split: str) -> np.ndarray:
        """The recordings of ``split`` long enough to align (8 sounding frames or more)."""
        sigs = self.ctx.signatures.get(split, "spectral_frames")
        return np.array([i for i, s in enumerate(sigs) if s is not None and len(s) >= 8], dtype=np.int64)

    def index(self, t_ids: np.ndarray) -> None:
        self.t_desc, self.t_owner = _index(self.t_sigs, t_ids)

    def candidates(self, split: str, ids, n_candidates: int, exclude=None):
        """:func:`candidates` of recordings ``ids`` of ``split`` among the indexed training ones."""
        sigs = self.ctx.signatures.get(split, "spectral_frames")
        return candidates(self.t_desc, self.t_owner, [sigs[i] for i in ids], n_candidates, exclude=exclude)

    def same_frames(self, pairs) -> list[bool]:
        """Per ``(training index, training index)``: whether their frames are identical."""
        return [bool(np.array_equal(self.t_sigs[a], self.t_sigs[b])) for a, b in pairs]

    def verify(self, jobs) -> list:
        return _verify_pairs(self.ctx, jobs)


def _alignments(ctx, search=None) -> dict:
    """Candidates, alignments and calibrated thresholds, computed once for both audio checks.

    The augmented decision reads the share of the training recording matched in order *minus how
    much that training recording matches other training recordings by chance* (its "level"): one
    monotone voice renders a phoneme the same way every time, so its other sentences match each
    other up to 0.6 of a recording (espeak-ng), while another voice's stay under 0.3; one fixed
    share cannot serve both. The level comes from the calibration alignments (each training
    recording aligned with its nearest other training recordings), so it costs alignments only
    for training recordings that some evaluation recording could be a copy of.
    """
    key = ("audio", "alignments")
    if key in ctx.shared:
        return ctx.shared[key]
    from threadpoolctl import threadpool_limits

    aug_opts = ctx.config.options("augmented_duplicate")
    part_opts = ctx.config.options("partial_duplicate")
    n_cand = int(aug_opts.get("candidates", part_opts.get("candidates", 4)))
    n_null_cand = int(aug_opts.get("null_candidates", n_cand))
    level_weight = float(aug_opts.get("level_weight", LEVEL_WEIGHT))
    level_cap = float(aug_opts.get("level_cap", LEVEL_CAP))
    min_share = float(aug_opts.get("min_share", MIN_SHARE))
    min_coverage = float(aug_opts.get("min_coverage", MIN_COVERAGE))
    train = ctx.train
    search = LocalAudioSearch(ctx) if search is None else search
    t_ids = search.ids(train)
    t_pos = {int(i): p for p, i in enumerate(t_ids)}
    search.index(t_ids)
    result = {"train_ids": t_ids, "splits": {}}
    # small matrices: BLAS threads only add overhead (and thrash on a busy machine)
    with threadpool_limits(1):
        # 1. evaluation recordings against their candidates
        evaluated = {}
        for name in ctx.splits.eval_names:
            e_ids = search.ids(name)
            cands = search.candidates(name, e_ids, n_cand)
            jobs = [(int(t_ids[r]), name, int(e_ids[e_pos]), shift)
                    for e_pos, found in enumerate(cands) for r, shift in found]
            best, shares = {}, {}
            for (a_idx, _, b_idx, _), a in zip(jobs, search.verify(jobs)):
                shares.setdefault(b_idx, []).append(a.reference_share)
                if b_idx not in best or _rank(a) > _rank(best[b_idx][1]):
                    best[b_idx] = (a_idx, a)
            evaluated[name] = {b: (a_idx, a, _runner_up(shares[b], a.reference_share, level_cap))
                               for b, (a_idx, a) in best.items()}
        # 2. calibration: sampled training recordings (the null of the threshold) and every training
        # recording some evaluation recording might copy (for its level) against their best *other*
        # training recordings, with as many candidates as an evaluation recording gets: the null
        # must have as many chances to find a look-alike as a clean evaluation recording has
        rng = np.random.default_rng(ctx.config.random_state)
        n_null = min(len(t_ids), int(aug_opts.get("null_samples", 300)))
        sample = np.sort(rng.choice(len(t_ids), size=n_null, replace=False)) if n_null else np.zeros(0, int)
        # (a level only lowers a score: a pair under the floor, or a partial match, needs none)
        fixed = ctx.config.thresholds
        floor = min(min_share, float(fixed.get("augmented_duplicate", min_share)))
        needed = {t_pos[a_idx] for best in evaluated.values() for a_idx, a, _ in best.values()
                  if a.reference_share >= floor and a.coverage >= min_coverage and a_idx in t_pos}
        queries = np.array(sorted(set(sample.tolist()) | needed), dtype=np.int64)
        in_sample = set(sample.tolist())
        cands = search.candidates(train, t_ids[queries], n_null_cand, exclude=list(queries))
        found_pairs = [(int(p), r, shift) for p, found in zip(queries, cands) for r, shift in found]
        same = search.same_frames([(int(t_ids[r]), int(t_ids[p])) for p, r, _ in found_pairs])
        jobs, owner = [], []
        for (p, r, shift), copy in zip(found_pairs, same):
            if copy:
                continue  # exact copies inside the training split are not the null
            jobs.append((int(t_ids[r]), train, int(t_ids[p]), shift))
            owner.append(int(p))
        null_al = search.verify(jobs)
        levels = _levels([(j[0], j[2], a) for j, a in zip(jobs, null_al)], level_cap)
        best_null: dict = {}
        null_shares: dict = {}
        for p, (a_idx, _, b_idx, _), a in zip(owner, jobs, null_al):
            if p in in_sample:
                null_shares.setdefault(p, []).append(a.reference_share)
                if p not in best_null or _rank(a) > _rank(best_null[p][1]):
                    best_null[p] = (a_idx, a)
        null_share, null_run, null_strong = [], [], []
        for p in sample:
            a_idx, a = best_null.get(int(p), (None, Alignment()))
            b_idx = int(t_ids[p])
            # the null pair itself is left out of its reference's level, as an evaluation
            # recording is not among the training split's calibration pairs
            lev = _level(levels, a_idx, leave_out=b_idx) if a_idx is not None else 0.0
            lev = max(lev, _runner_up(null_shares.get(int(p), []), a.reference_share, level_cap))
            null_share.append(a.reference_share - level_weight * lev)
            null_run.append(a.run_seconds)
            null_strong.append(a.strong_run_seconds)
        fpr = ctx.config.fpr
        # floors: below them a match means nothing; caps: a training split holding its own
        # near-copies (or a tiny one, whose tail is a guess) must not switch the checks off
        result["share_threshold"] = float(fixed.get("augmented_duplicate", np.clip(
            tail_threshold(null_share, fpr, default=0.35), min_share,
            float(aug_opts.get("max_share", MAX_SHARE)))))
        result["run_threshold"] = float(fixed.get("partial_duplicate", np.clip(
            tail_threshold(null_run, fpr, default=MIN_SECONDS), float(part_opts.get("min_seconds", MIN_SECONDS)),
            float(part_opts.get("max_seconds", MAX_SECONDS)))))
        # a shared segment is also one that matches *closely* for a shorter time: a leaked part
        # is the same sound (patch correlation near 1), while chance stretches of another
        # utterance, even by one monotone voice, match loosely (0.8-0.9). Calibrated on the null's
        # strong stretches; a threshold the user fixed applies to both (a strong stretch is never
        # longer than the matched one)
        result["strong_threshold"] = float(fixed.get("partial_duplicate", np.clip(
            tail_threshold(null_strong, fpr, default=MIN_STRONG_SECONDS),
            float(part_opts.get("min_strong_seconds", MIN_STRONG_SECONDS)),
            float(part_opts.get("max_strong_seconds", MAX_STRONG_SECONDS)))))
        result["strong_null"] = np.asarray(null_strong)
        result["null_size"] = len(null_share)
        result["null"] = (np.asarray(null_share), np.asarray(null_run))
        result["level_weight"] = level_weight
        for name, best in evaluated.items():
            result["splits"][name] = [
                (a_idx, b_idx, a, a.reference_share - level_weight * max(_level(levels, a_idx), runner_up))
                for b_idx, (a_idx, a, runner_up) in sorted(best.items())]
    ctx.shared[key] = result
    return result


def _transform(a: Alignment) -> str:
    parts = []
    if a.semitones:
        parts.append(f"pitch {a.semitones:+.1f} st")
    if a.stretch != 1.0:
        parts.append(f"tempo x{a.stretch:.2f}")
    return ", ".join(parts) or "same pitch and tempo"


def _finding(ctx, check, rows, name, threshold, kind):
    if not rows:
        return None
    ta = [r[0] for r in rows]
    eb = [r[1] for r in rows]
    al = [r[2] for r in rows]
    extra_cols = {}
    if kind == "augmented":
        scores = [round(r[3], 4) for r in rows]
        how = ("are copies of training recordings under gain, noise, time shift, added or removed "
               "silence, pitch shift or time stretch: aligned frame by frame, most of the training "
               "recording reappears in order, over most of both recordings, well beyond what other "
               "recordings of the training split match of it by chance.")
        score_name = "matched share of the training recording, less its chance level"
        extra_cols = {"matched_share": [round(a.reference_share, 4) for a in al],
                      "chance_level": [round((a.reference_share - r[3]) / max(
                          ctx.shared[("audio", "alignments")]["level_weight"], 1e-9), 4) for a, r in zip(al, rows)]}
    else:
        scores = [round(a.query_share, 4) for a in al]
        strong = ctx.shared[("audio", "alignments")]["strong_threshold"]
        how = (f"share a segment with a training recording (for example one speaker's part of a "
               f"two-speaker clip): at least {threshold:.1f} s of sound matching in one stretch, or "
               f"{strong:.1f} s matching as the same sound (patch correlation >= {STRONG_MATCH:g}); "
               "the score is the share of the evaluation recording inside the shared segment.")
        score_name = "share of the evaluation recording in the shared segment"
        extra_cols = {"strong_seconds": [round(a.strong_run_seconds, 3) for a in al]}
    return pair_finding(
        ctx, check.name, ctx.train, name, ta, eb, scores, what="recordings", how=how,
        threshold=threshold, score_name=score_name,
        default_severity="critical" if kind == "augmented" else "warning",
        pairs_extra={"transform": [_transform(a) for a in al],
                     "semitones": [a.semitones for a in al], "stretch": [a.stretch for a in al],
                     "matched_seconds": [round(a.run_seconds, 3) for a in al],
                     "offset_seconds": [round(a.offset_seconds, 3) for a in al], **extra_cols},
        extra={"null_size": ctx.shared[("audio", "alignments")]["null_size"],
               "frame_seconds": FRAME_SECONDS})


def _is_copy(ctx, row, share_threshold: float) -> bool:
    """A whole copy: enough of it matches beyond the training recording's chance level, and the
    match spans most of both recordings (a shared segment, such as one speaker's half of a
    two-speaker clip, spans only its part)."""
    min_coverage = float(ctx.config.options("augmented_duplicate").get("min_coverage", MIN_COVERAGE))
    return row[3] >= share_threshold and row[2].coverage >= min_coverage


@register_backend("augmented_duplicate", "audio", needs={"spectral_frames"})
def audio_augmented(ctx, check) -> list:
    res = _alignments(ctx)
    findings = []
    for name, rows in res["splits"].items():
        known = linked_pairs(ctx, ctx.train, name)
        # optional: ask a copy to match in one long stretch too (at most half the recording). Off
        # by default: noise-filled pauses break a noisy copy's runs as short as another
        # utterance's (0.35 s on numpy speech), so it buys precision on monotone voices with recall
        min_run = float(ctx.config.options(check.name).get("min_run_seconds", 0.0))
        hit = [r for r in rows if _is_copy(ctx, r, res["share_threshold"]) and (r[0], r[1]) not in known
               and r[2].run_seconds >= min(min_run, 0.5 * r[2].query_seconds)]
        f = _finding(ctx, check, hit, name, res["share_threshold"], "augmented")
        if f is not None:
            findings.append(f)
    return findings


@register_backend("partial_duplicate", "audio", needs={"spectral_frames"})
def audio_partial(ctx, check) -> list:
    res = _alignments(ctx)
    findings = []
    for name, rows in res["splits"].items():
        known = linked_pairs(ctx, ctx.train, name)
        known_b = {b for _, b in known}
        hit = [r for r in rows if not _is_copy(ctx, r, res["share_threshold"])
               and (r[2].run_seconds >= res["run_threshold"]
                    or r[2].strong_run_seconds >= res["strong_threshold"])
               and r[1] not in known_b]
        f = _finding(ctx, check, hit, name, res["run_threshold"], "partial")
        if f is not None:
            findings.append(f)
    return findings


# ------------------------------------------------------------------ semantic duplicates (embeddings)

class SpectralStatsEmbedder:
    """Default audio embedder (no download, no torch): statistics of the log-band spectrogram.

    Called with canonical audio items (``(wave, rate)`` pairs), it returns one float32 row per
    recording, :func:`~leakguard.signatures.audio.spectral_stats`: per band two semitones wide (28
    bands, 150 Hz to 3.8 kHz) the 10th, 20th and 30th percentiles of the level over every frame
    within 40 dB of the loud ones (84 numbers, the recording's mean level subtracted). It describes the
    recording's *steady background* (room, machine, wind, the floor under a soundscape's events)
    and nothing about *in what order* or *how often* the foreground sounds happen: one excerpt of
    a recording keeps its background when its events change.

    **It catches** recordings of the same source and session: two excerpts of one long
    recording that share no segment (a soundscape, a machine, a room, cut into clips that landed
    in both splits), a copy whose segments were rearranged. Sound with no steady part has nothing
    for it to hold on to: excerpts of a music-like clip of random notes over silence were found by
    neither this nor the earlier (foreground) statistics.
    **It does not catch** meaning: the same words by another speaker, another recording of the
    same kind of sound. Recordings made at one place with one steady background also look alike
    under it (usually the same session, not always), and so do clean recordings with no background
    at all (digital silence between words: the quiet side is then the speaker's quiet sounds), so
    on a data set of few speakers or places the calibrated threshold is high and it reports only
    the closest pairs. For meaning, pass a learned model as ``AuditConfig(embedder=callable)``
    (a callable ``(list of (wave, rate)) -> (n, d) array``, e.g. wav2vec 2.0 or CLAP features
    when you have their weights).

    >>> import numpy as np
    >>> t = np.arange(16000) / 16000
    >>> clip = (np.sin(2 * np.pi * 440 * t) * np.hanning(16000)).astype(np.float32)
    >>> SpectralStatsEmbedder()([(clip, 16000)]).shape
    (1, 84)
    """

    name = "spectral_stats"

    def __call__(self, items) -> np.ndarray:
        from ..signatures.audio import STATS_PERCENTILES, STATS_SEMITONES, spectral_stats

        if not len(items):
            return np.zeros((0, len(STATS_PERCENTILES) * N_BANDS // (STATS_SEMITONES * BANDS_PER_SEMITONE)),
                            np.float32)
        return np.stack([spectral_stats(item) for item in items]).astype(np.float32)


AUDIO_EMBEDDERS = {"spectral_stats": SpectralStatsEmbedder}


def audio_embedder(spec):
    """An embedder from ``AuditConfig.embedder``: None / "spectral_stats" (default) or a callable."""
    from ..errors import InputError

    if spec is None:
        return SpectralStatsEmbedder()
    if isinstance(spec, str):
        if spec not in AUDIO_EMBEDDERS:
            raise InputError(f"unknown audio embedder {spec!r}; built in: {sorted(AUDIO_EMBEDDERS)}, "
                             "or pass a callable (list of (wave, rate)) -> (n, d) array")
        return AUDIO_EMBEDDERS[spec]()
    if not callable(spec):
        raise InputError(f"embedder must be a callable or a name, got {type(spec).__name__}")
    return spec


def _audio_embeddings(ctx, split: str, embedder) -> tuple[np.ndarray, np.ndarray]:
    """(indices, embeddings) of the readable recordings of ``split`` with some sound."""
    from ..errors import InputError

    stats = ctx.signatures.get(split, "spectral_stats")
    ids = np.array([i for i, s in enumerate(stats) if s is not None and np.isfinite(s).all()], dtype=np.int64)
    if not len(ids):
        return ids, np.zeros((0, 1), np.float32)
    if isinstance(embedder, SpectralStatsEmbedder):  # the cached signature: no second decode
        return ids, np.stack([stats[i] for i in ids]).astype(np.float32)
    from ..sources import canonical_item

    src = ctx.splits[split].source
    emb = np.asarray(embedder([canonical_item(src.load(int(i)), "audio") for i in ids]), dtype=np.float32)
    if emb.ndim != 2 or len(emb) != len(ids):
        raise InputError(f"the audio embedder returned shape {emb.shape} for {len(ids)} recordings "
                         f"of split {split!r}; expected (n, d)")
    return ids, emb


@register_backend("semantic_duplicate", "audio", needs={"spectral_stats", "digest"})
def audio_semantic(ctx, check) -> list:
    """Evaluation recordings whose embedding is closer to a training recording's than training
    recordings ever are to each other (cosine, threshold at the ``1 - fpr`` quantile of the
    training split's nearest-neighbour similarities, tail extrapolated; exact copies left out).

    The default embedder's 84 statistics are standardised on the training split first (each
    dimension to zero mean and unit spread, so loud low bands do not outvote the rest); a user's
    embedder is used as it is. Recordings already linked by the exact, augmented or partial checks
    are not reported again.
    """
    from ..search.knn import nearest
    from .calibration import null_scores

    embedder = audio_embedder(ctx.config.embedder)
    train = ctx.train
    t_ids, t_emb = _audio_embeddings(ctx, train, embedder)
    if len(t_ids) < 3:
        return []
    standardise = isinstance(embedder, SpectralStatsEmbedder)
    if standardise:
        mu, sd = standard_scale(t_emb.mean(axis=0), t_emb.std(axis=0))
        t_emb = (t_emb - mu) / sd

    def null():
        digests = [ctx.signatures.get(train, "digest")[i] for i in t_ids]
        return null_scores(t_emb, metric="cosine", exact_keys=digests, random_state=ctx.config.random_state)

    threshold, source, n_null = semantic_audio_threshold(ctx, check.name, null)
    findings = []
    for name in ctx.splits.eval_names:
        e_ids, e_emb = _audio_embeddings(ctx, name, embedder)
        if not len(e_ids):
            continue
        if standardise:
            e_emb = (e_emb - mu) / sd
        sims, idx = nearest(t_emb, e_emb, k=1, metric="cosine")
        sims, idx = sims[:, 0].astype(np.float64), idx[:, 0]
        f = semantic_audio_finding(ctx, check.name, name, np.where(idx >= 0, t_ids[idx], -1), e_ids, sims,
                                   threshold, source, n_null, embedder)
        if f is not None:
            findings.append(f)
    return findings


def standard_scale(mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The default embedding's standardisation from its training mean and spread (flat dimensions
    keep spread 1)."""
    return mean, np.where(std > 1e-6, std, 1.0)


def semantic_audio_threshold(ctx, check_name: str, null) -> tuple[float, str, int]:
    """(threshold, where it comes from, null size) of the audio ``semantic_duplicate`` check;
    ``null()`` gives the training split's nearest-neighbour cosines, asked only when calibrating."""
    from .calibration import calibrated_threshold

    fixed = ctx.config.thresholds.get(check_name)
    if fixed is not None:
        return float(fixed), "threshold set by the user", 0
    scores = null()
    n_null = len(scores)
    # floor: under it two recordings are merely alike (one speaker, one kind of sound)
    threshold = max(float(ctx.config.options(check_name).get("min_cosine", 0.8)),
                    calibrated_threshold(scores, ctx.config.fpr, default=0.99, extrapolate="fisher"))
    return threshold, f"calibrated on {n_null} training recordings, fpr {ctx.config.fpr:g}", n_null


def semantic_audio_finding(ctx, check_name: str, name: str, t_idx, e_ids, sims, threshold: float, source: str,
                           n_null: int, embedder):
    """The finding of the audio ``semantic_duplicate`` check on split ``name``: per evaluation
    recording ``e_ids[j]`` its nearest training recording ``t_idx[j]`` (-1: none) at cosine
    ``sims[j]``; pairs at or above ``threshold`` not linked by an earlier check (also the Spark engine's)."""
    train = ctx.train
    linked_b = {b for _, b in linked_pairs(ctx, train, name)}
    t_idx, e_ids, sims = np.asarray(t_idx, np.int64), np.asarray(e_ids, np.int64), np.asarray(sims, np.float64)
    hit = (sims >= threshold) & (t_idx >= 0) & np.array([int(e) not in linked_b for e in e_ids], dtype=bool)
    return pair_finding(
        ctx, check_name, train, name, t_idx[hit], e_ids[hit], np.round(sims[hit], 4),
        what="recordings",
        how=(f"sound like a training recording overall without sharing a segment with it: their "
             f"embeddings ({getattr(embedder, 'name', type(embedder).__name__)}) are closer "
             f"(cosine >= {threshold:.3f}, {source}) than training recordings are to each other; "
             "typically another excerpt of the same recording or session."),
        threshold=threshold, score_name="cosine similarity", default_severity="warning",
        remedy=("Split by recording, session or speaker (groups=), or re-split with lg.resplit(); "
                "listen to the pairs in the report."),
        extra={"embedder": getattr(embedder, "name", type(embedder).__name__), "null_size": n_null})
