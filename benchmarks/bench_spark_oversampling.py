"""oversampling_leakage: the local engine against the distributed Spark path, same data, same report.

Planted data: ``--n`` rows in 3 classes (70 / 20 / 10 %) of ``--d`` columns recorded to 3
decimals; the smallest class is SMOTE-oversampled by half (imblearn) before a shuffled 80 / 20
split, and 10 % of the middle class is copied (random oversampling). Both splits are written to
Parquet; both engines audit the Parquet files (Spark: ``--master``, default ``local[2]``). Printed: wall and CPU seconds of each engine (Spark: the driver plus its JVM
and Python workers, process tree), rows per second, the shuffle bytes written and read by the
check's stages (Spark's REST API), the findings, and whether the two reports are equal.

    .venv/bin/python benchmarks/bench_spark_oversampling.py --n 200000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path


def _planted(n: int, d: int, seed: int = 0):
    import numpy as np
    import pandas as pd
    from imblearn.over_sampling import SMOTE

    rng = np.random.default_rng(seed)
    sizes = [int(0.7 * n), int(0.2 * n), n - int(0.7 * n) - int(0.2 * n)]
    X = np.concatenate([rng.normal(c * 1.5, 1.0, (m, d)) for c, m in enumerate(sizes)]).round(3)
    y = np.repeat(np.arange(3), sizes)
    Xs, ys = SMOTE(sampling_strategy={2: int(sizes[2] * 1.5)}, random_state=seed).fit_resample(X, y)
    copied = rng.choice(np.flatnonzero(ys == 1), max(1, sizes[1] // 10), replace=False)
    Xs, ys = np.concatenate([Xs, Xs[copied]]), np.concatenate([ys, ys[copied]])
    frame = pd.DataFrame(Xs, columns=[f"f{j}" for j in range(d)]).assign(label=ys)
    perm = rng.permutation(len(frame))
    cut = int(0.8 * len(frame))
    return frame.iloc[perm[:cut]].reset_index(drop=True), frame.iloc[perm[cut:]].reset_index(drop=True)


def _tree_cpu(proc) -> float:
    """CPU seconds of a process and its descendants, finished children included."""
    total = 0.0
    for p in [proc] + proc.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except Exception:  # noqa: BLE001 - a worker that exited meanwhile
            pass
    return total


def _shuffle_bytes(spark) -> tuple[int, int]:
    """Shuffle bytes written and read by the stages whose job description names the check."""
    sc = spark.sparkContext
    url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages"
    stages = json.loads(urllib.request.urlopen(url, timeout=30).read())
    mine = [s for s in stages if "oversampling_leakage" in (s.get("description") or "")]
    return (sum(s.get("shuffleWriteBytes", 0) for s in mine), sum(s.get("shuffleReadBytes", 0) for s in mine))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200000, help="original rows before oversampling")
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--block-rows", type=int, default=None)
    ap.add_argument("--no-local", action="store_true", help="skip the local engine (no equality check)")
    args = ap.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warnings.simplefilter("ignore")
    import psutil
    from pyspark.sql import SparkSession

    import leakguard as lg

    train, test = _planted(args.n, args.d)
    rows = len(train) + len(test)
    opts = {"oversampling_leakage": {"block_rows": args.block_rows}} if args.block_rows else {}
    check = ["oversampling_leakage"]
    print(f"rows {rows} ({len(train)} train, {len(test)} test), d {args.d}, load {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"train": str(Path(tmp) / "train.parquet"), "test": str(Path(tmp) / "test.parquet")}
        train.to_parquet(paths["train"])
        test.to_parquet(paths["test"])
        local = None
        if not args.no_local:
            me = psutil.Process()
            t0, c0 = time.perf_counter(), _tree_cpu(me)
            local = lg.audit(paths, labels="label", checks=check,
                             config=lg.AuditConfig(progress=False, check_options=opts))
            wall, cpu = time.perf_counter() - t0, _tree_cpu(me) - c0
            print(f"local: {wall:.1f} s wall, {cpu:.1f} CPU-s, {rows / wall:.0f} rows/s; "
                  f"findings {[(f.extra.get('kind'), f.splits, f.count) for f in local.findings]}", flush=True)
        spark = (SparkSession.builder.master(args.master).appName("bench-oversampling")
                 .config("spark.ui.enabled", "true").config("spark.ui.port", "0")
                 .config("spark.sql.shuffle.partitions", "8").config("spark.driver.memory", "4g")
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        spark.range(10).count()  # the JVM up before timing
        me = psutil.Process()
        t0, c0 = time.perf_counter(), _tree_cpu(me)
        on_spark = lg.audit(paths, labels="label", checks=check,
                            config=lg.AuditConfig(engine="spark", spark=spark, progress=False, check_options=opts))
        wall, cpu = time.perf_counter() - t0, _tree_cpu(me) - c0
        written, read = _shuffle_bytes(spark)
        print(f"spark {args.master}: {wall:.1f} s wall, {cpu:.1f} CPU-s (process tree), {rows / wall:.0f} rows/s; "
              f"shuffle written {written / 2**20:.1f} MB, read {read / 2**20:.1f} MB; "
              f"path {on_spark.meta['spark'].get('oversampling_path')}, "
              f"rescanned {on_spark.meta['spark'].get('oversampling_rescanned')}", flush=True)
        print(f"findings {[(f.extra.get('kind'), f.splits, f.count) for f in on_spark.findings]}", flush=True)
        if local is not None:
            strip = lambda r: {**json.loads(r.to_json()), "meta": None}  # noqa: E731
            print("reports equal:", strip(local) == strip(on_spark), flush=True)
        spark.stop()
    print(f"load {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
