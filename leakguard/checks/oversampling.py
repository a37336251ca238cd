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
            items.append(np.asarray(src.load(i), dtype=np.float64).ravel())
    lengths = {len(v) for v in items}
    if len(lengths) != 1:
        return None, [], None
    X = np.vstack(items) if items else np.zeros((0, 0))
    return X, [f"t{i}" for i in range(X.shape[1])], None


def _on_grid(X: np.ndarray) -> np.ndarray:
    """Per sample: True when every column is gridded (values rounded to 10^-k) and the sample is on it.

    Samples made by interpolation fall off the grid of rounded data; collinear triples of rounded
    values can happen by chance.
    """
    n, d = X.shape
    on = np.ones(n, dtype=bool)
    for j in range(d):
        col = X[:, j]
        fin = np.isfinite(col)
        hits = []
        for k in range(0, 7):
            s = col * 10 ** k
            hits.append(~fin | (np.abs(s - np.round(s)) <= 1e-7 * np.maximum(1, np.abs(s))))
        share = [h[fin].mean() if fin.any() else 0.0 for h in hits]
        # the originals are on the grid, synthetic samples (maybe many: oversampling before the
        # split) are not: the coarsest grid holding a good share of the values, which a finer one
        # does not raise (on continuous values the share creeps up with k as the tolerance grows)
        k = next((k for k in range(6) if share[k] >= 0.3 and share[k] >= 0.95 * share[k + 1]), None)
        if k is None:
            return np.zeros(n, dtype=bool)
        on &= hits[k]
    return on


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
    sd = X[finite].std(axis=0) if finite.any() else np.ones(X.shape[1])
    Z = (X - X[finite].mean(axis=0)) / np.where(sd > 0, sd, 1.0) if finite.any() else X
    off_grid = ~_on_grid(X)
    cos_min = 1.0 - tol ** 2 / 2  # a relative distance ``tol`` from the ray is this cosine
    # neighbours in the data as given (SMOTE's own metric) and standardised (SMOTE run on scaled data)
    for space in (X, Z):
        rows += _ray_triples(space, Z, classes, finite, k, tol, cos_min, block)
    if not rows:
        return pd.DataFrame(columns=["synthetic", "parent_a", "parent_b", "lam", "residual"])
    return _lines(rows, Z, off_grid, tol, classes, finite)


def _lines(rows: list, Z: np.ndarray, off_grid: np.ndarray, tol: float, classes: np.ndarray,
           finite: np.ndarray, max_scan: int = 20000) -> pd.DataFrame:
    """Join triples into lines and name each line's two extreme points as the parents.

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
        same = np.flatnonzero((classes == classes[lo]) & finite)
        if len(same) <= max_scan:
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
    from ..search import nearest

    rows = []
    for c in np.unique(classes):
        members = np.flatnonzero((classes == c) & finite)
        if len(members) < 3:
            continue
        kk = min(k, len(members) - 1)
        Zc = Z[members]
        Sc = space[members]
        _, nbr = nearest(Sc, Sc, k=kk, metric="l2", exclude_self=True)
        iu, ju = np.triu_indices(kk, 1)
        for start in range(0, len(members), block):
            a_loc = np.arange(start, min(start + block, len(members)))
            nb = nbr[a_loc]
            V = Zc[np.maximum(nb, 0)] - Zc[a_loc][:, None, :]          # rays from a: b x k x d
            dist = np.linalg.norm(V, axis=2)
            U = V / np.where(dist > 0, dist, 1.0)[..., None]
            G = np.matmul(U, U.transpose(0, 2, 1))[:, iu, ju]     # b x P cosines (batched BLAS)
            ok = (G >= cos_min) & (nb[:, iu] >= 0) & (nb[:, ju] >= 0) & (dist[:, iu] > 0) & (dist[:, ju] > 0)
            for r, p in zip(*np.nonzero(ok)):
                i, j = iu[p], ju[p]
                near, far = (i, j) if dist[r, i] < dist[r, j] else (j, i)
                if dist[r, far] - dist[r, near] <= tol * dist[r, far]:
                    continue  # the same point twice (a duplicate), not a segment
                s_loc = nb[r, near]
                # the angle at the far end too: a point almost on top of the far end is "on the
                # ray" from any direction
                u = Zc[s_loc] - Zc[nb[r, far]]
                w = Zc[a_loc[r]] - Zc[nb[r, far]]
                if (u @ w) / (np.linalg.norm(u) * np.linalg.norm(w) + 1e-300) < cos_min:
                    continue
                lam = float(dist[r, near] / dist[r, far])
                resid = float(np.sqrt(max(0.0, 1.0 - min(1.0, G[r, p]) ** 2)) * lam)
                rows.append((members[s_loc], members[a_loc[r]], members[nb[r, far]], lam, resid))
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
        counts = pd.Series(labels).value_counts()
        if len(counts) < 2:
            return []
        rate = pd.Series(dup).groupby(labels).mean()
        # the class copied least is the baseline (oversampling to balance can make the copied
        # class the largest one)
        majority = rate.idxmin()
        base = float(rate.min())
        flagged = [c for c in counts.index if c != majority and rate.get(c, 0) >= 0.05
                   and rate.get(c, 0) >= 5 * base + 0.02]
        if not flagged:
            return []
        out = []
        code = pool.split_code
        names = pool.names
        for b in ctx.splits.eval_names:
            kb = names.index(b)
            for a in [ctx.train] + [n for n in ctx.splits.eval_names if names.index(n) < kb]:
                ka = names.index(a)
                in_a = np.flatnonzero((code == ka) & dup & np.isin(labels, flagged))
                in_b = np.flatnonzero((code == kb) & dup & np.isin(labels, flagged))
                if not len(in_a) or not len(in_b):
                    continue
                first_a = pd.Series(in_a).groupby(cluster[in_a]).first()
                shared = in_b[np.isin(cluster[in_b], first_a.index)]
                if not len(shared):
                    continue
                partner = first_a.loc[cluster[shared]].to_numpy()
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

