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
        center = np.nanmedian(X, axis=0) if len(X) else np.zeros(X.shape[1])
        q75, q25 = (np.nanpercentile(X, [75, 25], axis=0) if len(X) else (np.zeros(X.shape[1]),) * 2)
        return self.from_stats(center, q75, q25, lambda: np.nanstd(X, axis=0) if len(X) else np.zeros(X.shape[1]))

    def from_stats(self, center, q75, q25, std) -> "RobustScaling":
        """The scaling from per-column median, quartiles and ``std()`` (the standard deviation,
        asked for only when some column's IQR is zero; it returns every column's, or NaN where not
        needed). The Spark engine computes these on its executors
        (:func:`leakguard.search.spark_tabular.robust_scaling_on_spark`)."""
        center, q75, q25 = (np.asarray(v, dtype=np.float64) for v in (center, q75, q25))
        self.center = np.where(np.isnan(center), 0.0, center)
        spread = (q75 - q25) / 1.349
        if not (spread > 0).all():
            spread = np.where(spread > 0, spread, np.asarray(std(), dtype=np.float64))
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


def _finding(ctx, check, name, res, what: str, how: str, default_severity: str = "critical"):
    known = linked_pairs(ctx, ctx.train, name)
    keep = np.array([(int(t), int(e)) not in known for t, e in zip(res["train"], res["eval"])], dtype=bool)
    if not keep.any():
        return None
    dist = res["distance"][keep]
    return pair_finding(
        ctx, check.name, ctx.train, name, res["train"][keep], res["eval"][keep],
        np.round(1.0 / (1.0 + dist), 6), what=what, how=how, threshold=res["threshold"],
        score_name="scaled RMS distance", default_severity=default_severity,
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
        f = _finding(ctx, check, name, res, "rows", augmented_how(res, other))
        if f is not None:
            findings.append(f)
    return findings


def augmented_how(res: dict, other: list) -> str:
    """The finding text of :func:`tabular_augmented` (also the Spark engine's)."""
    return (f"are jittered copies of training rows: after each of the {res['columns_used']} numeric "
            "features is scaled by the training split's median and robust spread (IQR / 1.349), "
            "they lie closer to a training row than training rows lie to each other"
            + (f", and their {len(other)} non-numeric columns are equal." if other else "."))


# ------------------------------------------------------------------ semantic: the same record, partly changed

EXHAUSTIVE_CELLS = 300_000_000   # above it, candidates by kNN per block of features


def trimmed_distances(A: np.ndarray, B: np.ndarray, keep: float) -> np.ndarray:
    """Row-wise RMS of the ``keep`` share of smallest scaled differences between ``A`` and ``B``.

    Two rows that agree on most features but differ wildly on a few (a re-measured field, an
    edited value, another imputation) are far apart by plain RMS and close by this.

    >>> import numpy as np
    >>> a = np.zeros((1, 8)); b = a.copy(); b[0, 0] = 50.0
    >>> float(trimmed_distances(a, b, keep=0.75)[0])
    0.0
    """
    d2 = np.sort((np.asarray(A, np.float64) - np.asarray(B, np.float64)) ** 2, axis=1)
    m = max(1, int(np.ceil(keep * d2.shape[1])))
    return np.sqrt(d2[:, :m].mean(axis=1))


def trimmed_rows(Q: np.ndarray, T_rows: np.ndarray, m_keep: int) -> np.ndarray:
    """(queries, candidates) RMS of the ``m_keep`` smallest squared differences between each
    query row of ``Q`` (q, features) and its candidate rows ``T_rows`` (q, c, features): the
    score of :func:`edited_copies`, also run by the Spark engine on its executors."""
    d2 = (Q[:, None, :] - T_rows) ** 2          # (chunk, c, features)
    part = np.partition(d2, m_keep - 1, axis=2)[:, :, :m_keep]
    return np.sqrt(part.mean(axis=2))


def edited_copies(train_X: np.ndarray, eval_X: np.ndarray, fpr: float, keep: float = 0.75, k: int = 30,
                  train_keys=None, eval_equal=None, fixed: float | None = None,
                  max_distance: float = 0.25, null_samples: int = 5000, random_state: int = 0,
                  scaling: "RobustScaling | None" = None) -> dict:
    """Evaluation rows that equal a training row on most features (``keep`` of them) up to jitter.

    Candidates: every training row while training rows x features x (evaluation rows + null
    rows) stays under ``EXHAUSTIVE_CELLS`` (exact); on larger data, the ``k`` nearest training rows
    in each block of about 4 robust-scaled features (a few wild features cannot hide the source
    from every block). Score: the trimmed distance
    (:func:`trimmed_distances`). Threshold: calibrated on the training split, each of up to
    ``null_samples`` training rows scored the same way against the *other* training rows (exact
    copies left out), at the ``fpr`` quantile (tail extrapolated), capped at ``max_distance``.
    Returns the same keys as :func:`jittered_copies`.
    """
    from ..search.knn import nearest
    from .calibration import _key_codes

    scaling = scaling or RobustScaling().fit(train_X)
    T = scaling.transform(train_X)
    E = scaling.transform(eval_X)
    out = {"columns_used": int(T.shape[1]), "scaling": scaling}
    empty = {**out, "eval": np.zeros(0, np.int64), "train": np.zeros(0, np.int64),
             "distance": np.zeros(0), "threshold": 0.0, "null_size": 0}
    if T.shape[1] < 4 or len(T) < 3 or len(E) == 0:
        return empty  # with under 4 features "most of them" means nothing
    m_keep = max(1, int(np.ceil(keep * T.shape[1])))
    kk = min(k, len(T) - 1)
    exhaustive = len(T) * T.shape[1] * (len(E) + min(len(T), null_samples)) <= EXHAUSTIVE_CELLS

    def candidates(Q, q_rows):
        """(queries, c) training rows to score: all of them on small data, else the ``k`` nearest
        in each block of about 4 features (a row with at most a quarter of its features changed
        keeps at least one block of 4 intact when there are more blocks than changed features)."""
        if exhaustive:
            return np.broadcast_to(np.arange(len(T)), (len(Q), len(T)))
        n_blocks = max(1, T.shape[1] // 4)
        blocks = np.array_split(np.random.default_rng(random_state).permutation(T.shape[1]), n_blocks)
        found = [nearest(T[:, b], Q[:, b], k=kk + (1 if q_rows is not None else 0), metric="l2")[1]
                 for b in blocks]
        return np.concatenate(found, axis=1)

    def best(Q, exclude_keys=None, q_rows=None):
        idx = candidates(Q, q_rows)
        dist = np.full(idx.shape, np.inf, dtype=np.float64)
        step = max(1, int(2_000_000 // max(idx.shape[1] * T.shape[1], 1)))
        for lo in range(0, len(Q), step):
            j = idx[lo:lo + step]
            dist[lo:lo + step] = trimmed_rows(Q[lo:lo + step], T[np.maximum(j, 0)], m_keep)
            ok = j >= 0
            if q_rows is not None:  # a training row against the others: not itself, not its copies
                r = q_rows[lo:lo + step, None]
                ok &= j != r
                if exclude_keys is not None:
                    ok &= ~((exclude_keys[np.maximum(j, 0)] == exclude_keys[r]) & (exclude_keys[r] >= 0))
            dist[lo:lo + step][~ok] = np.inf
        return dist, idx

    if fixed is not None:
        threshold, n_null = float(fixed), 0
    else:
        rng = np.random.default_rng(random_state)
        rows = np.arange(len(T)) if len(T) <= null_samples else np.sort(
            rng.choice(len(T), size=null_samples, replace=False))
        keys = None if train_keys is None else _key_codes(train_keys)
        dist, _ = best(T[rows], keys, rows)
        null = dist.min(axis=1)
        null = null[np.isfinite(null)]
        n_null = len(null)
        threshold = min(tail_threshold(null, fpr, higher_is_closer=False, default=0.0), max_distance)
    dist, idx = best(E)
    best_t = np.full(len(E), -1, dtype=np.int64)
    best_d = np.full(len(E), np.inf)
    for e in np.flatnonzero(dist.min(axis=1) <= threshold):
        for c in np.argsort(dist[e]):
            if dist[e, c] > threshold:
                break
            if eval_equal is None or eval_equal(int(e), int(idx[e, c])):
                best_t[e], best_d[e] = idx[e, c], dist[e, c]
                break
    hit = best_t >= 0
    return {**out, "eval": np.flatnonzero(hit), "train": best_t[hit], "distance": best_d[hit],
            "threshold": float(threshold), "null_size": n_null}


def _embedded_rows(ctx, check, train_frame, frames: dict) -> list:
    """The semantic check through a user's embedder: ``embedder(DataFrame) -> (n, d)``, cosine
    nearest neighbours, threshold calibrated on the training rows' own nearest neighbours."""
    from ..search.knn import nearest
    from .calibration import null_scores

    def embed(frame, name):
        return embedded_rows_checked(ctx.config.embedder(frame), len(frame), name)

    from ..signatures.exact import canonical_frame, row_hashes

    columns = sorted(str(c) for c in train_frame.columns)
    t_emb = embed(train_frame, ctx.train)
    fixed = ctx.config.thresholds.get(check.name)
    threshold = float(fixed) if fixed is not None else embedded_threshold(ctx, null_scores(
        t_emb, metric="cosine", exact_keys=list(row_hashes(canonical_frame(train_frame, columns))),
        random_state=ctx.config.random_state))
    findings = []
    for name, frame in frames.items():
        sims, idx = nearest(t_emb, embed(frame, name), k=1, metric="cosine")
        f = embedded_finding(ctx, check.name, name, sims[:, 0], idx[:, 0], threshold)
        if f is not None:
            findings.append(f)
    return findings


def embedded_rows_checked(out, n: int, name: str) -> np.ndarray:
    """A user embedder's output for ``n`` rows of split ``name`` as float32 (n, d), else a clear error."""
    from ..errors import InputError

    out = np.asarray(out, dtype=np.float32)
    if out.ndim != 2 or len(out) != n:
        raise InputError(f"the tabular embedder returned shape {out.shape} for {n} rows of "
                         f"split {name!r}; expected (n, d)")
    return out


def embedded_threshold(ctx, null) -> float:
    """The user-embedder path's cosine threshold from its null (one rule for the local and the Spark engine)."""
    from .calibration import calibrated_threshold

    return calibrated_threshold(null, ctx.config.fpr, default=0.99, extrapolate="fisher")


def embedded_finding(ctx, check_name: str, name: str, sims, idx, threshold: float):
    """The user-embedder path's finding: each ``name`` row's nearest training row ``idx`` (cosine
    ``sims``) at or above ``threshold``, rows other checks linked left out (local and Spark engine)."""
    sims, idx = np.asarray(sims), np.asarray(idx)
    linked_b = {b for _, b in linked_pairs(ctx, ctx.train, name)}
    hit = np.flatnonzero((sims >= threshold) & (idx >= 0))
    hit = np.array([e for e in hit if int(e) not in linked_b], dtype=np.int64)
    return pair_finding(ctx, check_name, ctx.train, name, idx[hit], hit, np.round(sims[hit], 4),
                        what="rows", how=(f"have a training row whose embedding ({getattr(ctx.config.embedder, '__name__', type(ctx.config.embedder).__name__)}) "
                                          "is closer than training rows are to each other."),
                        threshold=threshold, score_name="cosine similarity", default_severity="warning")


@register_backend("semantic_duplicate", "tabular")
def tabular_semantic(ctx, check) -> list:
    """Rows that are the same record as a training row with some fields changed.

    Default (no embedder): :func:`edited_copies` on the numeric features, scaled as for
    ``augmented_duplicate``; non-numeric columns must be equal on the share of features kept, in
    practice all of them. With ``AuditConfig(embedder=callable)`` the callable receives each
    split's DataFrame and its rows are compared by cosine similarity instead.
    Options: ``keep`` (share of features that must agree, 0.75), ``k`` (30), ``max_distance``
    (0.25), ``null_samples`` (5000).
    """
    opts = ctx.config.options(check.name)
    train_frame = ctx.splits[ctx.train].source.frame.rename(columns=str)
    columns = [str(c) for c in train_frame.columns]
    frames = {}
    for name in ctx.splits.eval_names:
        frame = ctx.splits[name].source.frame.rename(columns=str)
        if set(frame.columns) == set(columns) and len(frame):
            frames[name] = frame[columns]
    if callable(ctx.config.embedder):
        return _embedded_rows(ctx, check, train_frame, frames)
    from ..signatures.exact import canonical_frame, row_hashes

    X_t, num, other = _numeric(train_frame, columns)
    if not num:
        return []
    keys = row_hashes(canonical_frame(train_frame, sorted(columns)))
    keep = float(opts.get("keep", 0.75))
    findings = []
    for name, frame in frames.items():
        X_e, _, _ = _numeric(frame, num)
        equal = None
        if other:
            t_other = train_frame[other].astype(str).to_numpy()
            e_other = frame[other].astype(str).to_numpy()
            need = int(np.ceil(keep * len(other)))
            equal = lambda e, t: int((e_other[e] == t_other[t]).sum()) >= need  # noqa: E731
        res = edited_copies(X_t, X_e, ctx.config.fpr, keep=keep, k=int(opts.get("k", 30)), train_keys=list(keys),
                            eval_equal=equal, fixed=ctx.config.thresholds.get(check.name),
                            max_distance=float(opts.get("max_distance", 0.25)),
                            null_samples=int(opts.get("null_samples", 5000)), random_state=ctx.config.random_state)
        f = semantic_finding(ctx, check.name, name, res, keep)
        if f is not None:
            findings.append(f)
    return findings


def semantic_finding(ctx, check_name: str, name: str, res: dict, keep: float):
    """The finding of :func:`tabular_semantic` from :func:`edited_copies`' result (also built by
    the Spark engine, :mod:`leakguard.search.spark_tabular`)."""
    from types import SimpleNamespace

    how = (f"are the same record as a training row with some fields changed: on {keep:.0%} of the "
           f"{res['columns_used']} numeric features (scaled by the training split's median and IQR / 1.349) "
           "they agree more closely than training rows agree with each other; the rest differ "
           "(re-measured, edited or imputed values).")
    f = _finding(ctx, SimpleNamespace(name=check_name), name, res, "rows", how, default_severity="warning")
    if f is not None:
        f.extra["keep"] = keep
    return f


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


SERIES_HOW = ("are jittered copies of training series: resampled to 64 points, each time position "
              "scaled by the training series' median and robust spread (IQR / 1.349), they lie "
              "closer to a training series than training series lie to each other.")


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
        f = _finding(ctx, check, name, res, "series", SERIES_HOW)
        if f is not None:
            findings.append(f)
    return findings
