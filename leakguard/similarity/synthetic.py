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
        objs = [mod] + [getattr(mod, n, None) for n in sorted(dir(mod)) if not n.startswith("_")]
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
    "return": "give back", "returns": "gives back", "returned": "given back", "value": "result",
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
