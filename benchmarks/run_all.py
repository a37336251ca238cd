"""Run every benchmark in this folder one after another (``make bench``) and print their figures.

Each benchmark compares leakguard with its peer side by side in one process and prints ratios;
run one alone with ``.venv/bin/python benchmarks/<name>.py --help`` for its options.

    .venv/bin/python benchmarks/run_all.py [--only exact,spark] [--quick]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
# (script, arguments for a full run, arguments for --quick)
BENCHMARKS = [
    ("bench_exact_images.py", [], ["--n", "600"]),
    ("bench_exact_tabular.py", [], ["--train", "200000", "--val", "40000"]),
    ("bench_image_similarity.py", [], []),
    ("bench_text_similarity.py", [], ["--seeds", "1", "--train", "5000", "--eval", "1000"]),
    ("bench_audio_similarity.py", [], ["--seeds", "1", "--train", "40"]),
    ("bench_checks_planted.py", [], ["--seeds", "1"]),
    ("bench_target_leakage.py", [], []),
    ("bench_lightning_overhead.py", [], ["--n", "400", "--repeats", "1"]),
    ("bench_yolo_overhead.py", [], ["--videos", "20", "--frames", "50"]),
    ("bench_spark.py", [], ["--n", "100000"]),
    # peers side by side (pip install -e ".[bench]"; make bench does it)
    ("bench_peers_image.py", ["--tiles", "20", "--per-family", "10"], []),
    ("bench_peers_text.py", ["--seeds", "2", "--speed", "--train", "20000", "--eval", "5000"], ["--speed"]),
    ("bench_cache.py", ["--tiles", "20", "--per-family", "10", "--texts", "20000"], []),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated name fragments, e.g. exact,spark")
    ap.add_argument("--quick", action="store_true", help="smaller inputs where a benchmark has a size option")
    args = ap.parse_args()
    failed = []
    for script, full, quick in BENCHMARKS:
        if args.only and not any(part in script for part in args.only.split(",")):
            continue
        if not (HERE / script).exists():
            continue
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n=== {script} {' '.join(cmd[2:])}", flush=True)
        t = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"=== {script}: exit {rc}, {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
