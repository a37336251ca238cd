"""Image partial_duplicate with resized=True: local engine vs Spark on the bench_image_partial data.

Usage: .venv/bin/python benchmarks/bench_spark_image_partial.py [--per-photo 12] [--master local[2]]
Prints wall and CPU seconds of each audit (CPU: this process for local; for Spark this process plus
the JVM and its Python workers, read from /proc), the found pairs and whether the report JSON is
equal. Crops are written as PNG files (Spark reads file paths, as a real job would).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_image_partial's data


def tree_cpu() -> float:
    """CPU seconds of this process and all its live descendants (with their reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            rest = f[f.rindex(")") + 2:].split()
            stats[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    kids = {}
    for pid, (ppid, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    total, todo = 0, [os.getpid()]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0))[1]
        todo += kids.get(p, [])
    return total / tick


def comparable(report) -> dict:
    d = json.loads(report.to_json())
    d["meta"] = {k: v for k, v in d["meta"].items() if k not in ("duration_s", "created", "config", "spark", "cache")}
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-photo", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--checks", default="exact_duplicate,partial_duplicate")
    args = ap.parse_args()
    from PIL import Image

    import leakguard as lg
    from bench_image_partial import build

    train, val, truth = build(args.per_photo, args.seed)
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="lg-bench-partial-")) / f"p{args.per_photo}s{args.seed}"
    splits = {}
    for name, imgs in (("train", train), ("val", val)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, img in enumerate(imgs):
            p = folder / f"{i:05d}.png"
            if not p.exists():
                Image.fromarray(img).save(p)
            paths.append(p)
        splits[name] = paths
    checks = args.checks.split(",")
    opts = {"partial_duplicate": {"resized": True}}
    print(f"{len(train)} train, {len(val)} val crops; load {os.getloadavg()}", flush=True)
    t, c = time.perf_counter(), time.process_time()
    local = lg.audit(splits, modality="image", checks=checks, config=lg.AuditConfig(progress=False, check_options=opts))
    print(f"local: {time.perf_counter() - t:.1f} s wall, {time.process_time() - c:.1f} CPU-s; load {os.getloadavg()}",
          flush=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(args.master).config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", str(args.partitions))
             .config("spark.driver.memory", "2g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(1).collect()
    import leakguard.search.spark as lgspark

    marks = []
    phase = lgspark._phase

    def timed_phase(session, text):  # the engine's job names, with the time each one starts
        marks.append((time.perf_counter(), text))
        phase(session, text)

    lgspark._phase = timed_phase
    for run in ("first", "second"):
        t, c = time.perf_counter(), tree_cpu()
        on_spark = lg.audit(splits, modality="image", checks=checks,
                            config=lg.AuditConfig(engine="spark", spark=spark, progress=False, check_options=opts))
        end = time.perf_counter()
        print(f"spark ({args.master}, {run} audit in the session): {end - t:.1f} s wall, "
              f"{tree_cpu() - c:.1f} CPU-s (driver + JVM + workers); load {os.getloadavg()}", flush=True)
        mine = [m for m in marks if m[0] >= t] + [(end, "end")]
        for (t0, text), (t1, _) in zip(mine[:-1], mine[1:]):
            print(f"  {t1 - t0:7.1f} s  {text}", flush=True)
    same = comparable(on_spark) == comparable(local)
    part = local.pairs(check="partial_duplicate")
    print(f"report JSON equal: {same}; partial pairs {len(part)} "
          f"({sum(1 for a, b in zip(part['index_a'], part['index_b']) if (int(a), int(b)) in truth)} overlap truly)")
    spark.stop()


if __name__ == "__main__":
    main()
