"""oversampling_leakage scaled out on Spark (leakguard.search.spark_oversampling): the exact
neighbour rule and statistics both engines share, and whole-report equality with the local engine."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import leakguard as lg
from leakguard.checks.oversampling import (NeighbourLists, _ray_triples, class_neighbours, exact_d2,
                                           exact_mean_sd, exact_ratio, exact_sum)

CHECK = ["oversampling_leakage"]


def _brute_force(S: np.ndarray, kk: int) -> np.ndarray:
    """The rule spelled out: per row, the other rows by (exact squared distance, index)."""
    out = []
    for i in range(len(S)):
        d2 = exact_d2(S[i][None, :], S[None, :, :])[0]
        d2[i] = np.inf
        out.append(np.lexsort((np.arange(len(S)), d2))[:kk])
    return np.asarray(out)


def test_neighbour_rule_is_float64_with_ties_to_the_smaller_index():
    """What happens at ties, exactly: equal float64 distances go to the smaller sample index,
    whatever the blocking; distances that float32 cannot tell apart are told apart in float64."""
    # a lattice: every point has 4 neighbours at 1, 4 at sqrt(2), 4 at 2 ... (ties everywhere)
    g = np.stack(np.meshgrid(np.arange(7.0), np.arange(7.0)), -1).reshape(-1, 2)
    for kk in (1, 3, 5, 6, 10):
        want = _brute_force(g, kk)
        assert (class_neighbours(g, kk) == want).all()
        # the same lists from index vectors fed in other batches, queries in another order
        order = np.random.default_rng(kk).permutation(len(g))
        lists = NeighbourLists(order, g[order], kk, extra=2)
        for part in np.array_split(np.random.default_rng(0).permutation(len(g)), 5):
            lists.add(part, g[part])
        nb, certified, _ = lists.result()
        assert (nb[certified] == want[order][certified]).all()
        if kk in (1, 5):  # ties past the candidates (4 at 1, then 4 at sqrt 2): rescanned, never guessed
            assert (~certified).any()
    # 30 copies tied at the 5th place, fed in reverse: the candidates kept are a guess among the
    # ties (here 24..28), so the query is not certified, and the rescan gives the rule's 1..5
    S = np.concatenate([[[0.0, 0.0]], np.tile([[1.0, 0.0]], (30, 1)), [[3.0, 3.0]]])
    lists = NeighbourLists(np.array([0]), S[:1], 5, extra=2)
    lists.add(np.arange(len(S))[::-1], S[::-1])
    nb, certified, _ = lists.result()
    assert not certified[0] and list(nb[0]) != [1, 2, 3, 4, 5]
    assert list(class_neighbours(S, 5)[0]) == [1, 2, 3, 4, 5]
    # 30 points a few ulps apart, with a far point that makes the BLAS candidates' rounding
    # (~1e-12) far wider than their differences (~4e-16): the guess is wrong, the rescan is right
    S = np.array([[0.0, 0.0]] + [[1.0 + (31 - i) * np.finfo(float).eps, 0.0] for i in range(1, 31)]
                 + [[1000.0, 1000.0]])
    lists = NeighbourLists(np.arange(len(S)), S, 5)
    lists.add(np.arange(len(S)), S)
    nb, certified, _ = lists.result()
    assert not certified[0] and list(nb[0]) != [30, 29, 28, 27, 26]
    assert list(class_neighbours(S, 5)[0]) == [30, 29, 28, 27, 26] == list(_brute_force(S, 5)[0])
    # float32 sees 1 and 1 + 1e-12 as equal (and would keep the smaller index, 1); float64 does not
    S = np.array([[0.0, 0.0], [1.0 + 1e-12, 0.0], [0.0, -1.0], [5.0, 5.0]])
    assert np.float32(S[1, 0]) == np.float32(1.0)
    assert class_neighbours(S, 1)[0, 0] == 2
    lists = NeighbourLists(np.array([0]), S[:1], 1)
    lists.add(np.arange(4), S)
    nb, certified, _ = lists.result()
    assert nb[0, 0] == 2 and certified[0]


def test_exact_sums_do_not_depend_on_order_or_partitioning():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(1e6, 1.0, (5000, 1)), rng.lognormal(0, 8, (5000, 1)),
                        rng.normal(0, 1e-300, (5000, 1))], axis=1)
    mean, sd = exact_mean_sd(X)
    perm = rng.permutation(len(X))
    mean2, sd2 = exact_mean_sd(X[perm])
    assert mean.tobytes() == mean2.tobytes() and sd.tobytes() == sd2.tobytes()
    parts = np.array_split(perm, 7)
    for j in range(3):
        total = sum(exact_sum(X[p, j]) for p in parts)
        assert exact_ratio(total, len(X)) == mean[j]
    assert np.allclose(mean, X.mean(axis=0), rtol=1e-12) and np.allclose(sd, X.std(axis=0), rtol=1e-9)
    # exactly rounded: the mean of 0.1 ten times is the double nearest 0.1, which naive sums miss
    assert exact_ratio(exact_sum(np.full(10, 0.1)), 10) == 0.1


def _comparable(report) -> dict:
    d = json.loads(report.to_json())
    d["meta"] = {k: v for k, v in d["meta"].items() if k not in ("duration_s", "created", "config", "spark", "cache")}
    return d


def _both(spark, splits, opts=None, **kwargs):
    local = lg.audit(splits, checks=CHECK, config=lg.AuditConfig(progress=False, check_options=opts or {}), **kwargs)
    on_spark = lg.audit(splits, checks=CHECK, config=lg.AuditConfig(engine="spark", spark=spark, progress=False,
                                                                    check_options=opts or {}), **kwargs)
    return local, on_spark


def test_ray_rows_on_spark_equal_local_on_a_lattice_of_ties(spark):
    """The triples (rows, in order) from the executors' blocks and rescans equal the local
    ``_ray_triples`` rows on lattice data, where the k-th neighbour is tied almost everywhere
    (mutation: skipping the rescans, or ties to the larger index, changes the rows)."""
    from leakguard.search import spark_oversampling as so

    g = np.stack(np.meshgrid(np.arange(9.0), np.arange(9.0)), -1).reshape(-1, 2)
    # half-grid points, and 20 copies of three points: ties at the k-th place wider than the candidates
    g = np.concatenate([g, g[:20] * 0.5 + 0.25, np.repeat(g[[10, 40, 41]], 20, axis=0)])
    classes = np.zeros(len(g), dtype=int)
    classes[::7] = 1
    finite = np.ones(len(g), dtype=bool)
    mean, sd = exact_mean_sd(g)
    Z = (g - mean) / sd
    tol = 1e-6
    k = 6
    want = []
    for space in (g, Z):
        want += _ray_triples(space, Z, classes, finite, k, tol, 1.0 - tol ** 2 / 2, 128)
    rows = pd.DataFrame({so.PIDX: np.arange(len(g)), so.CLS: classes.astype(np.int32),
                         "x": [r.tobytes() for r in g], "z": [r.tobytes() for r in Z]})
    frame = spark.createDataFrame(rows)
    sizes = {0: int((classes == 0).sum()), 1: int((classes == 1).sum())}
    triples = so._neighbour_triples(spark, frame, 2, k, sizes, {0: 4, 1: 2}, tol)
    found, rescanned = so._fallback(spark, frame, 2, k, sizes, triples, tol)
    found.sort(key=lambda r: r[0])
    got = [r[1] for r in found]
    assert len(got) == len(want) > 50
    assert [r[:3] for r in got] == [tuple(int(v) for v in r[:3]) for r in want]
    assert np.array_equal([r[3] for r in got], [r[3] for r in want])
    assert rescanned > 20  # the rescans ran


def _cancer(n_minority=60):
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :10]
    rng = np.random.default_rng(0)
    keep = np.concatenate([np.flatnonzero(y == 1), rng.choice(np.flatnonzero(y == 0), n_minority, replace=False)])
    return X.iloc[keep].reset_index(drop=True), y.iloc[keep].reset_index(drop=True)


def test_smote_and_copies_distributed_same_as_local(spark):
    """SMOTE before the split (labels as arrays, several query blocks per class) and random
    oversampling before the split (labels as a column, copies; a driver budget of 1 kB, which the
    collect path refuses): the distributed path runs, report JSON equal to the local one."""
    imblearn = pytest.importorskip("imblearn")  # noqa: F841
    from imblearn.over_sampling import SMOTE, RandomOverSampler

    X, y = _cancer()
    Xs, ys = SMOTE(random_state=0).fit_resample(X, y)
    perm = np.random.default_rng(1).permutation(len(Xs))
    tr, te = perm[:int(0.8 * len(Xs))], perm[int(0.8 * len(Xs)):]
    splits = {"train": Xs.iloc[tr], "test": Xs.iloc[te]}
    labels = {"train": ys.iloc[tr].to_numpy(), "test": ys.iloc[te].to_numpy()}
    local, on_spark = _both(spark, splits, {"oversampling_leakage": {"block_rows": 100}}, labels=labels)
    assert on_spark.meta["spark"]["oversampling_path"] == "distributed"
    assert _comparable(on_spark) == _comparable(local)
    [cross] = [f for f in on_spark.findings if f.extra.get("kind") == "interpolation"]
    assert cross.splits == ("train", "test") and cross.count > 50

    Xr, yr = RandomOverSampler(random_state=0).fit_resample(X, y)
    table = Xr.assign(label=yr.to_numpy(), ward=[f"w{i % 5}" for i in range(len(Xr))])
    splits = {"train": table.iloc[tr[tr < len(table)]], "test": table.iloc[te[te < len(table)]]}
    opts = {"oversampling_leakage": {"driver_budget_bytes": 1000}}
    local, on_spark = _both(spark, splits, opts, labels="label")
    assert on_spark.meta["spark"]["oversampling_path"] == "distributed"
    assert _comparable(on_spark) == _comparable(local)
    assert [f.extra["kind"] for f in on_spark.findings] == ["copies"]
    assert on_spark.findings[0].count > 30
    # the collect path is still there, and still bounded
    with pytest.warns(RuntimeWarning, match="driver_budget_bytes"):
        small = lg.audit(splits, labels="label", checks=CHECK, config=lg.AuditConfig(
            engine="spark", spark=spark, progress=False,
            check_options={"oversampling_leakage": {**opts["oversampling_leakage"], "spark_path": "driver"}}))
    assert small.meta["spark"]["oversampling_path"] == "driver"
    assert "could not run" in small.findings[0].title


def test_copies_at_the_kth_place_rescanned_same_as_local(spark):
    """Every minority row copied 20 times before the split and then SMOTE on top: ties at the
    k-th neighbour wider than the kept candidates, so queries are rescanned over their class;
    report JSON equal to local, without labels too (one class)."""
    imblearn = pytest.importorskip("imblearn")  # noqa: F841
    from imblearn.over_sampling import SMOTE

    X, y = _cancer(20)
    minority = np.flatnonzero(y == 0)
    X = pd.concat([X, *[X.iloc[minority]] * 19], ignore_index=True)
    y = pd.concat([y, *[y.iloc[minority]] * 19], ignore_index=True)
    Xs, ys = SMOTE(random_state=0, k_neighbors=3).fit_resample(X, y)
    perm = np.random.default_rng(2).permutation(len(Xs))
    tr, te = perm[:int(0.75 * len(Xs))], perm[int(0.75 * len(Xs)):]
    splits = {"train": Xs.iloc[tr], "test": Xs.iloc[te]}
    labels = {"train": ys.iloc[tr].to_numpy(), "test": ys.iloc[te].to_numpy()}
    opts = {"oversampling_leakage": {"k": 8, "block_rows": 150}}
    local, on_spark = _both(spark, splits, opts, labels=labels)
    assert on_spark.meta["spark"]["oversampling_rescanned"] > 0
    assert _comparable(on_spark) == _comparable(local)
    assert {f.extra.get("kind") for f in on_spark.findings} >= {"copies", "interpolation"}
