"""leakguard for Ultralytics YOLO: audit the dataset before the first epoch, log into YOLO's MLflow run.

>>> from ultralytics import YOLO
>>> from leakguard.integrations.ultralytics import attach
>>> model = YOLO("yolov8n.yaml")
>>> guard = attach(model, on_leak="warn", frame_pattern="{video}_{frame}")   # doctest: +SKIP
>>> model.train(data="data.yaml", epochs=10)                                 # doctest: +SKIP
>>> guard.report.leaked("val")                                               # doctest: +SKIP

Or register by hand, in Ultralytics' own style (options from ``LEAKGUARD_ON_LEAK``,
``LEAKGUARD_FRAME_PATTERN``, ``LEAKGUARD_CHECKS`` (comma-separated) and ``LEAKGUARD_EXPLAIN``
(``0`` turns the classifier's explanation off))::

    from leakguard.integrations.ultralytics import callbacks
    for event, fn in callbacks.items():
        model.add_callback(event, fn)

What happens:

- ``on_pretrain_routine_end`` (the trainer knows its data): the train / val / test images of the
  dataset are read once, from the dataset's file lists and ``img2label_paths`` (never through
  the augmenting loader), with their label files (a digest of each file's normalised content,
  so the same image labelled differently in two splits shows as a label conflict) and the
  video / frame of each file name (``frame_pattern``), and audited by every check that applies.
- The report goes into the MLflow run Ultralytics uses. leakguard's callback runs before
  Ultralytics' MLflow callback; when no run is active yet it starts it exactly as Ultralytics
  would (``MLFLOW_EXPERIMENT_NAME`` or ``project``, ``MLFLOW_RUN`` or ``name``) and hands it
  over, so Ultralytics' ``on_train_end`` (or ``teardown`` after an error) ends it: one run, no
  stray ones. ``mlflow.autolog`` (switched on by Ultralytics) is suspended while leakguard
  works, so leakguard's own helper models are never logged. With MLflow off in Ultralytics'
  settings, the report is written to ``<save_dir>/leakguard/``.
- ``on_leak="fail"``: a critical finding raises :class:`leakguard.LeakageDetected` before the
  first epoch; the report is logged first and the run ends with status FAILED.
- ``on_train_end``: the trained model (``best.pt``) is validated separately on the clean and on
  the leaked val images (temporary image lists / class folders) and the run gets
  ``metrics/mAP50-95B/clean`` and ``.../leaked`` (every metric of the validator, named as
  Ultralytics' MLflow callback names them: without parentheses, which MLflow refuses), or
  ``metrics/accuracy_top1/clean`` and ``/leaked`` for classification.
- ``on_train_end``, classification: the trained classifier is explained on at most
  ``max_samples`` val images (:func:`leakguard.find_target_leakage`: SHAP attributions clustered
  with HDBSCAN), so a shortcut the model learned (a watermark, a border, a corner mark standing
  for the class) shows as a ``target_leakage`` finding, with its pictures, under
  ``leakguard/explain/`` in the same run. ``explain=False`` turns it off; a failure only warns.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ON_LEAK = ("warn", "fail", "ignore")
ULTRALYTICS_MLFLOW = "ultralytics.utils.callbacks.mlflow"


@dataclass
class _TrainerState:
    """What leakguard keeps on one trainer between its events."""

    dataset: object = None
    report: object = None
    explanation: object = None
    run_id: str | None = None
    started_run: bool = False
    folder: Path | None = None
    evaluation: dict = field(default_factory=dict)


class LeakGuardYOLO:
    """leakguard's callbacks for an Ultralytics trainer, with their options.

    Parameters
    ----------
    on_leak : "warn" (log and go on), "fail" (raise :class:`leakguard.LeakageDetected` before the
        first epoch when the audit finds critical leakage) or "ignore" (log only).
    frame_pattern : how file names encode video frames (see :func:`leakguard.from_yolo`):
        "auto", a pattern such as ``"{video}_{frame}"``, or None.
    checks : check names to run; None runs every check that applies.
    config : :class:`leakguard.AuditConfig` for the audit; default :func:`default_config` (partial
        duplicates at the same scale only: tiles of one large image; pass
        ``AuditConfig(check_options={"partial_duplicate": {"resized": True}})`` to also look for
        overlapping crops resized apart, at ~10 x the cost of decoding each image: SIFT keypoints).
    splits : dataset splits to audit (those present).
    evaluate : after training, validate on the clean and the leaked val images and log both.
    report_dir : where to write the report; default ``<trainer.save_dir>/leakguard``.
    cache_dir : where the audit keeps its signature cache, so that the next training run on the
        same dataset (a new model, other hyper-parameters, a restarted job) reads each unchanged
        image's signatures, each verified pair and the calibration back instead of computing them
        again, and a grown dataset costs only its new images. ``"auto"`` (default):
        ``.leakguard-cache`` in the folder that holds the runs of the project (beside
        ``<project>/<name>``, e.g. ``runs/detect/.leakguard-cache``); a path; None: no cache.
        ``config.cache_dir``, when set, wins.
    explain : after training a classifier, look for target leakage in what it learned
        (:func:`leakguard.explain.yolo.explain_yolo_classifier`: :func:`leakguard.find_target_leakage`
        on the val images) and log it into the run.
    max_samples : val images the explanation reads at most (a class-stratified sample, seeded).
    explain_options : more keyword options of :func:`leakguard.find_target_leakage`; by default
        ``{"time_budget": 120}`` (seconds: explaining stops after the batch that crosses it; on one
        CPU thread a 224 px yolov8n-cls image takes about 0.9 s).

    Example
    -------
    >>> guard = LeakGuardYOLO(on_leak="fail")                   # doctest: +SKIP
    >>> for event, fn in guard.callbacks().items():             # doctest: +SKIP
    ...     model.add_callback(event, fn)
    """

    def __init__(self, on_leak: str = "warn", frame_pattern: str | None = "auto", checks=None,
                 config=None, splits=("train", "val", "test"), evaluate: bool = True, report_dir=None,
                 explain: bool = True, max_samples: int = 100, explain_options: dict | None = None,
                 cache_dir="auto"):
        if on_leak not in ON_LEAK:
            raise ValueError(f"on_leak must be one of {ON_LEAK}, got {on_leak!r}")
        if int(max_samples) < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples}")
        self.on_leak = on_leak
        self.frame_pattern = frame_pattern
        self.checks = checks
        self.config = config
        self.splits = tuple(splits)
        self.evaluate = evaluate
        self.report_dir = report_dir
        self.cache_dir = cache_dir
        self.explain = explain
        self.max_samples = int(max_samples)
        self.explain_options = dict(explain_options or {})
        self.report = None       # the last audit's Report
        self.evaluation = {}     # the last clean / leaked validation: {"clean": {...}, "leaked": {...}}
        self.explanation = None  # the last target-leakage analysis (classification), or None

    def callbacks(self) -> dict:
        """Event name -> function, for ``model.add_callback``."""
        return {"on_pretrain_routine_end": self.on_pretrain_routine_end, "on_train_end": self.on_train_end}

    # ------------------------------------------------------------------ before the first epoch
    def on_pretrain_routine_end(self, trainer) -> None:
        from ultralytics.utils import LOGGER, RANK

        if RANK not in (-1, 0):  # DDP workers: the main process audits
            return
        import leakguard as lg

        state = _TrainerState()
        trainer._leakguard = state
        state.folder = Path(self.report_dir) if self.report_dir else Path(trainer.save_dir) / "leakguard"
        if not self.report_dir and state.folder.is_dir():
            shutil.rmtree(state.folder)  # leakguard's own folder: a resumed / exist_ok run must not upload stale files
        config = self.audit_config(trainer)
        started = time.perf_counter()
        try:
            state.dataset = lg.from_yolo(trainer.data, task=getattr(trainer.args, "task", None),
                                         frame_pattern=self.frame_pattern, splits=self.splits)
            from leakguard.integrations import audit_threads

            with autolog_suspended(), audit_threads():
                state.report = lg.audit(**state.dataset.audit_kwargs(), checks=self.checks, config=config)
        except Exception as err:  # noqa: BLE001 - an audit that cannot run never stops training
            LOGGER.warning(f"leakguard: dataset not audited: {type(err).__name__}: {err}")
            return
        report = self.report = state.report
        LOGGER.info(f"leakguard: {report.verdict.upper()} ({len(report.findings)} findings, "
                    f"{time.perf_counter() - started:.1f}s): "
                    + ", ".join(f"{n} {len(report.leaked(n))}/{report.splits[n]['n']} leaked"
                                for n in report.eval_splits))
        if _mlflow_wanted(trainer):
            already_ran = getattr(trainer, "_mlflow_active", None) is not None
            try:
                state.run_id, state.started_run = _run_for(trainer)
            except Exception as err:  # noqa: BLE001 - tracking down: keep the report on disk, train on
                LOGGER.warning(f"leakguard: no MLflow run ({type(err).__name__}: {err}); "
                               f"report saved in {state.folder}")
                report.save(state.folder)
                self._act(trainer)
                return
            report.log_to_mlflow(run_id=state.run_id, save_dir=state.folder)
            if already_ran:
                self._act(trainer)
            else:
                # appended to the list being run: it runs right after Ultralytics' MLflow callback
                trainer.add_callback("on_pretrain_routine_end", self._after_ultralytics_mlflow)
        else:
            report.save(state.folder)
            LOGGER.info(f"leakguard: report saved in {state.folder}")
            self._act(trainer)

    def audit_config(self, trainer):
        """The audit's configuration on ``trainer``: ``config`` (or :func:`default_config`), with the
        cache beside the project's runs (``cache_dir``) and as many reading threads as the
        trainer's dataloader workers (``args.workers``, capped by the cores as Ultralytics caps
        them) when those are more than the engine's default, unless ``config`` sets them."""
        import dataclasses

        config = self.config or default_config()
        if config.cache_dir is None and self.cache_dir is not None:
            folder = (Path(trainer.save_dir).parent / ".leakguard-cache" if self.cache_dir == "auto"
                      else Path(self.cache_dir))
            config = dataclasses.replace(config, cache_dir=folder)
        loader_workers = min(int(getattr(trainer.args, "workers", 0) or 0), os.cpu_count() or 1)
        # the engine reads on min(4, cores + 1) threads by default (SignatureStore)
        if config.workers is None and loader_workers > min(4, (os.cpu_count() or 1) + 1):
            config = dataclasses.replace(config, workers=loader_workers)
        return config

    def _after_ultralytics_mlflow(self, trainer) -> None:
        import mlflow

        state = trainer._leakguard
        active = mlflow.active_run()
        if state.started_run and active is not None and active.info.run_id == state.run_id:
            # Ultralytics found our run active and will not end a run it did not start: mark it
            # as its own, so its on_train_end (FINISHED) or teardown (FAILED) closes it
            trainer._mlflow_started_run = True
        self._act(trainer)

    def _act(self, trainer) -> None:
        from ultralytics.utils import LOGGER

        import leakguard as lg

        state = trainer._leakguard
        report = state.report
        if report.passed:
            return
        where = f"MLflow run {state.run_id}" if state.run_id else str(state.folder)
        parts = []
        for split in report.eval_splits:
            leaked = len(report.leaked(split))
            if leaked:
                by_check = ", ".join(f"{f.check} {f.count}" for f in report.findings
                                     if f.severity == "critical" and split in f.splits and report.train in f.splits)
                parts.append(f"{leaked} of {report.splits[split]['n']} {split!r} images linked to "
                             f"{report.train!r} ({by_check})")
        message = (f"leakguard: leakage between the splits of {state.dataset.source}: "
                   f"{'; '.join(parts) or 'critical findings'}; report in {where}")
        if self.on_leak == "fail":
            if state.run_id:
                _set_tag(state.run_id, "leakguard.stopped", "before the first epoch (on_leak='fail')")
            raise lg.LeakageDetected(message + " (on_leak='fail': training stopped before the first epoch)",
                                     report)
        if self.on_leak == "warn":
            LOGGER.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)

    # ------------------------------------------------------------------ after training
    def on_train_end(self, trainer) -> None:
        from ultralytics.utils import RANK

        state = getattr(trainer, "_leakguard", None)
        if RANK not in (-1, 0) or state is None or state.dataset is None:
            return
        if self.evaluate and state.report is not None:
            self._evaluate(trainer, state)
        if self.explain and state.dataset.task == "classify":
            self._explain(trainer, state)

    def _evaluate(self, trainer, state: _TrainerState) -> None:
        from ultralytics.utils import LOGGER

        try:
            with autolog_suspended():
                evaluation = evaluate_clean_and_leaked(trainer, state.dataset, state.report)
        except Exception as err:  # noqa: BLE001 - the trained model is saved; a failed extra validation must not lose it
            LOGGER.warning(f"leakguard: clean / leaked validation failed: {type(err).__name__}: {err}")
            return
        state.evaluation = self.evaluation = evaluation
        if not evaluation:
            return
        state.folder.mkdir(parents=True, exist_ok=True)
        out = state.folder / "clean_vs_leaked.json"
        out.write_text(json.dumps(evaluation, indent=1))
        metrics = evaluation_metrics(evaluation)
        LOGGER.info("leakguard: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        if state.run_id:
            try:
                from mlflow.entities import Metric
                from mlflow.tracking import MlflowClient

                now = int(time.time() * 1000)
                client = MlflowClient()
                client.log_batch(state.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
                client.log_artifact(state.run_id, str(out), artifact_path="leakguard")
            except Exception as err:  # noqa: BLE001
                LOGGER.warning(f"leakguard: could not log the clean / leaked metrics to MLflow "
                               f"({type(err).__name__}: {err}); they are in {out}")

    def _explain(self, trainer, state: _TrainerState) -> None:
        from ultralytics.utils import LOGGER

        folder = state.folder / "explain"
        try:
            with autolog_suspended():
                from leakguard.explain.yolo import explain_yolo_classifier

                # a progress bar on a terminal, as the audit's (the explanation may take a minute or two)
                options = {"progress": getattr(self.config, "progress", None), "time_budget": 120.0,
                           **self.explain_options}
                with warnings.catch_warnings():  # unreadable images: said once below, in YOLO's log
                    warnings.filterwarnings("ignore", message="explain_yolo_classifier: skipped")
                    result = explain_yolo_classifier(trainer, data=state.dataset, max_samples=self.max_samples,
                                                     **options)
        except Exception as err:  # noqa: BLE001 - the trained model is saved; an explanation is extra
            LOGGER.warning(f"leakguard: target-leakage analysis skipped: {type(err).__name__}: {err}")
            return
        if result is None:
            return
        state.explanation = self.explanation = result
        suspicious = [c for c in result.clusters if c["suspicious"]]
        LOGGER.info(f"leakguard: explained {len(result.attribution.indices)} val images "
                    f"({result.attribution.method}): {len(result.clusters)} clusters, "
                    f"{len(suspicious)} suspicious")
        skipped = result.meta.get("skipped") or []
        if skipped:
            LOGGER.warning(f"leakguard: {len(skipped)} unreadable val image(s) left out of the explanation, "
                           f"first: {skipped[0]['file']} ({skipped[0]['error']})")
        for finding in result.findings:
            if finding.severity != "info":
                LOGGER.warning(f"leakguard: {finding.title}")
        try:
            if state.run_id:
                result.log_to_mlflow(run_id=state.run_id, save_dir=folder)  # saved locally first, then uploaded
                import mlflow

                mlflow.MlflowClient().log_metric(state.run_id, "leakguard/target_leakage/skipped_images",
                                                 float(len(skipped)))
            else:
                result.to_report().save(folder)
        except Exception as err:  # noqa: BLE001
            LOGGER.warning(f"leakguard: could not save the target-leakage analysis ({type(err).__name__}: {err})")


def default_config():
    """The audit configuration the callback uses when none is given.

    As ``AuditConfig(progress=None)`` except that partial duplicates are looked for at the same
    scale only (tiles cut from one large image, the common case in detection datasets): the
    any-scale path (SIFT keypoints on every image, ``leakguard.similarity.image_partial``) costs
    about 10 x one decode of an image and would dominate the time before the first epoch.
    """
    import leakguard as lg

    return lg.AuditConfig(progress=None, check_options={"partial_duplicate": {"resized": False}})


# ---------------------------------------------------------------------- Ultralytics-style dict
def _default_guard(trainer) -> LeakGuardYOLO:
    guard = getattr(trainer, "_leakguard_guard", None)
    if guard is None:
        checks = os.environ.get("LEAKGUARD_CHECKS")
        guard = LeakGuardYOLO(on_leak=os.environ.get("LEAKGUARD_ON_LEAK", "warn"),
                              frame_pattern=os.environ.get("LEAKGUARD_FRAME_PATTERN", "auto") or None,
                              checks=checks.split(",") if checks else None,
                              explain=os.environ.get("LEAKGUARD_EXPLAIN", "1").lower() not in ("0", "false", "no"))
        trainer._leakguard_guard = guard
    return guard


def on_pretrain_routine_end(trainer) -> None:
    """Audit the dataset (options from ``LEAKGUARD_ON_LEAK``, ``LEAKGUARD_FRAME_PATTERN``, ``LEAKGUARD_CHECKS``,
    ``LEAKGUARD_EXPLAIN``)."""
    _default_guard(trainer).on_pretrain_routine_end(trainer)


def on_train_end(trainer) -> None:
    """Validate on the clean and the leaked val images and log both; explain a classifier."""
    _default_guard(trainer).on_train_end(trainer)


callbacks = {"on_pretrain_routine_end": on_pretrain_routine_end, "on_train_end": on_train_end}


def attach(model, **options) -> LeakGuardYOLO:
    """Register leakguard's callbacks on an Ultralytics ``YOLO`` model; returns the guard.

    ``options`` are those of :class:`LeakGuardYOLO` (``on_leak``, ``frame_pattern``, ``checks``,
    ``config``, ``splits``, ``evaluate``, ``report_dir``, ``explain``, ``max_samples``,
    ``explain_options``, ``cache_dir``).

    >>> guard = attach(YOLO("yolov8n.yaml"), on_leak="fail")   # doctest: +SKIP
    """
    guard = LeakGuardYOLO(**options)
    for event, fn in guard.callbacks().items():
        model.add_callback(event, fn)
    return guard


# ---------------------------------------------------------------------- MLflow
def _mlflow_wanted(trainer) -> bool:
    """Ultralytics' MLflow callback is registered on this trainer, or the user holds an active run."""
    try:
        import mlflow
    except ImportError:
        return False
    registered = any(getattr(cb, "__module__", "") == ULTRALYTICS_MLFLOW
                     for cb in trainer.callbacks.get("on_pretrain_routine_end", []))
    return registered or mlflow.active_run() is not None


def _run_for(trainer) -> tuple[str, bool]:
    """(run id, started by leakguard): the active run, or one started as Ultralytics would start it."""
    import mlflow

    active = mlflow.active_run()
    if active is not None:
        return active.info.run_id, False
    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or trainer.args.project or "/Shared/Ultralytics"
    mlflow.set_experiment(experiment)
    run = mlflow.start_run(run_name=os.environ.get("MLFLOW_RUN") or trainer.args.name)
    return run.info.run_id, True


def _set_tag(run_id: str, key: str, value: str) -> None:
    try:
        from mlflow.tracking import MlflowClient

        MlflowClient().set_tag(run_id, key, value)
    except Exception:  # noqa: BLE001 - a tag is not worth an error on top of the one being raised
        pass


@contextlib.contextmanager
def autolog_suspended():
    """Suspend ``mlflow.autolog`` (which Ultralytics turns on) while leakguard fits or runs models."""
    try:
        from mlflow.utils.autologging_utils import disable_autologging
    except ImportError:
        yield
        return
    with disable_autologging():
        yield


# ---------------------------------------------------------------------- clean / leaked validation
def evaluate_clean_and_leaked(trainer, dataset, report, split: str | None = None) -> dict:
    """Validate the trained model on the clean and on the leaked images of the val split.

    Returns ``{"split", "weights", "clean": {"images": n, "metrics": {...}}, "leaked": {...}}``
    (a part without images is left out); {} when the split has no leaked or no clean image.
    """
    import numpy as np
    from ultralytics import YOLO

    split = split or ("val" if "val" in dataset else next(n for n in dataset if n != dataset.train))
    n = len(dataset[split])
    unreadable = {s["index"] for s in report.skipped.get(split, []) if s.get("index") is not None}
    leaked = np.asarray([i for i in report.leaked(split) if i not in unreadable], dtype=np.int64)
    clean = np.asarray([i for i in range(n) if i not in set(leaked.tolist()) | unreadable], dtype=np.int64)
    weights = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
    out = {"split": split, "weights": str(weights), "task": dataset.task}
    if not len(leaked):
        return {}
    model = YOLO(str(weights))
    batch = int(trainer.args.batch) if int(trainer.args.batch or 0) > 0 else 16
    with tempfile.TemporaryDirectory(prefix="leakguard-val-") as tmp, _subset_class_count_quiet():
        for part, idx in (("clean", clean), ("leaked", leaked)):
            if not len(idx):
                continue
            folder = Path(tmp) / part
            data = _subset_dataset(dataset, split, idx, folder)
            metrics = model.val(data=str(data), split="val", imgsz=trainer.args.imgsz, batch=batch,
                                device=trainer.args.device, workers=0, plots=False, verbose=False,
                                save_json=False, project=str(Path(tmp) / "runs"), name=part, exist_ok=True)
            values = {k: float(v) for k, v in metrics.results_dict.items() if k != "fitness"}
            out[part] = {"images": int(len(idx)), "metrics": values}
    return out


def evaluation_metrics(evaluation: dict) -> dict[str, float]:
    """MLflow metrics of a clean / leaked validation: ``<metric>/clean``, ``<metric>/leaked``, image counts."""
    out = {}
    split = evaluation.get("split", "val")
    for part in ("clean", "leaked"):
        if part not in evaluation:
            continue
        for k, v in evaluation[part]["metrics"].items():
            # named like Ultralytics' MLflow callback names them (MLflow refuses parentheses)
            out[f"{k.replace('(', '').replace(')', '')}/{part}"] = v
        out[f"leakguard/{split}/{part}_images"] = float(evaluation[part]["images"])
    return out


def _subset_dataset(dataset, split: str, indices, folder: Path) -> Path:
    """A temporary dataset whose val split holds only ``indices`` of ``split``: a data.yaml with an
    image list (detect, segment, pose, OBB) or a folder of class folders of links (classify)."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    images = [dataset[split][int(i)] for i in indices]
    if dataset.task == "classify":
        names = list(dataset.names.values())
        train_images = dataset[dataset.train]
        for sub in ("train", "val"):
            for name in names:
                (folder / sub / name).mkdir(parents=True, exist_ok=True)
        # the checker wants training images: one per class, the class folders keep the model's order
        firsts = {}
        for path, cls in zip(train_images, dataset.classes[dataset.train]):
            firsts.setdefault(cls, path)
        for cls, path in firsts.items():
            _link(path, folder / "train" / cls / path.name)
        for k, (path, i) in enumerate(zip(images, indices)):
            cls = dataset.classes[split][int(i)]
            _link(path, folder / "val" / cls / f"{k:06d}_{path.name}")
        return folder
    # links to the images and their label files in a temporary images/ + labels/ pair: Ultralytics
    # writes its label cache next to the labels, and the user's labels/val.cache must stay theirs
    (folder / "images" / "val").mkdir(parents=True, exist_ok=True)
    (folder / "labels" / "val").mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(indices):
        path = Path(images[k])
        stem = f"{k:06d}_{path.stem}"
        _link(path, folder / "images" / "val" / f"{stem}{path.suffix}")
        label = dataset.label_files[split][int(i)]
        if label is not None and Path(label).exists():
            _link(label, folder / "labels" / "val" / f"{stem}.txt")
    listing = folder / "images" / "val"
    data = {k: v for k, v in dataset.data.items()
            if k in ("names", "nc", "kpt_shape", "flip_idx", "channels", "kpt_names")}
    data["names"] = dict(dataset.names)
    train = dataset.data.get("train")
    data["train"] = [str(t) for t in train] if isinstance(train, (list, tuple)) else str(train)
    data["val"] = str(listing)
    path = folder / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@contextlib.contextmanager
def _subset_class_count_quiet():
    """Drop Ultralytics' "found N images in K classes (requires M classes, not K)" error while it
    checks leakguard's clean / leaked class folders: a part of val need not hold every class."""
    import logging

    from ultralytics.utils import LOGGER

    class _Filter(logging.Filter):
        def filter(self, record):
            return "classes (requires" not in record.getMessage()

    quiet = _Filter()
    LOGGER.addFilter(quiet)
    try:
        yield
    finally:
        LOGGER.removeFilter(quiet)


def _link(src: Path, dst: Path) -> None:
    try:
        os.symlink(Path(src).resolve(), dst)
    except OSError:  # file systems without links
        shutil.copy2(src, dst)
