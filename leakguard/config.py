"""AuditConfig: the knobs of an audit, in one place."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class AuditConfig:
    """Settings of an audit. Every field has a working default.

    Parameters
    ----------
    thresholds : per-check similarity thresholds overriding the calibrated ones,
        e.g. ``{"augmented_duplicate": 0.9}``.
    fpr : false-positive rate that data-calibrated thresholds aim for.
    embedder : callable ``(list of canonical items) -> (n, d) array`` for semantic duplicates,
        or the name of a built-in embedder; None uses the default that needs no download.
    engine : ``"local"`` or ``"spark"``.
    spark : a SparkSession for ``engine="spark"`` (None: get or create one).
    cache_dir : folder of the on-disk signature cache; None disables it.
    progress : True / False to force progress bars on or off; None shows them on a terminal.
    max_examples : pairs per finding shown with pictures or snippets in the report.
    sample_rate : sample rate of audio given as bare arrays.
    audit_transform : how to read torch datasets without their random augmentation
        (see ``leakguard.sources.torch``).
    severity : per-check severity overrides, e.g. ``{"semantic_duplicate": "warning"}``.
    check_options : per-check keyword options, e.g. ``{"group_overlap": {"infer": False}}``.
    random_state : seed for everything sampled.
    workers : threads that read and decode files (None: a few, by the number of cores).
    recalibrate_growth : with ``cache_dir``, a training split that only *grew* since an earlier
        audit (every earlier training sample still there) by at most this share of its earlier size
        keeps that audit's calibration (thresholds, nulls, the text TF-IDF fit) instead of
        calibrating again; new training samples are still searched. 0 calibrates whenever the
        training split changed (findings identical with and without the cache). The report says
        when a calibration was kept: ``report.meta["cache"]["calibration"]``.

    >>> cfg = AuditConfig(cache_dir=".leakguard-cache", progress=False)
    """

    thresholds: dict[str, float] = field(default_factory=dict)
    fpr: float = 1e-3
    embedder: Callable | str | None = None
    engine: str = "local"
    spark: Any = None
    cache_dir: str | Path | None = None
    progress: bool | None = None
    max_examples: int = 12
    sample_rate: int | None = None
    audit_transform: Callable | None = None
    severity: dict[str, str] = field(default_factory=dict)
    check_options: dict[str, dict] = field(default_factory=dict)
    random_state: int = 0
    workers: int | None = None
    recalibrate_growth: float = 0.05

    def __post_init__(self):
        if self.engine not in ("local", "spark"):
            raise ValueError(f"engine must be 'local' or 'spark', got {self.engine!r}")
        if not 0 < self.fpr < 1:
            raise ValueError(f"fpr must be between 0 and 1, got {self.fpr}")
        if not 0 <= self.recalibrate_growth < float("inf"):
            raise ValueError(f"recalibrate_growth must be 0 or more, got {self.recalibrate_growth}")

    def options(self, check: str) -> dict:
        return dict(self.check_options.get(check, {}))

    def to_dict(self) -> dict:
        return {"thresholds": dict(self.thresholds), "fpr": self.fpr, "engine": self.engine,
                # a name: a function's, the given string, else the class of an embedder object (its
                # attributes may not be JSON, e.g. a fitted model)
                "embedder": (None if not self.embedder else self.embedder if isinstance(self.embedder, str)
                             else getattr(self.embedder, "__name__", type(self.embedder).__name__)),
                "cache_dir": str(self.cache_dir) if self.cache_dir else None,
                "max_examples": self.max_examples, "random_state": self.random_state,
                "recalibrate_growth": self.recalibrate_growth}
