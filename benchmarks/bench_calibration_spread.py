"""How the augmented image check's calibrated threshold moves with its sample, and what the sample costs.

The calibration verifies ``null_samples`` training images (chosen by content, salted by
``AuditConfig.random_state``) against their nearest other training images; at the default fpr
(1e-3) and fewer than 1000 null scores the threshold is just above the largest of them (floored at
``min_score``, capped at 1.0). This prints, for each sample size and salt, the threshold, the null's
size and maximum, the calibration's CPU seconds (``bench_lightning_overhead.AuditParts``), the
audit's, the evaluation images linked and, where the data knows its truth (the demo digits),
precision and recall. A smaller sample is a subset of a larger one with the same salt
(``stable_sample``), so its threshold is never higher.

Data (``--data``): ``distinct`` (``bench_exact_images``' distinct JPEGs, 80 / 20 plus 5 % exact
copies), ``yolo`` (``bench_yolo_overhead``'s video frames, train and val), ``demo`` (the leaky
digits of ``leakguard demo``). Checks: exact and augmented duplicates.

    .venv/bin/python benchmarks/bench_calibration_spread.py --data distinct --null-samples 200,100 --states 0,1,2
    .venv/bin/python benchmarks/bench_calibration_spread.py --data demo --null-samples 200,100 --states 0,1,2
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def load_data(kind: str, folder: Path, n: int):
    """(splits, modality, truth or None): truth[j] is True when evaluation image j truly leaks."""
    import leakguard as lg

    if kind == "distinct":
        from bench_exact_images import make_distinct_jpegs

        paths = make_distinct_jpegs(folder, n, 256)
        cut = int(0.8 * n)
        return {"train": paths[:cut], "val": paths[cut:] + paths[: n // 20]}, "image", None
    if kind == "yolo":
        from leakguard.sources.yolo_synthetic import make_video_frames

        data = make_video_frames(folder / "frames", n_videos=40, frames_per_video=50, size=256, split="random",
                                 exact_copies=20, conflicting_copies=2, test_videos=4, image_format="jpg",
                                 random_state=0)
        splits = lg.from_yolo(data)
        return {"train": list(splits["train"]), "val": list(splits["val"])}, "image", None
    from leakguard.demo import make_leaky_digits

    d = make_leaky_digits()
    return {"train": d["X_train"], "val": d["X_val"]}, "image", np.isin(d["source_val"], d["source_train"])


class _Calibrations:
    """The augmented check's calibrations returned while active (the engine function wrapped, as
    ``AuditParts`` wraps its parts)."""

    def __enter__(self):
        import leakguard.similarity.image as image

        self.results: list[dict] = []
        self._module, self._original = image, image.calibrate

        def calibrate(*args, **kwargs):
            out = self._original(*args, **kwargs)
            self.results.append(out)
            return out

        image.calibrate = calibrate
        return self

    def __exit__(self, *exc):
        self._module.calibrate = self._original
        return False


def main(argv=None) -> list[dict]:
    import leakguard as lg
    from bench_lightning_overhead import AuditParts

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=("distinct", "yolo", "demo"), default="distinct")
    ap.add_argument("--n", type=int, default=1000, help="images of the distinct data")
    ap.add_argument("--null-samples", default="200,100", help="comma-separated sample sizes")
    ap.add_argument("--states", default="0,1,2", help="comma-separated random_state values (the sample's salt)")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        splits, modality, truth = load_data(args.data, Path(tmp), args.n)
        print(f"{args.data}: {len(splits['train'])} training, {len(splits['val'])} evaluation images")
        print(f"{'null_samples':>12} {'state':>5} {'threshold':>9} {'n_null':>6} {'null max':>8} "
              f"{'calib CPU':>9} {'audit CPU':>9} {'linked':>6}  quality")
        for size in [int(x) for x in args.null_samples.split(",")]:
            for state in [int(x) for x in args.states.split(",")]:
                config = lg.AuditConfig(progress=False, random_state=state,
                                        check_options={"augmented_duplicate": {"null_samples": size}})
                with AuditParts() as parts, _Calibrations() as calibrations:
                    cpu = time.process_time()
                    report = lg.audit(splits, modality=modality, checks=["exact_duplicate", "augmented_duplicate"],
                                      config=config)
                    cpu = time.process_time() - cpu
                calib = calibrations.results[-1] if calibrations.results else {}
                null = np.asarray(calib.get("null", []), dtype=np.float64)
                linked = report.leaked("val")
                quality = ""
                if truth is not None:
                    hit = int(truth[linked].sum()) if len(linked) else 0
                    quality = f"precision {hit / max(len(linked), 1):.3f} recall {hit / max(int(truth.sum()), 1):.3f}"
                row = {"null_samples": size, "random_state": state, "threshold": float(calib.get("threshold", np.nan)),
                       "n_null": int(len(null)), "null_max": float(null.max()) if len(null) else float("nan"),
                       "calibration_cpu_s": parts.totals().get("augmented calibration", (0.0, 0.0))[1],
                       "audit_cpu_s": cpu, "linked": int(len(linked)), "quality": quality}
                rows.append(row)
                print(f"{size:>12} {state:>5} {row['threshold']:>9.4f} {row['n_null']:>6} {row['null_max']:>8.4f} "
                      f"{row['calibration_cpu_s']:>9.2f} {cpu:>9.2f} {row['linked']:>6}  {quality}", flush=True)
    return rows


if __name__ == "__main__":
    main()
