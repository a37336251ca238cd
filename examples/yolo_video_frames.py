"""The video-frame leak in YOLO, end to end: a leaky run and a re-split run side by side in MLflow.

A dataset is made of frames of short videos (a shape moving over a textured background; the
shape is the class: classification by default, detection with ``--task detect``).
Splitting it at random by frame, as many datasets are split, puts neighbouring frames of one
video in train and in val: the model is scored on near-copies of its training images. A few
frames were also exported twice, and one of them relabelled.

1. ``leaky``: YOLO trains on the random split with leakguard attached. Before the first epoch
   leakguard audits the images and labels (exact copies, the relabelled copy, videos in both
   splits from the ``{video}_{frame}`` file names) and logs the report into YOLO's own MLflow run;
   after training it validates the model separately on the clean and the leaked val images
   (``metrics/accuracy_top1/clean`` and ``/leaked``; ``metrics/mAP50-95B/...`` for detection),
   and explains the classifier on its val images (SHAP clusters: does one image region, rather
   than the shape, decide the class?), under ``leakguard/explain/`` in the same run.
2. ``resplit``: ``leakguard resplit`` writes a split that keeps each video and each duplicate
   cluster in one split; YOLO trains on it with the same settings.

Runs offline, on CPU, in a few minutes (YOLO detectors trained from scratch need far more
epochs than a classifier before their mAP leaves zero: try ``--task detect --epochs 100``)::

    python examples/yolo_video_frames.py --tracking-uri sqlite:///mlflow.db
    python examples/yolo_video_frames.py --task detect --epochs 100
    mlflow ui --backend-store-uri sqlite:///mlflow.db     # experiment "yolo-video-frames"
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def prepare_offline_ultralytics(config_dir: Path) -> None:
    """Ultralytics without the network: its own config folder, a local font for its dataset check
    (else it downloads Arial.ttf), no settings sync, no pip auto-install. Call before importing it."""
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import ultralytics.utils as yolo_utils

    font = Path(yolo_utils.USER_CONFIG_DIR) / "Arial.ttf"
    if not font.exists() and FONT.exists():
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FONT, font)
    yolo_utils.SETTINGS.update(sync=False, mlflow=True)


def train_with_leakguard(data: Path, name: str, out: Path, epochs: int, imgsz: int, task: str):
    """Train YOLOv8n (or YOLOv8n-cls) from its config with leakguard attached; returns the guard."""
    from ultralytics import YOLO

    from leakguard.integrations.ultralytics import attach

    model = YOLO("yolov8n-cls.yaml" if task == "classify" else "yolov8n.yaml")
    guard = attach(model, on_leak="warn", frame_pattern="{video}_{frame}")
    model.train(data=str(data), epochs=epochs, imgsz=imgsz, batch=8, workers=0, plots=False, device="cpu",
                amp=False, mosaic=0.0, project=str(out / "runs"), name=name, exist_ok=True, verbose=False)
    return guard


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("yolo-video-frames"), help="working folder")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    parser.add_argument("--task", choices=["classify", "detect"], default="classify")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--videos", type=int, default=10, help="videos split at random by frame")
    parser.add_argument("--frames", type=int, default=10, help="frames per video")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    prepare_offline_ultralytics(Path(tempfile.mkdtemp(prefix="yolo-config-")))
    os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", "yolo-video-frames")
    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)

    from leakguard.cli_resplit import resplit_yolo
    from leakguard.integrations.ultralytics import autolog_suspended
    from leakguard.sources.yolo_synthetic import make_video_frames

    data = make_video_frames(out / "frames", n_videos=args.videos, frames_per_video=args.frames, split="random",
                             exact_copies=3, conflicting_copies=1, clean_val_videos=2, task=args.task,
                             random_state=0)
    print(f"dataset: {data} (frames split at random)")
    leaky = train_with_leakguard(data, "leaky", out, args.epochs, args.imgsz, args.task)

    with autolog_suspended():  # Ultralytics turned mlflow.autolog on; the re-split's audit is not a run
        summary = resplit_yolo(data, out / "resplit", frame_pattern="{video}_{frame}")
    print(f"re-split: {summary['moved']} images moved, sizes {summary['sizes']}, "
          f"verdict after: {summary['after'].verdict}")
    clean = train_with_leakguard(Path(summary["data"]), "resplit", out, args.epochs, args.imgsz, args.task)

    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])}
    score = "metrics/accuracy_top1" if args.task == "classify" else "metrics/mAP50-95B"
    keys = ["leakguard/val/leaked_fraction", score, f"{score}/clean", f"{score}/leaked"]
    print(f"\n{'run':10s} {'verdict':8s} " + " ".join(f"{k.split('/', 1)[1]:>22s}" for k in keys))
    for name in ("leaky", "resplit"):
        run = runs.get(name)
        if run is None:
            continue
        cells = [f"{run.data.metrics[k]:22.3f}" if k in run.data.metrics else f"{'-':>22s}" for k in keys]
        print(f"{name:10s} {run.data.tags.get('leakguard.verdict', '?'):8s} " + " ".join(cells))
    print(f"\nleaky run: {len(leaky.report.leaked('val'))} of {leaky.report.splits['val']['n']} val images leaked; "
          f"re-split run: {len(clean.report.leaked('val'))} of {clean.report.splits['val']['n']}")
    for name, guard in (("leaky", leaky), ("resplit", clean)):
        if guard.explanation is not None:
            tl = guard.explanation
            print(f"{name} explanation: {len(tl.attribution.indices)} val images, {len(tl.clusters)} clusters, "
                  f"{sum(c['suspicious'] for c in tl.clusters)} suspicious (target leakage)")
    print(f"MLflow: {args.tracking_uri}, experiment {experiment.name!r}; reports in {out / 'runs'}/*/leakguard/")


if __name__ == "__main__":
    main()
