"""Ultralytics integration: real YOLO models built from config, one tiny CPU epoch, YOLO's own MLflow run.

Test names contain ``test_mlflow``: Ultralytics' MLflow callback does nothing in pytest tests whose
name lacks it (``TESTS_RUNNING`` in ultralytics/utils/callbacks/mlflow.py).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ultralytics")
pytest.importorskip("mlflow")

import leakguard as lg  # noqa: E402
from conftest import yolo_offline_settings  # noqa: E402
from leakguard.sources.yolo_synthetic import make_video_frames  # noqa: E402

pytestmark = pytest.mark.slow

# all but the first test audit with the checks they are about; the first runs every check that applies
FAST_CHECKS = ["exact_duplicate", "group_overlap", "temporal_overlap"]
TRAIN_ARGS = dict(epochs=1, imgsz=64, batch=8, workers=0, plots=False, device="cpu", amp=False, val=True,
                  verbose=False, exist_ok=True, seed=0, deterministic=False)


@pytest.fixture(scope="module")
def yolo_settings(tmp_path_factory):
    """Ultralytics with no network (tests/conftest.py), its MLflow callback on."""
    with yolo_offline_settings(tmp_path_factory, mlflow=True) as settings:
        yield settings


@pytest.fixture
def mlflow_store(mlflow_uri, monkeypatch):
    """A fresh sqlite store; Ultralytics' MLflow callback turns mlflow.autolog on: turn it off after."""
    import mlflow

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "yolo-frames")
    # mlflow.set_experiment() (Ultralytics', and leakguard's when it starts the run) also exports
    # MLFLOW_EXPERIMENT_ID: restore it after the test, else any later test starting a run in a
    # fresh store fails on an experiment id that store lacks
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    yield mlflow_uri
    if experiment_id is None:
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    else:
        os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
    mlflow.autolog(disable=True)
    # Ultralytics' mlflow.set_experiment() leaves that experiment's id active in the process; the
    # next test's fresh store does not hold it
    from mlflow.tracking import fluent

    if hasattr(fluent, "_active_experiment_id"):
        fluent._active_experiment_id = None


def _all_runs():
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def _leaky_frames(tmp_path, **kw):
    """4 videos split at random by frame (leaky), 2 videos whole in val (clean), 2 exact + 1 relabelled copy."""
    return make_video_frames(tmp_path / "frames", n_videos=4, frames_per_video=6, exact_copies=2,
                             conflicting_copies=1, clean_val_videos=2, random_state=1, **kw)


class _HelperModelCheck(lg.Check):
    """Fits a scikit-learn model during the audit, as leakguard's helper models do."""

    name = "test_helper_model"
    order = 90

    def run(self, ctx):
        from sklearn.linear_model import LogisticRegression

        LogisticRegression(C=0.5).fit(np.arange(20.0).reshape(10, 2), np.arange(10) % 2)
        return []


def test_mlflow_detect_audit_and_clean_leaked_map_in_one_yolo_run(yolo_settings, mlflow_store, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient
    from ultralytics import YOLO

    from leakguard.checks.base import CHECKS
    from leakguard.integrations.ultralytics import attach

    data = _leaky_frames(tmp_path)
    model = YOLO("yolov8n.yaml")
    guard = attach(model, on_leak="warn")
    lg.register_check(_HelperModelCheck)
    mlflow.autolog()  # as a user might have; leakguard's helper model must not be captured by it
    try:
        with pytest.warns(RuntimeWarning, match="leakage between the splits"):
            model.train(data=str(data), project=str(tmp_path / "runs"), name="leaky", **TRAIN_ARGS)
    finally:
        CHECKS.pop(_HelperModelCheck.name, None)
    assert mlflow.active_run() is None  # Ultralytics ended the run leakguard started for it

    runs = _all_runs()
    assert len(runs) == 1, [r.info.run_name for r in runs]  # no stray run (autolog of the helper model, ours)
    run = runs[0]
    client = MlflowClient()
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "yolo-frames"
    metrics, tags, params = run.data.metrics, run.data.tags, run.data.params
    assert params["epochs"] == "1" and "metrics/mAP50-95B" in metrics  # Ultralytics logged into this run
    assert "C" not in params and not any(k.startswith("estimator") for k in tags)  # helper model not autologged

    ds = lg.from_yolo(data)
    train_stems = {p.stem for p in ds["train"]}
    copies = [i for i, p in enumerate(ds["val"]) if p.stem in train_stems]
    report = guard.report
    assert tags["leakguard.verdict"] == "fail" and tags["leakguard.version"] == lg.__version__
    assert metrics["leakguard/val/exact_duplicate"] == len(copies) == 3
    leaked = report.leaked("val")
    assert set(copies) <= set(leaked.tolist())
    assert metrics["leakguard/val/leaked_fraction"] == pytest.approx(len(leaked) / len(ds["val"]))
    # the 2 videos written whole to val are the clean part
    clean_videos = {"vid04", "vid05"}
    assert not {ds["val"][i].stem[:5] for i in leaked} & clean_videos
    assert metrics["leakguard/val/leaked_images"] == len(leaked)
    assert metrics["leakguard/val/clean_images"] == len(ds["val"]) - len(leaked)
    for part in ("clean", "leaked"):
        assert metrics[f"metrics/mAP50-95B/{part}"] == pytest.approx(
            guard.evaluation[part]["metrics"]["metrics/mAP50-95(B)"])
        assert 0.0 <= metrics[f"metrics/mAP50-95B/{part}"] <= 1.0

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "leakguard")}
    assert {"leakguard/report.html", "leakguard/report.json", "leakguard/clean_vs_leaked.json"} <= artifacts
    assert "weights" in {a.path for a in client.list_artifacts(run.info.run_id)}
    saved = lg.Report.from_json(client.download_artifacts(run.info.run_id, "leakguard/report.json", str(tmp_path)))
    exact = next(f for f in saved.findings if f.check == "exact_duplicate" and f.cross_split)
    assert exact.extra["label_conflicts"]["count"] == 1  # the relabelled copy
    # the report is kept next to the run's save_dir too
    assert (Path(model.trainer.save_dir) / "leakguard" / "report.json").exists()


def test_mlflow_fail_stops_before_first_epoch_and_run_is_failed(yolo_settings, mlflow_store, tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient
    from ultralytics import YOLO

    from leakguard.integrations import ultralytics as lg_yolo

    monkeypatch.setenv("LEAKGUARD_ON_LEAK", "fail")  # the callbacks dict reads its options from the environment
    monkeypatch.setenv("LEAKGUARD_CHECKS", ",".join(FAST_CHECKS))
    data = _leaky_frames(tmp_path)
    model = YOLO("yolov8n.yaml")
    for event, fn in lg_yolo.callbacks.items():  # registered by hand, Ultralytics' style
        model.add_callback(event, fn)

    epochs = []
    model.add_callback("on_train_epoch_start", lambda trainer: epochs.append(trainer.epoch))
    with pytest.raises(lg.LeakageDetected, match="before the first epoch") as raised:
        model.train(data=str(data), project=str(tmp_path / "runs"), name="stopped", **TRAIN_ARGS)
    assert epochs == []
    assert raised.value.report.verdict == "fail"
    assert mlflow.active_run() is None
    runs = _all_runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FAILED"
    assert run.data.params["epochs"] == "1"  # Ultralytics' run, not one of leakguard's own
    assert run.data.tags["leakguard.verdict"] == "fail" and "leakguard.stopped" in run.data.tags
    assert run.data.metrics["leakguard/val/exact_duplicate"] == 3
    assert not any(k.startswith("train/") for k in run.data.metrics)  # no epoch was trained
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "leakguard")}
    assert {"leakguard/report.html", "leakguard/report.json"} <= artifacts
    assert not (Path(model.trainer.save_dir) / "weights" / "last.pt").exists()


def test_mlflow_classify_clean_and_leaked_accuracy_and_explanation(yolo_settings, mlflow_store, tmp_path):
    from mlflow.tracking import MlflowClient
    from ultralytics import YOLO

    from leakguard.integrations.ultralytics import LeakGuardYOLO, attach

    data = _leaky_frames(tmp_path, task="classify")
    model = YOLO("yolov8n-cls.yaml")
    guard = attach(model, on_leak="ignore", checks=FAST_CHECKS, max_samples=8)
    model.train(data=str(data), project=str(tmp_path / "runs"), name="cls", **{**TRAIN_ARGS, "imgsz": 32})
    runs = _all_runs()
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    metrics = runs[0].data.metrics
    ds = lg.from_yolo(data)
    leaked = guard.report.leaked("val")
    assert 0 < len(leaked) < len(ds["val"])
    assert metrics["leakguard/val/leaked_images"] + metrics["leakguard/val/clean_images"] == len(ds["val"])
    for part in ("clean", "leaked"):
        assert 0.0 <= metrics[f"metrics/accuracy_top1/{part}"] <= 1.0
        assert metrics[f"metrics/accuracy_top1/{part}"] == pytest.approx(
            guard.evaluation[part]["metrics"]["metrics/accuracy_top1"])
    assert runs[0].data.tags["leakguard.verdict"] == "fail"
    assert "metrics/accuracy_top1" in metrics  # Ultralytics' own metric, same run

    # fit end: the classifier explained on at most max_samples val images, logged into the same run
    explanation = guard.explanation
    assert explanation is not None and len(explanation.attribution.indices) == 8 < len(ds["val"])
    assert set(explanation.meta["files"]) <= {str(p) for p in ds["val"]}  # val images, not training ones
    assert metrics["leakguard/target_leakage/explained"] == 8
    assert runs[0].data.tags["leakguard.explain.verdict"] in ("pass", "warn", "fail")
    artifacts = {a.path for a in MlflowClient().list_artifacts(runs[0].info.run_id, "leakguard/explain")}
    assert "leakguard/explain/report.json" in artifacts
    assert runs[0].data.tags["leakguard.verdict"] == "fail"  # the explanation never softens the audit's verdict

    # the same trained model and callback: off by an option, and a failing explanation only warns
    trainer = model.trainer
    off = LeakGuardYOLO(evaluate=False, explain=False)
    off.on_train_end(trainer)
    assert off.explanation is None
    broken = LeakGuardYOLO(evaluate=False, explain_options={"method": "no-such-explainer"})
    broken.on_train_end(trainer)  # logs a warning, raises nothing
    assert broken.explanation is None
    # no MLflow run (MLflow off in Ultralytics' settings): the explanation is saved next to save_dir
    state = trainer._leakguard
    state.run_id, state.folder = None, tmp_path / "offline-report"
    local = LeakGuardYOLO(evaluate=False, max_samples=4)
    local.on_train_end(trainer)
    assert len(local.explanation.attribution.indices) == 4
    assert json.loads((tmp_path / "offline-report" / "explain" / "report.json").read_text())["meta"]["target_leakage"]
    # one unreadable val image costs that image only: skipped, counted, logged into the run
    val_files = [str(p) for p in ds["val"]]
    Path(val_files[0]).write_bytes(b"not an image")
    state.run_id, state.folder = runs[0].info.run_id, tmp_path / "skip-report"
    skipping = LeakGuardYOLO(evaluate=False, max_samples=len(val_files))
    skipping.on_train_end(trainer)
    result = skipping.explanation
    assert result is not None and len(result.attribution.indices) == len(val_files) - 1
    assert result.meta["n_skipped"] == 1 and result.meta["skipped"][0]["file"] == val_files[0]
    assert val_files[0] not in result.meta["files"]
    assert MlflowClient().get_run(state.run_id).data.metrics["leakguard/target_leakage/skipped_images"] == 1
    saved = json.loads((tmp_path / "skip-report" / "explain" / "report.json").read_text())
    assert saved["meta"]["target_leakage"]["n_skipped"] == 1


def test_report_next_to_save_dir_when_mlflow_is_off(yolo_settings, mlflow_store, tmp_path):
    from ultralytics import YOLO

    from leakguard.integrations.ultralytics import attach

    data = _leaky_frames(tmp_path)
    model = YOLO("yolov8n.yaml")
    attach(model, on_leak="fail", checks=FAST_CHECKS)
    yolo_settings.update(mlflow=False)
    try:
        with pytest.raises(lg.LeakageDetected):
            model.train(data=str(data), project=str(tmp_path / "runs"), name="offline", **TRAIN_ARGS)
    finally:
        yolo_settings.update(mlflow=True)
    folder = Path(model.trainer.save_dir) / "leakguard"
    report = json.loads((folder / "report.json").read_text())
    assert report["verdict"] == "fail"
    assert (folder / "report.html").exists()
    assert _all_runs() == []  # MLflow off: nothing logged, no run started


def test_a_second_training_run_reads_the_audit_back_from_the_cache_beside_the_runs(yolo_settings, mlflow_store,
                                                                                  tmp_path):
    from ultralytics import YOLO

    from leakguard.integrations.ultralytics import LeakGuardYOLO, attach

    data = _leaky_frames(tmp_path)
    project = tmp_path / "runs"
    guards = []
    yolo_settings.update(mlflow=False)
    try:
        for name in ("first", "second"):  # a re-run on the same data: another model, other settings
            model = YOLO("yolov8n.yaml")
            guards.append(attach(model, on_leak="fail", checks=FAST_CHECKS))
            with pytest.raises(lg.LeakageDetected):
                model.train(data=str(data), project=str(project), name=name, **TRAIN_ARGS)
    finally:
        yolo_settings.update(mlflow=True)
    first, second = (g.report for g in guards)
    assert _all_runs() == []
    assert (project / ".leakguard-cache").is_dir()  # beside the runs, shared by both
    n_images = sum(info["n"] for info in first.splits.values())
    assert first.meta["cache"]["hits"] == 0 and first.meta["cache"]["misses"] >= n_images
    assert second.meta["cache"]["misses"] == 0 and second.meta["cache"]["hits"] == first.meta["cache"]["misses"]
    assert second.leaked("val").tolist() == first.leaked("val").tolist() and len(first.leaked("val"))
    assert [f.title for f in second.findings] == [f.title for f in first.findings]
    trainer = model.trainer
    assert LeakGuardYOLO(cache_dir=None).audit_config(trainer).cache_dir is None
    assert LeakGuardYOLO(cache_dir=tmp_path / "c").audit_config(trainer).cache_dir == tmp_path / "c"
    assert LeakGuardYOLO(config=lg.AuditConfig(cache_dir=str(tmp_path / "mine"))).audit_config(
        trainer).cache_dir == str(tmp_path / "mine")  # the user's config wins


def test_mlflow_logs_into_the_users_active_run_and_leaves_it_open(yolo_settings, mlflow_store, tmp_path):
    import mlflow
    from ultralytics import YOLO

    from leakguard.integrations.ultralytics import attach

    data = _leaky_frames(tmp_path)
    model = YOLO("yolov8n.yaml")
    attach(model, on_leak="fail", checks=FAST_CHECKS)
    mlflow.set_experiment("my-experiment")
    with mlflow.start_run(run_name="mine") as mine:
        with pytest.raises(lg.LeakageDetected):
            model.train(data=str(data), project=str(tmp_path / "runs"), name="users", **TRAIN_ARGS)
        active = mlflow.active_run()
        assert active is not None and active.info.run_id == mine.info.run_id  # not ended by anyone else
    runs = _all_runs()
    assert [r.info.run_name for r in runs] == ["mine"]
    assert runs[0].data.tags["leakguard.verdict"] == "fail" and runs[0].data.params["epochs"] == "1"


# ---------------------------------------------------------------------- segment, pose, OBB
# task -> (model config, suffix of the task's own metric names in Ultralytics' validator)
TASK_MODELS = {"segment": ("yolov8n-seg.yaml", "M"), "pose": ("yolov8n-pose.yaml", "P"),
               "obb": ("yolov8n-obb.yaml", "B")}


@pytest.fixture(scope="module")
def task_datasets(tmp_path_factory):
    """One small leaky dataset per task, with that task's label format (polygons, keypoints with
    kpt_shape in data.yaml, 4-corner OBB boxes): 3 videos split at random, 1 whole in val,
    2 exact copies and 1 relabelled copy."""
    root = tmp_path_factory.mktemp("tasks")
    return {task: make_video_frames(root / task, n_videos=3, frames_per_video=5, exact_copies=2,
                                    conflicting_copies=1, clean_val_videos=1, task=task, random_state=2)
            for task in TASK_MODELS}


@pytest.mark.parametrize("task", list(TASK_MODELS))
def test_mlflow_segment_pose_obb_audit_and_clean_leaked_metrics(task, task_datasets, yolo_settings, mlflow_store,
                                                                 tmp_path):
    from mlflow.tracking import MlflowClient
    from ultralytics import YOLO

    from leakguard.integrations.ultralytics import attach

    config, suffix = TASK_MODELS[task]
    data = task_datasets[task]
    model = YOLO(config)
    guard = attach(model, on_leak="ignore", checks=FAST_CHECKS)
    model.train(data=str(data), project=str(tmp_path / "runs"), name=task, **{**TRAIN_ARGS, "imgsz": 32})

    state = model.trainer._leakguard
    assert state.dataset.task == task  # from_yolo read the trainer's data as this task
    runs = _all_runs()
    assert len(runs) == 1, [r.info.run_name for r in runs]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_id == state.run_id
    metrics, tags = run.data.metrics, run.data.tags
    assert run.data.params["task"] == task and run.data.params["epochs"] == "1"  # Ultralytics' own run
    assert tags["leakguard.verdict"] == "fail" and tags["leakguard.version"] == lg.__version__
    assert metrics["leakguard/val/exact_duplicate"] == 3  # 2 exact + 1 relabelled copy
    exact = next(f for f in guard.report.findings if f.check == "exact_duplicate" and f.cross_split)
    assert exact.extra["label_conflicts"]["count"] == 1  # the polygon / keypoints / corners read as labels

    leaked = guard.report.leaked("val")
    n_val = guard.report.splits["val"]["n"]
    assert 0 < len(leaked) < n_val
    assert metrics["leakguard/val/leaked_images"] == len(leaked)
    assert metrics["leakguard/val/clean_images"] == n_val - len(leaked)
    own = f"metrics/mAP50-95({suffix})"
    assert own.replace("(", "").replace(")", "") in metrics  # the task's metric, logged by Ultralytics
    for part in ("clean", "leaked"):
        values = guard.evaluation[part]["metrics"]
        assert own in values and "metrics/mAP50-95(B)" in values
        for name in {own, "metrics/mAP50-95(B)", f"metrics/precision({suffix})"}:
            logged = metrics[f"{name.replace('(', '').replace(')', '')}/{part}"]
            assert logged == pytest.approx(values[name]) and 0.0 <= logged <= 1.0
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "leakguard")}
    assert {"leakguard/report.html", "leakguard/report.json", "leakguard/clean_vs_leaked.json"} <= artifacts


def test_resplit_segment_and_pose_read_by_ultralytics(task_datasets, yolo_settings, tmp_path):
    """The re-split's image lists and data.yaml are what Ultralytics reads: polygons and keypoints come along."""
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    from leakguard.cli_resplit import resplit_yolo

    for task in ("segment", "pose"):
        summary = resplit_yolo(task_datasets[task], tmp_path / task, checks=FAST_CHECKS,
                               config=lg.AuditConfig(progress=False))
        assert summary["after"].passed
        data = check_det_dataset(summary["data"])
        for split in ("train", "val"):
            listed = (tmp_path / task / f"{split}.txt").read_text().split()
            dataset = YOLODataset(img_path=data[split], imgsz=32, data=data, task=task, augment=False)
            assert sorted(dataset.im_files) == sorted(listed)
            assert all(len(lab["cls"]) == 1 for lab in dataset.labels)  # one object per frame, none lost
            if task == "pose":
                assert all(lab["keypoints"].shape == (1, 2, 3) for lab in dataset.labels)
            else:
                assert all(len(lab["segments"]) == 1 and len(lab["segments"][0]) in (3, 4, 16)
                           for lab in dataset.labels)
