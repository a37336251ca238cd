"""Audio similarity checks on synthesised speech and music written as WAV files, with planted leaks."""
from __future__ import annotations

import numpy as np
import pytest

import leakguard as lg
from leakguard.signatures.audio import spectral_frames
from leakguard.similarity.audio_align import align
from leakguard.similarity.synthetic import (
    AUDIO_FAMILIES, augment_audio, soundscape, speaker_voice, speech_like, tone_clip, write_wavs,
)

RATE = 16000
pytest.importorskip("librosa")  # pitch shift and time stretch are made with librosa, as users do


@pytest.fixture(scope="module")
def audio_data(tmp_path_factory):
    """40 training clips (4 voices + music), 16 clean evaluation clips by the same voices,
    3 augmented copies per family and 3 two-speaker clips whose second speaker was replaced, and 3
    more whose leaked part is short (1.35-1.45 s of sound, under the 1.5 s partial floor)."""
    rng = np.random.default_rng(11)
    voices = [speaker_voice(rng) for _ in range(4)]
    train = [tone_clip(rng, rng.uniform(2, 3.5), RATE) if i % 5 == 4 else
             speech_like(rng, rng.uniform(2, 3.5), RATE, voices[i % 4]) for i in range(40)]
    val = [speech_like(rng, rng.uniform(2, 3.5), RATE, voices[i % 4]) for i in range(16)]
    planted = {}
    for f_pos, family in enumerate(AUDIO_FAMILIES):
        for r in range(3):
            src = 3 * f_pos + r
            val.append(augment_audio(train[src], RATE, rng, family))
            planted[len(val) - 1] = (family, src)
    for r in range(3):
        src = 30 + r
        kept = speech_like(rng, 3.0, RATE, voices[0])  # about 2 s of sound: over the 1.5 s floor
        train[src] = np.concatenate([kept, speech_like(rng, 2.0, RATE, voices[1])])
        val.append(np.concatenate([kept, speech_like(rng, 2.0, RATE, voices[2])]))
        planted[len(val) - 1] = ("two_speaker", src)
    for r in range(3):
        src = 25 + r
        kept = speech_like(rng, 2.0, RATE, voices[0])
        while not 1.35 <= len(spectral_frames((kept, RATE))) * 0.032 <= 1.45:  # seconds of sound
            kept = speech_like(rng, 2.0, RATE, voices[0])
        # the other speakers quieter: the sounding frames of the leaked part are then the same in
        # both clips (each recording's silence is judged against its own loud frames)
        train[src] = np.concatenate([kept, 0.5 * speech_like(rng, 2.0, RATE, voices[1])])
        val.append(np.concatenate([kept, 0.5 * speech_like(rng, 2.0, RATE, voices[3])]))
        planted[len(val) - 1] = ("short_segment", src)
    root = tmp_path_factory.mktemp("audio")
    train_paths = write_wavs(root / "train", train, RATE)
    val_paths = write_wavs(root / "val", val, RATE)
    report = lg.audit({"train": root / "train", "val": root / "val"},
                      checks=["exact_duplicate", "augmented_duplicate", "partial_duplicate"],
                      config=lg.AuditConfig(progress=False))
    return {"train": train, "val": val, "planted": planted, "report": report,
            "paths": (train_paths, val_paths), "n_clean": 16}


def _pairs_by_eval(report):
    pairs = report.pairs()
    return {int(b): (c, int(a)) for a, b, c in zip(pairs["index_a"], pairs["index_b"], pairs["check"])}


@pytest.mark.parametrize("family", AUDIO_FAMILIES)
def test_augmented_copies_found(audio_data, family):
    found = _pairs_by_eval(audio_data["report"])
    planted = [(b, src) for b, (fam, src) in audio_data["planted"].items() if fam == family]
    hits = [b for b, src in planted if found.get(b) == ("augmented_duplicate", src)]
    # librosa's phase vocoder smears pitch-shifted and stretched speech: one miss in three is
    # tolerated there (the benchmark measures recall per family on more clips)
    need = len(planted) - (1 if family in ("pitch_shift", "time_stretch", "combined") else 0)
    assert len(hits) >= need, f"{family}: found {hits} of {planted}: {[found.get(b) for b, _ in planted]}"


def test_overall_recall(audio_data):
    found = _pairs_by_eval(audio_data["report"])
    planted = {b: src for b, (fam, src) in audio_data["planted"].items()
               if fam not in ("two_speaker", "short_segment")}
    hits = sum(found.get(b, (None, -1))[1] == src for b, src in planted.items())
    assert hits / len(planted) >= 0.9


def test_two_speaker_clip_is_a_partial_duplicate(audio_data):
    report = audio_data["report"]
    found = _pairs_by_eval(report)
    for b, (fam, src) in audio_data["planted"].items():
        if fam == "two_speaker":
            assert found.get(b) == ("partial_duplicate", src)
    f = next(f for f in report.findings if f.check == "partial_duplicate")
    assert f.severity == "warning"
    # about half of each clip is the leaked speaker: the share says so, and the segment is >= 1 s
    assert f.pairs["score"].between(0.3, 0.75).all()
    assert (f.pairs["matched_seconds"] >= 1.0).all()


def test_short_leaked_segment_is_a_partial_duplicate_by_its_match_quality(audio_data):
    # 1.35-1.45 s of a leaked speaker's sound: under the 1.5 s that loose chance stretches of one
    # voice can reach, but the same sound all along (patch correlation >= 0.9), which chance
    # stretches are not for more than about half a second. Decided on the longest matched
    # stretch alone (the rule before the strong stretch), all three were missed
    report = audio_data["report"]
    found = _pairs_by_eval(report)
    short = {b: src for b, (fam, src) in audio_data["planted"].items() if fam == "short_segment"}
    assert {b: found.get(b) for b in short} == {b: ("partial_duplicate", src) for b, src in short.items()}
    f = next(f for f in report.findings if f.check == "partial_duplicate")
    rows = f.pairs.set_index("index_b").loc[list(short)]
    assert (rows["matched_seconds"] < f.extra["threshold"]).all()   # under the ordinary floor
    assert (rows["strong_seconds"] >= 1.0).all()
    assert "same sound" in f.detail


def test_clean_recordings_of_the_same_voices_are_not_flagged(audio_data):
    found = _pairs_by_eval(audio_data["report"])
    assert not [b for b in found if b < audio_data["n_clean"]]
    assert len(audio_data["report"].leaked("val")) == len(audio_data["planted"])


def test_pairs_explain_the_transform(audio_data):
    f = next(f for f in audio_data["report"].findings if f.check == "augmented_duplicate")
    assert f.severity == "critical"
    by_eval = f.pairs.set_index("index_b")
    for b, (fam, _) in audio_data["planted"].items():
        if fam == "gain":
            assert by_eval.loc[b, "transform"] == "same pitch and tempo"
            assert by_eval.loc[b, "matched_share"] > 0.95
            # the score is the matched share less the training recording's chance level
            assert by_eval.loc[b, "score"] == pytest.approx(
                by_eval.loc[b, "matched_share"] - by_eval.loc[b, "chance_level"], abs=2e-3)
        if fam == "pitch_shift":
            assert abs(by_eval.loc[b, "semitones"]) >= 1.0  # the synthetic shift is 1 or 2 semitones


def test_alignment_recovers_pitch_and_tempo():
    rng = np.random.default_rng(3)
    import librosa

    wave = speech_like(rng, 3.0, RATE)
    ref = spectral_frames((wave, RATE))
    up2 = spectral_frames((librosa.effects.pitch_shift(wave, sr=RATE, n_steps=2.0), RATE))
    a = align(ref, up2)
    # shares are of the longer recording, in 160 ms patches: a copy through librosa's phase
    # vocoder keeps about 0.55-0.65 of them, another utterance under 0.15
    assert a.semitones == pytest.approx(2.0, abs=0.5) and a.share > 0.5
    slow = spectral_frames((librosa.effects.time_stretch(wave, rate=0.87), RATE))  # 15 % longer
    b = align(ref, slow)
    assert b.stretch > 1.0 and b.share > 0.5
    # the phase vocoder smears word edges into extra sounding frames of the copy: they count
    # against the share of the longer recording, not against the share of the training
    # recording that reappears (the augmented check's score)
    assert a.reference_share > a.share + 0.08 and b.reference_share > b.share + 0.1
    other = spectral_frames((speech_like(rng, 3.0, RATE), RATE))
    assert align(ref, other).share < 0.2 and align(ref, other).reference_share < 0.2


def test_signature_ignores_gain_and_silence():
    rng = np.random.default_rng(4)
    wave = speech_like(rng, 2.0, RATE)
    base = spectral_frames((wave, RATE)).astype(np.float32)
    louder = spectral_frames((wave * 3.0, RATE)).astype(np.float32)
    padded = spectral_frames((np.concatenate([np.zeros(RATE // 2, np.float32), wave, np.zeros(RATE, np.float32)]),
                              RATE)).astype(np.float32)
    assert np.allclose(base, louder, atol=2e-2)
    assert padded.shape == base.shape
    assert spectral_frames((np.zeros(RATE, np.float32), RATE)).shape[0] == 0  # silence has no frames


def test_fixed_loose_threshold_misfires_where_calibration_does_not():
    rng = np.random.default_rng(8)
    voice = speaker_voice(rng)
    train = [(speech_like(rng, 2.5, RATE, voice), RATE) for _ in range(12)]
    clean = [(speech_like(rng, 2.5, RATE, voice), RATE) for _ in range(6)]  # same speaker, new words
    # the score is the matched share less the training recording's chance level: at 0 any match
    # beyond that level counts, and other utterances of one voice share some similar frames
    cfg = lg.AuditConfig(progress=False, thresholds={"augmented_duplicate": 0.0})
    loose = lg.audit({"train": train, "val": clean}, checks=["augmented_duplicate"], config=cfg)
    assert len(loose.leaked("val")) > 0
    calibrated = lg.audit({"train": train, "val": clean}, checks=["augmented_duplicate"],
                          config=lg.AuditConfig(progress=False))
    assert calibrated.findings == []


def test_silent_and_tiny_recordings_do_not_break_the_audit():
    rng = np.random.default_rng(5)
    train = [(speech_like(rng, 2.0, RATE), RATE) for _ in range(6)] + [(np.zeros(RATE, np.float32), RATE)]
    val = [(np.zeros(100, np.float32), RATE), (train[2][0] * 0.5, RATE), (np.zeros(RATE, np.float32) + 1e-4, RATE)]
    report = lg.audit({"train": train, "val": val}, checks=["augmented_duplicate", "partial_duplicate"],
                      config=lg.AuditConfig(progress=False))
    assert report.leaked("val").tolist() == [1]


def test_second_audit_reads_alignments_and_calibration_from_the_cache(tmp_path):
    # the calibration (training clips aligned with their nearest other training clips) and the
    # verified pairs are cached with the signatures: an unchanged re-audit aligns nothing again
    from leakguard.similarity import audio as audio_backend

    rng = np.random.default_rng(12)
    train = [(speech_like(rng, 2.0, RATE), RATE) for _ in range(10)]
    val = [(speech_like(rng, 2.0, RATE), RATE), (augment_audio(train[3][0], RATE, rng, "noise"), RATE)]
    cfg = lg.AuditConfig(progress=False, cache_dir=str(tmp_path / "cache"))
    checks = ["augmented_duplicate", "partial_duplicate"]
    aligned = []
    real = audio_backend.align_many

    def counting(pairs, **kw):
        aligned.append(len(pairs))
        return real(pairs, **kw)

    audio_backend.align_many = counting
    try:
        first = lg.audit({"train": train, "val": val}, checks=checks, config=cfg)
        n_first = sum(aligned)
        second = lg.audit({"train": train, "val": val}, checks=checks, config=cfg)
    finally:
        audio_backend.align_many = real
    assert n_first >= 10  # calibration pairs + evaluation candidates
    assert sum(aligned) == n_first  # nothing aligned the second time
    assert first.leaked("val").tolist() == second.leaked("val").tolist() == [1]
    assert second.meta["cache"]["misses"] == 0
    pd_first, pd_second = first.pairs(), second.pairs()
    assert pd_first["score"].tolist() == pd_second["score"].tolist()


# ------------------------------------------------------------------ semantic duplicates

@pytest.fixture(scope="module")
def excerpts():
    """Training: the first 4 s of 30 field recordings, speech and music; evaluation: 10 new field
    recordings, 6 speech clips by the training voices, and a *later, non-overlapping* 4 s excerpt
    of 8 training recordings (no segment shared: only the semantic check can link them)."""
    rng = np.random.default_rng(21)
    recordings = [soundscape(rng, 12.0, RATE) for _ in range(30)]
    voices = [speaker_voice(rng) for _ in range(3)]
    train = [(r[:4 * RATE], RATE) for r in recordings]
    train += [(speech_like(rng, 3.0, RATE, voices[i % 3]), RATE) for i in range(12)]
    train += [(tone_clip(rng, 3.0, RATE), RATE) for _ in range(6)]
    val = [(soundscape(rng, 4.0, RATE), RATE) for _ in range(10)]
    val += [(speech_like(rng, 3.0, RATE, voices[i % 3]), RATE) for i in range(6)]
    planted = {}
    for k in range(8):
        planted[len(val)] = k
        val.append((recordings[k][8 * RATE:12 * RATE], RATE))
    return train, val, planted


def test_semantic_finds_other_excerpts_of_one_recording(excerpts):
    train, val, planted = excerpts
    report = lg.audit({"train": train, "val": val}, checks=["exact_duplicate", "semantic_duplicate"],
                      config=lg.AuditConfig(progress=False))
    p = report.pairs(check="semantic_duplicate")
    found = dict(zip(p["index_b"].astype(int), p["index_a"].astype(int)))
    assert not {b for b in found if b not in planted}, "a clean recording was flagged"
    assert sum(found.get(b) == a for b, a in planted.items()) >= 7, (found, planted)
    f = report.findings[0]
    assert f.severity == "warning" and f.extra["embedder"] == "spectral_stats"
    assert f.extra["null_size"] == len(train) and 0.9 < f.extra["threshold"] < 1.0
    assert (p["score"] >= f.extra["threshold"]).all()


def test_semantic_loose_threshold_flags_clean_recordings(excerpts):
    # the calibrated threshold matters: one that is lax by the width of the null's tail misfires
    train, val, planted = excerpts
    cfg = lg.AuditConfig(progress=False, thresholds={"semantic_duplicate": 0.9})
    report = lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"], config=cfg)
    flagged = set(report.pairs(check="semantic_duplicate")["index_b"].astype(int))
    assert flagged - set(planted)


def test_semantic_with_a_user_embedder(excerpts):
    from leakguard.signatures.audio import spectral_stats

    train, val, planted = excerpts
    centre = np.mean([spectral_stats(item) for item in train], axis=0)
    calls = []

    def my_embedder(items):  # e.g. a learned model; here centred spectral statistics
        calls.append(len(items))
        assert all(isinstance(w, np.ndarray) and r == RATE for w, r in items)
        return np.stack([spectral_stats(item) - centre for item in items])

    my_embedder.name = "centred-stats"
    report = lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"],
                      config=lg.AuditConfig(progress=False, embedder=my_embedder))
    assert calls == [len(train), len(val)]
    found = set(report.pairs(check="semantic_duplicate")["index_b"].astype(int))
    assert found and found <= set(planted)
    assert report.findings[0].extra["embedder"] == "centred-stats"


def test_semantic_user_embedder_of_the_wrong_shape_is_named(excerpts):
    from leakguard.errors import InputError

    train, val, _ = excerpts
    cfg = lg.AuditConfig(progress=False, embedder=lambda items: np.zeros((len(items) + 1, 4)))
    with pytest.raises(InputError, match="split 'train'"):
        lg.audit({"train": train[:6], "val": val[:2]}, checks=["semantic_duplicate"], config=cfg)


def test_semantic_finds_excerpts_whose_foreground_changed_on_a_speech_split(monkeypatch):
    """The benchmark's excerpt case of seed 1 (espeak-ng sentences by 5 voices and 16 field
    recordings in training; later excerpts of 8 of them, new field recordings and sentences by the
    same voices in evaluation): the default embedding describes each recording's steady background
    (low percentiles per band), which an excerpt keeps when its sound events are fewer or quieter
    than in the training excerpt. Every excerpt is found, with its own recording, and no clean
    recording is flagged. The session-5 embedding (mean, spread and change of each band: the
    foreground) missed the excerpt whose events are 5 dB quieter (cosine 0.967 vs a calibrated
    0.988; seed 2 has a second such miss, 0.9924 vs 0.9925)."""
    seed = 1
    import shutil
    from pathlib import Path

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    bench = pytest.importorskip("bench_audio_similarity")
    train, val, truth = bench._case("excerpt", 100 * seed + bench.FAMILIES.index("excerpt"), 60)
    # as the benchmark's WAV files hold them: 16-bit samples
    pcm = [(np.round(np.clip(w, -1, 32767 / 32768) * 32768) / 32768).astype(np.float32) for w in (*train, *val)]
    train, val = [(w, RATE) for w in pcm[:len(train)]], [(w, RATE) for w in pcm[len(train):]]
    report = lg.audit({"train": train, "val": val}, checks=["exact_duplicate", "semantic_duplicate"],
                      config=lg.AuditConfig(progress=False))
    p = report.pairs(check="semantic_duplicate")
    found = dict(zip(p["index_b"].astype(int), p["index_a"].astype(int)))
    # excerpt k of the benchmark is a later part of field recording k, training clip k * 3
    sources = {b: 3 * k for k, b in enumerate(sorted(truth))}
    assert found == sources, (found, sources)


# ------------------------------------------------------------------ a monotone voice (as espeak-ng)

def _monotone_units(rng, n_units: int = 10) -> list:
    """A monotone voice: a fixed pitch and a few syllables rendered the same way every time, as a
    diphone synthesiser (espeak-ng) does: its other sentences share many identical stretches."""
    from leakguard.similarity.synthetic import _resonator

    units = []
    for _ in range(n_units):
        length = int(rng.uniform(0.12, 0.22) * RATE)
        t = np.arange(length) / RATE
        pulses = np.diff(np.floor(np.cumsum(np.full(length, 140.0 / RATE))), prepend=0.0)
        seg = np.zeros(length)
        for lo, hi in ((0, length // 2), (length // 2, length)):
            formants = rng.uniform([280, 850, 2400], [850, 2400, 3300])
            seg[lo:hi] = sum(_resonator(pulses[lo:hi], f, 60 + 0.06 * f, RATE) * w
                             for f, w in zip(formants, (1.0, 0.6, 0.3)))
        units.append(seg * np.minimum(1, np.minimum(t / 0.02, (t[-1] - t) / 0.03 + 1e-9)))
    return units


def _monotone_sentence(rng, units) -> np.ndarray:
    parts = [np.zeros(int(0.1 * RATE))]
    for _ in range(int(rng.integers(10, 16))):
        parts.append(units[int(rng.integers(len(units)))])
        if rng.random() < 0.3:
            parts.append(np.zeros(int(0.12 * RATE)))
    x = np.concatenate(parts + [np.zeros(int(0.1 * RATE))])
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def monotone():
    """Training: 15 sentences of a monotone voice, speech by two other voices, music; evaluation:
    10 new sentences of the monotone voice (hard negatives) and 6 copies of its training sentences
    under gain, noise, shift, pitch shift, time stretch and removed silence."""
    rng = np.random.default_rng(31)
    units = _monotone_units(rng)
    voices = [speaker_voice(rng) for _ in range(2)]
    train = [_monotone_sentence(rng, units) if i % 2 == 0 else
             tone_clip(rng, 3.0, RATE) if i % 6 == 5 else
             speech_like(rng, rng.uniform(2, 3.5), RATE, voices[i % 4 // 2]) for i in range(30)]
    val = [_monotone_sentence(rng, units) for _ in range(10)]
    planted = {}
    for k, family in enumerate(["gain", "noise", "shift", "pitch_shift", "time_stretch", "remove_silence"]):
        planted[len(val)] = 2 * k
        val.append(augment_audio(train[2 * k], RATE, rng, family))
    data = {"train": [(x, RATE) for x in train], "val": [(x, RATE) for x in val]}
    return data, planted


def _audit_pairs(data, **augmented_options):
    report = lg.audit(data, checks=["augmented_duplicate", "partial_duplicate"],
                      config=lg.AuditConfig(progress=False,
                                            check_options={"augmented_duplicate": augmented_options}))
    return report, _pairs_by_eval(report)


def test_monotone_voice_copies_found_and_its_other_sentences_not(monotone):
    data, planted = monotone
    report, found = _audit_pairs(data)
    assert {b: found.get(b) for b in planted} == {b: ("augmented_duplicate", a) for b, a in planted.items()}
    assert not [b for b in found if b not in planted], found
    f = next(f for f in report.findings if f.check == "augmented_duplicate")
    # the monotone voice's sentences match each other by chance over half of their length: its
    # level is taken off the score, and the copies still stand well above the threshold
    assert (f.pairs["chance_level"] > 0.4).all()
    assert (f.pairs["score"] >= f.extra["threshold"]).all() and (f.pairs["matched_share"] > 0.8).all()


def test_chance_level_when_the_null_samples_few_training_recordings(monotone):
    # on a large training split the calibration samples only some recordings: the training
    # recordings that evaluation recordings may copy are aligned with their own candidates for
    # their chance level all the same
    data, planted = monotone
    report, found = _audit_pairs(data, null_samples=5)
    assert {b: found.get(b) for b in planted} == {b: ("augmented_duplicate", a) for b, a in planted.items()}
    assert not [b for b in found if b not in planted], found
    f = next(f for f in report.findings if f.check == "augmented_duplicate")
    assert f.extra["null_size"] == 5 and (f.pairs["chance_level"] > 0.4).all()


def test_monotone_voice_without_its_chance_level_is_flagged(monotone):
    # the same decision on the raw matched share (no per-recording chance level) flags other
    # sentences of the monotone voice: the level is what keeps precision here
    data, planted = monotone
    _, found = _audit_pairs(data, level_weight=0.0)
    assert [b for b in found if b not in planted]


def test_alignment_path_follows_frames_inserted_at_every_pause():
    # a copy whose pauses became sound (noise filling them, a phase vocoder's smear) has a frame or
    # two more at every pause: the matched line moves by one every few frames. A move by one
    # line costs STEP_PENALTY (3) matched frames: the path follows such a copy. A flat 10 per
    # move (the rule before) made it stay on one line and match one segment in twelve (an espeak
    # noise copy was aligned at a wrong x1.25 stretch, 0.61 of its source matched, and missed)
    from leakguard.similarity.audio_align import JUMP_PENALTY, MAX_JUMP, STEP_PENALTY, _best_paths

    hits = np.zeros((30, 72), dtype=np.float32)
    line = 20 - np.arange(72) // 6                       # one line down after every 6 frames
    hits[line, np.arange(72)] = 1.0
    cost = np.minimum(STEP_PENALTY * np.arange(1, MAX_JUMP + 1), JUMP_PENALTY)
    (path,) = _best_paths([hits], MAX_JUMP, cost)
    assert hits[path, np.arange(72)].sum() >= 70
    (flat,) = _best_paths([hits], MAX_JUMP, JUMP_PENALTY)
    assert hits[flat, np.arange(72)].sum() <= 12


@pytest.mark.parametrize("seed", [3, 7])
def test_alignment_reaches_a_strong_slow_down(seed):
    # librosa's phase vocoder smears word edges: a 1.39x slow-down reads 1.4-1.6x in sounding
    # frames. The stretch search reaches 1.42; stopping at 1.25 left the match covering under
    # half of the recordings, under the augmented check's 0.75 coverage
    import librosa

    wave = speech_like(np.random.default_rng(seed), 3.0, RATE)
    ref = spectral_frames((wave, RATE))
    slow = spectral_frames((librosa.effects.time_stretch(wave, rate=0.72), RATE))
    a = align(ref, slow)
    assert a.stretch >= 1.3 and a.coverage >= 0.75 and a.reference_share >= 0.6
    # with a flat cost per move (the session-4 rule) the range is what reaches it (cheap one-line
    # moves sometimes follow the drift past the range's end as well)
    short = align(ref, slow, step_penalty=None,
                  stretches=(0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.17, 1.25))
    assert short.coverage < 0.75
