"""Tabular rows and series: jittered copies, by nearest neighbours in robust-scaled feature space.

How features are scaled (the report says the same): every numeric column is centred on the
training split's median and divided by its robust spread, the interquartile range / 1.349
(equal to the standard deviation for normal data, but not blown up by outliers); a column whose
IQR is zero uses its standard deviation, and a constant column is left out. Booleans and
datetimes count as numbers; missing values take the training median. Other columns (text,
categories) are not measured: they must be *equal* for two rows to match.

The distance between two rows is the root-mean-square of their scaled differences, so it reads
as "the typical feature differs by this many spreads": a copy jittered by 1 % of each feature's
spread sits near 0.01, while two unrelated rows of a real data set sit near 0.5 or more.

Candidates are each evaluation row's nearest training rows (:func:`leakguard.search.knn.nearest`,
FAISS when installed); the threshold is calibrated on the training split: the distance of each
training row to its nearest *other* training row (exact copies left out), at the ``fpr``
quantile, so data whose rows naturally sit close together (discrete features, repeated
measurements) gets a tighter threshold. An evaluation row closer to a training row than that is
a jittered copy. The pair score is the similarity ``1 / (1 + distance)``; the distance is in the
``distance`` column of the pairs.

Series (1-D arrays, one per sample) go through the same machinery on their profile: each series
resampled to 64 points by linear interpolation, plus its length; so the columns are time
positions, each robust-scaled across the training series.

Options (``AuditConfig(check_options={"augmented_duplicate": {...}})``): ``max_distance`` (cap of
the calibrated threshold, 0.25 spreads), ``k`` (training neighbours verified per row, 5).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..checks.similarity import register_backend
from ..signatures.registry import register_signature
from .findings import linked_pairs, pair_finding, tail_threshold

PROFILE_POINTS = 64


# ------------------------------------------------------------------ scaling

class RobustScaling:
    """Per-column median / (IQR / 1.349) scaling learnt on the training rows.

    >>> import numpy as np
    >>> s = RobustScaling().fit(np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [100.0, 5.0]]))
    >>> s.used.tolist()                      # the constant second column is left out
    [True, False]
    >>> s.transform(np.array([[2.5, 5.0]])).round(2).tolist()
    [[0.0]]
    """

    def fit(self, X: np.ndarray) -> "RobustScaling":
        X = np.asarray(X, dtype=np.float64)
        self.center = np.nanmedian(X, axis=0) if len(X) else np.zeros(X.shape[1])
        self.center = np.where(np.isnan(self.center), 0.0, self.center)
        q75, q25 = (np.nanpercentile(X, [75, 25], axis=0) if len(X) else (np.zeros(X.shape[1]),) * 2)
        spread = (q75 - q25) / 1.349
        std = np.nanstd(X, axis=0) if len(X) else np.zeros(X.shape[1])
        spread = np.where(spread > 0, spread, std)
        spread = np.where(np.isnan(spread), 0.0, spread)
        self.used = spread > 0
        self.spread = np.where(self.used, spread, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        X = np.where(np.isnan(X), self.center, X)
        return ((X - self.center) / self.spread)[:, self.used].astype(np.float32)


def _numeric(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """(numeric matrix, numeric column names, other column names) of a frame."""
    num, other, values = [], [], []
    for col in columns:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            values.append(s.to_numpy(dtype=np.float64, na_value=np.nan))
            num.append(col)
        elif pd.api.types.is_datetime64_any_dtype(s):
            v = s.astype("int64").to_numpy().astype(np.float64)
            v[s.isna().to_numpy()] = np.nan
            values.append(v)
            num.append(col)
        else:
            other.append(col)
    X = np.stack(values, axis=1) if values else np.zeros((len(frame), 0))
    return X, num, other


# ------------------------------------------------------------------ the shared matcher

def jittered_copies(train_X: np.ndarray, eval_X: np.ndarray, fpr: float, k: int = 5,
                    train_keys=None, eval_equal=None, fixed: float | None = None,
                    max_distance: float = 0.25, random_state: int = 0) -> dict:
    """Nearest training row of every evaluation row in robust-scaled space, and the calibrated cut.

    ``train_X``/``eval_X``: raw numeric matrices. ``train_keys``: exact-content keys of training
    rows (their exact copies are left out of the null). ``eval_equal(e, t) -> bool``: extra
    verification (non-numeric columns equal). Returns ``eval``/``train`` indices, ``distance``
    (RMS over used columns), ``threshold``, ``columns_used``, ``null_size``.
    """
    from ..search.knn import nearest
    from .calibration import null_scores

    scaling = RobustScaling().fit(train_X)
    T = scaling.transform(train_X)
    E = scaling.transform(eval_X)
    d = max(T.shape[1], 1)
    out = {"columns_used": int(T.shape[1]), "scaling": scaling}
    if T.shape[1] == 0 or len(T) < 2 or len(E) == 0:
        return {**out, "eval": np.zeros(0, np.int64), "train": np.zeros(0, np.int64),
                "distance": np.zeros(0), "threshold": 0.0, "null_size": 0}
    if fixed is not None:
        threshold, n_null = float(fixed), 0
    else:
        null = null_scores(T, metric="l2", exact_keys=train_keys, random_state=random_state) / np.sqrt(d)
        n_null = len(null)
        # distances: lower is closer; a row nearer than (almost) every training row's own nearest
        # neighbour is a copy. Capped: a training split full of its own near-copies must not make
        # any distance pass.
        threshold = min(tail_threshold(null, fpr, higher_is_closer=False, default=0.0), max_distance)
    kk = min(k, len(T))
    dist, idx = nearest(T, E, k=kk, metric="l2")
    dist = dist / np.sqrt(d)
    best_t = np.full(len(E), -1, dtype=np.int64)
    best_d = np.full(len(E), np.inf)
    for e in np.flatnonzero(dist[:, 0] <= threshold):
        for dd, t in zip(dist[e], idx[e]):
            if t < 0 or dd > threshold:
                break
            if eval_equal is None or eval_equal(int(e), int(t)):
                best_t[e], best_d[e] = t, dd
                break
    hit = best_t >= 0
    return {**out, "eval": np.flatnonzero(hit), "train": best_t[hit], "distance": best_d[hit],
            "threshold": float(threshold), "null_size": n_null}


def _finding(ctx, check, name, res, what: str, how: str):
    known = linked_pairs(ctx, ctx.train, name)
    keep = np.array([(int(t), int(e)) not in known for t, e in zip(res["train"], res["eval"])], dtype=bool)
    if not keep.any():
        return None
    dist = res["distance"][keep]
    return pair_finding(
        ctx, check.name, ctx.train, name, res["train"][keep], res["eval"][keep],
        np.round(1.0 / (1.0 + dist), 6), what=what, how=how, threshold=res["threshold"],
        score_name="scaled RMS distance", default_severity="critical",
        pairs_extra={"distance": np.round(dist, 6)},
        extra={"columns_used": res["columns_used"], "null_size": res["null_size"],
               "scaling": "per-column median / (IQR / 1.349) of the training split"})


@register_backend("augmented_duplicate", "tabular")
def tabular_augmented(ctx, check) -> list:
    from ..signatures.exact import canonical_frame, row_hashes

    opts = ctx.config.options(check.name)
    train_frame = ctx.splits[ctx.train].source.frame.rename(columns=str)
    columns = [str(c) for c in train_frame.columns]
    X_t, num, other = _numeric(train_frame, columns)
    if not num:
        return []
    keys = row_hashes(canonical_frame(train_frame, sorted(columns)))
    findings = []
    for name in ctx.splits.eval_names:
        frame = ctx.splits[name].source.frame.rename(columns=str)
        if set(frame.columns) != set(columns) or not len(frame):
            continue  # exact_duplicate names the column mismatch; nothing to compare here
        X_e, _, _ = _numeric(frame, num)
        equal = None
        if other:
            t_other = train_frame[other].astype(str).to_numpy()
            e_other = frame[other].astype(str).to_numpy()
            equal = lambda e, t: bool((e_other[e] == t_other[t]).all())  # noqa: E731
        res = jittered_copies(X_t, X_e, ctx.config.fpr, k=int(opts.get("k", 5)), train_keys=list(keys),
                              eval_equal=equal, fixed=ctx.config.thresholds.get(check.name),
                              max_distance=float(opts.get("max_distance", 0.25)),
                              random_state=ctx.config.random_state)
        how = (f"are jittered copies of training rows: after each of the {res['columns_used']} numeric "
               "features is scaled by the training split's median and robust spread (IQR / 1.349), "
               "they lie closer to a training row than training rows lie to each other"
               + (f", and their {len(other)} non-numeric columns are equal." if other else "."))
        f = _finding(ctx, check, name, res, "rows", how)
        if f is not None:
            findings.append(f)
    return findings


# ------------------------------------------------------------------ series

@register_signature("series", "profile")
def series_profile(values: np.ndarray) -> np.ndarray:
    """The series resampled to 64 points (linear interpolation), then its length: float64."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)] if not np.isfinite(v).all() else v
    if len(v) == 0:
        return np.full(PROFILE_POINTS + 1, np.nan)
    grid = np.linspace(0, len(v) - 1, PROFILE_POINTS)
    return np.concatenate([np.interp(grid, np.arange(len(v)), v), [float(len(v))]])


@register_backend("augmented_duplicate", "series", needs={"profile", "digest"})
def series_augmented(ctx, check) -> list:
    opts = ctx.config.options(check.name)

    def matrix(split):
        prof = ctx.signatures.get(split, "profile")
        ids = np.array([i for i, p in enumerate(prof) if p is not None], dtype=np.int64)
        X = np.stack([prof[i] for i in ids]) if len(ids) else np.zeros((0, PROFILE_POINTS + 1))
        return ids, X

    t_ids, X_t = matrix(ctx.train)
    if len(t_ids) < 2:
        return []
    digests = ctx.signatures.get(ctx.train, "digest")
    findings = []
    for name in ctx.splits.eval_names:
        e_ids, X_e = matrix(name)
        res = jittered_copies(X_t, X_e, ctx.config.fpr, k=int(opts.get("k", 5)),
                              train_keys=[digests[i] for i in t_ids], fixed=ctx.config.thresholds.get(check.name),
                              max_distance=float(opts.get("max_distance", 0.25)),
                              random_state=ctx.config.random_state)
        res["eval"], res["train"] = e_ids[res["eval"]], t_ids[res["train"]]
        how = ("are jittered copies of training series: resampled to 64 points, each time position "
               "scaled by the training series' median and robust spread (IQR / 1.349), they lie "
               "closer to a training series than training series lie to each other.")
        f = _finding(ctx, check, name, res, "series", how)
        if f is not None:
            findings.append(f)
    return findings
