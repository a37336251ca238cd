"""Text signatures: shingles and MinHash over normalised text, and word-shingle sequences for passages.

Normalisation (what an augmented copy may change, and the signatures ignore): Unicode NFKC,
case folding, accents stripped, punctuation turned into spaces, whitespace runs folded. On the
normalised text:

- ``shingles``: the sorted unique 64-bit hashes of its character 5-grams. The exact Jaccard
  similarity of two texts' shingle sets is the verification score of augmented duplicates: a
  typo changes at most 5 shingles, a dropped or swapped word about 5 to 10.
- ``minhash``: a MinHash sketch (128 values) of the same shingle set, for LSH candidate search
  (:mod:`leakguard.search.lsh`); the share of equal values estimates the Jaccard similarity.
- ``passages``: the hashes of its word 6-grams *in text order* (not deduplicated), so a shared
  passage is a run of equal hashes; partial duplicates are found and measured on these.

All hashes are deterministic (no Python ``hash()``), so cached signatures stay valid across runs.

>>> from leakguard.signatures.text import minhash, normalize_text
>>> normalize_text("  The QUICK, brown fox! ")
'the quick brown fox'
>>> a, b = minhash("The quick brown fox jumps over the lazy dog"), minhash("the quick brown fox jumped over the lazy dog.")
>>> 0.4 < float((a == b).mean()) < 0.9
True
"""
from __future__ import annotations

import re
import unicodedata
import zlib
from functools import lru_cache

import numpy as np

from .registry import register_signature

CHAR_NGRAM = 5
WORD_NGRAM = 6
NUM_PERM = 128
_MASK32 = np.uint64(0xFFFFFFFF)
_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_APOSTROPHES = re.compile(r"(?<=\w)['\u2019](?=\w)")  # "don't" and "dont" normalise alike


def normalize_text(text: str) -> str:
    """Case-folded, accent- and punctuation-free text with single spaces (what augmentations keep)."""
    if not text.isascii():  # ASCII has no compatibility forms or accents: skip the per-character pass
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    text = _PUNCT.sub(" ", _APOSTROPHES.sub("", text.casefold()))
    return " ".join(text.split())


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads polynomial hashes over all 64 bits (uint64 wraps on purpose)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _ngram_hashes(codes: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of every window of ``n`` consecutive codes, in order (vectorised)."""
    codes = codes.astype(np.uint64)
    if len(codes) < n:
        if len(codes) == 0:
            return np.zeros(0, dtype=np.uint64)
        n = len(codes)  # a text shorter than one n-gram is one shingle
    h = np.zeros(len(codes) - n + 1, dtype=np.uint64)
    base = np.uint64(1_000_003)
    mixed = _mix64(codes)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * base + mixed[j:len(codes) - n + 1 + j]
    return _mix64(h)


@lru_cache(maxsize=8)  # the shingles and minhash signatures of one text are computed back to back
def char_shingles(text: str, n: int = CHAR_NGRAM, normalized: bool = False) -> np.ndarray:
    """Sorted unique hashes of the character ``n``-grams of the normalised text (read-only array)."""
    norm = text if normalized else normalize_text(text)
    codes = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32)
    out = np.unique(_ngram_hashes(codes, n))
    out.flags.writeable = False
    return out


def word_hashes(words: list[str]) -> np.ndarray:
    return np.fromiter((zlib.crc32(w.encode("utf-8")) for w in words), dtype=np.uint64, count=len(words))


def word_shingles(text: str, n: int = WORD_NGRAM) -> np.ndarray:
    """Hashes of the word ``n``-grams of the normalised text, in text order (position i = words i..i+n-1)."""
    words = normalize_text(text).split()
    if len(words) < n:
        return np.zeros(0, dtype=np.uint64)  # too short to hold a passage worth reporting
    return _ngram_hashes(word_hashes(words), n)


def _permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2 ** 63, size=num_perm, dtype=np.uint64) | np.uint64(1)  # odd multipliers
    b = rng.integers(0, 2 ** 63, size=num_perm, dtype=np.uint64)
    return a, b


_PERM = _permutations(NUM_PERM)


def minhash_of_shingles(shingles: np.ndarray, num_perm: int = NUM_PERM) -> np.ndarray:
    """MinHash sketch (``num_perm`` uint32 values) of a set of 64-bit shingle hashes.

    Each permutation is a multiply-add-shift hash of the shingle (2-universal); an empty set gets
    the all-max sketch, which matches only other empty texts.
    """
    a, b = _PERM if num_perm == NUM_PERM else _permutations(num_perm)
    out = np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
    if len(shingles) == 0:
        return out
    s = np.asarray(shingles, dtype=np.uint64)
    # chunk the shingles so (chunk x num_perm) stays small for long texts
    with np.errstate(over="ignore"):
        for start in range(0, len(s), 4096):
            chunk = s[start:start + 4096, None]
            hv = ((chunk * a[None, :] + b[None, :]) >> np.uint64(32)).astype(np.uint32)
            np.minimum(out, hv.min(axis=0), out=out)
    return out


def minhash(text: str, num_perm: int = NUM_PERM) -> np.ndarray:
    """MinHash sketch of the character 5-gram shingles of the normalised text."""
    return minhash_of_shingles(char_shingles(text), num_perm)


def jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


@register_signature("text", "shingles")
def text_shingles(text: str) -> np.ndarray:
    return char_shingles(text)


@register_signature("text", "minhash")
def text_minhash(text: str) -> np.ndarray:
    return minhash(text)


@register_signature("text", "passages")
def text_passages(text: str) -> np.ndarray:
    return word_shingles(text)
