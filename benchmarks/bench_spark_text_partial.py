"""Text ``partial_duplicate`` / ``semantic_duplicate`` on the Spark engine beside the local engine.

``--check partial`` (default): ``N`` training texts of ~120 made-up words (a licence line,
boilerplate, in every fifth) and ``N // 4`` evaluation texts, ``N // 40`` of them holding a passage
of 15 to 34 words of a training text (:mod:`leakguard.search.spark_text_partial`).

``--check semantic``: the same kind of texts; ``N // 40`` evaluation texts are rewordings of a
training text (its six 20-word pieces reordered, a quarter of its words replaced), plus one exact
copy (linked by ``exact_duplicate``, so not reported again) (:mod:`leakguard.search.spark_text_semantic`).

Both engines in one process (Spark ``--master``, default ``local[2]``); prints wall and CPU
seconds of the local audit, wall seconds of the Spark audit, the pairs each found and whether the
whole report JSON is equal (semantic: also whether it is equal with floats within 1e-6, the
threshold coming from FAISS float32 scores).

    .venv/bin/python benchmarks/bench_spark_text_partial.py --n 2000
    .venv/bin/python benchmarks/bench_spark_text_partial.py --n 2000 --check semantic
    .venv/bin/python benchmarks/bench_spark_text_partial.py --n 20000 --fit-only

``--fit-only``: the Spark semantic check's one serial step alone, the driver's TF-IDF fit of the
``--check semantic`` training texts (``TfidfTextEmbedder().fit``): CPU seconds, peak memory over the
texts held, the broadcast's size. No Spark.
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


def reworded(n: int, seed: int = 0) -> dict:
    """``--check semantic`` data: rewordings of ``n // 40`` training texts among ``n // 4``."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, size=rng.integers(3, 9))) for _ in range(3000)]
    words = lambda k: list(rng.choice(vocab, size=k))  # noqa: E731
    licence = "this document is released under the terms of the open licence version two"
    train = [" ".join(words(120)) + (" " + licence if j % 5 == 0 else "") for j in range(n)]
    val = [" ".join(words(120)) for _ in range(n // 4)]
    for k in range(n // 40):
        w = train[7 * k].split()[:120]
        pieces = [w[i:i + 20] for i in range(0, 120, 20)]
        w = [x for j in rng.permutation(len(pieces)) for x in pieces[j]]
        for j in rng.choice(len(w), size=len(w) // 4, replace=False):
            w[j] = vocab[rng.integers(len(vocab))]
        val[k] = " ".join(w)
    val[-1] = train[-1]  # an exact copy: exact_duplicate links it, semantic_duplicate leaves it out
    return {"train": train, "val": val}


def close(a, b, tol: float = 1e-6) -> bool:
    """Two JSON trees equal, floats within ``tol``."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= tol * max(1.0, abs(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    return a == b


def fit_only(n: int) -> None:
    """The driver's TF-IDF fit on ``n`` training texts: CPU, peak RSS over the texts, broadcast size."""
    import resource

    from leakguard.similarity.text import TfidfTextEmbedder

    train = reworded(n)["train"]
    chars = sum(len(t) for t in train)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    c0 = time.process_time()
    emb = TfidfTextEmbedder().fit(train)
    cpu = time.process_time() - c0
    state, projection = emb.fitted_state(), emb.projection_components()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    terms = sum(len(v.vocabulary_) for _, v in emb._union.transformer_list)
    print(f"fit: n_train={n} characters={chars} | {cpu:.1f} CPU-s | peak RSS {peak / 1024:.0f} MB, "
          f"+{(peak - base) / 1024:.0f} MB over the texts | {terms} terms | broadcast: state "
          f"{len(state) / 1e6:.1f} MB + projection {len(projection) / 1e6:.1f} MB")


def comparable(report) -> dict:
    d = json.loads(report.to_json())
    d["meta"] = {k: v for k, v in d["meta"].items() if k not in ("duration_s", "created", "config", "spark", "cache")}
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--check", choices=["partial", "semantic"], default="partial")
    ap.add_argument("--fit-only", action="store_true", help="only the driver's TF-IDF fit (semantic)")
    args = ap.parse_args()
    if args.fit_only:
        fit_only(args.n)
        return
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import leakguard as lg
    from pyspark.sql import SparkSession

    if args.check == "semantic":
        splits, checks = reworded(args.n), ["exact_duplicate", "semantic_duplicate"]
    else:
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
    found = lambda r: len(r.pairs(check=checks[-1]))  # noqa: E731
    print(f"{checks[-1]}: n_train={args.n} n_val={args.n // 4} planted={args.n // 40} | local {local_wall:.1f} s wall "
          f"({local_cpu:.1f} CPU-s), found {found(local)} | Spark {args.master} {spark_wall:.1f} s wall, "
          f"found {found(on_spark)} | report JSON equal: {comparable(local) == comparable(on_spark)}, "
          f"within 1e-6: {close(comparable(on_spark), comparable(local))}")
    if args.check == "semantic":
        thr = [f.extra["threshold"] for r in (local, on_spark) for f in r.findings if f.check == checks[-1]]
        print(f"thresholds local / Spark: {thr}")
    spark.stop()


if __name__ == "__main__":
    main()
