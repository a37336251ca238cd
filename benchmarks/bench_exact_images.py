"""Exact-duplicate audit of a folder of JPEG images vs decoding the same images once with Pillow.

Decoding is the floor: an audit has to decode every image to compare pixels. Target: the audit's
throughput is at least 0.8 x the throughput of one plain Pillow decode pass, measured in the same
run on the same files.

    .venv/bin/python benchmarks/bench_exact_images.py [--n 3000] [--size 256]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_jpegs(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """n JPEGs cut from scikit-image's photos (real images), 5 % of them copied into the val folder."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        y = rng.integers(0, photo.shape[0] - size // 2)
        x = rng.integers(0, photo.shape[1] - size // 2)
        crop = Image.fromarray(photo[y:y + size // 2, x:x + size // 2]).resize((size, size))
        p = folder / f"img_{i:05d}.jpg"
        crop.save(p, quality=90)
        paths.append(p)
    return paths


def decode_all(paths) -> float:
    t = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            np.asarray(im.convert("RGB"))
    return time.perf_counter() - t


def main() -> None:
    import leakguard as lg

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), args.n, args.size)
        cut = int(0.8 * len(paths))
        train, val = paths[:cut], paths[cut:] + paths[: len(paths) // 20]  # plant 5 % exact copies
        decode_all(paths[:50])  # warm the page cache for both contenders
        t_decode = decode_all(train + val)
        t0 = time.perf_counter()
        report = lg.audit({"train": train, "val": val}, checks=["exact_duplicate"],
                          config=lg.AuditConfig(progress=False))
        t_audit = time.perf_counter() - t0
        n = len(train) + len(val)
        found = len(report.leaked("val"))
        print(f"images: {n} JPEG {args.size}x{args.size}; planted copies found: {found} of {len(paths) // 20}")
        print(f"Pillow decode once : {n / t_decode:8.1f} images/s ({t_decode:.2f} s)")
        print(f"leakguard audit    : {n / t_audit:8.1f} images/s ({t_audit:.2f} s)")
        print(f"ratio audit/decode throughput: {t_decode / t_audit:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
