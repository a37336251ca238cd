"""Real-ish data with planted leaks, for tests, benchmarks and examples (no download needed).

- :func:`prose_corpus`: paragraphs of real English prose taken from the docstrings of the Python
  standard library installed here (deduplicated, near-copies removed), so tests run offline.
- :func:`augment_text`, :func:`paraphrase`: the text augmentations the similarity checks must
  see through.
- :func:`speech_like`, :func:`augment_audio`: synthetic voiced speech (a glottal pulse train with
  a wandering pitch through moving formant resonances, syllables separated by pauses) and the
  audio augmentations (gain, noise, shift, silence, pitch shift, time stretch).
- :func:`jitter_rows`: jittered copies of table rows.

>>> from leakguard.similarity.synthetic import prose_corpus, augment_text
>>> import numpy as np
>>> texts = prose_corpus(50)
>>> len(texts), all(len(t.split()) >= 30 for t in texts)
(50, True)
>>> augment_text(texts[0], np.random.default_rng(0), "case") == texts[0].upper()
True
"""
from __future__ import annotations

import re

import numpy as np

STDLIB_MODULES = (
    "json argparse collections functools itertools logging os pathlib re subprocess threading "
    "asyncio email http.client urllib.request unittest typing dataclasses decimal fractions "
    "statistics random datetime calendar csv sqlite3 zipfile tarfile shutil tempfile textwrap "
    "difflib heapq bisect pickle copy inspect ast tokenize socket ssl hashlib hmac secrets string "
    "struct codecs io gzip bz2 lzma configparser optparse getopt pprint enum abc contextlib weakref "
    "types operator math cmath array queue sched selectors signal mmap xml.etree.ElementTree "
    "html.parser mailbox imaplib smtplib ftplib poplib uuid ipaddress base64 binascii quopri locale "
    "gettext platform sysconfig trace timeit pdb cProfile doctest pydoc zipimport importlib pkgutil "
    "glob fnmatch filecmp fileinput stat netrc plistlib wave colorsys multiprocessing "
    "concurrent.futures").split()


def _docstring_paragraphs(min_words: int) -> list[str]:
    import importlib
    import inspect

    paras: dict[str, None] = {}
    for name in STDLIB_MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module missing on this platform is simply skipped
            continue
        # submodules are left out: a package gains them as attributes when anything imports
        # them, so the corpus would depend on what else the process has loaded
        objs = [mod] + [o for n in sorted(dir(mod)) if not n.startswith("_")
                        and not inspect.ismodule(o := getattr(mod, n, None))]
        for obj in objs:
            members = [obj]
            if inspect.isclass(obj):
                members += [v for k, v in sorted(vars(obj).items()) if not k.startswith("_") and callable(v)]
            for m in members:
                if not (inspect.ismodule(m) or inspect.isclass(m) or inspect.isroutine(m)):
                    continue
                doc = inspect.getdoc(m)
                if not doc:
                    continue
                for p in re.split(r"\n\s*\n", doc):
                    p = " ".join(p.split())
                    if (len(p.split()) >= min_words and ">>>" not in p
                            and sum(c.isalpha() or c == " " for c in p) / len(p) > 0.9):
                        paras.setdefault(p, None)
    return list(paras)


PASSAGE_WORDS = 8


def prose_corpus(n: int | None = None, min_words: int = 30, random_state: int = 0,
                 max_jaccard: float = 0.2) -> list[str]:
    """Up to ``n`` paragraphs of real prose (stdlib docstrings), no two of them near-copies.

    Paragraphs whose character-shingle Jaccard similarity with an earlier kept one exceeds
    ``max_jaccard`` are dropped, and so are paragraphs sharing a run of 8 words with an earlier
    kept one, so the corpus is clean ground truth: any near-duplicate in a
    test is one the test planted. The corpus still holds the boilerplate phrases docstrings
    share ("Return a new ...", "If the optional argument ..."), which are the hard negatives.
    """
    from ..search.lsh import lsh_candidates
    from ..signatures.text import char_shingles, jaccard_sorted, minhash_of_shingles

    paras = _docstring_paragraphs(min_words)
    order = np.random.default_rng(random_state).permutation(len(paras))
    paras = [paras[i] for i in order]
    shingles = [char_shingles(p) for p in paras]
    sketches = np.stack([minhash_of_shingles(s) for s in shingles])
    q, i = lsh_candidates(sketches, sketches, threshold=max_jaccard, exclude_self=True, max_bucket=10 ** 6)
    drop = set()
    for a, b in sorted(zip(q.tolist(), i.tolist())):  # a > b: drop the later one of a close pair
        if b not in drop and jaccard_sorted(shingles[a], shingles[b]) > max_jaccard:
            drop.add(a)
    # no two kept paragraphs share a passage: an 8-word run seen in a kept paragraph drops the later
    # one (plain word tuples, independent of the signatures under test)
    seen: set[tuple] = set()
    kept = []
    for j, p in enumerate(paras):
        if j in drop:
            continue
        words = re.sub(r"[^\w\s]", " ", p.lower()).split()
        grams = {tuple(words[k:k + PASSAGE_WORDS]) for k in range(len(words) - PASSAGE_WORDS + 1)}
        if grams & seen:
            continue
        seen |= grams
        kept.append(p)
    return kept if n is None else kept[:n]


# ---------------------------------------------------------------- text augmentations

TEXT_FAMILIES = ("typos", "drop_words", "add_words", "swap_words", "case", "punctuation",
                 "whitespace", "combined")
_FILLERS = ("really", "also", "just", "then", "very", "still", "quite", "indeed", "simply", "now")


def _typo(word: str, rng) -> str:
    if len(word) < 3:
        return word
    i = int(rng.integers(1, len(word) - 1))
    op = rng.integers(4)
    letter = chr(int(rng.integers(97, 123)))
    if op == 0:
        return word[:i] + letter + word[i + 1:]        # substitution
    if op == 1:
        return word[:i] + word[i + 1:]                 # deletion
    if op == 2:
        return word[:i] + letter + word[i:]            # insertion
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:]  # transposition


def augment_text(text: str, rng: np.random.Generator, family: str, strength: float = 0.1) -> str:
    """An augmented copy of ``text``: ``strength`` is the share of words touched (typos, drops...)."""
    words = text.split()
    n_touch = max(1, int(round(strength * len(words))))
    if family == "typos":
        for i in rng.choice(len(words), size=min(n_touch, len(words)), replace=False):
            words[i] = _typo(words[i], rng)
    elif family == "drop_words":
        drop = set(rng.choice(len(words), size=min(n_touch, len(words) - 1), replace=False).tolist())
        words = [w for i, w in enumerate(words) if i not in drop]
    elif family == "add_words":
        for _ in range(n_touch):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(_FILLERS)))
    elif family == "swap_words":
        for _ in range(n_touch):
            i = int(rng.integers(0, len(words) - 1))
            words[i], words[i + 1] = words[i + 1], words[i]
    elif family == "case":
        return text.upper() if rng.random() < 1.0 else text.lower()
    elif family == "punctuation":
        out = re.sub(r"[.,;:!?()'\"]", "", text)
        return re.sub(r"(\w+) (\w+)", lambda m: m.group(1) + ", " + m.group(2) if rng.random() < 0.1
                      else m.group(0), out) + "!"
    elif family == "whitespace":
        return "".join(c + (" " * int(rng.integers(1, 3)) if c == " " else "") if c != " " else
                       ("\n" if rng.random() < 0.1 else "  ") for c in text)
    elif family == "combined":
        out = augment_text(text, rng, "typos", strength / 2)
        out = augment_text(out, rng, "drop_words", strength / 2)
        out = augment_text(out, rng, "swap_words", strength / 2)
        return augment_text(out, rng, "punctuation").lower()
    else:
        raise ValueError(f"unknown text augmentation {family!r}; choose from {TEXT_FAMILIES}")
    return " ".join(words)


_SYNONYMS = {
    "return": "give back", "returned": "given back", "value": "result",
    "values": "results", "function": "routine", "object": "instance", "objects": "instances",
    "create": "build", "creates": "builds", "argument": "parameter", "arguments": "parameters",
    "optional": "non-mandatory", "default": "fallback", "raise": "throw", "raises": "throws",
    "error": "failure", "file": "document", "files": "documents", "list": "sequence",
    "string": "text", "strings": "texts", "number": "count", "use": "employ", "used": "employed",
    "must": "has to", "should": "ought to", "can": "may", "if": "when", "specified": "given",
    "called": "invoked", "method": "procedure", "new": "fresh", "set": "assign", "the": "the",
    "data": "information", "read": "load", "write": "store", "also": "additionally",
    "contains": "holds", "contain": "hold", "remove": "delete", "removes": "deletes",
    "given": "supplied", "returns": "yields", "true": "truthy", "false": "falsy",
}


def paraphrase(text: str, rng: np.random.Generator, share: float = 0.5) -> str:
    """A lexical paraphrase: common words swapped for synonyms, sentences reordered.

    What an embedder built on word and character n-grams can still recognise; a paraphrase that
    changes most of the vocabulary needs a real sentence-embedding model.
    """
    sentences = [s for s in re.split(r"(?<=[.;])\s+", text) if s]
    if len(sentences) > 1:
        sentences = [sentences[i] for i in rng.permutation(len(sentences))]
    out = []
    for w in " ".join(sentences).split():
        core = w.strip(".,;:").lower()
        if core in _SYNONYMS and rng.random() < share * 2:
            w = w.lower().replace(core, _SYNONYMS[core])
        out.append(w)
    return " ".join(out)


def with_passage(text: str, passage: str, rng: np.random.Generator) -> str:
    """``text`` with ``passage`` inserted between two of its sentences (a shared passage)."""
    sentences = re.split(r"(?<=[.;])\s+", text)
    at = int(rng.integers(0, len(sentences) + 1))
    return " ".join(sentences[:at] + [passage] + sentences[at:])


# ---------------------------------------------------------------- audio

AUDIO_FAMILIES = ("gain", "noise", "shift", "add_silence", "remove_silence", "pitch_shift",
                  "time_stretch", "combined")


def speaker_voice(rng: np.random.Generator) -> dict:
    """Random voice parameters: base pitch and a vowel inventory (formant triples)."""
    return {"f0": float(rng.uniform(90, 240)),
            "vowels": [(float(rng.uniform(280, 850)), float(rng.uniform(850, 2400)),
                        float(rng.uniform(2400, 3300))) for _ in range(6)],
            "breath": float(rng.uniform(0.02, 0.08))}


def _resonator(x: np.ndarray, freq: float, bandwidth: float, rate: int) -> np.ndarray:
    from scipy.signal import lfilter

    r = np.exp(-np.pi * bandwidth / rate)
    theta = 2 * np.pi * freq / rate
    return lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], x)


def speech_like(rng: np.random.Generator, duration: float = 3.0, rate: int = 16000,
                voice: dict | None = None) -> np.ndarray:
    """Voiced speech-like audio: syllables of a glottal pulse train (wandering pitch) through
    moving formant resonances, with fricative noise bursts and pauses between words.

    Every call draws new syllables, so two clips of one ``voice`` are different utterances by one
    speaker: the hard negatives of audio duplicate detection.
    """
    voice = voice or speaker_voice(rng)
    n = int(duration * rate)
    out = np.zeros(n)
    pos = int(rng.uniform(0.05, 0.2) * rate)
    while pos < n - int(0.1 * rate):
        for _ in range(int(rng.integers(1, 4))):           # syllables of one word
            length = int(rng.uniform(0.12, 0.3) * rate)
            if pos + length >= n:
                break
            t = np.arange(length) / rate
            f0 = voice["f0"] * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(1, 4) * t + rng.uniform(0, 6.3))
                                + rng.uniform(-0.1, 0.1))
            phase = np.cumsum(f0 / rate)
            pulses = np.diff(np.floor(phase), prepend=0.0)   # one impulse per glottal period
            v1, v2 = rng.choice(len(voice["vowels"]), size=2)
            a, b = np.array(voice["vowels"][v1]), np.array(voice["vowels"][v2])
            seg = np.zeros(length)
            half = length // 2
            for part, (lo, hi) in enumerate(((0, half), (half, length))):
                formants = a if part == 0 else (a + b) / 2
                src = pulses[lo:hi]
                seg[lo:hi] = sum(_resonator(src, f, 60 + 0.06 * f, rate) * w
                                 for f, w in zip(formants, (1.0, 0.6, 0.3)))
            if rng.random() < 0.4:                            # a fricative at the syllable start
                k = int(0.05 * rate)
                fric = _resonator(rng.normal(size=k), rng.uniform(2500, 3800), 900, rate)
                seg[:k] += fric * voice["breath"] * 20
            env = np.minimum(1, np.minimum(t / 0.02, (t[-1] - t) / 0.03 + 1e-9))
            out[pos:pos + length] += seg * env * rng.uniform(0.5, 1.0)
            pos += length
        pos += int(rng.uniform(0.08, 0.35) * rate)            # pause between words
    out /= np.max(np.abs(out)) + 1e-12
    return (0.5 * out).astype(np.float32)


def soundscape(rng: np.random.Generator, seconds: float, rate: int = 16000) -> np.ndarray:
    """A long field recording: a coloured-noise background of its own and three recurring sound
    events (harmonic notes at its own pitches) at random times. Excerpts of one soundscape share
    no segment but sound alike: the audio semantic check's positives."""
    n = int(seconds * rate)
    noise = rng.normal(size=n)
    out = sum(_resonator(noise, rng.uniform(200, 3500), rng.uniform(100, 800), rate) * rng.uniform(0.3, 1)
              for _ in range(3))
    out = out / np.std(out) * rng.uniform(0.05, 0.2)
    events = [(110 * 2 ** (rng.integers(0, 36) / 12), rng.uniform(0.1, 0.4), int(rng.integers(1, 5)))
              for _ in range(3)]
    pos = int(rng.uniform(0, 0.3) * rate)
    while pos < n:
        f, dur, harmonics = events[rng.integers(3)]
        length = min(int(dur * rate), n - pos)
        t = np.arange(length) / rate
        out[pos:pos + length] += (sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, harmonics + 1))
                                  * np.exp(-3 * t / dur) * rng.uniform(0.3, 0.8))
        pos += length + int(rng.uniform(0.1, 0.8) * rate)
    return (0.5 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def tone_clip(rng: np.random.Generator, duration: float = 3.0, rate: int = 16000) -> np.ndarray:
    """Music-like audio: notes of harmonic tones, chirps and noise bursts."""
    n = int(duration * rate)
    out = np.zeros(n)
    pos = 0
    while pos < n:
        length = min(n - pos, int(rng.uniform(0.1, 0.4) * rate))
        t = np.arange(length) / rate
        kind = rng.integers(3)
        if kind == 0:
            f = 110 * 2 ** (rng.integers(0, 36) / 12)
            seg = sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, 5))
        elif kind == 1:
            f0, f1 = rng.uniform(200, 3000, size=2)
            seg = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * t[-1] + 1e-9)))
        else:
            seg = _resonator(rng.normal(size=length), rng.uniform(300, 3500), 300, rate) * 3
        out[pos:pos + length] = seg * np.exp(-3 * t / (t[-1] + 1e-9))
        pos += length + int(rng.uniform(0, 0.1) * rate)
    out /= np.max(np.abs(out)) + 1e-12
    return (0.5 * out).astype(np.float32)


def _speech_mask(wave: np.ndarray, rate: int, floor_db: float = -35.0) -> np.ndarray:
    frame = int(0.02 * rate)
    n = len(wave) // frame
    energy = np.array([np.mean(wave[i * frame:(i + 1) * frame] ** 2) for i in range(n)]) + 1e-12
    db = 10 * np.log10(energy / energy.max())
    return np.repeat(db > floor_db, frame)


def augment_audio(wave: np.ndarray, rate: int, rng: np.random.Generator, family: str,
                  strength: float = 1.0) -> np.ndarray:
    """An augmented copy of ``wave``; pitch shift and time stretch use librosa (the real thing)."""
    wave = np.asarray(wave, dtype=np.float32)
    if family == "gain":
        return (wave * rng.choice([0.25, 0.5, 1.8])).astype(np.float32)
    if family == "noise":
        snr_db = 20 - 5 * strength
        noise = rng.normal(size=len(wave)).astype(np.float32)
        mask = _speech_mask(wave, rate)
        power = float(np.mean(wave[:len(mask)][mask] ** 2)) if mask.any() else float(np.mean(wave ** 2))
        return wave + noise * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
    if family == "shift":
        pad = int(rng.uniform(0.1, 0.6) * strength * rate)
        return np.concatenate([np.zeros(pad, np.float32), wave])[:len(wave) + pad // 2]
    if family == "add_silence":
        cuts = np.sort(rng.choice(len(wave), size=3, replace=False))
        pieces, last = [], 0
        for c in cuts:
            pieces += [wave[last:c], np.zeros(int(rng.uniform(0.1, 0.4) * rate), np.float32)]
            last = c
        return np.concatenate(pieces + [wave[last:]])
    if family == "remove_silence":
        mask = _speech_mask(wave, rate)
        mask = np.concatenate([mask, np.zeros(len(wave) - len(mask), bool)])
        return wave[mask]
    if family == "pitch_shift":
        import librosa

        steps = float(rng.choice([-2.0, -1.0, 1.0, 2.0])) * strength
        return librosa.effects.pitch_shift(wave, sr=rate, n_steps=steps).astype(np.float32)
    if family == "time_stretch":
        import librosa

        factor = float(rng.choice([0.85, 0.92, 1.08, 1.15]))
        return librosa.effects.time_stretch(wave, rate=factor).astype(np.float32)
    if family == "combined":
        out = augment_audio(wave, rate, rng, "gain")
        out = augment_audio(out, rate, rng, str(rng.choice(["pitch_shift", "time_stretch"])), 0.5)
        return augment_audio(out, rate, rng, "noise", 0.0)
    raise ValueError(f"unknown audio augmentation {family!r}; choose from {AUDIO_FAMILIES}")


def write_wavs(folder, waves: list[np.ndarray], rate: int, prefix: str = "clip") -> list:
    """Write clips as 16-bit WAV files with soundfile; returns their paths."""
    from pathlib import Path

    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, w in enumerate(waves):
        p = folder / f"{prefix}{i:04d}.wav"
        sf.write(str(p), np.clip(w, -1, 1), rate, subtype="PCM_16")
        paths.append(p)
    return paths


# ---------------------------------------------------------------- tables and series

def jitter_rows(frame, rng: np.random.Generator, scale: float = 0.02):
    """Copies of the rows of ``frame`` with Gaussian jitter of ``scale`` x each numeric column's
    robust spread (IQR / 1.349, or the standard deviation where the IQR is zero)."""
    import pandas as pd

    out = frame.copy()
    for col in frame.columns:
        s = frame[col]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        spread = (s.quantile(0.75) - s.quantile(0.25)) / 1.349
        spread = spread if spread > 0 else s.std()
        if spread > 0:
            out[col] = s.to_numpy(dtype=np.float64) + rng.normal(size=len(s)) * scale * spread
    return out


def random_series(rng: np.random.Generator, n: int, length: int = 120) -> list[np.ndarray]:
    """Sensor-like series: a random walk plus a seasonal component and noise, each its own."""
    out = []
    t = np.arange(length)
    for _ in range(n):
        walk = np.cumsum(rng.normal(size=length)) * rng.uniform(0.2, 1.0)
        season = rng.uniform(0, 3) * np.sin(2 * np.pi * t / rng.uniform(10, 40) + rng.uniform(0, 6.3))
        out.append(walk + season + rng.normal(size=length) * 0.3 + rng.uniform(-5, 5))
    return out
