"""The tabular checks past similarity on the Spark engine: target, oversampling (preprocessing: see below).

Each runs the local check's own code on the driver, fed from Spark; none is a second
implementation.

``preprocessing_contamination``: the column statistics in the executors and the local check's
decisions on the driver, in :mod:`leakguard.search.spark_preprocessing` (session 7; until then the
kept columns came here to the driver whole).

``target_leakage`` (:mod:`leakguard.checks.target`): ``FeatureScreen`` screens at most
``max_rows`` training rows (default 20,000), a random subsample drawn by numpy from the rows with
a label. The same rows are picked on the driver (the positions ``FeatureScreen.fit`` draws,
mapped to sample indices past the unlabelled rows), only they are collected, and the local check
runs on them unchanged; the report says the same.

``oversampling_leakage`` (:mod:`leakguard.checks.oversampling`), tables and series: by default
scaled out in the executors, only findings to the driver (:mod:`leakguard.search.spark_oversampling`;
``report.meta["spark"]["oversampling_path"]``). With ``spark_path="driver"`` (a check option) the
collect path: the splits' rows (series: each decoded in the executors to the float64 values the
local ``_pooled_matrix`` reads) come to the driver in sample order within ``driver_budget_bytes``
(default 2 GB; past it the check says it could not run) and the local check runs there.

>>> report = lg.audit({"train": "s3a://b/train.parquet", "test": "s3a://b/test.parquet"},
...                   labels="label", checks=["preprocessing_contamination", "target_leakage"],
...                   config=lg.AuditConfig(engine="spark"))                          # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

from ..sources import TabularSource
from ..sources.base import Source

IDX = "_lg_idx"
LABEL = "_lg_label"


# --------------------------------------------------------------------------- table shells
class TableShell(TabularSource):
    """A table split's stand-in for choosing checks on the driver: its length, no rows (so checks
    that apply to tables only, like ``target_leakage``, see a table)."""

    def __init__(self, n: int):
        self.frame, self.n = None, int(n)

    def __len__(self) -> int:
        return self.n


def numeric_feature_columns(frame, features: list[str]) -> list[str]:
    """The features the local ``_numeric_frames`` keeps: numbers, not booleans, not decimals
    (pandas holds Parquet decimals as objects), not timestamps."""
    from pyspark.sql import types as T

    types = {f.name: f.dataType for f in frame.schema.fields}
    numeric = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType)
    return [c for c in features if isinstance(types.get(c), numeric)]


# --------------------------------------------------------------------------- rows to the driver
def collect_rows(spark, sp, rows=None, with_label: bool = False):
    """A table split's feature columns (and ``_lg_label``) as pandas, in sample order: every row, or
    the sample indices ``rows``. The dtypes are those the local engine's frame has: an integer
    column with a missing cell anywhere in the split is float64 there (pandas reads it so),
    whatever the collected rows hold."""
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    frame = sp.frame
    cols = list(sp.features) + ([LABEL] if with_label else [])
    if rows is not None:
        ids = spark.createDataFrame(pd.DataFrame({IDX: np.asarray(rows, dtype=np.int64)}))
        frame = frame.join(F.broadcast(ids), IDX, "left_semi")
    pdf = (frame.select(IDX, *[F.col(f"`{c}`") for c in cols]).toPandas()
           .sort_values(IDX, kind="stable").reset_index(drop=True))
    integral = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
    ints = [f.name for f in sp.frame.schema.fields if f.name in sp.features and isinstance(f.dataType, integral)]
    if ints:
        nulls = sp.frame.agg(*[F.count(F.when(F.col(f"`{c}`").isNull(), 1)).alias(c) for c in ints]).collect()[0]
        for c in ints:
            if nulls[c]:
                pdf[c] = pdf[c].astype(np.float64)
    return pdf


# --------------------------------------------------------------------------- oversampling
DRIVER_BUDGET_BYTES = 2 << 30


def _within_driver_budget(what: str, cells: int, unit: str, budget: int) -> None:
    """Raise (the check then reports it could not run) when ``cells`` float64 values exceed the budget."""
    if 8 * cells > budget:
        raise RuntimeError(f"oversampling_leakage on Spark reads {what} on the driver: "
                           f"{cells} {unit} ({8 * cells / 2**30:.1f} GB) exceed driver_budget_bytes={budget}; "
                           "raise it in check_options (the driver needs that memory) or audit a sample")


def oversampling_on_spark(spark, ctx, check_name: str, prepared: dict) -> list:
    """``oversampling_leakage`` on Spark. By default (``spark_path="distributed"``) the work runs in the
    executors and only findings reach the driver (:mod:`leakguard.search.spark_oversampling`).
    With ``check_options={"oversampling_leakage": {"spark_path": "driver"}}``: the local check on the driver over the splits' rows
    (series: their float64 values, :func:`_series_oversampling_on_spark`) collected from Spark (its copy clusters, line scans and neighbour lists read the pooled
    matrix whole), so the report is the local one. The pooled table must fit
    ``check_options={"oversampling_leakage": {"driver_budget_bytes": ...}}`` (default 2 GB at 8
    bytes a cell); past it the check reports that it could not run (a finding, not a crash)."""
    from ..checks import get_check
    from ..checks.base import AuditContext
    from ..sources import TabularSource
    from ..splits import Split, Splits
    from .spark import _phase

    opts = ctx.config.options(check_name)
    path = str(opts.get("spark_path", "distributed"))
    if path not in ("distributed", "driver"):
        raise ValueError(f"check_options oversampling_leakage spark_path must be 'distributed' or 'driver', got {path!r}")
    ctx.shared.setdefault("spark_meta", {})["oversampling_path"] = path
    if path == "distributed":
        from .spark_oversampling import oversampling_distributed

        return oversampling_distributed(spark, ctx, check_name, prepared)
    budget = int(opts.get("driver_budget_bytes", DRIVER_BUDGET_BYTES))
    if ctx.splits.modality == "series":
        return _series_oversampling_on_spark(spark, ctx, check_name, prepared, budget)
    cells = sum(sp.n * (len(sp.features or []) + 1) for sp in prepared.values())
    _within_driver_budget("the pooled table", cells, "cells", budget)
    _phase(spark, f"{check_name}: the splits' rows to the driver")
    built = {}
    for name, sp in prepared.items():
        pdf = collect_rows(spark, sp, with_label=sp.label_column)
        labels = np.asarray(sp.labels) if sp.labels is not None else (
            pdf[LABEL].to_numpy() if sp.label_column else None)
        built[name] = Split(name, TabularSource(pdf[list(sp.features)]), labels=labels, role=sp.role)
    local = AuditContext(Splits(built, ctx.train), ctx.config, signatures=None, links=ctx.links, shared=ctx.shared)
    _phase(spark, f"{check_name} (driver)")
    return get_check(check_name).run(local)


def _series_value_batches(batches):
    """``mapInPandas`` body: each pickled series as the float64 values the local check reads
    (``np.asarray(item, dtype=np.float64).ravel()``); an item that does not convert is shipped
    as it is (pickled), so the driver hands the local check the same object and it fails alike."""
    import pickle

    import pandas as pd

    from .spark import _Unreadable

    for pdf in batches:
        out = {IDX: [], "n": [], "values": [], "raw": [], "error": []}
        for pos in range(len(pdf)):
            payload = pdf["_lg_payload"].iat[pos]
            item = pickle.loads(payload)
            values, raw, error = None, None, None
            if isinstance(item, _Unreadable):
                error = item.reason
            else:
                try:
                    values = np.ascontiguousarray(np.asarray(item, dtype=np.float64).ravel())
                except (ValueError, TypeError):
                    raw = bytes(payload)
            out[IDX].append(int(pdf[IDX].iat[pos]))
            out["n"].append(0 if values is None else len(values))
            out["values"].append(None if values is None else values.tobytes())
            out["raw"].append(raw)
            out["error"].append(error)
        yield pd.DataFrame(out)


class _CollectedSeries(Source):
    """A series split on the driver: the values collected from Spark, read as the local source."""

    modality = "series"

    def __init__(self, items: list):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def load(self, i: int):
        item = self.items[i]
        if isinstance(item, Exception):
            raise item
        return item


def _series_oversampling_on_spark(spark, ctx, check_name: str, prepared: dict, budget: int) -> list:
    """Series ``oversampling_leakage``: values decoded in the executors, their size checked against
    ``driver_budget_bytes`` in Spark, then collected in sample order; the local check on the driver."""
    import pickle

    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..checks import get_check
    from ..checks.base import AuditContext
    from ..errors import SampleError
    from ..splits import Split, Splits
    from .spark import _phase

    schema = f"{IDX} long, n long, values binary, raw binary, error string"
    decoded = {}
    for name, sp in prepared.items():
        if sp.kind != "items":  # no series file reader exists: series come as in-memory items
            raise RuntimeError(f"oversampling_leakage on Spark reads series given as items, split {name!r} "
                               f"is {sp.kind!r}")
        decoded[name] = sp.frame.mapInPandas(_series_value_batches, schema).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        _phase(spark, f"{check_name}: series sizes")
        cells = 0
        for frame in decoded.values():
            got = frame.agg(F.sum("n").alias("cells"), F.sum(F.length("raw")).alias("raw")).collect()[0]
            cells += int(got["cells"] or 0) + int(got["raw"] or 0) // 8
        _within_driver_budget("every series", cells, "values", budget)
        _phase(spark, f"{check_name}: the series to the driver")
        built = {}
        for name, sp in prepared.items():
            pdf = decoded[name].toPandas().sort_values(IDX, kind="stable")
            items = []
            for i, values, raw, error in zip(pdf[IDX], pdf["values"], pdf["raw"], pdf["error"]):
                if values is not None:
                    items.append(np.frombuffer(bytes(values), dtype=np.float64))
                elif raw is not None:
                    items.append(pickle.loads(bytes(raw)))
                else:
                    items.append(SampleError(error, index=int(i)))
            built[name] = Split(name, _CollectedSeries(items), labels=sp.labels, role=sp.role)
    finally:
        for frame in decoded.values():
            frame.unpersist()
    local = AuditContext(Splits(built, ctx.train), ctx.config, signatures=None, links=ctx.links, shared=ctx.shared)
    _phase(spark, f"{check_name} (driver)")
    return get_check(check_name).run(local)


# --------------------------------------------------------------------------- target leakage
def _kept_positions_to_indices(positions: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Sample indices of the rows at ``positions`` among the rows not in ``missing`` (sorted)."""
    positions = np.asarray(positions, dtype=np.int64)
    missing = np.sort(np.asarray(missing, dtype=np.int64))
    return positions + np.searchsorted(missing - np.arange(len(missing)), positions, side="right")


def screened_rows(n_labelled: int, max_rows: int, random_state) -> np.ndarray:
    """The positions among the labelled rows that ``FeatureScreen.fit`` screens (all of them up to
    ``max_rows``, else its random subsample: the same generator and draw)."""
    if n_labelled <= max_rows:
        return np.arange(n_labelled, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n_labelled, max_rows, replace=False)).astype(np.int64)


def target_on_spark(spark, ctx, check_name: str, prepared: dict) -> list:
    """``target_leakage`` on Spark: the rows the local screen would use are collected and the
    local check runs on them (see the module docstring)."""
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from ..checks import get_check
    from ..checks.base import AuditContext
    from ..explain.screening import FeatureScreen
    from ..sources import TabularSource
    from ..splits import Split, Splits
    from .spark import _phase

    sp = prepared[ctx.train]
    options = {"random_state": ctx.config.random_state, **ctx.config.options(check_name)}
    screen = FeatureScreen(**options)
    _phase(spark, f"{check_name}: the screened rows to the driver")
    frame = sp.frame
    if sp.labels is not None:
        labels = np.asarray(sp.labels)
        missing = np.flatnonzero(pd.isna(pd.Series(labels)).to_numpy())
    else:
        lab = F.col(LABEL)
        is_missing = lab.isNull()
        if isinstance(frame.schema[LABEL].dataType, (T.FloatType, T.DoubleType)):
            is_missing = is_missing | F.isnan(lab)
        missing = np.sort(frame.where(is_missing).select(IDX).toPandas()[IDX].to_numpy(np.int64))
    rows = _kept_positions_to_indices(screened_rows(sp.n - len(missing), int(screen.max_rows), screen.random_state),
                                      missing)
    pdf = collect_rows(spark, sp, rows, with_label=sp.labels is None)
    y = labels[rows] if sp.labels is not None else pdf[LABEL].to_numpy()
    sample = Splits({ctx.train: Split(ctx.train, TabularSource(pdf[list(sp.features)]), labels=y,
                                      role="train")}, ctx.train)
    local = AuditContext(sample, ctx.config, signatures=None, links=ctx.links, shared=ctx.shared)
    _phase(spark, f"{check_name}: feature screen (driver, {len(rows)} rows)")
    return get_check(check_name).run(local)
