"""Audio near-duplicate detection: leakguard against an MFCC-statistics kNN baseline, same run.

Data: real sentences (Python standard-library docstrings) spoken by Debian's espeak-ng in five
voices (``apt-get install espeak-ng``; without it, or with ``--speech synthetic``, numpy
speech-like syllables from ``leakguard.similarity.synthetic``), plus music-like clips (notes,
chirps, noise bursts), written as 16-bit WAV files and audited from the folders. Planted in the
evaluation split, one family at a time: copies of training clips under gain, added noise (15 dB
SNR), time shift, added silence, removed silence, pitch shift (+-1 or 2 semitones, librosa),
time stretch (0.85 to 1.15, librosa), a combination; and two-speaker clips (a sentence by one
voice, then one by another) whose second speaker was replaced (the first speaker's part leaked;
``partial_duplicate``); and (``excerpt``, ``semantic_duplicate``) a later, non-overlapping 4 s of
16 synthetic field recordings whose first 4 s are training clips, next to 10 new recordings. Hard negatives: clean evaluation sentences by the *same voices* (espeak
renders a phoneme the same way every time, at a nearly monotone pitch: other sentences of one
voice share many identical frames).

- leakguard: ``lg.audit`` (exact, augmented and partial duplicate checks; semantic too for
  ``excerpt``), thresholds calibrated
  on the training split at ``fpr=1e-3``; a clip linked by any check counts as flagged.
- baseline ("MFCC kNN", the usual quick approach): mean and standard deviation of 20 librosa
  MFCCs per clip, cosine nearest neighbour in the training split, threshold calibrated the same
  way (1 - fpr quantile of the training split's own nearest-neighbour similarities).

Speed: seconds per evaluation clip of the whole audit (read, signatures, search, verification)
next to the seconds needed just to decode the same WAV files once.

    .venv/bin/python benchmarks/bench_audio_similarity.py [--seeds 2] [--train 60] [--json out.json]
        [--speech espeak|synthetic] [--families gain,pitch_shift,...]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

RATE = 16000
FAMILIES = ("gain", "noise", "shift", "add_silence", "remove_silence", "pitch_shift", "time_stretch",
            "combined", "two_speaker", "excerpt")


# espeak-ng voices: (voice+variant, pitch 0-99, words per minute); five speakers
ESPEAK_VOICES = (("en-us+m3", 45, 165), ("en+f2", 60, 150), ("en-gb+m1", 35, 175), ("en-us+f4", 70, 160),
                 ("en-gb-scotland+m5", 50, 155))


def espeak_available() -> bool:
    import shutil

    return shutil.which("espeak-ng") is not None


def espeak(text: str, voice) -> np.ndarray:
    """``text`` spoken by espeak-ng (Debian package) with ``voice``, as float32 at 16 kHz."""
    import io
    import subprocess

    import soundfile as sf
    from scipy.signal import resample_poly

    name, pitch, wpm = voice
    # the text goes through stdin: a sentence starting with "-" is not an option
    wav = subprocess.run(["espeak-ng", "-v", name, "-p", str(pitch), "-s", str(wpm), "--stdout"],
                         input=text.encode(), capture_output=True, check=True).stdout
    wave, rate = sf.read(io.BytesIO(wav), dtype="float32")
    from math import gcd

    g = gcd(int(rate), RATE)
    return resample_poly(wave, RATE // g, int(rate) // g).astype(np.float32)


def _sentences(min_words: int = 6, max_words: int = 12) -> list[str]:
    """Sentences of real prose (stdlib docstrings, no two near-copies), shuffled once."""
    import re

    from leakguard.similarity.synthetic import prose_corpus

    out = []
    for para in prose_corpus(600, min_words=12):
        for s in re.split(r"(?<=[.;:])\s+", para):
            words = s.split()
            if min_words <= len(words) <= max_words and sum(c.isalpha() or c == " " for c in s) / len(s) > 0.9:
                out.append(s)
    # no near-copies among the sentences: the clean evaluation clips are the negatives, and two
    # docstring lines that differ by a word or two ("'+Subnormal', indicating that the operand is
    # positive and subnormal" / "'-Subnormal' ... negative and subnormal"), spoken by one voice,
    # are near-duplicate recordings, not negatives. A sentence sharing a run of 3 words with an
    # earlier one is left out (4 words let "With optional start, test S beginning at that
    # position." / "With optional end, stop comparing S at that position." through: 383 remain).
    kept, seen = [], set()
    for s in dict.fromkeys(out):
        words = re.findall(r"[a-z0-9]+", s.lower())
        grams = {tuple(words[i:i + 3]) for i in range(len(words) - 2)}
        if grams & seen:
            continue
        kept.append(s)
        seen |= grams
    return kept


class Speech:
    """Utterances: espeak-ng sentences (default) or numpy speech-like syllables (``synthetic``)."""

    def __init__(self, kind: str, rng):
        self.kind, self.rng = kind, rng
        if kind == "espeak":
            self.sentences = list(np.asarray(_SENTENCES_CACHE.setdefault("all", _sentences()), dtype=object)[
                rng.permutation(len(_SENTENCES_CACHE["all"]))])
            self.voices = list(ESPEAK_VOICES)
        else:
            from leakguard.similarity.synthetic import speaker_voice

            self.voices = [speaker_voice(rng) for _ in range(5)]

    def say(self, voice: int, seconds: float | None = None) -> np.ndarray:
        """A new utterance by ``voice``: one unused sentence (espeak) or ``seconds`` of syllables."""
        if self.kind == "espeak":
            return espeak(self.sentences.pop(), self.voices[voice])
        from leakguard.similarity.synthetic import speech_like

        return speech_like(self.rng, seconds or self.rng.uniform(2, 4), RATE, self.voices[voice])


_SENTENCES_CACHE: dict = {}


def _case(family, seed, n_train, n_clean=20, n_copies=8, speech="espeak"):
    """Training clips (4 in 5 speech by 5 voices, 1 in 5 music-like), clean evaluation speech by the
    same voices (hard negatives) and ``n_copies`` planted copies of ``family``."""
    from leakguard.similarity.synthetic import augment_audio, soundscape, tone_clip

    rng = np.random.default_rng(seed)
    talk = Speech(speech, rng)
    train = [tone_clip(rng, rng.uniform(2, 4), RATE) if i % 5 == 4 else talk.say(i % 5) for i in range(n_train)]
    val = [talk.say(i % 5) for i in range(n_clean)]
    if family == "excerpt":
        # semantic duplicates: 16 training clips are the first 4 s of field recordings; the
        # evaluation split gets a later, non-overlapping 4 s of 8 of them, and 10 new recordings
        recordings = [soundscape(rng, 12.0, RATE) for _ in range(16)]
        for k, i in enumerate(range(0, n_train, n_train // 16)):
            if k < 16:
                train[i] = recordings[k][:4 * RATE]
        val += [soundscape(rng, 4.0, RATE) for _ in range(10)]
        n_neg = len(val)
        for k in range(n_copies):
            val.append(recordings[k][8 * RATE:12 * RATE])
        return train, val, set(range(n_neg, len(val)))
    sources = rng.choice([i for i in range(n_train) if i % 5 != 4] if family == "two_speaker" else n_train,
                         size=n_copies, replace=False)
    for s in sources:
        if family == "two_speaker":
            # train: speaker A then speaker B; val: the same A part, then speaker C instead of B
            kept = train[s]
            b, c = rng.choice([v for v in range(5) if v != s % 5], size=2, replace=False)
            train[s] = np.concatenate([kept, talk.say(int(b), 2.0)])
            val.append(np.concatenate([kept, talk.say(int(c), 2.0)]))
        else:
            val.append(augment_audio(train[s], RATE, rng, family))
    return train, val, set(range(n_clean, len(val)))


def _mfcc_flags(train_paths, val_paths, fpr):
    import librosa
    import soundfile as sf

    from leakguard.search.knn import nearest
    from leakguard.similarity.calibration import calibrated_threshold, null_scores

    def emb(paths):
        out = []
        for p in paths:
            w, r = sf.read(str(p), dtype="float32")
            m = librosa.feature.mfcc(y=w, sr=r, n_mfcc=20)
            out.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
        return np.stack(out)

    T, V = emb(train_paths), emb(val_paths)
    # z-score the dimensions on the training split so no single MFCC dominates the cosine
    mu, sd = T.mean(axis=0), T.std(axis=0) + 1e-9
    T, V = (T - mu) / sd, (V - mu) / sd
    thr = calibrated_threshold(null_scores(T, metric="cosine"), fpr)
    sims, _ = nearest(T, V, k=1, metric="cosine")
    return set(np.flatnonzero(sims[:, 0] >= thr).tolist())


def _pr(flags, truth):
    tp = len(flags & truth)
    return (tp / len(truth) if truth else 1.0), (tp / len(flags) if flags else 1.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--train", type=int, default=60)
    ap.add_argument("--json", default=None)
    ap.add_argument("--speech", choices=("espeak", "synthetic"), default=None,
                    help="espeak: sentences spoken by espeak-ng (default when installed); synthetic: numpy")
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args(argv)
    speech = args.speech or ("espeak" if espeak_available() else "synthetic")
    print(f"speech: {speech}", flush=True)
    import soundfile as sf

    import leakguard as lg
    from leakguard.similarity.synthetic import write_wavs

    rows, timing = [], {"audit_s": 0.0, "decode_s": 0.0, "audit_cpu_s": 0.0, "decode_cpu_s": 0.0, "eval_clips": 0}
    for family in args.families.split(","):
        res = {"leakguard": [], "mfcc_knn": []}
        for seed in range(args.seeds):
            train, val, truth = _case(family, 100 * seed + FAMILIES.index(family), args.train,
                                       speech=speech)
            with tempfile.TemporaryDirectory() as tmp:
                tp = write_wavs(Path(tmp) / "train", train, RATE)
                vp = write_wavs(Path(tmp) / "val", val, RATE)
                t0, c0 = time.perf_counter(), time.process_time()
                for p in tp + vp:
                    sf.read(str(p), dtype="float32")
                timing["decode_s"] += time.perf_counter() - t0
                timing["decode_cpu_s"] += time.process_time() - c0
                t0, c0 = time.perf_counter(), time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    checks = ["exact_duplicate", "augmented_duplicate", "partial_duplicate"]
                    if family == "excerpt":
                        checks.append("semantic_duplicate")
                    report = lg.audit({"train": Path(tmp) / "train", "val": Path(tmp) / "val"},
                                      checks=checks, config=lg.AuditConfig(progress=False))
                timing["audit_s"] += time.perf_counter() - t0
                timing["audit_cpu_s"] += time.process_time() - c0   # every thread of this process
                timing["eval_clips"] += len(val)
                res["leakguard"].append(_pr(set(report.leaked("val").tolist()), truth))
                res["mfcc_knn"].append(_pr(_mfcc_flags(tp, vp, 1e-3), truth))
        row = {"family": family}
        for tool, prs in res.items():
            row[f"{tool}_recall"] = round(float(np.mean([p[0] for p in prs])), 3)
            row[f"{tool}_precision"] = round(float(np.mean([p[1] for p in prs])), 3)
        rows.append(row)
        print(f"{family:15s} leakguard R={row['leakguard_recall']:.3f} P={row['leakguard_precision']:.3f}   "
              f"MFCC kNN R={row['mfcc_knn_recall']:.3f} P={row['mfcc_knn_precision']:.3f}", flush=True)
    timing["audit_s_per_eval_clip"] = round(timing["audit_s"] / timing["eval_clips"], 3)
    timing["audit_over_decode"] = round(timing["audit_s"] / max(timing["decode_s"], 1e-9), 1)
    timing["audit_cpu_over_decode_cpu"] = round(timing["audit_cpu_s"] / max(timing["decode_cpu_s"], 1e-9), 1)
    print(f"audit {timing['audit_s']:.1f} s for {timing['eval_clips']} evaluation clips "
          f"({timing['audit_s_per_eval_clip']} s each, train {args.train}); decoding all WAVs once "
          f"{timing['decode_s']:.1f} s (audit / decode = {timing['audit_over_decode']}x)", flush=True)
    # CPU seconds of this process (all its threads): steadier than wall time on a shared machine
    print(f"CPU: audit {timing['audit_cpu_s']:.1f} s, decoding {timing['decode_cpu_s']:.2f} s "
          f"(audit / decode = {timing['audit_cpu_over_decode_cpu']}x); load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    out = {"speech": speech, "quality": rows, "timing": timing}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
