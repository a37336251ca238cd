"""Exact-duplicate audit of two DataFrames vs a pandas merge on all columns (what deepchecks does).

1M training rows and 200k evaluation rows x 20 columns (mixed float, int and string columns),
with 2 % of the evaluation rows planted as copies of training rows. Both must give the same set of
leaked evaluation rows; the target is leakguard >= 3 x faster.

    .venv/bin/python benchmarks/bench_exact_tabular.py [--train 1000000] [--val 200000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def make_frames(n_train: int, n_val: int, seed: int = 0):
    rng = np.random.default_rng(seed)

    def frame(n):
        cols = {f"f{i}": rng.normal(size=n) for i in range(14)}
        cols.update({f"i{i}": rng.integers(0, 1000, n) for i in range(4)})
        cols.update({f"s{i}": rng.choice(np.array([f"cat_{k}" for k in range(50)], dtype=object), n) for i in range(2)})
        return pd.DataFrame(cols)

    train, val = frame(n_train), frame(n_val)
    planted = rng.choice(n_val, size=n_val // 50, replace=False)
    val.iloc[planted] = train.iloc[rng.choice(n_train, size=len(planted), replace=False)].to_numpy()
    val = val.astype(train.dtypes.to_dict())
    return train, val, np.sort(planted)


def main() -> None:
    import leakguard as lg

    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=1_000_000)
    ap.add_argument("--val", type=int, default=200_000)
    args = ap.parse_args()
    train, val, planted = make_frames(args.train, args.val)
    # warm both contenders up (imports, first-call costs) on a small slice
    pd.merge(train[:1000], val[:100], on=list(train.columns), how="inner")
    lg.audit({"train": train[:1000], "val": val[:100]}, checks=["exact_duplicate"], config=lg.AuditConfig(progress=False))

    t0 = time.perf_counter()
    merged = pd.merge(train, val.reset_index(), on=list(train.columns), how="inner")
    t_merge = time.perf_counter() - t0
    merge_leaked = np.unique(merged["index"].to_numpy())

    t0 = time.perf_counter()
    report = lg.audit({"train": train, "val": val}, checks=["exact_duplicate"], config=lg.AuditConfig(progress=False))
    t_lg = time.perf_counter() - t0
    lg_leaked = report.leaked("val")

    same = np.array_equal(merge_leaked, lg_leaked)
    print(f"rows: train {len(train):,} x {train.shape[1]}, val {len(val):,}; planted copies {len(planted):,}")
    print(f"pandas merge on all columns: {t_merge:6.2f} s, leaked rows {len(merge_leaked):,}")
    print(f"leakguard exact_duplicate  : {t_lg:6.2f} s, leaked rows {len(lg_leaked):,}")
    print(f"same answer: {same}; all planted found: {np.isin(planted, lg_leaked).all()}")
    print(f"speed-up leakguard vs merge: {t_merge / t_lg:.2f} x (target >= 3)")


if __name__ == "__main__":
    main()
