"""Verification of audio candidate pairs: align two spectral-frame sequences under pitch and tempo.

Given two signatures from :func:`leakguard.signatures.audio.spectral_frames` (z-normalised
log-frequency frames of the sounding part), :func:`align_many` searches pitch shifts (slides along
the band axis, half a semitone per band) and time stretches (resamples the frame axis), and for
each scores every time offset (a slanted line through the frame-correlation matrix) by the
frames that match on it. It returns the best alignment per pair: how much of the longer
recording it covers (``share``), the longest matched stretch in seconds (``run_seconds``), the
share of the query inside the match, and the pitch shift (semitones), stretch factor and offset
(seconds) that explain the match.

Frames of one speaker look alike one by one (a vowel is a vowel, and a synthetic or monotone
voice renders a vowel the same way every time), so a single matching frame means nothing. What
separates a copy from another utterance is many matching frames *in order on one line*:

- frames are compared as **patches**: the correlation of two frames is averaged with that of
  their neighbours along the line (5 frames, 160 ms), so a match needs the same *transition*
  between sounds, not just the same vowel;
- the share is taken of the **longer** recording, so a short training clip whose few words recur
  by chance inside a long evaluation clip does not look like a whole copy;
- the matched line may move only a little (3 frames at a time, 10 frames' worth of matches per
  move), enough for a pause of noise inserted in one recording, too costly to stitch chance
  matches of unrelated words together.

All refined candidate lines of all pairs go through one batched dynamic-programming pass
(:func:`_best_paths`), so verification costs a few vector operations per frame for the whole
batch instead of per pair.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..signatures.audio import BANDS_PER_SEMITONE, FRAME_SECONDS

# a phase vocoder smears word edges into extra sounding frames, so a copy stretched by 1.15 (or a
# pitch-shifted one) can read 1.3-1.4x its source's sounding length: the range reaches 1.42
DEFAULT_STRETCHES = (0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.17, 1.25, 1.33, 1.42)
MAX_SHIFT_SEMITONES = 3.0
PATCH_FRAMES = 5                        # frames averaged along the line: a 160 ms patch
MAX_GAP = 2                             # frames a matched run may skip (a noisy frame, a click)
MAX_JUMP = 3                            # frames the alignment may move between two query frames
JUMP_PENALTY = 10.0                     # matched frames a move must win to be worth it (at most)
# a move by d lines costs STEP_PENALTY * d (capped at JUMP_PENALTY): a pause that became sound in
# one recording (noise filling it, a phase vocoder's smear, another recording's silence level)
# inserts a frame or two at every pause, and a flat 10 per move let such a copy fall back to a
# wrong straight stretch (an espeak noise copy matched 0.61 of its source at x1.25, 0.73 with this)
STEP_PENALTY = 3.0
SOFT_MATCH = (0.6, 0.95)                # patch correlation counted as no match .. a full match
STRONG_MATCH = 0.9                      # patch correlation of the same sound (a leaked segment)
CACHED_SLICES = 1024                    # re-normalised band slices kept per align_many call (~45 KB each)
BATCH_CELLS = 6_000_000                 # lines x frames x candidates per batched pass (~24 MB)
LINE_BAND = 48                          # lines either side of the coarse best one the path may use


@dataclass
class Alignment:
    share: float = 0.0          # matched frames / frames of the longer recording (time-scaled)
    run_seconds: float = 0.0    # longest matched stretch, in seconds of the query
    query_share: float = 0.0    # matched frames / frames of the query
    correlation: float = 0.0    # mean patch correlation over the matched stretch
    semitones: float = 0.0      # pitch shift of the query relative to the reference
    stretch: float = 1.0        # query duration / reference duration
    offset_seconds: float = 0.0  # where the query starts in the reference (sounding time)
    query_seconds: float = 0.0  # sounding duration of the query
    coverage: float = 0.0       # first-to-last matched frame, share of each recording (the smaller)
    reference_share: float = 0.0  # distinct reference frames the matched query frames land on / reference frames
    strong_run_seconds: float = 0.0  # longest stretch whose patches match at STRONG_MATCH or more

    def to_array(self) -> np.ndarray:
        return np.array([self.share, self.run_seconds, self.query_share, self.correlation,
                         self.semitones, self.stretch, self.offset_seconds, self.query_seconds,
                         self.coverage, self.reference_share, self.strong_run_seconds],
                        dtype=np.float64)

    @classmethod
    def from_array(cls, values) -> "Alignment":
        return cls(*(float(v) for v in values))


def _renormalize(x: np.ndarray) -> np.ndarray:
    z = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((z * z).mean(axis=1, keepdims=True))
    return z / np.where(sd > 1e-6, sd, 1.0)


def _runs(mask: np.ndarray, max_gap: int) -> tuple[int, int, int]:
    """(longest run length allowing gaps of ``max_gap``, its start, its end) of a boolean array."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return 0, 0, 0
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, len(idx) - 1]
    spans = idx[ends] - idx[starts] + 1
    k = int(np.argmax(spans))
    return int(spans[k]), int(idx[starts[k]]), int(idx[ends[k]]) + 1


def _patch_mean(sim: np.ndarray, width: int) -> np.ndarray:
    """Mean of ``sim`` over ``width`` cells along each diagonal (cells past the edges left out)."""
    if width <= 1:
        return sim
    t_r, t_q = sim.shape
    acc = sim.copy()
    cnt = np.ones_like(sim)
    for k in range(1, width // 2 + 1):
        if k >= min(t_r, t_q):
            break
        acc[:-k, :-k] += sim[k:, k:]
        cnt[:-k, :-k] += 1
        acc[k:, k:] += sim[:-k, :-k]
        cnt[k:, k:] += 1
    return acc / cnt


def _best_paths(hits_list: list[np.ndarray], max_jump: int, penalty) -> list[np.ndarray]:
    """Per ``hits`` matrix: the line per query frame maximising matches minus ``penalty`` per move.

    ``hits[o, j]``: weight of query frame ``j`` on line ``o``. Between consecutive query frames
    the line may move by up to ``max_jump`` (a pause inserted in one recording, a smeared word
    ending after a time stretch), each move costing ``penalty``. A Viterbi pass over query frames
    for all matrices at once (zero-padded to a common size: padding never gains), back-pointers
    recovered from the stored scores.
    """
    if not hits_list:
        return []
    # cost of a move by d lines: one number for every d, or one per d (index d - 1)
    cost = np.broadcast_to(np.asarray(penalty, dtype=np.float32), (max_jump,))
    n_b = len(hits_list)
    n_o = max(h.shape[0] for h in hits_list)
    t_q = max(h.shape[1] for h in hits_list)
    lengths = np.array([h.shape[1] for h in hits_list])
    lines = np.array([h.shape[0] for h in hits_list])
    gain = np.zeros((t_q, n_b, n_o), dtype=np.float32)
    for b, h in enumerate(hits_list):
        gain[:h.shape[1], b, :h.shape[0]] = h.T
    scores = np.empty((t_q, n_b, n_o), dtype=np.float32)
    score = gain[0].copy()
    scores[0] = score
    # the best score within max_jump lines, by shifted maxima (numpy only: scipy.ndimage takes
    # seconds to import on a busy machine, more than a whole small audit's alignments)
    reach = np.empty_like(score)
    for jj in range(1, t_q):
        reach.fill(-np.inf)
        for d in range(1, max_jump + 1):
            np.maximum(reach[:, d:], score[:, :-d] - cost[d - 1], out=reach[:, d:])
            np.maximum(reach[:, :-d], score[:, d:] - cost[d - 1], out=reach[:, :-d])
        score = np.maximum(score, reach) + gain[jj]
        scores[jj] = score
    rows = np.arange(n_b)
    # each matrix ends at its own last query frame, on its best real line
    last = lengths - 1
    masked = np.where(np.arange(n_o)[None, :] < lines[:, None], scores[last, rows], -np.inf)
    o = np.argmax(masked, axis=1)
    paths = np.zeros((n_b, t_q), dtype=np.int64)
    paths[rows, last] = o
    offsets = np.arange(-max_jump, max_jump + 1)
    off_cost = np.r_[cost[::-1], 0.0, cost].astype(np.float32)
    for jj in range(t_q - 1, 0, -1):
        active = jj <= last
        if not active.any():
            continue
        prev = scores[jj - 1]
        window = np.clip(o[:, None] + offsets[None, :], 0, (lines - 1)[:, None])
        vals = prev[rows[:, None], window] - off_cost[None, :]
        k = np.argmax(vals, axis=1)
        cand = window[rows, k]
        # stay on the line unless moving was strictly better (as in the forward pass)
        move = vals[rows, k] > prev[rows, o]
        new_o = np.where(move, cand, o)
        o = np.where(active, new_o, o)
        paths[active, jj - 1] = o[active]
    return [paths[b, :lengths[b]] for b in range(n_b)]


def _coarse_lines(ref: np.ndarray, qry: np.ndarray, shifts, stretches, soft, patch: int, band=None):
    """Per pitch shift: the soft match matrices, the best line count and that line, per stretch.

    ``band(which, lo, hi)``: frames ``"ref"`` or ``"qry"`` restricted to bands ``lo:hi`` and
    re-normalised (default: computed here; :func:`align_many` keeps them per recording)."""
    if band is None:
        frames = {"ref": ref, "qry": qry}

        def band(which, lo, hi):
            return _renormalize(frames[which][:, lo:hi])
    n_bands = ref.shape[1]
    t_r, t_q = len(ref), len(qry)
    j = np.arange(t_q)
    factors = np.asarray(stretches, dtype=np.float64)
    ref_pos = np.floor(j[None, :] / factors[:, None] + 0.5).astype(np.int64)   # (stretches, t_q)
    spans = ref_pos[:, -1]
    width = int(spans.max()) + t_r
    out = []
    for shift in shifts:
        if abs(shift) >= n_bands // 2:
            continue
        # query band b + shift holds what the reference has in band b (query pitched up by `shift`)
        lo_r, hi_r = max(0, -shift), min(n_bands, n_bands - shift)
        r = band("ref", lo_r, hi_r)
        q = band("qry", lo_r + shift, hi_r + shift)
        sim = _patch_mean((r @ q.T) / (hi_r - lo_r), patch)           # (t_r, t_q) patch correlations
        # one frame of slack either way: the frame grids of two recordings never coincide exactly
        near = sim.copy()
        near[1:] = np.maximum(near[1:], sim[:-1])
        near[:-1] = np.maximum(near[:-1], sim[1:])
        # a frame counts by how close it comes: barely similar patches add little
        weight = np.clip((near - soft[0]) / (soft[1] - soft[0]), 0.0, 1.0)
        mi, mj = np.nonzero(weight > 0)
        if not len(mi):
            continue
        mw = weight[mi, mj]
        # each matched cell lies on exactly one line (offset) per stretch: count per line, all
        # stretches in one bincount
        lin = (np.arange(len(factors))[:, None] * width + mi[None, :] - ref_pos[:, mj] + spans[:, None])
        counts = np.bincount(lin.ravel(), weights=np.tile(mw, len(factors)),
                             minlength=len(factors) * width).reshape(len(factors), width)
        out.append((shift, near, weight, counts.max(axis=1), counts.argmax(axis=1)))
    return out


def align_many(pairs, max_semitones: float = MAX_SHIFT_SEMITONES, stretches=DEFAULT_STRETCHES,
               min_frames: int = 8, max_jump: int = MAX_JUMP, jump_penalty: float = JUMP_PENALTY,
               step_penalty: float | None = STEP_PENALTY, refine: int = 3,
               soft: tuple[float, float] = SOFT_MATCH, patch: int = PATCH_FRAMES,
               line_band: int = LINE_BAND) -> list[Alignment]:
    """Best alignment of each ``(reference, query, pitch_offset)`` over shifts, stretches and offsets.

    Per pair, one patch-correlation matrix per pitch shift (``pitch_offset`` bands, half
    semitones, plus or minus ``max_semitones``); each stretch and offset is a slanted line
    through it (query frame ``j`` against reference frame ``offset + j / stretch``), counted by
    the query frames that match on it. The ``refine`` best (shift, stretch) lines of every pair
    are then re-scored along the best *piecewise* line (:func:`_best_paths`, all pairs in one
    batch, over the ``line_band`` lines either side of the coarse best one), which absorbs frames
    inserted in one recording only: a move by ``d`` lines costs ``step_penalty * d`` matched
    frames, at most ``jump_penalty`` (``step_penalty=None``: ``jump_penalty`` for any move).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(60, 112)).astype(np.float32)
    >>> a, b = align_many([(x, x, 0), (x, x[::-1].copy(), 0)])
    >>> round(a.share, 2), b.share < 0.2
    (1.0, True)
    """
    max_shift = int(round(max_semitones * BANDS_PER_SEMITONE))
    move_cost = jump_penalty if step_penalty is None else np.minimum(
        float(step_penalty) * np.arange(1, max_jump + 1), jump_penalty)
    jobs = []            # (pair, shift, factor, near, weight, t_r, t_q)
    # one recording is in many pairs (a training recording is every evaluation recording's
    # candidate and in the calibration null too; a query is aligned with 4 candidates at nearby
    # shifts): its float32 frames and band slices are made once per call, keyed by the object
    # (the pairs hold them, so ids stay unique while this runs), at most CACHED_SLICES of them
    converted: dict = {}
    normalised: dict = {}

    def as_float(frames):
        key = id(frames)
        if key not in converted:
            converted[key] = np.asarray(frames, dtype=np.float32)
        return converted[key]

    for p, (reference, query, pitch_offset) in enumerate(pairs):
        if len(normalised) > CACHED_SLICES:
            normalised.clear()
            converted.clear()
        ref, qry = as_float(reference), as_float(query)
        if len(ref) < min_frames or len(qry) < min_frames:
            continue
        shifts = range(int(pitch_offset) - max_shift, int(pitch_offset) + max_shift + 1)
        lines = []
        def band(which, lo, hi, _ids={"ref": id(reference), "qry": id(query)}, _f={"ref": ref, "qry": qry}):
            key = (_ids[which], lo, hi)
            if key not in normalised:
                normalised[key] = _renormalize(_f[which][:, lo:hi])
            return normalised[key]

        for shift, near, weight, best, where in _coarse_lines(ref, qry, shifts, stretches, soft, patch, band):
            for factor, count, line in zip(stretches, best, where):
                lines.append((float(count), -abs(shift), -abs(factor - 1.0), shift, float(factor), int(line),
                              near, weight))
        lines.sort(key=lambda x: x[:3], reverse=True)
        for count, _, _, shift, factor, line, near, weight in lines[:max(1, refine)]:
            jobs.append((p, shift, factor, line, near, weight, len(ref), len(qry)))
    results = [Alignment() for _ in pairs]
    best_key = [(-1.0, 0, 0.0)] * len(pairs)
    # batches of similar size (little padding), bounded memory
    order = sorted(range(len(jobs)), key=lambda k: jobs[k][7])
    start = 0
    while start < len(order):
        stop, cells = start, 0
        while stop < len(order):
            t_q = jobs[order[stop]][7]
            size = (2 * line_band + 1) * t_q
            if stop > start and (cells + size) * 1 > BATCH_CELLS:
                break
            cells += size
            stop += 1
        batch = [jobs[k] for k in order[start:stop]]
        start = stop
        prepared = []
        for p, shift, factor, line, near, weight, t_r, t_q in batch:
            j = np.arange(t_q)
            ref_pos = np.floor(j / factor + 0.5).astype(np.int64)
            span = int(ref_pos[-1])
            # only lines near the coarse best one: a copy's path wanders a little, never far
            lo, hi = max(0, line - line_band), min(span + t_r, line + line_band + 1)
            rows = np.arange(lo - span, hi - span)[:, None] + ref_pos[None, :]   # (lines, t_q) reference frames
            inside = (rows >= 0) & (rows < t_r)
            hits = np.zeros(rows.shape, dtype=np.float32)
            jj = np.broadcast_to(j, rows.shape)
            hits[inside] = weight[rows[inside], jj[inside]]
            prepared.append((rows, inside, hits, span - lo))
        paths = _best_paths([h for _, _, h, _ in prepared], max_jump, move_cost)
        for (p, shift, factor, _, near, weight, t_r, t_q), (rows, inside, hits, span), path in zip(batch, prepared, paths):
            j = np.arange(t_q)
            on_path_w = hits[path, j]
            on_path = on_path_w > 0.5
            n_match = float(on_path_w.sum())
            key = (n_match, -abs(shift), -abs(factor - 1.0))
            if key <= best_key[p]:
                continue
            best_key[p] = key
            run, s0, s1 = _runs(on_path, MAX_GAP)
            strong_w = (STRONG_MATCH - soft[0]) / (soft[1] - soft[0]) - 1e-6
            strong_run = _runs(on_path_w >= strong_w, MAX_GAP)[0]
            seg = np.arange(s0, s1)
            seg_rows = rows[path[seg], seg]
            ok = inside[path[seg], seg]
            corr = near[seg_rows[ok], seg[ok]]
            longer = max(t_q, t_r * factor)
            offset = int(np.median(path[on_path])) - span if on_path.any() else 0
            coverage = ref_share = 0.0
            if on_path.any():
                q_hit = np.flatnonzero(on_path)
                r_hit = rows[path[q_hit], q_hit]
                coverage = min((q_hit[-1] - q_hit[0] + 1) / t_q, (r_hit.max() - r_hit.min() + 1) / t_r)
                ref_share = len(np.unique(r_hit[(r_hit >= 0) & (r_hit < t_r)])) / t_r
            results[p] = Alignment(
                share=float(min(1.0, n_match / longer)), run_seconds=run * FRAME_SECONDS,
                query_share=n_match / t_q, correlation=float(corr.mean()) if len(corr) else 0.0,
                semitones=shift / BANDS_PER_SEMITONE, stretch=factor,
                offset_seconds=float(offset) * FRAME_SECONDS, query_seconds=t_q * FRAME_SECONDS,
                coverage=float(min(1.0, coverage)), reference_share=float(min(1.0, ref_share)),
                strong_run_seconds=strong_run * FRAME_SECONDS)
    return results


def align(reference, query, max_semitones: float = MAX_SHIFT_SEMITONES, stretches=DEFAULT_STRETCHES,
          pitch_offset: int = 0, **options) -> Alignment:
    """Best alignment of ``query`` onto ``reference`` (one pair of :func:`align_many`)."""
    return align_many([(reference, query, pitch_offset)], max_semitones=max_semitones,
                      stretches=stretches, **options)[0]
