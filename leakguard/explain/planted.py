"""Shortcuts planted with known truth, for tests, benchmarks and demonstrations.

Each function returns data with a leak of one known kind added, and says where it is, so a
detector's recall and precision can be measured rather than eyeballed.

>>> from sklearn.datasets import load_breast_cancer
>>> from leakguard.explain.planted import plant_tabular
>>> d = load_breast_cancer(as_frame=True)
>>> frame, leaky = plant_tabular(d.data, d.target.to_numpy(), "label_noise", seed=0)
>>> leaky
['outcome_score']
"""
from __future__ import annotations

import numpy as np
import pandas as pd

TABULAR_PLANTS = ("label_noise", "identifier", "post_outcome_text", "function_of_label",
                  "function_of_label_and_other", "missingness", "outcome_date")

_FILLER = ("patient seen in clinic notes reviewed vitals stable history taken follow plan discussed "
           "family present imaging ordered sample sent results pending report filed by staff").split()
_OUTCOME_WORDS = {0: ["benign", "no", "malignancy", "reassured", "discharged"],
                  1: ["malignant", "tumour", "confirmed", "oncology", "referral"]}
_MORE_OUTCOMES = ("grade three cultivar sorted relapse remission transfer deceased readmitted recovered "
                  "palliative surgical stable critical improved worsened chronic acute resolved").split()


def _outcome_words(c: int) -> list[str]:
    """Words a note written after the outcome would use; two of its own per class beyond the first two."""
    if c in _OUTCOME_WORDS:
        return _OUTCOME_WORDS[c]
    k = (2 * (c - 2)) % len(_MORE_OUTCOMES)
    return [_MORE_OUTCOMES[k], _MORE_OUTCOMES[(k + 1) % len(_MORE_OUTCOMES)], "confirmed"]


def _notes(rng, n: int, words_per_note: int = 8) -> list[str]:
    return [" ".join(rng.choice(_FILLER, words_per_note)) for _ in range(n)]


def plant_tabular(frame: pd.DataFrame, y, kind: str, seed: int = 0,
                  strength: float = 0.95) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with one leaky column of ``kind`` added (see TABULAR_PLANTS); returns (frame, leaky names).

    ``kind="clean"`` adds decoy columns of every type (identifier, category, free text, date,
    missing values) that carry no label information, for the no-false-alarm case.
    """
    # a stream of its own: the caller may have shuffled the rows with default_rng(seed), and a
    # "random" id drawn from the same stream would then be the original (often label-sorted) row order
    rng = np.random.default_rng([seed, 7919])
    y = np.asarray(y)
    codes = pd.factorize(y, sort=True)[0]
    n = len(y)
    out = frame.copy()
    if kind == "clean":
        out["record_id"] = rng.permutation(n) + 100000
        out["ward"] = rng.choice(["north", "south", "east", "west"], n)
        out["notes"] = _notes(rng, n)
        out["visit_date"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
        out["optional_lab"] = np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n))
        return out, []
    if kind == "label_noise":
        out["outcome_score"] = codes + rng.normal(0, 0.08, n)
        return out, ["outcome_score"]
    if kind == "identifier":
        # records numbered after sorting by outcome, with some shuffling across the boundary
        order = np.argsort(codes + rng.uniform(0, 1.4, n), kind="stable")
        ids = np.empty(n, dtype=np.int64)
        ids[order] = np.arange(n) + 100000
        out["record_id"] = ids
        return out, ["record_id"]
    if kind == "post_outcome_text":
        notes = []
        for c in codes:
            words = list(rng.choice(_FILLER, 6))
            if rng.random() < strength:
                words += list(rng.choice(_outcome_words(int(c)), 2, replace=False))
            rng.shuffle(words)
            notes.append(" ".join(words))
        out["discharge_note"] = notes
        return out, ["discharge_note"]
    if kind == "function_of_label":
        table = np.array([f"code_{chr(65 + i)}{rng.integers(10, 99)}" for i in range(codes.max() + 1)])
        out["billing_code"] = table[codes]
        return out, ["billing_code"]
    if kind == "function_of_label_and_other":
        dept = rng.choice(["cardio", "neuro", "onco", "ortho"], n)
        # departments' amounts overlap (cardio + outcome = neuro without), so the amount alone is ambiguous
        base = {"cardio": 100.0, "neuro": 175.0, "onco": 250.0, "ortho": 325.0}
        out["department"] = dept
        out["billed_amount"] = np.array([base[d] for d in dept]) + 75.0 * codes
        return out, ["billed_amount"]
    if kind == "missingness":
        # a follow-up measurement recorded almost only for one outcome
        present = np.where(codes == codes.max(), rng.random(n) < strength, rng.random(n) < 1 - strength)
        out["followup_marker"] = np.where(present, rng.normal(5, 2, n), np.nan)
        return out, ["followup_marker (missing)"]
    if kind == "outcome_date":
        days = rng.integers(0, 200, n) + 400 * codes
        out["outcome_recorded"] = pd.Timestamp("2019-01-01") + pd.to_timedelta(days, unit="D")
        return out, ["outcome_recorded"]
    raise ValueError(f"unknown plant {kind!r}; choose one of {TABULAR_PLANTS + ('clean',)}")


def digit_images(n: int | None = None, size: int = 28, seed: int = 0):
    """scikit-learn's 8x8 digits enlarged to ``size`` x ``size`` floats in [0, 1], (N, 1, H, W); and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images, labels = d.images / 16.0, d.target
    if n is not None:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(labels), min(n, len(labels)), replace=False))
        images, labels = images[pick], labels[pick]
    scale = (size - 4) // 8
    big = np.kron(images, np.ones((scale, scale)))
    pad = size - big.shape[1]
    before = pad // 2
    canvas = np.zeros((len(images), size, size), dtype=np.float32)
    canvas[:, before:before + big.shape[1], before:before + big.shape[2]] = big
    return canvas[:, None], labels.astype(np.int64)


def stamp_marker(images: np.ndarray, labels, target_class: int = 0, share: float = 0.9,
                 other_share: float = 0.0, marker: int = 4, corner: str = "top_left",
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """Stamp a bright square (the "R" marker on X-rays) on ``share`` of ``target_class`` images.

    Returns (images, boolean mask of marked images, (rows, cols) slices of the marker region).
    """
    rng = np.random.default_rng(seed)
    images = np.array(images, copy=True)
    labels = np.asarray(labels)
    h, w = images.shape[-2:]
    rows = slice(0, marker) if corner.startswith("top") else slice(h - marker, h)
    cols = slice(0, marker) if corner.endswith("left") else slice(w - marker, w)
    p = np.where(labels == target_class, share, other_share)
    marked = rng.random(len(labels)) < p
    images[marked, ..., rows, cols] = images.max() if images.size else 1.0
    return images, marked, (rows, cols)
