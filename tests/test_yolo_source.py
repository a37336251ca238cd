"""lg.from_yolo: YOLO dataset layouts, label digests, video frames by name; `leakguard audit / resplit data.yaml`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import leakguard as lg
from leakguard.cli import main as cli_main
from leakguard.sources.yolo import BACKGROUND, parse_frame_names
from leakguard.sources.yolo_synthetic import make_video_frames

CONFIG = lg.AuditConfig(progress=False)
# the checks these tests are about; the image similarity checks have their own tests (and cost)
FAST_CHECKS = ("exact_duplicate", "group_overlap", "temporal_overlap")


def _checks(ds) -> list[str]:
    """Those of FAST_CHECKS that exist and apply to the dataset ``ds``."""
    from leakguard.checks import get_check
    from leakguard.splits import build_splits

    kw = ds.audit_kwargs()
    splits = build_splits(kw["splits"], train=kw["train"], labels=kw["labels"], groups=kw["groups"],
                          timestamps=kw["timestamps"], modality="image")
    return [c for c in FAST_CHECKS if c in lg.available_checks() and get_check(c).applies(splits)]


def _image(path: Path, seed: int, size: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _label(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def frames(tmp_path):
    """Frames of 4 videos split at random, plus 2 videos whole in val, 2 exact copies and 1 relabelled copy."""
    return make_video_frames(tmp_path / "frames", n_videos=4, frames_per_video=6, exact_copies=2,
                             conflicting_copies=1, clean_val_videos=2, random_state=1)


def test_detect_layout_labels_groups_and_frames(frames):
    ds = lg.from_yolo(frames)
    assert ds.task == "detect" and list(ds) == ["train", "val"]
    assert ds.names == {0: "circle", 1: "square", 2: "triangle"}
    assert all(p.suffix == ".png" and "/images/" in str(p) for p in ds["val"])
    assert [str(p) for p in ds.label_files["val"]] == [str(p).replace("/images/", "/labels/").replace(".png", ".txt")
                                                       for p in ds["val"]]
    assert ds.frame_pattern == "{video}_{frame}"
    first = ds["val"][0]
    video, frame = first.stem.split("_")
    assert ds.groups["val"][0] == video and ds.timestamps["val"][0] == float(frame)
    kwargs = ds.audit_kwargs()
    assert set(kwargs) == {"splits", "train", "labels", "groups", "timestamps", "modality"}
    assert len(kwargs["labels"]["val"]) == len(ds["val"])


def test_audit_finds_copies_label_conflict_and_shared_videos(frames):
    ds = lg.from_yolo(frames)
    report = lg.audit(**ds.audit_kwargs(), checks=_checks(ds), config=CONFIG)
    train_stems = {p.stem for p in ds["train"]}
    copies = sorted(i for i, p in enumerate(ds["val"]) if p.stem in train_stems)
    assert len(copies) == 3  # 2 exact copies and 1 relabelled copy share a name with their original
    assert report.leaked("val", check="exact_duplicate").tolist() == copies
    exact = next(f for f in report.findings if f.check == "exact_duplicate" and f.cross_split)
    conflicts = exact.extra["label_conflicts"]
    assert conflicts["count"] == 1
    # the clean videos (written whole to val) are not leaked; the randomly split ones are
    clean_videos = {f"vid{v:02d}" for v in (4, 5)}
    leaked = set(report.leaked("val").tolist())
    for i, p in enumerate(ds["val"]):
        if p.stem.split("_")[0] in clean_videos:
            assert i not in leaked
    if "group_overlap" in lg.available_checks():
        shared = {i for i, p in enumerate(ds["val"]) if p.stem.split("_")[0] not in clean_videos}
        assert set(report.leaked("val", check="group_overlap").tolist()) == shared


def test_split_by_video_without_copies_passes(tmp_path):
    data = make_video_frames(tmp_path / "clean", n_videos=6, frames_per_video=5, split="by_video")
    ds = lg.from_yolo(data)
    report = lg.audit(**ds.audit_kwargs(), config=CONFIG)  # every check: none may link different videos
    assert report.leaked("val").size == 0
    assert report.passed


def test_label_digest_ignores_formatting_but_not_content(tmp_path):
    root = tmp_path / "ds"
    for split, name, seed in [("train", "a", 1), ("train", "b", 2), ("val", "a2", 1), ("val", "b2", 2),
                              ("val", "c", 3), ("val", "d", 4)]:
        _image(root / "images" / split / f"{name}.png", seed)
    _label(root / "labels/train/a.txt", "0 0.5 0.5 0.2 0.2\n1 0.25 0.25 0.1 0.1\n")
    _label(root / "labels/val/a2.txt", "1  0.250000 0.25 0.1 0.10000\n\n0 0.5 0.5 0.2 0.2")  # same boxes, other format/order
    _label(root / "labels/train/b.txt", "0 0.5 0.5 0.2 0.2\n")
    _label(root / "labels/val/b2.txt", "2 0.5 0.5 0.2 0.2\n")  # same image, other class
    _label(root / "labels/val/c.txt", "")                        # empty label file: background
    # d has no label file at all: background too
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b, c]\n")
    ds = lg.from_yolo(root / "data.yaml")
    labels = dict(zip([p.stem for p in ds["val"]], ds.labels["val"]))
    train_labels = dict(zip([p.stem for p in ds["train"]], ds.labels["train"]))
    assert labels["a2"] == train_labels["a"]
    assert labels["b2"] != train_labels["b"]
    assert labels["c"] == labels["d"] == BACKGROUND
    assert dict(zip([p.stem for p in ds["val"]], ds.classes["val"]))["a2"] == (0, 1)
    assert ds.groups is None  # a, b, c: no video names
    report = lg.audit(**ds.audit_kwargs(), checks=_checks(ds), config=CONFIG)
    exact = next(f for f in report.findings if f.check == "exact_duplicate" and f.cross_split)
    assert exact.count == 2 and exact.extra["label_conflicts"]["count"] == 1


def test_image_lists_relative_paths_and_root(tmp_path):
    root = tmp_path / "data"
    imgs = [_image(root / "images" / f"f{i}.jpg", i) for i in range(6)]
    for p in imgs:
        _label(Path(str(p).replace("/images/", "/labels/")).with_suffix(".txt"), "0 0.5 0.5 0.5 0.5\n")
    (root / "train.txt").write_text("".join(f"./images/{p.name}\n" for p in imgs[:4]))
    (root / "val.txt").write_text(f"{imgs[4]}\n./images/{imgs[5].name}\n./images/f0.jpg\n")
    yaml_dir = tmp_path / "configs"
    yaml_dir.mkdir()
    (yaml_dir / "data.yaml").write_text(f"path: ../data\ntrain: train.txt\nval: val.txt\ntest: val.txt\nnames: ['x']\n")
    ds = lg.from_yolo(yaml_dir / "data.yaml")
    assert [p.name for p in ds["train"]] == ["f0.jpg", "f1.jpg", "f2.jpg", "f3.jpg"]
    assert len(ds["val"]) == 3
    assert "test" not in ds and any("same images" in n for n in ds.notes)
    report = lg.audit(**ds.audit_kwargs(), checks=_checks(ds), config=CONFIG)
    assert report.leaked("val").tolist() == [0]  # f0.jpg listed in both (sorted list: f0 first)


def test_classification_folders(tmp_path):
    root = make_video_frames(tmp_path / "cls", n_videos=4, frames_per_video=4, task="classify",
                             exact_copies=1, conflicting_copies=1)
    ds = lg.from_yolo(root)
    assert ds.task == "classify" and ds.names == {0: "circle", 1: "square", 2: "triangle"}
    assert all(lab == p.parent.name for lab, p in zip(ds.labels["val"], ds["val"]))
    report = lg.audit(**ds.audit_kwargs(), checks=_checks(ds), config=CONFIG)
    exact = next(f for f in report.findings if f.check == "exact_duplicate" and f.cross_split)
    assert exact.count == 2 and exact.extra["label_conflicts"]["count"] == 1


def test_frame_patterns(tmp_path):
    paths = [Path(f"/d/images/train/cam_01_walk_{i:04d}.jpg") for i in range(3)]
    groups, times, matched = parse_frame_names(paths, "{video}_{frame}")
    assert groups == ["cam_01_walk"] * 3 and times == [0.0, 1.0, 2.0] and matched == 3
    groups, _, _ = parse_frame_names([Path("/d/clips/street/000123.png")], "{video}/{frame}.png")
    assert groups == ["street"]
    assert parse_frame_names([Path("/d/x.jpg")], "{video}_{frame}")[2] == 0
    with pytest.raises(lg.InputError, match="frame_pattern"):
        parse_frame_names(paths, "{name}.jpg")
    # plain numbered names are not taken for one long video
    root = tmp_path / "plain"
    for split, n in (("train", 6), ("val", 3)):
        for i in range(n):
            _image(root / "images" / split / f"img_{i + (10 if split == 'val' else 0):03d}.png", i + 100 * len(split))
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a]\n")
    assert lg.from_yolo(root / "data.yaml").groups is None
    forced = lg.from_yolo(root / "data.yaml", frame_pattern="{video}_{frame}")
    assert set(forced.groups["train"]) == {"img"}
    # one folder per video
    for v in range(3):
        for f in range(3):
            _image(tmp_path / "vids" / "images" / ("val" if f == 2 else "train") / f"clip{v}" / f"{f:05d}.png", v * 10 + f)
    (tmp_path / "vids" / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a]\n")
    ds = lg.from_yolo(tmp_path / "vids" / "data.yaml")
    assert ds.frame_pattern == "{video}/{frame}" and set(ds.groups["val"]) == {"clip0", "clip1", "clip2"}


def test_task_inference(tmp_path):
    def make(name, row, extra=""):
        root = tmp_path / name
        for split in ("train", "val"):
            _image(root / "images" / split / "a.png", hash(split) % 1000)
            _label(root / "labels" / split / "a.txt", row + "\n")
        (root / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames: [a]\n{extra}")
        return lg.from_yolo(root / "data.yaml").task

    assert make("det", "0 0.5 0.5 0.2 0.2") == "detect"
    assert make("seg", "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5 0.2 0.3") == "segment"
    assert make("obb", "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5") == "obb"
    assert make("pose", "0 0.5 0.5 0.2 0.2 0.5 0.5 2", "kpt_shape: [1, 3]\n") == "pose"


def test_bad_input_names_key_and_path(tmp_path):
    (tmp_path / "a.yaml").write_text("train: images/train\nnames: [a]\n")
    with pytest.raises(lg.InputError, match=r"a\.yaml.*'val'"):
        lg.from_yolo(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("train: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(lg.InputError, match=r"train: .*images/train does not exist"):
        lg.from_yolo(tmp_path / "b.yaml")
    with pytest.raises(lg.InputError, match="no such YOLO dataset"):
        lg.from_yolo(tmp_path / "missing.yaml")
    (tmp_path / "c.yaml").write_text("path: nowhere/at/all\ntrain: t\nval: v\n")
    with pytest.raises(lg.InputError, match="nowhere/at/all not found"):
        lg.from_yolo(tmp_path / "c.yaml")
    with pytest.raises(lg.InputError, match="train/ folder"):
        lg.from_yolo(tmp_path)


def test_unreadable_image_is_skipped_and_counted(frames):
    bad = frames.parent / "images" / "val" / "vid09_0000.png"
    bad.write_bytes(b"not a png")
    ds = lg.from_yolo(frames)
    report = lg.audit(**ds.audit_kwargs(), checks=_checks(ds), config=CONFIG)
    skipped = report.skipped["val"]
    assert len(skipped) == 1 and skipped[0]["file"].endswith("vid09_0000.png")


def test_cli_audit_and_resplit(frames, tmp_path, capsys):
    checks = ",".join(_checks(lg.from_yolo(frames)))
    out_json = tmp_path / "report.json"
    assert cli_main(["audit", str(frames), "--no-progress", "--json", str(out_json), "--checks", checks]) == 1
    saved = json.loads(out_json.read_text())
    assert saved["verdict"] == "fail"
    assert saved["splits"]["val"]["has_labels"] and saved["splits"]["val"]["has_groups"]

    out = tmp_path / "resplit"
    assert cli_main(["resplit", str(frames), "--out", str(out), "--ratios", "train=0.7,val=0.3", "--no-progress",
                     "--checks", checks]) == 0
    text = capsys.readouterr().out
    assert "after: verdict PASS" in text
    new = lg.from_yolo(out / "data.yaml")
    old = lg.from_yolo(frames)
    assert sorted(map(str, new["train"] + new["val"])) == sorted(map(str, old["train"] + old["val"]))
    assert not {p.stem.split("_")[0] for p in new["train"]} & {p.stem.split("_")[0] for p in new["val"]}
    assert abs(len(new["val"]) / (len(new["train"]) + len(new["val"])) - 0.3) < 0.15
    summary = json.loads((out / "leakguard-resplit.json").read_text())
    assert summary["verdict_before"] == "fail" and summary["moved"] > 0
    # label files still found through img2label_paths (the images did not move)
    assert all(p.exists() for p in new.label_files["val"])
    # a folder not written by resplit is never deleted
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "mine.txt").write_text("x")
    assert cli_main(["resplit", str(frames), "--out", str(tmp_path / "keep"), "--no-progress",
                     "--checks", checks]) == 2
    assert (tmp_path / "keep" / "mine.txt").exists()


def test_cli_resplit_classification(tmp_path, capsys):
    root = make_video_frames(tmp_path / "cls", n_videos=6, frames_per_video=4, task="classify")
    out = tmp_path / "cls_resplit"
    checks = ",".join(_checks(lg.from_yolo(root)))
    assert cli_main(["resplit", str(root), "--out", str(out), "--no-progress", "--checks", checks]) == 0
    assert "after: verdict PASS" in capsys.readouterr().out
    new = lg.from_yolo(out)
    assert len(new["train"]) + len(new["val"]) == 24
    # `leakguard audit FOLDER` reads a classification folder as a YOLO dataset: leaky before, clean after
    assert cli_main(["audit", str(root), "--no-progress", "--checks", checks]) == 1
    assert cli_main(["audit", str(out), "--no-progress", "--checks", checks]) == 0
    assert all(lab == p.parent.name for lab, p in zip(new.labels["val"], new["val"]))


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
def test_cli_audit_and_resplit_segment_pose_obb(task, tmp_path, capsys):
    data = make_video_frames(tmp_path / task, n_videos=4, frames_per_video=5, exact_copies=2, conflicting_copies=1,
                             clean_val_videos=1, task=task, random_state=3)
    old = lg.from_yolo(data)
    assert old.task == task  # inferred: kpt_shape -> pose, 9 numbers a row -> OBB, longer rows -> segment
    checks = ",".join(_checks(old))
    out_json = tmp_path / "report.json"
    assert cli_main(["audit", str(data), "--no-progress", "--json", str(out_json), "--checks", checks]) == 1
    saved = lg.Report.from_json(out_json)
    exact = next(f for f in saved.findings if f.check == "exact_duplicate" and f.cross_split)
    assert exact.count == 3 and exact.extra["label_conflicts"]["count"] == 1  # polygons / keypoints / corners digested

    out = tmp_path / f"{task}-resplit"
    assert cli_main(["resplit", str(data), "--out", str(out), "--no-progress", "--checks", checks]) == 0
    assert "after: verdict PASS" in capsys.readouterr().out
    import yaml

    written = yaml.safe_load((out / "data.yaml").read_text())
    if task == "pose":  # what Ultralytics needs to read keypoints travels with the split
        assert written["kpt_shape"] == [2, 3] and written["flip_idx"] == [0, 1]
    new = lg.from_yolo(out / "data.yaml")
    assert new.task == task
    assert sorted(map(str, new["train"] + new["val"])) == sorted(map(str, old["train"] + old["val"]))
    assert not {p.stem.split("_")[0] for p in new["train"]} & {p.stem.split("_")[0] for p in new["val"]}
    # every image still finds its own label file (images and labels stay where they are)
    old_labels = {str(p): lab for split in old for p, lab in zip(old[split], old.labels[split])}
    for split in new:
        assert all(lf.exists() for lf in new.label_files[split])
        assert [old_labels[str(p)] for p in new[split]] == list(new.labels[split])
