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


# ------------------------------------------------------------------ semantic: the same record, partly changed

def _edited(train, sources, rng, share):
    """Copies of ``train`` rows (3 % jitter) with ``share`` of their columns re-drawn, each from
    another random training row (a re-measured or edited field)."""
    rows = jitter_rows(train.iloc[sources].reset_index(drop=True), rng, 0.03)
    m = train.shape[1]
    for r in range(len(rows)):
        for c in rng.choice(m, size=max(1, int(round(share * m))), replace=False):
            rows.iat[r, c] = train.iat[int(rng.integers(len(train))), c]
    return rows


@pytest.mark.parametrize("loader", [load_wine, load_breast_cancer])
def test_edited_rows_found_by_semantic_check(loader):
    # 20 % of the columns re-drawn: too far for the jitter check, the same record for the semantic one
    train, val, rng = _split(loader)
    sources = rng.choice(len(train), size=12, replace=False)
    edited = _edited(train, sources, rng, 0.2)
    report = lg.audit({"train": train, "val": pd.concat([val, edited], ignore_index=True)},
                      checks=["exact_duplicate", "augmented_duplicate", "semantic_duplicate"], config=CFG)
    planted = {(len(val) + k, int(s)) for k, s in enumerate(sources)}
    semantic = _found(report, "semantic_duplicate")
    found = semantic | _found(report, "augmented_duplicate")
    assert found == planted, f"missed {sorted(planted - found)}, clean flagged {sorted(found - planted)}"
    assert len(semantic) >= 10  # most of them are too far for the jitter check
    f = next(f for f in report.findings if f.check == "semantic_duplicate")
    assert f.severity == "warning" and f.extra["keep"] == 0.75 and f.extra["null_size"] == len(train)
    assert (f.pairs["distance"] <= f.extra["threshold"]).all() and f.extra["threshold"] < 0.25


def test_half_edited_rows_are_new_records():
    # half of the columns re-drawn: not "most features agree"; a lax threshold would flag them
    train, val, rng = _split(load_breast_cancer)
    edited = _edited(train, rng.choice(len(train), size=12, replace=False), rng, 0.5)
    report = lg.audit({"train": train, "val": pd.concat([val, edited], ignore_index=True)},
                      checks=["exact_duplicate", "augmented_duplicate", "semantic_duplicate"], config=CFG)
    assert report.findings == []


def test_semantic_threshold_is_calibrated_per_data_set():
    from leakguard.similarity.tabular import edited_copies, trimmed_distances

    train, val, _ = _split(load_breast_cancer)
    res = edited_copies(train.to_numpy(), val.to_numpy(), fpr=1e-3)
    s = res["scaling"]
    T = s.transform(train.to_numpy())
    # the threshold sits under every training row's trimmed distance to its nearest other row
    nearest_other = [np.delete(trimmed_distances(np.repeat(T[i:i + 1], len(T), 0), T, 0.75), i).min()
                     for i in range(0, len(T), 7)]
    assert res["threshold"] < min(nearest_other)
    assert len(res["eval"]) == 0  # and flags no clean row


def test_semantic_with_a_user_embedder():
    train, val, rng = _split(load_wine)
    sources = rng.choice(len(train), size=6, replace=False)
    edited = _edited(train, sources, rng, 0.2)
    scaling = RobustScaling().fit(train.to_numpy())

    def rank_embedder(frame):  # a user's row embedding: robust-scaled features, clipped
        return np.clip(scaling.transform(frame.to_numpy()), -3, 3)

    report = lg.audit({"train": train, "val": pd.concat([val, edited], ignore_index=True)},
                      checks=["semantic_duplicate"], config=lg.AuditConfig(progress=False, embedder=rank_embedder))
    found = _found(report, "semantic_duplicate")
    assert found and found <= {(len(val) + k, int(s)) for k, s in enumerate(sources)}
    assert report.findings[0].extra["threshold"] > 0.9  # a cosine similarity, calibrated


def test_semantic_block_candidates_on_large_data(monkeypatch):
    # large data sets get candidates from kNN per block of 4 features, not every row: same pairs here
    import leakguard.similarity.tabular as tabular

    train, val, rng = _split(load_breast_cancer)
    sources = rng.choice(len(train), size=12, replace=False)
    edited = _edited(train, sources, rng, 0.2)
    data = {"train": train, "val": pd.concat([val, edited], ignore_index=True)}
    exhaustive = _found(lg.audit(data, checks=["semantic_duplicate"], config=CFG), "semantic_duplicate")
    monkeypatch.setattr(tabular, "EXHAUSTIVE_CELLS", 0)
    blocks = _found(lg.audit(data, checks=["semantic_duplicate"], config=CFG), "semantic_duplicate")
    assert blocks == exhaustive == {(len(val) + k, int(s)) for k, s in enumerate(sources)}


def test_semantic_user_embedder_of_the_wrong_shape_is_named():
    from leakguard.errors import InputError

    train, val, _ = _split(load_wine)
    cfg = lg.AuditConfig(progress=False, embedder=lambda frame: np.zeros((len(frame), 3, 2)))
    with pytest.raises(InputError, match="split 'train'"):
        lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"], config=cfg)
