"""Explain an Ultralytics YOLO classification model: :func:`find_target_leakage` on its val images.

The Ultralytics integration calls :func:`explain_yolo_classifier` when training ends (the
``on_train_end`` event), the way the Lightning callback explains its module at the end of ``fit``:
a bounded, class-stratified sample of the validation images is read from the dataset's class
folders, prepared exactly as Ultralytics' classification validator prepares them
(``classify_transforms``: resize, centre crop, tensor in [0, 1]), and the network's logits are
explained with gradient SHAP on a deep copy of the trained weights (``best.pt`` when the trainer
saved one). Clusters of images explained by one small region (a marker, a watermark, a scanner
tag) become findings.

>>> from ultralytics import YOLO
>>> from leakguard.explain.yolo import explain_yolo_classifier
>>> model = YOLO("yolov8n-cls.yaml")
>>> model.train(data="path/to/folders", epochs=10, imgsz=64)       # doctest: +SKIP
>>> tl = explain_yolo_classifier(model.trainer, max_samples=256)    # doctest: +SKIP
>>> tl.findings, tl.meta["files"][:3]                                # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError


def explain_yolo_classifier(model, data=None, split: str = "val", max_samples: int = 256,
                            imgsz: int | None = None, time_budget: float | None = 120.0,
                            random_state: int = 0, progress: bool | None = None, **options):
    """:func:`leakguard.find_target_leakage` for a YOLO classification model on its ``split`` images.

    Parameters
    ----------
    model : an Ultralytics trainer (as in ``on_train_end``: its ``best.pt``, else its EMA or
        model), a ``YOLO`` object, the classification ``nn.Module``, or a path to a ``.pt`` file.
    data : the dataset (a classification folder, ``trainer.data``, or a :class:`YoloDataset`);
        taken from the trainer when omitted.
    split : the split whose images are explained ("val" by default).
    max_samples : images explained at most (a class-stratified sample); the cost grows with it.
    imgsz : image size the model was trained at; from the trainer / checkpoint when omitted.
    time_budget : seconds; explaining stops after the batch that crosses it.
    options : more keyword options of :func:`leakguard.find_target_leakage`.

    Returns the :class:`~leakguard.explain.result.TargetLeakageResult`; cluster members index
    ``result.meta["files"]`` (the image files explained, in order). Sampled images that cannot be
    read are skipped with a warning and listed in ``result.meta["skipped"]`` (``{"file", "error"}``,
    counted in ``meta["n_skipped"]``); :class:`~leakguard.InputError` only when none can be read.
    """
    import torch

    from .attribution import _sample
    from .result import find_target_leakage

    net, names, trained_size = _classification_module(model)
    imgsz = int(imgsz or trained_size or 224)
    if data is None:
        data = getattr(model, "data", None)
        if data is None:
            raise InputError("explain_yolo_classifier: give data= (the classification dataset folder) "
                             "when model is not a trainer")
    files, classes = _split_files(data, split)
    index_of = {str(n): int(i) for i, n in names.items()} if names else {}
    if not index_of or not set(classes) <= set(index_of):
        index_of = {c: i for i, c in enumerate(sorted(set(classes)))}  # Ultralytics' ImageFolder order
    labels = np.asarray([index_of[c] for c in classes], dtype=np.int64)
    rng = np.random.default_rng(random_state)
    pick = np.arange(len(files))
    if len(files) > max_samples:
        pick = _sample(pick, labels, max_samples, rng)
    images, readable, skipped = _load_images([files[i] for i in pick], imgsz)
    if not readable.any():
        raise InputError(f"explain_yolo_classifier: none of the {len(pick)} {split!r} images sampled could be "
                         f"read; first: {skipped[0]['file']}: {skipped[0]['error']}")
    if skipped:
        # one bad file costs that file, not the explanation of every other image
        warnings.warn(f"explain_yolo_classifier: skipped {len(skipped)} unreadable {split!r} image(s) of "
                      f"{len(pick)}; first: {skipped[0]['file']}: {skipped[0]['error']}", stacklevel=2)
    pick = pick[readable]
    result = find_target_leakage(_logits_module(net), torch.as_tensor(images), labels[pick],
                                 max_samples=len(pick), time_budget=time_budget, progress=progress,
                                 random_state=random_state, **options)
    result.meta.update({"files": [str(files[i]) for i in pick], "split": split, "imgsz": imgsz,
                        "class_names": {int(i): str(n) for i, n in (names or {}).items()},
                        "skipped": skipped, "n_skipped": len(skipped)})
    return result


def _classification_module(model, device=None):
    """(torch module, {index: class name}, training image size) of a trainer / YOLO / module / .pt path.

    A module, a YOLO object's or a trainer's network stays where it is (the explanation runs on a
    copy, on its device); a ``.pt`` file is loaded to ``device``."""
    import torch

    if isinstance(model, (str, Path)):
        from ultralytics.nn.tasks import load_checkpoint

        # a checkpoint leakguard loads itself: explained on the GPU when there is one (about 0.9 s of
        # CPU per 224 px image otherwise)
        net, _ = load_checkpoint(str(model), device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return net, getattr(net, "names", None), _imgsz_of(getattr(net, "args", {}))
    if hasattr(model, "best") and hasattr(model, "args"):  # a trainer
        best = Path(str(model.best))
        if best.is_file():
            # best.pt on the device the trainer trained on (Ultralytics loads checkpoints to the CPU)
            net, names, size = _classification_module(best, device=getattr(model, "device", None))
            return net, names, _imgsz_of(model.args) or size
        ema = getattr(getattr(model, "ema", None), "ema", None)
        net = ema if ema is not None else model.model
        return net, getattr(net, "names", None) or (model.data or {}).get("names"), _imgsz_of(model.args)
    inner = getattr(model, "model", None)
    # a YOLO object (an nn.Module too, whose train() starts a training run: never explained itself)
    if _is_yolo_object(model) or (not isinstance(model, torch.nn.Module) and isinstance(inner, torch.nn.Module)):
        if getattr(model, "task", "classify") != "classify":
            raise InputError(f"explain_yolo_classifier explains classification models; this one is {model.task!r}")
        return inner, getattr(model, "names", None), _imgsz_of(getattr(inner, "args", {}))
    if isinstance(model, torch.nn.Module):
        return model, getattr(model, "names", None), _imgsz_of(getattr(model, "args", {}))
    raise InputError(f"explain_yolo_classifier: cannot find a classification network in {type(model).__name__}")


def _is_yolo_object(model) -> bool:
    try:
        from ultralytics.engine.model import Model
    except ImportError:  # pragma: no cover - no Ultralytics, no YOLO object
        return False
    return isinstance(model, Model)


def _imgsz_of(args) -> int | None:
    size = args.get("imgsz") if isinstance(args, dict) else getattr(args, "imgsz", None)
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size) if size else None


def _split_files(data, split: str):
    """(image files, class folder name of each) of one split of a classification dataset."""
    from ..sources.yolo import YoloDataset, from_yolo

    if not isinstance(data, YoloDataset):
        # from_yolo wants a training split and one other; only the listing is read, no pixels
        other = "val" if split == "train" else split
        data = from_yolo(data, task="classify", frame_pattern=None, splits=("train", other))
    if split not in data.images or not len(data.images[split]):
        raise InputError(f"{data.source}: no {split!r} images to explain (splits: {list(data.images)})")
    return list(data.images[split]), [str(c) for c in data.classes[split]]


def _load_images(files, imgsz: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(images, readable, skipped): the readable files as (n, 3, imgsz, imgsz) float32 in [0, 1],
    prepared as Ultralytics' classification validator prepares them; a bool mask over ``files``;
    ``{"file", "error"}`` of each file that could not be read (skipped, not fatal)."""
    from PIL import Image
    from ultralytics.data.augment import classify_transforms

    transform = classify_transforms(size=imgsz)
    out, readable, skipped = [], np.zeros(len(files), dtype=bool), []
    for k, f in enumerate(files):
        try:
            with Image.open(f) as im:
                out.append(transform(im.convert("RGB")).numpy())
            readable[k] = True
        except Exception as err:  # noqa: BLE001 - name the file, as every reader here does
            skipped.append({"file": str(f), "error": f"{type(err).__name__}: {err}"})
    images = np.stack(out).astype(np.float32) if out else np.zeros((0, 3, imgsz, imgsz), np.float32)
    return images, readable, skipped


def _logits_module(net):
    """The network returning logits: Ultralytics' Classify head returns (probabilities, logits) in eval."""
    import torch

    class YoloLogits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x)
            if isinstance(out, (tuple, list)):
                out = out[1] if len(out) == 2 and out[1].shape == out[0].shape else out[0]
            return out

    return YoloLogits(net)
