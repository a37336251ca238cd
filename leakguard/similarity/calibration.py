"""Thresholds calibrated from the data itself, to a stated false-positive rate.

One fixed similarity threshold misfires: on look-alike data (digits, textures, boilerplate text)
unrelated samples are already very close, on diverse photos even loose copies are far apart
from everything else. The null distribution used here is what an *unrelated* evaluation sample
would score: the nearest-neighbour score of training samples against the rest of the training
split, leaving out the sample itself and its exact copies. A threshold at the ``1 - fpr``
quantile of that distribution flags about ``fpr`` of the unrelated evaluation samples.

Training splits that already hold near-copies of their own samples (data augmented before
splitting, the very leak being audited) would inflate the nearest-neighbour null; pass
``neighbor_rank=2`` (or more) to score each sample against its second nearest non-copy neighbour,
which makes the null robust to one near-copy per sample at the price of a slightly looser
threshold.

>>> import numpy as np
>>> from leakguard.similarity.calibration import calibrated_threshold, null_scores
>>> X = np.random.default_rng(0).normal(size=(500, 16))
>>> null = null_scores(X, metric="cosine")
>>> t = calibrated_threshold(null, fpr=0.01)            # cosine similarity: higher is closer
>>> float(np.mean(null >= t)) <= 0.01
True
"""
from __future__ import annotations

import numpy as np


def calibrated_threshold(null_scores, fpr: float, higher_is_closer: bool = True,
                         default: float | None = None, extrapolate: str | None = None) -> float:
    """The score threshold that flags at most ``fpr`` of the null (unrelated) pairs.

    Flagging rule: ``score >= threshold`` when ``higher_is_closer`` (similarities), else
    ``score <= threshold`` (distances). The threshold is the most permissive one for which the
    share of flagged null scores is at most ``fpr``; with fewer than ``1 / fpr`` null scores that
    is just beyond the most extreme null score (so no null pair is flagged).

    NaN scores are ignored. With no null scores, ``default`` is returned (ValueError when None).

    ``extrapolate``: with too few null scores to reach ``fpr`` empirically (fewer than ``1/fpr``),
    also fit a normal tail and take the stricter of the two thresholds: ``"normal"`` on the
    scores as they are, ``"fisher"`` on ``atanh(score)`` (correlations and cosine similarities,
    whose tails are skewed near 1). Small training splits then do not get a lax threshold just
    because their null sample never reached the tail.

    >>> calibrated_threshold([0.1, 0.2, 0.3, 0.9], fpr=0.25)
    0.9
    >>> calibrated_threshold([1.0, 2.0, 3.0], fpr=0.01, higher_is_closer=False) < 1.0
    True
    """
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be between 0 and 1, got {fpr}")
    s = np.asarray(null_scores, dtype=np.float64).ravel()
    s = s[~np.isnan(s)]
    if len(s) == 0:
        if default is None:
            raise ValueError("no null scores to calibrate a threshold from (training split too small?)")
        return float(default)
    # work on "closeness" (higher = closer) so both directions share one rule
    close = np.sort(s if higher_is_closer else -s)[::-1]
    allowed = int(np.floor(fpr * len(close)))  # null scores that may be flagged
    if allowed == 0:
        t = np.nextafter(close[0], np.inf)
        if extrapolate and len(close) >= 5:
            from scipy.special import ndtri  # norm.isf without importing scipy.stats (seconds)

            z = float(ndtri(1.0 - fpr))
            if extrapolate == "fisher":
                vals = np.arctanh(np.clip(close if higher_is_closer else -close, -0.999999, 0.999999))
                tail = np.tanh(vals.mean() + z * vals.std(ddof=1))
                tail = tail if higher_is_closer else -tail
            elif extrapolate == "normal":
                tail = close.mean() + z * close.std(ddof=1)
            else:
                raise ValueError(f"extrapolate must be None, 'normal' or 'fisher', got {extrapolate!r}")
            t = max(t, tail)
    else:
        # flag the `allowed` highest; ties with the next one must not be flagged too
        t = close[allowed - 1]
        if close[allowed] == t:
            t = np.nextafter(t, np.inf)
    return float(t if higher_is_closer else -t)


def null_scores(vectors, metric: str = "cosine", exact_keys=None, neighbor_rank: int = 1,
                max_samples: int | None = 5000, random_state: int = 0, extra_k: int = 8,
                return_pairs: bool = False):
    """Nearest-neighbour scores inside one (training) split: the null distribution of unrelated pairs.

    For up to ``max_samples`` randomly chosen rows, the score of their ``neighbor_rank``-th nearest
    other row, skipping the row itself and its exact copies (rows with the same ``exact_keys``
    entry when given, else rows whose vector is identical). Rows whose first ``extra_k`` neighbours
    are all copies are left out. Scores are cosine similarities or L2 distances as in
    :func:`leakguard.search.knn.nearest`.

    Returns the scores (1-D float array); with ``return_pairs=True`` also ``(rows, neighbours)``
    index arrays, so a backend can re-score the same pairs with its own verification.
    """
    from ..search.knn import nearest

    X = np.asarray(vectors, dtype=np.float32)
    n = len(X)
    if neighbor_rank < 1:
        raise ValueError(f"neighbor_rank must be at least 1, got {neighbor_rank}")
    empty = np.zeros(0, dtype=np.float64)
    if n < 2:
        return (empty, (np.zeros(0, np.int64), np.zeros(0, np.int64))) if return_pairs else empty
    rng = np.random.default_rng(random_state)
    rows = np.arange(n) if max_samples is None or n <= max_samples else np.sort(
        rng.choice(n, size=max_samples, replace=False))
    k = min(n - 1, neighbor_rank + extra_k)
    scores, idx = nearest(X, X[rows], k=k + 1, metric=metric)
    keys = None if exact_keys is None else np.asarray(_key_codes(exact_keys))
    out_s, out_r, out_j = [], [], []
    for r_pos, r in enumerate(rows):
        rank = 0
        for s, j in zip(scores[r_pos], idx[r_pos]):
            if j < 0 or j == r:
                continue
            if keys is not None:
                if keys[j] == keys[r] and keys[r] >= 0:
                    continue
            elif np.array_equal(X[j], X[r]):
                continue
            rank += 1
            if rank == neighbor_rank:
                out_s.append(float(s))
                out_r.append(r)
                out_j.append(int(j))
                break
    s = np.asarray(out_s, dtype=np.float64)
    if return_pairs:
        return s, (np.asarray(out_r, dtype=np.int64), np.asarray(out_j, dtype=np.int64))
    return s


def _key_codes(keys) -> np.ndarray:
    """Integer codes of hashable keys (None -> -1) so equality tests are cheap."""
    codes: dict = {}
    out = np.empty(len(keys), dtype=np.int64)
    for i, k in enumerate(keys):
        out[i] = -1 if k is None else codes.setdefault(bytes(k) if isinstance(k, (bytes, bytearray, memoryview))
                                                       else k, len(codes))
    return out
