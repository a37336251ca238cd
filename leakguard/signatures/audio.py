"""Audio fingerprints: log-frequency spectral frames that survive gain, noise, shifts and silence.

Every recording is cut into 64 ms frames every 32 ms (at its own sample rate; under 7.6 kHz the
bands above its Nyquist frequency stay empty). Each frame's power
spectrum is pooled into bands half a semitone wide from 150 Hz to 3.8 kHz (112 bands, the range
that carries speech and most pitched sound). On that log-frequency axis a **pitch shift is a
translation** (one semitone = two bands) and a **time stretch is a uniform rescaling of the frame
axis**, so the verification in :mod:`leakguard.similarity.audio` undoes both by sliding and
resampling, which no hash of fixed frequency bins (landmark pairs, band-difference bits) can.

What the signature removes before anything is compared:

- **gain**: each frame is z-normalised across its bands (level and spectral tilt shifts vanish);
- **noise**: band energies more than 20 dB under the frame's strongest band are floored, so a
  noise floor under the signal does not reshape the frame;
- **silence** (added, removed, or leading as a time shift): frames more than 25 dB under the
  recording's loud frames, or in a steady noise floor far under them, are dropped; what remains is the
  sounding part, in order.

The signature is the ``(frames, 112)`` float16 array of z-normalised frames (about 7 KB per
second of sound) plus nothing else: offsets, pitch and stretch are found at verification time.

>>> import numpy as np
>>> from leakguard.signatures.audio import spectral_frames
>>> t = np.arange(16000) / 16000
>>> frames = spectral_frames((np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000))
>>> frames.shape[1], bool(abs(float(frames[5].astype(np.float32).mean())) < 1e-2)
(112, True)
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .registry import register_signature

RATE = 8000
WINDOW = 512          # 64 ms
HOP = 256             # 32 ms
N_FFT = 1024          # zero-padded: 7.8 Hz bins, fine enough for half-semitone bands at 150 Hz
F_MIN = 150.0
BANDS_PER_SEMITONE = 2
N_BANDS = 112         # 150 Hz .. about 3.8 kHz
FRAME_SECONDS = HOP / RATE
DYNAMIC_RANGE_DB = 25.0    # frames this far under the loud ones are silence
SPECTRAL_FLOOR_DB = 20.0   # bands this far under a frame's strongest band are floored


@lru_cache(maxsize=8)
def band_matrix(n_fft: int = N_FFT, rate: int = RATE) -> np.ndarray:
    """(n_fft // 2 + 1, N_BANDS) triangular filters on a log-frequency axis, half a semitone apart."""
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    step = 1.0 / (12 * BANDS_PER_SEMITONE)  # octaves between band centres
    centres = F_MIN * 2 ** (np.arange(N_BANDS) * step)
    fb = np.zeros((len(freqs), N_BANDS), dtype=np.float32)
    bin_hz = rate / n_fft
    for k, c in enumerate(centres):
        half = max(c * (2 ** step - 1), 1.5 * bin_hz)  # at least 1.5 FFT bins wide at the low end
        w = 1 - np.abs(freqs - c) / half
        fb[:, k] = np.clip(w, 0, None)
        total = fb[:, k].sum()
        if total > 0:  # bands above a low sample rate's Nyquist frequency stay empty
            fb[:, k] /= total
    return fb


@lru_cache(maxsize=8)
def _band_pooling(n_fft: int = N_FFT, rate: int = RATE):
    """The band filters as a sparse (bands, bins) matrix: few bins per band, and a sparse product
    runs in this thread (a dense BLAS one spawns threads that thrash on a busy machine)."""
    from scipy.sparse import csr_matrix

    return csr_matrix(band_matrix(n_fft, rate).T)


@lru_cache(maxsize=8)
def frame_layout(rate: int) -> tuple[int, int, int]:
    """(window, hop, n_fft) in samples at ``rate``: 64 ms windows every 32 ms, FFT bins of about
    7.8 Hz. The spectrum is taken at the recording's own rate (no resampling: the bands stop at
    3.8 kHz, and scipy.signal alone takes seconds to import), so one recording at two sample
    rates gives the same frames up to rounding."""
    if rate == RATE:
        return WINDOW, HOP, N_FFT
    from scipy.fft import next_fast_len

    scale = rate / RATE
    window = max(8, int(round(WINDOW * scale)))
    return window, max(1, int(round(HOP * scale))), next_fast_len(max(window, int(round(N_FFT * scale))))


def band_energies(wave: np.ndarray, rate: int) -> np.ndarray:
    """(frames, N_BANDS) power in the log-frequency bands (150 Hz to 3.8 kHz), 32 ms frames."""
    x = np.asarray(wave, dtype=np.float32)
    rate = int(rate)
    if rate < 1000:
        raise ValueError(f"audio sampled at {rate} Hz: too low for the 150 Hz - 3.8 kHz bands")
    window, hop, n_fft = frame_layout(rate)
    if len(x) < window:
        x = np.pad(x, (0, window - len(x)))
    n_frames = 1 + (len(x) - window) // hop
    from numpy.lib.stride_tricks import sliding_window_view

    from scipy.fft import rfft

    frames = sliding_window_view(x, window)[::hop][:n_frames] * _hann(window)
    spec = rfft(frames, n=n_fft, axis=1)   # float32 in, complex64 out (numpy's FFT works in float64)
    power = spec.real ** 2 + spec.imag ** 2
    # the same sound gives the same band power at any rate: a window `scale` times longer sums
    # `scale` squared times more
    power *= np.float32((WINDOW / window) ** 2)
    return np.ascontiguousarray((_band_pooling(n_fft, rate) @ power.T).T, dtype=np.float32)


@lru_cache(maxsize=8)
def _hann(window: int) -> np.ndarray:
    return np.hanning(window).astype(np.float32)


@lru_cache(maxsize=1)
def _full_scale_level() -> float:
    """Frame level (dB) of a full-scale 1 kHz sine: the reference for absolute silence (-80 dBFS)."""
    t = np.arange(RATE) / RATE
    e = band_energies(np.sin(2 * np.pi * 1000 * t).astype(np.float32), RATE)
    return float(np.median(10 * np.log10(e.sum(axis=1) + 1e-12)))


def sounding_frames(energies: np.ndarray) -> np.ndarray:
    """Mask of frames that are neither silence nor a steady noise floor, relative to this recording.

    Silence: under -80 dBFS, or more than 25 dB under the loud (95th percentile) frames. Noise floor: when the frame
    levels split (Otsu) into a quiet group at least 10 dB under the rest and that quiet group is
    steady (70 % of it within 2 dB of its median, as stationary noise is and quiet speech is not),
    its steady core is the noise in the pauses and is dropped too; a recording without pauses has
    no such group and keeps its quiet frames.
    """
    level = 10 * np.log10(energies.sum(axis=1) + 1e-12)
    keep = (level > np.percentile(level, 95) - DYNAMIC_RANGE_DB) & (level > _full_scale_level() - 80.0)
    lv = level[keep]
    if len(lv) >= 10:
        order = np.sort(lv)
        n = len(order)
        csum = np.cumsum(order)
        k = np.arange(1, n)                                    # split after k frames
        mean_lo = csum[:-1] / k
        mean_hi = (csum[-1] - csum[:-1]) / (n - k)
        between = k * (n - k) * (mean_hi - mean_lo) ** 2       # Otsu's between-class variance
        split = int(np.argmax(between)) + 1
        low = order[:split]
        # the quiet group's core: a noise floor is steady (most of it within 2 dB of its median),
        # though Otsu may lump a few speech onsets in with it; quiet speech is spread out
        floor = float(np.median(low))
        core = np.abs(low - floor) <= 2.0
        if split >= 0.05 * n and mean_hi[split - 1] - mean_lo[split - 1] >= 10 and core.mean() >= 0.7:
            keep &= level > low[core].max() + 1.0
    return keep


def normalize_frames(logspec: np.ndarray) -> np.ndarray:
    """Each frame minus its mean, divided by its standard deviation (float32)."""
    z = logspec - logspec.mean(axis=1, keepdims=True)
    sd = z.std(axis=1, keepdims=True)
    return (z / np.where(sd > 1e-6, sd, 1.0)).astype(np.float32)


def spectral_frames(item) -> np.ndarray:
    """The audio signature: z-normalised log-band frames of the sounding part, float16."""
    wave, rate = item
    energies = band_energies(wave, rate)
    keep = sounding_frames(energies)
    e = energies[keep]
    if len(e) == 0:
        return np.zeros((0, N_BANDS), dtype=np.float16)
    floor = e.max(axis=1, keepdims=True) * 10 ** (-SPECTRAL_FLOOR_DB / 10)
    return normalize_frames(np.log(e + floor + 1e-12)).astype(np.float16)


@register_signature("audio", "spectral_frames", version="3")
def audio_spectral_frames(item) -> np.ndarray:
    return spectral_frames(item)


STATS_RANGE_DB = 40.0      # frames this far under the loud ones are left out of the statistics
STATS_PERCENTILES = (10.0, 20.0, 30.0)   # the quiet side of each band's level: the steady background
STATS_SEMITONES = 2        # width of the statistics' bands: 28 bands of two semitones, 150 Hz .. 3.8 kHz


def spectral_stats(item) -> np.ndarray:
    """What a recording's *steady background* sounds like: 84 float32 statistics of its log-band
    spectrogram.

    Per band two semitones wide (28 bands, 150 Hz to 3.8 kHz), over every frame within 40 dB of the loud
    frames (the steady background is *kept*, unlike in :func:`spectral_frames`: a room, a machine
    or a soundscape is what two excerpts of one recording share), the 10th, 20th and 30th
    percentiles of the band's level in dB, with the recording's mean level subtracted
    (gain-invariant); 28 values per percentile, percentile by percentile. The quiet side of each
    band is the background between and under the foreground sounds: it stays put from one excerpt
    of a recording to the next, while which sounds happen, how often and how loud, changes (the
    mean, spread and frame-to-frame change of each band, the session-1 statistics, followed the
    foreground and put excerpts of one soundscape further apart than two different soundscapes).
    Two-semitone bands: a percentile of one narrow band over a few seconds of noise is itself noisy
    (a half-semitone band at 150 Hz holds one or two FFT bins); pooled, it is a steadier estimate.
    Order-free: it says nothing about *when* a sound happens. The default embedding of the audio
    ``semantic_duplicate`` check.
    """
    wave, rate = item
    e = band_energies(wave, rate)
    width = STATS_SEMITONES * BANDS_PER_SEMITONE
    e = e.reshape(len(e), N_BANDS // width, width).sum(axis=2)
    level = 10 * np.log10(e.sum(axis=1) + 1e-12)
    keep = (level > np.percentile(level, 95) - STATS_RANGE_DB) & (level > _full_scale_level() - 80.0)
    if keep.sum() < 2:
        return np.full(len(STATS_PERCENTILES) * e.shape[1], np.nan, dtype=np.float32)
    db = 10 * np.log10(e[keep] + 1e-12)
    db -= db.mean()
    return np.percentile(db, STATS_PERCENTILES, axis=0).ravel().astype(np.float32)


@register_signature("audio", "spectral_stats", version="3")
def audio_spectral_stats(item) -> np.ndarray:
    return spectral_stats(item)
