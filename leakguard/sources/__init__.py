"""Adapters from what users hold (arrays, frames, files, tensors, YOLO datasets) to Sources."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import MODALITIES, FileSource, SequenceSource, Source, TabularSource
from .readers import (
    READERS, TABLE_EXTENSIONS, canonical_audio, canonical_floats, canonical_image, canonical_text,
    modality_of_path, pil_to_array,
)

__all__ = [
    "MODALITIES", "Source", "SequenceSource", "FileSource", "TabularSource", "to_source",
    "files_in_folder", "read_table",
]


def files_in_folder(folder: Path) -> tuple[list[Path], list[dict]]:
    """The files under ``folder`` (recursive, sorted) with a known extension, and the others."""
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    known, unknown = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.startswith("."):
            continue
        (known if modality_of_path(path) else unknown).append(path)
    skipped = [{"index": None, "file": str(p), "reason": f"unknown extension {p.suffix or '(none)'!r}"}
               for p in unknown if p.suffix.lower() not in {".cache", ".npy", ".json", ".yaml", ".yml"}]
    return known, skipped


def read_table(path: Path):
    """A CSV, TSV, Parquet or Feather file as a DataFrame."""
    import pandas as pd

    ext = path.suffix.lower()
    try:
        if ext in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if ext == ".feather":
            return pd.read_feather(path)
        return pd.read_csv(path, sep="\t" if ext == ".tsv" else ",")
    except Exception as err:  # noqa: BLE001
        raise InputError(f"cannot read table {path}: {err}") from err


def _is_pil(x) -> bool:
    return type(x).__module__.startswith("PIL.") and hasattr(x, "mode")


def _paths_source(paths: Sequence[Path], modality: str | None, split: str) -> Source:
    # Path(Path) parses the path again (pathlib): 2 of 3 conversions per audit were of Path objects
    paths = [p if isinstance(p, Path) else Path(p) for p in paths]
    by_mod: dict[str, list[Path]] = {}
    skipped = []
    for i, p in enumerate(paths):
        mod = modality_of_path(p)
        if mod is None:
            skipped.append({"index": i, "file": str(p), "reason": f"unknown extension {p.suffix or '(none)'!r}"})
        else:
            by_mod.setdefault(mod, []).append(p)
    if modality is None:
        if not by_mod:
            raise InputError(f"split {split!r}: none of its {len(paths)} files has an image, audio or "
                             f"text extension (first: {paths[0] if paths else 'none'})")
        if len(by_mod) > 1:
            counts = ", ".join(f"{len(v)} {k}" for k, v in by_mod.items())
            raise InputError(f"split {split!r} mixes file kinds ({counts}); pass modality= to choose one")
        modality = next(iter(by_mod))
    if modality not in READERS:
        raise InputError(f"split {split!r}: files cannot be read as {modality!r}")
    keep = [p for p in paths if modality_of_path(p) == modality]
    skipped += [{"index": i, "file": str(p), "reason": f"not a {modality} file"}
                for i, p in enumerate(paths) if modality_of_path(p) not in (None, modality)]
    return FileSource(keep, modality, READERS[modality], skipped=skipped)


def infer_array_modality(arr: np.ndarray) -> str | None:
    """image for (N, H, W) and (N, H, W, C<=4), tabular for (N, F); None when unsure."""
    if arr.ndim == 2:
        return "tabular"
    if arr.ndim == 3 and min(arr.shape[1:]) >= 4:
        return "image"
    if arr.ndim == 4 and (arr.shape[3] in (1, 3, 4) or arr.shape[1] in (1, 3, 4)):
        return "image"
    return None


def to_source(data, modality: str | None, split: str, *, audit_transform=None,
              sample_rate: int | None = None, text_columns=None):
    """(Source, labels found in the data or None) for one split's data."""
    import pandas as pd

    if modality is not None and modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    if isinstance(data, (str, os.PathLike)) and not isinstance(data, Path):
        data = Path(data)
    if isinstance(data, Path):
        if data.is_dir():
            files, skipped = files_in_folder(data)
            if not files:
                raise InputError(f"split {split!r}: folder {data} holds no image, audio or text files")
            src = _paths_source(files, modality, split)
            src.pre_skipped = skipped + src.pre_skipped
            return src, None
        if data.suffix.lower() in TABLE_EXTENSIONS:
            return to_source(read_table(data), modality, split)
        if data.suffix.lower() in (".yaml", ".yml"):
            raise InputError(f"split {split!r}: for a YOLO data.yaml use lg.from_yolo({str(data)!r})")
        if not data.exists():
            raise InputError(f"split {split!r}: no such file or folder: {data}")
        return _paths_source([data], modality, split), None
    if isinstance(data, pd.DataFrame):
        if modality not in (None, "tabular"):
            raise InputError(f"split {split!r}: a DataFrame is audited as tabular data, not {modality!r}")
        return TabularSource(data), None
    if isinstance(data, np.ndarray):
        mod = modality or infer_array_modality(data)
        if mod is None:
            raise InputError(f"split {split!r}: cannot tell the modality of an array of shape {data.shape}; "
                             f"pass modality= ('image', 'tabular', 'audio', 'series')")
        if mod == "tabular":
            if data.ndim != 2:
                raise InputError(f"split {split!r}: tabular data must be 2-D, got shape {data.shape}")
            return TabularSource(pd.DataFrame(data, columns=[f"x{i}" for i in range(data.shape[1])])), None
        if mod == "image" and data.ndim == 4 and data.shape[1] in (1, 3, 4) and data.shape[3] not in (1, 3, 4):
            data = np.transpose(data, (0, 2, 3, 1))  # NCHW -> NHWC
        return SequenceSource(data, mod, sample_rate=sample_rate), None
    from .torch import is_torch_data, torch_source

    if is_torch_data(data):
        return torch_source(data, modality, audit_transform)
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            return SequenceSource([], modality or "tabular"), None
        first = data[0]
        if isinstance(first, (Path, os.PathLike)) or (isinstance(first, str) and modality not in (None, "text")
                                                        and modality_of_path(Path(first))):
            return _paths_source([Path(p) for p in data], modality, split), None
        if isinstance(first, str):
            if modality not in (None, "text"):
                raise InputError(f"split {split!r}: a list of strings is text, not {modality!r}")
            return SequenceSource(list(data), "text"), None
        if _is_pil(first):
            return SequenceSource(list(data), "image", convert=pil_to_array), None
        if isinstance(first, np.ndarray) or hasattr(first, "detach"):
            from .torch import to_numpy

            items = [to_numpy(x) for x in data]
            mod = modality
            if mod is None:
                ndims = {x.ndim for x in items}
                if ndims == {1}:
                    mod = "series"
                elif ndims <= {2, 3}:
                    mod = "image"
                else:
                    raise InputError(f"split {split!r}: cannot tell the modality of arrays with "
                                     f"{sorted(ndims)} dimensions; pass modality=")
            return SequenceSource(items, mod, sample_rate=sample_rate), None
        if isinstance(first, tuple) and len(first) == 2 and isinstance(first[0], np.ndarray):
            return SequenceSource(list(data), "audio"), None
        raise InputError(f"split {split!r}: cannot audit a list of {type(first).__name__}")
    raise InputError(f"split {split!r}: cannot audit data of type {type(data).__name__}; see the "
                     "list of supported sources in lg.audit's docstring")


def canonical_item(item, modality: str):
    """The canonical form that signatures are computed on."""
    if modality == "image":
        return canonical_image(item)
    if modality == "text":
        if not isinstance(item, str):
            raise InputError(f"expected text, got {type(item).__name__}")
        return canonical_text(item)
    if modality == "audio":
        return canonical_audio(item)
    if modality == "series":
        return canonical_floats(np.asarray(item).reshape(-1))
    return item
