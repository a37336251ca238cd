"""target_leakage (before training): features of the training split that give the label away.

Every feature column is scored alone against the label, cross-validated
(:class:`leakguard.explain.screening.FeatureScreen`); near-perfect single-feature predictors,
identifiers that track the label, deterministic functions of the label (or of the label and one
other column), text that names the outcome and tell-tale missingness become findings, one per
feature, most serious first. After training, :func:`leakguard.find_target_leakage` looks at what
the model actually uses.

Options (``AuditConfig(check_options={"target_leakage": {...}})``) are FeatureScreen's
parameters, e.g. ``{"near_perfect": 0.9, "cv": 3}``.
"""
from __future__ import annotations

from ..report import Finding
from ..sources import TabularSource
from .base import AuditContext, Check, register_check

REMEDY = {
    "critical": ("Find out when and how this column is filled in. If it is recorded after the outcome "
                 "(or derived from it), drop it from the features; if it is legitimately known at "
                 "prediction time, keep it and note why it is so strong."),
    "warning": ("Check how this column is produced: identifiers, record dates and 'was it measured' "
                "patterns often encode how the data was collected rather than the outcome. Drop it or "
                "re-derive it from information available at prediction time."),
}


@register_check
class TargetLeakage(Check):
    """Features that predict the label suspiciously well on their own (tabular splits with labels)."""

    name = "target_leakage"
    order = 70
    description = "features that give away the label"

    def applies(self, splits) -> bool:
        train = splits[splits.train]
        return splits.modality == "tabular" and train.labels is not None and isinstance(train.source, TabularSource)

    def run(self, ctx: AuditContext) -> list[Finding]:
        from ..explain.screening import FeatureScreen

        split = ctx.splits[ctx.train]
        options = {"random_state": ctx.config.random_state, **ctx.config.options(self.name)}
        screen = FeatureScreen(**options).fit(split.source.frame, split.labels, progress=ctx.config.progress)
        ctx.shared["target_screen"] = screen.table_
        findings = []
        table = screen.table_
        for rank, row in enumerate(table.itertuples(index=False), start=1):
            if not row.suspicious:
                continue
            sev = ctx.severity(self.name, row.severity)
            column = row.feature.removesuffix(" (missing)") if row.kind == "missingness" else row.feature
            title = {
                "critical": f"Feature {row.feature!r} gives the label away",
                "warning": f"Feature {row.feature!r} may leak the label",
            }.get(row.severity, f"Feature {row.feature!r} is suspicious")
            findings.append(Finding(
                check=self.name, severity=sev, title=title,
                detail=(f"In {ctx.train!r} ({screen.n_rows_} rows), {column!r} ({row.kind}): {row.reason}. "
                        f"Ranked {rank} of {len(table)} features screened alone."),
                remedy=REMEDY.get(row.severity, REMEDY["warning"]),
                splits=(ctx.train,), count=0, features=[column],
                extra={"kind": row.kind, "skill": _num(row.skill), "auc": _num(row.auc), "rank": rank,
                       "reason": row.reason, "rule": row.detail or row.severity, "task": screen.task_}))
        return findings


def _num(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if x == x else None
