"""What group_overlap's scene and passage links cost on Spark (local[2]) and locally (session 7, S1).

Each audit runs twice per engine, with the links (default) and without them (check_options scenes /
passages False), so the difference is the links' own cost; reports are compared (meta aside).
CPU: this process + every live child process (the JVM, PySpark's Python workers), via psutil.

  .venv/bin/python benchmarks/bench_spark_groups.py --videos 40 --frames 25 --articles 150
"""
import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def tree_cpu():
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for c in me.children(recursive=True):
        try:
            total += sum(c.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def comparable(report):
    d = json.loads(report.to_json())
    d["meta"] = {k: v for k, v in d["meta"].items() if k not in ("duration_s", "created", "config", "spark", "cache")}
    return d


def articles(n, seed=0):
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(5000)]
    chunks, art = [], []
    for a in range(n):
        sents = [" ".join(rng.choice(vocab, int(rng.integers(10, 16)))) + "." for _ in range(12)]
        for i in range(0, 9, 2):
            chunks.append(" ".join(sents[i:i + 4]))
            art.append(a)
    art = np.asarray(art)
    pos = np.tile(np.arange(5), n)
    # a third of the articles leak: chunks 1-3 in test (chunk 2 tied only through its test neighbours)
    leak = art % 3 == 0
    in_test = (leak & np.isin(pos, [1, 2, 3])) | (~leak & (art % 3 == 1))
    return {"train": [c for c, t in zip(chunks, in_test) if not t], "test": [c for c, t in zip(chunks, in_test) if t]}


def timed(fn):
    c0, w0 = tree_cpu(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - w0, tree_cpu() - c0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--articles", type=int, default=150)
    ap.add_argument("--root", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    import leakguard as lg
    from leakguard.sources.yolo_synthetic import make_video_frames
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", "4").config("spark.driver.memory", "2g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    import tempfile

    root = Path(args.root or tempfile.mkdtemp(prefix="lg-bench-groups-"))
    shutil.rmtree(root, ignore_errors=True)
    make_video_frames(root / "v", n_videos=args.videos, frames_per_video=args.frames, split="random", random_state=0)
    cases = [("image", {s: root / "v" / "images" / s for s in ("train", "val")}, ["group_overlap"], "scenes"),
             ("text", articles(args.articles), ["exact_duplicate", "partial_duplicate", "group_overlap"], "passages")]
    # warm the JVM and the Python workers
    lg.audit({"train": ["a b c d e f g"] * 3, "val": ["x y z"]}, checks=["exact_duplicate"],
             config=lg.AuditConfig(engine="spark", spark=spark, progress=False))
    print(f"load before: {os.getloadavg()}", flush=True)
    for mod, splits, checks, option in cases:
        n = {k: len(v) if not isinstance(v, Path) else len(list(v.iterdir())) for k, v in splits.items()}
        row = {}
        for engine in ("local", "spark"):
            for on in (True, False):
                cfg = lg.AuditConfig(engine=engine, spark=spark if engine == "spark" else None, progress=False,
                                     check_options={"group_overlap": {option: on}})
                rep, wall, cpu = timed(lambda: lg.audit(splits, checks=checks, config=cfg))
                row[(engine, on)] = (rep, wall, cpu)
                inf = [f for f in rep.findings if f.check == "group_overlap"]
                print(f"{mod} {n} {engine:5s} {option}={on!s:5s} wall {wall:7.1f} s  cpu {cpu:7.1f} s  "
                      f"group findings {[(f.count, f.extra.get('scene_links'), f.extra.get('passage_links')) for f in inf]}",
                      flush=True)
        same = comparable(row[("local", True)][0]) == comparable(row[("spark", True)][0])
        print(f"{mod}: Spark report equal to local: {same}; links' own cost: local "
              f"{row[('local', True)][1] - row[('local', False)][1]:.1f} s wall "
              f"{row[('local', True)][2] - row[('local', False)][2]:.1f} s cpu, Spark "
              f"{row[('spark', True)][1] - row[('spark', False)][1]:.1f} s wall "
              f"{row[('spark', True)][2] - row[('spark', False)][2]:.1f} s cpu", flush=True)
    print(f"load after: {os.getloadavg()}", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
