"""The tabular checks past similarity on the Spark engine: preprocessing, target, oversampling.

Each runs the local check's own code on the driver, fed from Spark; none is a second
implementation.

``preprocessing_contamination`` (:mod:`leakguard.checks.preprocessing`). The local decisions read
whole columns (means and spreads summed by numpy, percentiles, the counts of repeated values and
of their neighbours), so the local code runs on the driver on columns that Spark fetches on
demand, in sample order, as float64: the same arrays the local engine builds, hence the same
report to the bit. What Spark saves is the columns that cannot leave a mark:

- one pass of aggregations per split and numeric column (finite count, mean, mean of absolute
  values, population variance, minimum, maximum, counts near 0) tells, per union of splits,
  whether a scaling mark (mean 0 / sd 1, min 0 / max 1, median 0 / IQR 1) is possible at all,
  with a safety margin for the distributed sums (``16 n eps (mean|x| + sd + 1)``), so a column
  the local code could mark is never left out;
- one shuffle of ``(column, value)`` counts gives each column's most repeated finite value over
  every split: a fill value of an imputer (mean or median, column-wise or table-wise) is repeated
  at least 3 times (the local ``_fill_candidates`` asks for 3, the table-wise test needs more
  than 2 to stand out of the ties), so a column with no value held 3 times holds no fill.

A column that passes neither screen leaves no finding and no vote locally either; it is not
fetched. The others are, a batch of columns at a time within ``column_budget_bytes`` (default
256 MB) on the driver; a column of ``n`` rows over all splits takes ``8 n`` bytes. The fitted-
object path (``fitted=``) runs on the driver unchanged, with every numeric column on demand.

``target_leakage`` (:mod:`leakguard.checks.target`): ``FeatureScreen`` screens at most
``max_rows`` training rows (default 20,000), a random subsample drawn by numpy from the rows with
a label. The same rows are picked on the driver (the positions ``FeatureScreen.fit`` draws,
mapped to sample indices past the unlabelled rows), only they are collected, and the local check
runs on them unchanged; the report says the same.

``oversampling_leakage`` (:mod:`leakguard.checks.oversampling`), tables: its copy clusters, the
standardisation, the grid test and the line scans read the pooled matrix whole, and an exact
neighbour list (the set at the ``k``-th place) is not reproducible from FAISS float32 scores
computed in other matrix shapes, so the splits' rows are collected and the local check runs on
the driver; past ``driver_budget_bytes`` (default 2 GB) it says it could not run. Series the
same way: each series is decoded in the executors to the float64 values the local
``_pooled_matrix`` reads (``np.asarray(item, float64).ravel()``), their total size is checked
against the budget in Spark, and the values come to the driver in sample order.

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
COLUMN_BUDGET_BYTES = 256 << 20
_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------- columns on demand
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


class SparkColumns:
    """Numeric columns of the splits, fetched from Spark on first use and kept within a budget.

    ``frames()`` returns ``{split: frame}`` shaped as the local check reads them
    (``frame.columns``, ``frame.shape``, ``frame[c].to_numpy()``); ``only`` limits the columns
    a frame lists (the rest stay fetchable by name).
    """

    def __init__(self, prepared: dict, budget_bytes: int = COLUMN_BUDGET_BYTES, train: str | None = None):
        self.prepared = prepared
        self.numeric = {name: numeric_feature_columns(sp.frame, sp.features or []) for name, sp in prepared.items()}
        self.total = sum(sp.n for sp in prepared.values())
        self.budget = int(budget_bytes)
        self.cache: dict[str, dict[str, np.ndarray]] = {}   # column -> split -> values (insertion = age)
        first = train if train is not None else next(iter(prepared), None)
        self.order: list[str] = list(self.numeric.get(first, []))  # the order the local loops read them in
        self.fetches = 0                                    # Spark jobs run (for tests and the docs)
        self.fetched: set[str] = set()

    def frames(self, only=None) -> dict:
        return {name: _LazyFrame(self, name, [c for c in cols if only is None or c in only], self.prepared[name].n)
                for name, cols in self.numeric.items()}

    def values(self, split: str, column: str) -> np.ndarray:
        if column not in self.cache:
            self._fetch(column)
        return self.cache[column][split]

    def _fetch(self, column: str) -> None:
        from functools import reduce

        from pyspark.sql import functions as F

        per_column = max(1, 8 * self.total)
        room = max(1, self.budget // per_column)
        # the column asked for and the next ones in reading order (the local loops go column by
        # column), as many as the budget holds: one Spark job per batch
        order = self.order
        start = order.index(column) + 1 if column in order else len(order)
        batch = [column] + [c for c in order[start:] + order[:start] if c != column and c not in self.cache][:room - 1]
        while self.cache and len(self.cache) + len(batch) > room:
            self.cache.pop(next(iter(self.cache)))
        parts = []
        for name, sp in self.prepared.items():
            have = set(self.numeric[name])
            parts.append(sp.frame.select(F.lit(name).alias("_lg_split"), IDX,
                                         *[(F.col(f"`{c}`") if c in have else F.lit(None)).cast("double").alias(f"_c{j}")
                                           for j, c in enumerate(batch)]))
        pdf = reduce(lambda a, b: a.unionByName(b), parts).toPandas()
        self.fetches += 1
        got = {c: {} for c in batch}
        for name, sp in self.prepared.items():
            rows = pdf[pdf["_lg_split"] == name].sort_values(IDX, kind="stable")
            for j, c in enumerate(batch):
                # nulls come back as NaN, as a pandas column with missing values is float64 locally
                got[c][name] = np.ascontiguousarray(rows[f"_c{j}"].to_numpy(np.float64, na_value=np.nan))
        self.cache.update(got)
        self.fetched.update(batch)


class _LazyColumn:
    def __init__(self, columns: SparkColumns, split: str, name: str):
        self.columns, self.split, self.name = columns, split, name

    def to_numpy(self) -> np.ndarray:
        return self.columns.values(self.split, self.name)


class _LazyFrame:
    """One split's numeric columns as the local check reads a DataFrame of them."""

    def __init__(self, columns: SparkColumns, split: str, names: list[str], n: int):
        self._columns, self._split, self.columns, self._n = columns, split, list(names), n

    @property
    def shape(self) -> tuple[int, int]:
        return self._n, len(self.columns)

    def __getitem__(self, name: str) -> _LazyColumn:
        return _LazyColumn(self._columns, self._split, name)


# --------------------------------------------------------------------------- preprocessing
def _cells(prepared: dict, cols: list[str]):
    """Every split's numeric cells in long form ``split, j, v`` (``v`` a finite double, else null):
    few, narrow aggregations instead of one wide one per column (whose generated code costs more
    than the data at small sizes)."""
    from functools import reduce

    from pyspark.sql import functions as F

    parts = [sp.frame.select(F.lit(name).alias("split"),
                             F.posexplode(F.array(*[F.col(f"`{c}`").cast("double") for c in cols])))
             for name, sp in prepared.items()]
    cells = reduce(lambda a, b: a.unionByName(b), parts).toDF("split", "j", "x")
    x = F.col("x")
    return cells.select("split", "j", F.when(~F.isnan(x) & (F.abs(x) != float("inf")), x).alias("v"))


def _moments(cells, cols: list[str], tol2: float) -> dict:
    """Per split and numeric column: finite count, mean, mean |x|, population variance, min, max,
    and the counts of finite values ``<= tol2`` and ``>= -tol2`` (one Spark job)."""
    from pyspark.sql import functions as F

    v = F.col("v")
    rows = cells.groupBy("split", "j").agg(
        F.count(v).alias("n"), F.avg(v).alias("mean"), F.avg(F.abs(v)).alias("abs"), F.var_pop(v).alias("var"),
        F.min(v).alias("min"), F.max(v).alias("max"), F.count(F.when(v <= tol2, 1)).alias("le"),
        F.count(F.when(v >= -tol2, 1)).alias("ge")).collect()
    out: dict = {}
    for r in rows:
        out.setdefault(r["split"], {})[cols[int(r["j"])]] = {
            "n": int(r["n"]), "mean": r["mean"] or 0.0, "abs": r["abs"] or 0.0, "var": r["var"] or 0.0,
            "min": r["min"], "max": r["max"], "le": int(r["le"]), "ge": int(r["ge"])}
    return out


def _merged(parts: list[dict]) -> dict | None:
    """The moments of a union of splits (Chan's merge of count, mean and M2)."""
    parts = [p for p in parts if p["n"]]
    if not parts:
        return None
    n = sum(p["n"] for p in parts)
    mean = sum(p["mean"] * p["n"] for p in parts) / n
    m2 = sum(p["var"] * p["n"] + p["n"] * (p["mean"] - mean) ** 2 for p in parts)
    return {"n": n, "mean": mean, "abs": sum(p["abs"] * p["n"] for p in parts) / n, "var": max(m2 / n, 0.0),
            "min": min(p["min"] for p in parts), "max": max(p["max"] for p in parts),
            "le": sum(p["le"] for p in parts), "ge": sum(p["ge"] for p in parts)}


def mark_possible(m: dict | None, tol: float) -> bool:
    """Whether a union's finite values could carry a scaling mark (``_marks``), judged from its
    moments with room for the distributed sums' rounding: False only where no mark is possible."""
    if m is None or m["n"] < 1:
        return False
    n = m["n"]
    sd0 = float(np.sqrt(m["var"]))
    sd1 = float(np.sqrt(m["var"] * n / (n - 1))) if n > 1 else np.nan
    slack = 16 * n * _EPS * (m["abs"] + sd0 + 1.0) + 1e-12
    standard = abs(m["mean"]) <= tol + slack and (abs(sd0 - 1) <= tol + slack or
                                                  (n > 1 and abs(sd1 - 1) <= tol + slack))
    minmax = abs(m["min"]) <= 2 * tol and abs(m["max"] - 1) <= 2 * tol
    # median 0: the order statistics np.percentile interpolates between sit within 2 tol of 0;
    # IQR 1 needs a range of at least about 1
    lo, hi = (n - 1) // 2, -(-(n - 1) // 2)
    robust = m["le"] >= lo + 1 and m["ge"] >= n - hi and (m["max"] - m["min"]) >= 1 - 2 * tol
    return bool(standard or minmax or robust)


def _most_repeated(cells, cols: list[str]) -> dict:
    """Per column, the count of its most repeated finite value over every split (one shuffle of
    the distinct ``(column, value)`` pairs; -0.0 and 0.0 group together, as numpy counts them)."""
    from pyspark.sql import functions as F

    counts = (cells.where(F.col("v").isNotNull()).groupBy("j", "v").count()
              .groupBy("j").agg(F.max("count").alias("top")))
    got = {int(r["j"]): int(r["top"]) for r in counts.collect()}
    return {c: got.get(j, 0) for j, c in enumerate(cols)}


def columns_to_fetch(spark, ctx, check_name: str, prepared: dict, columns: SparkColumns) -> list[str]:
    """The numeric columns whose data can leave a mark locally (see the module docstring)."""
    from pyspark.sql import functions as F

    from ..checks.preprocessing import _unions

    tol = float(ctx.config.options(check_name).get("tolerance", 1e-6))
    train = ctx.train
    cols = [c for c in columns.numeric[train] if all(c in v for v in columns.numeric.values())]
    if not cols:
        return []
    cells = _cells(prepared, cols)
    moments = _moments(cells, cols, 2 * tol)
    empty = {"n": 0}
    unions = _unions(ctx.splits)
    marked = {c for c in cols
              if any(mark_possible(_merged([moments.get(n, {}).get(c, empty) for n in u]), tol) for u in unions)}
    rest = [j for j, c in enumerate(cols) if c not in marked]
    top = _most_repeated(cells.where(F.col("j").isin(rest)), cols) if rest else {}
    return [c for c in cols if c in marked or top.get(c, 0) >= 3]


def preprocessing_on_spark(spark, ctx, check_name: str, prepared: dict) -> list:
    """``preprocessing_contamination`` on Spark: the local check on the driver, its columns from
    Spark (only those that can leave a mark, for the data path). See the module docstring."""
    from ..checks import get_check
    from .spark import _phase

    check = get_check(check_name)
    opts = ctx.config.options(check_name)
    budget = int(opts.get("column_budget_bytes", COLUMN_BUDGET_BYTES))
    tabular = ctx.splits.modality == "tabular"
    columns = SparkColumns(prepared, budget, ctx.train) if tabular else None
    findings = []
    fitted = (ctx.shared.get("inputs") or {}).get("fitted")
    if fitted is not None:
        _phase(spark, f"{check_name}: fitted objects (driver; columns on demand)")
        findings += check._from_fitted(ctx, fitted, frames=columns.frames() if tabular else None)
    if tabular:
        _phase(spark, f"{check_name}: column moments and repeated values")
        keep = columns_to_fetch(spark, ctx, check_name, prepared, columns)
        columns.order = keep
        ctx.shared["spark_preprocessing"] = {"columns": len(columns.numeric[ctx.train]), "fetched": list(keep)}
        _phase(spark, f"{check_name}: {len(keep)} columns to the driver")
        findings += check._from_data(ctx, frames=columns.frames(only=set(keep)))
    return findings


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
