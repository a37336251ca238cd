"""audit(): read the splits once, run every check that applies, and build the Report."""
from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

import numpy as np

from .checks import AuditContext, available_checks, get_check
from .config import AuditConfig
from .errors import InputError
from .report import Report
from .report.previews import build_previews
from .signatures import SignatureCache, SignatureStore
from .sources import TabularSource
from .splits import Splits, build_splits


def audit(splits: Mapping, train: str = "train", labels=None, groups=None, timestamps=None,
          modality: str | None = None, checks=None, config: AuditConfig | None = None, **inputs) -> Report:
    """Audit named splits for data leakage and return a :class:`~leakguard.Report`.

    Parameters
    ----------
    splits : mapping of split name to data. Data may be a numpy array ``(N, ...)``, a list of
        arrays, a pandas DataFrame, a list of ``str``, a list of ``pathlib.Path`` (image, audio or
        text files), a folder, a list of PIL images, or a torch ``Dataset`` / ``DataLoader``.
    train : the split the model learns from; the others are evaluation splits.
    labels, groups, timestamps : mapping of split name to a sequence, or a column name when the
        splits are DataFrames.
    modality : "image", "text", "tabular", "audio" or "series"; None infers it.
    checks : names of checks to run; None runs every check that applies.
    config : :class:`~leakguard.AuditConfig`.
    **inputs : extra inputs some checks read, e.g. ``fitted=`` (fitted scikit-learn transformers).

    Example
    -------
    >>> import numpy as np, leakguard as lg
    >>> X = np.random.default_rng(0).normal(size=(100, 4))
    >>> report = lg.audit({"train": X[:80], "val": np.vstack([X[80:], X[:5]])})  # doctest: +SKIP
    >>> report.leaked("val")                                                                   # doctest: +SKIP
    array([20, 21, 22, 23, 24])
    """
    config = config or AuditConfig()
    if config.engine == "spark":
        import warnings

        from .search.spark import spark_audit

        with warnings.catch_warnings():
            # PySpark 4 warns on every pandas conversion that pandas >= 3 is not fully supported (36
            # warnings in one small audit's output); the Spark engine's reports are checked against the
            # local engine's under the pandas installed (tests/test_spark.py)
            warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                                    category=FutureWarning)
            return spark_audit(splits, train=train, labels=labels, groups=groups, timestamps=timestamps,
                               modality=modality, checks=checks, config=config, **inputs)
    started = time.perf_counter()
    sp = splits if isinstance(splits, Splits) else build_splits(
        splits, train=train, labels=labels, groups=groups, timestamps=timestamps, modality=modality,
        audit_transform=config.audit_transform, sample_rate=config.sample_rate)
    selected = _select_checks(checks, sp)
    cache = SignatureCache(config.cache_dir) if config.cache_dir else None
    store = SignatureStore(sp, cache, config.progress, workers=config.workers)
    try:
        needs = set().union(*(c.needs(sp) for c in selected)) if selected else set()
        if sp.modality != "tabular":
            needs.add("digest")  # the split digests below are built from it
        store.ensure(needs)
        _collect_item_labels(sp)
        ctx = AuditContext(sp, config, store, shared={"inputs": inputs})
        findings = []
        for check in selected:
            findings.extend(_run_check(check, ctx))
    finally:
        if cache is not None:
            cache.close()
    splits_info = {name: _split_info(name, split, store) for name, split in sp.items()}
    meta = {"duration_s": round(time.perf_counter() - started, 3), "modality": sp.modality,
            "checks": [c.name for c in selected], "config": config.to_dict()}
    if cache is not None:
        meta["cache"] = {"hits": cache.hits, "misses": cache.misses}
        # what the image augmented check read back instead of redoing (similarity/image_memo.py, VerifiedPairs)
        if "image_memo" in ctx.shared:
            meta["cache"]["image"] = dict(ctx.shared["image_memo"])
        if "memo" in ctx.shared:  # calibrations read back / computed (similarity/memo.py)
            meta["cache"]["kept"] = dict(ctx.shared["memo"])
        if "calibration" in ctx.shared:  # per check: calibrated now, read back, or kept from a smaller split
            meta["cache"]["calibration"] = {k: dict(v) for k, v in ctx.shared["calibration"].items()}
        if "memo_pairs" in ctx.shared:  # per-pair scores computed / read back (similarity/memo.py)
            meta["cache"]["pairs"] = {k: dict(v) for k, v in ctx.shared["memo_pairs"].items()}
        if "image_verified" in ctx.shared:
            v = ctx.shared["image_verified"]
            meta["cache"]["image_pairs"] = {"verified": v.computed, "read_back": v.cached}
    # image thumbnails are kept in the cache by content (report/previews.py)
    samples = build_previews(findings, sp, config.max_examples, cache_dir=config.cache_dir,
                             digests={name: store.values.get((name, "digest")) for name in sp})
    return Report(findings, splits_info, sp.train, samples, meta)


def _run_check(check, ctx) -> list:
    """A check's findings; a check that breaks on this data becomes a warning, not a crashed audit."""
    import traceback
    import warnings

    from .report import Finding

    try:
        return list(check.run(ctx))
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - one broken check must not lose the others' findings
        where = traceback.extract_tb(err.__traceback__)[-1]
        message = f"{type(err).__name__}: {err} ({where.filename.rsplit('/', 1)[-1]}:{where.lineno})"
        warnings.warn(f"leakguard check {check.name!r} failed and was skipped: {message}", RuntimeWarning,
                      stacklevel=3)
        return [Finding(check=check.name, severity="warning", title=f"the {check.name} check could not run",
                        detail=f"It failed on this data with {message}. Its kind of leakage was not checked.",
                        remedy="Report this with the traceback (run with warnings as errors to see it), or "
                               f"leave the check out with checks=[...] to silence it.",
                        splits=(ctx.train,), extra={"error": message})]


def _collect_item_labels(sp: Splits) -> None:
    """Labels that came with the items of torch datasets ((x, y) pairs), once every item was read."""
    for split in sp.values():
        collected = getattr(split.source, "collected_labels", None)
        if split.labels is None and collected is not None:
            labels = collected()
            if labels is not None:
                split.labels = labels


def _select_checks(checks, sp: Splits) -> list:
    names = available_checks()
    if checks is None:
        chosen = [get_check(n) for n in names]
        return [c for c in chosen if c.applies(sp)]
    if isinstance(checks, str):
        checks = [checks]
    unknown = [c for c in checks if c not in names]
    if unknown:
        raise InputError(f"unknown checks {unknown}; available: {names}")
    chosen = [get_check(n) for n in checks]
    not_applicable = [c.name for c in chosen if not c.applies(sp)]
    if not_applicable:
        raise InputError(f"checks {not_applicable} do not apply to these splits ({sp.modality} data"
                         f"{', no labels' if not sp.has_labels else ''}"
                         f"{', no timestamps' if not sp.has_timestamps else ''})")
    return sorted(chosen, key=lambda c: (c.order, c.name))


def split_digest(split, store: SignatureStore) -> str:
    """A digest over every sample of the split, in order (MLflow's dataset digest reads only 10k rows)."""
    h = hashlib.blake2b(digest_size=10)
    if isinstance(split.source, TabularSource):
        from .checks.exact import tabular_canonical

        cols = sorted(str(c) for c in split.source.frame.columns)
        h.update("\x1f".join(cols).encode())
        h.update(np.ascontiguousarray(tabular_canonical(split, cols)[1]).tobytes())
    else:
        for d in store.get(split.name, "digest"):
            h.update(d if d is not None else b"\0" * 16)
    if split.labels is not None:
        h.update(np.asarray(split.labels).astype(str).tobytes())
    return h.hexdigest()


def _split_info(name: str, split, store: SignatureStore) -> dict:
    return {"n": len(split), "modality": split.modality, "role": split.role,
            "skipped": store.skipped[name], "digest": split_digest(split, store),
            "has_labels": split.labels is not None, "has_groups": split.groups is not None,
            "has_timestamps": split.timestamps is not None}
