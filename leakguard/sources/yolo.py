"""Ultralytics YOLO datasets: the splits of a ``data.yaml`` (or a classification folder), ready for audit.

>>> import leakguard as lg
>>> ds = lg.from_yolo("data.yaml")                  # doctest: +SKIP
>>> ds["val"][:2]                                   # image paths, as YOLO reads them   # doctest: +SKIP
>>> report = lg.audit(**ds.audit_kwargs())          # images + labels + video groups    # doctest: +SKIP

The file lists are read the way Ultralytics reads them (a folder, a ``.txt`` list of images with
``./`` relative to the list, or a list of those; label files by ``img2label_paths``: the last
``/images/`` becomes ``/labels/``, the extension ``.txt``), without opening the augmenting loader
and without importing Ultralytics. Nothing here downloads anything: a missing folder is an error
that names the ``data.yaml`` key and the path tried.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path, PurePath

import numpy as np

from ..errors import InputError

# Ultralytics' IMG_FORMATS (ultralytics/data/utils.py), kept here so reading a dataset needs no torch
YOLO_IMAGE_FORMATS = {"avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif",
                      "tiff", "webp", "pfm"}
SPLIT_KEYS = ("train", "val", "test")
AUTO_PATTERNS = ("{video}_{frame}", "{video}-{frame}", "{video}/{frame}")
GROUP_FIELDS = ("video", "group", "source")
TIME_FIELDS = ("frame", "time", "t")
BACKGROUND = "background"  # label of an image with no (or an empty) label file: YOLO trains it as negatives


class YoloDataset(Mapping):
    """The splits of a YOLO dataset: a mapping of split name to the list of its image paths.

    Per-split attributes (mappings of split name to a list / array aligned with the images):

    - ``labels``: one string per image that is equal exactly when the annotations are equal:
      for detect / segment / pose / OBB a short description plus a digest of the label file's
      normalised content (rows parsed as numbers, coordinates rounded to 1e-4, rows sorted), or
      ``"background"`` for an image without objects; for classify, the class folder name.
    - ``classes``: the sorted class ids (detect family) or the class name (classify) of each image.
    - ``label_files``: the label file of each image (None for classify).
    - ``groups`` / ``timestamps``: the video (or other group) and the frame number parsed from the
      file name by ``frame_pattern``; None when the names say nothing.

    ``audit_kwargs()`` gives everything :func:`leakguard.audit` takes:
    ``lg.audit(**ds.audit_kwargs(), config=...)``. ``lg.audit(ds)`` works too and audits the
    images alone.
    """

    def __init__(self, images: dict[str, list[Path]], *, task: str, names: dict[int, str],
                 labels: dict[str, np.ndarray], classes: dict[str, list], label_files: dict[str, list],
                 groups: dict[str, np.ndarray] | None, timestamps: dict[str, np.ndarray] | None,
                 frame_pattern: str | None, root: Path | None, source: str, problems: list[dict],
                 notes: list[str], data: dict | None = None, train: str = "train"):
        self.images = images
        self.task = task
        self.names = names
        self.labels = labels
        self.classes = classes
        self.label_files = label_files
        self.groups = groups
        self.timestamps = timestamps
        self.frame_pattern = frame_pattern
        self.root = root
        self.source = source
        self.problems = problems  # label files that could not be parsed: split, index, file, reason
        self.notes = notes        # what was decided while reading (duplicated split folders...)
        self.data = data or {}
        self.train = train

    def __getitem__(self, split: str) -> list[Path]:
        return self.images[split]

    def __iter__(self):
        return iter(self.images)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.images.items())
        grouped = f", groups by {self.frame_pattern!r}" if self.groups is not None else ""
        return f"<YoloDataset {self.task} {self.source} ({sizes}){grouped}>"

    def audit_kwargs(self) -> dict:
        """Keyword arguments for :func:`leakguard.audit`: splits, train, labels, groups, timestamps, modality."""
        return {"splits": dict(self.images), "train": self.train, "labels": dict(self.labels),
                "groups": None if self.groups is None else dict(self.groups),
                "timestamps": None if self.timestamps is None else dict(self.timestamps),
                "modality": "image"}


def from_yolo(data, *, task: str | None = None, frame_pattern: str | None = "auto",
              splits=SPLIT_KEYS, train: str = "train") -> YoloDataset:
    """Read the splits of an Ultralytics dataset: images, label files, and video frames by name.

    Parameters
    ----------
    data : path to a detection / segmentation / pose / OBB ``data.yaml``, a classification
        dataset folder (``train/``, ``val/`` (or ``valid/``, ``validation/``), ``test/``, each with
        one folder per class), or the dict Ultralytics' trainer resolved (``trainer.data``).
    task : "detect", "segment", "pose", "obb" or "classify"; None infers it (a folder is classify;
        ``kpt_shape`` in the yaml is pose; otherwise the first label rows tell segment and OBB
        from detect).
    frame_pattern : how file names encode video frames, e.g. ``"{video}_{frame}"`` (matched
        against the file stem) or ``"{video}/{frame}.jpg"`` (a folder per video). ``{video}``
        (or ``{group}``) becomes the group, ``{frame}`` (or ``{time}``) the timestamp; other
        ``{fields}`` match anything. ``"auto"`` tries ``{video}_{frame}``, ``{video}-{frame}`` and
        ``{video}/{frame}`` and keeps one only when it explains the names well (90% of files,
        several groups with several frames each, no group holding half the images), so plain names
        like ``img_001.jpg`` are not mistaken for one video. None: no groups from names (the
        group_overlap check can still recover them from content).
    splits : which splits to read (those present).
    train : the training split's name.

    Example
    -------
    >>> ds = from_yolo("datasets/traffic/data.yaml", frame_pattern="{video}_{frame}")   # doctest: +SKIP
    >>> report = lg.audit(**ds.audit_kwargs())                                       # doctest: +SKIP
    """
    if task is not None and task not in ("detect", "segment", "pose", "obb", "classify"):
        raise InputError(f"unknown YOLO task {task!r}; use detect, segment, pose, obb or classify")
    notes: list[str] = []
    if isinstance(data, Mapping):
        resolved, source = dict(data), str(data.get("yaml_file") or data.get("path") or "trainer.data")
        if task is None:
            task = "classify" if _looks_like_classify(resolved) else None
    else:
        path = Path(data)
        if not path.exists():
            raise InputError(f"no such YOLO dataset: {path} (give a data.yaml or a classification folder)")
        source = str(path)
        if path.is_dir():
            if task not in (None, "classify"):
                raise InputError(f"{path} is a folder: only classification datasets are folders; "
                                 f"for task={task!r} give its data.yaml")
            task, resolved = "classify", _classify_layout(path)
        else:
            resolved = _read_data_yaml(path)
            if task == "classify":
                raise InputError(f"{path}: classification datasets are folders, not yaml files")
    if task == "classify":
        return _classify_dataset(resolved, source, frame_pattern, splits, train, notes)
    return _detect_dataset(resolved, source, task, frame_pattern, splits, train, notes)


# ----------------------------------------------------------------------------- data.yaml layouts
def _read_data_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read YOLO data file {path}: {err}") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: a YOLO data.yaml is a mapping with train:, val: and names:")
    if "val" not in data and "validation" in data:
        data["val"] = data.pop("validation")
    for key in ("train", "val"):
        if not data.get(key):
            raise InputError(f"{path}: the {key!r} key is missing; YOLO data files need train: and val:")
    root = _dataset_root(path, data.get("path"))
    data["path"] = str(root)
    data["yaml_file"] = str(path)
    for key in (*SPLIT_KEYS, "minival"):
        value = data.get(key)
        if not value:
            continue
        entries = value if isinstance(value, list) else [value]
        resolved = []
        for entry in entries:
            p = (root / str(entry)).resolve()
            if not p.exists() and str(entry).startswith("../"):  # as Ultralytics does
                p = (root / str(entry)[3:]).resolve()
            resolved.append(str(p))
        data[key] = resolved if isinstance(value, list) else resolved[0]
    return data


def _dataset_root(yaml_path: Path, declared) -> Path:
    """The dataset root: ``path:`` as given when absolute; relative to the yaml, the working folder,
    or Ultralytics' datasets_dir (the first that exists); the yaml's folder when ``path:`` is absent."""
    if not declared:
        return yaml_path.parent.resolve()
    declared = Path(str(declared)).expanduser()
    if declared.is_absolute():
        return declared
    tried = [yaml_path.parent / declared, Path.cwd() / declared]
    datasets_dir = _ultralytics_datasets_dir()
    if datasets_dir is not None:
        tried.append(datasets_dir / declared)
    for candidate in tried:
        if candidate.exists():
            return candidate.resolve()
    raise InputError(f"{yaml_path}: dataset root path: {declared} not found; tried "
                     + ", ".join(str(t) for t in tried))


def _ultralytics_datasets_dir() -> Path | None:
    # read only when Ultralytics is already imported: importing it here would pull in torch
    mod = sys.modules.get("ultralytics.utils")
    if mod is None or not hasattr(mod, "SETTINGS"):
        return None
    try:
        return Path(mod.SETTINGS["datasets_dir"])
    except (KeyError, TypeError):
        return None


def image_files(spec, key: str = "", source: str = "") -> list[Path]:
    """The image files of one split as Ultralytics lists them (``BaseDataset.get_img_files``)."""
    found: list[str] = []
    for entry in spec if isinstance(spec, (list, tuple)) else [spec]:
        p = Path(entry)
        if p.is_dir():
            # Ultralytics' own listing (glob of **/*.*): strings, no Path object per file
            found += [f for f in glob.glob(os.path.join(glob.escape(str(p)), "**", "*.*"), recursive=True)
                      if os.path.isfile(f)]
        elif p.is_file():
            lines = p.read_text(encoding="utf-8-sig").strip().splitlines()
            parent = str(p.parent) + os.sep
            found += [x.strip().replace("./", parent, 1) if x.strip().startswith("./") else x.strip()
                      for x in lines if x.strip()]
        else:
            raise InputError(f"{source}: {key}: {p} does not exist")
    images = sorted(x for x in found if x.rpartition(".")[-1].lower() in YOLO_IMAGE_FORMATS)
    return [Path(x) for x in images]


def img2label_paths(img_paths, label_dir: str = "labels", suffix: str = ".txt") -> list[str]:
    """Ultralytics' rule: the last ``/images/`` becomes ``/labels/`` and the extension ``.txt``.

    Ultralytics' own function is used when it is already imported, so the two never disagree.
    """
    mod = sys.modules.get("ultralytics.data.utils")
    if mod is not None and hasattr(mod, "img2label_paths"):
        return mod.img2label_paths(list(img_paths), label_dir=label_dir, suffix=suffix)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}{label_dir}{os.sep}"
    return [sb.join(os.fspath(x).rsplit(sa, 1)).rsplit(".", 1)[0] + suffix for x in img_paths]


def _names_of(data: dict) -> dict[int, str]:
    names = data.get("names")
    if names is None:
        return {i: f"class_{i}" for i in range(int(data.get("nc", 0)))}
    if isinstance(names, Mapping):
        return {int(k): str(v) for k, v in names.items()}
    return dict(enumerate(str(n) for n in names))


def _detect_dataset(data: dict, source: str, task, frame_pattern, splits, train, notes) -> YoloDataset:
    images: dict[str, list[Path]] = {}
    seen: dict[tuple, str] = {}
    for key in splits:
        spec = data.get(key)
        if not spec:
            continue
        files = image_files(spec, key, source)
        sig = tuple(files)
        if sig in seen:  # e.g. test: pointing at the val folder; auditing it twice says nothing
            notes.append(f"{key!r} lists the same images as {seen[sig]!r}; audited once as {seen[sig]!r}")
            continue
        seen[sig] = key
        images[key] = files
    _require_train(images, train, source)
    label_files = {k: img2label_paths(v) for k, v in images.items()}
    problems: list[dict] = []
    labels, classes, first_rows = {}, {}, []
    for split, files in label_files.items():
        labs, cls = [], []
        for i, lf in enumerate(files):
            key, ids, rows, problem = _read_label_file(lf)
            if problem:
                problems.append({"split": split, "index": i, "file": lf, "reason": problem})
            if rows and len(first_rows) < 20:
                first_rows.extend(rows[:2])
            labs.append(key)
            cls.append(ids)
        labels[split] = np.asarray(labs, dtype=object)
        classes[split] = cls
    if task is None:
        task = _infer_task(data, first_rows)
    groups, timestamps, used = _frames_from_names(images, frame_pattern)
    return YoloDataset(images, task=task, names=_names_of(data), labels=labels, classes=classes,
                       label_files={k: [Path(x) for x in v] for k, v in label_files.items()},
                       groups=groups, timestamps=timestamps, frame_pattern=used,
                       root=Path(data["path"]) if data.get("path") else None, source=source,
                       problems=problems, notes=notes, data=data, train=train)


def _read_label_file(path: str) -> tuple[str, tuple, list, str | None]:
    """(label key, class ids, parsed rows, problem) of one YOLO label file."""
    try:
        with open(path, encoding="utf-8-sig") as fh:  # a plain open: thousands of small files, no Path objects
            text = fh.read()
    except FileNotFoundError:
        return BACKGROUND, (), [], None  # YOLO trains an image without label file as background
    except (OSError, UnicodeDecodeError) as err:
        return f"unreadable label file ({type(err).__name__})", (), [], f"cannot read label file: {err}"
    rows, bad = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(x) for x in parts]
        except ValueError:
            bad.append(lineno)
            continue
        rows.append(values)
    if not rows and not bad:
        return BACKGROUND, (), [], None
    # normalised content: class id as int, coordinates to 1e-4, rows sorted, so formatting
    # differences (spacing, trailing zeros, row order) do not make two equal annotations differ
    canon = sorted(" ".join([str(int(r[0]))] + [f"{v:.4f}" for v in r[1:]]) for r in rows)
    if bad:
        canon.append(f"unparsed lines {bad}: " + hashlib.blake2b(text.encode(), digest_size=8).hexdigest())
    digest = hashlib.blake2b("\n".join(canon).encode(), digest_size=5).hexdigest()
    ids = tuple(sorted({int(r[0]) for r in rows}))
    key = f"{len(rows)} object{'s' if len(rows) != 1 else ''} of class {list(ids)} #{digest}"
    problem = f"lines {bad[:10]} are not numbers" if bad else None
    return key, ids, rows, problem


def _infer_task(data: dict, rows: list) -> str:
    if data.get("kpt_shape"):
        return "pose"
    if rows:
        lengths = {len(r) for r in rows}
        if lengths == {9}:
            return "obb"
        if max(lengths) > 5:
            return "segment"
    return "detect"


def _require_train(images: dict, train: str, source: str) -> None:
    if train not in images:
        raise InputError(f"{source}: no {train!r} split found (splits read: {list(images) or 'none'})")
    if not images[train]:
        raise InputError(f"{source}: the {train!r} split holds no images")
    if len(images) < 2:
        raise InputError(f"{source}: only the {train!r} split was found; an audit needs an evaluation split")


# ----------------------------------------------------------------------------- classification
def _classify_layout(root: Path) -> dict:
    """Ultralytics' check_cls_dataset layout: root/train, root/val|validation|valid, root/test."""
    train = root / "train"
    if not train.is_dir():
        raise InputError(f"{root}: a classification dataset needs a train/ folder with one folder per class")
    val = next((root / n for n in ("val", "validation", "valid") if (root / n).is_dir()), None)
    test = root / "test" if (root / "test").is_dir() else None
    names = dict(enumerate(sorted(p.name for p in train.iterdir() if p.is_dir())))
    return {"train": train, "val": val, "test": test, "names": names, "path": root}


def _looks_like_classify(data: Mapping) -> bool:
    train = data.get("train")
    if not train or isinstance(train, (list, tuple)) or data.get("yaml_file"):
        return False
    p = Path(train)
    return p.is_dir() and any(c.is_dir() for c in p.iterdir()) and not any(
        c.is_file() and c.suffix[1:].lower() in YOLO_IMAGE_FORMATS for c in p.iterdir())


def _classify_dataset(data: dict, source: str, frame_pattern, splits, train, notes) -> YoloDataset:
    images, labels, classes = {}, {}, {}
    seen: dict[str, str] = {}
    for key in splits:
        folder = data.get(key)
        if not folder:
            continue
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{source}: {key}: {folder} is not a folder")
        real = str(folder.resolve())
        if real in seen:
            notes.append(f"{key!r} is the same folder as {seen[real]!r}; audited once as {seen[real]!r}")
            continue
        seen[real] = key
        files = sorted(f for f in folder.rglob("*.*")
                       if f.is_file() and f.suffix[1:].lower() in YOLO_IMAGE_FORMATS and f.parent != folder)
        images[key] = files
        cls = [f.relative_to(folder).parts[0] for f in files]
        labels[key] = np.asarray(cls, dtype=object)
        classes[key] = cls
    _require_train(images, train, source)
    groups, timestamps, used = _frames_from_names(images, frame_pattern)
    names = _names_of(data) if data.get("names") else dict(enumerate(sorted(set(classes[train]))))
    return YoloDataset(images, task="classify", names=names, labels=labels, classes=classes,
                       label_files={k: [None] * len(v) for k, v in images.items()}, groups=groups,
                       timestamps=timestamps, frame_pattern=used,
                       root=Path(data["path"]) if data.get("path") else None, source=source,
                       problems=[], notes=notes, data=data, train=train)


# ----------------------------------------------------------------------------- video frames by name
def pattern_regex(pattern: str) -> tuple[re.Pattern, str | None, str | None, int, bool]:
    """(regex, group field, time field, path components it spans, whether it includes the extension)."""
    fields = re.findall(r"{(\w*)}", pattern)
    group_field = next((f for f in fields if f in GROUP_FIELDS), None)
    time_field = next((f for f in fields if f in TIME_FIELDS), None)
    if group_field is None and time_field is None:
        raise InputError(f"frame_pattern {pattern!r} names no {{video}} (or {{group}}) and no {{frame}} field")
    out, pos, used = [], 0, set()
    for m in re.finditer(r"{(\w*)}", pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        name = m.group(1)
        if name == time_field and name not in used:
            out.append(rf"(?P<{name}>\d+(?:\.\d+)?)")
        elif name in (group_field,) and name not in used:
            out.append(rf"(?P<{name}>[^/]+?)")
        else:
            out.append(r"[^/]*?")
        used.add(name)
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    tail = pattern.rsplit("/", 1)[-1]
    has_ext = bool(re.search(r"\.\w+$", tail)) and not tail.endswith("}")
    return re.compile("^" + "".join(out) + "$"), group_field, time_field, pattern.count("/") + 1, has_ext


def parse_frame_names(paths, pattern: str) -> tuple[list, list, int]:
    """(groups, frame numbers, matched count) of ``paths`` under ``pattern``; None where no match."""
    regex, gfield, tfield, depth, has_ext = pattern_regex(pattern)
    groups, times, matched = [], [], 0
    for p in paths:
        p = p if isinstance(p, PurePath) else Path(p)
        parts = list(p.parts[-depth:])
        if not has_ext:
            parts[-1] = p.stem
        m = regex.match("/".join(parts))
        if m is None:
            groups.append(None)
            times.append(None)
            continue
        matched += 1
        groups.append(m.group(gfield) if gfield else None)
        times.append(float(m.group(tfield)) if tfield else None)
    return groups, times, matched


def _frames_from_names(images: dict[str, list[Path]], frame_pattern):
    if not frame_pattern:
        return None, None, None
    everything = [p for files in images.values() for p in files]
    candidates = AUTO_PATTERNS if frame_pattern == "auto" else (frame_pattern,)
    for pattern in candidates:
        groups, times, matched = parse_frame_names(everything, pattern)
        if frame_pattern == "auto" and not _plausible(groups, matched, len(everything)):
            continue
        if not matched:
            return None, None, None
        out_g, out_t, start = {}, {}, 0
        has_group = any(g is not None for g in groups)
        has_time = any(t is not None for t in times)
        for split, files in images.items():
            g = groups[start:start + len(files)]
            t = times[start:start + len(files)]
            # unmatched files: each its own group (its stem), time unknown
            out_g[split] = np.asarray([gi if gi is not None else f"{p.stem}" for gi, p in zip(g, files)],
                                      dtype=object)
            out_t[split] = np.asarray([np.nan if ti is None else ti for ti in t], dtype=np.float64)
            start += len(files)
        return (out_g if has_group else None), (out_t if has_time else None), pattern
    return None, None, None


def _plausible(groups: list, matched: int, total: int) -> bool:
    """Names explain video frames: most files match, several groups, frames repeat per group."""
    if total == 0 or matched < 0.9 * total:
        return False
    counts: dict = {}
    for g in groups:
        if g is not None:
            counts[g] = counts.get(g, 0) + 1
    if len(counts) < 2 or max(counts.values()) > 0.5 * total:
        return False
    return sum(c >= 2 for c in counts.values()) >= max(2, len(counts) // 2)
