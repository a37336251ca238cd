"""leakguard: find data leakage in machine-learning datasets and models.

>>> import leakguard as lg
>>> report = lg.audit({"train": X_train, "val": X_val})   # doctest: +SKIP
>>> report.passed, report.leaked("val")                   # doctest: +SKIP

The public names load lazily, so ``import leakguard`` stays fast and imports no training framework.
"""
from __future__ import annotations

from ._lazy import lazy_getattr
from ._version import __version__

_LAZY = {
    "audit": ("leakguard.auditing", "audit"),
    "AuditConfig": ("leakguard.config", "AuditConfig"),
    "Report": ("leakguard.report", "Report"),
    "Finding": ("leakguard.report", "Finding"),
    "find_target_leakage": ("leakguard.explain", "find_target_leakage"),
    "TargetLeakageResult": ("leakguard.explain", "TargetLeakageResult"),
    "resplit": ("leakguard.resplitting", "resplit"),
    "from_yolo": ("leakguard.sources.yolo", "from_yolo"),
    "available_checks": ("leakguard.checks", "available_checks"),
    "register_check": ("leakguard.checks", "register_check"),
    "Check": ("leakguard.checks", "Check"),
    "LeakGuardError": ("leakguard.errors", "LeakGuardError"),
    "InputError": ("leakguard.errors", "InputError"),
    "SampleError": ("leakguard.errors", "SampleError"),
    "LeakageDetected": ("leakguard.errors", "LeakageDetected"),
}

__all__ = ["__version__", *_LAZY]


__getattr__ = lazy_getattr("leakguard", _LAZY, globals())


def __dir__():
    return sorted(__all__)
