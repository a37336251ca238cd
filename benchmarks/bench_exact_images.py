"""Image audit of a folder of JPEG images vs decoding the same images once with Pillow.

Decoding is the floor: an audit has to decode every image to compare pixels. Target: the audit's
throughput is at least 0.8 x the throughput of one plain Pillow decode pass, measured in the same
run on the same files -- for the exact-duplicate check alone (the default here) and for the whole
image audit with every check that applies (``--checks all``: signatures, candidate search,
verification, calibration).

Data (``--data``): ``photos`` (default) are crops of five scikit-image photos, so they overlap one
another (every check has real work); ``distinct`` are distinct procedural pictures (a clean photo
collection: the similarity checks should find next to nothing and cost next to nothing). Both
plant 5 % exact copies in the val split.

Besides the wall-clock ratio it prints the CPU seconds of both contenders (all threads): on a
shared machine the wall ratio swings with other people's load, the CPU ratio much less (the
audit's reading threads can only make the wall ratio better than the CPU one on a free machine).
The audit's parts follow in CPU seconds (signature pass, each check, the augmented check's
calibration, previews: ``bench_lightning_overhead.AuditParts``).

    .venv/bin/python benchmarks/bench_exact_images.py [--n 3000] [--size 256] [--checks all] [--data distinct]

``--null-samples N`` sets the augmented check's calibration sample (``null_samples``, default 200).

``--signatures`` measures the signature pass alone instead (the CPU per image of each group of
signature kinds the image checks read, added one group at a time, one reading thread, beside the
Pillow decode pass, each the best of ``--rounds`` alternating rounds), and what OpenCV's
DCT-reduced JPEG decoding (1/2, 1/4, 1/8 scale) would cost instead of the full decode::

    .venv/bin/python benchmarks/bench_exact_images.py --n 1000 --data distinct --signatures
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


def distinct_image(rng: np.random.Generator, size: int) -> Image.Image:
    """A smooth random colour field with a few random discs: distinct content, like a real photo."""
    from PIL import ImageDraw

    field = (rng.random((5, 5, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(field).resize((size, size), Image.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x, y, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(size // 10, size // 4))]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.integers(0, 256, 3).tolist()))
    return im


def make_distinct_jpegs(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """n distinct JPEGs (:func:`distinct_image`)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"img_{i:05d}.jpg"
        distinct_image(rng, size).save(p, quality=90)
        paths.append(p)
    return paths


def decode_all(paths, cpu: bool = False):
    """Seconds to decode every file once with Pillow (wall; with ``cpu``: (wall, CPU seconds))."""
    t, c = time.perf_counter(), time.process_time()
    for p in paths:
        with Image.open(p) as im:
            np.asarray(im.convert("RGB"))
    wall = time.perf_counter() - t
    return (wall, time.process_time() - c) if cpu else wall


SIGNATURE_STEPS = (  # (label, kinds added): the image checks' signature kinds, cheapest first
    ("digest + shape (exact)", ("digest", "shape")),
    ("+ phash, windows, thumb, embed", ("phash", "phash_windows", "thumb", "embed_pyramid")),
    ("+ patches (= the audit's pass)", ("patches",)),
    # the audit computes keypoint thumbnails lazily, only for the images that reach verification
    ("+ thumb_kp (lazy in the audit)", ("thumb_kp",)),
)


def signature_pass(paths, rounds: int = 2) -> None:
    """Print the signature pass's CPU per image, kinds added step by step, against the decode."""
    import leakguard.similarity.image  # noqa: F401  (registers every image signature)
    from leakguard.signatures import SignatureStore
    from leakguard.splits import build_splits

    cut = int(0.8 * len(paths))
    steps, kinds = [], []
    for label, added in SIGNATURE_STEPS:
        kinds = kinds + list(added)
        steps.append((label, set(kinds)))
    SignatureStore(build_splits({"train": paths[:20], "val": paths[20:25]}, modality="image"),
                   progress=False, workers=1).ensure(steps[-1][1])   # imports and first calls
    best = {"Pillow decode": float("inf"), **{label: float("inf") for label, _ in steps}}
    for _ in range(rounds):
        best["Pillow decode"] = min(best["Pillow decode"], decode_all(paths, cpu=True)[1])
        for label, wanted in steps:
            splits = build_splits({"train": paths[:cut], "val": paths[cut:]}, modality="image")
            c = time.process_time()
            SignatureStore(splits, progress=False, workers=1).ensure(wanted)
            best[label] = min(best[label], time.process_time() - c)
    n = len(paths)
    for label, seconds in best.items():
        print(f"{label:34s} {seconds / n * 1000:6.2f} ms/image CPU  ({seconds / best['Pillow decode']:.2f} x decode)")
    reduced = reduced_decode(paths, rounds)
    if reduced:
        # what decoding at a reduced JPEG scale (DCT-domain, libjpeg's scaled IDCT) would save: the
        # entropy decoding stays, so even 1/8 keeps about half of a full decode's cost
        print("JPEG decode by OpenCV, full and DCT-reduced (the audit decodes in full: the exact digest "
              "and the patch codes read every pixel):")
        for label, seconds in reduced.items():
            print(f"  {label:32s} {seconds / n * 1000:6.2f} ms/image CPU  ({seconds / best['Pillow decode']:.2f} x decode)")


def reduced_decode(paths, rounds: int = 2) -> dict:
    """CPU seconds to decode ``paths`` with OpenCV in full and at 1/2, 1/4, 1/8 scale (best of ``rounds``);
    {} without OpenCV."""
    try:
        import cv2
    except ImportError:
        return {}
    modes = {"full": cv2.IMREAD_COLOR_RGB, "1/2 scale": cv2.IMREAD_REDUCED_COLOR_2,
             "1/4 scale": cv2.IMREAD_REDUCED_COLOR_4, "1/8 scale": cv2.IMREAD_REDUCED_COLOR_8}
    blobs = [np.frombuffer(Path(p).read_bytes(), np.uint8) for p in paths]
    best = {label: float("inf") for label in modes}
    for _ in range(rounds):
        for label, flag in modes.items():
            c = time.process_time()
            for b in blobs:
                cv2.imdecode(b, flag)
            best[label] = min(best[label], time.process_time() - c)
    return best


def main() -> None:
    import leakguard as lg

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--checks", default="exact_duplicate",
                    help="comma-separated checks, or 'all' for every check that applies (the whole audit)")
    ap.add_argument("--data", choices=("photos", "distinct"), default="photos")
    ap.add_argument("--signatures", action="store_true", help="time the signature pass alone, kind by kind")
    ap.add_argument("--rounds", type=int, default=2, help="with --signatures: best of this many rounds")
    ap.add_argument("--null-samples", type=int, default=None,
                    help="training images the augmented check's calibration verifies (default: the check's own, 200)")
    args = ap.parse_args()
    checks = None if args.checks == "all" else args.checks.split(",")
    options = {} if args.null_samples is None else {"augmented_duplicate": {"null_samples": args.null_samples}}
    with tempfile.TemporaryDirectory() as tmp:
        make = make_jpegs if args.data == "photos" else make_distinct_jpegs
        paths = make(Path(tmp), args.n, args.size)
        if args.signatures:
            print(f"images: {len(paths)} JPEG {args.size}x{args.size} ({args.data}); signature pass, one thread")
            signature_pass(paths, args.rounds)
            return
        cut = int(0.8 * len(paths))
        train, val = paths[:cut], paths[cut:] + paths[: len(paths) // 20]  # plant 5 % exact copies
        # warm-up: imports and first-call costs are paid once per process, for both contenders
        lg.audit({"train": train[:20], "val": val[:5]}, checks=checks, config=lg.AuditConfig(progress=False))
        decode_all(paths[:50])  # warm the page cache for both contenders
        t_decode, c_decode = decode_all(train + val, cpu=True)
        from bench_lightning_overhead import AuditParts  # the audit's parts, as the integration benches print them

        with AuditParts() as parts:
            t0, c0 = time.perf_counter(), time.process_time()
            report = lg.audit({"train": train, "val": val}, checks=checks,
                              config=lg.AuditConfig(progress=False, check_options=options))
            t_audit, c_audit = time.perf_counter() - t0, time.process_time() - c0
        n = len(train) + len(val)
        found = len(report.leaked("val", check="exact_duplicate"))
        print(f"images: {n} JPEG {args.size}x{args.size} ({args.data}); planted exact copies found: "
              f"{found} of {len(paths) // 20}")
        print(f"checks run: {', '.join(report.meta['checks'])}; val linked by any check: "
              f"{len(report.leaked('val'))} of {len(val)}")
        print(f"Pillow decode once : {n / t_decode:8.1f} images/s ({t_decode:.2f} s)")
        print(f"leakguard audit    : {n / t_audit:8.1f} images/s ({t_audit:.2f} s)")
        print(f"ratio audit/decode throughput: {t_decode / t_audit:.2f} (target >= 0.8)")
        # on a shared machine wall time swings with the load; CPU seconds (all threads) are steadier
        print(f"CPU seconds: decode {c_decode:.2f}, audit {c_audit:.2f}; "
              f"ratio decode/audit CPU: {c_decode / c_audit:.3f}")
        print(f"the audit's parts, CPU s: {parts.line()}")


if __name__ == "__main__":
    main()
