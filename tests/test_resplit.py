"""lg.resplit: leak-free re-splits of arrays, DataFrames and file lists."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import leakguard as lg

CFG = lg.AuditConfig(progress=False)


def _leaky_arrays(rng, n=300, copies=25):
    X = rng.normal(size=(n, 5))
    y = rng.integers(0, 3, n)
    tr, va = X[: int(n * 0.8)], np.vstack([X[int(n * 0.8):], X[:copies]])
    ytr, yva = y[: int(n * 0.8)], np.concatenate([y[int(n * 0.8):], y[:copies]])
    return {"train": tr, "val": va}, {"train": ytr, "val": yva}


def test_arrays_resplit_removes_exact_duplicates_and_keeps_types(rng):
    splits, labels = _leaky_arrays(rng)
    report = lg.audit(splits, labels=labels, config=CFG, checks=["exact_duplicate"])
    assert len(report.leaked("val")) == 25
    new = lg.resplit(splits, report, labels=labels)
    assert list(new) == ["train", "val"]
    assert all(isinstance(v, np.ndarray) and v.shape[1] == 5 for v in new.values())
    # ratios default to the input sizes
    assert new.summary()["sizes"] == {"train": len(splits["train"]), "val": len(splits["val"])}
    again = lg.audit(new, labels=new.labels, config=CFG, checks=["exact_duplicate"])
    assert again.passed and len(again.leaked("val")) == 0
    assert not [f for f in again.findings if f.cross_split]
    # every copy of a duplicated row landed in one split
    assert new.summary()["linked_components"] == 25
    # origin points back at the very same rows
    for name, origin in new.origin.items():
        for k, (s, i) in enumerate(zip(origin["split"], origin["index"])):
            np.testing.assert_array_equal(new[name][k], splits[s][i])
            assert new.labels[name][k] == labels[s][i]
    assert new.moved == int(new.assignment["moved"].sum()) > 0
    # minimal moves: far fewer than a fresh draw would move
    assert new.moved <= 2 * 25 + 2
    fresh = lg.resplit(splits, report, labels=labels, minimal_moves=False)
    assert fresh.moved > new.moved
    assert lg.audit(fresh, config=CFG, checks=["exact_duplicate"]).passed


def test_stratified_ratios_and_new_split_names(rng):
    X = rng.normal(size=(1000, 4))
    y = np.where(rng.random(1000) < 0.1, "rare", "common")
    new = lg.resplit({"train": X[:900], "test": X[900:]}, None,
                     ratios={"train": 0.6, "val": 0.2, "test": 0.2},
                     labels={"train": y[:900], "test": y[900:]}, random_state=3)
    assert list(new) == ["train", "val", "test"]
    sizes = new.summary()["sizes"]
    assert abs(sizes["train"] - 600) <= 2 and abs(sizes["val"] - 200) <= 2
    share = {k: np.mean(v == "rare") for k, v in new.labels.items()}
    overall = np.mean(y == "rare")
    assert all(abs(s - overall) < 0.01 for s in share.values()), share


def test_dataframe_groups_and_label_columns_stay(rng):
    df = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    df["label"] = rng.integers(0, 2, 400)
    df["patient"] = rng.integers(0, 60, 400)
    splits = {"train": df[:300], "val": df[300:350], "test": df[350:]}
    new = lg.resplit(splits, None, labels="label", groups="patient")
    assert all(isinstance(v, pd.DataFrame) for v in new.values())
    assert list(new["train"].columns) == ["a", "b", "c", "label", "patient"]
    seen = {}
    for name, frame in new.items():
        for p in frame["patient"].unique():
            assert seen.setdefault(p, name) == name, f"patient {p} in {seen[p]} and {name}"
        np.testing.assert_array_equal(new.labels[name], frame["label"].to_numpy())
        np.testing.assert_array_equal(new.groups[name], frame["patient"].to_numpy())
    assert sum(len(v) for v in new.values()) == 400
    again = lg.audit(new, labels="label", config=CFG, checks=["exact_duplicate"])
    assert again.passed


def test_time_order_is_a_rolling_origin(rng):
    t = rng.permutation(np.arange(500.0))
    X = rng.normal(size=(500, 3))
    day = pd.to_datetime("2024-01-01") + pd.to_timedelta(t, unit="h")
    new = lg.resplit({"train": X[:400], "test": X[400:]}, None,
                     timestamps={"train": day[:400], "test": day[400:]}, time_order=True,
                     ratios={"train": 0.7, "val": 0.1, "test": 0.2})
    times = {k: pd.to_datetime(v) for k, v in new.timestamps.items()}
    assert times["train"].max() < times["val"].min() and times["val"].max() < times["test"].min()
    assert len(new["train"]) == 350 and len(new["test"]) == 100
    ranges = new.summary()["time_ranges"]
    assert ranges["train"][1] < ranges["val"][0]


def test_time_order_keeps_groups_whole(rng):
    # 20 videos of 10 frames each, video v spans hours [10v, 10v + 9]
    frames = np.repeat(np.arange(20), 10)
    t = frames * 10.0 + np.tile(np.arange(10.0), 20)
    X = rng.normal(size=(200, 3))
    perm = rng.permutation(200)
    X, frames, t = X[perm], frames[perm], t[perm]
    new = lg.resplit({"train": X[:150], "test": X[150:]}, None,
                     groups={"train": frames[:150], "test": frames[150:]},
                     timestamps={"train": t[:150], "test": t[150:]}, time_order=True)
    assert set(new.groups["train"]).isdisjoint(new.groups["test"])
    assert new.timestamps["train"].max() < new.timestamps["test"].min()
    assert len(new["train"]) == 150


def test_file_lists_of_images(tmp_path, rng):
    paths = []
    for i in range(30):
        p = tmp_path / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    dup = tmp_path / "copy_of_img03.png"
    dup.write_bytes(paths[3].read_bytes())
    splits = {"train": paths[:24], "val": paths[24:] + [dup]}
    report = lg.audit(splits, config=CFG, checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [6]
    new = lg.resplit(splits, report)
    assert all(isinstance(v, list) and all(isinstance(p, Path) for p in v) for v in new.values())
    where = {p.name: k for k, v in new.items() for p in v}
    assert where["img03.png"] == where["copy_of_img03.png"]
    assert lg.audit(new, config=CFG, checks=["exact_duplicate"]).passed
    # a folder resplits into file lists too
    folder = tmp_path / "valdir"
    folder.mkdir()
    (folder / "a.png").write_bytes(paths[3].read_bytes())
    new = lg.resplit({"train": paths[:24], "val": folder}, None)
    assert sum(len(v) for v in new.values()) == 25


def test_strings_and_pairs_dataframe(rng):
    texts = [f"sentence number {i}" for i in range(50)]
    pairs = pd.DataFrame({"split_a": ["train"], "index_a": [0], "split_b": ["val"], "index_b": [1]})
    new = lg.resplit({"train": texts[:40], "val": texts[40:]}, pairs)
    where = {t: k for k, v in new.items() for t in v}
    assert where["sentence number 0"] == where["sentence number 41"]


def test_report_of_other_data_is_a_clear_error(rng):
    splits, labels = _leaky_arrays(rng)
    report = lg.audit(splits, config=CFG, checks=["exact_duplicate"])
    with pytest.raises(lg.InputError, match="split 'val' has"):
        lg.resplit({"train": splits["train"], "val": splits["val"][:10]}, report)
    with pytest.raises(lg.InputError, match="training split"):
        lg.resplit(splits, report, ratios={"val": 1.0})
    with pytest.raises(lg.InputError, match="time_order"):
        lg.resplit(splits, report, time_order=True)
    with pytest.raises(lg.InputError, match="labels has 3 values"):
        lg.resplit(splits, report, labels={"train": [1, 2, 3], "val": labels["val"]})


def test_pairs_across_the_split_move_one_sample_each(rng):
    """A duplicate pair across an 80/20 split moves one of its two samples: half the pairs go to
    val whole, half to train, and no training sample is sent to val as filler (before: every pair
    went to train, and as many training samples left for val, each one a new neighbour to search)."""
    X = rng.normal(size=(500, 4))
    splits = {"train": X[:400], "val": X[400:]}
    # 60 training rows each linked to one val row (60 of val's 100)
    pairs = pd.DataFrame({"split_a": "train", "index_a": np.arange(0, 120, 2),
                          "split_b": "val", "index_b": np.arange(60)})
    new = lg.resplit(splits, pairs)
    assert new.sizes() == {"train": 400, "val": 100}
    a = new.assignment.set_index(["split", "index"])["new_split"]
    assert all(a[("train", i)] == a[("val", j)] for i, j in zip(pairs.index_a, pairs.index_b))
    assert new.moved == 60  # one sample per pair; 120 before
    moved = new.summary()["moved_by_split"]
    assert moved == {"train->val": 30, "val->train": 30}


def test_time_order_warns_when_linked_groups_straddle_the_time_cut():
    # random rows on 100 days: the verifying audit links near rows of different days, and a linked
    # group kept whole cannot sit on one side of the time cut: the user is told, with the count
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                       "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 100, n), "D")})
    df["y"] = rng.integers(0, 2, n)
    perm = rng.permutation(n)
    splits = {"train": df.iloc[perm[:200]].reset_index(drop=True), "val": df.iloc[perm[200:]].reset_index(drop=True)}
    cfg = lg.AuditConfig(progress=False)
    report = lg.audit(splits, labels="y", timestamps="day", config=cfg)
    with pytest.warns(UserWarning, match="linked groups hold samples from both sides") as record:
        new = lg.resplit(splits, report, timestamps="day", time_order=True, config=cfg)
    n_across = new.info["time_overlap_components"]
    assert n_across > 0 and f"{n_across} linked groups" in str(record[0].message)
    assert "temporal_overlap" in [f.check for f in lg.audit(new, labels="y", timestamps="day", config=cfg).findings]
