"""Image similarity benchmark: leakguard vs imagehash pHash peers on planted augmentations.

Data: tiles of scikit-image's photos (textures such as brick, grass, gravel, and the retina give
hard negatives: unseen tiles of the same picture). The training split holds half of the tiles;
the evaluation split holds augmented copies of training tiles (every family of the issue, and
pairs of them) plus the unseen tiles. Both are written as PNG folders, so every method pays for
decoding.

Methods, on the same folders in the same run:
- leakguard: ``lg.audit`` (exact + augmented duplicate checks, calibrated threshold);
- ``imagehash`` pHash, identical hashes (what cleanvision's near-duplicate check does);
- ``imagehash`` pHash, brute-force all pairs within Hamming distance 10 (imagededup's default).

Usage::

    python benchmarks/bench_image_similarity.py                 # quality + speed, ~300 tiles
    python benchmarks/bench_image_similarity.py --tiles 40      # more tiles per photo
    python benchmarks/bench_image_similarity.py --noisy-negatives   # + unseen tiles noised / jittered / JPEG'd
    python benchmarks/bench_image_similarity.py --search        # Hamming search: 1M x 100k codes

``--noisy-negatives`` adds to the evaluation split each unseen tile under each of
:data:`NOISY_NEGATIVES` (noise, rot90+noise, colour jitter, JPEG): hard negatives a calibration on
clean training pictures cannot see, counted in precision and in "unseen tiles flagged" (and listed
per kind), so the price of a recall fix that lifts noisy or re-coloured look-alikes is visible. They
are drawn from their own random stream: the planted copies are the same with or without them.

Prints a table per family (recall) and overall precision and time, ratios side by side.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

FAMILIES = ["hflip", "vflip", "rot90", "rot180", "rot270", "rotate", "crop", "resize", "jitter",
            "grayscale", "blur", "noise", "jpeg", "hflip+jpeg", "crop+jitter", "rotate+blur",
            "rot90+noise", "grayscale+crop"]
# what --noisy-negatives does to each unseen tile (the photometric families the scores correct for)
NOISY_NEGATIVES = ["noise", "rot90+noise", "jitter", "jpeg"]


def build(tiles_per_photo: int, per_family: int, seed: int, noisy_negatives: bool = False):
    """(training tiles, evaluation images, source of each evaluation image or -1, its family).

    ``noisy_negatives``: the unseen tiles again under each of :data:`NOISY_NEGATIVES`, family
    ``"negative+<kind>"``, source -1 (from a separate random stream: the rest is unchanged)."""
    from leakguard.signatures.image import grey
    from leakguard.similarity.image_planting import augment, base_tiles

    rng = np.random.default_rng(seed)
    tiles = [t for t in base_tiles(128, tiles_per_photo, seed=seed) if grey(t).std() > 10]
    order = rng.permutation(len(tiles))
    train_ids, unseen = order[: len(tiles) // 2], order[len(tiles) // 2:]
    train = [tiles[i] for i in train_ids]
    evals, truth, family = [], [], []
    for fam in FAMILIES:
        for src in rng.choice(len(train), size=min(per_family, len(train)), replace=False):
            evals.append(augment(train[src], fam, rng))
            truth.append(int(src))
            family.append(fam)
    for i in unseen:
        evals.append(tiles[i])
        truth.append(-1)
        family.append("negative")
    if noisy_negatives:
        noisy_rng = np.random.default_rng([seed, 7])
        for kind in NOISY_NEGATIVES:
            for i in unseen:
                evals.append(augment(tiles[i], kind, noisy_rng))
                truth.append(-1)
                family.append(f"negative+{kind}")
    return train, evals, np.array(truth), np.array(family)


def write_folder(images, folder: Path) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        p = folder / f"{i:06d}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def decode_all(paths) -> float:
    from PIL import Image

    t = time.perf_counter()
    for p in paths:
        np.asarray(Image.open(p).convert("RGB"))
    return time.perf_counter() - t


def run_leakguard(train_paths, eval_paths):
    import leakguard as lg

    t = time.perf_counter()
    report = lg.audit({"train": list(train_paths), "val": list(eval_paths)}, modality="image",
                      checks=["exact_duplicate", "augmented_duplicate"], config=lg.AuditConfig(progress=True))
    elapsed = time.perf_counter() - t
    pairs = report.pairs()
    best = pairs.sort_values("score", ascending=False).drop_duplicates("index_b")
    return dict(zip(best["index_b"].astype(int), best["index_a"].astype(int))), elapsed, report


def phash_all(paths):
    import imagehash
    from PIL import Image

    return np.array([int(str(imagehash.phash(Image.open(p))), 16) for p in paths], dtype=np.uint64)


def run_imagehash(train_paths, eval_paths, max_distance: int):
    from leakguard.search.hamming import hamming_distance

    t = time.perf_counter()
    a, b = phash_all(train_paths), phash_all(eval_paths)
    found = {}
    for j in range(len(b)):  # all pairs, as imagededup / cleanvision compare them
        d = hamming_distance(a, b[j])
        i = int(np.argmin(d))
        if d[i] <= max_distance:
            found[j] = i
    return found, time.perf_counter() - t


def score(found: dict, truth: np.ndarray, family: np.ndarray):
    per_family, per_family_precision = {}, {}
    for fam in dict.fromkeys(family):
        if fam.startswith("negative"):
            continue
        sel = np.flatnonzero(family == fam)
        per_family[fam] = float(np.mean([found.get(int(j)) == truth[j] for j in sel]))
        # of this family's copies that were linked, the share linked to their true source
        flagged = [int(j) for j in sel if int(j) in found]
        per_family_precision[fam] = (float(np.mean([found[j] == truth[j] for j in flagged]))
                                     if flagged else float("nan"))
    correct = sum(1 for j, i in found.items() if truth[j] == i)
    precision = correct / max(len(found), 1)
    recall = correct / max(int((truth >= 0).sum()), 1)
    false_neg = sum(1 for j in found if truth[j] < 0)
    return per_family, precision, recall, false_neg, per_family_precision


def quality(args):
    train, evals, truth, family = build(args.tiles, args.per_family, args.seed, args.noisy_negatives)
    n_noisy = int(np.char.startswith(family.astype(str), "negative+").sum())
    print(f"{len(train)} training tiles, {len(evals)} evaluation images "
          f"({int((truth >= 0).sum())} planted copies, {int((family == 'negative').sum())} unseen tiles of the same photos"
          + (f", {n_noisy} of them noised / jittered / JPEG'd" if n_noisy else "") + ")")
    with tempfile.TemporaryDirectory() as tmp:
        tp = write_folder(train, Path(tmp) / "train")
        ep = write_folder(evals, Path(tmp) / "eval")
        t_decode = decode_all(tp + ep)
        results = {}
        found, t_lg, report = run_leakguard(tp, ep)
        results["leakguard"] = (found, t_lg)
        results["imagehash pHash exact (cleanvision-style)"] = run_imagehash(tp, ep, 0)
        results["imagehash pHash <= 10 bits, all pairs (imagededup default)"] = run_imagehash(tp, ep, 10)
    f = [f for f in report.findings if f.check == "augmented_duplicate"]
    if f:
        print(f"leakguard threshold {f[0].extra['threshold']:.3f}: {f[0].extra['calibration']}")
    names = list(results)
    rows = {n: score(results[n][0], truth, family) for n in names}
    width = max(len(x) for x in FAMILIES) + 2
    print("\nrecall per family".ljust(width) + " | ".join(f"{i + 1:>7}" for i in range(len(names))))
    for fam in FAMILIES:
        print(fam.ljust(width) + " | ".join(f"{rows[n][0][fam]:7.2f}" for n in names))
    print("\nprecision per family (copies linked to their own source / copies linked)")
    for fam in FAMILIES:
        print(fam.ljust(width) + " | ".join(f"{rows[n][4][fam]:7.2f}" for n in names))
    print("-" * (width + 10 * len(names)))
    print("recall (all)".ljust(width) + " | ".join(f"{rows[n][2]:7.3f}" for n in names))
    print("precision".ljust(width) + " | ".join(f"{rows[n][1]:7.3f}" for n in names))
    print("unseen tiles flagged".ljust(width) + " | ".join(f"{rows[n][3]:7d}" for n in names))
    if n_noisy:
        for kind in ["negative"] + [f"negative+{k}" for k in NOISY_NEGATIVES]:
            sel = set(np.flatnonzero(family == kind).tolist())
            print(f"  {kind.partition('+')[2] or 'clean'}".ljust(width) + " | ".join(
                f"{sum(1 for j in results[n][0] if j in sel):7d}" for n in names))
    print("seconds".ljust(width) + " | ".join(f"{results[n][1]:7.1f}" for n in names))
    print(f"\ndecoding every image once: {t_decode:.2f} s; leakguard throughput = "
          f"{t_decode / results['leakguard'][1]:.2f} x decode-only throughput")
    for i, n in enumerate(names):
        print(f"  {i + 1}: {n}")


def search(args):
    import resource

    from leakguard.search.hamming import hamming_search, hamming_search_bruteforce

    rng = np.random.default_rng(args.seed)
    n, m, planted = 1_000_000, 100_000, 20_000
    train = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    queries = rng.integers(0, 2**64 - 1, m, dtype=np.uint64, endpoint=True)
    src = rng.choice(n, planted, replace=False)
    flips = np.zeros(planted, dtype=np.uint64)
    for _ in range(8):
        flips |= np.uint64(1) << rng.integers(0, 64, planted).astype(np.uint64)
    queries[:planted] = train[src] ^ flips
    t = time.perf_counter()
    qi, ii, _ = hamming_search(train, queries, radius=8, progress=True)
    t_mih = time.perf_counter() - t
    found = set(zip(qi.tolist(), ii.tolist()))
    recall = np.mean([(j, int(s)) in found for j, s in enumerate(src)])
    t = time.perf_counter()
    hamming_search_bruteforce(train, queries[:500], radius=8)
    t_brute = (time.perf_counter() - t) * m / 500
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"1M train x 100k query 64-bit codes, radius 8: multi-index hashing {t_mih:.1f} s "
          f"(planted neighbours found: {recall:.3f}), brute force all pairs ~{t_brute:.0f} s "
          f"(extrapolated from 500 queries), ratio {t_brute / t_mih:.0f}x; peak RSS {rss:.0f} MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=20, help="tiles per photo (before the contrast filter)")
    ap.add_argument("--per-family", type=int, default=10, help="planted copies per augmentation family")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noisy-negatives", action="store_true",
                    help="also audit every unseen tile noised, rot90+noised, jittered and JPEG'd (hard negatives)")
    ap.add_argument("--search", action="store_true", help="run the 1M x 100k Hamming search benchmark")
    args = ap.parse_args()
    if args.search:
        search(args)
    else:
        quality(args)


if __name__ == "__main__":
    main()
