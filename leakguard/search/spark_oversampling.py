"""``oversampling_leakage`` scaled out on Spark (tables and series): only findings reach the driver.

The local check (:mod:`leakguard.checks.oversampling`) runs in these steps; each runs here in the
executors with the local check's own functions, so the report is the local one:

1. *Columns* (tables): the numeric columns with at least ``min_unique`` distinct values. Each
   partition ships at most ``min_unique`` distinct values per column; the driver takes the union.
2. *Statistics*: per column the grid counts (:func:`grid_counts`) and the exact sums of the finite
   rows (:func:`exact_sum`, integers: any partitioning adds up to the same mean), then the exact
   sums of squared deviations: the same mean and spread as the local :func:`exact_mean_sd`, to the
   bit, hence the same standardised rows ``Z``.
3. *Neighbours and rays*, per class: members are hashed into blocks of about ``block_rows``; a
   task holds one query block and streams every block of its class past it (the class is shuffled
   once per block), keeping the ``k + 8`` best candidates per query in a
   :class:`NeighbourLists` with their ``Z`` rows, in the raw and in the standardised space. The
   neighbour lists follow an exact rule (smallest :func:`exact_d2`, ties by the smaller sample
   index) that does not depend on the blocking, and the local check uses the same rule. The ray
   test (:func:`rays_from`) then runs in the task on each certified query; the triples leave it.
4. *Near-ties*: a query whose ``k``-th neighbour is not certified (distances tied or within the
   rounding bound past its candidates, e.g. more than 8 copies of one row at the ``k``-th place)
   is scanned again, exactly, over its whole class: its vector is broadcast, each partition
   ships its ``k`` best, the driver merges them by the same rule and runs the ray test.
5. *Lines* (the driver): the triples are joined into lines by the local :func:`_lines`, which
   reads ``Z`` at the lines' points and, for classes of at most 20,000 finite samples, at the
   class's members (the scan along each line); only those rows are fetched.
6. *Copies* (tables with labels): each row is hashed in the executors (pandas' row hash on one
   dtype per column, so equal rows hash alike in every batch), clusters are counted by a group-by
   on the hash, the copy rate per class is aggregated, and only the copied rows of flagged classes
   whose cluster spans two splits come to the driver, where the local code writes the findings.

Cost: steps 1, 2 and 6 are scans (and one group-by on the hash); step 3 is quadratic in the
class size, as locally, with the class shuffled ``ceil(n_class / block_rows)`` times; its output
is the triples. Driver memory: the pooled labels (held already), the triples, the fetched rows.

>>> report = lg.audit({"train": "s3a://b/train.parquet", "test": "s3a://b/test.parquet"}, labels="label",
...                   checks=["oversampling_leakage"], config=lg.AuditConfig(engine="spark"))  # doctest: +SKIP
>>> report.meta["spark"]["oversampling_path"]                                                     # doctest: +SKIP
'distributed'
"""
from __future__ import annotations

import pickle

import numpy as np

IDX = "_lg_idx"
LABEL = "_lg_label"
PIDX = "_lg_pidx"
CLS = "_lg_cls"
BLOCK_ROWS = 16384
EXTRA = 8          # candidates kept past the k-th, so ties of up to 8 rows need no second scan
MAX_SCAN = 20000   # as the local _lines: classes up to this size are scanned along each line
TRIPLE_SCHEMA = "kind int, space int, cls int, a long, seq long, s long, far long, lam double, resid double"


# --------------------------------------------------------------------------- executors' bodies
def _stack(col, d: int) -> np.ndarray:
    """float64 vectors stored as bytes -> an ``n x d`` matrix."""
    if not len(col):
        return np.zeros((0, d))
    return np.frombuffer(b"".join(bytes(v) for v in col), dtype=np.float64).reshape(len(col), d)


def _distinct_values(batches, cols: list, cap: int):
    """Per partition and column up to ``cap`` distinct non-NaN values (pandas' ``nunique`` counts)."""
    import pandas as pd

    seen = {c: set() for c in cols}
    for pdf in batches:
        for c in cols:
            if len(seen[c]) >= cap:
                continue
            v = pd.unique(pdf[c].to_numpy(np.float64))
            seen[c].update(float(x) for x in v[~np.isnan(v)][:cap])
    yield pd.DataFrame({"payload": [pickle.dumps({c: sorted(s)[:cap] if len(s) < cap else None
                                                  for c, s in seen.items()})]})


def _table_vectors(batches, cols: list):
    """Rows of the kept columns as float64 vectors (the local ``num[keep].to_numpy()``)."""
    import pandas as pd

    for pdf in batches:
        X = np.ascontiguousarray(pdf[cols].to_numpy(np.float64))
        yield pd.DataFrame({PIDX: pdf[PIDX].to_numpy(np.int64), CLS: pdf[CLS].to_numpy(np.int32),
                            "x": [r.tobytes() for r in X]})


def _first_moments(batches, d: int, n_classes: int):
    """Grid counts over every row; exact sums, count and class sizes over the finite rows."""
    import pandas as pd

    from ..checks.oversampling import GRID_LEVELS, exact_sum, grid_counts

    hits = np.zeros((d, GRID_LEVELS), dtype=np.int64)
    finite_counts = np.zeros(d, dtype=np.int64)
    sums = [0] * d
    n = 0
    sizes = np.zeros(n_classes, dtype=np.int64)
    for pdf in batches:
        X = _stack(pdf["x"], d)
        h, f = grid_counts(X)
        hits += h
        finite_counts += f
        fin = np.isfinite(X).all(axis=1)
        n += int(fin.sum())
        sizes += np.bincount(pdf[CLS].to_numpy(np.int64)[fin], minlength=n_classes)
        for j in range(d):
            sums[j] += exact_sum(X[fin, j])
    yield pd.DataFrame({"payload": [pickle.dumps((hits, finite_counts, sums, n, sizes))]})


def _second_moments(batches, d: int, mean: np.ndarray):
    import pandas as pd

    from ..checks.oversampling import exact_sum

    sums = [0] * d
    for pdf in batches:
        X = _stack(pdf["x"], d)
        X = X[np.isfinite(X).all(axis=1)]
        dev = X - mean
        sq = dev * dev
        for j in range(d):
            sums[j] += exact_sum(sq[:, j])
    yield pd.DataFrame({"payload": [pickle.dumps(sums)]})


def _standardised(batches, d: int, mean, sd, levels):
    """Finite rows with their standardised row ``z`` and whether they are off the grid."""
    import pandas as pd

    from ..checks.oversampling import on_grid_rows

    scale = np.where(sd > 0, sd, 1.0)
    for pdf in batches:
        X = _stack(pdf["x"], d)
        fin = np.isfinite(X).all(axis=1)
        X = X[fin]
        Z = (X - mean) / scale
        off = ~on_grid_rows(X, levels)
        yield pd.DataFrame({PIDX: pdf[PIDX].to_numpy(np.int64)[fin], CLS: pdf[CLS].to_numpy(np.int32)[fin],
                            "x": [r.tobytes() for r in X], "z": [r.tobytes() for r in Z], "off": off})


class _QueryBlock:
    """One (class, block) in a task: its queries, then every block of its class streamed past."""

    def __init__(self, cls: int, kk: int):
        self.cls, self.kk = cls, kk
        self.q_ids, self.q_x, self.q_z = [], [], []
        self.lists = None

    def feed(self, role, ids, X, Z) -> None:
        q = role == 0
        if q.any():
            self.q_ids.append(ids[q])
            self.q_x.append(X[q])
            self.q_z.append(Z[q])
        if (~q).any():
            if self.lists is None:
                self._start()
            for space, vectors in ((0, X), (1, Z)):
                self.lists[space].add(ids[~q], vectors[~q], carry=Z[~q])

    def _start(self) -> None:
        from ..checks.oversampling import NeighbourLists

        d = self.q_x[0].shape[1] if self.q_x else 0
        self.ids = np.concatenate(self.q_ids) if self.q_ids else np.zeros(0, np.int64)
        self.Qx = np.concatenate(self.q_x) if self.q_x else np.zeros((0, d))
        self.Qz = np.concatenate(self.q_z) if self.q_z else np.zeros((0, d))
        carry = self.Qz[:0]
        self.lists = [NeighbourLists(self.ids, self.Qx, self.kk, EXTRA, carry=carry),
                      NeighbourLists(self.ids, self.Qz, self.kk, EXTRA, carry=carry)]

    def finish(self, tol: float, cos_min: float, seq0: int):
        from ..checks.oversampling import rays_from

        out = []
        if self.lists is None or not len(self.ids):
            return out
        for space in (0, 1):
            nb, certified, Znb = self.lists[space].result()
            rows = rays_from(self.ids[certified], self.Qz[certified], nb[certified], Znb[certified], tol, cos_min)
            out += [(0, space, self.cls, a, seq0 + len(out) + i, s, far, lam, resid)
                    for i, (s, a, far, lam, resid) in enumerate(rows)]
            out += [(1, space, self.cls, int(a), 0, -1, -1, np.nan, np.nan) for a in self.ids[~certified]]
        return out


def _neighbour_rays(batches, d: int, k: int, sizes: dict, tol: float, cos_min: float):
    """``mapInPandas`` body over rows sorted by (class, query block, role, id): per query block
    the exact neighbour lists in both spaces, then the ray test; triples and uncertified queries out."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(1)  # one task, one core (Spark's model)
    try:
        block, key, seq = None, None, 0
        for pdf in batches:
            if not len(pdf):
                continue
            cls = pdf[CLS].to_numpy(np.int64)
            keys = (cls << 32) | pdf["_q"].to_numpy(np.int64)
            role = pdf["_role"].to_numpy(np.int64)
            ids = pdf[PIDX].to_numpy(np.int64)
            X, Z = _stack(pdf["x"], d), _stack(pdf["z"], d)
            out = []
            for seg in np.split(np.arange(len(pdf)), np.flatnonzero(np.diff(keys)) + 1):
                if keys[seg[0]] != key:
                    if block is not None:
                        done = block.finish(tol, cos_min, seq)
                        seq += len(done)
                        out += done
                    key = keys[seg[0]]
                    c = int(cls[seg[0]])
                    block = _QueryBlock(c, min(k, sizes[c] - 1))
                block.feed(role[seg], ids[seg], X[seg], Z[seg])
            if out:
                yield pd.DataFrame(out, columns=TRIPLE_SCHEMA_COLUMNS)
        if block is not None:
            done = block.finish(tol, cos_min, seq)
            if done:
                yield pd.DataFrame(done, columns=TRIPLE_SCHEMA_COLUMNS)
    finally:
        limits.unregister()


TRIPLE_SCHEMA_COLUMNS = [f.split()[0] for f in TRIPLE_SCHEMA.split(", ")]


def _scan_queries(batches, d: int, queries: list, k_of: dict):
    """Near-tie fallback: every query against every member of its class in the partition, exactly;
    per query the partition's ``kk`` best by (exact squared distance, id)."""
    import pandas as pd

    from ..checks.oversampling import exact_d2

    out = []
    for pdf in batches:
        cls = pdf[CLS].to_numpy(np.int64)
        ids = pdf[PIDX].to_numpy(np.int64)
        X, Z = _stack(pdf["x"], d), _stack(pdf["z"], d)
        for space, c, a, vec in queries:
            same = np.flatnonzero((cls == c) & (ids != a))
            if not len(same):
                continue
            S = X if space == 0 else Z
            d2 = exact_d2(vec[None, :], S[same][None, :, :])[0]
            best = np.lexsort((ids[same], d2))[:k_of[c]]
            out += [(space, a, int(ids[same][b]), float(d2[b]), Z[same][b].tobytes()) for b in best]
    yield pd.DataFrame(out, columns=["space", "a", "nb", "d2", "z"])


def _row_hashes(batches, cols: list, dtypes: dict, start: int, code: int):
    """Each row hashed as the local check hashes it (pandas' row hash), one dtype per column."""
    import pandas as pd

    for pdf in batches:
        frame = pd.DataFrame({c: _canonical(pdf[c], dtypes[c]) for c in cols})
        h = pd.util.hash_pandas_object(frame, index=False).to_numpy().view(np.int64)
        yield pd.DataFrame({PIDX: pdf[IDX].to_numpy(np.int64) + start, "code": np.full(len(pdf), code, np.int32),
                            "h": h})


def _canonical(values, kind: str):
    """A column in one dtype whatever the batch holds (an integer batch without nulls would
    otherwise hash unlike a batch with them): equal cells hash alike, as in the pooled local frame."""
    import pandas as pd

    if kind == "int":
        return values.astype(np.int64)
    if kind == "float":
        return pd.to_numeric(values, errors="coerce").astype(np.float64)
    return values.astype(object).where(values.notna(), None)


# --------------------------------------------------------------------------- the driver
class _RowLookup:
    """``Z[i]`` / ``off_grid[i]`` for the fetched rows only, by pooled sample index."""

    def __init__(self, ids: np.ndarray, values: np.ndarray):
        import pandas as pd

        self.index = pd.Index(np.asarray(ids, dtype=np.int64))
        self.values = values

    def __getitem__(self, i):
        if np.ndim(i) == 0:
            return self.values[self.index.get_loc(int(i))]
        pos = self.index.get_indexer(np.asarray(i, dtype=np.int64))
        if (pos < 0).any():
            raise KeyError("a row the lines read was not fetched")
        return self.values[pos]


def pooled_labels(spark, prepared: dict) -> np.ndarray | None:
    """The pooled labels as the local check reads them (each split's labels ``astype(str)``), or
    None when a split has none; a label column is collected (one column, as labels given as arrays
    are held on the driver already)."""
    from pyspark.sql import functions as F

    if not all(sp.has_labels for sp in prepared.values()):
        return None
    parts = []
    for sp in prepared.values():
        if sp.labels is not None:
            values = np.asarray(sp.labels)
        else:
            pdf = sp.frame.select(IDX, F.col(LABEL)).toPandas().sort_values(IDX, kind="stable")
            values = pdf[LABEL].to_numpy()
        parts.append(np.asarray(values).astype(str))
    return np.concatenate(parts) if parts else None


def _codes_frame(spark, cls_code: np.ndarray):
    import pandas as pd

    return spark.createDataFrame(pd.DataFrame({PIDX: np.arange(len(cls_code), dtype=np.int64),
                                               CLS: cls_code.astype(np.int32)}))


def _collect_payloads(frame) -> list:
    return [pickle.loads(bytes(r["payload"])) for r in frame.collect()]


def _table_inputs(spark, prepared: dict, pool, codes, min_unique: int):
    """(vector frame, kept column names, numeric table frames) for table splits."""
    from pyspark.sql import functions as F

    from .spark_tabular_checks import numeric_feature_columns

    names = list(prepared)
    first = prepared[names[0]]
    cols = [c for c in numeric_feature_columns(first.frame, list(first.features or []))
            if all(c in (sp.features or []) for sp in prepared.values())]
    rows = None
    for name, sp in prepared.items():
        part = sp.frame.select((F.col(IDX) + F.lit(int(pool.start[name]))).alias(PIDX),
                               *[F.col(f"`{c}`").cast("double").alias(f"c{j}") for j, c in enumerate(cols)])
        rows = part if rows is None else rows.unionByName(part)
    rows = rows.join(codes, PIDX) if codes is not None else rows.withColumn(CLS, F.lit(0))
    aliases = [f"c{j}" for j in range(len(cols))]
    keep = []
    if aliases:
        cap = int(min_unique)
        parts = _collect_payloads(rows.select(*aliases).mapInPandas(
            lambda it: _distinct_values(it, aliases, cap), "payload binary"))
        for j, a in enumerate(aliases):
            seen = set()
            many = False
            for p in parts:
                if p[a] is None:
                    many = True
                    break
                seen.update(p[a])
            if many or len(seen) >= cap:
                keep.append(j)
    kept = [aliases[j] for j in keep]
    vectors = rows.select(PIDX, CLS, *kept).mapInPandas(
        lambda it: _table_vectors(it, kept), f"{PIDX} long, {CLS} int, x binary")
    return vectors, [cols[j] for j in keep]


def _series_inputs(spark, prepared: dict, pool, codes):
    """(vector frame, column names) for series splits, or (None, []) when lengths differ; an item
    that does not convert raises here as it does in the local check."""
    from pyspark.sql import functions as F

    from ..checks.oversampling import series_values
    from ..errors import SampleError
    from .spark_tabular_checks import _series_value_batches

    schema = f"{IDX} long, n long, values binary, raw binary, error string"
    decoded = None
    for name, sp in prepared.items():
        if sp.kind != "items":
            raise RuntimeError(f"oversampling_leakage on Spark reads series given as items, split {name!r} "
                               f"is {sp.kind!r}")
        part = (sp.frame.mapInPandas(_series_value_batches, schema)
                .withColumn(PIDX, F.col(IDX) + F.lit(int(pool.start[name]))))
        decoded = part if decoded is None else decoded.unionByName(part)
    bad = decoded.filter(F.col("raw").isNotNull() | F.col("error").isNotNull()).orderBy(PIDX).limit(1).collect()
    if bad:  # the first item the local loop would fail on, failing the same way
        row = bad[0]
        if row["raw"] is not None:
            series_values(pickle.loads(bytes(row["raw"])))
        raise SampleError(row["error"], index=int(row[IDX]))
    lengths = decoded.agg(F.min("n").alias("lo"), F.max("n").alias("hi")).collect()[0]
    if lengths["lo"] != lengths["hi"]:
        return None, []
    d = int(lengths["lo"] or 0)
    vectors = decoded.select(PIDX, F.col("values").alias("x"))
    vectors = vectors.join(codes, PIDX) if codes is not None else vectors.withColumn(CLS, F.lit(0))
    return vectors.select(PIDX, CLS, "x"), [f"t{i}" for i in range(d)]


def oversampling_distributed(spark, ctx, check_name: str, prepared: dict) -> list:
    """``oversampling_leakage`` with the work in the executors; the same findings as the local check."""
    import pandas as pd
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..checks import get_check
    from ..checks.groups import PooledIndex
    from ..checks.oversampling import _lines, exact_ratio, grid_levels
    from .spark import _phase

    check = get_check(check_name)
    opts = ctx.config.options(check_name)
    k = int(opts.get("k", 50))
    tol = float(opts.get("tolerance", 1e-6))
    block_rows = int(opts.get("block_rows", BLOCK_ROWS))
    pool = PooledIndex(ctx.splits)
    if pool.total < 3:
        return []
    tabular = ctx.splits.modality == "tabular"
    _phase(spark, f"{check_name}: labels")
    labels = pooled_labels(spark, prepared)
    classes = labels if labels is not None else np.zeros(pool.total, dtype=int)
    class_values, cls_code = np.unique(classes, return_inverse=True)
    codes = _codes_frame(spark, cls_code) if labels is not None else None
    findings = []
    persisted = []
    try:
        if tabular:
            _phase(spark, f"{check_name}: columns with {int(opts.get('min_unique', 10))} distinct values")
            vectors, cols = _table_inputs(spark, prepared, pool, codes, int(opts.get("min_unique", 10)))
            if labels is not None:
                _phase(spark, f"{check_name}: copies (row hashes)")
                findings += _copies(spark, check, ctx, pool, prepared, labels, codes, persisted)
        else:
            _phase(spark, f"{check_name}: series values")
            vectors, cols = _series_inputs(spark, prepared, pool, codes)
            if vectors is None:
                return []
        d = len(cols)
        if d < 2:
            return findings
        vectors = vectors.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(vectors)
        _phase(spark, f"{check_name}: grid counts and exact sums")
        parts = _collect_payloads(vectors.mapInPandas(lambda it: _first_moments(it, d, len(class_values)),
                                                      "payload binary"))
        hits = sum(p[0] for p in parts)
        finite_counts = sum(p[1] for p in parts)
        sums = [sum(p[2][j] for p in parts) for j in range(d)]
        n_fin = sum(p[3] for p in parts)
        sizes = sum(p[4] for p in parts)
        if not n_fin:
            return findings
        levels = grid_levels(hits, finite_counts)
        mean = np.array([exact_ratio(s, n_fin) for s in sums], dtype=np.float64)
        parts = _collect_payloads(vectors.mapInPandas(lambda it: _second_moments(it, d, mean), "payload binary"))
        sd = np.sqrt(np.array([exact_ratio(sum(p[j] for p in parts), n_fin) for j in range(d)], dtype=np.float64))
        rows_frame = vectors.mapInPandas(lambda it: _standardised(it, d, mean, sd, levels),
                                         f"{PIDX} long, {CLS} int, x binary, z binary, off boolean")
        rows_frame = rows_frame.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(rows_frame)
        eligible = {int(c): int(n) for c, n in enumerate(sizes) if n >= 3}
        if not eligible:
            return findings
        n_blocks = {c: max(1, -(-n // block_rows)) for c, n in eligible.items()}
        _phase(spark, f"{check_name}: neighbours and rays per class ({sum(n_blocks.values())} query blocks)")
        triples = _neighbour_triples(spark, rows_frame, d, k, eligible, n_blocks, tol)
        found, rescanned = _fallback(spark, rows_frame, d, k, eligible, triples, tol)
        ctx.shared.setdefault("spark_meta", {})["oversampling_rescanned"] = rescanned
        if not found:
            return findings + check._interpolations(ctx, pool, _empty_triples(), labels)
        found.sort(key=lambda r: r[0])
        rows = [r[1] for r in found]
        _phase(spark, f"{check_name}: the lines' rows to the driver")
        points = np.unique(np.asarray([(r[0], r[1], r[2]) for r in rows], dtype=np.int64))
        scan_classes = sorted({int(cls_code[p]) for p in points if eligible.get(int(cls_code[p]), 0) <= MAX_SCAN})
        ids_frame = spark.createDataFrame(pd.DataFrame({PIDX: points}))
        wanted = rows_frame.join(F.broadcast(ids_frame), PIDX, "left_semi")
        if scan_classes:
            wanted = wanted.unionByName(rows_frame.filter(F.col(CLS).isin(scan_classes))).dropDuplicates([PIDX])
        got = wanted.select(PIDX, CLS, "z", "off").toPandas().sort_values(PIDX, kind="stable")
        ids = got[PIDX].to_numpy(np.int64)
        Z = _RowLookup(ids, _stack(got["z"], d))
        off = _RowLookup(ids, got["off"].to_numpy(bool))
        got_cls = got[CLS].to_numpy(np.int64)

        def members_of(label):
            c = int(np.searchsorted(class_values, label))
            if eligible.get(c, sizes[c]) > MAX_SCAN:
                return None
            return ids[got_cls == c]

        _phase(spark, f"{check_name}: lines (driver)")
        triples_frame = _lines(rows, Z, off, tol, classes, None, MAX_SCAN, members_of=members_of)
        findings += check._interpolations(ctx, pool, triples_frame, labels)
        return findings
    finally:
        for frame in persisted:
            frame.unpersist()


def _empty_triples():
    import pandas as pd

    return pd.DataFrame(columns=["synthetic", "parent_a", "parent_b", "lam", "residual"])


def _neighbour_triples(spark, rows_frame, d: int, k: int, eligible: dict, n_blocks: dict, tol: float):
    """The triples (and the uncertified queries) of every eligible class, from the executors."""
    from pyspark.sql import functions as F

    cos_min = 1.0 - tol ** 2 / 2
    blocks = F.create_map(*[x for c, b in n_blocks.items() for x in (F.lit(c), F.lit(b))])
    members = (rows_frame.filter(F.col(CLS).isin(list(eligible)))
               .withColumn("_nb", F.element_at(blocks, F.col(CLS)))
               .withColumn("_blk", F.pmod(F.xxhash64(F.col(PIDX)), F.col("_nb").cast("long")).cast("int")))
    queries = members.select(CLS, F.col("_blk").alias("_q"), F.lit(0).alias("_role"), PIDX, "x", "z")
    index = members.select(CLS, F.explode(F.sequence(F.lit(0), F.col("_nb") - 1)).alias("_q"),
                           F.lit(1).alias("_role"), PIDX, "x", "z")
    n_tasks = max(1, min(sum(n_blocks.values()), 4096))
    tasks = (queries.unionByName(index).repartition(n_tasks, CLS, "_q")
             .sortWithinPartitions(CLS, "_q", "_role", PIDX))
    sizes = dict(eligible)
    return tasks.mapInPandas(lambda it: _neighbour_rays(it, d, k, sizes, tol, cos_min), TRIPLE_SCHEMA).toPandas()


def _fallback(spark, rows_frame, d: int, k: int, eligible: dict, triples, tol: float) -> list:
    """``(triples, queries rescanned)``, triples as ``(sort key, (s, a, far, lam, resid))``: the
    certified queries' from the tasks, the others' after an exact scan of their class."""
    import pandas as pd
    from pyspark.sql import functions as F

    from ..checks.oversampling import rays_from

    cos_min = 1.0 - tol ** 2 / 2
    done = triples[triples["kind"] == 0]
    out = [((int(r.space), int(r.cls), int(r.a), int(r.seq)), (int(r.s), int(r.a), int(r.far), float(r.lam),
                                                                 float(r.resid)))
           for r in done.itertuples()]
    todo = triples[triples["kind"] == 1]
    if not len(todo):
        return out, 0
    ids_frame = spark.createDataFrame(pd.DataFrame({PIDX: np.unique(todo["a"].to_numpy(np.int64))}))
    got = rows_frame.join(F.broadcast(ids_frame), PIDX, "left_semi").select(PIDX, "x", "z").toPandas()
    vec = {int(i): (x, z) for i, x, z in zip(got[PIDX], _stack(got["x"], d), _stack(got["z"], d))}
    queries = [(int(r.space), int(r.cls), int(r.a), vec[int(r.a)][int(r.space)]) for r in todo.itertuples()]
    k_of = {c: min(k, n - 1) for c, n in eligible.items()}
    classes = sorted({q[1] for q in queries})
    best = (rows_frame.filter(F.col(CLS).isin(classes))
            .mapInPandas(lambda it: _scan_queries(it, d, queries, k_of),
                         "space int, a long, nb long, d2 double, z binary").toPandas())
    for space, c, a, _ in queries:
        mine = best[(best["space"] == space) & (best["a"] == a)]
        kk = k_of[c]
        order = np.lexsort((mine["nb"].to_numpy(np.int64), mine["d2"].to_numpy()))[:kk]
        nb = mine["nb"].to_numpy(np.int64)[order]
        Znb = _stack(mine["z"].to_numpy()[order], d)
        rows = rays_from(np.array([a]), vec[a][1][None, :], nb[None, :], Znb[None, :, :], tol, cos_min)
        out += [((space, c, a, i), row) for i, row in enumerate(rows)]
    return out, len(queries)


def _copies(spark, check, ctx, pool, prepared: dict, labels: np.ndarray, codes, persisted: list) -> list:
    """Random-oversampling copies: row hashes and counts in Spark, the copied rows of flagged
    classes that sit in two splits to the driver, the local code's findings."""
    import pandas as pd
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    names = list(prepared)
    cols = list(prepared[names[0]].features or [])
    if not cols:
        return []
    integral = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
    floating = (T.FloatType, T.DoubleType, T.BooleanType)
    kinds = {}
    for c in cols:
        types = [sp.frame.schema[c].dataType for sp in prepared.values()]
        if all(isinstance(t, integral) for t in types):
            kinds[c] = "int"
        elif all(isinstance(t, integral + floating) for t in types):
            kinds[c] = "float"
        else:
            kinds[c] = "object"
    ints = [c for c in cols if kinds[c] == "int"]
    if ints:  # an integer column with a missing cell is float64 in the pooled frame
        for sp in prepared.values():
            nulls = sp.frame.agg(*[F.count(F.when(F.col(f"`{c}`").isNull(), 1)).alias(c) for c in ints]).collect()[0]
            for c in ints:
                if nulls[c]:
                    kinds[c] = "float"
    hashed = None
    for code, (name, sp) in enumerate(prepared.items()):
        start = int(pool.start[name])
        part = sp.frame.select(IDX, *[F.col(f"`{c}`") for c in cols]).mapInPandas(
            lambda it, start=start, code=code: _row_hashes(it, cols, kinds, start, code),
            f"{PIDX} long, code int, h long")
        hashed = part if hashed is None else hashed.unionByName(part)
    hashed = hashed.join(codes, PIDX)
    clusters = hashed.groupBy("h").agg(F.count(F.lit(1)).alias("size"), F.countDistinct("code").alias("n_splits"))
    tagged = hashed.join(clusters, "h").persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(tagged)
    per_class = (tagged.groupBy(CLS).agg(F.sum((F.col("size") > 1).cast("long")).alias("dup"),
                                         F.count(F.lit(1)).alias("n")).toPandas())
    class_values = np.unique(labels)
    per_class = per_class.sort_values(CLS)
    rate = pd.Series(per_class["dup"].to_numpy(np.float64) / per_class["n"].to_numpy(np.float64),
                     index=pd.Index(class_values[per_class[CLS].to_numpy(np.int64)], dtype=object))
    flags = check.copy_flags(labels, rate)
    if flags is None:
        return []
    flagged_codes = [int(np.searchsorted(class_values, c)) for c in flags[0]]
    rows = (tagged.filter((F.col("size") > 1) & (F.col("n_splits") > 1) & F.col(CLS).isin(flagged_codes))
            .select(PIDX, "h").toPandas().sort_values(PIDX, kind="stable"))
    return check._copy_findings(ctx, pool, labels, rate, rows[PIDX].to_numpy(np.int64), rows["h"].to_numpy())
