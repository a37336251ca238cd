"""oversampling_leakage: imbalanced-learn's samplers applied before the split, and after it (clean)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

import leakguard as lg
from leakguard.checks.oversampling import interpolated_triples

imblearn = pytest.importorskip("imblearn")
from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE, RandomOverSampler  # noqa: E402

CFG = lg.AuditConfig(progress=False)
CHECK = ["oversampling_leakage"]


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    # make class 0 a real minority: keep 60 of its 212 samples
    rng = np.random.default_rng(0)
    keep = np.concatenate([np.flatnonzero(y == 1), rng.choice(np.flatnonzero(y == 0), 60, replace=False)])
    return X.iloc[keep].reset_index(drop=True), y.iloc[keep].reset_index(drop=True)


def _split(X, y, seed=0, share=0.8):
    perm = np.random.default_rng(seed).permutation(len(X))
    cut = int(share * len(X))
    tr, te = perm[:cut], perm[cut:]
    return ({"train": X.iloc[tr].reset_index(drop=True), "test": X.iloc[te].reset_index(drop=True)},
            {"train": y.iloc[tr].to_numpy(), "test": y.iloc[te].to_numpy()}, tr, te)


def _truth_smote(X0, y0, Xs, y_res, tr, te):
    """Test samples truly tied to train: synthetic test samples with a train parent, and test
    originals that parent a synthetic train sample. Parents found by brute force over every pair
    of original samples of the synthetic sample's class."""
    X = Xs.to_numpy()
    y_res = np.asarray(y_res)
    n_orig = len(X0)
    orig, ys = X0.to_numpy(), np.asarray(y0)
    pos = np.empty(len(X), dtype=object)
    pos[tr] = [("train", i) for i in range(len(tr))]
    pos[te] = [("test", i) for i in range(len(te))]
    leaked = set()
    for s in range(n_orig, len(X)):
        same = np.flatnonzero(ys == y_res[s])
        i, j = np.triu_indices(len(same), 1)
        A, B = orig[same[i]], orig[same[j]]
        D = B - A
        lam = ((X[s] - A) * D).sum(axis=1) / (D ** 2).sum(axis=1)
        resid = np.linalg.norm(X[s] - A - lam[:, None] * D, axis=1) / np.linalg.norm(D, axis=1)
        hit = np.flatnonzero((lam > 0) & (lam < 1) & (resid <= 1e-6))
        if not len(hit):
            continue
        parents = (same[i[hit[0]]], same[j[hit[0]]])
        if pos[s][0] == "test" and any(pos[p][0] == "train" for p in parents):
            leaked.add(pos[s][1])
        if pos[s][0] == "train":
            leaked.update(pos[p][1] for p in parents if pos[p][0] == "test")
    return leaked


@pytest.mark.parametrize("sampler", [SMOTE(random_state=0), BorderlineSMOTE(random_state=0)],
                         ids=["smote", "borderline"])
def test_smote_before_split_found_with_parents(cancer, sampler):
    X, y = cancer
    Xs, ys = sampler.fit_resample(X, y)
    splits, labels, tr, te = _split(Xs, ys)
    report = lg.audit(splits, labels=labels, config=CFG, checks=CHECK)
    found = [f for f in report.findings if f.extra.get("kind") == "interpolation"]
    assert len(found) == 1 and found[0].severity == "critical"
    truth = _truth_smote(X, y, Xs, ys, tr, te)
    got = set(report.leaked("test").tolist())
    assert len(truth) > 20
    recall = len(got & truth) / len(truth)
    precision = len(got & truth) / max(len(got), 1)
    assert recall >= 0.95 and precision >= 0.95, (recall, precision)
    # each triple's synthetic sample lies between its parents
    t = found[0].extra["triples"][0]
    s = splits[t["synthetic"][0]].iloc[t["synthetic"][1]].to_numpy()
    a, b = (splits[sp].iloc[i].to_numpy() for sp, i in t["parents"])
    lam = t["lambda"]
    assert np.allclose(s, a + lam * (b - a), rtol=1e-3, atol=1e-3 * np.abs(b - a).max())


def test_smote_on_the_training_split_only_is_clean(cancer):
    X, y = cancer
    splits, labels, _, _ = _split(X, y)
    Xt, yt = SMOTE(random_state=0).fit_resample(splits["train"], labels["train"])
    report = lg.audit({"train": Xt, "test": splits["test"]}, labels={"train": yt, "test": labels["test"]},
                      config=CFG, checks=CHECK)
    assert report.findings == []
    # the raw data has no collinear triples at all
    assert lg.audit(splits, labels=labels, config=CFG, checks=CHECK).findings == []


def test_adasyn_without_labels_still_found(cancer):
    X, y = cancer
    Xs, ys = ADASYN(random_state=0).fit_resample(X, y)
    splits, labels, _, _ = _split(Xs, ys)
    report = lg.audit(splits, config=CFG, checks=CHECK)  # no labels: search among all samples
    [f] = [f for f in report.findings if f.cross_split]
    assert f.extra["kind"] == "interpolation" and f.count > 10


def test_random_oversampling_copies_in_the_minority_class(cancer):
    X, y = cancer
    Xr, yr = RandomOverSampler(random_state=0).fit_resample(X, y)
    splits, labels, tr, te = _split(Xr, yr)
    report = lg.audit(splits, labels=labels, config=CFG, checks=["exact_duplicate", *CHECK])
    [f] = [f for f in report.findings if f.check == "oversampling_leakage"]
    assert f.extra["kind"] == "copies" and f.extra["classes"] == ["0"]
    # every flagged test sample is a minority sample with an identical training row
    got = report.leaked("test", check="oversampling_leakage")
    exact = report.leaked("test", check="exact_duplicate")
    assert set(got) <= set(exact) and len(got) == len(exact)
    assert (labels["test"][got] == 0).all()
    # oversampled after splitting: copies stay inside train
    splits, labels, _, _ = _split(X, y)
    Xt, yt = RandomOverSampler(random_state=0).fit_resample(splits["train"], labels["train"])
    report = lg.audit({"train": Xt, "test": splits["test"]}, labels={"train": yt, "test": labels["test"]},
                      config=CFG, checks=["exact_duplicate", *CHECK])
    assert [f for f in report.findings if f.cross_split] == []


def test_duplicates_spread_over_all_classes_are_not_oversampling(rng):
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
    y = np.where(rng.random(300) < 0.2, 1, 0)
    dup = rng.choice(300, 60, replace=False)
    X2, y2 = pd.concat([X, X.iloc[dup]], ignore_index=True), np.concatenate([y, y[dup]])
    perm = rng.permutation(len(X2))
    report = lg.audit({"train": X2.iloc[perm[:280]], "test": X2.iloc[perm[280:]]},
                      labels={"train": y2[perm[:280]], "test": y2[perm[280:]]}, config=CFG, checks=CHECK)
    assert report.findings == []


def test_rounded_grid_data_is_not_mistaken_for_interpolation(rng):
    # integer-valued features: collinear triples happen by chance and are not SMOTE
    X = rng.integers(0, 5, size=(400, 3)).astype(float)
    X += rng.normal(size=(400, 3)).round(0) * 0  # keep integers
    X = np.unique(X, axis=0)
    classes = np.zeros(len(X), dtype=int)
    assert len(interpolated_triples(X, classes)) == 0


def test_resplit_keeps_synthetic_samples_with_their_parents(cancer):
    X, y = cancer
    Xs, ys = SMOTE(random_state=0).fit_resample(X, y)
    splits, labels, _, _ = _split(Xs, ys)
    report = lg.audit(splits, labels=labels, config=CFG, checks=CHECK)
    new = lg.resplit(splits, report, labels=labels)
    again = lg.audit(new, labels=new.labels, config=CFG, checks=CHECK)
    assert [f for f in again.findings if f.cross_split] == []


def test_grid_of_recorded_decimals_survives_many_synthetic_rows(rng):
    """Originals recorded to 2 decimals stay 'on the grid' when 40% of the rows are interpolations
    (oversampling before the split), so the parents of a line are told from its children."""
    from leakguard.checks.oversampling import _on_grid

    originals = np.round(rng.normal(size=(60, 4)) * 10, 2)
    i = rng.integers(0, 60, 40)
    a, b = originals[i], originals[(i + rng.integers(1, 60, 40)) % 60]  # two different parents
    synthetic = a + rng.uniform(0.05, 0.95, (40, 1)) * (b - a)
    on = _on_grid(np.vstack([originals, synthetic]))
    assert on[:60].all() and not on[60:].any()
    assert not _on_grid(rng.normal(size=(50, 3))).any()  # continuous data: no grid at all
