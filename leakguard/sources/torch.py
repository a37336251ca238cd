"""torch Datasets and DataLoaders, read in order and without the random augmentation of training.

How a dataset is read, in order of preference:
1. ``Subset`` and ``ConcatDataset`` are unwrapped to the datasets and indices underneath.
2. A dataset that lists its files (``samples``/``imgs`` as torchvision's ``ImageFolder``,
   ``files``, ``paths``, ``im_files``, ``image_paths``, ``image_files``, ``img_paths``, or the
   private lists of torchvision's other image datasets: ``_image_files`` (Flowers102, Food101,
   DTD, SUN397, FGVCAircraft), ``_images`` (OxfordIIITPet), ``_samples`` (StanfordCars, GTSRB))
   is read from those files, with no transform at all: the engine decodes them on its reader
   threads instead of calling ``__getitem__`` for tensors. Names relative to the dataset's
   ``root`` are joined to it; a list none of whose first files exists is not used. A pandas
   DataFrame attribute (``data``, ``df``, ``annotations``...) with a column of file paths counts
   as such a list (labels from a ``label`` / ``target`` / ``class`` column).
3. A dataset that holds its data in memory (``data`` array or tensor, as MNIST and CIFAR) is read
   from that array.
4. Otherwise ``dataset[i]`` is called with the dataset's ``transform`` attribute swapped for the
   ``audit_transform`` you give (default: no transform) while the audit reads it. For a dataset
   that augments inside ``__getitem__`` without a ``transform`` attribute, pass
   ``audit_transform=callable(dataset, index) -> sample`` and leakguard calls that instead.
   When the data come as a ``DataLoader`` with ``num_workers > 0``, these reads run in that many
   worker processes, in batches of the loader's size, as the loader itself would read them (the
   items travel back as they are, uncollated); otherwise one by one on the calling thread.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..errors import InputError, SampleError
from .base import FileSource, Source
from .readers import READERS, modality_of_path

_FILE_ATTRS = ("samples", "imgs", "im_files", "files", "paths", "image_paths", "image_files", "img_paths",
               "_image_files", "_images", "_samples")
_LABEL_ATTRS = ("targets", "_labels", "labels")  # per-file labels beside a file list (first of the right length)
_FRAME_ATTRS = ("data", "df", "annotations", "frame", "metadata", "table")  # a DataFrame with a column of file paths
_LABEL_COLUMNS = ("label", "labels", "target", "targets", "class", "y")


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


def _frame_file_column(base) -> tuple[str, str, list] | None:
    """(attribute, column, values) of a pandas DataFrame attribute with a column of file paths
    (``self.data = pd.DataFrame({"path": ..., "label": ...})``, the common custom dataset)."""
    for attr in _FRAME_ATTRS:
        frame = getattr(base, attr, None)
        if type(frame).__name__ != "DataFrame" or not len(frame):
            continue
        for column in frame.columns:
            first = frame[column].iloc[0]
            if isinstance(first, (str, Path)) and modality_of_path(Path(first)):
                return attr, column, frame[column].tolist()
    return None


def _file_list_attr(base) -> tuple[str, list[Path]] | None:
    """(attribute, files) of the first file list of ``base`` whose files are there, else None."""
    import os

    frame_column = _frame_file_column(base)
    for attr in (*_FILE_ATTRS, "<frame>"):
        files = getattr(base, attr, None) if attr != "<frame>" else (frame_column[2] if frame_column else None)
        if isinstance(files, (list, tuple)) and files:
            first = files[0]
            if isinstance(first, (tuple, list)):
                if not first:
                    continue
                first = first[0]
                files = [f[0] for f in files]
            if not (isinstance(first, (str, os.PathLike)) and modality_of_path(Path(first))):
                continue
            paths = [Path(f) for f in files]
            # a few of the files must be there as named (one missing file is a sample to skip and
            # name, not a reason to read all the others through __getitem__)
            if not any(f.exists() for f in paths[:8]):
                # names relative to the dataset's folder (a custom dataset joining them in __getitem__)
                root = getattr(base, "root", None)
                if not isinstance(root, (str, os.PathLike)) or not any((Path(root) / f).exists() for f in paths[:8]):
                    continue
                paths = [Path(root) / f for f in paths]
            return attr, paths
    return None


def _file_list(base) -> list[Path] | None:
    found = _file_list_attr(base)
    return None if found is None else found[1]


def _file_labels(base, found=None) -> list | None:
    """Per-file labels of a dataset listing its files (``found``: its :func:`_file_list_attr`)."""
    found = found if found is not None else _file_list_attr(base)
    attr = found[0] if found else None
    if attr == "<frame>":
        frame = getattr(base, _frame_file_column(base)[0])
        column = next((c for c in _LABEL_COLUMNS if c in frame.columns), None)
        return frame[column].tolist() if column is not None else None
    samples = getattr(base, attr, None) if attr else None
    if isinstance(samples, (list, tuple)) and samples and isinstance(samples[0], (tuple, list)) and len(samples[0]) > 1:
        return [s[1] for s in samples]   # (path, label) pairs: ImageFolder's samples, StanfordCars' _samples
    n = len(found[1]) if found else None
    for name in _LABEL_ATTRS:
        values = getattr(base, name, None)
        if values is None or isinstance(values, (str, dict)) or not hasattr(values, "__len__"):
            continue
        if n is not None and len(values) != n:
            continue
        first = values[0] if len(values) else None
        if name != "targets" and not (isinstance(first, (int, float, str, np.generic))
                                      or getattr(first, "ndim", None) == 0):
            continue   # e.g. Ultralytics' ``labels``: one dict of boxes per image, not a class
        return list(np.asarray(values))
    return None


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


class _Failed:
    """A read that raised in a worker process: the message travels back instead of the exception."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def _read_raw(base, i, audit_transform):
    """``base[i]`` without its random transform (or ``audit_transform(base, i)``)."""
    if audit_transform is not None and not hasattr(base, "transform"):
        return audit_transform(base, i)
    with _swapped_transform(base, audit_transform):
        return base[i]


class _AuditView:
    """The flat (dataset, index) list as a map-style dataset for a DataLoader: item k is the raw
    ``flat[k]`` read without augmentation, or a :class:`_Failed` (one bad sample must not end the pass)."""

    def __init__(self, flat, audit_transform):
        self.flat = flat
        self.audit_transform = audit_transform

    def __len__(self) -> int:
        return len(self.flat)

    def __getitem__(self, k: int):
        base, j = self.flat[k]
        try:
            return _read_raw(base, j, self.audit_transform)
        except Exception as err:  # noqa: BLE001 - named in the main process as a SampleError
            return _Failed(f"dataset[{j}] failed: {type(err).__name__}: {err}")


def _as_list(batch):
    # the loader's items, uncollated: no stacking into a batch tensor and splitting it again
    return batch


class TorchDatasetSource(Source):
    """Samples of a torch dataset read through ``__getitem__`` (random transform swapped out).

    ``num_workers > 0``: the samples are read in order by a DataLoader with that many worker
    processes (the user's loader settings), ``batch_size`` at a time, ahead of ``load``; a sample
    asked for out of order is read directly.
    """

    def __init__(self, parts, modality: str | None, audit_transform=None, sample_index: int = 0,
                 num_workers: int = 0, batch_size: int | None = None, loader_options: dict | None = None):
        self.parts = parts
        self.flat = [(base, i) for base, idx in parts for i in idx]
        self.audit_transform = audit_transform
        self.sample_index = sample_index
        self.modality = modality or ""
        self.num_workers = int(num_workers or 0)
        self.batch_size = int(batch_size or 32)
        self.loader_options = dict(loader_options or {})
        self._labels: dict[int, object] = {}
        self._ahead: dict[int, object] = {}   # raw items the workers read ahead, until load() takes them
        self._reader = None                   # iterator over the workers' batches
        self._next = 0                        # the index the reader's next batch starts at

    def __len__(self) -> int:
        return len(self.flat)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_reader"], state["_ahead"], state["_next"] = None, {}, 0
        return state

    def _getitem(self, base, i):
        return _read_raw(base, i, self.audit_transform)

    def _read_ahead(self, i: int):
        """The raw item ``i`` from the worker processes' in-order pass, or None to read it directly.

        A pass starts at index 0 (the signature store reads every split in order, once per set of
        signature kinds); indices skipped by the caller are passed over; a sample asked for out of
        order (a preview) is read directly rather than restarting the workers.
        """
        if i in self._ahead:
            return self._ahead.pop(i)
        if self.num_workers <= 0 or len(self.flat) <= self.batch_size * self.num_workers:
            return None   # no workers, or too few samples to pay for starting them
        if self._reader is None:
            if i != 0:
                return None
            from torch.utils.data import DataLoader, SequentialSampler

            view = _AuditView(self.flat, self.audit_transform)
            self._next = 0
            self._reader = iter(DataLoader(view, batch_size=self.batch_size, sampler=SequentialSampler(view),
                                           num_workers=self.num_workers, collate_fn=_as_list,
                                           **self.loader_options))
        if i < self._next:
            return None
        while i >= self._next:
            try:
                batch = next(self._reader)
            except StopIteration:
                self._reader = None
                return None
            except Exception as err:  # noqa: BLE001 - e.g. a worker process killed: read directly instead
                import warnings

                warnings.warn(f"leakguard's reading workers failed ({type(err).__name__}: {err}); "
                              "reading the rest in this process", RuntimeWarning, stacklevel=2)
                self._reader, self.num_workers = None, 0
                return None
            self._ahead = {self._next + k: item for k, item in enumerate(batch)}
            self._next += len(batch)
        if self._next >= len(self.flat):
            self._reader = None   # the pass is done: its worker processes end
        return self._ahead.pop(i)

    def load(self, i: int):
        base, j = self.flat[i]
        item = self._read_ahead(i)
        if isinstance(item, _Failed):
            raise SampleError(item.message, index=i)
        if item is None:
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
    if type(data).__name__ in ("DataFrame", "Series") and any(
            dt.kind not in "biufc" for dt in (data.dtypes if hasattr(data, "columns") else [data.dtype])):
        return None  # a table describing the samples (paths, names), not the samples themselves
    if isinstance(data, np.ndarray) and data.dtype.kind in "OUS":
        return None  # file names or other text: not pixels or values to audit
    targets = getattr(base, "targets", None)
    return to_numpy(data), (to_numpy(targets) if targets is not None else None)


def torch_source(data, modality: str | None, audit_transform=None):
    """(Source, labels or None) for a torch Dataset or DataLoader."""
    parts = unwrap(data)
    if not parts or sum(len(idx) for _, idx in parts) == 0:
        raise InputError("the dataset is empty")
    found = {id(base): _file_list_attr(base) for base, _ in parts} if audit_transform is None else {}
    if found and all(f is not None for f in found.values()):
        paths, labels = [], []
        for base, idx in parts:
            files = found[id(base)][1]
            labs = _file_labels(base, found[id(base)])
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
    source = TorchDatasetSource(parts, modality, audit_transform, **_loader_settings(data))
    if not source.modality:
        source.modality = _modality_of_item(source, data)
    return source, None


def _modality_of_item(source, data) -> str:
    """The modality of a dataset read through ``__getitem__``, from its first sample."""
    item = source.load(0)
    if isinstance(item, str):
        return "text"
    arr = np.asarray(item)
    if arr.ndim in (2, 3):
        return "image"
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.number):
        return "series"
    raise InputError(f"cannot tell the modality of {type(getattr(data, 'dataset', data)).__name__}'s samples "
                     f"(the first is {type(item).__name__} of shape {arr.shape}); pass modality=")


def _loader_settings(data) -> dict:
    """How the user's DataLoader reads its data: its worker processes and batch size, so the audit
    reads the same way (a Dataset given alone is read in this process)."""
    from torch.utils.data import DataLoader

    if not isinstance(data, DataLoader) or not data.num_workers:
        return {}
    options = {k: getattr(data, k) for k in ("multiprocessing_context", "worker_init_fn", "prefetch_factor")
               if getattr(data, k, None) is not None}
    return {"num_workers": int(data.num_workers), "batch_size": data.batch_size, "loader_options": options}
