"""temporal_overlap: global (forecasting) and within-group time leaks, times from file names."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import leakguard as lg
from leakguard.checks.temporal import time_from_name

CFG = lg.AuditConfig(progress=False)


def _series_windows(rng, n=400, width=8):
    """Sliding windows of a noisy seasonal series, each stamped with the time of its last value."""
    t = np.arange(n + width)
    y = np.sin(2 * np.pi * t / 50) + 0.1 * rng.normal(size=len(t))
    X = np.stack([y[i:i + width] for i in range(n)])
    stamps = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(n) + width, unit="D")
    return pd.DataFrame(X, columns=[f"lag{k}" for k in range(width)]).assign(day=stamps)


def test_random_split_of_a_series_is_flagged_with_rolling_origin(rng):
    df = _series_windows(rng)
    perm = rng.permutation(len(df))
    train, test = df.iloc[perm[:320]].reset_index(drop=True), df.iloc[perm[320:]].reset_index(drop=True)
    report = lg.audit({"train": train, "test": test}, timestamps="day", config=CFG, checks=["temporal_overlap"])
    [f] = report.findings
    assert f.severity == "critical" and f.extra["kind"] == "global"
    truth = np.flatnonzero(test["day"] < train["day"].max())
    assert report.leaked("test").tolist() == truth.tolist()
    assert f.extra["train_after_first_eval"] == int((train["day"] > test["day"].min()).sum())
    # the rolling-origin split the remedy shows is the one lg.resplit makes
    proposal = f.extra["rolling_origin"]
    assert proposal["train"]["n"] == 320 and proposal["test"]["n"] == 80
    assert "time_order=True" in f.remedy
    new = lg.resplit({"train": train, "test": test}, report, timestamps="day", time_order=True)
    assert new.moved == f.extra["moved"]
    assert len(new["train"]) == 320
    assert new["train"]["day"].max() < new["test"]["day"].min()
    again = lg.audit(new, timestamps="day", config=CFG, checks=["temporal_overlap"])
    assert again.findings == []


def test_chronological_split_is_clean(rng):
    df = _series_windows(rng)
    report = lg.audit({"train": df.iloc[:300], "val": df.iloc[300:350], "test": df.iloc[350:]},
                      timestamps="day", config=CFG, checks=["temporal_overlap"])
    assert report.findings == []


def _videos(rng, n_videos=20, frames=15):
    vid = np.repeat(np.arange(n_videos), frames)
    t = vid * 1000.0 + np.tile(np.arange(frames), n_videos) / 25.0  # seconds, 25 fps
    X = rng.normal(size=(len(vid), 5)) + rng.normal(size=(n_videos, 5))[vid]
    return X, vid, t


def test_frames_of_one_video_in_two_splits(rng):
    X, vid, t = _videos(rng)
    perm = rng.permutation(len(vid))
    tr, te = perm[:240], perm[240:]
    report = lg.audit({"train": X[tr], "test": X[te]}, groups={"train": vid[tr], "test": vid[te]},
                      timestamps={"train": t[tr], "test": t[te]}, config=CFG, checks=["temporal_overlap"])
    [f] = report.findings
    assert f.extra["kind"] == "group"
    shared = set(vid[tr]) & set(vid[te])
    assert f.extra["groups"] == len(shared)
    assert report.leaked("test").tolist() == np.flatnonzero(np.isin(vid[te], list(shared))).tolist()
    # closest pair of each group, checked by brute force
    for row in f.extra["listed"]:
        g = int(row["group"])
        gaps = np.abs(t[tr][vid[tr] == g][:, None] - t[te][vid[te] == g][None, :])
        assert row["gap"] == pytest.approx(gaps.min())
        assert abs(t[tr][row["train_index"]] - t[te][row["test_index"]]) == pytest.approx(gaps.min())
    assert f.extra["min_gap"] == pytest.approx(0.04)
    # plain-number timestamps: the gap says it is in the timestamps' own unit, not a bare number
    assert f.title.endswith("the closest 0.04 time units apart")
    # videos kept whole: no finding, though test videos are not all later than training ones
    by_video = np.isin(vid, [3, 8, 15])
    report = lg.audit({"train": X[~by_video], "test": X[by_video]},
                      groups={"train": vid[~by_video], "test": vid[by_video]},
                      timestamps={"train": t[~by_video], "test": t[by_video]}, config=CFG,
                      checks=["temporal_overlap"])
    assert report.findings == []
    # ...unless the task is forecasting: scope="both" adds the global view
    cfg = lg.AuditConfig(progress=False, check_options={"temporal_overlap": {"scope": "both"}})
    report = lg.audit({"train": X[~by_video], "test": X[by_video]},
                      groups={"train": vid[~by_video], "test": vid[by_video]},
                      timestamps={"train": t[~by_video], "test": t[by_video]}, config=cfg,
                      checks=["temporal_overlap"])
    assert [f.extra["kind"] for f in report.findings] == ["global"]


@pytest.mark.parametrize("name, expected", [
    ("cam1_2024-03-05_14-22-10.jpg", "2024-03-05 14:22:10"),
    ("20240305T142210.png", "2024-03-05 14:22:10"),
    ("shots/2024_03_05/img_0001.png", "2024-03-05 00:00:00"),
    ("IMG_20240305.jpg", "2024-03-05 00:00:00"),
])
def test_times_parsed_from_file_names(name, expected):
    assert time_from_name(name) == pd.Timestamp(expected, tz="UTC").timestamp()


@pytest.mark.parametrize("name", ["img_0001.png", "photo_12345678.jpg", "2024-13-45.png", None])
def test_names_without_dates(name):
    assert np.isnan(time_from_name(name))


def test_image_files_with_dates_in_names(tmp_path, rng):
    paths = []
    for day in range(1, 21):
        p = tmp_path / f"cam_2024-05-{day:02d}_12-00-00.png"
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(p)
        paths.append(p)
    # the evaluation images are from days 3 and 17: day 17 is after most training images
    train = [p for i, p in enumerate(paths) if i not in (2, 16)]
    test = [paths[2], paths[16]]
    report = lg.audit({"train": train, "test": test}, config=CFG, checks=["temporal_overlap"])
    [f] = report.findings
    assert report.leaked("test").tolist() == [0, 1]
    # dates the user did not declare: a warning, and the detail says where they came from
    assert f.severity == "warning" and f.extra["from_file_names"] and "file names" in f.detail
    later = [p for p in paths[:10]]
    report = lg.audit({"train": later, "test": paths[10:]}, config=CFG, checks=["temporal_overlap"])
    assert report.findings == []


def test_no_timestamps_means_not_applicable(rng):
    X = rng.normal(size=(20, 3))
    with pytest.raises(lg.InputError, match="timestamps"):
        lg.audit({"train": X[:10], "test": X[10:]}, config=CFG, checks=["temporal_overlap"])
