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

FRAME_MATCH = 0.75                      # frame correlation that counts as the same sound
DEFAULT_STRETCHES = (0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.17, 1.25)
MAX_SHIFT_SEMITONES = 3.0
MAX_GAP = 2                             # frames a matched run may skip (a noisy frame, a click)


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


def align(reference, query, max_semitones: float = MAX_SHIFT_SEMITONES, stretches=DEFAULT_STRETCHES,
          frame_match: float = FRAME_MATCH, min_frames: int = 8, pitch_offset: int = 0) -> Alignment:
    """Best alignment of ``query`` onto ``reference`` over pitch shifts, stretches and offsets.

    One frame-correlation matrix per pitch shift; each stretch and offset is then a slanted line
    through it (query frame ``j`` against reference frame ``offset + j / stretch``), scored by the
    query frames that match on it. The best line is the one matching the most query frames.
    Pitch shifts searched: ``pitch_offset`` bands (half semitones) plus or minus ``max_semitones``.
    """
    ref = np.asarray(reference, dtype=np.float32)
    qry = np.asarray(query, dtype=np.float32)
    if len(ref) < min_frames or len(qry) < min_frames:
        return Alignment()
    n_bands = ref.shape[1]
    t_r, t_q = len(ref), len(qry)
    max_shift = int(round(max_semitones * BANDS_PER_SEMITONE))
    j = np.arange(t_q)
    best, best_key = Alignment(), (-1, 0, 0.0)
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
        match = near >= frame_match
        mi, mj = np.nonzero(match)                                    # matched (reference, query) frames
        if not len(mi):
            continue
        for factor in stretches:
            ref_pos = np.floor(j / factor + 0.5).astype(np.int64)    # reference frame of query frame j
            span = int(ref_pos[-1])
            # each matched cell lies on exactly one line (offset) for this stretch: count per line
            counts = np.bincount(mi - ref_pos[mj] + span, minlength=span + t_r)
            k = int(np.argmax(counts))
            key = (int(counts[k]), -abs(shift), -abs(factor - 1.0))  # ties: the simpler transform
            if key <= best_key:
                continue
            best_key = key
            offset = k - span
            rows = offset + ref_pos
            inside = (rows >= 0) & (rows < t_r)
            on_line = np.zeros(t_q, dtype=bool)
            on_line[inside] = match[rows[inside], j[inside]]
            run, start, end = _runs(on_line, MAX_GAP)
            seg = np.arange(start, end)
            seg = seg[inside[seg]]
            corr = near[rows[seg], seg]
            shorter = min(t_q, t_r * factor)
            best = Alignment(
                share=float(min(1.0, counts[k] / shorter)), run_seconds=run * FRAME_SECONDS,
                query_share=float(counts[k]) / t_q, correlation=float(corr.mean()) if len(corr) else 0.0,
                semitones=shift / BANDS_PER_SEMITONE, stretch=float(factor),
                offset_seconds=float(offset) * FRAME_SECONDS)
    return best
