"""torch Datasets and DataLoaders, read in order and without the random augmentation of training.

How a dataset is read, in order of preference:
1. ``Subset`` and ``ConcatDataset`` are unwrapped to the datasets and indices underneath.
2. A dataset that lists its files (``samples``/``imgs`` as torchvision's ``ImageFolder``,
   ``files``, ``paths`` or ``im_files``) is read from those files, with no transform at all.
3. A dataset that holds its data in memory (``data`` array or tensor, as MNIST and CIFAR) is read
   from that array.
4. Otherwise ``dataset[i]`` is called with the dataset's ``transform`` attribute swapped for the
   ``audit_transform`` you give (default: no transform) while the audit reads it. For a dataset
   that augments inside ``__getitem__`` without a ``transform`` attribute, pass
   ``audit_transform=callable(dataset, index) -> sample`` and leakguard calls that instead.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..errors import InputError, SampleError
from .base import FileSource, Source
from .readers import READERS, modality_of_path

_FILE_ATTRS = ("samples", "imgs", "im_files", "files", "paths", "image_paths")


def is_torch_data(obj) -> bool:
    mod = type(obj).__module__ or ""
    if not (mod.startswith("torch") or hasattr(obj, "__getitem__")):
        return False
    try:
        import sys

        torch = sys.modules.get("torch")
        if torch is None:
            return False
        from torch.utils.data import DataLoader, Dataset
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, (Dataset, DataLoader))


def _flatten(dataset) -> list[tuple[object, int]]:
    from torch.utils.data import ConcatDataset, DataLoader, Subset

    if isinstance(dataset, DataLoader):
        return _flatten(dataset.dataset)
    if isinstance(dataset, Subset):
        inner = _flatten(dataset.dataset)
        return [inner[int(j)] for j in dataset.indices]
    if isinstance(dataset, ConcatDataset):
        return [x for d in dataset.datasets for x in _flatten(d)]
    return [(dataset, i) for i in range(len(dataset))]


def unwrap(dataset) -> list[tuple[object, list[int]]]:
    """(base dataset, indices into it) runs that make up ``dataset`` (a loader, Subset, ConcatDataset), in order."""
    out: list[tuple[object, list[int]]] = []
    for base, i in _flatten(dataset):
        if out and out[-1][0] is base:
            out[-1][1].append(i)
        else:
            out.append((base, [i]))
    return out


def _file_list(base) -> list[Path] | None:
    for attr in _FILE_ATTRS:
        files = getattr(base, attr, None)
        if isinstance(files, (list, tuple)) and files:
            first = files[0]
            if isinstance(first, (tuple, list)):
                first = first[0]
                files = [f[0] for f in files]
            if isinstance(first, (str, Path)) and modality_of_path(Path(first)):
                return [Path(f) for f in files]
    return None


def _file_labels(base) -> list | None:
    samples = getattr(base, "samples", None) or getattr(base, "imgs", None)
    if isinstance(samples, (list, tuple)) and samples and isinstance(samples[0], (tuple, list)):
        return [s[1] for s in samples]
    targets = getattr(base, "targets", None)
    return list(np.asarray(targets)) if targets is not None else None


def to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def tensor_to_item(x, modality: str | None):
    """A sample tensor as a canonical array; (C, H, W) image tensors become (H, W, C)."""
    if isinstance(x, str):
        return x
    try:
        from PIL import Image

        if isinstance(x, Image.Image):
            from .readers import pil_to_array

            return pil_to_array(x)
    except ImportError:  # pragma: no cover
        pass
    arr = to_numpy(x)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = np.transpose(arr, (1, 2, 0))
    return arr


@contextlib.contextmanager
def _swapped_transform(base, audit_transform):
    had = hasattr(base, "transform")
    old = getattr(base, "transform", None)
    if had:
        base.transform = audit_transform
    try:
        yield
    finally:
        if had:
            base.transform = old


class TorchDatasetSource(Source):
    """Samples of a torch dataset read through ``__getitem__`` (random transform swapped out)."""

    def __init__(self, parts, modality: str | None, audit_transform=None, sample_index: int = 0):
        self.parts = parts
        self.flat = [(base, i) for base, idx in parts for i in idx]
        self.audit_transform = audit_transform
        self.sample_index = sample_index
        self.modality = modality or ""
        self._labels: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.flat)

    def _getitem(self, base, i):
        if self.audit_transform is not None and not hasattr(base, "transform"):
            return self.audit_transform(base, i)
        with _swapped_transform(base, self.audit_transform):
            return base[i]

    def load(self, i: int):
        base, j = self.flat[i]
        try:
            item = self._getitem(base, j)
        except Exception as err:  # noqa: BLE001
            raise SampleError(f"dataset[{j}] failed: {type(err).__name__}: {err}", index=i) from err
        if isinstance(item, dict):
            keys = [k for k in ("image", "img", "input", "x", "audio", "text") if k in item]
            label = next((item[k] for k in ("label", "target", "y", "cls") if k in item), None)
            item = item[keys[0]] if keys else next(iter(item.values()))
            self._labels[i] = label
        elif isinstance(item, (tuple, list)):
            if len(item) > 1:
                self._labels[i] = item[1]
            item = item[self.sample_index]
        return tensor_to_item(item, self.modality)

    def collected_labels(self):
        """The labels seen while the items were read, when every item had one; else None."""
        if len(self._labels) != len(self) or any(v is None for v in self._labels.values()):
            return None
        values = [to_numpy(self._labels[i]) for i in range(len(self))]
        return np.asarray([v.item() if v.size == 1 else str(v.tolist()) for v in values])

    def label(self, i: int):
        if i not in self._labels:
            self.load(i)
        lab = self._labels.get(i)
        return None if lab is None else to_numpy(lab).item() if np.size(to_numpy(lab)) == 1 else lab


def _memory_arrays(base):
    """(data, targets or None) of a dataset holding its samples in memory, else None.

    TensorDataset: its first tensor and second (labels); MNIST/CIFAR style: ``data`` and ``targets``.
    Datasets with a ``transform`` that also hold ``data`` are read from ``data`` (no transform).
    """
    from torch.utils.data import TensorDataset

    if isinstance(base, TensorDataset):
        tensors = base.tensors
        return to_numpy(tensors[0]), (to_numpy(tensors[1]) if len(tensors) > 1 else None)
    data = getattr(base, "data", None)
    if data is None or not (hasattr(data, "shape") or isinstance(data, (list, np.ndarray))):
        return None
    targets = getattr(base, "targets", None)
    return to_numpy(data), (to_numpy(targets) if targets is not None else None)


def torch_source(data, modality: str | None, audit_transform=None):
    """(Source, labels or None) for a torch Dataset or DataLoader."""
    parts = unwrap(data)
    if not parts or sum(len(idx) for _, idx in parts) == 0:
        raise InputError("the dataset is empty")
    if all(_file_list(base) is not None for base, _ in parts) and audit_transform is None:
        paths, labels = [], []
        for base, idx in parts:
            files = _file_list(base)
            labs = _file_labels(base)
            paths.extend(files[i] for i in idx)
            labels.extend(labs[i] for i in idx) if labs is not None else labels.extend([None] * len(idx))
        mods = {modality_of_path(p) for p in paths}
        if len(mods) == 1:
            mod = mods.pop()
            labels_out = None if any(lab is None for lab in labels) else np.asarray(labels)
            return FileSource(paths, mod, READERS[mod]), labels_out
    if audit_transform is None and all(_memory_arrays(b) is not None for b, _ in parts):
        from .base import SequenceSource

        items, labels = [], []
        for base, idx in parts:
            data_arr, tarr = _memory_arrays(base)
            for i in idx:
                items.append(tensor_to_item(data_arr[i], modality))
                labels.append(tarr[i] if tarr is not None else None)
        mod = modality or ("image" if items[0].ndim in (2, 3) else "series" if items[0].ndim == 1 else None)
        if mod is None:
            raise InputError("cannot tell the modality of the dataset's data; pass modality=")
        labels_out = None if any(lab is None for lab in labels) else np.asarray(labels)
        return SequenceSource(items, mod), labels_out
    return TorchDatasetSource(parts, modality, audit_transform), None
