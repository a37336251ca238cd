"""Image partial duplicates benchmark: overlapping crops of one picture, resized apart.

Data: square crops (96-192 px) of scikit-image's photos, each resized by a factor in 0.6-1.5,
drawn at random places and dealt at random into a training and an evaluation split, so some
pairs overlap (by any share) and most do not. Textures (brick, grass, gravel) and the retina give
hard negatives: other crops of the same texture look alike but share no pixels.

Truth: a (training, evaluation) pair *must* be found when its crops overlap by 25-90 % of the
smaller one (``--min-share``); a reported pair is correct when its crops overlap at all (pairs
overlapping by under 25 % may be found or not). The overlap share reported must be within 0.05
of the truth (its error is printed).

Method: ``lg.audit`` with the exact, augmented and partial duplicate checks (augmented and exact
claim near-whole copies first, as in a real audit).

``--same-scale``: the crops keep the photo's scale (tiles of one picture, no resizing) and the
audit runs the default partial path only (patch codes, ``resized`` off): the quality of the
same-scale patch codes. ``--jpeg Q``: every crop goes through a JPEG encode at quality Q and back
(tiles saved one by one, so their pixels differ slightly where the crops overlap).

Usage::

    python benchmarks/bench_image_partial.py                  # ~180 crops, a few seconds of audit
    python benchmarks/bench_image_partial.py --per-photo 20 --seed 1
    python benchmarks/bench_image_partial.py --same-scale --jpeg 90

Prints recall, precision, share error, the calibrated threshold and the audit time.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry", "clock", "coins",
          "hubble_deep_field", "moon", "retina", "cell", "brick", "grass", "gravel")


def jpeg_round_trip(img: np.ndarray, quality: int) -> np.ndarray:
    """``img`` encoded as a JPEG at ``quality`` and decoded again (Pillow)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def build(per_photo: int, seed: int, same_scale: bool = False, jpeg: int | None = None):
    from leakguard.similarity.image_partial import box_overlap, crop_box, cut
    from leakguard.similarity.image_planting import photo

    rng = np.random.default_rng(seed)
    train, val, meta_t, meta_v = [], [], [], []
    for name in PHOTOS:
        img = photo(name)
        for _ in range(per_photo):
            box = crop_box(img.shape, rng)
            factor = float(rng.uniform(0.6, 1.5))  # drawn in both modes: the boxes stay the same
            tile = cut(img, box, 1.0 if same_scale else factor)
            if jpeg is not None:
                tile = jpeg_round_trip(tile if tile.ndim == 3 else np.stack([tile] * 3, axis=2), jpeg)
            if rng.random() < 0.5:
                train.append(tile)
                meta_t.append((name, box))
            else:
                val.append(tile)
                meta_v.append((name, box))
    truth = {}
    for i, (na, ba) in enumerate(meta_t):
        for j, (nb, bb) in enumerate(meta_v):
            if na == nb:
                s = box_overlap(ba, bb)
                if s > 0:
                    truth[(i, j)] = s
    return train, val, truth


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-photo", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-share", type=float, default=0.25)
    ap.add_argument("--same-scale", action="store_true",
                    help="crops at the photo's scale, default partial path (patch codes only)")
    ap.add_argument("--jpeg", type=int, default=None, help="JPEG round trip of every crop at this quality")
    args = ap.parse_args(argv)
    import leakguard as lg

    train, val, truth = build(args.per_photo, args.seed, args.same_scale, args.jpeg)
    t0, c0 = time.perf_counter(), time.process_time()
    options = {} if args.same_scale else {"resized": True}
    report = lg.audit({"train": train, "val": val}, modality="image",
                      checks=["exact_duplicate", "augmented_duplicate", "partial_duplicate"],
                      config=lg.AuditConfig(progress=False, check_options={"partial_duplicate": options}))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    pairs = report.pairs()
    found = {(int(a), int(b)): (c, float(s)) for a, b, c, s in
             zip(pairs["index_a"], pairs["index_b"], pairs["check"], pairs["score"])}
    must = {k: s for k, s in truth.items() if args.min_share <= s <= 0.9}
    partial = {k: v for k, v in found.items() if v[0] == "partial_duplicate"}
    hit = [k for k in must if k in found]
    correct = [k for k in found if k in truth]
    err = [abs(partial[k][1] - truth[k]) for k in partial if k in truth]
    f = next((f for f in report.findings if f.check == "partial_duplicate"), None)
    calib = (f.extra.get("calibration", {}) if f else {})
    methods = f.extra.get("methods", []) if f else []
    print(f"crops: {len(train)} train, {len(val)} val; pairs overlapping {args.min_share:.0%}-90 %: {len(must)}, "
          f"overlapping at all: {len(truth)}")
    print(f"recall {len(hit) / max(len(must), 1):.3f} ({len(hit)}/{len(must)}), "
          f"precision {len(correct) / max(len(found), 1):.3f} ({len(correct)}/{len(found)} pairs, any check)")
    print(f"partial pairs: {len(partial)} ({methods.count('keypoints')} by keypoints, "
          f"{methods.count('patch codes')} by patch codes); share error max {max(err, default=0):.3f}, "
          f"median {float(np.median(err)) if err else 0:.3f}")
    print(f"threshold {calib.get('threshold')}, null {calib.get('null_quantiles')}")
    missed = sorted((round(must[k], 2), k) for k in must if k not in found)
    print(f"missed (share, pair): {missed[:10]}")
    wrong = [k for k in found if k not in truth]
    print(f"wrong pairs: {wrong[:10]}")
    print(f"audit time {elapsed:.1f} s ({cpu:.1f} CPU s)")
    return {"recall": len(hit) / max(len(must), 1), "precision": len(correct) / max(len(found), 1),
            "seconds": elapsed}


if __name__ == "__main__":
    main()
