"""Target leakage: features and image regions that give the label away.

Before training, :class:`~leakguard.explain.screening.FeatureScreen` scores each feature alone
(the ``target_leakage`` check of :func:`leakguard.audit`). After training,
:func:`find_target_leakage` explains the model with SHAP, clusters the per-sample explanations
with HDBSCAN, and flags what a person should look at.

>>> import leakguard as lg
>>> tl = lg.find_target_leakage(model, X_val, y_val)     # doctest: +SKIP
>>> tl.features.head(), [c["size"] for c in tl.clusters]  # doctest: +SKIP
"""
from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "find_target_leakage": ("leakguard.explain.result", "find_target_leakage"),
    "TargetLeakageResult": ("leakguard.explain.result", "TargetLeakageResult"),
    "FeatureScreen": ("leakguard.explain.screening", "FeatureScreen"),
    "explain_model": ("leakguard.explain.attribution", "explain_model"),
    "cluster_explanations": ("leakguard.explain.clustering", "cluster_explanations"),
    "explain_yolo_classifier": ("leakguard.explain.yolo", "explain_yolo_classifier"),
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr("leakguard.explain", _LAZY, globals())
