"""Tabular ``semantic_duplicate`` and ``augmented_duplicate`` on the Spark engine: the local scaling
and scores, computed on Spark (``augmented_duplicate``: :func:`tabular_augmented_on_spark`; below,
the semantic check).

>>> report = lg.audit({"train": "s3a://b/train.parquet", "val": "s3a://b/val.parquet"},
...                   checks=["augmented_duplicate", "semantic_duplicate"],
...                   config=lg.AuditConfig(engine="spark"))                        # doctest: +SKIP

What runs where:

- **scaling**: :class:`~leakguard.similarity.tabular.RobustScaling` from per-column statistics the
  executors compute (:func:`robust_scaling_on_spark`): the exact order statistics numpy's
  ``nanmedian`` / ``nanpercentile`` interpolate between (Spark's exact ``percentile_disc``
  aggregate, which returns data values, never an interpolation of its own), then
  numpy's own arithmetic on the driver (the median's ``(low + high) / 2``, the quartiles' linear
  interpolation as ``numpy.lib``'s ``_lerp`` does it). A column whose IQR is zero falls back to its
  standard deviation locally; that column's values come to the driver (in sample order: numpy's
  summation order depends on it) and ``np.nanstd`` runs on them;
- **scores**: the local :func:`~leakguard.similarity.tabular.trimmed_rows` in the executors, each
  training partition scaled there with the same scaling; the queries (the training rows the local
  null samples, then the evaluation rows) are broadcast. On small data (the local
  ``EXHAUSTIVE_CELLS`` rule, evaluated with the same sizes) every training row is scored, as
  locally; on larger data the candidates are the ``k`` nearest per block of features from
  :func:`leakguard.search.spark_knn.knn_join` (ties at the ``k``-th kept);
- **threshold and finding**: the local ``tail_threshold`` rule and the local finding builder, on the
  driver.

Where a report can differ from the local one: two training rows at exactly the same trimmed
distance from an evaluation row (the local engine picks by ``np.argsort``'s order, this by the lower
index), and, on the kNN path only, a candidate tied with the ``k``-th of a block that FAISS left out
locally.
"""
from __future__ import annotations

import numpy as np

IDX = "_lg_idx"


# --------------------------------------------------------------------------- the scaling on Spark
def _rank_fraction(n: int, rank: int) -> float:
    """The fraction ``p`` for which Spark's ``percentile_disc`` (the ``ceil(n * p)``-th smallest
    value) returns the ``rank``-th smallest (0-based) of ``n`` values: ``(rank + 0.5) / n``, half a
    rank from either edge, so float rounding cannot move it. (``percentile`` at ``rank / (n - 1)``
    would need ``(n - 1) * p`` to be the rank exactly; for 108,960 of 1.3M ranks tried no float
    ``p`` is, and Spark then interpolates.)"""
    return (rank + 0.5) / n


def _numpy_quantile(lo: float, hi: float, n: int, q: float) -> float:
    """``np.nanpercentile``'s linear interpolation between the order statistics ``lo`` and ``hi``
    around virtual index ``(n - 1) * q`` (numpy's own ``_lerp`` arithmetic)."""
    virtual = np.float64((n - 1) * np.float64(q))
    gamma = virtual - np.floor(virtual)
    a, b = np.float64(lo), np.float64(hi)
    diff = b - a
    out = a + diff * gamma
    if gamma >= 0.5:
        out = b - diff * (1 - gamma)
    return float(out)


def _ranks(n: int) -> dict:
    """The 0-based order statistics numpy reads: median low/high, q25 and q75 previous/next."""
    h = n // 2
    out = {"m_lo": h if n % 2 else h - 1, "m_hi": h}
    for name, q in (("q25", 0.25), ("q75", 0.75)):
        prev = int(np.floor(np.float64((n - 1) * np.float64(q))))
        out[f"{name}_lo"], out[f"{name}_hi"] = prev, min(prev + 1, n - 1)
    return out


def numeric_columns(frame, features: list[str]):
    """``(numeric column names, other column names, {name: double Column})`` of a Spark table, as
    the local ``_numeric`` sorts pandas columns: booleans and numbers are numeric, timestamps count
    as int64 nanoseconds, the rest (strings, dates, decimals) are compared for equality only."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    num, other, values = [], [], {}
    for name in features:
        dtype = frame.schema[name].dataType
        col = F.col(f"`{name}`")
        if isinstance(dtype, (T.BooleanType, T.ByteType, T.ShortType, T.IntegerType, T.LongType,
                              T.FloatType, T.DoubleType)):
            values[name] = col.cast("double")
            num.append(name)
        elif isinstance(dtype, T.TimestampType):
            values[name] = (F.unix_micros(col) * 1000).cast("double")
            num.append(name)
        else:
            other.append(name)
    return num, other, values


def robust_scaling_on_spark(frame, features: list[str]):
    """``(RobustScaling, numeric columns, other columns)`` of a Spark table, equal to
    ``RobustScaling().fit(X)`` on the local numeric matrix (module docstring)."""
    from pyspark.sql import functions as F

    from ..similarity.tabular import RobustScaling

    num, other, values = numeric_columns(frame, features)
    if not num:
        return None, num, other
    # NaN is a missing value for numpy's nan-functions; Spark orders NaN above every number
    clean = frame.select(IDX, *[F.when(F.isnan(values[c]), None).otherwise(values[c]).alias(f"v{j}")
                                for j, c in enumerate(num)])
    counts = clean.agg(*[F.count(f"v{j}").alias(f"n{j}") for j in range(len(num))]).collect()[0]
    counts = [int(counts[f"n{j}"]) for j in range(len(num))]
    aggs, ranks = [], []
    for j, n in enumerate(counts):
        r = _ranks(n) if n else {}
        ranks.append(r)
        for name, rank in r.items():
            aggs.append(F.expr(f"percentile_disc(CAST({_rank_fraction(n, rank)!r} AS DOUBLE)) "
                               f"WITHIN GROUP (ORDER BY v{j})").alias(f"p{j}_{name}"))
    got = clean.agg(*aggs).collect()[0] if aggs else {}
    center, q75, q25 = (np.full(len(num), np.nan) for _ in range(3))
    for j, n in enumerate(counts):
        if not n:
            continue
        stats = {name: got[f"p{j}_{name}"] for name in ranks[j]}
        center[j] = (np.float64(stats["m_lo"]) + np.float64(stats["m_hi"])) / 2.0
        q25[j] = _numpy_quantile(stats["q25_lo"], stats["q25_hi"], n, 0.25)
        q75[j] = _numpy_quantile(stats["q75_lo"], stats["q75_hi"], n, 0.75)

    def std():
        # only for columns whose IQR is zero: np.nanstd on their values, in sample order (numpy
        # sums a one-column matrix pairwise and a wider one row by row: keep the local shape's order)
        need = [j for j in range(len(num)) if not ((q75[j] - q25[j]) / 1.349 > 0)]
        out = np.full(len(num), np.nan)
        if not need:
            return out
        pdf = frame.select(IDX, *[values[num[j]].alias(f"v{j}") for j in need]).toPandas().sort_values(
            IDX, kind="stable")
        X = np.stack([pdf[f"v{j}"].to_numpy(np.float64, na_value=np.nan) for j in need], axis=1)
        if len(num) > 1 and len(need) == 1:
            X = np.concatenate([X, X], axis=1)  # a strided column, reduced as in the local wide matrix
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                s = np.nanstd(X, axis=0) if len(X) else np.zeros(X.shape[1])
        out[need] = s[:len(need)]
        return out

    return RobustScaling().from_stats(center, q75, q25, std), num, other


# --------------------------------------------------------------------------- scores in the executors
def _score_batches(batches, payload, features, num):
    """``mapInPandas`` body: trimmed distances of broadcast queries to this partition's training rows.

    ``payload``: ``Q`` (scaled queries), ``q_rows`` (training index of a null query, -1 for an
    evaluation row), ``q_keys`` (row hash of null queries), ``scaling``, ``m_keep``, ``pairs``
    (None: every row; else a DataFrame ``q, index`` of the candidates), ``mode`` (``"min"``: per
    query the nearest allowed row; ``"le"``: every row at or under ``threshold``)."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from ..signatures.exact import frame_row_hashes
    from ..similarity.tabular import _numeric, trimmed_rows

    Q, q_rows, q_keys = payload["Q"], payload["q_rows"], payload["q_keys"]
    scaling, m_keep, pairs, mode = payload["scaling"], payload["m_keep"], payload["pairs"], payload["mode"]
    with threadpool_limits(1):
        for pdf in batches:
            if not len(pdf):
                continue
            pdf = pdf.reset_index(drop=True)
            ids = pdf[IDX].to_numpy(np.int64)
            T = scaling.transform(_numeric(pdf, num)[0])
            keys = frame_row_hashes(pdf[features], sorted(features)).astype(np.uint64)
            for q_idx, pos in _pair_chunks(len(Q), ids, pairs, max(1, 2_000_000 // max(T.shape[1], 1))):
                dist = trimmed_rows(Q[q_idx], T[pos][:, None, :], m_keep)[:, 0]
                null_q = q_rows[q_idx] >= 0
                ok = ~(null_q & (ids[pos] == q_rows[q_idx]))           # not itself
                ok &= ~(null_q & (keys[pos] == q_keys[q_idx]))         # nor its exact copies
                out = pd.DataFrame({"q": q_idx[ok], "index": ids[pos][ok], "dist": dist[ok]})
                if mode == "min":
                    out = out.sort_values(["q", "dist", "index"], kind="stable").drop_duplicates("q")
                else:
                    out = out[out["dist"] <= payload["threshold"]]
                if len(out):
                    yield out


def _pair_chunks(n_queries: int, ids, pairs, step: int):
    """``(query numbers, row positions)`` to score in a partition, at most about ``step`` pairs at
    a time: every query with every row (``pairs`` None), else the candidate pairs in it."""
    if pairs is None:
        per = max(1, step // max(len(ids), 1))
        for lo in range(0, n_queries, per):
            q = np.arange(lo, min(lo + per, n_queries), dtype=np.int64)
            yield np.repeat(q, len(ids)), np.tile(np.arange(len(ids), dtype=np.int64), len(q))
        return
    where = {int(v): p for p, v in enumerate(ids)}
    mine = pairs[pairs["index"].isin(where)]
    q_all = mine["q"].to_numpy(np.int64)
    pos_all = np.array([where[int(v)] for v in mine["index"]], dtype=np.int64)
    for lo in range(0, len(q_all), step):
        yield q_all[lo:lo + step], pos_all[lo:lo + step]


def _score(spark, train_frame, features, num, payload):
    from pyspark.sql import functions as F

    bc = spark.sparkContext.broadcast(payload)
    rows = train_frame.mapInPandas(lambda it: _score_batches(it, bc.value, features, num),
                                   "q long, index long, dist double")
    if payload["mode"] == "min":
        rows = rows.groupBy("q").agg(F.min("dist").alias("dist"))
    return rows.toPandas()


def _block_candidates(spark, train_frame, num, scaling, Q, k, random_state):
    """The local non-exhaustive candidates: per block of about 4 scaled features, each query's
    ``k`` nearest training rows (``knn_join``; ties with the ``k``-th kept)."""
    from ..similarity.tabular import _numeric
    from .spark_knn import knn_join

    d = int(scaling.used.sum())
    n_blocks = max(1, d // 4)
    blocks = np.array_split(np.random.default_rng(random_state).permutation(d), n_blocks)

    def vectors(pdf):
        T = scaling.transform(_numeric(pdf.reset_index(drop=True), num)[0])
        return {f"b{i}": np.ascontiguousarray(T[:, b]) for i, b in enumerate(blocks)}

    found = knn_join(spark, train_frame, vectors, [(f"b{i}", Q[:, b]) for i, b in enumerate(blocks)], k, "l2")
    return found.select("q", "index").dropDuplicates().toPandas()


def _first_matches(near, equal) -> dict:
    """Each evaluation row's first neighbour in ``near`` (sorted by row, distance, index) whose
    other columns agree (``equal(e, t)``; None: any): the local walk over the candidates."""
    hit_e, hit_t, hit_d = [], [], []
    for q, group in near.groupby("q", sort=True):
        for t, dd in zip(group["index"], group["dist"]):
            if equal is None or equal(int(q), int(t)):
                hit_e.append(int(q)), hit_t.append(int(t)), hit_d.append(float(dd))
                break
    return {"eval": np.asarray(hit_e, np.int64), "train": np.asarray(hit_t, np.int64),
            "distance": np.asarray(hit_d, np.float64)}


def _scaled_training_split(spark, ctx, prepared: dict, check: str):
    """The training split, its features, its robust scaling computed on Spark (numeric and other
    columns), its row count and the number of scaled features: the start of both tabular checks."""
    from .spark import _phase

    train = prepared[ctx.train]
    features = list(train.features)
    _phase(spark, f"{check} (tabular): robust scaling (per-column median and quartiles)")
    scaling, num, other = robust_scaling_on_spark(train.frame, features)
    return train, features, scaling, num, other, train.n, int(scaling.used.sum()) if num else 0


def tabular_semantic_on_spark(spark, ctx, check_name: str, prepared: dict) -> list:
    """Tabular ``semantic_duplicate`` (default, no embedder) with its work on Spark (module docstring)."""
    if callable(ctx.config.embedder):  # a user's embedder: leakguard.search.spark_embedders
        from .spark_embedders import tabular_user_semantic_on_spark

        return tabular_user_semantic_on_spark(spark, ctx, check_name, prepared)
    from ..similarity.tabular import EXHAUSTIVE_CELLS, _numeric, semantic_finding
    from ..similarity.findings import tail_threshold
    from ..signatures.exact import frame_row_hashes
    from .spark import _phase

    opts = ctx.config.options(check_name)
    keep, k = float(opts.get("keep", 0.75)), int(opts.get("k", 30))
    max_distance, null_samples = float(opts.get("max_distance", 0.25)), int(opts.get("null_samples", 5000))
    fixed = ctx.config.thresholds.get(check_name)
    train, features, scaling, num, other, n, d = _scaled_training_split(spark, ctx, prepared, "semantic_duplicate")
    if not num:
        return []
    findings = []
    for name in ctx.splits.eval_names:
        sp = prepared[name]
        if not sp.n or d < 4 or n < 3:
            continue  # with under 4 features "most of them" means nothing (the local rule)
        m_keep, kk = max(1, int(np.ceil(keep * d))), min(k, n - 1)
        eval_pdf = sp.frame.select(IDX, *[f"`{c}`" for c in features]).toPandas().sort_values(
            IDX, kind="stable").reset_index(drop=True)
        E = scaling.transform(_numeric(eval_pdf, num)[0])
        exhaustive = n * d * (len(E) + min(n, null_samples)) <= EXHAUSTIVE_CELLS
        if fixed is not None:
            threshold, n_null = float(fixed), 0
        else:
            _phase(spark, f"semantic_duplicate (tabular): null of {ctx.train!r} rows against the others")
            rng = np.random.default_rng(ctx.config.random_state)
            rows = np.arange(n) if n <= null_samples else np.sort(rng.choice(n, size=null_samples, replace=False))
            ids = spark.createDataFrame([(int(i),) for i in rows], f"{IDX} long")
            from pyspark.sql import functions as F

            sample = train.frame.join(F.broadcast(ids), IDX, "left_semi").select(
                IDX, *[f"`{c}`" for c in features]).toPandas().sort_values(IDX, kind="stable").reset_index(drop=True)
            Q = scaling.transform(_numeric(sample, num)[0])
            q_keys = frame_row_hashes(sample[features], sorted(features)).astype(np.uint64)
            pairs = None if exhaustive else _block_candidates(spark, train.frame, num, scaling, Q, kk + 1,
                                                              ctx.config.random_state)
            got = _score(spark, train.frame, features, num,
                         {"Q": Q, "q_rows": sample[IDX].to_numpy(np.int64), "q_keys": q_keys, "scaling": scaling,
                          "m_keep": m_keep, "pairs": pairs, "mode": "min"}).sort_values("q")
            null = got["dist"].to_numpy(np.float64)
            null = null[np.isfinite(null)]
            n_null = len(null)
            threshold = min(tail_threshold(null, ctx.config.fpr, higher_is_closer=False, default=0.0), max_distance)
        _phase(spark, f"semantic_duplicate (tabular): {name!r} rows against {ctx.train!r}")
        pairs = None if exhaustive else _block_candidates(spark, train.frame, num, scaling, E, kk,
                                                          ctx.config.random_state)
        near = _score(spark, train.frame, features, num,
                      {"Q": E, "q_rows": np.full(len(E), -1, np.int64), "q_keys": np.zeros(len(E), np.uint64),
                       "scaling": scaling, "m_keep": m_keep, "pairs": pairs, "mode": "le", "threshold": threshold})
        near = near.sort_values(["q", "dist", "index"], kind="stable")
        equal = None
        if other and len(near):
            need = int(np.ceil(keep * len(other)))
            t_rows = _train_rows(spark, train.frame, np.unique(near["index"].to_numpy(np.int64)), other)
            e_other = eval_pdf[other].astype(str).to_numpy()
            equal = lambda e, t: int((e_other[e] == t_rows[t]).sum()) >= need  # noqa: E731
        res = {"columns_used": d, **_first_matches(near, equal), "threshold": float(threshold), "null_size": n_null}
        f = semantic_finding(ctx, check_name, name, res, keep)
        if f is not None:
            findings.append(f)
    return findings


def _train_rows(spark, frame, indices, other) -> dict:
    """``{index: str values of the non-numeric columns}`` of a few training rows."""
    from pyspark.sql import functions as F

    ids = spark.createDataFrame([(int(i),) for i in indices], f"{IDX} long")
    pdf = frame.join(F.broadcast(ids), IDX, "left_semi").select(IDX, *[f"`{c}`" for c in other]).toPandas()
    values = pdf[other].astype(str).to_numpy()
    return {int(i): values[p] for p, i in enumerate(pdf[IDX])}


# --------------------------------------------------------------------------- augmented_duplicate
def _rows_by_index(spark, frame, indices, features) -> "object":
    """A few rows of a Spark table by index, as pandas, sorted by index."""
    from pyspark.sql import functions as F

    ids = spark.createDataFrame([(int(i),) for i in indices], f"{IDX} long")
    return (frame.join(F.broadcast(ids), IDX, "left_semi").select(IDX, *[f"`{c}`" for c in features])
            .toPandas().sort_values(IDX, kind="stable").reset_index(drop=True))


def tabular_augmented_on_spark(spark, ctx, check_name: str, prepared: dict) -> list:
    """Tabular ``augmented_duplicate`` with its work on Spark: :func:`robust_scaling_on_spark`, the
    null of :func:`~leakguard.similarity.calibration.null_scores` (L2) as
    :func:`leakguard.search.spark_semantic.null_on_spark` computes it for images (the sampled rows'
    nearest training rows by the kNN join, then ``null_scores`` itself on each with its
    neighbours), each evaluation row's ``k`` nearest training rows by the kNN join, and the local
    walk and finding on the driver. Distances are FAISS float32 values: they can differ from the
    local ones in the last bits (see :mod:`leakguard.search.spark_semantic`)."""
    from ..signatures.exact import frame_row_hashes
    from ..similarity.tabular import augmented_how

    train, features, scaling, num, other, n, d = _scaled_training_split(spark, ctx, prepared, "augmented_duplicate")
    if not num:
        return []
    evals = [(name, prepared[name].frame if prepared[name].n else None) for name in ctx.splits.eval_names]
    return _jittered_on_spark(spark, ctx, check_name, train.frame, features, scaling, num, other, n, d, evals,
                              lambda pdf: [int(v) for v in frame_row_hashes(pdf[features], sorted(features))],
                              "rows", lambda res: augmented_how(res, other), "tabular")


def _jittered_on_spark(spark, ctx, check_name, train_frame, features, scaling, num, other, n, d, evals, keys_of,
                       what, how, modality, train_ids=None, key_columns=()):
    """The local ``jittered_copies`` + finding with their searches on Spark, for tables and series.

    ``train_frame``: the training rows (``_lg_idx`` and ``features``), ``n`` of them, scaled by
    ``scaling`` (``d`` columns used); ``evals``: ``(split, frame or None)``; ``keys_of(pdf)``: the
    exact-content keys of rows read with ``key_columns`` too (exact copies are left out of the null);
    ``train_ids``: the sorted ``_lg_idx`` of the ``n`` training rows when they are not ``0..n-1``
    (the null samples positions among them, as the local check does)."""
    from types import SimpleNamespace

    from ..similarity.calibration import null_scores
    from ..similarity.findings import tail_threshold
    from ..similarity.tabular import _finding, _numeric
    from .spark import _phase
    from .spark_knn import knn_join

    opts = ctx.config.options(check_name)
    k, max_distance = int(opts.get("k", 5)), float(opts.get("max_distance", 0.25))
    fixed = ctx.config.thresholds.get(check_name)
    read = list(features) + [c for c in key_columns if c not in features]

    def vectors(pdf):
        return {"v": scaling.transform(_numeric(pdf.reset_index(drop=True), num)[0])}

    index_frame = train_frame.select(IDX, *[f"`{c}`" for c in num])
    threshold = n_null = None
    findings = []
    for name, eval_frame in evals:
        if eval_frame is None or d == 0 or n < 2:
            continue
        if threshold is None:
            if fixed is not None:
                threshold, n_null = float(fixed), 0
            else:
                _phase(spark, f"augmented_duplicate ({modality}): null of nearest {ctx.train!r} rows (kNN join)")
                rng = np.random.default_rng(ctx.config.random_state)
                rows = np.arange(n) if n <= 5000 else np.sort(rng.choice(n, size=5000, replace=False))
                if train_ids is not None:  # positions among the readable samples -> their indices
                    rows = np.asarray(train_ids, dtype=np.int64)[rows]
                sample = _rows_by_index(spark, train_frame, rows, read)
                S = vectors(sample)["v"]
                kq = min(n - 1, 1 + 8) + 1  # null_scores asks for k + 1: the row finds itself
                near = knn_join(spark, index_frame, vectors, [("v", S)], kq, "l2",
                                query_ids=np.arange(len(rows))).toPandas()
                near = near.sort_values(["q", "score", "index"], kind="stable")
                nb = _rows_by_index(spark, train_frame, np.unique(near["index"].to_numpy(np.int64)), read)
                nb_vecs = vectors(nb)["v"]
                nb_keys, s_keys = keys_of(nb), keys_of(sample)
                pos = {int(i): p for p, i in enumerate(nb[IDX])}
                null = []
                for q, group in near.groupby("q", sort=True):
                    me = int(rows[q])
                    others = [int(j) for j in group["index"] if int(j) != me]
                    X = np.vstack([S[q][None, :], nb_vecs[[pos[j] for j in others]]])
                    keys = [s_keys[q]] + [nb_keys[pos[j]] for j in others]
                    s, (r, _) = null_scores(X, metric="l2", exact_keys=keys, neighbor_rank=1, max_samples=None,
                                            return_pairs=True)
                    null.extend(s[r == 0].tolist())
                null = np.asarray(null, dtype=np.float64) / np.sqrt(d)
                n_null = len(null)
                threshold = min(tail_threshold(null, ctx.config.fpr, higher_is_closer=False, default=0.0),
                                max_distance)
        _phase(spark, f"augmented_duplicate ({modality}): nearest {ctx.train!r} rows of each {name!r} row (kNN join)")
        eval_pdf = eval_frame.select(IDX, *[f"`{c}`" for c in features]).toPandas().sort_values(
            IDX, kind="stable").reset_index(drop=True)
        E = vectors(eval_pdf)["v"]
        near = knn_join(spark, index_frame, vectors, [("v", E)], min(k, n), "l2").toPandas()
        near["dist"] = near["score"].to_numpy(np.float32) / np.sqrt(d)  # float64, as the local division
        near = near.sort_values(["q", "dist", "index"], kind="stable")
        near = near[near["dist"] <= threshold]
        equal = None
        if other and len(near):
            t_rows = _train_rows(spark, train_frame, np.unique(near["index"].to_numpy(np.int64)), other)
            e_other = eval_pdf[other].astype(str).to_numpy()
            equal = lambda e, t: bool((e_other[e] == t_rows[t]).all())  # noqa: E731
        res = {"columns_used": d, **_first_matches(near, equal), "threshold": float(threshold), "null_size": n_null}
        res["eval"] = eval_pdf[IDX].to_numpy(np.int64)[res["eval"]]  # query rows -> sample indices
        f = _finding(ctx, SimpleNamespace(name=check_name), name, res, what, how(res))
        if f is not None:
            findings.append(f)
    return findings


# --------------------------------------------------------------------------- series
def _profile_batches(batches, columns: list[str]):
    """``mapInPandas`` body: each series' ``profile`` signature (64 resampled points and the length,
    float64) as one double column per point, beside its digest."""
    import pandas as pd

    for pdf in batches:
        if not len(pdf):
            continue
        P = np.stack([np.frombuffer(bytes(v), dtype=np.float64) for v in pdf["sig_profile"]])
        out = pd.DataFrame(P, columns=columns)
        out.insert(0, "key", list(pdf["key"]))
        out.insert(0, IDX, pdf[IDX].to_numpy(np.int64))
        out.insert(0, "split", pdf["split"].to_numpy(object))
        yield out


def series_augmented_on_spark(spark, ctx, check_name: str, sigs) -> list:
    """Series ``augmented_duplicate`` with its work on Spark: the local ``profile`` signature in the
    executors, one double column per profile point; then the tabular path
    (:func:`robust_scaling_on_spark`, the null and each evaluation series' nearest by the kNN join,
    the local walk) with the series' digests as exact keys, and the local finding text
    (``tabular.SERIES_HOW``). The null samples positions among the readable training series, as the
    local ``jittered_copies`` does."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from ..similarity.tabular import PROFILE_POINTS, SERIES_HOW
    from .spark import _phase
    from .spark_checks import _positions_to_indices

    columns = [f"p{j}" for j in range(PROFILE_POINTS + 1)]
    schema = f"split string, {IDX} long, key binary, " + ", ".join(f"{c} double" for c in columns)
    profiles = (sigs.where(F.col("sig_profile").isNotNull()).select("split", IDX, "key", "sig_profile")
                .mapInPandas(lambda it: _profile_batches(it, columns), schema)
                .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        counts = dict(profiles.groupBy("split").count().toPandas().itertuples(index=False, name=None))
        n = int(counts.get(ctx.train, 0))
        if n < 2:
            return []
        train_frame = profiles.where(F.col("split") == ctx.train)
        _phase(spark, "augmented_duplicate (series): robust scaling (per-point median and quartiles)")
        scaling, num, other = robust_scaling_on_spark(train_frame, columns)
        d = int(scaling.used.sum())
        # the readable training series' indices (collected only when some series are not readable)
        train_ids = _positions_to_indices(spark, train_frame, np.arange(n), n)
        evals = [(name, profiles.where(F.col("split") == name) if counts.get(name) else None)
                 for name in ctx.splits.eval_names]
        return _jittered_on_spark(spark, ctx, check_name, train_frame, columns, scaling, num, other, n, d, evals,
                                  lambda pdf: [bytes(v) for v in pdf["key"]], "series", lambda res: SERIES_HOW,
                                  "series", train_ids=train_ids, key_columns=["key"])
    finally:
        profiles.unpersist()
