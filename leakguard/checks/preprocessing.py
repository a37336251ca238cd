"""preprocessing_contamination: transforms fitted on training and evaluation data together.

From the data (tabular): a scaler or imputer fitted on the union of splits leaves a mark that a
fit on the training split alone does not:

- standardised over the union: mean 0 and standard deviation 1 over train + eval, not over train;
- min-max scaled over the union: minimum 0 and maximum 1 over train + eval, not over train;
- robust-scaled over the union: median 0 and inter-quartile range 1 over train + eval;
- imputed with the union's mean or median: one value repeated in many rows that equals the mean
  (median) of the other values over train + eval, and not over train.

From fitted objects (``lg.audit(..., fitted=[scaler, pipeline])``): ``n_samples_seen_`` equal to
the size of train + eval rather than train; ``mean_``, ``var_``, ``data_min_``, ``data_max_``,
``center_``, ``statistics_`` equal to the statistics of the union rather than of train.

Options (``check_options={"preprocessing_contamination": {...}}``): ``tolerance`` (relative,
default 1e-6), ``min_unique`` (distinct values a column needs for the min-max mark, default 10);
on the Spark engine ``driver_budget_bytes`` (:mod:`leakguard.search.spark_preprocessing`).
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from ..report import Finding
from .base import AuditContext, Check, register_check

NAME = "preprocessing_contamination"

KINDS = {
    "standard": ("standardised (mean 0, standard deviation 1)", "StandardScaler"),
    "minmax": ("min-max scaled (minimum 0, maximum 1)", "MinMaxScaler"),
    "robust": ("robust-scaled (median 0, inter-quartile range 1)", "RobustScaler"),
    "impute_mean": ("imputed with the mean", "SimpleImputer(strategy='mean')"),
    "impute_median": ("imputed with the median", "SimpleImputer(strategy='median')"),
}


def _unions(splits) -> list[tuple[str, ...]]:
    """Every set of splits holding the training split and at least one evaluation split, largest first."""
    evals = splits.eval_names
    out = []
    for r in range(len(evals), 0, -1):
        out += [(splits.train, *c) for c in combinations(evals, r)]
    return out


def _numeric_frames(splits) -> dict[str, pd.DataFrame]:
    out = {}
    for name, split in splits.items():
        frame = split.source.frame.rename(columns=str)
        cols = [c for c in frame.columns
                if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
        out[name] = frame[cols].astype(np.float64)
    return out


# ---------------------------------------------------------------------------- column statistics
# Every decision below reads a column through a few statistics of its finite values (per split, and
# per union of splits): count, mean, spread, minimum and maximum, order statistics (percentiles,
# median), its distinct values with their counts. They are defined on the values as a multiset, not
# on an array order, and computed exactly where a float sum would depend on the order: sums are
# exact integers (in units of 2^-1200 for values, 2^-2400 for squares; every double is a multiple
# of 2^-1074), rounded once. So the Spark engine, which sums partitions in any order and sends the
# distinct values and counts of a column instead of the column
# (:mod:`leakguard.search.spark_preprocessing`), feeds this same code the same numbers.
_UNIT1, _UNIT2 = 1200, 2400
_FAST_LO, _FAST_HI = 2.0 ** -400, 2.0 ** 400    # magnitudes whose products the float path splits exactly
_SPLITTER = 134217729.0                            # 2^27 + 1 (Dekker's split)


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a * b == p + e`` exactly (Dekker / Shewchuk), for magnitudes in the fast range."""
    p = a * b
    ca = _SPLITTER * a
    ah = ca - (ca - a)
    al = a - ah
    cb = _SPLITTER * b
    bh = cb - (cb - b)
    bl = b - bh
    e = al * bl - (((p - ah * bh) - al * bh) - ah * bl)
    return p, e


def _int_sum(terms: np.ndarray, unit: int) -> int:
    """The exact sum of finite doubles as an integer in units of ``2^-unit``: each term is an integer
    mantissa (< 2^53) times a power of two; the mantissas, cut in two halves below 2^27, are summed
    per exponent by float64 bincounts that stay exact (fewer than 2^25 terms a call)."""
    terms = terms[terms != 0]
    if not len(terms):
        return 0
    mant, expo = np.frexp(terms)
    mant = np.ldexp(mant, 53)
    hi = np.trunc(mant / 67108864.0)
    lo = mant - hi * 67108864.0
    expo = expo.astype(np.int64) - 53
    base = int(expo.min())
    idx = expo - base
    total = 0
    step = 1 << 25
    for start in range(0, len(terms), step):
        part = slice(start, start + step)
        sum_hi = np.bincount(idx[part], weights=hi[part])
        sum_lo = np.bincount(idx[part], weights=lo[part])
        for k in np.flatnonzero((sum_hi != 0) | (sum_lo != 0)):
            total += (int(sum_hi[k]) * 67108864 + int(sum_lo[k])) << (int(k) + base + unit)
    return total


def exact_moments(values: np.ndarray, counts: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """``(n, sum x, sum |x|, sum x^2)`` of finite ``values`` (each repeated ``counts`` times), the sums
    exact: integers in units of 2^-1200 (the first two) and 2^-2400. Partial results add up:
    ``exact_moments(a) + exact_moments(b)`` (element-wise) is ``exact_moments(a ∪ b)``.

    >>> n, s1, _, _ = exact_moments(np.array([0.1, 0.2, 0.3]))
    >>> s1 / (n << 1200) == 0.2
    True
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.ones(len(values), dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    mag = np.abs(values)
    fast = ((mag >= _FAST_LO) & (mag <= _FAST_HI)) | (mag == 0)
    slow = ~fast
    s1 = sa = s2 = 0
    single = fast & (counts == 1)   # values held once (continuous data): no product with a count
    if single.any():
        v = values[single]
        s1 = _int_sum(v, _UNIT1)
        sa = _int_sum(np.abs(v), _UNIT1)
        s2 = _int_sum(np.concatenate(_two_product(v, v)), _UNIT2)
    fast &= ~single
    v, c = values[fast], counts[fast].astype(np.float64)
    if len(v):
        p, e = _two_product(c, v)
        s1 += _int_sum(np.concatenate([p, e]), _UNIT1)
        sign = np.sign(v)
        sa += _int_sum(np.concatenate([p * sign, e * sign]), _UNIT1)
        q1, f1 = _two_product(p, v)
        q2, f2 = _two_product(e, v)
        s2 += _int_sum(np.concatenate([q1, f1, q2, f2]), _UNIT2)
    for x, k in zip(values[slow].tolist(), counts[slow].tolist()):
        # magnitudes whose float products could overflow or lose bits: Python's integers
        num, den = float(x).as_integer_ratio()
        s1 += k * num * ((1 << _UNIT1) // den)
        sa += k * abs(num) * ((1 << _UNIT1) // den)
        s2 += k * num * num * ((1 << _UNIT2) // (den * den))
    return n, s1, sa, s2


def _ratio(num: int, den: int) -> float:
    """``num / den`` correctly rounded (``den > 0``); past the float range, infinity."""
    try:
        return num / den
    except OverflowError:
        return math.copysign(math.inf, num)


class Values:
    """The finite values of one column over a set of splits as a multiset: sorted distinct values
    and their counts, with the counts of NaN, +inf and -inf beside. Everything the decisions read
    of a column comes from here: count, exact moments, order statistics, the distinct values and
    their neighbours. The Spark engine gives the columns that cannot hold a fill value an object
    with the same statistics and no distinct values (:mod:`leakguard.search.spark_preprocessing`).
    """

    def __init__(self, values: np.ndarray, counts: np.ndarray, posinf: int = 0, neginf: int = 0, nan: int = 0):
        self.values = np.asarray(values, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.posinf, self.neginf, self.nan = int(posinf), int(neginf), int(nan)
        self.n = int(self.counts.sum())
        self._moments = None
        self._parts: list = []   # Values whose union this is: its exact sums are theirs added
        self._cum = None

    @classmethod
    def from_array(cls, v: np.ndarray) -> "Values":
        v = np.asarray(v, dtype=np.float64).ravel()
        finite = np.isfinite(v)
        # + 0.0: -0.0 and 0.0 are one value (numpy counts them together; which sign a unique keeps
        # would depend on the sort)
        uniq, counts = np.unique(v[finite] + 0.0, return_counts=True)
        rest = v[~finite]
        return cls(uniq, counts, int((rest == np.inf).sum()), int((rest == -np.inf).sum()), int(np.isnan(rest).sum()))

    @property
    def n_distinct(self) -> int:
        return len(self.values)

    @property
    def top_count(self) -> int:
        return int(self.counts.max()) if len(self.counts) else 0

    @property
    def min(self) -> float:
        return float(self.values[0])

    @property
    def max(self) -> float:
        return float(self.values[-1])

    @property
    def moments(self) -> tuple[int, int, int, int]:
        if self._moments is None:
            if self._parts:
                self._moments = tuple(sum(x) for x in zip(*(p.moments for p in self._parts)))
            else:
                self._moments = exact_moments(self.values, self.counts)
        return self._moments

    def order_stat(self, k: int) -> float:
        """The ``k``-th smallest finite value (0-based)."""
        if self._cum is None:
            self._cum = np.cumsum(self.counts)
        return float(self.values[np.searchsorted(self._cum, k, side="right")])

    def count_of(self, value: float) -> int:
        pos = np.searchsorted(self.values, value)
        return int(self.counts[pos]) if pos < len(self.values) and self.values[pos] == value else 0

    def subset(self, keep: np.ndarray) -> "Values":
        return Values(self.values[keep], self.counts[keep])

    def without(self, value: float) -> "Values":
        """The finite values other than ``value``."""
        out = self.subset(self.values != value)
        k = self.count_of(value)
        if self._moments is not None or self._parts:
            # its exact sums less the value's: no pass over the values again
            less = exact_moments(np.array([value]), np.array([k])) if k else (0, 0, 0, 0)
            out._moments = tuple(a - b for a, b in zip(self.moments, less))
        return out

    def below(self, value: float) -> "Values":
        return self.subset(self.values < value)

    def above(self, value: float) -> "Values":
        return self.subset(self.values > value)


def _as_values(x) -> Values:
    return x if hasattr(x, "moments") else Values.from_array(x)


def _mean(v) -> float:
    n, s1, _, _ = v.moments
    return _ratio(s1, n << _UNIT1) if n else math.nan


def _abs_mean(v) -> float:
    n, _, sa, _ = v.moments
    return _ratio(sa, n << _UNIT1) if n else math.nan


def _std(v, ddof: int = 0) -> float:
    n, s1, _, s2 = v.moments
    if n - ddof <= 0:
        return math.nan
    return math.sqrt(_ratio(n * s2 - s1 * s1, (n * (n - ddof)) << _UNIT2))


def _percentile(v, q: float) -> float:
    """numpy's ``np.percentile(values, 100 q)`` (method "linear") from the order statistics."""
    n = v.n
    virtual = (n - 1) * q
    if virtual >= n - 1:
        return v.order_stat(n - 1)
    prev = math.floor(virtual)
    gamma = virtual - prev
    a, b = v.order_stat(prev), v.order_stat(prev + 1)
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def percentile_ranks(n: int, qs=(0.25, 0.5, 0.75)) -> set[int]:
    """The order statistics :func:`_percentile` and :func:`_median` read for ``n`` values."""
    out = set()
    for q in qs:
        virtual = (n - 1) * q
        out |= {n - 1} if virtual >= n - 1 else {math.floor(virtual), math.floor(virtual) + 1}
    return out


def _median(v) -> float:
    """numpy's ``np.median`` of the finite values (the mean of the two middle ones for even counts)."""
    n = v.n
    if n % 2:
        return v.order_stat(n // 2)
    return (v.order_stat(n // 2 - 1) + v.order_stat(n // 2)) / 2


def _nan_stat(v, name: str) -> float:
    """numpy's ``nanmean``, ``nanvar``, ``nanmin``, ``nanmax``, ``nanmedian`` of a column (infinities
    count; NaN does not), as the fitted-object test reads them."""
    total = v.n + v.posinf + v.neginf
    if not total:
        return math.nan
    if name == "min":
        return -math.inf if v.neginf else (v.min if v.n else math.inf)
    if name == "max":
        return math.inf if v.posinf else (v.max if v.n else -math.inf)
    if name == "mean":
        if v.posinf or v.neginf:
            return math.nan if v.posinf and v.neginf else (math.inf if v.posinf else -math.inf)
        return _mean(v)
    if name == "var":
        return math.nan if v.posinf or v.neginf else _var(v)
    if name == "median":
        def at(k):  # the k-th smallest of -inf..., finite..., +inf...
            if k < v.neginf:
                return -math.inf
            return v.order_stat(k - v.neginf) if k < v.neginf + v.n else math.inf
        if total % 2:
            return at(total // 2)
        return (at(total // 2 - 1) + at(total // 2)) / 2
    raise ValueError(name)


def _var(v) -> float:
    n, s1, _, s2 = v.moments
    return _ratio(n * s2 - s1 * s1, (n * n) << _UNIT2) if n else math.nan


def nan_stat_ranks(total_nan_free: int) -> set[int]:
    """The positions :func:`_nan_stat` ("median") reads among a column's non-NaN values."""
    t = total_nan_free
    return {t // 2} if t % 2 else {t // 2 - 1, t // 2}


class ColumnTable:
    """One numeric column of every split: its distinct finite values (sorted) with a count per
    split, and per split the counts of NaN, +inf and -inf. ``of(splits)`` is the column over a
    set of splits (:class:`Values`)."""

    def __init__(self, values: np.ndarray, counts: dict, special: dict):
        self.values = np.asarray(values, dtype=np.float64)
        self.counts = {k: np.asarray(c, dtype=np.int64) for k, c in counts.items()}
        self.special = special          # split -> (posinf, neginf, nan)
        self._of: dict = {}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "ColumnTable":
        per = {k: Values.from_array(v) for k, v in arrays.items()}
        uniq = np.unique(np.concatenate([p.values for p in per.values()])) if per else np.empty(0)
        counts = {}
        for k, p in per.items():
            c = np.zeros(len(uniq), dtype=np.int64)
            c[np.searchsorted(uniq, p.values)] = p.counts
            counts[k] = c
        out = cls(uniq, counts, {k: (p.posinf, p.neginf, p.nan) for k, p in per.items()})
        out._of.update({(k,): p for k, p in per.items()})
        return out

    def of(self, splits: tuple) -> Values:
        splits = tuple(splits)
        if splits not in self._of:
            total = sum(self.counts[s] for s in splits)
            keep = total > 0
            special = [sum(self.special[s][i] for s in splits) for i in range(3)]
            union = Values(self.values[keep], total[keep], *special)
            # a union's exact sums are its splits' added (each split's computed once)
            union._parts = [self.of((s,)) for s in splits] if len(splits) > 1 else []
            self._of[splits] = union
        return self._of[splits]


class TableColumns:
    """The tables' numeric columns as the check reads them: ``names[split]`` (the numeric columns of
    each split) and ``column(name)`` (a :class:`ColumnTable`, built on first use)."""

    def __init__(self, frames: dict):
        self.frames = frames
        self.names = {k: [str(c) for c in f.columns] for k, f in frames.items()}
        self._cache: dict = {}

    def column(self, name: str) -> ColumnTable:
        if name not in self._cache:
            self._cache[name] = ColumnTable.from_arrays(
                {k: f[name].to_numpy() for k, f in self.frames.items() if name in f.columns})
        return self._cache[name]


def _stats(v) -> dict:
    """Mean, standard deviations, range, median and IQR of a column's finite values (:class:`Values`)."""
    if not v.n:
        return {}
    q25, med, q75 = (_percentile(v, q) for q in (0.25, 0.5, 0.75))
    return {"mean": _mean(v), "std0": _std(v), "std1": _std(v, 1) if v.n > 1 else np.nan,
            "min": v.min, "max": v.max, "median": med, "iqr": q75 - q25}


def _close(x, target, tol) -> bool:
    return bool(np.isfinite(x) and abs(x - target) <= tol)


def _marks(s: dict, tol: float) -> set[str]:
    """Which scalings leave exactly these statistics."""
    if not s:
        return set()
    out = set()
    if _close(s["mean"], 0, tol) and (_close(s["std0"], 1, tol) or _close(s["std1"], 1, tol)):
        out.add("standard")
    if _close(s["min"], 0, tol) and _close(s["max"], 1, tol):
        out.add("minmax")
    if _close(s["median"], 0, tol) and _close(s["iqr"], 1, tol):
        out.add("robust")
    return out


def _fill_candidates(values, min_count: int = 3, top: int = 5) -> list[tuple[float, int, bool]]:
    """Values repeated often enough to be fill values: (value, count, stands_out), most frequent first.

    ``values``: a column's finite values (:class:`Values`, or an array). ``stands_out``: repeated at
    least twice as often as any other value (what a fill value looks like in a continuous column,
    and what the weaker median test asks for).
    """
    v = _as_values(values)
    if v.n < 10 or v.top_count < min_count:
        return []  # (also where no distinct values are held: the Spark engine's continuous columns)
    uniq, counts = v.values, v.counts
    if len(uniq) < 3:
        return []
    order = np.argsort(-counts, kind="stable")[:top]
    second = counts[order[1]] if len(order) > 1 else 0
    out = []
    for rank, k in enumerate(order):
        if counts[k] < min_count:
            break
        if counts[k] > v.n // 2:
            continue
        out.append((float(uniq[k]), int(counts[k]), rank == 0 and counts[k] >= 2 * second))
    return out


def _lattice(values) -> tuple[float, float] | None:
    """(origin, step) when (almost) every value is origin + k * step: data recorded to a few
    decimals, or integers rescaled (scikit-learn's diabetes set); None for continuous data."""
    u = _as_values(values).values
    if len(u) < 3:
        return None
    step = float(np.min(np.diff(u)))
    if step <= 0:
        return None
    k = (u - u[0]) / step
    if np.mean(np.abs(k - np.round(k)) <= 1e-6 * np.maximum(1.0, np.abs(k))) >= 0.95:
        return float(u[0]), step
    return None


def _median_evidence(value: float, others, scale: float) -> tuple[bool, int, bool] | None:
    """(exact midpoint, imbalance, on grid) of ``value`` as the median of ``others`` + real copies.

    Rows equal to the fill value are all set aside as "imputed", but some may be real: in data
    recorded to a few decimals the median is often a real value repeated a few times. With no
    real copy the fill is the exact midpoint of the two middle values (L == G); with ``m`` real
    copies the counts below (L) and above (G) differ by less than ``m``, and the value is on the
    data's grid of recorded decimals.
    """
    others = _as_values(others)
    below, above = others.below(value), others.above(value)
    if not below.n or not above.n:
        return None
    midpoint = below.n == above.n and abs((below.max + above.min) / 2 - value) <= scale
    grid = _lattice(others)
    k = (value - grid[0]) / grid[1] if grid else 0.0
    on_grid = grid is not None and abs(k - round(k)) <= 1e-6 * max(1.0, abs(k))
    return midpoint, abs(below.n - above.n), on_grid


def _copy_slack(value: float, others) -> int:
    """How many real copies of ``value`` to allow: the largest count among its neighbouring values."""
    others = _as_values(others)
    uniq, counts = others.values, others.counts
    pos = np.searchsorted(uniq, value)
    near = counts[max(0, pos - 2): pos + 2]
    return int(near.max()) if len(near) else 1
def _median_fill_over_union(value, others_u, others_t, scale, stands_out) -> bool:
    """The fill value is the union's median and not train's.

    An exact midpoint is strong evidence; a value on the grid with a small imbalance (real copies
    of it) is weaker, so it also asks the value to stand out, and train's imbalance to exceed
    what real copies could explain there (the counts of the neighbouring values).
    """
    eu = _median_evidence(value, others_u, scale)
    et = _median_evidence(value, others_t, scale)
    if eu is None:
        return False
    mid_u, imb_u, grid_u = eu
    if et is not None and et[0]:
        return False  # train's own median too
    if mid_u and (stands_out or not grid_u):
        # off the grid of recorded decimals the value cannot be a real one; on it, a real value
        # repeated a few times sits at the midpoint of discrete data by itself
        return et is None or not (et[2] and et[1] <= imb_u)
    if not (stands_out and grid_u and imb_u <= _copy_slack(value, others_u)):
        return False
    # train's imbalance must exceed what its own real copies could explain
    return et is None or et[1] > _copy_slack(value, others_t)


def _median_need(others, value: float, scale: float) -> int | None:
    """Fewest real copies of ``value`` among the observed values for it to be their median.

    ``others`` are the values other than ``value`` (its rows set aside as possibly imputed). With
    B values below and A above, ``m`` real copies make ``value`` the median when |B - A| < m; with
    none it must be the exact midpoint of the two middle values (B == A). None: never the median.
    """
    others = _as_values(others)
    lower, upper = others.below(value), others.above(value)
    below, above = lower.n, upper.n
    if not below or not above:
        return None
    if below == above and abs((lower.max + upper.min) / 2 - value) <= scale:
        return 0
    return abs(below - above) + 1


def _extra_copy_rate(others, value: float, k: int = 6) -> float:
    """Expected number of extra copies of an observed value near ``value``: the mean of (count - 1)
    over the ``k`` nearest distinct values on each side (ties of data recorded to few decimals)."""
    others = _as_values(others)
    uniq, counts = others.values, others.counts
    pos = np.searchsorted(uniq, value)
    near = counts[max(0, pos - k): pos + k]
    return max(float(np.mean(near - 1)) if len(near) else 0.0, 0.02)
def _log_tail(extra: int, rate: float) -> float:
    """log P(at least ``extra`` extra real copies) when extra copies are Poisson(``rate``)."""
    from scipy.stats import poisson

    if extra <= 0:
        return 0.0
    return float(max(poisson.logsf(extra - 1, rate), -700.0))


def _decimals(x: float, most: int = 9) -> int:
    """Fewest decimals that write ``x`` exactly as the float parsed from them; ``most`` when none do.

    Exact on purpose: a median computed as (2.09 + 2.11) / 2 is 2.0999999999999996, which no value
    recorded as "2.1" equals, so no row holding it is a real one."""
    return next((d for d in range(most) if round(x, d) == x), most)


def _recordable(value: float, others) -> bool:
    """Could ``value`` be a recorded value of the column: no more decimals than (almost) all of its
    observed values have. A midpoint of two recorded values (x.xx5) cannot be, so no row holding
    it is real."""
    uniq = _as_values(others).values
    if len(uniq) > 2000:
        uniq = uniq[np.linspace(0, len(uniq) - 1, 2000).astype(int)]
    return _decimals(value) <= np.percentile([_decimals(float(x)) for x in uniq], 99)


def _like_rate(others, value: float, k: int = 6) -> float:
    """:func:`_extra_copy_rate` among the values written with no more decimals than ``value``: in
    a column of mostly whole numbers with a few fractions (diabetes' blood pressure), a whole
    number is repeated like the whole numbers near it, not like the fractions between them."""
    others = _as_values(others)
    uniq = others.values
    if len(uniq) > 5000:
        return _extra_copy_rate(others, value, k)
    d = _decimals(value)
    like = np.array([_decimals(float(x)) <= d for x in uniq], dtype=bool)
    if like.sum() < 2 * k:
        return _extra_copy_rate(others, value, k)
    return _extra_copy_rate(others.subset(like), value, k)


def _copy_prior(others, value: float, k: int = 6) -> tuple[float, float]:
    """(mean, variance) of the number of real copies of ``value`` among the observed rows, read from
    its neighbours: the counts of the ``k`` nearest recorded values on each side written with no
    more decimals than ``value``, over every point of their grid in that window (a grid point no row
    holds counts 0). Data recorded to few decimals heap on round values (blood pressure 93 held 21
    times, 94 nine times), so the variance is the neighbours' own, at least their mean (Poisson).
    A value that cannot be recorded (a midpoint x.xx5 of 2-decimal data) has no real copy: (0, 0).
    """
    others = _as_values(others)
    if not _recordable(value, others):
        return 0.0, 0.0
    uniq, counts = others.values, others.counts
    d = _decimals(value)
    if len(uniq) <= 5000:
        like = np.array([_decimals(float(x)) <= d for x in uniq])
        if like.sum() >= 2 * k:
            uniq, counts = uniq[like], counts[like]
    pos = np.searchsorted(uniq, value)
    lo, hi = max(0, pos - k), min(len(uniq), pos + k)
    win_u, win_c = uniq[lo:hi], counts[lo:hi]
    if len(win_u) < 2:
        return 1.0, 1.0
    # the grid: the coarsest step the window's values and the value itself sit on (10^-d at least,
    # so data recorded in steps of 5 or 0.05 is not spread over empty points)
    step = 10.0 ** -d if d < 9 else float(np.min(np.diff(win_u)))
    gaps = np.diff(np.append(win_u, value)[np.argsort(np.append(win_u, value))])
    gaps = gaps[gaps > step / 2]
    if len(gaps):
        coarse = float(np.min(gaps))
        pts = (np.append(win_u, value) - win_u[0]) / coarse
        if coarse > step and np.all(np.abs(pts - np.round(pts)) <= 1e-6 * np.maximum(1.0, np.abs(pts))):
            step = coarse
    span_lo, span_hi = min(win_u[0], value), max(win_u[-1], value)
    n_points = int(round((span_hi - span_lo) / step))  # grid points in the window, less the value's own
    n_points = max(n_points, len(win_u))
    full = np.zeros(n_points)
    full[:len(win_c)] = win_c
    mean = float(full.mean())
    return mean, max(float(full.var(ddof=1)) if n_points > 1 else mean, mean, 0.05)




def p_train_median(n_train: int, n_eval: int, need_union: int | None, need_train: int | None,
                   rate: float, recordable: bool, copies: tuple[float, float] | None = None) -> float | None:
    """P(train's real values have the fill value as median | the union's real values do).

    ``n_train``/``n_eval`` rows of each side hold the fill value; ``m`` of them are real copies
    (the others imputed). Prior on ``m``: a recorded value is repeated like its neighbours
    (``m - 1`` Poisson(``rate``)), a value that cannot be recorded has no real copy; an imputer
    fitted on the union needs ``m >= need_union``. Given ``m``, which of the rows are real is a
    draw without replacement, so the train side holds ``a`` of them with hypergeometric odds;
    train's median is the fill value when ``a >= need_train`` (see :func:`_median_need`).
    Unlike a column-wise test of train alone, this uses the count of real copies the union's
    median demands (real copies in train and evaluation are one pool).

    ``copies`` (mean, variance; :func:`_copy_prior`) replaces that prior with a negative binomial
    of ``m`` (Poisson when the variance is the mean) read from the neighbours' counts over their
    grid, zeros included.

    >>> round(p_train_median(10, 3, 4, 1, 0.5, True), 3)  # 4+ real copies, train needs one
    1.0
    >>> p_train_median(10, 3, 0, 2, 0.5, False)  # a midpoint: no real copy, train needs two
    0.0
    """
    from scipy.special import gammaln
    from scipy.stats import poisson

    if need_union is None:
        return None
    a = np.arange(n_train + 1)[:, None]
    b = np.arange(n_eval + 1)[None, :]
    m = a + b
    n = n_train + n_eval
    log_choose = lambda k, j: gammaln(k + 1) - gammaln(j + 1) - gammaln(k - j + 1)  # noqa: E731
    logw = log_choose(n_train, a) + log_choose(n_eval, b) - log_choose(n, m)
    if not recordable:
        prior = np.where(m == 0, 0.0, -np.inf)
    elif copies is not None:
        mean, var = max(copies[0], 0.02), max(copies[1], copies[0], 0.02)
        if var <= mean * 1.0001:
            prior = poisson.logpmf(m, mean)
        else:  # negative binomial with that mean and variance
            from scipy.stats import nbinom

            prior = nbinom.logpmf(m, mean ** 2 / (var - mean), mean / var)
    else:
        # a recorded value with no real copy at all is possible but rare where the median falls
        prior = np.where(m >= 1, poisson.logpmf(np.maximum(m - 1, 0), max(rate, 0.02)), np.log(0.05))
    logw = np.where(m >= need_union, logw + prior, -np.inf)
    if not np.isfinite(logw).any():
        return None
    w = np.exp(logw - logw[np.isfinite(logw)].max())
    ok = a >= (need_train if need_train is not None else n + 1)
    return float((w * ok).sum() / w.sum())


def median_fill_evidence(vu, vt, tol_scale: float = 1e-9,
                         union_known: bool = False) -> dict | None:
    """How well "imputed with the union's median" and "with train's median" explain a column.

    For the likeliest fill value (a value repeated in the column), the number of real copies each
    hypothesis needs (``need_union``, ``need_train``: see :func:`_median_need`) and the log
    probability of that many real ties (``log_p_union``, ``log_p_train``), the tie rate read from
    the neighbouring values. The median of an odd number of values is itself an observation, so
    one real copy comes free. Column-wise this evidence is weak on data with many ties; summed
    over the columns one imputer filled, it decides which split the imputer saw.

    ``union_known``: the table is known to be imputed over the union (the columns voted so), so
    the fill value is the column's median (copies of the union's median added at the median leave
    it there), not only a value repeated more than any other by a margin (integer data ties a lot:
    a fill of 98 in wine's magnesium is repeated 16 times, 88 is repeated 12 times by itself); it
    must be repeated beyond its neighbours' ties (a column with no missing value has no fill), and
    ``copies`` (:func:`_copy_prior`) is the prior ``p_train_median`` uses for its real copies.
    """
    fin_u, fin_t = _as_values(vu), _as_values(vt)
    best = None
    if union_known and fin_u.top_count <= 2 and _log_tail(1, 0.02) > np.log(MEDIAN_FILL_TIES_P):
        # no value is held 3 times, so the median is held at most twice, and a count of 2 never
        # passes the ties test below (rate >= 0.02): no evidence, as the loop would find; the Spark
        # engine holds no distinct values of such (continuous) columns
        return None
    candidates = _fill_candidates(fin_u)
    second = candidates[1][1] if len(candidates) > 1 else 0
    if union_known and fin_u.n:
        # filled with the union's median, a column's median IS the fill (copies of the median added
        # at the median leave it there): the one candidate, also where real values are repeated
        # more often than it (wine's magnesium: the fill 98 held 12 times is not in the top five)
        median = _median(fin_u)
        candidates = [(median, fin_u.count_of(median), False)] if fin_u.count_of(median) >= 2 else []
    for rank, (value, count, _) in enumerate(candidates):
        others_u, others_t = fin_u.without(value), fin_t.without(value)
        if others_t.n < 2 or (not union_known and (rank > 0 or count < 1.5 * second)):
            continue  # a fill value is the column's most repeated value, by a margin
        scale = (_abs_mean(others_u) + _std(others_u)) * tol_scale
        if abs(value - _mean(others_u)) <= scale or (not union_known and abs(value - _mean(others_t)) <= scale):
            continue  # a mean fill (the mean test above tells which split it came from); in a table
            # known to hold the union's medians, a fill equal to train's mean is a coincidence
        nu, nt = _median_need(others_u, value, scale), _median_need(others_t, value, scale)
        if nu is None and nt is None:
            continue
        if union_known and (nu is None or nu > count):
            continue  # not the union's median even if every row holding it were real: not its fill
            # (a column with no missing value has no fill; its most repeated value is data)
        ru, rt = _extra_copy_rate(others_u, value), _extra_copy_rate(others_t, value)
        if _log_tail(count - 1, ru) > np.log(MEDIAN_FILL_TIES_P if union_known else 1e-3):
            continue  # repeated no more than the neighbouring values are: a value of the data, not a fill
        lu = _log_tail(nu - 1, ru) if nu is not None else -700.0
        lt = _log_tail(nt - 1, rt) if nt is not None else -700.0
        n_train, recordable = fin_t.count_of(value), _recordable(value, others_u)
        # in a table known to be imputed over the union, the real copies' prior is the neighbours'
        # counts over their grid (empty points included; heaps widen it): see _copy_prior
        copies = _copy_prior(others_u, value) if union_known else None
        ev = {"value": value, "count": count, "need_union": nu, "need_train": nt,
              "log_p_union": lu, "log_p_train": lt, "count_train": n_train, "copies": copies,
              "p_train_median": p_train_median(n_train, count - n_train, nu, nt, _like_rate(others_u, value),
                                               recordable, copies=copies)}
        if union_known:
            if best is None or (lu, count) > (best["log_p_union"], best["count"]):
                best = ev
        elif best is None or max(lu, lt) > max(best["log_p_union"], best["log_p_train"]):
            best = ev
    return best


# table-level decision for median imputation (see _median_table): a column counts when one of the
# two hypotheses is plausible (p >= 5%); its vote is the log-likelihood ratio clipped to +-10;
# the table is "imputed over the union" when the votes for it sum to 6 (odds e^6 ~ 400 : 1) and
# the votes against do not undo that. Measured on 20 seeds x 3 scikit-learn sets (8% missing):
# every leaky table and no clean table passes.
MEDIAN_PLAUSIBLE = np.log(0.05)
MEDIAN_VOTE_CLIP = 10.0
MEDIAN_TABLE_ODDS = 6.0
# a column of a union-imputed table is reported when train's own median is the fill value with
# probability below this (p_train_median with the neighbours' grid counts as the prior on real
# copies). Measured on 20 seeds x 3 sets (benchmarks/bench_checks_planted.py --seeds 20 --only
# impute_median): 0.4 balances recall and precision; 0.5 is the error-minimising rule for a
# calibrated posterior, but the neighbours under-count the copies of a median that sits on a heap
# of the data (wine's alcohol 13.05, diabetes' blood pressure 93), so the posterior leans "union"
MEDIAN_TRAIN_P = 0.4
# a column the column-wise midpoint/grid test found stays found unless the posterior says train's
# own median is the fill too with at least this probability (integer data: 185 and 187 balanced
# around a median of 186 that rows really hold look like a midpoint fill)
MEDIAN_STRICT_TRAIN_P = 0.7
# in a table imputed over the union, a column's median is taken for its fill when it is repeated
# more than its neighbours' ties explain at this level (a column with no missing value has no fill)
MEDIAN_FILL_TIES_P = 1e-2


def _median_table(evidence: dict, strict: list = (), union_evidence: dict | None = None,
                  probabilities: dict | None = None) -> list[str]:
    """Columns imputed with the union's median, decided over the columns together.

    ``strict``: columns the column-wise test already found (each a full vote for the union; reported
    unless their union evidence puts train's own median at the fill with P >= MEDIAN_STRICT_TRAIN_P).
    ``union_evidence``: per column, :func:`median_fill_evidence` with ``union_known=True`` (or a
    function returning that), read once the table is found imputed over the union (default:
    ``evidence``).
    ``probabilities``: a dict filled with P(train's own median differs from the fill) per reported
    column that has one (on data recorded to few decimals a column's verdict is a probability).
    """
    votes = {c: MEDIAN_VOTE_CLIP for c in strict}
    for col, ev in evidence.items():
        if ev is None or max(ev["log_p_union"], ev["log_p_train"]) < MEDIAN_PLAUSIBLE:
            continue  # a spike value (an integer among decimals): its real copies are unknown
        votes[col] = float(np.clip(ev["log_p_union"] - ev["log_p_train"], -MEDIAN_VOTE_CLIP, MEDIAN_VOTE_CLIP))
    pos = sum(v for v in votes.values() if v > 0)
    total = sum(votes.values())
    if pos < MEDIAN_TABLE_ODDS or total < MEDIAN_TABLE_ODDS:
        return []
    # the imputer saw the union; a column's train median differs from the fill value unless train
    # holds enough real copies of it, which is unlikely (p < 1/2) for the columns reported. Every
    # column of the table counts here (also those voting "train": one imputer filled them all)
    if callable(union_evidence):
        union_evidence = union_evidence()  # computed only for tables imputed over the union
    union_evidence = evidence if union_evidence is None else union_evidence
    found = {c: ev for c, ev in union_evidence.items() if ev is not None}
    # a value repeated far more than the table's fills is a mode of the data (diabetes' s4 holds
    # 4.0 a hundred times), whose real copies the tie model cannot count
    typical = np.median([ev["count"] for ev in found.values()]) if found else 0
    # a column the column-wise test found stays found unless its real copies say train's median is
    # the fill too (integer data: 185 and 187 balanced around a median of 186 that rows really hold)
    out = ([c for c in strict if c not in found or _union_column(found[c], MEDIAN_STRICT_TRAIN_P)]
           + [c for c, ev in found.items() if c not in strict and ev["count"] <= 2 * typical and _union_column(ev)])
    if probabilities is not None:
        probabilities.update({c: 1.0 - found[c]["p_train_median"] for c in out
                              if c in found and found[c].get("p_train_median") is not None})
    return out


def _union_column(ev: dict, threshold: float | None = None) -> bool:
    """Train's own median differs from the union's fill value (P below ``threshold``, default
    MEDIAN_TRAIN_P), for a table imputed over the union: the joint estimate of real copies
    (:func:`p_train_median`), or, where it has no answer, train's tie model alone."""
    p = ev.get("p_train_median")
    if p is None:
        return ev["log_p_train"] < np.log(0.5)
    return p < (MEDIAN_TRAIN_P if threshold is None else threshold)


@register_check
class PreprocessingContamination(Check):
    """Scalers, imputers and other fitted transforms that saw the evaluation data.

    >>> report = lg.audit({"train": X_tr, "test": X_te}, fitted=[pipeline])  # doctest: +SKIP
    >>> [f.features for f in report.by_check()["preprocessing_contamination"]]  # doctest: +SKIP
    """

    name = NAME
    order = 70
    description = "transforms fitted on train and evaluation together (scaler statistics, imputation, fitted objects)"

    def applies(self, splits) -> bool:
        # the data marks need tables; fitted objects are checked for any modality (run() reads them)
        return True

    def run(self, ctx: AuditContext) -> list[Finding]:
        findings = []
        fitted = (ctx.shared.get("inputs") or {}).get("fitted")
        columns = TableColumns(_numeric_frames(ctx.splits)) if ctx.splits.modality == "tabular" else None
        if fitted is not None:
            findings += self._from_fitted(ctx, fitted, columns)
        if columns is not None:
            findings += self._from_data(ctx, columns)
        return findings

    # ------------------------------------------------------------------ from the data
    def _from_data(self, ctx, columns=None) -> list[Finding]:
        """Findings from the data. ``columns``: the numeric columns as the decisions read them
        (``names[split]``, ``column(name).of(splits)``: :class:`TableColumns`); default the tables'
        own. The Spark engine passes their statistics computed in the executors, without the
        columns that cannot leave a mark (:mod:`leakguard.search.spark_preprocessing`)."""
        opts = ctx.config.options(self.name)
        tol = float(opts.get("tolerance", 1e-6))
        min_unique = int(opts.get("min_unique", 10))
        columns = TableColumns(_numeric_frames(ctx.splits)) if columns is None else columns
        train = ctx.train
        cols = [c for c in columns.names[train] if all(c in names for names in columns.names.values())]
        found: dict[tuple, list] = {}
        done: set[str] = set()
        median_probability: dict[tuple, dict] = {}
        for union in _unions(ctx.splits):
            median_evidence: dict = {}
            strict_median: dict = {}
            for c in cols:
                if c in done:
                    continue
                vt, vu = columns.column(c).of((train,)), columns.column(c).of(union)
                n_unique = vu.n_distinct
                if n_unique < 2:
                    continue
                st, su = _stats(vt), _stats(vu)
                new = _marks(su, tol) - _marks(st, tol)
                if n_unique < min_unique:
                    # a natural 0/1 or 0..1 column has minimum 0 and maximum 1 by itself; an exact
                    # mean 0 and standard deviation 1 does not happen by chance
                    new.discard("minmax")
                for kind in sorted(new):
                    found.setdefault((kind, union), []).append((c, st, su))
                    done.add(c)
                if c in done:
                    continue
                kind = self._imputation(vt, vu, tol)
                if kind == "impute_mean":
                    found.setdefault((kind, union), []).append((c, st, su))
                    done.add(c)
                elif kind == "impute_median":
                    strict_median[c] = (None, st, su)
                else:
                    median_evidence[c] = (median_fill_evidence(vu, vt), st, su)
            # median fills: one imputer filled the table, so the columns decide together; a column
            # the column-wise test found counts fully, but a table whose other columns say "fitted
            # on train" outvotes it (real ties can mimic a union median in one column)
            table = _median_table({c: e[0] for c, e in median_evidence.items()}, list(strict_median),
                                  union_evidence=lambda: self._union_evidence(columns, train, union,
                                                                               {**median_evidence, **strict_median}),
                                  probabilities=median_probability.setdefault(union, {}))
            for c in table:
                _, st, su = strict_median.get(c) or median_evidence[c]
                found.setdefault(("impute_median", union), []).append((c, st, su))
                done.add(c)
        out = []
        for (kind, union), rows in found.items():
            out.append(self._data_finding(ctx, kind, union, rows,
                                          median_probability.get(union) if kind == "impute_median" else None))
        return out

    @staticmethod
    def _union_evidence(columns, train, union, names) -> dict:
        return {c: median_fill_evidence(columns.column(c).of(union), columns.column(c).of((train,)), union_known=True)
                for c in names}

    @staticmethod
    def _imputation(vt, vu, tol: float) -> str | None:
        fin_u, fin_t = _as_values(vu), _as_values(vt)
        for value, _, stands_out in _fill_candidates(fin_u):
            others_u = fin_u.without(value)
            others_t = fin_t.without(value)
            if others_t.n < 2:
                continue
            spread = _abs_mean(others_u) + _std(others_u)
            # the mean of the non-missing values is the fill value whatever number of them equal
            # it; floating-point sums agree to ~1e-15, so the test is tight
            exact = spread * 1e-9
            if abs(value - _mean(others_u)) <= exact and abs(value - _mean(others_t)) > exact:
                return "impute_mean"
            if _median_fill_over_union(value, others_u, others_t, exact, stands_out):
                return "impute_median"
        return None

    def _data_finding(self, ctx, kind, union, rows, probability: dict | None = None) -> Finding:
        what, fix = KINDS[kind]
        feats = [c for c, _, _ in rows]
        c, st, su = rows[0]
        joined = " + ".join(repr(n) for n in union)
        if kind == "standard":
            fig = (f"mean {su['mean']:.2g} and standard deviation {su['std0']:.6g} over {joined}, but mean "
                   f"{st['mean']:.4g} and standard deviation {st['std0']:.4g} over {ctx.train!r} alone")
        elif kind == "minmax":
            fig = (f"range [{su['min']:.4g}, {su['max']:.6g}] over {joined}, but [{st['min']:.4g}, "
                   f"{st['max']:.4g}] over {ctx.train!r} alone")
        elif kind == "robust":
            fig = (f"median {su['median']:.2g} and inter-quartile range {su['iqr']:.6g} over {joined}, but "
                   f"median {st['median']:.4g} and IQR {st['iqr']:.4g} over {ctx.train!r} alone")
        else:
            stat = "mean" if kind == "impute_mean" else "median"
            fig = (f"a fill value repeated in many rows that equals the {stat} of the other values over "
                   f"{joined} ({su[stat]:.6g} with the fill rows), not over {ctx.train!r} alone")
        n_eval = sum(len(ctx.splits[n]) for n in union if n != ctx.train)
        return Finding(
            check=self.name, severity=ctx.severity(self.name, "warning"),
            title=f"{len(feats)} feature{'s' if len(feats) != 1 else ''} {what.split(' (')[0]} over {joined} together",
            detail=(f"{len(feats)} feature{'s' if len(feats) != 1 else ''} look {what} with statistics of "
                    f"{joined} together, e.g. {c!r}: {fig}. A transform fitted on the evaluation data "
                    f"passes its statistics into training, so scores on {', '.join(repr(n) for n in union[1:])} "
                    "come out a little better than on new data."),
            remedy=(f"Fit the {fix} on {ctx.train!r} only and apply it to the other splits: split first, "
                    "then fit a scikit-learn Pipeline on the training split."),
            splits=union, count=n_eval, features=feats,
            extra={"kind": kind, "source": "data", "union": list(union),
                   # median fills on data with ties: how sure each reported column is
                   **({"p_contaminated": {c: round(float(probability[c]), 3) for c in feats if c in probability}}
                      if probability else {})})

    # ------------------------------------------------------------------ from fitted objects
    def _from_fitted(self, ctx, fitted, columns=None) -> list[Finding]:
        """Findings from fitted objects; ``columns`` as in :meth:`_from_data` (every numeric column;
        default the tables' own, None for data that are not tables)."""
        tol = float(ctx.config.options(self.name).get("tolerance", 1e-6))
        splits = ctx.splits
        train = ctx.train
        sizes = {n: len(s) for n, s in splits.items()}
        union_sizes = {u: sum(sizes[n] for n in u) for u in _unions(splits)}
        if columns is None and splits.modality == "tabular":
            columns = TableColumns(_numeric_frames(splits))
        train_names = columns.names[train] if columns is not None else None
        out = []
        for label, est, est_columns in _walk(fitted):
            seen = _n_seen(est)
            stats_hit = self._stat_match(est, est_columns, columns, splits, tol) if columns is not None else None
            name = type(est).__name__
            where = f"{name}" + (f" ({label})" if label else "")
            if stats_hit is not None:
                union, feats, attr = stats_hit
                joined = " + ".join(repr(n) for n in union)
                out.append(Finding(
                    check=self.name, severity=ctx.severity(self.name, "warning"),
                    title=f"fitted {where} was fitted on {joined} together",
                    detail=(f"Its {attr} equals the statistics of {joined} together, not of {train!r} alone, "
                            f"for {len(feats)} feature{'s' if len(feats) != 1 else ''} (e.g. {feats[0]!r})"
                            + (f"; it saw {seen} samples, {train!r} has {sizes[train]}" if seen else "")
                            + ". The evaluation data shaped a transform the model trains through."),
                    remedy=(f"Refit it on {train!r} only: fit the whole Pipeline on the training split "
                            "and only transform the others."),
                    splits=union, count=sum(sizes[n] for n in union if n != train), features=feats,
                    extra={"kind": "fitted", "object": where, "attribute": attr, "n_samples_seen": seen,
                           "union": list(union)}))
                continue
            if seen is None or seen <= sizes[train]:
                continue
            match = [u for u, n in union_sizes.items() if n == seen]
            if match:
                union = match[0]
                joined = " + ".join(repr(n) for n in union)
                how = f"exactly as many as {joined} together ({seen})"
            else:
                union = tuple(splits)
                how = f"more than the {sizes[train]} of {train!r}"
            out.append(Finding(
                check=self.name, severity=ctx.severity(self.name, "warning"),
                title=f"fitted {where} saw {seen} samples; {train!r} has {sizes[train]}",
                detail=(f"Its n_samples_seen_ is {seen}, {how}: it was fitted on more than the training "
                        "split, most likely on the data before it was split."),
                remedy=(f"Refit it on {train!r} only: fit the whole Pipeline on the training split "
                        "and only transform the others."),
                splits=union, count=sum(sizes[n] for n in union if n != train),
                features=_feature_names(est, est_columns) or _columns_for(est, est_columns, train_names)
                if columns is not None else _feature_names(est, est_columns),
                extra={"kind": "fitted", "object": where, "attribute": "n_samples_seen_",
                       "n_samples_seen": seen, "exact_union": bool(match), "union": list(union)}))
        return out

    @staticmethod
    def fitted_statistics(est) -> list[tuple[str, np.ndarray, str]]:
        """(attribute, its values, the column statistic it is compared with: a :func:`_nan_stat`
        name) for each statistic of a fitted object that can tell its fit's data."""
        checks = []
        for attr, stat in (("mean_", "mean"), ("var_", "var"), ("data_min_", "min"), ("data_max_", "max"),
                           ("center_", "median")):
            val = getattr(est, attr, None)
            if val is not None:
                checks.append((attr, np.asarray(val, dtype=np.float64).ravel(), stat))
        stats = getattr(est, "statistics_", None)
        strategy = getattr(est, "strategy", None)
        if stats is not None and strategy in ("mean", "median"):
            checks.append(("statistics_", np.asarray(stats, dtype=np.float64).ravel(), strategy))
        return checks

    def _stat_match(self, est, est_columns, columns, splits, tol):
        """(union, features, attribute) when a fitted statistic matches a union and not train."""
        cols = _columns_for(est, est_columns, columns.names[splits.train])
        if cols is None:
            return None
        for attr, val, stat in self.fitted_statistics(est):
            if len(val) != len(cols):
                continue
            vt = np.asarray([_nan_stat(columns.column(c).of((splits.train,)), stat) for c in cols])
            scale = np.abs(val) + 1.0
            for union in _unions(splits):
                vu = np.asarray([_nan_stat(columns.column(c).of(union), stat) for c in cols])
                # only features whose train and union statistics differ can tell the two fits apart
                differ = np.abs(vu - vt) > tol * scale
                hit = differ & (np.abs(vu - val) <= tol * scale)
                if differ.any() and hit.sum() >= 0.9 * differ.sum():
                    return union, [c for c, h in zip(cols, hit) if h], attr
        return None


def _walk(obj, label: str = "", columns=None):
    """(label, fitted estimator, its input columns or None) for every transformer inside ``obj``."""
    if obj is None:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, str(k), columns)
        return
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "fit"):
        for i, v in enumerate(obj):
            yield from _walk(v, label or f"fitted[{i}]", columns)
        return
    if hasattr(obj, "best_estimator_"):
        yield from _walk(obj.best_estimator_, label, columns)
        return
    if hasattr(obj, "steps"):  # Pipeline: the first step sees the pipeline's input columns
        for k, (step, est) in enumerate(obj.steps):
            if est in (None, "passthrough"):
                continue
            yield from _walk(est, f"{label + ': ' if label else ''}step {step!r}", columns if k == 0 else False)
        return
    if hasattr(obj, "transformers_"):  # ColumnTransformer
        for tname, est, cols in obj.transformers_:
            if est in ("drop", "passthrough") or est is None:
                continue
            sub = list(cols) if isinstance(cols, (list, tuple, np.ndarray)) and len(cols) and \
                isinstance(list(cols)[0], str) else columns
            yield from _walk(est, f"{label + ': ' if label else ''}transformer {tname!r}", sub)
        return
    if hasattr(obj, "transformer_list"):
        for tname, est in obj.transformer_list:
            yield from _walk(est, f"{label + ': ' if label else ''}{tname!r}", columns)
        return
    yield label, obj, columns


def _n_seen(est) -> int | None:
    n = getattr(est, "n_samples_seen_", None)
    if n is None and getattr(est, "_fit_X", None) is not None:
        n = np.shape(est._fit_X)[0]
    if n is None:
        return None
    return int(np.max(np.asarray(n)))


def _columns_for(est, columns, train_columns: list[str]):
    """The audited columns the estimator was fitted on, or None when that cannot be told.

    ``columns`` False means the estimator sits after another step (its input is transformed data);
    ``train_columns``: the training split's numeric columns.
    """
    if columns is False:
        return None
    names = getattr(est, "feature_names_in_", None)
    if names is not None:
        names = [str(c) for c in names]
        return names if all(c in train_columns for c in names) else None
    if columns:
        return [str(c) for c in columns] if all(str(c) in train_columns for c in columns) else None
    n_in = getattr(est, "n_features_in_", None)
    if n_in is not None and n_in == len(train_columns):
        return list(train_columns)
    return None


def _feature_names(est, columns) -> list[str] | None:
    names = getattr(est, "feature_names_in_", None)
    if names is not None:
        return [str(c) for c in names]
    if columns:
        return [str(c) for c in columns]
    return None
