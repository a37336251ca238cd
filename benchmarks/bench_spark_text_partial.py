"""Text ``partial_duplicate`` on the Spark engine beside the local engine, on generated texts.

``N`` training texts of ~120 made-up words (a licence line, boilerplate, in every fifth) and
``N // 4`` evaluation texts, ``N // 40`` of them holding a passage of 15 to 34 words of a training
text. Both engines in one process (Spark ``--master``, default ``local[2]``); prints wall and CPU
seconds of the local audit, wall seconds of the Spark audit, the pairs each found and whether the
whole report JSON is equal (the Spark path is :mod:`leakguard.search.spark_text_partial`).

    .venv/bin/python benchmarks/bench_spark_text_partial.py --n 2000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def texts(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, size=rng.integers(3, 9))) for _ in range(3000)]
    words = lambda k: " ".join(rng.choice(vocab, size=k))  # noqa: E731
    licence = "this document is released under the terms of the open licence version two"
    train = [words(120) + (" " + licence if j % 5 == 0 else "") for j in range(n)]
    val = [words(120) for _ in range(n // 4)]
    for k in range(n // 40):
        w = train[7 * k].split()
        val[k] = f"{words(40)} {' '.join(w[10:10 + 15 + k % 20])} {words(40)}"
    return {"train": train, "val": val}


def comparable(report) -> dict:
    d = json.loads(report.to_json())
    d["meta"] = {k: v for k, v in d["meta"].items() if k not in ("duration_s", "created", "config", "spark", "cache")}
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import leakguard as lg
    from pyspark.sql import SparkSession

    splits, checks = texts(args.n), ["partial_duplicate"]
    c0, t0 = time.process_time(), time.perf_counter()
    local = lg.audit(splits, checks=checks)
    local_wall, local_cpu = time.perf_counter() - t0, time.process_time() - c0
    spark = (SparkSession.builder.master(args.master).config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").config("spark.sql.shuffle.partitions", "4")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    t0 = time.perf_counter()
    on_spark = lg.audit(splits, checks=checks, config=lg.AuditConfig(engine="spark", spark=spark))
    spark_wall = time.perf_counter() - t0
    found = lambda r: len(r.pairs(check="partial_duplicate"))  # noqa: E731
    print(f"n_train={args.n} n_val={args.n // 4} planted={args.n // 40} | local {local_wall:.1f} s wall "
          f"({local_cpu:.1f} CPU-s), found {found(local)} | Spark {args.master} {spark_wall:.1f} s wall, "
          f"found {found(on_spark)} | report JSON equal: {comparable(local) == comparable(on_spark)}")
    spark.stop()


if __name__ == "__main__":
    main()
