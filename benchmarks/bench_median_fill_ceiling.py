"""Median imputation over the union, judged from the data alone: the check against a ceiling.

For the planted ``impute_median`` cases of ``bench_checks_planted.py`` (8 % of cells missing at
random, 80/20 split, SimpleImputer(strategy="median") fitted on the union), a column is
contaminated when the union's median differs from train's. From the filled table alone that
turns on how many of the rows holding the fill value are real copies of it (train's median is
the fill when train holds enough real copies), which the data only say in probability. This
prints, per data set over the seeds:

- ``check``: preprocessing_contamination's reported features vs the truth (pooled tp / fp / fn
  and the mean per-seed recall / precision, as bench_checks_planted prints them);
- ``ceiling``: the same decision made by the exact posterior with the planting's own parameters,
  which no audit has: the true missing rate (0.08) and each fill value's true frequency in the
  complete data (so each row holding the fill is a real copy with known probability). Report when
  P(train's median is the fill) < 1/2 (the error-minimising rule). What it misses, no count of
  fill copies can find; only telling real rows from imputed ones would.

Telling them apart was measured in session 6 (not in the check; /work/notes/s6-median.md): a
ridge regression of the column on the others, per row, gives each row holding the fill a
likelihood ratio real : imputed. It settles the columns the others predict well (diabetes s1, s2,
s3: every error there goes) and nothing else (diabetes bp, bmi, age, s6; every wine column), so
20 seeds give diabetes 0.992 / 0.881 and wine 0.959 / 0.926, still short of 0.95 / 0.95.

    .venv/bin/python benchmarks/bench_median_fill_ceiling.py [--seeds 20] [--datasets wine,diabetes,breast_cancer]
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

MISSING = 0.08


def _need(others: np.ndarray, value: float) -> int | None:
    """Fewest real copies of ``value`` for it to be the median of ``others`` + copies (0: midpoint)."""
    below, above = int((others < value).sum()), int((others > value).sum())
    if not below or not above:
        return None
    if below == above and (others[others < value].max() + others[others > value].min()) / 2 == value:
        return 0
    return abs(below - above) + 1


def ceiling_p_train(n_train: int, n_eval: int, need_union: int, need_train: int | None, real_prob: float) -> float:
    """P(train's median is the fill | union's is): each of the rows holding the fill is a real copy
    with probability ``real_prob`` independently, given that the union holds >= need_union copies."""
    from scipy.stats import binom

    a = np.arange(n_train + 1)[:, None]
    b = np.arange(n_eval + 1)[None, :]
    w = binom.pmf(a, n_train, real_prob) * binom.pmf(b, n_eval, real_prob) * (a + b >= need_union)
    if w.sum() == 0:
        return float("nan")
    ok = a >= need_train if need_train is not None else np.zeros_like(a, dtype=bool)
    return float((w * ok).sum() / w.sum())


def case(dataset: str, seed: int):
    import bench_checks_planted as B
    from sklearn.impute import SimpleImputer

    X, _ = B._tabular(dataset)
    X = X.astype(float)
    complete = X.copy()
    # the planting of bench_checks_planted.case_preprocessing, draw for draw
    rng = np.random.default_rng(seed)
    X = X.mask(rng.random(X.shape) < MISSING)
    perm = rng.permutation(len(X))
    cut = int(0.8 * len(X))
    tr, te = perm[:cut], perm[cut:]
    union_fit, train_fit = SimpleImputer(strategy="median").fit(X), SimpleImputer(strategy="median").fit(X.iloc[tr])
    leaky = pd.DataFrame(union_fit.transform(X), columns=X.columns)
    truth = set(X.columns[~np.isclose(union_fit.statistics_, train_fit.statistics_, rtol=1e-9, atol=0)])
    rep = B._audit({"train": leaky.iloc[tr], "test": leaky.iloc[te]}, "preprocessing_contamination")
    got = set(sum([f.features or [] for f in B._own(rep, "preprocessing_contamination")], []))
    ceiling = set()
    for j, c in enumerate(X.columns):
        v = union_fit.statistics_[j]
        col = leaky[c].to_numpy()
        nu, nt = _need(col[col != v], v), _need(col[tr][col[tr] != v], v)
        if nu is None:
            continue
        q = float((complete[c].to_numpy() == v).mean())  # the fill value's true frequency
        real_prob = (1 - MISSING) * q / (MISSING + (1 - MISSING) * q)
        p = ceiling_p_train(int((col[tr] == v).sum()), int((col[te] == v).sum()), nu, nt, real_prob)
        if p < 0.5:
            ceiling.add(c)
    return truth, got, ceiling


def _score(truth, got):
    tp = len(got & truth)
    return (tp, len(got - truth), len(truth - got),
            tp / len(truth) if truth else 1.0, tp / len(got) if got else (1.0 if not truth else 0.0))


def main() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--datasets", default="breast_cancer,wine,diabetes")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    for ds in args.datasets.split(","):
        rows = {"check": [], "ceiling": []}
        for seed in range(args.seeds):
            truth, got, ceiling = case(ds, seed)
            rows["check"].append(_score(truth, got))
            rows["ceiling"].append(_score(truth, ceiling))
        for name, r in rows.items():
            r = np.array(r)
            print(f"{ds:14s} {name:8s} recall {r[:, 3].mean():.3f} precision {r[:, 4].mean():.3f}  "
                  f"(pooled tp {int(r[:, 0].sum())} fp {int(r[:, 1].sum())} fn {int(r[:, 2].sum())}, {args.seeds} seeds)",
                  flush=True)


if __name__ == "__main__":
    main()
