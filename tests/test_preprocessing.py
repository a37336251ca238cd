"""preprocessing_contamination: marks in the data and in fitted scikit-learn objects."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

import leakguard as lg

CFG = lg.AuditConfig(progress=False)
CHECK = ["preprocessing_contamination"]


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    perm = np.random.default_rng(0).permutation(len(X))
    return X, y, perm[:400], perm[400:480], perm[480:]


def _audit(X, tr, va, te=None, **kw):
    splits = {"train": X.iloc[tr], "val": X.iloc[va]}
    if te is not None:
        splits["test"] = X.iloc[te]
    return lg.audit(splits, config=CFG, checks=CHECK, **kw)


def _frame(arr, like):
    return pd.DataFrame(arr, columns=like.columns)


@pytest.mark.parametrize("scaler, kind", [(StandardScaler(), "standard"), (RobustScaler(), "robust")])
def test_scaled_over_all_splits(cancer, scaler, kind):
    X, y, tr, va, te = cancer
    report = _audit(_frame(scaler.fit_transform(X), X), tr, va, te)
    [f] = report.findings
    assert f.extra["kind"] == kind and f.features == list(X.columns)
    assert f.splits == ("train", "val", "test") and f.severity == "warning"
    assert f.count == len(va) + len(te)
    assert len(report.leaked("val")) == 0  # a feature-level finding marks no sample


def test_scaled_over_train_and_val_only(cancer):
    X, y, tr, va, te = cancer
    scaler = StandardScaler().fit(X.iloc[np.concatenate([tr, va])])
    report = _audit(_frame(scaler.transform(X), X), tr, va, te)
    [f] = report.findings
    assert f.splits == ("train", "val")


def test_minmax_over_the_union_names_exactly_the_telling_features(cancer):
    X, y, tr, va, te = cancer
    report = _audit(_frame(MinMaxScaler().fit_transform(X), X), tr, va, te)
    [f] = report.findings
    # only features whose minimum or maximum lies outside train can tell the fits apart
    telling = [c for c in X.columns if X[c].iloc[tr].min() != X[c].min() or X[c].iloc[tr].max() != X[c].max()]
    assert sorted(f.features) == sorted(telling) and len(telling) > 5


@pytest.mark.parametrize("strategy", ["mean", "median"])
def test_imputed_with_union_statistics(cancer, strategy):
    X, y, tr, va, te = cancer
    holes = X.mask(np.random.default_rng(1).random(X.shape) < 0.08)
    report = _audit(_frame(SimpleImputer(strategy=strategy).fit_transform(holes), X), tr, va, te)
    [f] = report.findings
    assert f.extra["kind"] == f"impute_{strategy}"
    train_fill = SimpleImputer(strategy=strategy).fit(holes.iloc[tr]).statistics_
    union_fill = SimpleImputer(strategy=strategy).fit(holes).statistics_
    telling = [c for c, a, b in zip(X.columns, train_fill, union_fill) if a != b]
    if strategy == "mean":
        assert sorted(f.features) == sorted(telling)
    else:
        # decided over the table: a column's fill needs fewer real ties as the union's median
        assert set(f.features) <= set(telling) and len(f.features) >= 0.95 * len(telling)


def _median_planting(X, seed):
    """8 % of the cells missing at random, an 80/20 split, and median imputers fitted on train
    and on the union: (holes, train rows, test rows, train fit, union fit)."""
    rng = np.random.default_rng(seed)
    holes = X.astype(float).mask(rng.random(X.shape) < 0.08)
    perm = rng.permutation(len(X))
    tr, te = perm[:int(0.8 * len(X))], perm[int(0.8 * len(X)):]
    train_fit = SimpleImputer(strategy="median").fit(holes.iloc[tr])
    union_fit = SimpleImputer(strategy="median").fit(holes)
    return holes, tr, te, train_fit, union_fit


@pytest.mark.parametrize("seed", [3, 4, 8])
def test_median_fill_decided_over_the_table(seed):
    """Wine and diabetes are recorded to few decimals: a fill value is often also a real value.
    The table decides (union vs train) over all columns; seeds where one column alone mimics a
    union median on the train-fitted table (seen before the table vote) stay clean."""
    from sklearn.datasets import load_diabetes

    for X in (load_wine(as_frame=True).data, load_diabetes(as_frame=True, scaled=False).data):
        holes, tr, te, train_fit, union_fit = _median_planting(X, seed)
        clean = lg.audit({"train": _frame(train_fit.transform(holes), X).iloc[tr],
                          "test": _frame(train_fit.transform(holes), X).iloc[te]}, config=CFG, checks=CHECK)
        assert clean.findings == []
        leaky = lg.audit({"train": _frame(union_fit.transform(holes), X).iloc[tr],
                          "test": _frame(union_fit.transform(holes), X).iloc[te]}, config=CFG, checks=CHECK)
        [f] = leaky.findings
        telling = {c for c, a, b in zip(X.columns, train_fit.statistics_, union_fit.statistics_) if a != b}
        assert f.extra["kind"] == "impute_median" and len(set(f.features) & telling) >= 0.6 * len(telling)


def test_fitted_on_train_only_is_clean(cancer):
    X, y, tr, va, te = cancer
    holes = X.mask(np.random.default_rng(1).random(X.shape) < 0.08)
    for transform in (StandardScaler(), MinMaxScaler(), RobustScaler(), SimpleImputer(strategy="mean"),
                      SimpleImputer(strategy="median")):
        data = holes if isinstance(transform, SimpleImputer) else X
        transform.fit(data.iloc[tr])
        report = _audit(_frame(transform.transform(data), X), tr, va, te)
        assert report.findings == [], type(transform).__name__
    assert _audit(X, tr, va, te).findings == []


def test_fitted_pipeline_saw_the_evaluation_data(cancer):
    X, y, tr, va, te = cancer
    leaky = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    report = _audit(X, tr, va, te, fitted=[leaky])
    [f] = report.findings
    assert f.extra["kind"] == "fitted" and f.extra["n_samples_seen"] == len(X)
    assert f.splits == ("train", "val", "test") and "StandardScaler" in f.title
    assert f.features == list(X.columns)
    clean = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X.iloc[tr], y.iloc[tr])
    assert _audit(X, tr, va, te, fitted=[clean]).findings == []


def test_fitted_numpy_scaler_and_column_transformer(cancer):
    X, y, tr, va, te = cancer
    mm = MinMaxScaler().fit(X.iloc[np.concatenate([tr, va])].to_numpy())
    report = _audit(X, tr, va, te, fitted={"minmax": mm})
    [f] = report.findings
    assert f.splits == ("train", "val") and "minmax" in f.title
    cols = list(X.columns[:5])
    ct = ColumnTransformer([("scale", StandardScaler(), cols)], remainder="drop").fit(X)
    report = _audit(X, tr, va, te, fitted=ct)
    [f] = report.findings
    assert f.features == cols and f.extra["attribute"] == "mean_"


def test_n_samples_seen_alone_for_any_modality(rng):
    train, val = rng.normal(size=(60, 8, 8)), rng.normal(size=(20, 8, 8))
    scaler = StandardScaler().fit(np.vstack([train, val]).reshape(80, -1))
    report = lg.audit({"train": train, "val": val}, config=CFG, checks=CHECK, fitted=scaler)
    [f] = report.findings
    assert f.extra["n_samples_seen"] == 80 and f.extra["exact_union"] and f.splits == ("train", "val")


def test_small_wine_table_scaled_together():
    X, y = load_wine(return_X_y=True, as_frame=True)
    Xs = _frame(StandardScaler().fit_transform(X), X)
    report = lg.audit({"train": Xs.iloc[:140], "test": Xs.iloc[140:]}, config=CFG, checks=CHECK)
    [f] = report.findings
    assert len(f.features) == X.shape[1]


def test_median_fill_columns_whose_fill_is_not_the_top_value():
    """Once the table is found imputed over the union, each column's fill value is the value that
    best explains the union's median, even where a real value is repeated about as often (wine's
    magnesium: the fill 98 is held 16 times, 88 12 times by itself), and the real copies are
    counted over train and test together (p_train_median). Seed 2 of the benchmark: every telling
    column found, no other."""
    from leakguard.checks.preprocessing import p_train_median

    X = load_wine(as_frame=True).data
    rng = np.random.default_rng(2)
    holes = X.astype(float).mask(rng.random(X.shape) < 0.08)
    perm = rng.permutation(len(X))
    tr, te = perm[:int(0.8 * len(X))], perm[int(0.8 * len(X)):]
    train_fit = SimpleImputer(strategy="median").fit(holes.iloc[tr])
    union_fit = SimpleImputer(strategy="median").fit(holes)
    filled = _frame(union_fit.transform(holes), X)
    [f] = lg.audit({"train": filled.iloc[tr], "test": filled.iloc[te]}, config=CFG, checks=CHECK).findings
    telling = {c for c, a, b in zip(X.columns, train_fit.statistics_, union_fit.statistics_) if a != b}
    assert {"magnesium", "proline"} <= telling
    assert set(f.features) == telling
    # a midpoint (not a recordable value) has no real copy: train, needing one, cannot match it
    assert p_train_median(12, 3, 0, 1, 2.0, recordable=False) == 0.0
    # many real copies likely (ties like the neighbours'), train needs few: its median matches
    assert p_train_median(12, 3, 2, 2, 5.0, recordable=True) > 0.9


def _bench_median_case(X, seed):
    """The planting of benchmarks/bench_checks_planted.case_preprocessing (8 % missing, 80/20)."""
    holes, tr, te, train_fit, union_fit = _median_planting(X, seed)
    filled = _frame(union_fit.transform(holes), X)
    telling = {c for c, a, b in zip(X.columns, train_fit.statistics_, union_fit.statistics_) if a != b}
    [f] = lg.audit({"train": filled.iloc[tr], "test": filled.iloc[te]}, config=CFG, checks=CHECK).findings
    # each reported column says how sure it is: P(train's own median differs from the fill) > 0.6
    assert set(f.extra["p_contaminated"]) <= set(f.features)
    assert all(0.6 < p <= 1.0 for p in f.extra["p_contaminated"].values())
    return set(f.features), telling


@pytest.mark.parametrize("dataset, seed, found, not_found", [
    # integer data: 185 and 187 balance around the fill 186, which 7 training rows really hold, so
    # train's own median is 186 too; the column-wise midpoint test alone reported s1 (session 3)
    ("diabetes", 8, set(), {"s1"}),
    # age: the fill 50 is held by 34 training rows, 9 of them real while train needs 10; the tie
    # rate of the distinct neighbours (Poisson, no empty grid points) called that likely (P 0.33)
    ("diabetes", 17, {"age"}, set()),
    # magnesium 97 (train's median 98) was missed, alcalinity 19.5 (train's too) reported
    ("wine", 12, {"magnesium"}, {"alcalinity_of_ash"}),
])
def test_median_fill_columns_decided_by_real_copies(dataset, seed, found, not_found):
    """Median fills on data recorded to few decimals: which columns' train median differs from the
    fill is judged from the real copies of the fill value (prior: the neighbours' counts over their
    grid, empty points included, negative binomial), and a column the midpoint test flags is kept
    only while train's own median is unlikely to be the fill. Benchmark seeds the session-3 rule
    got wrong; the features now equal the truth, so a flipped column fails too."""
    from sklearn.datasets import load_diabetes

    X = load_wine(as_frame=True).data if dataset == "wine" else load_diabetes(as_frame=True, scaled=False).data
    features, telling = _bench_median_case(X, seed)
    assert found <= telling and not (not_found & telling)
    assert features == telling


def test_copy_prior_counts_empty_grid_points_and_heaps():
    """_copy_prior: the neighbours' counts over every point of their grid (a point no row holds
    counts 0), with their own variance when the data heap on some values; a midpoint has none."""
    from leakguard.checks.preprocessing import _copy_prior, p_train_median

    # 2-decimal data on every other point (x.x0, x.x2, ...) each held twice: 1 copy per grid point
    sparse = np.repeat(np.round(np.arange(1.0, 1.5, 0.02), 2), 2)
    mean, var = _copy_prior(sparse, 1.25)
    assert 0.8 <= mean <= 1.2
    # whole numbers heaped on every 5th (30 copies there, 5 elsewhere): overdispersed
    values = np.concatenate([np.full(30 if v % 5 == 0 else 5, float(v)) for v in range(60, 130)])
    mean, var = _copy_prior(values, 93.0)
    assert 8 < mean < 14 and var > 3 * mean
    assert _copy_prior(sparse, 1.255) == (0.0, 0.0)  # x.xx5 cannot be a recorded 2-decimal value
    # the posterior follows the prior: many real copies expected -> train (needing 5) matches
    assert p_train_median(30, 8, 3, 5, 0.0, True, copies=(15.0, 20.0)) > 0.9
    assert p_train_median(30, 8, 3, 5, 0.0, True, copies=(0.5, 0.6)) < 0.1


def test_median_fill_never_reports_a_column_with_no_missing_value():
    """One imputer over the union filled the table, but columns that missed nothing hold no fill: the
    union's and train's medians of such a column may differ (the data differ), yet nothing was
    imputed. A repeated real value that is not even the union's median (whole numbers, 2-decimal
    data: many ties) was taken for its fill before; only the column's median can be the fill."""
    rng = np.random.default_rng(0)
    n = 6000
    X = pd.DataFrame({f"int{i}": rng.poisson(50 + 10 * i, n).astype(float) for i in range(5)})
    for i in range(5):
        X[f"dec{i}"] = np.round(rng.normal(10, 2, n), 2)
    for i in range(3):
        X[f"cont{i}"] = rng.normal(0, 1, n)
    rates = np.r_[0.0, 0.01, 0.3, 0.05, 0.0, 0.2, 0.02, 0.0, 0.1, 0.4, 0.08, 0.0, 0.15]
    holes = X.mask(rng.random(X.shape) < rates[None, :])
    perm = rng.permutation(n)
    tr, te = perm[:4800], perm[4800:]
    filled = _frame(SimpleImputer(strategy="median").fit_transform(holes), X)
    [f] = lg.audit({"train": filled.iloc[tr], "test": filled.iloc[te]}, config=CFG, checks=CHECK).findings
    complete = {c for c, r in zip(X.columns, rates) if r == 0}
    train_fit = SimpleImputer(strategy="median").fit(holes.iloc[tr]).statistics_
    union_fit = SimpleImputer(strategy="median").fit(holes).statistics_
    telling = {c for c, a, b in zip(X.columns, train_fit, union_fit) if a != b} - complete
    assert not set(f.features) & complete
    assert set(f.features) == telling and len(telling) >= 3
