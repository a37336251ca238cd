"""find_target_leakage(): explain a trained model, cluster its explanations, flag the shortcuts."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from ..report import Finding
from .attribution import Attribution, as_array, explain_model, predict_classes
from .clustering import (attribution_maps, cluster_explanations, explanation_vectors, pooled_maps,
                         region_name, summarise_clusters, window_scan)

CHECK = "target_leakage"


class TargetLeakageResult:
    """What :func:`find_target_leakage` found.

    features : DataFrame ranked by attribution share: feature, share, suspicious, reason
        (image models: the cells of a coarse grid over the image).
    clusters : list of dicts: id, members (indices into X), size, top_features, label_purity,
        majority_label, mean_attribution (shaped like one sample), exemplars, suspicious, reason.
    findings : list of :class:`leakguard.Finding` with check "target_leakage".
    attribution : the per-sample attributions (:class:`~leakguard.explain.attribution.Attribution`).
    cluster_labels : HDBSCAN label of each explained sample (-1: noise), aligned with
        ``attribution.indices``.

    >>> tl = lg.find_target_leakage(model, X_val, y_val)        # doctest: +SKIP
    >>> tl.features.head(); tl.log_to_mlflow()                  # doctest: +SKIP
    """

    def __init__(self, features: pd.DataFrame, clusters: list[dict], findings: list[Finding],
                 attribution: Attribution, cluster_labels: np.ndarray, y=None, meta: dict | None = None):
        self.features = features
        self.clusters = clusters
        self.findings = findings
        self.attribution = attribution
        self.cluster_labels = cluster_labels
        self.y = y
        self.meta = meta or {}

    @property
    def suspicious(self) -> bool:
        return bool(self.findings)

    @property
    def suspicious_features(self) -> list[str]:
        return self.features.loc[self.features["suspicious"], "feature"].tolist()

    def __repr__(self) -> str:
        n_s = sum(c["suspicious"] for c in self.clusters)
        return (f"<leakguard.TargetLeakageResult {self.attribution.modality} method={self.attribution.method} "
                f"samples={len(self.attribution.indices)} clusters={len(self.clusters)} "
                f"suspicious_clusters={n_s} suspicious_features={self.suspicious_features[:5]}>")

    def summary(self) -> dict[str, float]:
        """Flat figures (logged to MLflow with the report's)."""
        att = self.attribution
        return {
            "leakguard/target_leakage/explained": float(len(att.indices)),
            "leakguard/target_leakage/clusters": float(len(self.clusters)),
            "leakguard/target_leakage/suspicious_clusters": float(sum(c["suspicious"] for c in self.clusters)),
            "leakguard/target_leakage/suspicious_features": float(len(self.suspicious_features)),
            "leakguard/target_leakage/top_share": float(self.features["share"].max()) if len(self.features) else 0.0,
            "leakguard/target_leakage/seconds": float(att.seconds),
        }

    def pictures(self, max_clusters: int = 12) -> dict:
        """{name: PIL image}: "shap_summary" and "cluster_<id>" (suspicious clusters first)."""
        from .pictures import cluster_picture, shap_summary_picture

        out = {"shap_summary": shap_summary_picture(self.attribution)}
        ordered = sorted(self.clusters, key=lambda c: (not c["suspicious"], -c["size"]))
        for c in ordered[:max_clusters]:
            out[f"cluster_{c['id']}"] = cluster_picture(self.attribution, c, self.y)
        return out

    def to_report(self):
        """A :class:`leakguard.Report` holding the findings (the form MLflow logging takes)."""
        from ..report import Report

        att = self.attribution
        meta = {"target_leakage": {"method": att.method, "modality": att.modality, "device": att.device,
                                   "explained": int(len(att.indices)), "requested": int(att.requested),
                                   "seconds": round(att.seconds, 3), "notes": att.notes,
                                   "clusters": [_cluster_json(c) for c in self.clusters],
                                   "features": self.features.head(50).to_dict(orient="list"),
                                   **self.meta}}
        return Report(self.findings, splits={}, train="train", meta=meta)

    def log_to_mlflow(self, run_id: str | None = None, client=None, prefix: str = "leakguard/explain",
                      **kwargs) -> dict:
        """Log the findings, figures and pictures (SHAP summary, cluster grids) into an MLflow run.

        The report is saved locally first (see :func:`leakguard.tracking.log_report`); a tracking
        failure warns and never raises.
        """
        from ..tracking import log_report, resolve_run_id

        from mlflow.tracking import MlflowClient

        run_id = resolve_run_id(run_id)
        client = client or MlflowClient()
        try:  # the run may already carry an audit's verdict; explaining must not soften it
            before = client.get_run(run_id).data.tags.get("leakguard.verdict")
        except Exception:  # noqa: BLE001 - unreachable server: log_report saves locally and warns
            before = None
        pictures = self.pictures()
        kwargs.setdefault("datasets", False)
        result = log_report(self.to_report(), run_id=run_id, client=client, pictures=pictures,
                            prefix=prefix, **kwargs)
        try:
            import time

            from mlflow.entities import Metric, RunTag

            now = int(time.time() * 1000)
            metrics = [Metric(k, v, now, 0) for k, v in self.summary().items()]
            rank = {"pass": 0, "warn": 1, "fail": 2}
            verdict = self.to_report().verdict
            tags = [RunTag("leakguard.verdict", max(before, verdict, key=lambda v: rank.get(v, 0)))] if before else []
            tags.append(RunTag("leakguard.explain.verdict", verdict))
            client.log_batch(run_id, metrics=metrics, tags=tags)
        except Exception as err:  # noqa: BLE001 - figures are secondary; the report is already saved
            import warnings

            warnings.warn(f"leakguard could not log explanation figures to run {run_id}: {err}",
                          RuntimeWarning, stacklevel=2)
        return result


def _cluster_json(c: dict) -> dict:
    out = {k: v for k, v in c.items() if not k.startswith("_") and k != "mean_attribution"}
    mean = np.asarray(c["mean_attribution"])
    if mean.size <= 4096:  # maps of large images stay out of the JSON; the pictures show them
        out["mean_attribution"] = mean.round(6).tolist()
    return out


def find_target_leakage(model, X, y=None, feature_names=None, background=None, max_samples: int = 1000, *,
                        time_budget: float | None = 300.0, method: str = "auto",
                        min_cluster_size: int | None = None, dominant_share: float = 0.5,
                        cluster_share: float = 0.5, purity: float = 0.95, region_area: float = 1 / 16,
                        concentration: float = 0.25, lift: float = 12.0, allowed_features=None, screen: bool = True,
                        grid: int = 8, intervene: bool = True, progress: bool | None = None,
                        random_state: int = 0) -> TargetLeakageResult:
    """Explain ``model`` on ``X`` with SHAP, cluster the explanations with HDBSCAN, flag shortcuts.

    Parameters
    ----------
    model : a fitted scikit-learn estimator or pipeline, a LightGBM / XGBoost model, a torch
        ``nn.Module`` (rows or images ``(N, C, H, W)``; explained on a deep copy), or any callable
        returning scores.
    X : rows (array, DataFrame, tensor) or images; the samples to explain (validation data).
    y : labels of X (optional): label purity of clusters, and single-feature screening of rows.
    feature_names : names of X's columns (DataFrame columns are used when omitted).
    background : reference samples for the explainers (default: a sample of X).
    max_samples : samples explained at most (stratified by y when given).
    time_budget : seconds; explaining stops after the batch that crosses it.
    dominant_share : share of all attribution above which one feature "dominates".
    cluster_share : share of a pure cluster's attribution one feature must hold to explain it.
    purity : label purity above which a cluster is "pure".
    region_area, concentration, lift : an image cluster is flagged (the "R" marker case) when a
        window covering at most ``region_area`` of the image holds at least ``concentration`` of
        its attribution mass, ``lift`` times the window's share of the area, consistently across
        the cluster, where the other images have (almost) no content: away from the object.
    allowed_features : features known to carry the label legitimately; never flagged.
    screen : with y and rows, also score each feature alone (cross-validated) as evidence.
    intervene : images: test a flagged region on the model itself: remove it from the cluster's
        images (filled with each image's border level) and paste it onto the other images, and
        count the predictions that change (``cluster["region"]["kept_without_region"]``,
        ``["pasted_flip"]``). Two more passes of the model over the explained images.

    Example
    -------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> model = RandomForestClassifier().fit(X_train, y_train)         # doctest: +SKIP
    >>> tl = lg.find_target_leakage(model, X_val, y_val)               # doctest: +SKIP
    >>> tl.features.head(3)                                            # doctest: +SKIP
    """
    arr_len = len(X)
    y_arr = None
    if y is not None:
        y_arr = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
        if len(y_arr) != arr_len:
            raise InputError(f"y has {len(y_arr)} labels but X has {arr_len} samples")
    att = explain_model(model, X, y=y_arr, feature_names=feature_names, background=background,
                        max_samples=max_samples, time_budget=time_budget, method=method,
                        progress=progress, random_state=random_state)
    allowed = {str(f) for f in (allowed_features or [])}
    vectors = explanation_vectors(att.values, att.modality, grid)
    labels, strength = cluster_explanations(vectors, min_cluster_size, random_state)
    clusters = summarise_clusters(att, labels, strength, y_arr, grid)
    meta = {"noise": int((labels == -1).sum())}
    if att.modality == "tabular":
        table = _screen_table(X, y_arr, att) if (screen and y_arr is not None) else None
        features, findings = _tabular_verdicts(att, clusters, table, allowed, dominant_share, cluster_share, purity)
    else:
        features, findings = _image_verdicts(att, clusters, grid, region_area, concentration, purity, lift,
                                             model=model, intervene=intervene)
    for c in clusters:
        c.pop("_positions", None)
    return TargetLeakageResult(features, clusters, findings, att, labels, y=y_arr, meta=meta)


# ---------------------------------------------------------------------- tabular
def _screen_table(X, y, att: Attribution):
    """Single-feature screening of the explained rows, when its columns are the model's features."""
    from .screening import FeatureScreen

    arr, names = as_array(X) if not isinstance(X, pd.DataFrame) else (None, [str(c) for c in X.columns])
    frame = X.iloc[att.indices] if isinstance(X, pd.DataFrame) else pd.DataFrame(
        arr[att.indices], columns=att.feature_names if arr.shape[1] == len(att.feature_names) else None)
    frame = frame.rename(columns=str)
    if list(frame.columns) != list(att.feature_names):
        return None  # a pipeline changed the columns; attribution names no longer match
    try:
        return FeatureScreen(cv=3).fit(frame, y[att.indices]).table_.set_index("feature")
    except Exception:  # noqa: BLE001 - screening is supporting evidence only
        return None


def _tabular_verdicts(att, clusters, table, allowed, dominant_share, cluster_share, purity, min_use=0.1):
    """Feature verdicts from attribution shares (and single-feature screening when y is given),
    then cluster verdicts; one finding per suspicious feature, naming its clusters."""
    mag = np.abs(att.values).mean(0)
    share = mag / mag.sum() if mag.sum() > 0 else mag
    n_feat = len(share)
    rows, severity_of = [], {}
    for i in np.argsort(-share):
        name = att.feature_names[i]
        s = float(share[i])
        srow = table.loc[name] if table is not None and name in table.index else None
        alone = float(srow["skill"]) if srow is not None and pd.notna(srow["skill"]) else None
        screen_flag = bool(srow["suspicious"]) if srow is not None else False
        reason, severity = "", None
        if name in allowed:
            reason = "allowed to carry the label (allowed_features)"
        elif srow is not None and screen_flag and s >= min_use:
            severity = "critical" if (srow["severity"] == "critical" or s >= dominant_share) else "warning"
            reason = f"the model uses it ({s:.0%} of all attribution) and {srow['reason']}"
        elif s >= dominant_share and n_feat >= 3:
            if table is None:
                severity = "warning"
                reason = (f"holds {s:.0%} of all attribution: the model leans on this one feature; "
                          "check that it is known at prediction time")
            elif alone is not None and alone >= 0.9:
                severity = "critical"
                reason = f"holds {s:.0%} of all attribution and alone it predicts the label (skill {alone:.2f})"
            else:
                reason = (f"holds {s:.0%} of all attribution but alone predicts little"
                          + (f" (skill {alone:.2f})" if alone is not None else "")
                          + ": an interaction or a scaling issue, not a leak by itself")
        rows.append({"feature": name, "share": s, "suspicious": severity is not None, "reason": reason,
                     "alone_skill": alone})
        if severity:
            severity_of[name] = severity
    features = pd.DataFrame(rows, columns=["feature", "share", "suspicious", "reason", "alone_skill"])
    kinds = table["kind"].to_dict() if table is not None else {}
    by_feature: dict[str, list[dict]] = {}
    for c in clusters:
        if not c["top_features"]:
            continue
        top, top_share = c["top_features"][0], c["feature_shares"][0]
        # "a feature that should not carry the label": one flagged above, an identifier, or (with
        # nothing to compare against) one that decides nearly all of the cluster on its own
        shouldnt = (top in severity_of or kinds.get(top) == "identifier"
                    or (table is None and top_share >= max(cluster_share, 0.75)))
        if (c["label_purity"] >= purity and top_share >= cluster_share and top not in allowed
                and c["size"] >= 5 and shouldnt):
            c["suspicious"] = True
            c["reason"] = (f"{c['size']} samples, {c['label_purity']:.0%} of them label {c['majority_label']}, "
                           f"explained {top_share:.0%} by {top!r} alone")
            by_feature.setdefault(top, []).append(c)
    for name in by_feature:
        if name not in severity_of:
            severity_of[name] = "warning"
            features.loc[features.feature == name, ["suspicious", "reason"]] = [
                True, "explains pure clusters of samples on its own: " + "; ".join(c["reason"] for c in by_feature[name])]
    findings = []
    for name, severity in severity_of.items():
        row = features.loc[features.feature == name].iloc[0]
        cl = by_feature.get(name, [])
        cl_text = (f" It alone explains {len(cl)} pure explanation cluster(s) ({', '.join(c['reason'] for c in cl[:3])})."
                   if cl else "")
        findings.append(Finding(
            check=CHECK, severity=severity,
            title=(f"The model relies on {name!r}, which gives the label away" if severity == "critical"
                   else f"The model leans on {name!r}, which may leak the label"),
            detail=f"{name!r}: {row['reason']}.{cl_text} Explained {len(att.indices)} samples with {att.method} SHAP.",
            remedy=("Check when and how this feature is recorded; if it is known only after the outcome "
                    "(or derived from it, or encodes how rows were collected), drop it and retrain."),
            features=[name], count=int(sum(c["size"] for c in cl)),
            extra={"share": float(row["share"]), "alone_skill": row["alone_skill"], "method": att.method,
                   "clusters": [c["id"] for c in cl],
                   "members": sorted({m for c in cl for m in c["members"]})[:500]}))
    findings.sort(key=lambda f: f.severity != "critical")
    return features.reset_index(drop=True), findings


# ---------------------------------------------------------------------- images
def _image_verdicts(att, clusters, grid, region_area, concentration, purity, lift=12.0, model=None,
                    intervene=True):
    """Flag clusters whose attribution piles into one small region where other images have no content."""
    maps = attribution_maps(att.values)
    totals = maps.sum((1, 2), keepdims=True)
    unit = maps / np.where(totals > 0, totals, 1.0)  # each image's attribution mass sums to 1
    signed = np.asarray(att.values, dtype=np.float64)
    positive = np.clip(signed.sum(1) if signed.ndim == 4 else signed, 0, None)  # evidence *for* the prediction
    positive /= np.where(positive.sum((1, 2), keepdims=True) > 0, positive.sum((1, 2), keepdims=True), 1.0)
    n, h, w = unit.shape
    content, level = _content_masks(att.data, with_level=True)
    predicted = np.asarray(att.predicted)
    findings = []
    flagged_cells: dict[str, str] = {}
    for c in clusters:
        pos = c["_positions"]
        scan = window_scan(unit[pos].mean(0), region_area)
        # the heaviest window that is still dense; else the densest heavy one, else the largest
        heavy = [t for t in scan if t[0] >= concentration]
        dense = [t for t in heavy if t[0] / t[1] >= lift]
        share, area, (rs, cs) = max(dense, key=lambda t: t[0]) if dense else max(heavy, key=lambda t: t[0] / t[1]) if heavy else scan[-1]
        members = unit[pos][:, rs, cs].sum((1, 2))
        consistent = float(np.mean(members >= 0.5 * share))
        outside = np.setdiff1d(np.arange(n), pos)
        elsewhere = float(content[outside][:, rs, cs].mean()) if len(outside) else 1.0
        centre = ((rs.start + rs.stop) / 2 / h, (cs.start + cs.stop) / 2 / w)
        where = _where(centre)
        contrast, reference = _contrast_share(unit, pos, outside, predicted, rs, cs)
        c["region"] = {"rows": [int(rs.start), int(rs.stop)], "cols": [int(cs.start), int(cs.stop)],
                       "mass_share": float(share), "area_share": float(area), "lift": float(share / area),
                       "positive_share": float(positive[pos][:, rs, cs].sum((1, 2)).mean()),
                       "contrast_share": contrast, "contrast_reference": reference,
                       "consistency": consistent, "content_elsewhere": elsewhere, "where": where}
        if dense and consistent >= 0.7 and elsewhere <= 0.25:
            c["suspicious"] = True
            effect = ""
            if intervene and model is not None:
                c["region"].update(_region_interventions(model, att, pos, outside, rs, cs, level))
                effect = _intervention_text(c["region"])
            c["reason"] = (f"{share:.0%} of the attribution of these {c['size']} images "
                           f"({c['label_purity']:.0%} label {c['majority_label']}) falls in a region covering "
                           f"{area:.1%} of the image ({share / area:.0f} times its share of the area) at the {where}, "
                           f"and {contrast:.0%} of what sets their explanations apart from {reference} lies there; "
                           f"other images have content there only {elsewhere:.0%} of the time, so it is not where "
                           f"the object is; {consistent:.0%} of these images put at least half as much there{effect}")
            name = f"rows {rs.start}-{rs.stop - 1}, cols {cs.start}-{cs.stop - 1} ({where})"
            flagged_cells[name] = c["reason"]
            findings.append(Finding(
                check=CHECK, severity="critical" if c["label_purity"] >= purity else "warning",
                title=f"{c['size']} images are explained by a small region at the {where}",
                detail=(f"Explanation cluster {c['id']}: {c['reason']}. A marker, a watermark, a ruler "
                        "or a scanner tag that comes with one label looks like this."),
                remedy=("Open the exemplar grid for this cluster; if the region holds a marker, crop or "
                        "mask it (in training and evaluation), or balance it across labels, and retrain."),
                features=[name], count=c["size"],
                extra={"cluster": c["id"], "members": c["members"][:500], "region": c["region"],
                       "label_purity": c["label_purity"]}))
    # the grid cells, ranked by their share of all attribution
    pooled = pooled_maps(att.values, grid).mean(0)
    gh, gw = pooled.shape
    rows = []
    for k in np.argsort(-pooled, axis=None):
        i, j = divmod(int(k), gw)
        rows.append({"feature": region_name(i, j, gh, gw), "share": float(pooled[i, j]),
                     "suspicious": False, "reason": ""})
    features = pd.DataFrame(rows, columns=["feature", "share", "suspicious", "reason"])
    for name, reason in flagged_cells.items():
        features = pd.concat([pd.DataFrame([{"feature": name, "share": np.nan, "suspicious": True,
                                             "reason": reason}]), features], ignore_index=True)
    return features, findings


def _contrast_share(unit, pos, outside, predicted, rs, cs, min_reference: int = 3):
    """Share of what sets a cluster's explanations apart that lies in the window.

    The cluster's mean attribution map minus that of a reference (the images outside the cluster
    with the same predicted class: how the model explains that class *without* whatever the
    cluster has; all other images when fewer than ``min_reference``), positive part. A model that
    also uses the object spreads the raw mass over object and marker; what the cluster has *more
    of* than its class is the marker alone.
    """
    if len(outside) == 0:
        return float("nan"), "no other images"
    values, counts = np.unique(predicted[pos], return_counts=True)
    same = outside[predicted[outside] == values[np.argmax(counts)]]
    ref, reference = (same, f"other images predicted {values[np.argmax(counts)]} (n={len(same)})") \
        if len(same) >= min_reference else (outside, f"all other images (n={len(outside)})")
    diff = np.clip(unit[pos].mean(0) - unit[ref].mean(0), 0, None)
    total = diff.sum()
    return (float(diff[rs, cs].sum() / total) if total > 0 else 0.0), reference


def _region_interventions(model, att, pos, outside, rs, cs, level, max_other: int = 512) -> dict:
    """Test the region on the model: remove it from the cluster's images, paste it onto others.

    ``kept_without_region``: share of the cluster's images whose prediction stays the same when
    the region is filled with the image's own border level (high: the model also knows the class
    from the rest of the image). ``pasted_flip``: share of images outside the cluster, predicted
    something else, that the model now calls the cluster's class once the region of a cluster
    image is pasted in (high: the region alone carries the label: a shortcut).
    """
    try:
        data = np.asarray(att.data)
        predicted = np.asarray(att.predicted)
        members = data[pos].copy()
        members[:, :, rs, cs] = level[pos][:, :, None, None]
        kept = predict_classes(model, members, att.layout) == predicted[pos]
        values, counts = np.unique(predicted[pos], return_counts=True)
        target = values[np.argmax(counts)]
        others = outside[predicted[outside] != target][:max_other]
        out = {"kept_without_region": float(kept.mean()), "pasted_flip": None, "pasted_onto": int(len(others)),
               "cluster_class": target.item() if isinstance(target, np.generic) else target}
        if len(others):
            pasted = data[others].copy()
            donors = pos[np.arange(len(others)) % len(pos)]
            pasted[:, :, rs, cs] = data[donors][:, :, rs, cs]
            out["pasted_flip"] = float(np.mean(predict_classes(model, pasted, att.layout) == target))
        return out
    except Exception as err:  # noqa: BLE001 - interventions are supporting evidence only
        return {"intervention_error": f"{type(err).__name__}: {err}"}


def _intervention_text(region: dict) -> str:
    if region.get("pasted_flip") is None:
        return ""
    return (f"; pasting this region onto {region['pasted_onto']} images predicted otherwise makes the model "
            f"call {region['pasted_flip']:.0%} of them {region['cluster_class']}, and removing it keeps "
            f"{region['kept_without_region']:.0%} of these images' predictions")


def _content_masks(data: np.ndarray, with_level: bool = False):
    """(n, H, W) True where an image has content: it differs from its own border's typical value.

    With ``with_level``, also that border level per image and channel, (n, C).
    """
    x = np.asarray(data, dtype=np.float64)
    x = x if x.ndim == 4 else x[:, None]
    border = np.concatenate([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], axis=2)
    level = np.median(border, axis=2)[:, :, None, None]
    diff = np.abs(x - level).max(1)
    span = (x.max((1, 2, 3)) - x.min((1, 2, 3)))[:, None, None]
    mask = diff > 0.15 * np.where(span > 0, span, 1.0)
    return (mask, level[:, :, 0, 0]) if with_level else mask


def _where(centre) -> str:
    r, c = centre
    vert = "top" if r < 1 / 3 else "bottom" if r > 2 / 3 else "middle"
    horiz = "left" if c < 1 / 3 else "right" if c > 2 / 3 else "centre"
    if vert == "middle" and horiz == "centre":
        return "centre"
    if vert == "middle":
        return f"{horiz} edge"
    if horiz == "centre":
        return f"{vert} edge"
    return f"{vert}-{horiz} corner"
