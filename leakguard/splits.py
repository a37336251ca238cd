"""Named splits with their labels, groups and timestamps; modality inference across splits."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .sources import Source, TabularSource, to_source


@dataclass
class Split:
    """One named split: its samples and optional per-sample labels, groups and timestamps."""

    name: str
    source: Source
    labels: np.ndarray | None = None
    groups: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    role: str = "eval"  # "train" or "eval"
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.source)

    @property
    def modality(self) -> str:
        return self.source.modality

    def name_of(self, i: int) -> str | None:
        return self.source.name(int(i))


class Splits(dict):
    """An ordered mapping of split name to :class:`Split`, with the training split's name."""

    def __init__(self, splits: Mapping[str, Split], train: str):
        super().__init__(splits)
        self.train = train

    @property
    def modality(self) -> str:
        return self[self.train].modality

    @property
    def eval_names(self) -> list[str]:
        return [n for n in self if n != self.train]

    @property
    def has_labels(self) -> bool:
        return all(s.labels is not None for s in self.values())

    @property
    def has_groups(self) -> bool:
        return any(s.groups is not None for s in self.values())

    @property
    def has_timestamps(self) -> bool:
        return any(s.timestamps is not None for s in self.values())


def _per_split(value, name: str, split_data, kind: str, length: int):
    """Resolve labels/groups/timestamps given as a mapping, a column name, or a callable."""
    if value is None:
        return None, None
    import pandas as pd

    if isinstance(value, str):
        if isinstance(split_data, pd.DataFrame):
            if value not in split_data.columns:
                raise InputError(f"split {name!r}: no column {value!r} for {kind}; columns are "
                                 f"{list(split_data.columns)[:20]}")
            return np.asarray(split_data[value].to_numpy()), value
        raise InputError(f"{kind}={value!r} names a column, but split {name!r} is not a DataFrame")
    if isinstance(value, Mapping):
        if name not in value:
            return None, None
        seq = value[name]
    elif callable(value):
        seq = value(name, split_data)
    else:
        raise InputError(f"{kind} must be a mapping of split name to sequence, a column name, "
                         f"or a callable; got {type(value).__name__}")
    if seq is None:
        return None, None
    if hasattr(seq, "detach"):
        seq = seq.detach().cpu().numpy()
    if hasattr(seq, "to_numpy"):  # a pandas Series
        seq = seq.to_numpy()
    arr = seq if isinstance(seq, np.ndarray) else as_object_array(seq) if is_ragged(seq) else np.asarray(seq)
    if arr.ndim == 0 or len(arr) != length:
        got = "a scalar" if arr.ndim == 0 else f"{len(arr)} values"
        raise InputError(f"split {name!r}: {kind} has {got} but the split has {length} samples")
    return arr, None


def is_ragged(seq) -> bool:
    """True for per-sample lists (multi-label classes, say) that numpy cannot stack."""
    return len(seq) > 0 and any(isinstance(v, (list, tuple, set, np.ndarray)) for v in seq[:100])


def as_object_array(seq) -> np.ndarray:
    """A 1-D object array holding each element as it is (lists stay lists)."""
    arr = np.empty(len(seq), dtype=object)
    for i, v in enumerate(seq):
        arr[i] = v
    return arr


def build_splits(data: Mapping, train: str = "train", labels=None, groups=None, timestamps=None,
                 modality: str | None = None, audit_transform=None, sample_rate: int | None = None) -> Splits:
    """Turn the user's mapping of split name to data into :class:`Splits`."""
    if not isinstance(data, Mapping) or not data:
        raise InputError("audit() takes a mapping of split name to data, e.g. {'train': X_train, 'val': X_val}")
    if train not in data:
        raise InputError(f"the training split {train!r} is not among the splits {list(data)}")
    if len(data) < 2:
        raise InputError("audit() needs the training split and at least one evaluation split")
    built: dict[str, Split] = {}
    for name, split_data in data.items():
        name = str(name)
        split_data = _read_if_table(split_data)
        source, found_labels = to_source(split_data, modality, name, audit_transform=audit_transform,
                                         sample_rate=sample_rate)
        n = len(source)
        labs, lab_col = _per_split(labels, name, split_data, "labels", n)
        grps, grp_col = _per_split(groups, name, split_data, "groups", n)
        times, time_col = _per_split(timestamps, name, split_data, "timestamps", n)
        if isinstance(source, TabularSource):
            drop = [c for c in (lab_col, grp_col, time_col) if c is not None]
            if drop:
                source = TabularSource(source.frame.drop(columns=drop))
        if labs is None and found_labels is not None and labels is None:
            labs = found_labels
        if times is not None:
            times = _as_times(times, name)
        built[name] = Split(name, source, labs, grps, times, role="train" if name == train else "eval")
    mods = {s.modality for s in built.values() if len(s)}
    if len(mods) > 1:
        desc = ", ".join(f"{n}: {s.modality}" for n, s in built.items())
        raise InputError(f"the splits hold different kinds of data ({desc}); audit splits of one modality")
    if len(built[train]) == 0:
        raise InputError(f"the training split {train!r} is empty")
    # empty evaluation splits take the training split's modality, so checks apply uniformly
    for s in built.values():
        if len(s) == 0:
            s.source.modality = built[train].modality
    return Splits(built, train)


def _read_if_table(data):
    """A CSV / Parquet / Feather path becomes its DataFrame, so label columns can be named."""
    import os
    from pathlib import Path

    from .sources import read_table
    from .sources.readers import TABLE_EXTENSIONS

    if isinstance(data, (str, os.PathLike)) and Path(data).suffix.lower() in TABLE_EXTENSIONS \
            and Path(data).is_file():
        return read_table(Path(data))
    return data


def _as_times(values: np.ndarray, split: str) -> np.ndarray:
    """Timestamps as float seconds (datetimes) or plain floats (frame numbers, steps)."""
    import pandas as pd

    if np.issubdtype(values.dtype, np.number):
        return values.astype(np.float64)
    try:
        ts = pd.to_datetime(pd.Series(values), utc=True, format="mixed")
    except (ValueError, TypeError) as err:
        raise InputError(f"split {split!r}: timestamps cannot be read as dates or numbers: {err}") from err
    # pandas 3 may keep microseconds: measure from the epoch instead of trusting the int64 unit
    out = ((ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan).copy()
    return out
