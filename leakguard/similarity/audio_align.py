"""Verification of audio candidate pairs: align two spectral-frame sequences under pitch and tempo.

Given two signatures from :func:`leakguard.signatures.audio.spectral_frames` (z-normalised
log-frequency frames of the sounding part), :func:`align` searches pitch shifts (slides along the
band axis, half a semitone per band) and time stretches (resamples the frame axis), and for each
scores every time offset (diagonal of the frame-correlation matrix) by the frames that match on
it. It returns the best alignment: how much of the shorter recording it covers (``share``), the
longest matched stretch in seconds (``run_seconds``), the mean frame correlation along it, and
the pitch shift (semitones), stretch factor and offset (seconds) that explain the match.

Frames of one speaker look alike one by one (a vowel is a vowel), so a single matching frame
means nothing; what separates a copy from another utterance is many matching frames *in order
on one diagonal*, which is what the share and the run measure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..signatures.audio import BANDS_PER_SEMITONE, FRAME_SECONDS

FRAME_MATCH = 0.7                       # frame correlation that counts as the same sound
DEFAULT_STRETCHES = (0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.17, 1.25)
MAX_SHIFT_SEMITONES = 3.0
MAX_GAP = 2                             # frames a matched run may skip (a noisy frame, a click)
MAX_JUMP = 6                            # frames the alignment may move between two query frames
JUMP_PENALTY = 5.0                      # matched frames a move must win to be worth it
SOFT_MATCH = (0.6, 0.95)                # frame correlation counted as no match .. a full match


@dataclass
class Alignment:
    share: float = 0.0          # matched frames / frames of the shorter recording (time-scaled)
    run_seconds: float = 0.0    # longest matched stretch, in seconds of the query
    query_share: float = 0.0    # matched frames / frames of the query
    correlation: float = 0.0    # mean frame correlation over the matched stretch
    semitones: float = 0.0      # pitch shift of the query relative to the reference
    stretch: float = 1.0        # query duration / reference duration
    offset_seconds: float = 0.0  # where the query starts in the reference (sounding time)


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


def _window_max(x: np.ndarray, half: int) -> np.ndarray:
    """Max of ``x`` over ``[i - half, i + half]`` for every ``i`` (doubling: a few vector ops)."""
    n, width = len(x), 2 * half + 1
    m = np.full(n + 2 * half, -np.inf, dtype=x.dtype)
    m[half:half + n] = x
    span = 1
    while 2 * span <= width:
        m = np.maximum(m[:-span], m[span:])   # m[i] now covers 2 * span values from i
        span *= 2
    rest = width - span
    if rest:
        m = np.maximum(m[:len(m) - rest], m[rest:])
    return m[:n]


def _best_path(hits: np.ndarray, max_jump: int, penalty: float) -> np.ndarray:
    """Offset per query frame maximising matched frames minus ``penalty`` per change of offset.

    ``hits[o, j]``: query frame ``j`` matches on line ``o``. The offset may move by up to
    ``max_jump`` lines between consecutive query frames (a pause of noise inserted in one
    recording, a smeared word ending after a time stretch), each move costing ``penalty``
    frames; a Viterbi pass over query frames, linear in frames x lines. Back-pointers are
    recovered from the stored scores, so the forward pass is two vector operations per frame.
    """
    n_o, t_q = hits.shape
    scores = np.empty((t_q, n_o), dtype=np.float32)
    gain = np.ascontiguousarray(hits.T, dtype=np.float32)
    score = gain[0].copy()
    scores[0] = score
    for jj in range(1, t_q):
        reach = _window_max(score, max_jump) - penalty
        score = np.maximum(score, reach) + gain[jj]
        scores[jj] = score
    path = np.empty(t_q, dtype=np.int64)
    o = int(np.argmax(score))
    path[-1] = o
    for jj in range(t_q - 1, 0, -1):
        prev = scores[jj - 1]
        lo, hi = max(0, o - max_jump), min(n_o, o + max_jump + 1)
        cand = lo + int(np.argmax(prev[lo:hi]))
        # stay on the line unless moving was strictly better (as in the forward pass)
        if not prev[cand] - penalty > prev[o]:
            cand = o
        o = cand
        path[jj - 1] = o
    return path


def align(reference, query, max_semitones: float = MAX_SHIFT_SEMITONES, stretches=DEFAULT_STRETCHES,
          frame_match: float = FRAME_MATCH, min_frames: int = 8, pitch_offset: int = 0,
          max_jump: int = MAX_JUMP, jump_penalty: float = JUMP_PENALTY, refine: int = 3,
          soft: tuple[float, float] | None = SOFT_MATCH) -> Alignment:
    """Best alignment of ``query`` onto ``reference`` over pitch shifts, stretches and offsets.

    One frame-correlation matrix per pitch shift; each stretch and offset is then a slanted line
    through it (query frame ``j`` against reference frame ``offset + j / stretch``), scored by the
    query frames that match on it. The ``refine`` best (shift, stretch) pairs are then re-scored
    along the best *piecewise* line (:func:`_best_path`: small offset moves allowed at a cost),
    which absorbs frames inserted in one recording only. Pitch shifts searched: ``pitch_offset``
    bands (half semitones) plus or minus ``max_semitones``.
    """
    ref = np.asarray(reference, dtype=np.float32)
    qry = np.asarray(query, dtype=np.float32)
    if len(ref) < min_frames or len(qry) < min_frames:
        return Alignment()
    n_bands = ref.shape[1]
    t_r, t_q = len(ref), len(qry)
    max_shift = int(round(max_semitones * BANDS_PER_SEMITONE))
    j = np.arange(t_q)
    lines = []          # (count, -|shift|, -|stretch - 1|, shift, factor)
    matches = {}
    for shift in range(pitch_offset - max_shift, pitch_offset + max_shift + 1):
        if abs(shift) >= n_bands // 2:
            continue
        # query band b + shift holds what the reference has in band b (query pitched up by `shift`)
        lo_r, hi_r = max(0, -shift), min(n_bands, n_bands - shift)
        r = _renormalize(ref[:, lo_r:hi_r])
        q = _renormalize(qry[:, lo_r + shift:hi_r + shift])
        sim = (r @ q.T) / (hi_r - lo_r)                              # (t_r, t_q) correlations
        # one frame of slack either way: the frame grids of two recordings never coincide exactly
        near = sim.copy()
        near[1:] = np.maximum(near[1:], sim[:-1])
        near[:-1] = np.maximum(near[:-1], sim[1:])
        if soft is not None:
            # a frame counts by how close it comes: barely similar frames (another utterance of
            # the same voice) add little, frames of the same sound add nearly one
            weight = np.clip((near - soft[0]) / (soft[1] - soft[0]), 0.0, 1.0)
        else:
            weight = (near >= frame_match).astype(np.float32)
        match = weight
        mi, mj = np.nonzero(weight > 0)                              # matched (reference, query) frames
        if not len(mi):
            continue
        mw = weight[mi, mj]
        matches[shift] = (near, match)
        for factor in stretches:
            ref_pos = np.floor(j / factor + 0.5).astype(np.int64)    # reference frame of query frame j
            span = int(ref_pos[-1])
            # each matched cell lies on exactly one line (offset) for this stretch: count per line
            counts = np.bincount(mi - ref_pos[mj] + span, weights=mw, minlength=span + t_r)
            lines.append((float(counts.max()), -abs(shift), -abs(factor - 1.0), shift, float(factor)))
    if not lines:
        return Alignment()
    lines.sort(reverse=True)
    best, best_key = Alignment(), (-1.0, 0, 0.0)
    for count, _, _, shift, factor in lines[:max(1, refine)]:
        near, match = matches[shift]
        ref_pos = np.floor(j / factor + 0.5).astype(np.int64)
        span = int(ref_pos[-1])
        rows = np.arange(-span, t_r)[:, None] + ref_pos[None, :]      # (lines, t_q) reference frames
        inside = (rows >= 0) & (rows < t_r)
        hits = np.zeros(rows.shape, dtype=np.float32)
        jj = np.broadcast_to(j, rows.shape)
        hits[inside] = match[rows[inside], jj[inside]]
        path = _best_path(hits, max_jump, jump_penalty)
        on_path_w = hits[path, j]
        on_path = on_path_w > 0.5
        n_match = float(on_path_w.sum())
        key = (n_match, -abs(shift), -abs(factor - 1.0))
        if key <= best_key:
            continue
        best_key = key
        run, start, end = _runs(on_path, MAX_GAP)
        seg = np.arange(start, end)
        seg_rows = rows[path[seg], seg]
        ok = inside[path[seg], seg]
        corr = near[seg_rows[ok], seg[ok]]
        shorter = min(t_q, t_r * factor)
        offset = int(np.median(path[on_path])) - span if on_path.any() else 0
        best = Alignment(
            share=float(min(1.0, n_match / shorter)), run_seconds=run * FRAME_SECONDS,
            query_share=n_match / t_q, correlation=float(corr.mean()) if len(corr) else 0.0,
            semitones=shift / BANDS_PER_SEMITONE, stretch=factor,
            offset_seconds=float(offset) * FRAME_SECONDS)
    return best
