"""Helpers the similarity backends share: pairs found earlier, best matches, findings in plain words."""
from __future__ import annotations

import numpy as np
from ..report import Finding, make_pairs


def linked_pairs(ctx, split_a: str, split_b: str) -> set[tuple[int, int]]:
    """(index_a, index_b) pairs between two splits that an earlier check already reported.

    Backends skip these, so one copy is reported once: by the most specific check that found it
    (exact before augmented before partial before semantic).
    """
    out: set[tuple[int, int]] = set()
    for frame in ctx.links:
        if not len(frame):
            continue
        sel = frame[(frame["split_a"] == split_a) & (frame["split_b"] == split_b)]
        out.update(zip(sel["index_a"].tolist(), sel["index_b"].tolist()))
    return out


def linked_eval(ctx, split_a: str, split_b: str) -> set[int]:
    """Evaluation indices of ``split_b`` already linked to ``split_a`` by an earlier check."""
    return {b for _, b in linked_pairs(ctx, split_a, split_b)}


def best_per_query(q_idx, i_idx, scores, higher_is_closer: bool = True):
    """Keep each query's best-scoring candidate: (query, index, score) arrays sorted by query."""
    q_idx = np.asarray(q_idx, dtype=np.int64)
    i_idx = np.asarray(i_idx, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if not len(q_idx):
        return q_idx, i_idx, scores
    key = -scores if higher_is_closer else scores
    order = np.lexsort((i_idx, key, q_idx))
    q_s, i_s, s_s = q_idx[order], i_idx[order], scores[order]
    first = np.ones(len(q_s), dtype=bool)
    first[1:] = q_s[1:] != q_s[:-1]
    return q_s[first], i_s[first], s_s[first]


def pair_finding(ctx, check_name: str, train: str, split_b: str, index_a, index_b, scores, *,
                 what: str, how: str, threshold: float, score_name: str, default_severity: str,
                 remedy: str | None = None, extra: dict | None = None, pairs_extra: dict | None = None
                 ) -> Finding | None:
    """One finding for the pairs (train ``index_a``, ``split_b`` ``index_b``), added to ``ctx.links``.

    ``what``: the samples in plain words ("texts", "recordings"); ``how``: how they were matched.
    ``pairs_extra``: extra per-pair columns (e.g. overlap share, transform) kept in ``pairs``.
    """
    index_a = np.asarray(index_a, dtype=np.int64)
    index_b = np.asarray(index_b, dtype=np.int64)
    if not len(index_b):
        return None
    pairs = make_pairs(train, index_a, split_b, index_b, check_name, np.asarray(scores, dtype=np.float64))
    for col, values in (pairs_extra or {}).items():
        pairs[col] = np.asarray(values)
    ctx.links.append(pairs[list(pairs.columns[:6])])
    n_b = len(ctx.splits[split_b])
    count = len(np.unique(index_b))
    sev = ctx.severity(check_name, default_severity)
    return Finding(
        check=check_name, severity=sev,
        title=f"{count} of {n_b} {split_b!r} {what} match {train!r} {what} ({check_name.replace('_', ' ')})",
        detail=(f"{count} {what} in {split_b!r} ({count / max(n_b, 1):.1%}) {how} "
                f"The {score_name} threshold {threshold:.3g} was calibrated on the training split "
                f"(nearest-neighbour scores between its own samples) for a false-positive rate of "
                f"{ctx.config.fpr:g}. A model scored on these samples is partly scored on data it "
                "trained on."),
        remedy=remedy or (f"Remove these {what} from {split_b!r}, or re-split with lg.resplit(), which "
                          "keeps linked samples in one split. Deduplicate near-copies before splitting."),
        splits=(train, split_b), count=count, pairs=pairs,
        extra={"threshold": float(threshold), "score": score_name, **(extra or {})})


def tail_threshold(null_scores, fpr: float, higher_is_closer: bool = True, tail: float = 0.1,
                   default: float | None = None) -> float:
    """:func:`~leakguard.similarity.calibration.calibrated_threshold`, with the tail extrapolated.

    With ``n`` null scores the empirical threshold is just beyond the ``n * fpr``-th most extreme
    one; when ``n * fpr`` is small (say 500 training samples at ``fpr=1e-3``), an unrelated
    evaluation sample passes it with probability about ``1 / n``, not ``fpr``. Here the excesses
    of the top ``tail`` share of the null over their lowest value are fitted with an exponential
    (peaks over threshold) and the ``1 - fpr`` quantile is read from that fit. The result is
    never more permissive than the empirical threshold. Under 200 null scores (fewer than 20 in
    the tail) the empirical threshold is returned as is.

    >>> import numpy as np
    >>> null = np.random.default_rng(0).normal(size=300)
    >>> bool(tail_threshold(null, 1e-3) > null.max())
    True
    """
    from .calibration import calibrated_threshold

    empirical = calibrated_threshold(null_scores, fpr, higher_is_closer=higher_is_closer, default=default)
    s = np.asarray(null_scores, dtype=np.float64).ravel()
    s = s[~np.isnan(s)]
    if len(s) < 200:
        return empirical  # under 20 tail points the fit is a guess wilder than the empirical edge
    close = np.sort(s if higher_is_closer else -s)
    n_tail = max(20, int(np.ceil(tail * len(close))))
    top = close[-n_tail:]
    base = top[0]
    scale = float(np.mean(top - base))
    share = n_tail / len(close)
    if scale <= 0 or fpr >= share:
        return empirical
    q = base + scale * np.log(share / fpr)
    t = q if higher_is_closer else -q
    return float(max(empirical, t) if higher_is_closer else min(empirical, t))
