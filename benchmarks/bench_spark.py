"""The Spark engine at 1M samples: local[1] against local[2], the local engine beside it, and shuffle sizes.

Two workloads, both written to Parquet first so Spark reads them as it would in production:

1. **audit**: ``lg.audit(engine="spark")`` of a tabular train/val pair (80 % / 20 % of ``--n``
   rows, 10 feature columns, a label; 1 % of val planted as copies of train rows, 0.1 % of train
   repeated inside train), against the local engine on the same files (the peer). Same findings
   asserted.
2. **band join**: :func:`leakguard.search.spark.band_join` of ``--n`` random 64-bit codes
   (80 % / 20 %) with near copies planted (1 % of the eval side, 0 to ``radius`` flipped bits),
   radius 4, bands from the local cost model (``BandLayout.hamming(64, 4, n_codes=n)``).

3. **images** (``--images N``): image ``exact_duplicate`` + ``augmented_duplicate`` on folders of
   ``N`` training tiles of the scikit-image photos (64 px) and ``N // 4`` evaluation images, half of
   them augmented copies of training tiles (flips, crops, jitter, ...), half unseen tiles; the
   local engine beside it, same findings and the whole report JSON compared (Spark's candidates are
   the hash matches and the kNN join's nearest neighbours, see ``leakguard.search.spark_image``).

Each Spark run is its own process (a JVM's master is fixed at start), with the event log on; the
shuffle bytes written / read, input bytes and task time are summed per phase (the job
descriptions the engine sets) from the event log's stage metrics.

    .venv/bin/python benchmarks/bench_spark.py [--n 1000000] [--masters local[1],local[2]] [--json out.json]

The machine this ran on is shared: wall times are what one run measured, not a best of several.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RADIUS = 4


def make_data(folder: Path, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n_train, n_val = int(n * 0.8), n - int(n * 0.8)

    def frame(m):
        f = pd.DataFrame(rng.normal(size=(m, 8)).round(6), columns=[f"f{i}" for i in range(8)])
        f["count"] = rng.integers(0, 1000, m)
        f["city"] = pd.Series(rng.integers(0, 5000, m)).map(lambda v: f"city_{v}")
        f["label"] = rng.integers(0, 2, m)
        return f

    train, val = frame(n_train), frame(n_val)
    n_copies, n_within = n_val // 100, n_train // 1000
    src = rng.choice(n_train, n_copies, replace=False)
    dst = rng.choice(n_val, n_copies, replace=False)
    val.iloc[dst, :10] = train.iloc[src, :10].to_numpy()
    rep = rng.choice(n_train, 2 * n_within, replace=False)
    train.iloc[rep[n_within:], :10] = train.iloc[rep[:n_within], :10].to_numpy()
    paths = {"train": folder / "train.parquet", "val": folder / "val.parquet"}
    train.to_parquet(paths["train"], row_group_size=100_000)
    val.to_parquet(paths["val"], row_group_size=100_000)
    # codes for the band join
    codes_t = rng.integers(0, 256, size=(n_train, 8), dtype=np.uint8)
    codes_e = rng.integers(0, 256, size=(n_val, 8), dtype=np.uint8)
    planted = rng.choice(n_train, n_val // 100, replace=False)
    for k, t in enumerate(planted):
        bits = np.unpackbits(codes_t[t])
        bits[rng.choice(64, size=k % (RADIUS + 1), replace=False)] ^= 1
        codes_e[k] = np.packbits(bits)
    for split, codes in (("train", codes_t), ("val", codes_e)):
        pd.DataFrame({"split": split, "_lg_idx": np.arange(len(codes)), "code": [c.tobytes() for c in codes]}
                     ).to_parquet(folder / f"codes_{split}.parquet", row_group_size=100_000)
    return {"paths": {k: str(v) for k, v in paths.items()}, "n_train": n_train, "n_val": n_val,
            "planted_copies": int(n_copies), "planted_within": int(n_within), "planted_codes": int(len(planted))}


def stage_metrics(event_log_dir: Path) -> dict:
    """Per job description: shuffle bytes written / read, input bytes, task seconds, from the event log."""
    logs = [p for p in event_log_dir.rglob("*") if p.is_file() and not p.name.startswith(".")]
    desc_of_stage, out = {}, {}
    for log in logs:
        for line in log.read_text().splitlines():
            ev = json.loads(line)
            kind = ev.get("Event")
            if kind == "SparkListenerStageSubmitted":
                props = ev.get("Properties") or {}
                desc_of_stage[ev["Stage Info"]["Stage ID"]] = props.get("spark.job.description") or "other"
            elif kind == "SparkListenerStageCompleted":
                info = ev["Stage Info"]
                desc = desc_of_stage.get(info["Stage ID"], "other")
                acc = {a.get("Name"): a.get("Value") for a in info.get("Accumulables", [])}
                d = out.setdefault(desc, {"stages": 0, "shuffle_write_bytes": 0, "shuffle_read_bytes": 0,
                                          "input_bytes": 0, "task_s": 0.0, "records_written": 0,
                                          "tasks": 0, "single_task_stages": 0})
                d["stages"] += 1
                d["tasks"] += int(info.get("Number of Tasks", 0))
                d["single_task_stages"] += int(info.get("Number of Tasks", 0) == 1)
                d["shuffle_write_bytes"] += int(acc.get("internal.metrics.shuffle.write.bytesWritten", 0) or 0)
                d["records_written"] += int(acc.get("internal.metrics.shuffle.write.recordsWritten", 0) or 0)
                d["shuffle_read_bytes"] += int(acc.get("internal.metrics.shuffle.read.localBytesRead", 0) or 0) \
                    + int(acc.get("internal.metrics.shuffle.read.remoteBytesRead", 0) or 0)
                d["input_bytes"] += int(acc.get("internal.metrics.input.bytesRead", 0) or 0)
                d["task_s"] += int(acc.get("internal.metrics.executorRunTime", 0) or 0) / 1000
                d["peak_execution_mb"] = max(d.get("peak_execution_mb", 0),
                                             round(int(acc.get("internal.metrics.peakExecutionMemory", 0) or 0) / 1e6, 1))
    return out


def _session(master: str, app: str, prefix: Path, tasks: int, extra: dict):
    """A local Spark session logging its events to a fresh folder (the metrics sum every log in it),
    and that folder."""
    from pyspark.sql import SparkSession

    events = prefix.with_name(f"{prefix.name}-{master.replace('[', '').replace(']', '')}-{time.strftime('%Y%m%dT%H%M%S')}")
    events.mkdir(parents=True, exist_ok=True)
    builder = (SparkSession.builder.master(master).appName(app)
               .config("spark.ui.enabled", "false")
               .config("spark.eventLog.enabled", "true").config("spark.eventLog.dir", events.as_uri())
               .config("spark.eventLog.compress", "false")
               .config("spark.sql.shuffle.partitions", str(tasks))
               .config("spark.sql.session.timeZone", "UTC"))
    for key, value in extra.items():
        builder = builder.config(key, value)
    return builder.getOrCreate(), events


def spark_worker(master: str, data: dict, folder: Path, events_root: Path, tasks: int = 8,
                 fixed_tasks: bool = True, driver_memory: str = "3g") -> dict:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import leakguard as lg
    from leakguard.search.spark import BandLayout, band_join

    t0 = time.perf_counter()
    # the same number of tasks on both masters, enough for every core: input files split into
    # >= tasks_per_stage pieces (by row group), shuffles keep their partition count (AQE would
    # merge these 10-60 MB shuffles into one or two tasks)
    spark, events = _session(master, "leakguard-bench", events_root / "events", tasks, {
        "spark.sql.files.minPartitionNum": str(tasks),
        "spark.sql.adaptive.coalescePartitions.enabled": str(not fixed_tasks).lower(),
        "spark.driver.memory": driver_memory})
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = lg.audit(data["paths"], labels="label", checks=["exact_duplicate"],
                      config=lg.AuditConfig(engine="spark", spark=spark, progress=False))
    audit_s = time.perf_counter() - t0
    spark.sparkContext.setJobDescription("band join (64-bit codes, radius 4)")
    layout = BandLayout.hamming(64, RADIUS, n_codes=data["n_train"])
    t0 = time.perf_counter()
    left = spark.read.parquet(str(folder / "codes_train.parquet"))
    right = spark.read.parquet(str(folder / "codes_val.parquet"))
    pairs = band_join(left, right, layout).toPandas()
    band_s = time.perf_counter() - t0
    planted_found = int(((pairs.index_b < data["planted_codes"])).sum())
    spark.stop()
    return {"master": master, "tasks_per_stage": tasks, "aqe_coalesce": not fixed_tasks,
            "driver_memory": driver_memory,
            "load_average": os.getloadavg(), "start_s": round(start_s, 1), "audit_s": round(audit_s, 1),
            "band_join_s": round(band_s, 1), "band_layout": {"n_bands": layout.n_bands,
                                                             "probe_bits": layout.probe_bits},
            "band_pairs": int(len(pairs)), "planted_codes_found": planted_found,
            "findings": [(f.splits, f.count) for f in report.findings],
            "metrics": stage_metrics(events)}


IMAGE_FAMILIES = ("hflip", "rot90", "crop", "jitter", "vflip", "crop+jitter", "resize", "grayscale", "rotate",
                  "noise")


def make_images(folder: Path, n: int, seed: int = 0) -> dict:
    from PIL import Image

    from leakguard.signatures.image import grey
    from leakguard.similarity.image_planting import augment, base_tiles

    rng = np.random.default_rng(seed)
    tiles = [t for t in base_tiles(64, 10_000, seed=seed) if grey(t).std() > 10]
    if len(tiles) < n + n // 8:
        raise SystemExit(f"only {len(tiles)} distinct tiles: --images at most {len(tiles) * 8 // 9}")
    order = rng.permutation(len(tiles))
    train, unseen = [tiles[i] for i in order[:n]], [tiles[i] for i in order[n:n + n // 8]]
    paths = {"train": folder / "train", "val": folder / "val"}
    for p in paths.values():
        p.mkdir()
    for i, t in enumerate(train):
        Image.fromarray(t).save(paths["train"] / f"t{i:05d}.png")
    for k in range(n // 8):
        fam = IMAGE_FAMILIES[k % len(IMAGE_FAMILIES)]
        Image.fromarray(augment(train[k], fam, rng)).save(paths["val"] / f"v{k:05d}.png")
        Image.fromarray(unseen[k]).save(paths["val"] / f"w{k:05d}.png")
    return {"paths": {k: str(v) for k, v in paths.items()}, "n_train": n, "n_val": 2 * (n // 8),
            "planted": n // 8}


AUDIO_FAMILIES_BENCH = ("gain", "noise", "shift", "add_silence", "remove_silence")  # no librosa needed
AUDIO_CHECKS = ["exact_duplicate", "augmented_duplicate", "partial_duplicate", "semantic_duplicate"]


def make_audio(folder: Path, n: int, seed: int = 0) -> dict:
    """``n`` training clips (speech-like by 8 voices, 1 in 6 a tone clip, 1.5-3 s), and as many
    evaluation clips as n // 8 augmented copies plus n // 8 new clips by the same voices."""
    from leakguard.similarity.synthetic import augment_audio, speaker_voice, speech_like, tone_clip, write_wavs

    rate, rng = 16000, np.random.default_rng(seed)
    voices = [speaker_voice(rng) for _ in range(8)]
    train = [tone_clip(rng, rng.uniform(1.5, 3.0), rate) if i % 6 == 5 else
             speech_like(rng, rng.uniform(1.5, 3.0), rate, voices[i % 8]) for i in range(n)]
    val = [augment_audio(train[k], rate, rng, AUDIO_FAMILIES_BENCH[k % len(AUDIO_FAMILIES_BENCH)])
           for k in range(n // 8)]
    val += [speech_like(rng, rng.uniform(1.5, 3.0), rate, voices[k % 8]) for k in range(n // 8)]
    paths = {"train": folder / "train", "val": folder / "val"}
    write_wavs(paths["train"], train, rate)
    write_wavs(paths["val"], val, rate)
    return {"paths": {k: str(v) for k, v in paths.items()}, "n_train": n, "n_val": len(val),
            "planted": n // 8, "checks": AUDIO_CHECKS}


def make_tiles(folder: Path, n: int, seed: int = 0) -> dict:
    """``n`` training tiles of 96 px: n // 8 of them overlap an evaluation tile (cut from one photo at
    two offsets, 30-70 % shared), the rest are non-overlapping tiles of the scikit-image photos; the
    evaluation split adds as many tiles no training tile overlaps (held-out tiles of the same photos)."""
    from PIL import Image

    from leakguard.similarity.image_planting import PHOTOS, base_tiles, overlapping_tiles, photo

    rng = np.random.default_rng(seed)
    pictures = [photo(name) for name in PHOTOS]
    pairs = [overlapping_tiles(pictures[k % len(pictures)], 96, rng)[:2] for k in range(n // 8)]
    others = base_tiles(96, 10_000, seed=seed)
    order = rng.permutation(len(others))
    need = n  # n - n // 8 non-overlapping training tiles, n // 8 evaluation ones
    if len(others) < need:
        raise SystemExit(f"only {len(others)} distinct tiles: --partial at most {len(others)}")
    train = [a for a, _ in pairs] + [others[i] for i in order[:n - n // 8]]
    val = [b for _, b in pairs] + [others[i] for i in order[n - n // 8:need]]
    paths = {"train": folder / "train", "val": folder / "val"}
    for name, items in (("train", train), ("val", val)):
        paths[name].mkdir()
        for i, t in enumerate(items):
            Image.fromarray(t).save(paths[name] / f"{name[0]}{i:05d}.png")
    return {"paths": {k: str(v) for k, v in paths.items()}, "n_train": len(train), "n_val": len(val),
            "planted": n // 8, "checks": ["exact_duplicate", "partial_duplicate"]}


def image_worker(master: str, data: dict, events_root: Path, tasks: int) -> dict:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import leakguard as lg

    t0 = time.perf_counter()
    spark, events = _session(master, "leakguard-bench-images", events_root / "images", tasks, {})
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = lg.audit(data["paths"], checks=data.get("checks", ["exact_duplicate", "augmented_duplicate"]),
                      config=lg.AuditConfig(engine="spark", spark=spark, progress=False))
    audit_s = time.perf_counter() - t0
    spark.stop()
    Path(data["paths"]["train"]).parent.joinpath(f"report-{master}.json").write_text(report.to_json())
    return {"master": master, "load_average": os.getloadavg(), "start_s": round(start_s, 1),
            "audit_s": round(audit_s, 1), "findings": _image_findings(report), "metrics": stage_metrics(events)}


def _image_findings(report) -> dict:
    return {f.check: sorted(zip(f.pairs["index_a"].astype(int).tolist(), f.pairs["index_b"].astype(int).tolist()))
            for f in report.findings if f.pairs is not None and len(f.pairs)}


def _comparable_json(text: str) -> dict:
    """A report's JSON without what differs between two runs of the same audit (time, engine, config)."""
    d = json.loads(text)
    d["meta"] = {k: v for k, v in d["meta"].items() if k not in ("duration_s", "created", "config", "spark", "cache")}
    return d


def _differences(a, b, path: str = "report") -> list[str]:
    """Where two JSON trees differ (paths and both values, shortened)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: spark {str(a)[:120]} / local {str(b)[:120]}"]


def image_main(args) -> int:
    import leakguard as lg

    with tempfile.TemporaryDirectory(prefix="leakguard-bench-spark-images-") as tmp:
        folder = Path(tmp)
        data = (make_audio(folder, args.audio) if args.audio else make_tiles(folder, args.partial) if args.partial
                else make_images(folder, args.images))
        (folder / "data.json").write_text(json.dumps(data))
        t0, c0 = time.perf_counter(), time.process_time()
        local = lg.audit(data["paths"], checks=data.get("checks", ["exact_duplicate", "augmented_duplicate"]),
                         config=lg.AuditConfig(progress=False))
        local_s, local_cpu = time.perf_counter() - t0, time.process_time() - c0
        found_local = _image_findings(local)
        print(f"{'audio clips' if args.audio else 'images'}: {data['n_train']} train, {data['n_val']} val "
              f"({data['planted']} planted copies); local engine {local_s:.1f} s ({local_cpu:.1f} CPU-s), "
              f"load {os.getloadavg()[0]:.1f}; local findings: "
              f"{ {c: len(v) for c, v in found_local.items()} }", flush=True)
        results = {"images": data, "local_engine_s": round(local_s, 1), "local_findings": found_local, "spark": []}
        for master in args.masters.split(","):
            proc = subprocess.run([sys.executable, __file__, "--image-worker", master, "--data", str(folder),
                                   "--events", str(args.events.resolve()), "--tasks", str(args.tasks)],
                                  capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"Spark image run on {master} failed")
            res = json.loads(line[0][7:])
            mine = {k: [tuple(p) for p in v] for k, v in res["findings"].items()}
            theirs = {k: [tuple(p) for p in v] for k, v in found_local.items()}
            aug_l, aug_s = set(theirs.get("augmented_duplicate", [])), set(mine.get("augmented_duplicate", []))
            res["augmented_pairs"] = {"local": len(aug_l), "spark": len(aug_s), "both": len(aug_l & aug_s),
                                      "local_only": sorted(aug_l - aug_s), "spark_only": sorted(aug_s - aug_l)}
            res["planted_found"] = {"local": sum(a == b for a, b in aug_l if b < data["planted"]),
                                    "spark": sum(a == b for a, b in aug_s if b < data["planted"])}
            mine_json = _comparable_json((folder / f"report-{master}.json").read_text())
            res["same_report_json"] = mine_json == _comparable_json(local.to_json())
            res["report_differences"] = _differences(mine_json, _comparable_json(local.to_json()))[:20]
            results["spark"].append(res)
            print(f"{master}: start {res['start_s']} s, audit {res['audit_s']} s (load {res['load_average'][0]:.1f}); "
                  f"augmented pairs local {len(aug_l)} / spark {len(aug_s)} / both {len(aug_l & aug_s)}; "
                  f"exact same: {mine.get('exact_duplicate') == theirs.get('exact_duplicate')}; "
                  f"spark findings: { {c: len(v) for c, v in mine.items()} }; "
                  f"whole report JSON same: {res['same_report_json']}", flush=True)
            for d in res["report_differences"]:
                print("  differs:", d)
            for desc, m in res["metrics"].items():
                print(f"  {desc[:70]:70s} {m['shuffle_write_bytes'] / 1e6:8.1f} MB {m['task_s']:8.1f} task-s "
                      f"{m['stages']:4d} stages")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def hash_vectors(ids, dim: int) -> np.ndarray:
    """Deterministic pseudo-random float32 vectors of the sample numbers ``ids`` (splitmix64 of
    ``id * dim + j``): any batch of the index computes the same vectors, with no data file."""
    x = np.asarray(ids, dtype=np.uint64)[:, None] * np.uint64(dim) + np.arange(dim, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return ((x >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24) - np.float32(0.5))


def knn_worker(master: str, n_index: int, n_query: int, dim: int, k: int, events_root: Path, tasks: int,
               driver_memory: str) -> dict:
    """:func:`leakguard.search.spark_knn.knn_join` of ``n_query`` vectors over ``n_index``, cosine."""
    import resource

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from leakguard.search.knn import nearest
    from leakguard.search.spark_knn import knn_join

    t0 = time.perf_counter()
    spark, events = _session(master, "leakguard-bench-knn", events_root / "knn", tasks,
                             {"spark.driver.memory": driver_memory})
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    # queries: noisy copies of index vectors, so each has a known nearest neighbour
    source = rng.choice(n_index, size=n_query, replace=False)
    queries = hash_vectors(source, dim) + rng.normal(scale=0.05, size=(n_query, dim)).astype(np.float32)
    frame = spark.range(0, n_index, numPartitions=tasks).withColumnRenamed("id", "_lg_idx")
    spark.sparkContext.setJobDescription(f"knn join {n_index} x {n_query}, d={dim}, k={k}")
    t0 = time.perf_counter()
    found = knn_join(spark, frame, lambda pdf: {"v": hash_vectors(pdf["_lg_idx"].to_numpy(), dim)},
                     [("v", queries)], k, "cosine").toPandas()
    knn_s = time.perf_counter() - t0
    spark.stop()
    best = found.sort_values(["q", "score", "index"], ascending=[True, False, True]).drop_duplicates("q")
    hit = float(np.mean(best.sort_values("q")["index"].to_numpy() == source))
    # the local search on a sample of queries, over the whole index (held here for the check only)
    check = rng.choice(n_query, size=min(200, n_query), replace=False)
    _, idx = nearest(hash_vectors(np.arange(n_index), dim), queries[check], k=k, metric="cosine")
    same = all(set(idx[r]) <= set(found.loc[found["q"] == q, "index"]) for r, q in enumerate(check))
    return {"master": master, "n_index": n_index, "n_query": n_query, "dim": dim, "k": k, "tasks": tasks,
            "load_average": os.getloadavg(), "start_s": round(start_s, 1), "knn_s": round(knn_s, 1),
            "rows_returned": int(len(found)), "planted_nearest_found": hit,
            "local_top_k_contained_on_200_queries": bool(same),
            "broadcast_mb": round(n_query * dim * 4 / 1e6, 1),
            "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "metrics": stage_metrics(events)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--masters", default="local[1],local[2]")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--events", type=Path, default=Path(tempfile.gettempdir()) / "leakguard-spark-events",
                    help="folder for the Spark event logs (kept, to read the metrics again)")
    ap.add_argument("--tasks", type=int, default=8,
                    help="input splits and shuffle partitions per stage (same on every master)")
    ap.add_argument("--aqe-coalesce", action="store_true",
                    help="let adaptive execution merge small shuffle partitions (Spark's default)")
    ap.add_argument("--driver-memory", default="3g",
                    help="JVM memory of the local session (local[2]'s band join needed 4g at 1M and 16 tasks)")
    ap.add_argument("--images", type=int, default=0,
                    help="the image workload instead: this many training tiles (64 px), a quarter as many evaluation images")
    ap.add_argument("--audio", type=int, default=0,
                    help="the audio similarity checks instead: N training clips (exact, augmented, partial, semantic)")
    ap.add_argument("--partial", type=int, default=0,
                    help="image partial_duplicate (same-scale tiles) instead: N training tiles")
    ap.add_argument("--knn", help="the kNN join instead: N_INDEX,N_QUERY (e.g. 1000000,100000), cosine, "
                                   "vectors of --dim floats, --k neighbours; one run per master")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--image-worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.image_worker:
        data = json.loads((args.data / "data.json").read_text())
        print("RESULT " + json.dumps(image_worker(args.image_worker, data, args.events, args.tasks)))
        return 0
    if args.images or args.audio or args.partial:
        return image_main(args)
    if args.knn:
        n_index, n_query = (int(v) for v in args.knn.split(","))
        results = []
        for master in args.masters.split(","):
            res = knn_worker(master, n_index, n_query, args.dim, args.k, args.events.resolve(), args.tasks,
                             args.driver_memory) if len(args.masters.split(",")) == 1 else None
            if res is None:  # one process per master (a JVM's master is fixed at start)
                proc = subprocess.run([sys.executable, __file__, "--knn", args.knn, "--masters", master,
                                       "--dim", str(args.dim), "--k", str(args.k), "--tasks", str(args.tasks),
                                       "--events", str(args.events), "--driver-memory", args.driver_memory,
                                       "--json", str(Path(tempfile.gettempdir()) / f"leakguard-knn-{os.getpid()}.json")],
                                      capture_output=True, text=True)
                if proc.returncode:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"kNN run on {master} failed")
                res = json.loads((Path(tempfile.gettempdir()) / f"leakguard-knn-{os.getpid()}.json").read_text())[0]
            results.append(res)
            m = {d: v for d, v in res["metrics"].items() if d.startswith("knn join")}
            print(f"{master}: {n_index:,} x {n_query:,}, d={args.dim}, k={args.k}, {args.tasks} tasks: "
                  f"{res['knn_s']} s (load {res['load_average'][0]:.1f}); nearest found {res['planted_nearest_found']:.3f}; "
                  f"local top-k contained: {res['local_top_k_contained_on_200_queries']}; driver peak RSS "
                  f"{res['driver_peak_rss_mb']} MB; broadcast {res['broadcast_mb']} MB", flush=True)
            for desc, v in m.items():
                print(f"  shuffle write {v['shuffle_write_bytes'] / 1e6:.1f} MB ({v['records_written']:,} records), "
                      f"{v['task_s']:.1f} task-s, {v['stages']} stages, {v['tasks']} tasks, "
                      f"largest stage peak execution memory (sum over its tasks) {v.get('peak_execution_mb', 0)} MB")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=1))
        return 0
    if args.worker:
        data = json.loads((args.data / "data.json").read_text())
        print("RESULT " + json.dumps(spark_worker(args.worker, data, args.data, args.events, args.tasks,
                                                          not args.aqe_coalesce, args.driver_memory)))
        return 0
    import leakguard as lg

    with tempfile.TemporaryDirectory(prefix="leakguard-bench-spark-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        data = make_data(folder, args.n)
        (folder / "data.json").write_text(json.dumps(data))
        print(f"data: {args.n:,} rows, {time.perf_counter() - t0:.0f} s to write", flush=True)
        t0 = time.perf_counter()
        local = lg.audit(data["paths"], labels="label", checks=["exact_duplicate"],
                         config=lg.AuditConfig(progress=False))
        local_s = time.perf_counter() - t0
        print(f"local engine: {local_s:.1f} s", flush=True)
        results = {"n": args.n, "data": data, "local_engine_s": round(local_s, 1),
                   "load_average_start": os.getloadavg(),
                   "local_findings": [(f.splits, f.count) for f in local.findings], "spark": []}
        for master in args.masters.split(","):
            proc = subprocess.run([sys.executable, __file__, "--worker", master, "--data", str(folder),
                                   "--events", str(args.events.resolve()), "--tasks", str(args.tasks),
                                   "--driver-memory", args.driver_memory]
                                  + (["--aqe-coalesce"] if args.aqe_coalesce else []),
                                  capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                log = args.events / f"worker-{master.replace('[', '').replace(']', '')}.stderr"
                log.write_text(proc.stderr)  # the whole log: the Python error sits above the JVM's stack
                print(proc.stderr[-3000:], f"\n(whole log: {log})", file=sys.stderr)
                raise SystemExit(f"Spark run on {master} failed")
            res = json.loads(line[0][7:])
            res["same_findings_as_local"] = [tuple(x) for x in map(tuple, res["findings"])] == \
                [tuple(x) for x in map(tuple, json.loads(json.dumps(results["local_findings"])))]
            mine_json = _comparable_json((folder / f"report-{master}.json").read_text())
            res["same_report_json"] = mine_json == _comparable_json(local.to_json())
            res["report_differences"] = _differences(mine_json, _comparable_json(local.to_json()))[:20]
            results["spark"].append(res)
            print(f"{master}: start {res['start_s']} s, audit {res['audit_s']} s, band join {res['band_join_s']} s "
                  f"({res['band_pairs']} pairs, {res['planted_codes_found']} of {data['planted_codes']} planted), "
                  f"same findings: {res['same_findings_as_local']}", flush=True)
    if len(results["spark"]) >= 2:
        a, b = results["spark"][0], results["spark"][1]
        results["speedup_audit"] = round(a["audit_s"] / b["audit_s"], 2)
        results["speedup_band_join"] = round(a["band_join_s"] / b["band_join_s"], 2)
    print(f"\n{'phase':62s} {'shuffle write':>14s} {'shuffle read':>13s} {'input':>10s} {'task s':>8s}")
    for res in results["spark"]:
        print(f"-- {res['master']}")
        for desc, m in res["metrics"].items():
            print(f"{desc[:62]:62s} {m['shuffle_write_bytes'] / 1e6:11.1f} MB {m['shuffle_read_bytes'] / 1e6:10.1f} MB "
                  f"{m['input_bytes'] / 1e6:7.1f} MB {m['task_s']:8.1f}")
    if "speedup_audit" in results:
        print(f"\nspeed-up local[1] -> local[2]: audit {results['speedup_audit']}x, "
              f"band join {results['speedup_band_join']}x; local engine {results['local_engine_s']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
