"""oversampling_leakage: synthetic minority samples made before the split, parents in another split.

Oversampling belongs inside the training split. Done on the whole data set before splitting, it
puts copies of (random oversampling) or interpolations between (SMOTE, Borderline-SMOTE, ADASYN,
SVM-SMOTE) minority samples on both sides of the split:

- random oversampling: exact copies concentrated in the minority classes (far more copies per
  sample than in the majority class) that sit in two splits;
- interpolation: a sample lying on the segment between two others of its class
  (``s = a + lambda * (b - a)``, ``0 < lambda < 1``, to floating-point precision), where a parent
  and the synthetic sample sit in different splits. Candidates come from a k-nearest-neighbour
  search inside each class (``leakguard.search.nearest``): from each sample, the directions to
  its neighbours are compared pairwise, and two neighbours on one ray make a triple.

Tabular data and equal-length series. Options (``check_options={"oversampling_leakage": {...}}``):
``k`` (neighbours per sample, default 50), ``tolerance`` (relative distance to the segment,
default 1e-6), ``min_unique`` (distinct values a column needs to be used, default 10).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..report import Finding, make_pairs
from .base import AuditContext, Check, register_check
from .groups import PooledIndex

NAME = "oversampling_leakage"


def series_values(item) -> np.ndarray:
    """A series sample as the check reads it (the Spark engine converts alike, failing alike)."""
    return np.asarray(item, dtype=np.float64).ravel()


def _pooled_matrix(splits, min_unique: int):
    """(pooled float matrix of continuous columns, column names, pooled full frame or None)."""
    if splits.modality == "tabular":
        frames = [splits[n].source.frame.rename(columns=str) for n in splits]
        cols = [c for c in frames[0].columns
                if all(c in f.columns for f in frames)
                and pd.api.types.is_numeric_dtype(frames[0][c]) and not pd.api.types.is_bool_dtype(frames[0][c])]
        full = pd.concat([f[list(frames[0].columns)] for f in frames], ignore_index=True)
        num = full[cols].astype(np.float64)
        keep = [c for c in cols if num[c].nunique() >= min_unique]
        return num[keep].to_numpy(), keep, full
    items = []
    for n in splits:
        src = splits[n].source
        for i in range(len(src)):
            items.append(series_values(src.load(i)))
    lengths = {len(v) for v in items}
    if len(lengths) != 1:
        return None, [], None
    X = np.vstack(items) if items else np.zeros((0, 0))
    return X, [f"t{i}" for i in range(X.shape[1])], None


GRID_LEVELS = 7  # decimals tried by the grid test: 10^0 .. 10^-6


def _grid_hits(col: np.ndarray, k: int) -> np.ndarray:
    """Per value: True when it is on the grid of ``10^-k`` (or not finite)."""
    s = col * 10 ** k
    return ~np.isfinite(col) | (np.abs(s - np.round(s)) <= 1e-7 * np.maximum(1, np.abs(s)))


def grid_counts(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column the number of finite values on each grid ``10^-k`` (``d x GRID_LEVELS``) and the
    number of finite values: integer counts, so parts of the rows add up (the Spark engine)."""
    d = X.shape[1]
    hits = np.zeros((d, GRID_LEVELS), dtype=np.int64)
    finite = np.zeros(d, dtype=np.int64)
    for j in range(d):
        fin = np.isfinite(X[:, j])
        finite[j] = int(fin.sum())
        for k in range(GRID_LEVELS):
            hits[j, k] = int((_grid_hits(X[:, j], k) & fin).sum())
    return hits, finite


def grid_levels(hits: np.ndarray, finite: np.ndarray) -> list | None:
    """Per column the grid its values are recorded on (``k`` of ``10^-k``), or None when a column
    has none (then no sample counts as on the grid)."""
    levels = []
    for j in range(len(finite)):
        share = [hits[j, k] / finite[j] if finite[j] else 0.0 for k in range(GRID_LEVELS)]
        # the originals are on the grid, synthetic samples (maybe many: oversampling before the
        # split) are not: the coarsest grid holding a good share of the values, which a finer one
        # does not raise (on continuous values the share creeps up with k as the tolerance grows)
        k = next((k for k in range(GRID_LEVELS - 1) if share[k] >= 0.3 and share[k] >= 0.95 * share[k + 1]), None)
        if k is None:
            return None
        levels.append(k)
    return levels


def on_grid_rows(X: np.ndarray, levels: list | None) -> np.ndarray:
    """Per sample: True when each column's value is on that column's grid (``levels``)."""
    if levels is None:
        return np.zeros(len(X), dtype=bool)
    on = np.ones(len(X), dtype=bool)
    for j, k in enumerate(levels):
        on &= _grid_hits(X[:, j], k)
    return on


def _on_grid(X: np.ndarray) -> np.ndarray:
    """Per sample: True when every column is gridded (values rounded to 10^-k) and the sample is on it.

    Samples made by interpolation fall off the grid of rounded data; collinear triples of rounded
    values can happen by chance.
    """
    return on_grid_rows(X, grid_levels(*grid_counts(X)))


# ---------------------------------------------------------------- exact, order-free statistics
# Every finite float64 is an integer multiple of 2**-1126 (frexp's mantissa times 2**53, shifted),
# so a column's sum is an exact integer, whatever order or partitioning adds it up: the local
# engine and the Spark engine's partial sums give the same mean and spread to the last bit.
def exact_sum(x: np.ndarray) -> int:
    """The exact sum of finite float64 values, as an integer in units of 2**-1126 (every double is a
    whole number of those units); preprocessing's exact sums do the work."""
    from .preprocessing import _int_sum

    return _int_sum(np.asarray(x, dtype=np.float64), 1126)


def exact_ratio(total: int, n: int) -> float:
    """``total * 2**-1126 / n`` rounded once to float64 (Python's int division is correctly rounded)."""
    return total / (n << 1126) if n else float("nan")


def exact_mean_sd(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and population standard deviations of finite rows ``X``, each rounded once
    from the exact sums (``mean = round(sum x / n)``, ``sd = sqrt(round(sum round((x - mean)^2) / n))``),
    so they do not depend on the order of the rows."""
    n = len(X)
    mean = np.array([exact_ratio(exact_sum(X[:, j]), n) for j in range(X.shape[1])], dtype=np.float64)
    dev = X - mean
    sq = dev * dev
    var = np.array([exact_ratio(exact_sum(sq[:, j]), n) for j in range(X.shape[1])], dtype=np.float64)
    return mean, np.sqrt(var)


# ---------------------------------------------------------------- neighbours: an exact rule
def exact_d2(Q: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Squared distances of each query ``Q[r]`` to its candidates ``C[r, m]``: ``sum_j (q_j - c_j)^2``
    summed column by column in float64, so a value depends on the two vectors only (not on the
    matrix shapes, blocking or library), unlike a BLAS product."""
    acc = np.zeros(C.shape[:2], dtype=np.float64)
    for j in range(Q.shape[1]):
        t = C[:, :, j] - Q[:, None, j]
        acc += t * t
    return acc


class NeighbourLists:
    """The ``kk`` nearest of each query among index vectors fed in batches, by an exact rule:
    the smallest :func:`exact_d2`, ties by the smaller id; a query's own id is never its neighbour.

    Candidates are picked by a BLAS product in float64 (``|q|^2 + |b|^2 - 2 q.b`` on centred
    vectors) with a rounding bound; the ``kk + extra`` best are rescored exactly and kept. A
    query is *certified* when its ``kk``-th exact value is below every lower bound of what it
    dropped; the others (near-ties at the ``kk``-th place wider than ``extra``, typically many
    copies of one row) need :meth:`scan` over the whole class. The result does not depend on
    how the index vectors are split into batches, so the local engine (one batch) and the Spark
    engine (blocks in the executors) give the same lists.
    """

    def __init__(self, ids: np.ndarray, vectors: np.ndarray, kk: int, extra: int = 8, carry: np.ndarray | None = None):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.Q = np.ascontiguousarray(vectors, dtype=np.float64)
        self.kk, self.keep = int(kk), int(kk) + int(extra)
        n = len(self.ids)
        self.cand = np.full((n, 0), -1, dtype=np.int64)
        self.d2 = np.zeros((n, 0), dtype=np.float64)
        self.carry = None if carry is None else np.zeros((n, 0) + carry.shape[1:], dtype=np.float64)
        self.floor = np.full(n, np.inf)
        self.center = self.Q.mean(axis=0) if n else np.zeros(self.Q.shape[1])
        self.Qc = self.Q - self.center
        self.q_sq = (self.Qc ** 2).sum(axis=1)

    def add(self, ids: np.ndarray, vectors: np.ndarray, carry: np.ndarray | None = None,
            max_scores: int = 1 << 22) -> None:
        """Feed index vectors (and per vector ``carry``, e.g. the standardised row to keep)."""
        ids = np.asarray(ids, dtype=np.int64)
        B = np.ascontiguousarray(vectors, dtype=np.float64)
        step = max(1, max_scores // max(len(self.ids), 1))
        for start in range(0, len(ids), step):
            sl = slice(start, start + step)
            self._add(ids[sl], B[sl], None if carry is None else carry[sl])

    def _add(self, ids, B, carry) -> None:
        nq, d = self.Q.shape
        if not nq or not len(ids):
            return
        Bc = B - self.center
        b_sq = (Bc ** 2).sum(axis=1)
        approx = self.q_sq[:, None] + b_sq[None, :] - 2.0 * (self.Qc @ Bc.T)
        # a generous bound on |approx - exact_d2| (BLAS and centring roundings, ~ (d + 4) eps)
        slack = 16.0 * (d + 4) * np.finfo(np.float64).eps * (self.q_sq[:, None] + b_sq[None, :]) + 1e-300
        approx[self.ids[:, None] == ids[None, :]] = np.inf
        take = min(self.keep, len(ids))
        if take < len(ids):
            pick = np.argpartition(approx, take - 1, axis=1)[:, :take]
            low = approx - slack
            np.put_along_axis(low, pick, np.inf, axis=1)
            self.floor = np.minimum(self.floor, low.min(axis=1))
        else:
            pick = np.broadcast_to(np.arange(len(ids)), (nq, len(ids)))
        self_hit = self.ids[:, None] == ids[pick]
        new_ids = np.where(self_hit, -1, ids[pick])
        new_d2 = np.where(self_hit, np.inf, exact_d2(self.Q, B[pick]))
        ids_all = np.concatenate([self.cand, new_ids], axis=1)
        d2_all = np.concatenate([self.d2, new_d2], axis=1)
        order = np.lexsort((np.where(ids_all < 0, np.iinfo(np.int64).max, ids_all), d2_all), axis=-1)
        kept, dropped = order[:, :self.keep], order[:, self.keep:]
        if dropped.shape[1]:
            self.floor = np.minimum(self.floor, np.take_along_axis(d2_all, dropped, axis=1).min(axis=1))
        if self.carry is not None:
            carry_all = np.concatenate([self.carry, carry[pick]], axis=1)
            self.carry = np.take_along_axis(carry_all, kept[:, :, None], axis=1)
        self.cand = np.take_along_axis(ids_all, kept, axis=1)
        self.d2 = np.take_along_axis(d2_all, kept, axis=1)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(neighbour ids (n x kk), certified (n,), carry of the neighbours or None)``."""
        kk = self.kk
        nb = self.cand[:, :kk]
        full = (nb >= 0).all(axis=1) if nb.shape[1] == kk else np.zeros(len(nb), dtype=bool)
        kth = self.d2[:, kk - 1] if self.d2.shape[1] >= kk else np.full(len(nb), np.inf)
        certified = full & (kth < self.floor)
        return nb, certified, None if self.carry is None else self.carry[:, :kk]


def class_neighbours(S: np.ndarray, kk: int) -> np.ndarray:
    """Positions of the ``kk`` nearest rows of ``S`` to each row (itself excluded) by the exact
    rule of :class:`NeighbourLists`, nearest first."""
    ids = np.arange(len(S))
    out = np.empty((len(S), kk), dtype=np.int64)
    block = max(1, min(len(S), (1 << 22) // max(len(S), 1)))
    for start in range(0, len(S), block):
        q = ids[start:start + block]
        lists = NeighbourLists(q, S[q], kk)
        lists.add(ids, S)
        nb, certified, _ = lists.result()
        for r in np.flatnonzero(~certified):  # near-ties past the candidates: every row, exactly
            d2 = exact_d2(S[q[r]][None, :], S[None, :, :])[0]
            d2[q[r]] = np.inf
            nb[r] = np.lexsort((ids, d2))[:kk]
        out[q] = nb
    return out


def interpolated_triples(X: np.ndarray, classes: np.ndarray, k: int = 50, tol: float = 1e-6,
                         block: int = 128) -> pd.DataFrame:
    """Samples lying on the segment between two others of their class.

    Seen from a parent ``a``, its synthetic child ``s`` and the other parent ``b`` lie on one ray:
    the directions ``s - a`` and ``b - a`` coincide. So for every sample, the directions to its
    ``k`` nearest neighbours (same class) are compared pairwise; the nearer of two neighbours on
    one ray is interior to the segment to the farther one. Returns a DataFrame
    ``synthetic, parent_a, parent_b, lam, residual`` (pooled indices), one row per synthetic
    sample, its parents being the extreme points of the line its triples join into.
    """
    rows = []
    finite = np.isfinite(X).all(axis=1)
    Z = X
    if finite.any():
        # exact sums, rounded once: the Spark engine's partial sums give the same Z to the bit
        mean, sd = exact_mean_sd(X[finite])
        Z = (X - mean) / np.where(sd > 0, sd, 1.0)
    off_grid = ~_on_grid(X)
    cos_min = 1.0 - tol ** 2 / 2  # a relative distance ``tol`` from the ray is this cosine
    # neighbours in the data as given (SMOTE's own metric) and standardised (SMOTE run on scaled data)
    for space in (X, Z):
        rows += _ray_triples(space, Z, classes, finite, k, tol, cos_min, block)
    if not rows:
        return pd.DataFrame(columns=["synthetic", "parent_a", "parent_b", "lam", "residual"])
    return _lines(rows, Z, off_grid, tol, classes, finite)


def _lines(rows: list, Z: np.ndarray, off_grid: np.ndarray, tol: float, classes: np.ndarray,
           finite: np.ndarray, max_scan: int = 20000, members_of=None) -> pd.DataFrame:
    """Join triples into lines and name each line's two extreme points as the parents.

    ``Z`` and ``off_grid`` are read at the lines' points only, and at the members of classes of
    at most ``max_scan`` finite samples (``members_of(label)``: their sorted ids, or None for a
    larger class; default: from ``classes`` and ``finite``), so the Spark engine hands in lookups.

    Two distinct lines share at most one point, so triples sharing two points lie on one line.
    Many synthetic samples share a segment and each triple sees only part of it; on the joined
    line the extreme points are the originals and every point between them is synthetic.
    """
    triples = np.asarray([(int(r[0]), int(r[1]), int(r[2])) for r in rows], dtype=np.int64)
    parent = np.arange(len(triples))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple, int] = {}
    for t, (x, y, z) in enumerate(triples):
        for pair in ((min(x, y), max(x, y)), (min(x, z), max(x, z)), (min(y, z), max(y, z))):
            if pair in owner:
                parent[find(t)] = find(owner[pair])
            else:
                owner[pair] = t
    roots = np.asarray([find(t) for t in range(len(triples))])
    out = []
    lines: dict[tuple, set] = {}
    for root in np.unique(roots):
        members = triples[roots == root]
        points = np.unique(members)
        d = Z[members[0, 2]] - Z[members[0, 1]]
        proj = (Z[points] - Z[members[0, 1]]) @ d / (d @ d)
        lo, hi = points[np.argmin(proj)], points[np.argmax(proj)]
        D = Z[hi] - Z[lo]
        DD = float(D @ D)
        same = (members_of(classes[lo]) if members_of is not None
                else np.flatnonzero((classes == classes[lo]) & finite))
        if same is not None and len(same) <= max_scan:
            # a parent may be beyond every neighbour list: scan the class along the line
            W = Z[same] - Z[lo]
            t = W @ D / DD
            near_line = (W ** 2).sum(axis=1) / DD - t ** 2 <= 1e-8 * np.maximum(1.0, t ** 2)
            cand = same[near_line]
            tc = t[near_line]
            off = Z[cand] - Z[lo] - tc[:, None] * D
            # distance to the line, relative to the distance to the nearer anchor (lo or hi)
            to_end = np.minimum(np.abs(tc), np.abs(tc - 1)) * np.sqrt(DD)
            on = np.sqrt((off ** 2).sum(axis=1)) <= tol * np.maximum(to_end, 1e-300)
            on |= np.isin(cand, (lo, hi))
            if on.any():
                points = np.union1d(points, cand[on])
                lo2, hi2 = cand[on][np.argmin(tc[on])], cand[on][np.argmax(tc[on])]
                if tc[on].min() < 0:
                    lo = lo2
                if tc[on].max() > 1:
                    hi = hi2
                D = Z[hi] - Z[lo]
                DD = float(D @ D)
        lines.setdefault((int(lo), int(hi)), set()).update(points.tolist())
    # an original sample parents segments in several directions, so it lies on several lines; a
    # synthetic sample lies on one. On each line the two points on most lines are the parents
    # (ties: the extreme points), which also names the parents of extrapolations (SVM-SMOTE
    # steps outwards, past a parent)
    on_lines = pd.Series([p for pts in lines.values() for p in pts]).value_counts()
    for (lo, hi), pts in lines.items():
        pts = np.asarray(sorted(pts))
        # originals are on the grid of recorded decimals (where the data has one), children off it
        rank = sorted(pts, key=lambda p: (bool(off_grid[p]), -on_lines[p], p not in (lo, hi)))
        pa, pb = rank[0], rank[1]
        D = Z[pb] - Z[pa]
        DD = float(D @ D)
        for p in pts:
            if p in (pa, pb) or not off_grid[p]:
                continue
            lam = float((Z[p] - Z[pa]) @ D / DD)
            off = Z[p] - Z[pa] - lam * D
            resid = float(np.sqrt(off @ off / DD))
            if resid <= tol * min(abs(lam), abs(lam - 1)) and -1.0 <= lam <= 2.0:
                out.append((int(p), int(pa), int(pb), lam, resid))
    return pd.DataFrame(out, columns=["synthetic", "parent_a", "parent_b", "lam", "residual"])


def _ray_triples(space, Z, classes, finite, k, tol, cos_min, block) -> list:
    """Triples from rays compared in standardised space ``Z``, neighbours found in ``space``.

    Collinearity is tested in ``Z``: in the raw data a relative tolerance is dominated by the
    largest-scaled feature and would let the small-scaled ones wander off the line.
    """
    rows = []
    for c in np.unique(classes):
        members = np.flatnonzero((classes == c) & finite)
        if len(members) < 3:
            continue
        kk = min(k, len(members) - 1)
        Zc = Z[members]
        nbr = class_neighbours(space[members], kk)
        for start in range(0, len(members), block):
            a_loc = np.arange(start, min(start + block, len(members)))
            nb = nbr[a_loc]
            rows += rays_from(members[a_loc], Zc[a_loc], members[nb], Zc[nb], tol, cos_min)
    return rows


def rays_from(a_ids: np.ndarray, Za: np.ndarray, nb_ids: np.ndarray, Znb: np.ndarray, tol: float,
              cos_min: float) -> list:
    """Triples ``(synthetic, a, far parent, lam, residual)`` seen from samples ``a`` (ids ``a_ids``,
    standardised rows ``Za``, ``b x d``) with their neighbours (``nb_ids``, ``Znb``: ``b x kk (x d)``,
    nearest first; id -1 for none): two neighbours on one ray from ``a``, the nearer interior."""
    kk = nb_ids.shape[1]
    iu, ju = np.triu_indices(kk, 1)
    rows = []
    V = Znb - Za[:, None, :]                                    # rays from a: b x k x d
    dist = np.linalg.norm(V, axis=2)
    U = V / np.where(dist > 0, dist, 1.0)[..., None]
    G = np.matmul(U, U.transpose(0, 2, 1))[:, iu, ju]     # b x P cosines (batched BLAS)
    ok = (G >= cos_min) & (nb_ids[:, iu] >= 0) & (nb_ids[:, ju] >= 0) & (dist[:, iu] > 0) & (dist[:, ju] > 0)
    for r, p in zip(*np.nonzero(ok)):
        i, j = iu[p], ju[p]
        near, far = (i, j) if dist[r, i] < dist[r, j] else (j, i)
        if dist[r, far] - dist[r, near] <= tol * dist[r, far]:
            continue  # the same point twice (a duplicate), not a segment
        # the angle at the far end too: a point almost on top of the far end is "on the
        # ray" from any direction
        u = Znb[r, near] - Znb[r, far]
        w = Za[r] - Znb[r, far]
        if (u @ w) / (np.linalg.norm(u) * np.linalg.norm(w) + 1e-300) < cos_min:
            continue
        lam = float(dist[r, near] / dist[r, far])
        resid = float(np.sqrt(max(0.0, 1.0 - min(1.0, G[r, p]) ** 2)) * lam)
        rows.append((int(nb_ids[r, near]), int(a_ids[r]), int(nb_ids[r, far]), lam, resid))
    return rows


@register_check
class OversamplingLeakage(Check):
    """Copies or interpolations of minority samples whose parents sit in another split.

    >>> report = lg.audit({"train": X_tr, "test": X_te}, labels={"train": y_tr, "test": y_te})  # doctest: +SKIP
    >>> report.leaked("test", check="oversampling_leakage")                                     # doctest: +SKIP
    """

    name = NAME
    order = 65
    description = "synthetic minority samples (random oversampling, SMOTE-style interpolation) whose parents sit in another split"

    def applies(self, splits) -> bool:
        return splits.modality in ("tabular", "series")

    def run(self, ctx: AuditContext) -> list[Finding]:
        opts = ctx.config.options(self.name)
        splits = ctx.splits
        pool = PooledIndex(splits)
        X, cols, full = _pooled_matrix(splits, int(opts.get("min_unique", 10)))
        if X is None or pool.total < 3:
            return []
        labels = None
        if splits.has_labels:
            labels = np.concatenate([np.asarray(splits[n].labels).astype(str) for n in pool.names])
        findings = []
        if full is not None and labels is not None:
            findings += self._copies(ctx, pool, full, labels)
        if X.shape[1] >= 2:
            classes = labels if labels is not None else np.zeros(pool.total, dtype=int)
            triples = interpolated_triples(X, classes, k=int(opts.get("k", 50)),
                                           tol=float(opts.get("tolerance", 1e-6)))
            findings += self._interpolations(ctx, pool, triples, labels)
        return findings

    # ------------------------------------------------------------------ random oversampling
    def _copies(self, ctx, pool, full, labels) -> list[Finding]:
        if not len(full.columns):
            return []
        # rows hashed column by column (64-bit), vectorised; a collision is one in 2**64 per pair
        cluster = pd.factorize(pd.util.hash_pandas_object(full, index=False).to_numpy())[0]
        size = np.bincount(cluster)[cluster]
        dup = size > 1
        rate = pd.Series(dup).groupby(labels).mean()
        rows = np.flatnonzero(dup)
        return self._copy_findings(ctx, pool, labels, rate, rows, cluster[rows])

    @staticmethod
    def copy_flags(labels, rate) -> tuple | None:
        """``(flagged classes, baseline class, its copy rate)`` from the share of samples with a
        copy per class (``rate``, indexed by class), or None when no class stands out."""
        counts = pd.Series(labels).value_counts()
        if len(counts) < 2:
            return None
        # the class copied least is the baseline (oversampling to balance can make the copied
        # class the largest one)
        majority = rate.idxmin()
        base = float(rate.min())
        flagged = [c for c in counts.index if c != majority and rate.get(c, 0) >= 0.05
                   and rate.get(c, 0) >= 5 * base + 0.02]
        return (flagged, majority, base) if flagged else None

    def _copy_findings(self, ctx, pool, labels, rate, rows, cluster) -> list[Finding]:
        """Findings from the copied samples ``rows`` (sorted pooled ids, each with its copy
        cluster's key ``cluster``); rows of flagged classes whose cluster spans one split only
        change nothing, so the Spark engine hands in the others only."""
        flags = self.copy_flags(labels, rate)
        if flags is None:
            return []
        flagged, majority, base = flags
        out = []
        code = pool.split_code
        names = pool.names
        rows = np.asarray(rows, dtype=np.int64)
        cluster = np.asarray(cluster)
        for b in ctx.splits.eval_names:
            kb = names.index(b)
            for a in [ctx.train] + [n for n in ctx.splits.eval_names if names.index(n) < kb]:
                ka = names.index(a)
                of_flagged = np.isin(labels[rows], flagged)
                pos_a = np.flatnonzero((code[rows] == ka) & of_flagged)
                pos_b = np.flatnonzero((code[rows] == kb) & of_flagged)
                in_a, in_b = rows[pos_a], rows[pos_b]
                if not len(in_a) or not len(in_b):
                    continue
                first_a = pd.Series(in_a).groupby(cluster[pos_a]).first()
                shared_pos = pos_b[np.isin(cluster[pos_b], first_a.index)]
                shared = rows[shared_pos]
                if not len(shared):
                    continue
                partner = first_a.loc[cluster[shared_pos]].to_numpy()
                pairs = make_pairs(a, pool.local[partner], b, pool.local[shared], self.name, 1.0)
                n_b = pool.sizes[b]
                rates = ", ".join(f"{c!r}: {rate[c]:.0%}" for c in flagged)
                out.append(Finding(
                    check=self.name,
                    severity=ctx.severity(self.name, "critical" if a == ctx.train else "warning"),
                    title=(f"{len(shared)} {b!r} samples are copies of minority-class {a!r} samples "
                           "(random oversampling before the split)"),
                    detail=(f"Copies are concentrated in the minority class{'es' if len(flagged) > 1 else ''} "
                            f"(share of samples with a copy: {rates}; class {majority!r}: {base:.0%}), "
                            f"the mark of random oversampling, and {len(shared)} of {n_b} {b!r} samples "
                            f"({len(shared) / max(n_b, 1):.1%}) have their copy in {a!r}. The model is scored "
                            "on minority samples it trained on, which inflates minority-class recall most."),
                    remedy=("Split first, then oversample the training split only (imblearn's Pipeline "
                            "applies the sampler to training folds only). lg.resplit(splits, report) keeps "
                            "the copies together in the meantime."),
                    splits=(a, b), count=len(np.unique(shared)), pairs=pairs,
                    extra={"kind": "copies", "classes": [str(c) for c in flagged],
                           "copy_rate": {str(c): float(rate[c]) for c in flagged}, "majority_rate": base}))
        return out

    # ------------------------------------------------------------------ interpolation (SMOTE)
    def _interpolations(self, ctx, pool, triples, labels) -> list[Finding]:
        if not len(triples):
            return []
        code = pool.split_code
        names = pool.names
        syn = triples["synthetic"].to_numpy()
        pa = triples["parent_a"].to_numpy()
        pb = triples["parent_b"].to_numpy()
        # one link per (synthetic, parent) in different splits, written with the earlier split first
        links = []
        for parent in (pa, pb):
            cross = code[syn] != code[parent]
            for s, p in zip(syn[cross], parent[cross]):
                links.append((s, p))
        if not links:
            return []
        out = []
        link = np.asarray(links)
        first = np.where(code[link[:, 0]] < code[link[:, 1]], link[:, 0], link[:, 1])
        second = np.where(code[link[:, 0]] < code[link[:, 1]], link[:, 1], link[:, 0])
        is_syn_second = np.isin(second, syn) & (second == link[:, 0])
        within_split = {s: int(((code[syn] == code[pa]) & (code[syn] == code[pb]) & (code[syn] == names.index(s))).sum())
                        for s in names}
        for ka, a in enumerate(names):
            for kb, b in enumerate(names):
                if kb <= ka:
                    continue
                sel = (code[first] == ka) & (code[second] == kb)
                if not sel.any():
                    continue
                ia, ib = first[sel], second[sel]
                df = pd.DataFrame({"a": ia, "b": ib}).drop_duplicates()
                pairs = make_pairs(a, pool.local[df["a"].to_numpy()], b, pool.local[df["b"].to_numpy()],
                                   self.name, 1.0)
                n_syn_b = int(is_syn_second[sel].sum())
                n_b_samples = int(df["b"].nunique())
                classes = sorted({str(labels[s]) for s in np.concatenate([ia, ib])}) if labels is not None else []
                lam = triples.set_index("synthetic")["lam"]
                involves_train = a == ctx.train
                listed = triples[np.isin(syn, np.concatenate([ia, ib]))].head(50)
                out.append(Finding(
                    check=self.name,
                    severity=ctx.severity(self.name, "critical" if involves_train else "warning"),
                    title=(f"{n_b_samples} {b!r} samples are tied to {a!r} by SMOTE-style interpolation"),
                    detail=(f"{len(df)} samples lie exactly on the segment between two samples of their class "
                            f"(s = a + lambda (b - a), lambda between {lam.min():.2f} and {lam.max():.2f}), "
                            f"with the synthetic sample and a parent in different splits: {n_syn_b} synthetic "
                            f"samples in {b!r} have a parent in {a!r}, and the rest of the {n_b_samples} {b!r} "
                            f"samples are parents of synthetic {a!r} samples"
                            + (f" (class{'es' if len(classes) > 1 else ''} {', '.join(map(repr, classes[:5]))})"
                               if classes else "")
                            + ". The data was oversampled before it was split, so "
                            + (f"{b!r} scores measure interpolations of training data."
                               if involves_train else "the two evaluation splits are not independent.")),
                    remedy=("Split first, then oversample inside the training split only (imblearn's "
                            "Pipeline applies SMOTE to training folds only). Drop the synthetic samples from "
                            "the evaluation splits; lg.resplit(splits, report) keeps each synthetic sample "
                            "with its parents."),
                    splits=(a, b), count=n_b_samples, pairs=pairs,
                    extra={"kind": "interpolation", "synthetic_in_b": n_syn_b, "classes": classes,
                           "within_split_synthetic": within_split,
                           "triples": [{"synthetic": [str(names[code[r.synthetic]]), int(pool.local[r.synthetic])],
                                        "parents": [[str(names[code[p]]), int(pool.local[p])]
                                                    for p in (r.parent_a, r.parent_b)],
                                        "lambda": round(r.lam, 4)} for r in listed.itertuples()]}))
        out += self._inside(ctx, pool, syn, pa, pb)
        return out

    def _inside(self, ctx, pool, syn, pa, pb) -> list[Finding]:
        """Synthetic samples with a parent in their own split: information, and links for resplit
        (which keeps every synthetic sample with its parents)."""
        code = pool.split_code
        out = []
        for k, name in enumerate(pool.names):
            parts = []
            for parent in (pa, pb):
                sel = (code[syn] == k) & (code[parent] == k)
                parts.append((parent[sel], syn[sel]))
            ia = np.concatenate([p for p, _ in parts])
            ib = np.concatenate([s for _, s in parts])
            if not len(ia):
                continue
            n_syn = len(np.unique(ib))
            out.append(Finding(
                check=self.name, severity=ctx.severity(self.name + ".within", "info"),
                title=f"{n_syn} samples of {name!r} are interpolations of two other {name!r} samples",
                detail=(f"{n_syn} samples of {name!r} lie exactly between two samples of their class in the "
                        "same split: synthetic samples (SMOTE-style). Inside the training split this is "
                        "the intended use; in an evaluation split it scores the model on made-up data."),
                remedy=("Nothing to do inside the training split. Keep synthetic samples out of "
                        "evaluation splits."),
                splits=(name,), count=n_syn,
                pairs=make_pairs(name, pool.local[ia], name, pool.local[ib], self.name, 1.0)))
        return out

