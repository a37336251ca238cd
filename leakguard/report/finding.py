"""Finding: one kind of leakage between splits, with its evidence."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SEVERITIES = ("info", "warning", "critical")
PAIR_COLUMNS = ["split_a", "index_a", "split_b", "index_b", "check", "score"]


def empty_pairs() -> pd.DataFrame:
    return pd.DataFrame({"split_a": pd.Series(dtype=str), "index_a": pd.Series(dtype=np.int64),
                         "split_b": pd.Series(dtype=str), "index_b": pd.Series(dtype=np.int64),
                         "check": pd.Series(dtype=str), "score": pd.Series(dtype=np.float64)})


def make_pairs(split_a: str, index_a, split_b: str, index_b, check: str, score=1.0) -> pd.DataFrame:
    """A pairs DataFrame (columns ``PAIR_COLUMNS``); split_a is the training (or earlier) split."""
    index_a = np.asarray(index_a, dtype=np.int64)
    index_b = np.asarray(index_b, dtype=np.int64)
    score = np.broadcast_to(np.asarray(score, dtype=np.float64), index_a.shape)
    return pd.DataFrame({"split_a": split_a, "index_a": index_a, "split_b": split_b,
                         "index_b": index_b, "check": check, "score": score})[PAIR_COLUMNS]


@dataclass
class Finding:
    """One kind of leakage found between splits (or inside one), in plain words and evidence.

    ``count`` is the number of evaluation samples affected. ``pairs`` links samples
    (``split_a``/``index_a`` is the training side). ``indices`` lists affected samples per split
    for checks that have no pairs (time ranges, say). ``extra`` holds check-specific,
    JSON-serialisable evidence (groups, time gaps, clusters).
    """

    check: str
    severity: str
    title: str
    detail: str = ""
    remedy: str = ""
    splits: tuple[str, ...] = ()
    count: int = 0
    pairs: pd.DataFrame | None = None
    features: list[str] | None = None
    indices: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        self.splits = tuple(self.splits)
        self.count = int(self.count)

    @property
    def cross_split(self) -> bool:
        return len(set(self.splits)) > 1

    def to_dict(self) -> dict:
        return {
            "check": self.check, "severity": self.severity, "title": self.title,
            "detail": self.detail, "remedy": self.remedy, "splits": list(self.splits),
            "count": self.count,
            "pairs": None if self.pairs is None else {
                c: self.pairs[c].tolist() for c in PAIR_COLUMNS},
            "features": self.features,
            "indices": {k: np.asarray(v).astype(int).tolist() for k, v in self.indices.items()},
            "extra": _jsonable(self.extra),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Finding":
        pairs = d.get("pairs")
        if pairs is not None:
            pairs = pd.DataFrame(pairs, columns=PAIR_COLUMNS).astype(
                {"index_a": np.int64, "index_b": np.int64, "score": np.float64})
        return cls(check=d["check"], severity=d["severity"], title=d["title"],
                   detail=d.get("detail", ""), remedy=d.get("remedy", ""),
                   splits=tuple(d.get("splits", ())), count=d.get("count", 0), pairs=pairs,
                   features=d.get("features"),
                   indices={k: np.asarray(v, dtype=np.int64) for k, v in d.get("indices", {}).items()},
                   extra=d.get("extra", {}))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, pd.DataFrame):
        return _jsonable(obj.to_dict(orient="list"))
    return obj
