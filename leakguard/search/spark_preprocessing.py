"""``preprocessing_contamination`` on the Spark engine: the column statistics in the executors, the
decisions on the driver, by the local check's own code (:mod:`leakguard.checks.preprocessing`).

The local decisions read a column only through :class:`~leakguard.checks.preprocessing.Values`: its
finite values as a multiset (count, exact sums, minimum and maximum, order statistics, the distinct
values with their counts) and its counts of NaN and infinities, per split and per union of splits.
Spark computes the same numbers:

- **moments** (one ``mapInPandas`` pass over each split): per column the count, NaN / +inf / -inf
  counts, minimum, maximum and the exact sums ``sum x``, ``sum |x|``, ``sum x^2``
  (:func:`~leakguard.checks.preprocessing.exact_moments`: integers, so partitions add up in any
  order to the local engine's sums to the bit);
- **value counts** (one shuffle of the distinct ``(column, value)`` pairs, a count per split):
  per column and union the number of distinct values and the largest count;
- **the screen**: a column on which no scaling mark is possible (judged from its moments, with
  margins) and no value is held 3 times cannot leave a finding or a median vote locally, so it is
  left out: a fill candidate needs 3 copies (``_fill_candidates``), and a union median held twice
  never passes the ties test of ``median_fill_evidence`` (``_log_tail(1, rate >= 0.02) > log 1e-2``);
- **columns whose values repeat** (a value held 3 times or more: a possible fill): the median-fill
  decisions read their distinct values (the grid of recorded decimals, the neighbours' counts, the
  decimals of up to 2000 distinct values), so their **value table** (distinct value, count per
  split) comes to the driver: ``distinct values x (1 + splits)`` numbers, not the column. For data
  recorded to few decimals or integers that is small; for a continuous column holding a fill value
  it is as large as the column (the one case the driver holds column-sized data; listed in
  ``report.meta["spark"]["preprocessing"]["value_tables"]``), bounded by ``driver_budget_bytes``;
- **the other kept columns** (continuous, a scaling mark possible): their percentiles' order
  statistics are found by a sort per union and column in the executors (a window rank), and only
  those values come back.

The fitted-object path (``fitted=``) reads the same statistics (``nanmean`` etc.: infinities
count), medians only where a fitted object holds one (``center_``, a median imputer).

Options (``check_options={"preprocessing_contamination": {...}}``): ``driver_budget_bytes`` (the
value tables' total on the driver, default 2 GB; past it the check says it could not run).

>>> report = lg.audit({"train": "s3a://b/train.parquet", "test": "s3a://b/test.parquet"},
...                   checks=["preprocessing_contamination"], config=lg.AuditConfig(engine="spark"))  # doctest: +SKIP
>>> report.meta["spark"]["preprocessing"]["aggregated"]                                             # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

from ..checks.preprocessing import (ColumnTable, Values, _unions, exact_moments, nan_stat_ranks,
                                    percentile_ranks)
from .spark_tabular_checks import numeric_feature_columns

DRIVER_BUDGET_BYTES = 2 << 30
_EPS = np.finfo(np.float64).eps
_MOMENT_SCHEMA = ("j int, n long, posinf long, neginf long, nan long, s1 string, sa string, s2 string, "
                  "vmin double, vmax double, le long, ge long")


# --------------------------------------------------------------------------- moments (executors)
def _moment_batches(n_cols: int, tol2: float):
    """``mapInPandas`` body over one split's numeric columns ``_c0 .. _c{n-1}`` (doubles): one row per
    column and partition with its counts, range and exact sums (as decimal strings)."""
    def run(batches):
        import pandas as pd

        acc = [[0, 0, 0, 0, 0, 0, 0, np.inf, -np.inf, 0, 0] for _ in range(n_cols)]
        for pdf in batches:
            for j in range(n_cols):
                v = pdf[f"_c{j}"].to_numpy(np.float64, na_value=np.nan)
                finite = np.isfinite(v)
                x = v[finite] + 0.0
                a = acc[j]
                n, s1, sa, s2 = exact_moments(x)
                rest = v[~finite]
                a[0] += n
                a[1] += int((rest == np.inf).sum())
                a[2] += int((rest == -np.inf).sum())
                a[3] += int(np.isnan(rest).sum())
                a[4] += s1
                a[5] += sa
                a[6] += s2
                if n:
                    a[7], a[8] = min(a[7], float(x.min())), max(a[8], float(x.max()))
                a[9] += int((x <= tol2).sum())
                a[10] += int((x >= -tol2).sum())
        yield pd.DataFrame({"j": np.arange(n_cols, dtype=np.int32), "n": [a[0] for a in acc],
                            "posinf": [a[1] for a in acc], "neginf": [a[2] for a in acc], "nan": [a[3] for a in acc],
                            "s1": [str(a[4]) for a in acc], "sa": [str(a[5]) for a in acc],
                            "s2": [str(a[6]) for a in acc], "vmin": [a[7] for a in acc], "vmax": [a[8] for a in acc],
                            "le": [a[9] for a in acc], "ge": [a[10] for a in acc]})
    return run


def split_moments(prepared: dict, numeric: dict, tol2: float) -> dict:
    """``{split: {column: moments}}``: counts, range and exact sums of every numeric column (one Spark
    job per split; partial sums added on the driver, exactly)."""
    from pyspark.sql import functions as F

    out = {}
    for name, sp in prepared.items():
        cols = numeric[name]
        got = {c: {"n": 0, "posinf": 0, "neginf": 0, "nan": 0, "s1": 0, "sa": 0, "s2": 0, "min": np.inf,
                   "max": -np.inf, "le": 0, "ge": 0} for c in cols}
        if cols:
            frame = sp.frame.select(*[F.col(f"`{c}`").cast("double").alias(f"_c{j}") for j, c in enumerate(cols)])
            for r in frame.mapInPandas(_moment_batches(len(cols), tol2), _MOMENT_SCHEMA).collect():
                m = got[cols[int(r["j"])]]
                for k in ("n", "posinf", "neginf", "nan", "le", "ge"):
                    m[k] += int(r[k])
                for k in ("s1", "sa", "s2"):
                    m[k] += int(r[k])
                m["min"], m["max"] = min(m["min"], r["vmin"]), max(m["max"], r["vmax"])
        out[name] = got
    return out


def _merge(parts: list[dict]) -> dict:
    keys = ("n", "posinf", "neginf", "nan", "s1", "sa", "s2", "le", "ge")
    out = {k: sum(p[k] for p in parts) for k in keys}
    out["min"] = min((p["min"] for p in parts), default=np.inf)
    out["max"] = max((p["max"] for p in parts), default=-np.inf)
    return out


def mark_possible(m: dict, tol: float) -> bool:
    """Whether a union's finite values could carry a scaling mark (``_marks``: mean 0 and standard
    deviation 1, minimum 0 and maximum 1, median 0 and IQR 1), from its moments: False only where
    no mark is possible. The sums are exact, so the margins only absorb the final roundings."""
    from ..checks.preprocessing import _mean, _std

    n = m["n"]
    if n < 1:
        return False
    v = _Moments(m)
    mean, sd0 = _mean(v), _std(v)
    sd1 = _std(v, 1) if n > 1 else np.nan
    slack = 4 * _EPS * (abs(mean) + sd0 + 1.0) + 1e-12
    standard = abs(mean) <= tol + slack and (abs(sd0 - 1) <= tol + slack or (n > 1 and abs(sd1 - 1) <= tol + slack))
    minmax = abs(m["min"]) <= 2 * tol and abs(m["max"] - 1) <= 2 * tol
    # median 0: the order statistics np.percentile interpolates between sit within 2 tol of 0;
    # IQR 1 needs a range of at least about 1
    lo, hi = (n - 1) // 2, -(-(n - 1) // 2)
    robust = m["le"] >= lo + 1 and m["ge"] >= n - hi and (m["max"] - m["min"]) >= 1 - 2 * tol
    return bool(standard or minmax or robust)


class _Moments:
    def __init__(self, m: dict):
        self.moments = (m["n"], m["s1"], m["sa"], m["s2"])


# --------------------------------------------------------------------------- value counts
def _cells(prepared: dict, cols: list[str]):
    """Every split's cells of ``cols`` in long form ``split, j, v`` (finite values only, -0.0 as 0.0)."""
    from functools import reduce

    from pyspark.sql import functions as F

    parts = [sp.frame.select(F.lit(name).alias("split"),
                             F.posexplode(F.array(*[F.col(f"`{c}`").cast("double") for c in cols])))
             for name, sp in prepared.items()]
    cells = reduce(lambda a, b: a.unionByName(b), parts).toDF("split", "j", "x")
    x = F.col("x")
    return cells.where(x.isNotNull() & ~F.isnan(x) & (F.abs(x) != float("inf"))).select(
        "split", "j", (x + F.lit(0.0)).alias("v"))


def _union_total(union: tuple, names: list[str]):
    from functools import reduce

    from pyspark.sql import functions as F

    return reduce(lambda a, b: a + b, [F.col(f"_n{names.index(s)}") for s in union])


# --------------------------------------------------------------------------- the statistics on the driver
class SparkValues(Values):
    """A column over a set of splits, from Spark's aggregates: counts, exact moments, range and the
    order statistics asked for; no distinct values (its values never repeat 3 times, so no fill
    value's decisions read them)."""

    def __init__(self, stats: "SparkColumnStats", name: str, splits: tuple):
        m = stats.merged(name, splits)
        self.values = self.counts = None
        self.posinf, self.neginf, self.nan = m["posinf"], m["neginf"], m["nan"]
        self.n = m["n"]
        self._moments = (m["n"], m["s1"], m["sa"], m["s2"])
        self._n_distinct, self._top = stats.distinct[(name, splits)]
        self._min, self._max = m["min"], m["max"]
        self._stats, self._key = stats, (name, splits)

    @property
    def n_distinct(self) -> int:
        return self._n_distinct

    @property
    def top_count(self) -> int:
        return self._top

    @property
    def min(self) -> float:
        return float(self._min)

    @property
    def max(self) -> float:
        return float(self._max)

    def order_stat(self, k: int) -> float:
        order = self._stats.order.get(self._key, {})
        if k not in order:  # not asked for in advance: this column's and union's, one Spark job
            self._stats.order_statistics({self._key: self._stats.needed_ranks(*self._key, medians=True) | {k}})
            order = self._stats.order[self._key]
        return order[k]

    def _no_table(self, *_):
        raise RuntimeError("the Spark engine holds no distinct values of a column whose values never repeat")

    count_of = subset = without = below = above = _no_table


class _SparkColumn:
    def __init__(self, stats: "SparkColumnStats", name: str):
        self.stats, self.name = stats, name

    def of(self, splits: tuple) -> Values:
        return self.stats.values_of(self.name, tuple(splits))


class SparkColumnStats:
    """The numeric columns of the splits as :meth:`PreprocessingContamination._from_data` reads them
    (``names``, ``column(name).of(splits)``), with the statistics computed by Spark. ``meta``: what
    came to the driver."""

    def __init__(self, spark, ctx, prepared: dict, tol: float, budget: int):
        self.spark, self.ctx, self.prepared, self.tol, self.budget = spark, ctx, prepared, tol, int(budget)
        self.split_names = list(prepared)
        self.numeric = {name: numeric_feature_columns(sp.frame, sp.features or []) for name, sp in prepared.items()}
        self.names = dict(self.numeric)
        train = ctx.train
        self.common = [c for c in self.numeric[train] if all(c in v for v in self.numeric.values())]
        self.unions = [(train,)] + _unions(ctx.splits)
        self.whole = tuple(self.split_names)
        self.moments = split_moments(prepared, self.numeric, 2 * tol)
        self.tables: dict[str, ColumnTable] = {}
        self.distinct: dict = {}          # (column, union) -> (distinct values, largest count)
        self.order: dict = {}             # (column, union) -> {rank: value}
        self.meta = {"columns": len(self.common), "aggregated": [], "value_tables": {}, "left_out": [],
                     "order_statistics": 0, "values_to_driver": 0}

    # ---------------------------------------------------------------- what the check reads
    def column(self, name: str) -> _SparkColumn:
        return _SparkColumn(self, name)

    def merged(self, name: str, splits: tuple) -> dict:
        return _merge([self.moments[s][name] for s in splits])

    def values_of(self, name: str, splits: tuple) -> Values:
        if name in self.tables:
            return self.tables[name].of(splits)
        return SparkValues(self, name, splits)

    # ---------------------------------------------------------------- the Spark jobs
    def screen(self) -> list[str]:
        """The common columns that can leave a mark (see the module docstring); builds the value
        tables of those whose values repeat and the order statistics of the others."""
        from ..search.spark import _phase

        from pyspark import StorageLevel

        tol = self.tol
        unions = self.unions[1:]
        marked = {c for c in self.common if any(mark_possible(self.merged(c, u), tol) for u in unions)}
        _phase(self.spark, "preprocessing_contamination: value counts")
        self._vt = self._value_table_frame(self.common).persist(StorageLevel.MEMORY_AND_DISK) if self.common else None
        self.count_values()
        repeated = [c for c in self.common if self.distinct[(c, self.whole)][1] >= 3]
        keep = [c for c in self.common if c in marked or c in repeated]
        self.meta["left_out"] = [c for c in self.common if c not in keep]
        if repeated:
            _phase(self.spark, f"preprocessing_contamination: value tables of {len(repeated)} columns")
            self.value_tables(repeated)
        aggregated = [c for c in keep if c not in self.tables]
        self.meta["aggregated"] = aggregated
        if aggregated:
            _phase(self.spark, f"preprocessing_contamination: order statistics of {len(aggregated)} columns")
            self.order_statistics({(c, u): self.needed_ranks(c, u) for c in aggregated for u in self.unions})
        return keep

    def close(self) -> None:
        if getattr(self, "_vt", None) is not None:
            self._vt.unpersist()
            self._vt = None

    def needed_ranks(self, name: str, splits: tuple, medians: bool = False) -> set[int]:
        m = self.merged(name, splits)
        ranks = percentile_ranks(m["n"]) if m["n"] else set()
        if medians:  # nanmedian (fitted objects): positions among finite and infinite values
            total = m["n"] + m["posinf"] + m["neginf"]
            ranks |= {k - m["neginf"] for k in (nan_stat_ranks(total) if total else set())
                      if 0 <= k - m["neginf"] < m["n"]}
        return ranks

    def count_values(self) -> None:
        """Per common column and union: distinct finite values and the largest count (one shuffle)."""
        from pyspark.sql import functions as F

        if not self.common:
            return
        aggs = []
        every = self.unions + [self.whole]
        for u, union in enumerate(every):
            total = _union_total(union, self.split_names)
            aggs += [F.count(F.when(total > 0, 1)).alias(f"d{u}"), F.max(total).alias(f"t{u}")]
        rows = {int(r["j"]): r for r in self._vt.groupBy("j").agg(*aggs).collect()}
        for j, c in enumerate(self.common):
            r = rows.get(j)
            for u, union in enumerate(every):
                self.distinct[(c, union)] = (int(r[f"d{u}"]) if r else 0, int(r[f"t{u}"] or 0) if r else 0)

    def _value_table_frame(self, cols: list[str]):
        from pyspark.sql import functions as F

        split = F.col("split")
        return _cells(self.prepared, cols).groupBy("j", "v").agg(
            *[F.count(F.when(split == s, 1)).alias(f"_n{k}") for k, s in enumerate(self.split_names)])

    def value_tables(self, cols: list[str]) -> None:
        """The distinct values of ``cols`` with a count per split, to the driver (within the budget)."""
        from pyspark.sql import functions as F

        cells = sum(self.distinct[(c, self.whole)][0] for c in cols) * (1 + len(self.split_names))
        if 8 * cells > self.budget:
            raise RuntimeError(
                f"preprocessing_contamination on Spark reads the distinct values of the columns whose values "
                f"repeat ({', '.join(map(repr, cols[:5]))}{' ...' if len(cols) > 5 else ''}): {cells} numbers "
                f"({8 * cells / 2**30:.2f} GB) exceed driver_budget_bytes={self.budget}; raise it in check_options "
                "(the driver needs that memory) or audit a sample")
        index = {c: j for j, c in enumerate(self.common)}
        pdf = self._vt.where(F.col("j").isin([index[c] for c in cols])).toPandas()
        self.meta["values_to_driver"] += int(pdf.size)
        for c in cols:
            part = pdf[pdf["j"] == index[c]].sort_values("v", kind="stable")
            values = part["v"].to_numpy(np.float64)
            counts = {s: part[f"_n{k}"].to_numpy(np.int64) for k, s in enumerate(self.split_names)}
            special = {s: (self.moments[s][c]["posinf"], self.moments[s][c]["neginf"], self.moments[s][c]["nan"])
                       for s in self.split_names}
            self.tables[c] = ColumnTable(values, counts, special)
            self.meta["value_tables"][c] = int(len(values))

    def order_statistics(self, wanted: dict) -> None:
        """The order statistics ``{(column, union): ranks}`` of the finite values: a rank by value
        within each union and column (a window sort in the executors); only those values return."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        wanted = {k: r for k, r in wanted.items() if k[0] not in self.tables}
        for key in wanted:
            self.order.setdefault(key, {})
        for _, u in wanted:
            if u not in self.unions:
                self.unions.append(u)
        rows = [(self.unions.index(u), self.common.index(c), int(r)) for (c, u), ranks in wanted.items() for r in ranks]
        if not rows:
            return
        spark = self.spark
        member = spark.createDataFrame([(s, u) for u, union in enumerate(self.unions) for s in union],
                                       "split string, u int")
        asked = spark.createDataFrame(rows, "u int, j int, r long")
        cols = sorted({j for _, j, _ in rows})
        cells = _cells(self.prepared, self.common).where(F.col("j").isin(cols))
        x = cells.join(F.broadcast(member), "split").join(F.broadcast(asked.select("u", "j").distinct()),
                                                         ["u", "j"], "left_semi")
        ranked = x.select("u", "j", "v", (F.row_number().over(Window.partitionBy("u", "j").orderBy("v")) - 1)
                          .alias("r"))
        got = ranked.join(F.broadcast(asked), ["u", "j", "r"]).collect()
        self.meta["order_statistics"] += len(got)
        self.meta["values_to_driver"] += len(got)
        for r in got:
            self.order[(self.common[int(r["j"])], self.unions[int(r["u"])])][int(r["r"])] = float(r["v"])


# --------------------------------------------------------------------------- the check
def preprocessing_on_spark(spark, ctx, check_name: str, prepared: dict) -> list:
    """``preprocessing_contamination`` on Spark: the statistics in the executors, the local check's
    decisions on the driver (see the module docstring)."""
    from ..checks import get_check
    from .spark import _phase

    check = get_check(check_name)
    opts = ctx.config.options(check_name)
    tol = float(opts.get("tolerance", 1e-6))
    budget = int(opts.get("driver_budget_bytes", DRIVER_BUDGET_BYTES))
    tabular = ctx.splits.modality == "tabular"
    fitted = (ctx.shared.get("inputs") or {}).get("fitted")
    findings = []
    if not tabular:
        if fitted is not None:
            _phase(spark, f"{check_name}: fitted objects (sizes)")
            findings += check._from_fitted(ctx, fitted, None)
        return findings
    _phase(spark, f"{check_name}: column moments")
    stats = SparkColumnStats(spark, ctx, prepared, tol, budget)
    ctx.shared.setdefault("spark_meta", {})["preprocessing"] = stats.meta
    try:
        _phase(spark, f"{check_name}: screen")
        keep = stats.screen()
        if fitted is not None:
            _phase(spark, f"{check_name}: fitted objects")
            _fitted_medians(stats, check, fitted)
            findings += check._from_fitted(ctx, fitted, stats)
        _phase(spark, f"{check_name}: decisions (driver, {len(keep)} columns)")
        findings += check._from_data(ctx, _KeptColumns(stats, keep))
    finally:
        stats.close()
    return findings


def _fitted_medians(stats: SparkColumnStats, check, fitted) -> None:
    """Order statistics for the medians fitted objects hold (``center_``, median imputers), in one
    Spark job, before the check asks for them one by one."""
    from ..checks.preprocessing import _columns_for, _walk

    wanted = {}
    train = stats.ctx.train
    for _, est, est_columns in _walk(fitted):
        if not any(stat == "median" for _, _, stat in check.fitted_statistics(est)):
            continue
        for c in _columns_for(est, est_columns, stats.names[train]) or []:
            if c in stats.common and c not in stats.tables:
                for u in stats.unions:
                    have = stats.order.get((c, u), {})
                    need = stats.needed_ranks(c, u, medians=True) - set(have)
                    if need:
                        wanted[(c, u)] = need
    if wanted:
        stats.order_statistics(wanted)


class _KeptColumns:
    """The data path's view: the kept columns only (the others cannot leave a mark)."""

    def __init__(self, stats: SparkColumnStats, keep: list[str]):
        self.stats = stats
        self.names = {s: [c for c in cols if c in keep] for s, cols in stats.names.items()}

    def column(self, name: str):
        return self.stats.column(name)
