"""What leakguard's YOLO callback costs before the first epoch, against one pass decoding the images.

The callback reads a YOLO dataset (file lists, label files, video frames from file names) and
audits it with every check that applies. Any audit has to decode every image once, so one plain
Pillow decode pass over the same files is the peer. Target: audit time <= 1.5 x decode time,
measured in the same process on the same files (JPEG video frames with label files). Wall and CPU
seconds are both printed (CPU: every thread of this process); on a shared machine the CPU ratio
is the steadier one. The cold audit's parts are printed in CPU seconds (signature pass, each
check, the augmented check's calibration: ``bench_lightning_overhead.AuditParts``).

    .venv/bin/python benchmarks/bench_yolo_overhead.py [--videos 40] [--frames 50] [--size 256] [--resized]
        [--null-samples N]

The audit runs with the callback's configuration (``LeakGuardYOLO().audit_config``:
``default_config()``, partial duplicates at the same scale only, and the signature cache beside
the project's runs): a first run starts with an empty cache (the headline, cold); a later run on
the same data (another model, other settings) reads it back and is printed beside it.
``--resized`` adds the any-scale partial path.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_exact_images import decode_all  # the same decode floor as the JPEG benchmark
from bench_lightning_overhead import AuditParts  # the cold audit's parts, as printed there

TARGET = 1.5


def main(argv=None) -> dict:
    import os
    from types import SimpleNamespace

    import leakguard as lg
    from leakguard.integrations.ultralytics import LeakGuardYOLO
    from leakguard.sources.yolo_synthetic import make_video_frames

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--checks", help="comma-separated checks (default: every check that applies, as the callback)")
    ap.add_argument("--resized", action="store_true",
                    help="partial duplicates at any scale too (off in the callback's default configuration)")
    ap.add_argument("--null-samples", type=int, default=None,
                    help="training images the augmented check's calibration verifies (default: the check's own, 200)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_video_frames(Path(tmp) / "frames", n_videos=args.videos, frames_per_video=args.frames,
                                 size=args.size, split="random", exact_copies=args.videos // 2,
                                 conflicting_copies=2, test_videos=max(1, args.videos // 10),
                                 image_format="jpg", random_state=0)
        ds = lg.from_yolo(data)
        paths = [p for split in ds.values() for p in split]
        # warm-up on a few frames, with a cache as the callback keeps one: imports (pandas, the checks,
        # what the cache's code fingerprint imports) are paid once per process, printed apart
        kw = ds.audit_kwargs()
        head = {key: ({k: v[:5] for k, v in kw[key].items()} if isinstance(kw[key], dict) else kw[key]) for key in kw}
        started = time.perf_counter()
        lg.audit(**head, config=lg.AuditConfig(progress=False, cache_dir=Path(tmp) / "warm-up-cache"))
        t_imports = time.perf_counter() - started
        decode_all(paths[:50])  # warm the page cache for both contenders
        # the faster of two passes, wall and CPU each (one pass read 1.6-2.6 s CPU on the shared machine)
        passes = [decode_all(paths, cpu=True) for _ in range(2)]
        t_decode, c_decode = min(w for w, _ in passes), min(c for _, c in passes)

        # the callback's configuration on a trainer of this project (workers: Ultralytics' default 8)
        trainer = SimpleNamespace(save_dir=Path(tmp) / "runs" / "train", args=SimpleNamespace(workers=8))
        config = LeakGuardYOLO().audit_config(trainer)
        config.progress = False
        if args.resized:
            config.check_options = {**config.check_options, "partial_duplicate": {"resized": True}}
        if args.null_samples is not None:
            aug = {**config.check_options.get("augmented_duplicate", {}), "null_samples": args.null_samples}
            config.check_options = {**config.check_options, "augmented_duplicate": aug}
        checks = args.checks.split(",") if args.checks else None

        def run():
            started, cpu = time.perf_counter(), time.process_time()
            dataset = lg.from_yolo(data)  # what the callback does: file lists, label files, frame names...
            t_read = time.perf_counter() - started
            report = lg.audit(**dataset.audit_kwargs(), checks=checks, config=config)
            return report, t_read, time.perf_counter() - started, time.process_time() - cpu

        with AuditParts() as parts:
            report, t_read, t_total, c_total = run()      # a first run: the cache is empty
        later, _, t_later, c_later = run()                # a later run on the same data
        names = report.meta.get("checks", [])
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"first audit's imports (one-off, not in the figures): {t_imports:.2f} s")
        print(f"images: {len(paths)} JPEG {args.size}x{args.size} in {args.videos} videos "
              f"(+ test videos), splits {', '.join(f'{k}={len(v)}' for k, v in ds.items())}")
        print(f"checks run: {', '.join(names)}; verdict {report.verdict}; "
              f"val leaked {len(report.leaked('val'))}/{len(ds['val'])} (later run: {len(later.leaked('val'))})")
        print(f"Pillow decode once      : {t_decode:7.2f} s / {c_decode:7.2f} s CPU ({len(paths) / t_decode:7.1f} images/s; "
              "the faster of 2 passes)")
        print(f"from_yolo (lists+labels): {t_read:7.2f} s")
        print(f"from_yolo + audit, cold : {t_total:7.2f} s / {c_total:7.2f} s CPU ({len(paths) / t_total:7.1f} images/s)")
        print(f"ratio audit / decode: {t_total / t_decode:.2f} wall, {c_total / c_decode:.2f} CPU (target <= {TARGET})")
        print(f"  its parts, CPU s: {parts.line()}")
        print(f"a later run (cache)     : {t_later:7.2f} s / {c_later:7.2f} s CPU: ratio {t_later / t_decode:.2f} wall, "
              f"{c_later / c_decode:.2f} CPU")
        return {"images": len(paths), "decode_s": t_decode, "decode_cpu_s": c_decode, "from_yolo_s": t_read,
                "audit_s": t_total, "audit_cpu_s": c_total, "ratio": t_total / t_decode,
                "cpu_ratio": c_total / c_decode, "parts": parts.line(), "later_s": t_later, "later_cpu_s": c_later,
                "later_ratio": t_later / t_decode, "later_cpu_ratio": c_later / c_decode}


if __name__ == "__main__":
    main()
