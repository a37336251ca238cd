"""Exact-duplicate audit of two DataFrames vs a pandas merge on all columns (what deepchecks does).

1M training rows and 200k evaluation rows x 20 columns, with 2 % of the evaluation rows (``--copies``)
planted as copies of training rows. Both must give the same set of leaked evaluation rows; the target is
leakguard >= 3 x faster. Layouts:

- ``mixed`` (default): 14 float, 4 int and 2 string columns (50 categories each);
- ``numeric``: 16 float and 4 int columns;
- ``strings``: 20 string columns: 12 categorical (20 to 5,000 values), 6 of about 100k distinct
  values and 2 identifiers distinct on almost every row.

Each contender runs ``--repeat`` times, alternating; the medians are compared. On a shared machine
the CPU-time ratio (``time.process_time``, all threads) is the steadier figure; both are printed.

    .venv/bin/python benchmarks/bench_exact_tabular.py [--train 1000000] [--val 200000]
        [--layout mixed|numeric|strings] [--repeat 3] [--copies 0.02]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def make_frames(n_train: int, n_val: int, seed: int = 0, layout: str = "mixed", copies: float = 0.02):
    rng = np.random.default_rng(seed)

    def strings(prefix, n_values, n):
        values = np.array([f"{prefix}_{k}" for k in range(n_values)], dtype=object)
        return values[rng.integers(0, n_values, n)]

    def frame(n, offset):
        if layout == "mixed":
            cols = {f"f{i}": rng.normal(size=n) for i in range(14)}
            cols.update({f"i{i}": rng.integers(0, 1000, n) for i in range(4)})
            cols.update({f"s{i}": rng.choice(np.array([f"cat_{k}" for k in range(50)], dtype=object), n)
                         for i in range(2)})
        elif layout == "numeric":
            cols = {f"f{i}": rng.normal(size=n) for i in range(16)}
            cols.update({f"i{i}": rng.integers(0, 1000, n) for i in range(4)})
        elif layout == "strings":
            cols = {f"c{i}": strings(f"category{i}", [20, 50, 200, 1000, 5000, 300][i % 6], n)
                    for i in range(12)}
            cols.update({f"m{i}": strings(f"city name {i}", 100_000, n) for i in range(6)})
            cols.update({f"id{i}": np.array([f"user-{i}-{k:09d}" for k in offset + rng.permutation(n)],
                                            dtype=object) for i in range(2)})
        else:
            raise ValueError(f"unknown layout {layout!r}")
        return pd.DataFrame(cols)

    train, val = frame(n_train, 0), frame(n_val, n_train)
    planted = rng.choice(n_val, size=int(round(n_val * copies)), replace=False)
    val.iloc[planted] = train.iloc[rng.choice(n_train, size=len(planted), replace=False)].to_numpy()
    val = val.astype(train.dtypes.to_dict())
    return train, val, np.sort(planted)


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    import leakguard as lg

    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=1_000_000)
    ap.add_argument("--val", type=int, default=200_000)
    ap.add_argument("--layout", choices=["mixed", "numeric", "strings"], default="mixed")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--copies", type=float, default=0.02,
                    help="share of the evaluation rows planted as copies (1.0: every row, the report's own cost)")
    args = ap.parse_args()
    train, val, planted = make_frames(args.train, args.val, layout=args.layout, copies=args.copies)
    config = lg.AuditConfig(progress=False)

    def merge():
        merged = pd.merge(train, val.reset_index(), on=list(train.columns), how="inner")
        return np.unique(merged["index"].to_numpy())

    def audit():
        # each audit wraps the frames anew: nothing an earlier run computed is reused
        report = lg.audit({"train": train, "val": val}, checks=["exact_duplicate"], config=config)
        return report.leaked("val")

    # warm both contenders up (imports, first-call costs) on a small slice
    pd.merge(train[:1000], val[:100], on=list(train.columns), how="inner")
    lg.audit({"train": train[:1000], "val": val[:100]}, checks=["exact_duplicate"], config=config)

    times = {"merge": [], "leakguard": []}
    for _ in range(args.repeat):
        merge_leaked, wall, cpu = _timed(merge)
        times["merge"].append((wall, cpu))
        lg_leaked, wall, cpu = _timed(audit)
        times["leakguard"].append((wall, cpu))
        assert np.array_equal(merge_leaked, lg_leaked), "leakguard and the merge disagree"
    med = {k: np.median(np.array(v), axis=0) for k, v in times.items()}

    print(f"layout {args.layout}: train {len(train):,} x {train.shape[1]}, val {len(val):,}; "
          f"planted copies {len(planted):,}; {args.repeat} runs each")
    for name, label in (("merge", "pandas merge on all columns"), ("leakguard", "leakguard exact_duplicate")):
        runs = ", ".join(f"{w:.2f}" for w, _ in times[name])
        print(f"{label:28s}: median {med[name][0]:6.2f} s wall ({runs}), {med[name][1]:6.2f} s CPU")
    print(f"same answer: True ({len(lg_leaked):,} leaked rows); all planted found: "
          f"{np.isin(planted, lg_leaked).all()}")
    print(f"speed-up leakguard vs merge: {med['merge'][0] / med['leakguard'][0]:.2f} x wall, "
          f"{med['merge'][1] / med['leakguard'][1]:.2f} x CPU (target >= 3)")


if __name__ == "__main__":
    main()
