"""Jittered copies of table rows (scikit-learn's bundled data sets) and of series."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine

import leakguard as lg
from leakguard.similarity.synthetic import jitter_rows, random_series
from leakguard.similarity.tabular import RobustScaling

CFG = lg.AuditConfig(progress=False)


def _split(loader, seed=0, share=0.7):
    X, _ = loader(return_X_y=True, as_frame=True)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    n_tr = int(share * len(X))
    return (X.iloc[perm[:n_tr]].reset_index(drop=True), X.iloc[perm[n_tr:]].reset_index(drop=True), rng)


def _found(report, check="augmented_duplicate"):
    p = report.pairs(check=check)
    return {(int(b), int(a)) for a, b in zip(p["index_a"], p["index_b"])}


@pytest.mark.parametrize("loader", [load_wine, load_breast_cancer, load_diabetes, load_digits])
@pytest.mark.parametrize("scale", [0.01, 0.05])
def test_jittered_rows_found_and_clean_rows_not(loader, scale):
    train, val, rng = _split(loader)
    sources = rng.choice(len(train), size=12, replace=False)
    copies = jitter_rows(train.iloc[sources].reset_index(drop=True), rng, scale)
    report = lg.audit({"train": train, "val": pd.concat([val, copies], ignore_index=True)},
                      checks=["exact_duplicate", "augmented_duplicate"], config=CFG)
    planted = {(len(val) + k, int(s)) for k, s in enumerate(sources)}
    found = _found(report)
    assert planted <= found, f"missed {sorted(planted - found)}"
    assert found == planted, f"clean rows flagged: {sorted(found - planted)}"
    f = next(f for f in report.findings if f.check == "augmented_duplicate")
    assert f.severity == "critical" and "IQR" in f.detail
    assert (f.pairs["distance"] < f.extra["threshold"]).all()
    assert f.pairs["score"].between(0.7, 1.0).all()


def test_clean_split_gives_no_finding():
    train, val, _ = _split(load_breast_cancer, seed=3)
    report = lg.audit({"train": train, "val": val}, checks=["augmented_duplicate"], config=CFG)
    assert report.findings == []


def test_threshold_follows_the_data():
    # digits (discrete pixel counts, many look-alike rows) get a tighter threshold than wine
    thresholds = {}
    for loader in (load_wine, load_digits):
        train, val, rng = _split(loader)
        copies = jitter_rows(train.iloc[:5].reset_index(drop=True), rng, 0.01)
        report = lg.audit({"train": train, "val": pd.concat([val, copies], ignore_index=True)},
                          checks=["augmented_duplicate"], config=CFG)
        thresholds[loader.__name__] = report.findings[0].extra["threshold"]
    assert thresholds["load_digits"] < thresholds["load_wine"]


def test_large_jitter_is_not_a_copy():
    train, val, rng = _split(load_breast_cancer)
    copies = jitter_rows(train.iloc[:10].reset_index(drop=True), rng, 1.0)  # a whole spread: new rows
    report = lg.audit({"train": train, "val": copies}, checks=["augmented_duplicate"], config=CFG)
    assert report.findings == []


def test_non_numeric_columns_must_match():
    train, _, rng = _split(load_wine)
    train = train.assign(site=np.where(np.arange(len(train)) % 2 == 0, "north", "south"))
    copies = jitter_rows(train.iloc[:6].reset_index(drop=True), rng, 0.01)
    copies.loc[:2, "site"] = copies.loc[:2, "site"].map({"north": "south", "south": "north"})
    report = lg.audit({"train": train, "val": copies}, checks=["augmented_duplicate"], config=CFG)
    assert {b for b, _ in _found(report)} == {3, 4, 5}


def test_exact_copies_are_left_to_exact_duplicate():
    train, val, _ = _split(load_diabetes)
    val = pd.concat([val, train.iloc[:4]], ignore_index=True)
    report = lg.audit({"train": train, "val": val}, checks=["exact_duplicate", "augmented_duplicate"], config=CFG)
    assert [f.check for f in report.findings] == ["exact_duplicate"]


def test_robust_scaling_ignores_outliers():
    X = np.vstack([np.random.default_rng(0).normal(size=(200, 2)), [[1e6, 0.0]]])
    s = RobustScaling().fit(X)
    assert 0.8 < s.spread[0] < 1.2  # the outlier does not inflate the spread


def test_jittered_series_found():
    rng = np.random.default_rng(1)
    series = random_series(rng, 260)
    train, clean = series[:200], series[200:]
    sources = rng.choice(200, size=15, replace=False)
    copies = [train[s] + rng.normal(size=len(train[s])) * 0.05 for s in sources]
    report = lg.audit({"train": train, "val": clean + copies}, modality="series",
                      checks=["exact_duplicate", "augmented_duplicate"], config=CFG)
    planted = {(len(clean) + k, int(s)) for k, s in enumerate(sources)}
    assert _found(report) == planted
    f = report.findings[0]
    assert f.extra["columns_used"] == 64  # 64 profile points; the constant length column is left out
