"""Image near-duplicates: leakguard against the real peers, on the same folders, in the same run.

Data: ``bench_image_similarity.build`` (imported, not copied): tiles of scikit-image's photos,
half of them in the training folder; the evaluation folder holds planted copies of training
tiles under every augmentation family of issue 6 (single and two-step), plus the unseen tiles
of the same photos (brick, grass, gravel, retina... look alike: the hard negatives). PNG files,
so every method pays for decoding.

Methods (each one end to end from the two folders to "evaluation image j copies training image
i"; imports happen before the clocks start):

- ``leakguard``: ``lg.audit`` with the exact and augmented duplicate checks (calibrated threshold).
- ``imagededup PHash``: ``PHash().encode_images`` on each folder, ``find_duplicates`` on the union
  with its default ``max_distance_threshold=10`` (imagededup has no cross-split mode; we keep the
  evaluation-to-training pairs and each evaluation image's nearest training image).
- ``cleanvision``: ``Imagelab(filepaths=...).find_issues({"near_duplicates": {}})`` (pHash sets).
- ``cleanlab (thumbnails)``: ``Datalab.find_issues(features=..., issue_types={"near_duplicate": {}})``
  on 16 x 16 RGB thumbnails (what a user without model weights gives it).
- ``cleanlab (leakguard pyramid)``: the same on leakguard's default image embedding (a favour).
- ``fastdup``: only with ``--fastdup-python PATH`` (a separate virtual environment: fastdup pins
  numpy < 2, Pillow 10.3 and scikit-learn 1.5, and its licence is non-commercial, so it is no
  dependency of ours): ``python3 -m venv /tmp/fastdup-venv && /tmp/fastdup-venv/bin/pip install
  fastdup``. Its built-in embedding model (in the wheel, no download), cosine similarity >= 0.9
  (its ``run`` default) to the nearest training image among its 5 nearest neighbours.

Scores: recall per family (planted copy linked to its own training tile); precision per family =
correct copies of the family / (copies of the family flagged + the family's share, by number of
copies, of the unseen tiles flagged); overall recall and precision over the whole evaluation
folder. Equal precision: each method's best recall at precision >= P when its threshold is moved
on its own scores (peers: any threshold on their distances, their best case; leakguard: only
upwards, over the pairs it reported). Speed: method seconds / leakguard seconds (> 1: leakguard
is faster); the issue's target is imagededup PHash seconds / leakguard seconds >= 5.

    .venv/bin/python benchmarks/bench_peers_image.py                      # ~150 images, a few minutes
    .venv/bin/python benchmarks/bench_peers_image.py --tiles 20 --per-family 10   # ~270 images
    .venv/bin/python benchmarks/bench_peers_image.py --skip leakguard     # peers only
    .venv/bin/python benchmarks/bench_peers_image.py --json out.json
    .venv/bin/python benchmarks/bench_peers_image.py --speed-images 2000   # speed only, distinct JPEGs
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _bench_image_similarity():
    """The data builder and scorer of ``bench_image_similarity.py`` (benchmarks/ is no package)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import bench_image_similarity

    return bench_image_similarity


def _index(path) -> int:
    return int(Path(path).stem)


def _nearest_train(candidates: dict[int, dict[int, float]]) -> dict[int, int]:
    """evaluation index -> training index with the smallest distance."""
    return {j: min(c, key=c.get) for j, c in candidates.items() if c}


# --- methods: each returns (found: {eval index: train index}, seconds, extra) ---------------

def run_leakguard(train_dir: Path, eval_dir: Path):
    bis = _bench_image_similarity()
    _, seconds, report = bis.run_leakguard(sorted(train_dir.iterdir()), sorted(eval_dir.iterdir()))
    pairs = report.pairs()
    # training-to-evaluation pairs only: leakguard also reports pairs inside the evaluation split
    # (two copies of one training tile), which say nothing about which training tile leaked
    pairs = pairs[(pairs["split_a"] == "train") & (pairs["split_b"] == "val")]
    best = pairs.sort_values("score", ascending=False).drop_duplicates("index_b")
    found = dict(zip(best["index_b"].astype(int), best["index_a"].astype(int)))
    # its reported pairs only: the sweep can raise leakguard's threshold, not lower it
    extra = {"nearest": {int(j): (int(i), -float(s)) for j, i, s in
                         zip(best["index_b"], best["index_a"], best["score"])}}
    for f in report.findings:
        if f.check == "augmented_duplicate" and "threshold" in f.extra:
            extra["threshold"] = round(float(f.extra["threshold"]), 4)
    return found, seconds, extra


def run_imagededup(train_dir: Path, eval_dir: Path, max_distance: int = 10):
    from imagededup.methods import PHash

    t = time.perf_counter()
    phasher = PHash(verbose=False)
    enc = {}
    for prefix, folder in (("train", train_dir), ("eval", eval_dir)):
        for name, code in phasher.encode_images(image_dir=str(folder)).items():
            enc[f"{prefix}/{name}"] = code
    dups = phasher.find_duplicates(encoding_map=enc, max_distance_threshold=max_distance, scores=True)
    candidates: dict[int, dict[int, float]] = {}
    for key, matches in dups.items():
        if not key.startswith("eval/"):
            continue
        j = _index(key)
        candidates[j] = {_index(m): float(d) for m, d in matches if m.startswith("train/")}
    seconds = time.perf_counter() - t
    # distances of every eval image to every training image, for the threshold sweep (untimed)
    codes = {k: int(v, 16) for k, v in enc.items()}
    train_keys = sorted(k for k in codes if k.startswith("train/"))
    train_codes = np.array([codes[k] for k in train_keys], dtype=np.uint64)
    from leakguard.search.hamming import hamming_distance

    nearest = {}
    for k in codes:
        if k.startswith("eval/"):
            d = hamming_distance(train_codes, np.uint64(codes[k]))
            nearest[_index(k)] = (_index(train_keys[int(np.argmin(d))]), int(d.min()))
    return _nearest_train(candidates), seconds, {"nearest": nearest}


def run_cleanvision(train_dir: Path, eval_dir: Path):
    from cleanvision import Imagelab

    t = time.perf_counter()
    paths = [str(p) for p in sorted(train_dir.iterdir())] + [str(p) for p in sorted(eval_dir.iterdir())]
    lab = Imagelab(filepaths=paths)
    lab.find_issues({"near_duplicates": {}}, verbose=False)
    found = {}
    for group in lab.info["near_duplicates"]["sets"]:
        trains = [_index(p) for p in group if Path(p).parent == train_dir]
        for p in group:
            if Path(p).parent == eval_dir and trains:
                # identical hashes carry no distance: any training member of the set is "nearest"
                found[_index(p)] = trains
    return found, time.perf_counter() - t, {}


def _thumbnails(paths, size: int = 16) -> np.ndarray:
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32).ravel())
    x = np.stack(out)
    return (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6)


def _pyramid(paths) -> np.ndarray:
    from PIL import Image

    from leakguard.embedders import PyramidEmbedder

    imgs = []
    for p in paths:
        with Image.open(p) as im:
            imgs.append(np.asarray(im.convert("RGB")))
    return np.asarray(PyramidEmbedder()(imgs), dtype=np.float32)


def run_cleanlab(train_dir: Path, eval_dir: Path, features: str = "thumbnails"):
    import pandas as pd
    from cleanlab import Datalab

    t = time.perf_counter()
    train_paths, eval_paths = sorted(train_dir.iterdir()), sorted(eval_dir.iterdir())
    paths = train_paths + eval_paths
    x = _thumbnails(paths) if features == "thumbnails" else _pyramid(paths)
    lab = Datalab(data=pd.DataFrame({"path": [str(p) for p in paths]}), verbosity=0)
    lab.find_issues(features=x, issue_types={"near_duplicate": {}})
    sets = lab.get_info("near_duplicate")["near_duplicate_sets"]
    n_train = len(train_paths)
    unit = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    cos = unit[n_train:] @ unit[:n_train].T  # for the threshold sweep (untimed below)
    seconds = time.perf_counter() - t
    nearest = {_index(eval_paths[r]): (int(np.argmax(cos[r])), 1.0 - float(cos[r].max())) for r in range(len(eval_paths))}
    found = {}
    for row in range(n_train, len(paths)):
        trains = [int(i) for i in sets[row] if i < n_train]
        if trains:
            d = np.linalg.norm(x[trains] - x[row], axis=1)
            found[_index(paths[row])] = [trains[k] for k in np.argsort(d)]
    return found, seconds, {"nearest": nearest}


FASTDUP_SCRIPT = r"""
import json, sys, time
import fastdup
train_dir, eval_dir, work = sys.argv[1:4]
t = time.perf_counter()
fd = fastdup.create(work_dir=work, input_dir=[train_dir, eval_dir])
fd.run(overwrite=True, threshold=0.5, nearest_neighbors_k=5, verbose=False)
sim = fd.similarity()
out = [[str(a), str(b), float(d)] for a, b, d in zip(sim["filename_from"], sim["filename_to"], sim["distance"])]
print(json.dumps({"seconds": time.perf_counter() - t, "pairs": out}))
"""


def run_fastdup(train_dir: Path, eval_dir: Path, python: str, threshold: float = 0.9):
    """fastdup in its own interpreter; pairs with cosine similarity >= ``threshold`` (its default 0.9)."""
    with tempfile.TemporaryDirectory() as work:
        t = time.perf_counter()
        proc = subprocess.run([python, "-c", FASTDUP_SCRIPT, str(train_dir), str(eval_dir), work],
                              capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"fastdup failed: {proc.stderr[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    candidates: dict[int, dict[int, float]] = {}
    for a, b, sim in res["pairs"]:
        pa, pb = Path(a), Path(b)
        for x, y in ((pa, pb), (pb, pa)):
            if x.parent.name == eval_dir.name and y.parent.name == train_dir.name:
                candidates.setdefault(_index(x), {})[_index(y)] = -sim
    nearest = {j: (i, c[i]) for j, c in candidates.items() for i in [min(c, key=c.get)]}
    found = {j: i for j, (i, d) in nearest.items() if -d >= threshold}
    return found, seconds, {"fastdup_internal_s": round(res["seconds"], 2), "nearest": nearest}


# --- scoring --------------------------------------------------------------------------------

def _resolve(found: dict, truth: np.ndarray) -> dict[int, int]:
    """Methods that return several training candidates get credit when any of them is right."""
    out = {}
    for j, v in found.items():
        if isinstance(v, list):
            out[j] = truth[j] if truth[j] in v else v[0]
        else:
            out[j] = v
    return out


def per_family_scores(found: dict[int, int], truth: np.ndarray, family: np.ndarray) -> dict:
    bis = _bench_image_similarity()
    # the first four of bench_image_similarity.score: recall per family, precision, recall, unseen flagged
    recall_by_family, precision, recall, negatives_flagged = bis.score(found, truth, family)[:4]
    rows = {}
    for fam, rec in recall_by_family.items():
        sel = np.flatnonzero(family == fam)
        flagged = [j for j in sel if int(j) in found]
        correct = sum(1 for j in flagged if found[int(j)] == truth[j])
        # the family's share of the false alarms on unseen tiles (shares add up to all of them)
        denom = len(flagged) + negatives_flagged * len(sel) / max(int((truth >= 0).sum()), 1)
        # nothing of the family flagged: precision undefined (None), not 0 from a share of false alarms
        rows[fam] = {"recall": round(rec, 3), "precision": round(correct / denom, 3) if flagged else None}
    return {"families": rows, "recall": round(recall, 3), "precision": round(precision, 3),
            "negatives_flagged": negatives_flagged}


def best_recall(nearest: dict[int, tuple[int, float]], truth, family, min_precision: float) -> dict:
    """A method's best recall over every threshold on its own distances at precision >= ``min_precision``.

    ``nearest``: evaluation index -> (nearest training index, distance; lower is closer).
    """
    best = {"threshold": None, "recall": 0.0, "precision": None}
    for thr in sorted({d for _, d in nearest.values()}):
        found = {j: i for j, (i, d) in nearest.items() if d <= thr}
        s = per_family_scores(found, truth, family)
        if s["precision"] >= min_precision and s["recall"] > best["recall"]:
            best = {"threshold": thr, "recall": s["recall"], "precision": s["precision"],
                    "families": {f: v["recall"] for f, v in s["families"].items()}}
    return best


def _cpu_seconds() -> float:
    """CPU seconds of this process (every thread) and of its finished child processes (imagededup
    and cleanvision encode in worker pools): steadier than wall seconds on a shared machine."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def speed(methods: dict, n: int, size: int, seed: int) -> dict:
    """End-to-end seconds on ``n`` distinct JPEGs (``bench_exact_images.make_jpegs``: crops of
    scikit-image photos), 80 % in train, 20 % plus 5 % copies of training files in eval."""
    import shutil

    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from bench_exact_images import decode_all, make_jpegs

    out = {"images": n, "size": size}
    with tempfile.TemporaryDirectory() as tmp:
        pool, train_dir, eval_dir = Path(tmp) / "pool", Path(tmp) / "train", Path(tmp) / "eval"
        for d in (pool, train_dir, eval_dir):
            d.mkdir()
        paths = make_jpegs(pool, n, size, seed)
        cut = int(0.8 * n)
        for k, p in enumerate(paths[:cut]):
            shutil.move(p, train_dir / f"{k:06d}.jpg")
        for k, p in enumerate(paths[cut:]):
            shutil.move(p, eval_dir / f"{k:06d}.jpg")
        for k in range(n // 20):  # 5 % planted exact copies, as bench_exact_images does
            shutil.copy(train_dir / f"{k:06d}.jpg", eval_dir / f"{n - cut + k:06d}.jpg")
        files = sorted(train_dir.iterdir()) + sorted(eval_dir.iterdir())
        decode_all(files[:50])
        out["decode_s"] = round(decode_all(files), 2)
        print(f"speed: {cut} train + {len(files) - cut} eval JPEGs of {size} px; decoding once {out['decode_s']} s",
              flush=True)
        for name, fn in methods.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    cpu = _cpu_seconds()
                    _, seconds, _ = fn(train_dir, eval_dir)
                    cpu = _cpu_seconds() - cpu
                except Exception as err:  # noqa: BLE001
                    print(f"  {name} failed: {type(err).__name__}: {err}")
                    continue
            out[name] = round(seconds, 2)
            out[f"{name} cpu"] = round(cpu, 2)
            print(f"  {name}: {seconds:.1f} s ({cpu:.1f} s CPU)", flush=True)
    if "leakguard" in out and "imagededup PHash" in out:
        out["speed_vs_imagededup"] = round(out["imagededup PHash"] / out["leakguard"], 3)
        out["cpu_speed_vs_imagededup"] = round(out["imagededup PHash cpu"] / max(out["leakguard cpu"], 1e-9), 3)
        print(f"speed: leakguard {out['leakguard']:.1f} s, imagededup PHash {out['imagededup PHash']:.1f} s -> "
              f"leakguard is {out['speed_vs_imagededup']:.3f} x as fast (issue target: >= 5 x; by CPU seconds "
              f"{out['cpu_speed_vs_imagededup']:.3f} x); leakguard "
              f"throughput = {out['decode_s'] / out['leakguard']:.3f} x decode-only (target 0.8 x)")
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=12, help="tiles per photo (before the contrast filter)")
    ap.add_argument("--per-family", type=int, default=5, help="planted copies per augmentation family")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", default="", help="comma-separated methods to leave out, e.g. leakguard,cleanlab")
    ap.add_argument("--fastdup-python", default=os.environ.get("FASTDUP_PYTHON"),
                    help="python of a separate venv with fastdup installed (optional)")
    ap.add_argument("--speed-images", type=int, default=0,
                    help="instead of the quality run: end-to-end seconds on this many distinct JPEGs")
    ap.add_argument("--size", type=int, default=128, help="pixel size of the --speed-images JPEGs")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    bis = _bench_image_similarity()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    # imports before the clocks (imagededup imports torch: seconds that are not its work)
    import leakguard  # noqa: F401
    methods = {}
    if "leakguard" not in skip:
        methods["leakguard"] = run_leakguard
    for name, module, fn in (("imagededup PHash", "imagededup.methods", run_imagededup),
                             ("cleanvision", "cleanvision", run_cleanvision),
                             ("cleanlab (thumbnails)", "cleanlab", lambda a, b: run_cleanlab(a, b, "thumbnails")),
                             ("cleanlab (leakguard pyramid)", "cleanlab",
                              lambda a, b: run_cleanlab(a, b, "pyramid"))):
        if any(name.startswith(s) for s in skip):
            continue
        try:
            __import__(module)
            methods[name] = fn
        except ImportError as err:
            print(f"{name}: not installed ({err}); pip install 'leakguard-ml[bench]'")
    if args.fastdup_python and "fastdup" not in skip:
        methods["fastdup"] = lambda a, b: run_fastdup(a, b, args.fastdup_python)

    if args.speed_images:
        summary = speed(methods, args.speed_images, args.size, args.seed)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
        return summary
    train, evals, truth, family = bis.build(args.tiles, args.per_family, args.seed)
    print(f"{len(train)} training tiles, {len(evals)} evaluation images ({int((truth >= 0).sum())} planted "
          f"copies over {len(set(family)) - 1} families, {int((truth < 0).sum())} unseen tiles of the same photos)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, eval_dir = Path(tmp) / "train", Path(tmp) / "eval"
        tp = bis.write_folder(train, train_dir)
        ep = bis.write_folder(evals, eval_dir)
        bis.decode_all(tp[:20])  # page cache warm for everyone
        t_decode = bis.decode_all(tp + ep)
        for name, fn in methods.items():
            print(f"running {name} ...", flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    found, seconds, extra = fn(train_dir, eval_dir)
                except Exception as err:  # noqa: BLE001 - one peer failing must not lose the others
                    print(f"  {name} failed: {type(err).__name__}: {err}")
                    continue
            found = _resolve(found, truth)
            results[name] = {**per_family_scores(found, truth, family), "seconds": round(seconds, 2), **extra}
            print(f"  {name}: recall {results[name]['recall']:.3f}, precision {results[name]['precision']:.3f}, "
                  f"{seconds:.1f} s", flush=True)

    names = list(results)
    families = list(dict.fromkeys(f for f in family if f != "negative"))
    width = max(len(f) for f in families) + 2
    print("\nper family: recall / precision")
    print("family".ljust(width) + "".join(f"| {i + 1:^11}" for i in range(len(names))))
    def cell(v):
        return "  - " if v is None else f"{v:.2f}"

    for fam in families:
        print(fam.ljust(width) + "".join(f"| {results[n]['families'][fam]['recall']:.2f} / "
                                         f"{cell(results[n]['families'][fam]['precision'])} " for n in names))
    print("-" * (width + 13 * len(names)))
    for label, key, fmt in (("recall (all)", "recall", "{:^11.3f}"), ("precision", "precision", "{:^11.3f}"),
                            ("unseen flagged", "negatives_flagged", "{:^11d}"), ("seconds", "seconds", "{:^11.1f}")):
        print(label.ljust(width) + "".join("| " + fmt.format(results[n][key]) for n in names))
    if "leakguard" in results:
        t_lg = results["leakguard"]["seconds"]
        print("x leakguard".ljust(width) + "".join(f"| {results[n]['seconds'] / t_lg:^11.3f}" for n in names)
              + "   (method seconds / leakguard seconds; > 1 means leakguard is faster)")
    for i, n in enumerate(names):
        print(f"  {i + 1}: {n}")
    print(f"decoding every image once: {t_decode:.2f} s")
    summary = {"train": len(train), "eval": len(evals), "decode_s": round(t_decode, 3), "methods": results}
    # equal precision: each method's best recall when its own threshold is moved (peers: any
    # threshold on their distances; leakguard: only upwards, over the pairs it reported)
    levels = sorted({0.95, 1.0} | ({results["leakguard"]["precision"]} if "leakguard" in results else set()))
    print("\nbest recall at precision >= P, each method's threshold moved on its own scores:")
    print("method".ljust(30) + "".join(f"| P >= {p:<6.3f}" for p in levels))
    summary["equal_precision"] = {}
    for n, r in results.items():
        nearest = r.pop("nearest", None)
        if nearest is None:
            continue
        curve = {f"{p:.3f}": best_recall(nearest, truth, family, p) for p in levels}
        summary["equal_precision"][n] = curve
        print(n.ljust(30) + "".join(f"| {c['recall']:<11.3f}" for c in curve.values()))
    if "leakguard" in results and "imagededup PHash" in results:
        t_lg, t_idd = results["leakguard"]["seconds"], results["imagededup PHash"]["seconds"]
        summary["speed_vs_imagededup"] = round(t_idd / t_lg, 3)
        print(f"speed: leakguard {t_lg:.1f} s, imagededup PHash {t_idd:.1f} s -> leakguard is "
              f"{t_idd / t_lg:.3f} x as fast (issue target: >= 5 x)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=float))
    return summary


if __name__ == "__main__":
    main()
