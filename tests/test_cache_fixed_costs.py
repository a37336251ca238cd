"""What every audit pays whatever the cache holds (a re-audit's floor, issue 6): file paths are not parsed
again, and file names are read for dates once per audit, and only as long as they can still count."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import leakguard as lg
from leakguard.checks import temporal
from leakguard.sources import _paths_source

CFG = lg.AuditConfig(progress=False)


def test_image_paths_given_as_path_objects_are_kept_as_they_are(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"img_{i}.png"
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(p)
        paths.append(p)
    src = _paths_source(paths, "image", "train")
    # Path(Path) built (and parsed) a new object, twice per split (the source, then FileSource)
    assert all(a is b for a, b in zip(src.paths, paths))
    assert _paths_source([str(p) for p in paths], "image", "train").paths == paths


def _images(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, name in enumerate(names):
        p = folder / name
        Image.fromarray(np.full((8, 8), (37 * k) % 256, np.uint8)).save(p)
        out.append(p)
    return out


def test_file_names_are_read_for_dates_once_per_audit(tmp_path, monkeypatch):
    calls = []
    real = temporal.time_from_name
    monkeypatch.setattr(temporal, "time_from_name", lambda name: calls.append(name) or real(name))
    dated = _images(tmp_path / "d", [f"cam_2024-05-{day:02d}_12-00-00.png" for day in range(1, 21)])
    train, test = [p for i, p in enumerate(dated) if i not in (2, 16)], [dated[2], dated[16]]
    report = lg.audit({"train": train, "test": test}, config=CFG, checks=["temporal_overlap"])
    assert report.leaked("test").tolist() == [0, 1]           # found as before
    assert len(calls) == len(dated)                            # applies() and the check: one parse (was two)


def test_names_without_dates_stop_being_read_once_ninety_percent_is_out_of_reach(tmp_path, monkeypatch):
    calls = []
    real = temporal.time_from_name
    monkeypatch.setattr(temporal, "time_from_name", lambda name: calls.append(name) or real(name))
    plain = _images(tmp_path / "p", [f"img_{i:04d}.png" for i in range(60)])
    sp = lg.splits.build_splits({"train": plain[:50], "val": plain[50:]}, modality="image")
    assert temporal.split_times(sp) == {}
    assert len(calls) <= 6 + 2  # 5 of 50 without a date still allow 90 %; the 6th does not (was 60 calls)
    # a split where exactly 90 % carry a date still counts
    named = [f"cam_2024-05-{d:02d}_12-00-00.png" for d in range(1, 19)] + ["a.png", "b.png"]
    sp = lg.splits.build_splits({"train": _images(tmp_path / "q", named), "val": plain[:2]}, modality="image")
    assert set(temporal.split_times(sp)) == {"train"}
