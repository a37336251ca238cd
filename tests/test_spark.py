"""The Spark engine against the local engine, on the same data: same findings, same report.

One SparkSession (``local[2]``) serves the whole module; Spark start-up is the slow part.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:  # pragma: no cover - pyspark needs a JVM
    pytest.skip("the Spark engine needs Java", allow_module_level=True)

import leakguard as lg  # noqa: E402
from leakguard.errors import InputError  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
              # the first test also pays the JVM and Python-worker start (3 min at load average 20)
              pytest.mark.timeout(900)]


def _comparable(report) -> dict:
    """The report as JSON, without what legitimately differs between two runs (time, engine)."""
    d = json.loads(report.to_json())
    d["meta"] = {k: v for k, v in d["meta"].items() if k not in ("duration_s", "created", "config", "spark", "cache")}
    return d


def _audit_both(spark, splits, checks, opts=None, **kwargs):
    """The same audit on the local engine and on Spark (no progress bars): ``(local, on_spark)``."""
    local = lg.audit(splits, checks=checks, config=lg.AuditConfig(progress=False, check_options=opts or {}), **kwargs)
    on_spark = lg.audit(splits, checks=checks, config=lg.AuditConfig(engine="spark", spark=spark, progress=False,
                                                                     check_options=opts or {}), **kwargs)
    return local, on_spark


def _tables(folder, rng):
    """train / val / test Parquet files with planted copies, a label conflict and NaN cells."""
    def frame(n, offset):
        f = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
        f["city"] = [f"c{(i + offset) % 17}" for i in range(n)]
        f["label"] = rng.integers(0, 3, n)
        return f

    train, val, test = frame(240, 0), frame(80, 5), frame(60, 9)
    train.loc[7, "a"] = np.nan
    val.iloc[:12, :4] = train.iloc[[3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47], :4].to_numpy()  # copies, one with NaN
    val.loc[0, "label"] = (train.loc[3, "label"] + 1) % 3        # a copy that changed its label
    val.loc[12, ["a", "b", "c"]] = -0.0, 1.0, 2.0                 # -0.0 and 0.0 are the same value
    test.loc[0, ["a", "b", "c", "city"]] = 0.0, 1.0, 2.0, val.loc[12, "city"]
    test.iloc[1, :4] = val.iloc[40, :4].to_numpy()                # eval-eval copy
    train.iloc[100, :4] = train.iloc[101, :4].to_numpy()          # within-split copies
    train.iloc[102, :4] = train.iloc[101, :4].to_numpy()
    paths = {}
    for name, f in (("train", train), ("val", val), ("test", test)):
        paths[name] = folder / f"{name}.parquet"
        f.to_parquet(paths[name], row_group_size=50)  # several row groups: several Spark partitions
    return paths


def test_tabular_parquet_same_report_as_local_via_cli(spark, tmp_path, rng):
    from leakguard.cli import main

    paths = _tables(tmp_path, rng)
    local = lg.audit({k: v for k, v in paths.items()}, labels="label", checks=["exact_duplicate"])
    out = tmp_path / "spark.json"
    code = main(["audit", str(paths["train"]), str(paths["val"]), str(paths["test"]), "--labels", "label",
                 "--checks", "exact_duplicate", "--engine", "spark", "--json", str(out), "--no-progress"])
    assert code == 1  # the verdict is fail: copies of training rows
    on_spark = lg.Report.from_json(out)
    assert on_spark.meta["spark"]["master"].startswith("local")
    assert _comparable(on_spark) == _comparable(local)
    # the planted leaks themselves, not only agreement
    assert on_spark.leaked("val").tolist() == list(range(13)) or on_spark.leaked("val").tolist() == list(range(12))
    conflicts = [f for f in on_spark.findings if f.extra.get("label_conflicts")]
    assert conflicts and conflicts[0].extra["label_conflicts"]["pairs"][0][:2] == [3, 0]
    assert any(f.splits == ("val", "test") for f in on_spark.findings)
    within = [f for f in on_spark.findings if f.splits == ("train",)]
    assert within and within[0].count == 2


def _images(folder, rng):
    from PIL import Image

    folder.mkdir()
    train, val = folder / "train", folder / "val"
    train.mkdir()
    val.mkdir()
    pics = [rng.integers(0, 256, size=(24, 20, 3), dtype=np.uint8) for _ in range(30)]
    for i, p in enumerate(pics):
        Image.fromarray(p).save(train / f"img_{i:02d}.png")
    Image.fromarray(pics[4]).save(train / "img_04_again.bmp")      # same pixels, other container
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, size=(24, 20, 3), dtype=np.uint8)).save(val / f"v_{i:02d}.png")
    Image.fromarray(pics[2]).save(val / "v_copy_a.png")
    Image.fromarray(pics[9]).convert("RGB").save(val / "v_copy_b.tiff")
    Image.fromarray(pics[9][:, :, 0]).save(val / "v_grey.png")       # grey: not a copy
    (val / "v_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # unreadable: skipped, counted
    (val / "notes.xyz").write_text("not an image")                     # unknown extension: listed
    return train, val


def test_image_folders_same_report_as_local(spark, tmp_path, rng):
    train, val = _images(tmp_path / "imgs", rng)
    splits = {"train": train, "val": val}
    local = lg.audit(splits, checks=["exact_duplicate"])
    on_spark = lg.audit(splits, checks=["exact_duplicate"], config=lg.AuditConfig(engine="spark", spark=spark))
    assert _comparable(on_spark) == _comparable(local)
    names = sorted(p.name for p in val.iterdir() if p.suffix != ".xyz")
    leaked = {names[i] for i in on_spark.leaked("val")}
    assert leaked == {"v_copy_a.png", "v_copy_b.tiff"}
    assert [s["file"].endswith("v_broken.png") for s in on_spark.skipped["val"] if s["index"] is not None] == [True]
    assert any(s["file"].endswith("notes.xyz") for s in on_spark.skipped["val"])
    assert sum(f.splits == ("train",) for f in on_spark.findings) == 1   # the .bmp copy inside train
    assert all(k in on_spark.samples and on_spark.samples[k].get("thumb") for k in local.samples)


def test_files_read_by_spark_from_uris(spark, tmp_path, rng):
    """Folders given as URIs (here file:, in production s3a:// or hdfs://) are read by Spark itself."""
    train, val = _images(tmp_path / "imgs", rng)
    local = lg.audit({"train": train, "val": val}, checks=["exact_duplicate"])
    on_spark = lg.audit({"train": train.as_uri(), "val": val.as_uri()}, checks=["exact_duplicate"],
                        config=lg.AuditConfig(engine="spark", spark=spark))
    assert [f.to_dict() for f in on_spark.findings] == [f.to_dict() for f in local.findings]
    assert [(s["index"], s["reason"]) for s in on_spark.skipped["val"]] == \
           [(s["index"], s["reason"]) for s in local.skipped["val"]]
    assert all(s["file"].startswith("file:") for s in on_spark.skipped["val"])
    thumbs = [v for v in on_spark.samples.values() if v.get("thumb")]
    assert thumbs and all(v["name"].startswith("file:") for v in thumbs)


def test_text_in_memory_same_report_as_local_and_unsupported_checks(spark, rng):
    words = "leak split model train data audit copy row test image text group".split()
    train = [" ".join(rng.choice(words, size=12)) for _ in range(80)]
    val = [" ".join(rng.choice(words, size=12)) for _ in range(30)]
    val[3] = "  " + train[10].replace(" ", "   ") + "\n"        # same text after whitespace folding
    val[7] = train[20]
    val[8] = "Cafe\u0301 " + train[21]                           # NFD ...
    train.append("Caf\u00e9 " + train[21])                        # ... equals NFC
    labels = {"train": rng.integers(0, 2, len(train)), "val": rng.integers(0, 2, len(val))}
    splits = {"train": train, "val": val}
    local = lg.audit(splits, labels=labels, checks=["exact_duplicate"])
    cfg = lg.AuditConfig(engine="spark", spark=spark)
    on_spark = lg.audit(splits, labels=labels, checks=["exact_duplicate"], config=cfg)
    assert _comparable(on_spark) == _comparable(local)
    assert on_spark.leaked("val").tolist() == [3, 7, 8]
    from leakguard.checks import available_checks, get_check
    from leakguard.search.spark_checks import runs_on_spark
    from leakguard.splits import build_splits

    built = build_splits(splits, labels=labels)
    others = [c for c in available_checks() if not runs_on_spark(c, "text") and get_check(c).applies(built)]
    if others:  # checks the Spark engine does not run: refused by name, listed when not named
        with pytest.raises(InputError, match="Spark engine"):
            lg.audit(splits, labels=labels, checks=[others[0]], config=cfg)


def _prose(rng, n_words=300):
    """Sentences over a vocabulary of made-up words (unrelated texts share few character 5-grams)."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, size=rng.integers(3, 9))) for _ in range(n_words)]
    return lambda k: " ".join(rng.choice(vocab, size=k))


def test_text_near_copies_same_as_local(spark, rng):
    """augmented_duplicate on text: LSH bands on Spark, the local Jaccard and threshold: same report."""
    sentence = _prose(rng)
    train = [sentence(30) for _ in range(120)]
    val = [sentence(30) for _ in range(40)]
    for k in range(6):  # near copies: two words dropped, a typo, case changed
        words = train[5 * k].split()
        del words[3], words[10]
        words[6] = words[6][:-1] + "x"
        val[k] = " ".join(words).upper() if k % 2 else " ".join(words)
    val[6] = train[40]                                      # an exact copy: reported once, by exact_duplicate
    train[100] = train[99] + " " + sentence(2)              # a near copy inside train (kept out of the null)
    train[7] = None                                         # unreadable: skipped, counted, indices kept
    splits = {"train": train, "val": val}
    checks = ["exact_duplicate", "augmented_duplicate"]
    local = lg.audit(splits, checks=checks)
    on_spark = lg.audit(splits, checks=checks, config=lg.AuditConfig(engine="spark", spark=spark))
    assert _comparable(on_spark) == _comparable(local)
    near = [f for f in on_spark.findings if f.check == "augmented_duplicate"]
    assert near and set(near[0].pairs["index_b"]) == set(range(6))
    assert near[0].pairs["index_a"].tolist() == [0, 5, 10, 15, 20, 25]
    assert on_spark.leaked("val", check="exact_duplicate").tolist() == [6]
    assert on_spark.meta["spark"]["not_run"] == []
    assert [(s["index"], s["file"]) for s in on_spark.skipped["train"]] == [(7, None)]


def test_image_augmented_copies_same_as_local(spark, tmp_path):
    """Image augmented_duplicate on Spark: hash band joins, the distributed kNN join, the backend's
    verification in the executors and its calibration on the driver give the local engine's report.

    The planted copies: flips, 90-degree turn, crops, photometric jitter, resize (hash candidates)
    and two small rotations that are more than 10 bits from every hash of their source, so only
    the kNN sources (rotated discs) make them candidates: without the kNN join Spark misses them.
    """
    from PIL import Image

    from leakguard.signatures.image import grey
    from leakguard.similarity.image_planting import augment, base_tiles

    tiles = [t for t in base_tiles(64, 3, seed=1) if grey(t).std() > 10]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(tiles))
    train, clean = [tiles[i] for i in order[:12]], [tiles[i] for i in order[12:20]]
    families = ["hflip", "rot90", "crop", "jitter", "vflip", "crop+jitter", "resize"]
    folders = {name: tmp_path / name for name in ("train", "val")}
    for f in folders.values():
        f.mkdir()
    for i, t in enumerate(train):
        Image.fromarray(t).save(folders["train"] / f"t{i:02d}.png")
    for k, fam in enumerate(families):      # val k is a copy of train k
        Image.fromarray(augment(train[k], fam, rng)).save(folders["val"] / f"v{k:02d}.png")
    Image.fromarray(train[9]).save(folders["val"] / "v07.png")        # exact copy: reported once
    for k in (10, 11):  # small rotations (val 8, 9): > 10 bits from every hash of theirs, kNN candidates only
        Image.fromarray(augment(train[k], "rotate", rng)).save(folders["val"] / f"v{k - 2:02d}.png")
    for k, t in enumerate(clean):            # unseen tiles of the same photos: hard negatives
        Image.fromarray(t).save(folders["val"] / f"w{k:02d}.png")
    checks = ["exact_duplicate", "augmented_duplicate"]
    # a calibration sample smaller than the training split: Spark calibrates on the images the
    # search reaches from it (band join + per-batch kNN), not on the whole split
    opts = {"augmented_duplicate": {"null_samples": 8}}
    local, on_spark = _audit_both(spark, folders, checks, opts)
    assert _comparable(on_spark) == _comparable(local)
    aug = [f for f in on_spark.findings if f.check == "augmented_duplicate"]
    assert aug, on_spark.findings
    found = dict(zip(aug[0].pairs["index_b"].tolist(), aug[0].pairs["index_a"].tolist()))
    assert sum(found.get(k) == k for k in range(len(families))) >= len(families) - 1, found
    assert found.get(8) == 10 and found.get(9) == 11, found           # the kNN-only rotations
    assert not set(found) - set(range(len(families))) - {8, 9}         # no clean tile linked
    assert on_spark.leaked("val", check="exact_duplicate").tolist() == [7]
    assert aug[0].extra["calibration"]["source"].startswith("calibrated on")
    assert on_spark.meta["spark"]["not_run"] == []


def _same_up_to_float32(a, b, path="report", tol=1e-6) -> None:
    """Two report JSON trees equal, floats within ``tol`` (kNN cosines are float32 BLAS products,
    whose last bits depend on the matrix shapes, see leakguard.search.spark_knn)."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= tol * max(1.0, abs(b)), \
            f"{path}: {a!r} != {b!r}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _same_up_to_float32(a[k], b[k], f"{path}.{k}", tol)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _same_up_to_float32(x, y, f"{path}[{i}]", tol)
    elif isinstance(a, str) and isinstance(b, str) and a != b:
        # titles and details print the threshold with 3 decimals: equal unless it sits on a rounding edge
        assert a == b, f"{path}: {a!r} != {b!r}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_image_semantic_duplicates_same_as_local(spark):
    """Image semantic_duplicate on Spark: the null and the search by the distributed kNN join
    (leakguard.search.spark_knn), the null_scores rule and the finding as locally; a calibration
    sample smaller than the training split, so the null's sampling is exercised."""
    from leakguard.signatures.image import grey
    from leakguard.similarity.image_planting import base_tiles, stereo_views

    tiles = [t for t in base_tiles(64, 3, seed=1) if grey(t).std() > 10]
    left, right = stereo_views(96)           # one scene from a moved camera: no augmentation explains it
    train = [left] + tiles[:30:2]
    val = [right] + tiles[1:30:2] + [tiles[4].copy()]   # the last one: an exact copy, reported once
    checks = ["exact_duplicate", "semantic_duplicate"]
    opts = {"semantic_duplicate": {"null_samples": 8}}
    splits = {"train": train, "val": val}
    local, on_spark = _audit_both(spark, splits, checks, opts, modality="image")
    _same_up_to_float32(_comparable(on_spark), _comparable(local))
    sem = [f for f in on_spark.findings if f.check == "semantic_duplicate"]
    assert sem and sem[0].pairs["index_b"].tolist() == [0] and sem[0].pairs["index_a"].tolist() == [0]
    assert sem[0].extra["calibration"]["source"].startswith("calibrated on 8 training images")
    assert on_spark.leaked("val", check="exact_duplicate").tolist() == [len(val) - 1]
    assert on_spark.meta["spark"]["not_run"] == []


def test_image_semantic_user_embedder_same_as_local(spark, tmp_path):
    """Image semantic_duplicate with a user's embedder on Spark: the function (defined here: pickled
    by value) runs in the executors on the canonical images the local engine gives it (PNG files,
    one unreadable), then the default search; the whole report equals the local one. A wrong output
    shape is the local error, raised on the driver."""
    from PIL import Image

    from leakguard.signatures.image import grey
    from leakguard.similarity.image_planting import base_tiles

    def _block_means(images):  # defined here: pickled by value, as a script's function
        """A user's image embedder: the grey 8x8 block means of each image, less their mean."""
        out = []
        for im in images:
            g = np.asarray(im, np.float32)[..., :3].mean(axis=2)
            blocks = np.array([b.mean() for rows in np.array_split(g, 8, axis=0) for b in np.array_split(rows, 8, axis=1)])
            out.append(blocks - blocks.mean())
        return np.asarray(out, np.float32)

    tiles = [t for t in base_tiles(64, 3, seed=2) if grey(t).std() > 10]
    shifted = [np.clip(t.astype(np.int16) + 9, 0, 255).astype(np.uint8) for t in tiles[:3]]  # brighter copies

    def files(name, images):
        out = []
        for i, im in enumerate(images):
            p = tmp_path / f"{name}{i:03d}.png"
            Image.fromarray(im).save(p) if im is not None else p.write_bytes(b"not a png")
            out.append(str(p))
        return out

    train = files("t", tiles[:24] + [None])
    val = files("v", tiles[24:40] + shifted + [tiles[5]])
    splits = {"train": train, "val": val}
    checks = ["exact_duplicate", "semantic_duplicate"]
    opts = {"semantic_duplicate": {"null_samples": 10}}
    local = lg.audit(splits, modality="image", checks=checks,
                     config=lg.AuditConfig(progress=False, embedder=_block_means, check_options=opts))
    on_spark = lg.audit(splits, modality="image", checks=checks,
                        config=lg.AuditConfig(engine="spark", spark=spark, progress=False, embedder=_block_means,
                                              check_options=opts))
    assert on_spark.meta["spark"]["not_run"] == []
    _same_up_to_float32(_comparable(on_spark), _comparable(local))
    sem = [f for f in on_spark.findings if f.check == "semantic_duplicate"]
    assert sem and sem[0].extra["embedder"] == "_block_means"
    found = set(zip(sem[0].pairs["index_b"].astype(int), sem[0].pairs["index_a"].astype(int)))
    assert {(15 + k, k) for k in range(3)} <= found, found  # the brighter copies (val 15-17 of train 0-2)
    assert len(val) - 1 not in set(sem[0].pairs["index_b"].astype(int))  # the exact copy: reported once
    with pytest.raises(InputError, match=r"shape \(2,\) for 2 images of split 'train'"):
        lg.audit(splits, modality="image", checks=["semantic_duplicate"],
                 config=lg.AuditConfig(engine="spark", spark=spark, progress=False,
                                       embedder=lambda images: np.zeros(len(images))))


def test_knn_join_equals_local_nearest(spark, rng):
    """The distributed kNN: every query's k nearest over a partitioned index, as the local search
    finds them (cosine and L2), identical vectors tied at the k-th place all kept."""
    from leakguard.search.knn import nearest
    from leakguard.search.spark_knn import knn_join

    n, n_q, d = 900, 70, 12
    X = rng.normal(size=(n, d)).astype(np.float32)
    Q = rng.normal(size=(n_q, d)).astype(np.float32)
    X[[5, 300, 700]] = X[450]          # four identical index vectors
    Q[0] = X[450]
    ids = np.arange(n) * 3 + 1          # sample numbers need not be positions
    frame = spark.createDataFrame(pd.DataFrame({"_lg_idx": ids, "vec": [x.tobytes() for x in X]})).repartition(3)

    def vectors(pdf):
        return {"v": np.stack([np.frombuffer(bytes(b), np.float32) for b in pdf["vec"]])}

    for metric in ("cosine", "l2"):
        got = knn_join(spark, frame, vectors, [("v", Q), ("v", -Q)], k=3, metric=metric, block_rows=32).toPandas()
        for s, q_mat in enumerate([Q, -Q]):
            sc, ix = nearest(X, q_mat, k=3, metric=metric)
            for r in range(n_q):
                mine = got[(got["search"] == s) & (got["q"] == r)]
                assert set(ids[ix[r]]) <= set(mine["index"]), (metric, s, r)
                ranked = np.sort(mine["score"].to_numpy())
                ranked = ranked[::-1] if metric == "cosine" else ranked
                assert np.allclose(ranked[:3], sc[r], atol=1e-5), (metric, s, r)
                assert np.allclose(ranked[3:], sc[r, -1], atol=1e-6), (metric, s, r)  # more: ties only
        top = got[(got["search"] == 0) & (got["q"] == 0)]
        assert set(top["index"]) == set(ids[[5, 300, 450, 700]])    # the tie at the 3rd place: all four


def test_groups_and_time_on_spark_same_as_local(spark, tmp_path, rng):
    """group_overlap / temporal_overlap: ids and times from Parquet columns, links from exact copies."""
    def frame(n, first_day, patients):
        f = pd.DataFrame(rng.normal(size=(n, 2)), columns=["a", "b"])
        f["patient"] = rng.choice(patients, size=n)
        f["day"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(first_day + rng.integers(0, 30, n), unit="D")
        return f

    train = frame(150, 0, [f"p{i}" for i in range(30)])
    val = frame(50, 20, [f"p{i}" for i in range(28, 45)])    # p28, p29 in both; days overlap
    val.iloc[45:, :2] = train.iloc[:5, :2].to_numpy()         # copies under other patients: inferred groups
    paths = {}
    for name, f in (("train", train), ("val", val)):
        paths[name] = tmp_path / f"{name}.parquet"
        f.to_parquet(paths[name], row_group_size=40)
    checks = ["exact_duplicate", "group_overlap", "temporal_overlap"]
    kw = dict(groups="patient", timestamps="day", checks=checks)
    local = lg.audit(dict(paths), **kw)
    on_spark = lg.audit(dict(paths), config=lg.AuditConfig(engine="spark", spark=spark), **kw)
    assert _comparable(on_spark) == _comparable(local)
    by = on_spark.by_check()
    assert {"exact_duplicate", "group_overlap", "temporal_overlap"} <= set(by)
    shared = set(np.flatnonzero(val["patient"].isin(["p28", "p29"])))
    assert shared <= set(on_spark.leaked("val", check="group_overlap"))


def test_band_join_finds_every_pair_within_radius(spark, rng):
    """Multi-index hashing as an equi-join: complete within the radius, exact after verification."""
    from leakguard.search.spark import IDX, BandLayout, band_join

    n_train, n_eval, radius = 300, 120, 6
    train = rng.integers(0, 256, size=(n_train, 8), dtype=np.uint8)
    evals = rng.integers(0, 256, size=(n_eval, 8), dtype=np.uint8)
    for k in range(40):  # near copies with 0..radius+2 flipped bits
        code = np.unpackbits(train[k * 7])
        flip = rng.choice(64, size=k % (radius + 3), replace=False)
        code[flip] ^= 1
        evals[k] = np.packbits(code)

    def frame(split, codes):
        return spark.createDataFrame(pd.DataFrame({"split": split, IDX: np.arange(len(codes)),
                                                   "code": [c.tobytes() for c in codes]}))

    bits_t = np.unpackbits(train, axis=1).astype(bool)
    bits_e = np.unpackbits(evals, axis=1).astype(bool)
    dist = (bits_e[:, None, :] != bits_t[None, :, :]).sum(axis=2)
    want_hamming = {(int(t), int(e), float(dist[e, t])) for e, t in zip(*np.nonzero(dist <= radius))}
    assert len(want_hamming) >= 25

    # MinHash bands: a pair is kept when it shares a band and enough of its values agree
    sk_t = rng.integers(0, 2**62, size=(200, 32), dtype=np.int64)
    sk_e = rng.integers(0, 2**62, size=(50, 32), dtype=np.int64)
    for k in range(20):
        keep = rng.random(32) < 0.5 + k / 40
        sk_e[k] = np.where(keep, sk_t[k * 3], sk_e[k])
    agree = (sk_e[:, None, :] == sk_t[None, :, :])
    band_hit = agree.reshape(50, 200, 8, 4).all(axis=3).any(axis=2)
    share = agree.mean(axis=2)
    want_minhash = {(int(t), int(e), float(share[e, t])) for e, t in zip(*np.nonzero(band_hit & (share >= 0.5)))}
    assert len(want_minhash) >= 8

    from pyspark.sql import functions as F

    layouts = {  # radius + 1 bands (exact band match); 3 uneven bands, each probed at 2 bits
        "exact bands": (BandLayout.hamming(64, radius), train, evals),
        "uneven bands": (BandLayout.hamming(64, radius, n_bands=3), train, evals),
        "minhash": (BandLayout.minhash(32, n_bands=8, min_similarity=0.5), sk_t.astype(">i8"), sk_e.astype(">i8")),
    }
    joined = None
    for tag, (layout, a, b) in layouts.items():
        assert layout.kind == "minhash" or layout.n_bands * (layout.probe_bits + 1) >= radius + 1
        part = band_join(frame("train", a), frame("val", b), layout).withColumn("tag", F.lit(tag))
        joined = part if joined is None else joined.unionByName(part)
    # a crowded bucket: 30 blank training codes; capped at 20 members, the blank query finds none of
    # them, while the cap leaves every other bucket (and so every other pair) alone
    blank_t = np.vstack([train, np.zeros((30, 8), np.uint8)])
    blank_e = np.vstack([evals, np.zeros((1, 8), np.uint8)])
    for tag, cap in (("blank uncapped", None), ("blank capped", 20)):
        part = band_join(frame("train", blank_t), frame("val", blank_e), BandLayout.hamming(64, radius),
                         max_bucket=cap).withColumn("tag", F.lit(tag))
        joined = joined.unionByName(part)
    got = joined.toPandas()  # one action for the three joins
    assert [lo_hi[1] - lo_hi[0] for lo_hi in layouts["uneven bands"][0].band_bits()] == [21, 22, 21]
    blank = {(n_train + k, n_eval, 0.0) for k in range(30)}
    for tag, want in (("exact bands", want_hamming), ("uneven bands", want_hamming), ("minhash", want_minhash),
                      ("blank uncapped", want_hamming | blank), ("blank capped", want_hamming)):
        rows = got[got.tag == tag]
        assert {(int(r.index_a), int(r.index_b), float(r.score)) for r in rows.itertuples()} == want, tag


def test_bad_inputs_name_the_split(spark, tmp_path, rng):
    cfg = lg.AuditConfig(engine="spark", spark=spark)
    paths = _tables(tmp_path, rng)
    with pytest.raises(InputError, match="split 'train'.*no column 'nope'"):
        lg.audit({"train": paths["train"], "val": paths["val"]}, labels="nope", checks=["exact_duplicate"],
                 config=cfg)
    with pytest.raises(InputError, match="training split 'train'"):
        lg.audit({"tr": paths["train"], "val": paths["val"]}, config=cfg)


def test_dataframes_and_uri_lists(spark, tmp_path, rng):
    """pandas and Spark DataFrames, and lists of file URIs, give the local engine's findings."""
    train = pd.DataFrame(rng.integers(0, 4, size=(120, 3)).astype(float), columns=["a", "b", "c"])
    train["tag"] = [f"t{i % 5}" for i in range(120)]
    val = train.sample(40, random_state=1).reset_index(drop=True)
    val.loc[:19, "a"] += 100.0  # half of them changed: not copies any more
    local = lg.audit({"train": train, "val": val}, checks=["exact_duplicate"])
    cfg = lg.AuditConfig(engine="spark", spark=spark)
    from_pandas = lg.audit({"train": train, "val": val}, checks=["exact_duplicate"], config=cfg)
    from_spark = lg.audit({"train": spark.createDataFrame(train), "val": spark.createDataFrame(val)},
                          checks=["exact_duplicate"], config=cfg)
    want = [f.to_dict() for f in local.findings]
    assert want and [f.to_dict() for f in from_pandas.findings] == want
    assert [f.to_dict() for f in from_spark.findings] == want
    assert set(from_pandas.leaked("val")) >= set(range(20, 40))

    folder, val_dir = _images(tmp_path / "imgs", rng)
    files = sorted(p for p in val_dir.iterdir() if p.suffix == ".png")
    local = lg.audit({"train": folder, "val": files}, checks=["exact_duplicate"])
    on_spark = lg.audit({"train": folder, "val": [p.as_uri() for p in files]}, checks=["exact_duplicate"],
                        config=cfg)
    assert [f.to_dict() for f in on_spark.findings] == [f.to_dict() for f in local.findings]
    assert len(on_spark.leaked("val")) == 1


def _edited_table(rng, n_train=160):
    """A training table with awkward columns (ties, NaN cells, a column whose IQR is zero, an even
    row count) and a validation table holding edited and jittered copies of training rows."""
    train = pd.DataFrame(rng.normal(size=(n_train, 6)), columns=[f"f{j}" for j in range(6)])
    train["f1"] = np.round(train["f1"] * 2) / 2                     # heavy ties
    train.loc[rng.choice(n_train, 9, replace=False), "f2"] = np.nan  # missing cells (take the median)
    train["sparse"] = np.where(rng.random(n_train) < 0.8, 0.0, rng.normal(size=n_train))  # IQR 0: std
    train["flag"] = rng.random(n_train) < 0.3
    train["site"] = [f"s{i % 5}" for i in range(n_train)]
    val = pd.DataFrame(rng.normal(size=(30, 6)), columns=[f"f{j}" for j in range(6)])
    val["sparse"], val["flag"], val["site"] = 0.0, False, [f"s{i % 5}" for i in range(30)]
    for v, t in ((0, 5), (1, 17), (2, 40)):        # the same record with 2 of 9 fields changed
        val.iloc[v] = train.iloc[t]
        val.loc[v, ["f0", "f4"]] = [9.0, -7.0]
    val.iloc[3] = train.iloc[77]                       # a jittered copy
    val.loc[3, ["f0", "f3", "f5"]] += 0.001
    return train, val


@pytest.mark.parametrize("path", ["exhaustive", "knn_blocks"])
def test_tabular_semantic_same_as_local(spark, path, monkeypatch):
    """Every training row scored (small data), then the kNN-per-block candidates larger data uses."""
    if path == "knn_blocks":
        monkeypatch.setattr("leakguard.similarity.tabular.EXHAUSTIVE_CELLS", 0)
    rng = np.random.default_rng(4)
    train, val = _edited_table(rng)
    cfg = dict(check_options={"semantic_duplicate": {"null_samples": 100}})
    local = lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"], config=lg.AuditConfig(**cfg))
    on_spark = lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"],
                        config=lg.AuditConfig(engine="spark", spark=spark, **cfg))
    assert on_spark.meta["spark"]["not_run"] == []
    found = {(int(t), int(e)) for f in local.findings for t, e in zip(f.pairs["index_a"], f.pairs["index_b"])}
    # the kNN blocks (2 here) miss a record whose 2 changed fields fall in both: the local rule too
    assert {(5, 0), (17, 1), (40, 2)} <= found if path == "exhaustive" else (17, 1) in found
    assert _comparable(on_spark) == _comparable(local)


def test_tabular_semantic_user_embedder_same_as_local(spark):
    """Tabular semantic_duplicate with a user's embedder on Spark (a fitted PCA in a callable class
    defined here: pickled by value), called on batches of rows in the executors, then the local
    rule (cosine null, nearest training row, rows linked by exact_duplicate left out); the whole
    report equals the local one. A wrong output shape is the local error, raised on the driver."""
    from sklearn.decomposition import PCA

    class PcaRows:
        """The numeric columns (NaN as 0), projected on the training split's 4 main components."""

        def __init__(self, train):
            self.columns = [c for c in train.columns if train[c].dtype.kind == "f"]
            self.pca = PCA(4, random_state=0).fit(train[self.columns].fillna(0.0).to_numpy())

        def __call__(self, frame):
            return self.pca.transform(frame[self.columns].astype(float).fillna(0.0).to_numpy())

    rng = np.random.default_rng(4)
    train, val = _edited_table(rng)
    val.iloc[4] = train.iloc[9]                                  # an exact copy: linked once, by exact_duplicate
    val.iloc[5] = train.iloc[60]
    val.loc[5, ["f0", "f3"]] *= 1.05                              # a scaled copy
    splits, checks = {"train": train, "val": val}, ["exact_duplicate", "semantic_duplicate"]
    embedder = PcaRows(train)
    local = lg.audit(splits, checks=checks, config=lg.AuditConfig(progress=False, embedder=embedder))
    on_spark = lg.audit(splits, checks=checks,
                        config=lg.AuditConfig(engine="spark", spark=spark, progress=False, embedder=embedder))
    assert on_spark.meta["spark"]["not_run"] == []
    _same_up_to_float32(_comparable(on_spark), _comparable(local))
    sem = [f for f in on_spark.findings if f.check == "semantic_duplicate"]
    assert sem and sem[0].extra["threshold"] > 0.5
    found = set(zip(sem[0].pairs["index_b"].astype(int), sem[0].pairs["index_a"].astype(int)))
    assert {(3, 77), (5, 60)} <= found and 4 not in {b for b, _ in found}, found
    with pytest.raises(InputError, match=r"shape \(2,\) for 2 rows of split 'train'"):
        lg.audit(splits, checks=["semantic_duplicate"],
                 config=lg.AuditConfig(engine="spark", spark=spark, progress=False, embedder=lambda f: np.zeros(len(f))))


def test_tabular_scaling_on_spark_equals_numpy(spark):
    """The scaling from Spark's statistics is numpy's to the bit; a plain Spark percentile is not."""
    from pyspark.sql import functions as F

    from leakguard.search.spark_tabular import robust_scaling_on_spark
    from leakguard.similarity.tabular import RobustScaling, _numeric

    rng = np.random.default_rng(7)
    for n in (1, 2, 7, 26, 48, 601, 1000):  # odd, even, ranks percentile() cannot hit (26, 48), numpy >= 600 path
        frame = pd.DataFrame({"x": rng.normal(size=n) * 1e3, "ties": rng.integers(0, 4, n).astype(float),
                              "tiny": rng.normal(size=n) * 1e-9 + 1.0,
                              "mostly0": np.where(rng.random(n) < 0.9, 0.0, rng.normal(size=n))})
        frame.loc[rng.choice(n, min(3, n - 1), replace=False), "x"] = np.nan
        frame["allnan"] = np.nan
        local = RobustScaling().fit(_numeric(frame, list(frame.columns))[0])
        sdf = spark.createDataFrame(frame.reset_index().rename(columns={"index": "_lg_idx"}))
        got, num, _ = robust_scaling_on_spark(sdf, list(frame.columns))
        assert num == list(frame.columns)
        for attr in ("center", "spread", "used"):
            assert np.array_equal(getattr(got, attr), getattr(local, attr)), (n, attr)
    # Spark's own interpolation (its arithmetic, not numpy's) differs in the last bits somewhere:
    # the reason the scaling asks Spark for order statistics only
    vals = pd.DataFrame({"v": rng.normal(size=(1001,)) * 1e3 + 0.1})
    sdf = spark.createDataFrame(vals)
    qs = [0.1 * i + 0.013 for i in range(1, 9)]
    theirs = sdf.agg(F.percentile("v", qs).alias("p")).collect()[0]["p"]
    assert not np.array_equal(np.asarray(theirs), np.nanpercentile(vals["v"], [q * 100 for q in qs]))


def test_tabular_augmented_same_as_local(spark):
    """Jittered copies: the same pairs and report; distances are FAISS float32 values (within 1e-6)."""
    rng = np.random.default_rng(5)
    train, val = _edited_table(rng)
    checks = ["exact_duplicate", "augmented_duplicate"]
    local = lg.audit({"train": train, "val": val}, checks=checks)
    on_spark = lg.audit({"train": train, "val": val}, checks=checks, config=lg.AuditConfig(engine="spark", spark=spark))
    assert on_spark.meta["spark"]["not_run"] == []
    aug = [f for f in local.findings if f.check == "augmented_duplicate"]
    assert aug and (77, 3) in set(zip(aug[0].pairs["index_a"], aug[0].pairs["index_b"]))
    _same_up_to_float32(json.loads(on_spark.to_json()) | {"meta": None}, json.loads(local.to_json()) | {"meta": None})
    assert _comparable(on_spark)["meta"] == _comparable(local)["meta"]


def _audio_clips(folder):
    """12 training clips (3 voices and tones), 3 clean validation clips, 4 augmented copies, one
    two-speaker clip sharing its first speaker's part with a training clip, one exact copy."""
    from leakguard.similarity.synthetic import augment_audio, speaker_voice, speech_like, tone_clip, write_wavs

    rate, rng = 16000, np.random.default_rng(3)
    voices = [speaker_voice(rng) for _ in range(3)]
    train = [tone_clip(rng, rng.uniform(1.5, 2.5), rate) if i % 6 == 5 else
             speech_like(rng, rng.uniform(1.5, 2.5), rate, voices[i % 3]) for i in range(12)]
    val = [speech_like(rng, rng.uniform(1.5, 2.5), rate, voices[i % 3]) for i in range(3)]
    for family, src in (("gain", 0), ("noise", 1), ("shift", 2), ("remove_silence", 3), ("pitch_shift", 7)):
        val.append(augment_audio(train[src], rate, rng, family))          # val 3..7
    kept = speech_like(rng, 3.0, rate, voices[0])
    train[4] = np.concatenate([kept, speech_like(rng, 2.0, rate, voices[1])])
    val.append(np.concatenate([kept, speech_like(rng, 2.0, rate, voices[2])]))  # val 8: partial of train 4
    val.append(train[6].copy())                                            # val 9: exact copy of train 6
    write_wavs(folder / "train", train, rate)
    write_wavs(folder / "val", val, rate)
    return {"train": folder / "train", "val": folder / "val"}


def test_audio_augmented_and_partial_same_as_local(spark, tmp_path, monkeypatch):
    """Audio near-copies and shared segments on Spark: window descriptors and alignments in the
    executors, candidates by the kNN join (leakguard.search.spark_audio), the local _alignments
    and backends on the driver. A calibration sample smaller than the training split (the null's
    sampling and the levels of the training clips the copies point at), and query chunks of 8
    recordings (two kNN joins per split)."""
    import leakguard.search.spark_audio as spark_audio

    monkeypatch.setattr(spark_audio, "QUERY_RECORDINGS", 8)
    splits = _audio_clips(tmp_path)
    checks = ["exact_duplicate", "augmented_duplicate", "partial_duplicate"]
    opts = {"augmented_duplicate": {"null_samples": 8}}
    local, on_spark = _audit_both(spark, splits, checks, opts)
    assert on_spark.meta["spark"]["not_run"] == []
    assert _comparable(on_spark) == _comparable(local)
    pairs = {c: set(zip(f.pairs["index_a"].tolist(), f.pairs["index_b"].tolist()))
             for c, f in ((f.check, f) for f in on_spark.findings)}
    assert pairs["augmented_duplicate"] == {(0, 3), (1, 4), (2, 5), (3, 6), (7, 7)}
    assert pairs["partial_duplicate"] == {(4, 8)}
    assert pairs["exact_duplicate"] == {(6, 9)}


def test_audio_semantic_same_as_local(spark):
    """Audio semantic_duplicate on Spark: the training statistics' mean and spread streamed in
    sample order (numpy's float32 sums, to the bit), the null and the search by the kNN join, the
    local threshold and finding. A later, non-overlapping excerpt of a training field recording is
    found; an exact copy is reported once. Cosines are FAISS float32 values (within 1e-6)."""
    from leakguard.similarity.synthetic import soundscape, speaker_voice, speech_like, tone_clip

    rate, rng = 16000, np.random.default_rng(21)
    recordings = [soundscape(rng, 8.0, rate) for _ in range(12)]
    voices = [speaker_voice(rng) for _ in range(2)]
    train = [(r[:3 * rate], rate) for r in recordings]
    train += [(speech_like(rng, 2.0, rate, voices[i % 2]), rate) for i in range(4)]
    train += [(tone_clip(rng, 2.0, rate), rate)]
    val = [(soundscape(rng, 3.0, rate), rate) for _ in range(3)] + [(speech_like(rng, 2.0, rate, voices[0]), rate)]
    val += [(recordings[k][5 * rate:8 * rate], rate) for k in range(3)]     # val 4..6: later excerpts
    val.append(train[13])                                                    # val 7: exact copy
    splits = {"train": train, "val": val}
    checks = ["exact_duplicate", "semantic_duplicate"]
    local, on_spark = _audit_both(spark, splits, checks, modality="audio")
    assert on_spark.meta["spark"]["not_run"] == []
    _same_up_to_float32(_comparable(on_spark), _comparable(local))
    sem = on_spark.pairs(check="semantic_duplicate")
    found = set(zip(sem["index_b"].astype(int), sem["index_a"].astype(int)))
    assert found <= {(4, 0), (5, 1), (6, 2)} and len(found) >= 2, found   # the local engine finds 2 of 3 here
    assert 7 not in set(sem["index_b"].astype(int)) and on_spark.leaked("val", check="exact_duplicate").tolist() == [7]


def test_audio_semantic_user_embedder_same_as_local(spark):
    """Audio semantic_duplicate with a user's embedder on Spark: the function (defined here: pickled
    by value) gets the canonical (wave, rate) of the recordings the local check embeds (readable,
    some sound: a silent one left out) in the executors, its vectors used as they are; the whole
    report equals the local one. A wrong output shape is the local error, raised on the driver."""
    from leakguard.similarity.synthetic import soundscape

    def band_energies(items):  # log energy in 32 bands of each recording's spectrum, less its mean
        out = []
        for wave, rate in items:
            power = np.abs(np.fft.rfft(wave)) ** 2
            bands = np.log(np.array([b.sum() for b in np.array_split(power, 32)]) + 1e-9)
            out.append(bands - bands.mean())
        return np.asarray(out, np.float32)

    rate, rng = 8000, np.random.default_rng(5)
    recordings = [soundscape(rng, 6.0, rate) for _ in range(14)]
    train = [(r[:3 * rate], rate) for r in recordings[:12]] + [(np.zeros(rate, np.float32), rate)]  # + silence
    val = [(r[:3 * rate], rate) for r in recordings[12:]] + [(recordings[k][3 * rate:], rate) for k in range(3)]
    val.append(train[4])                                                     # an exact copy: reported once
    splits, checks = {"train": train, "val": val}, ["exact_duplicate", "semantic_duplicate"]
    local = lg.audit(splits, modality="audio", checks=checks,
                     config=lg.AuditConfig(progress=False, embedder=band_energies))
    on_spark = lg.audit(splits, modality="audio", checks=checks,
                        config=lg.AuditConfig(engine="spark", spark=spark, progress=False, embedder=band_energies))
    assert on_spark.meta["spark"]["not_run"] == []
    _same_up_to_float32(_comparable(on_spark), _comparable(local))
    sem = on_spark.pairs(check="semantic_duplicate")
    found = set(zip(sem["index_b"].astype(int), sem["index_a"].astype(int)))
    assert found == {(2, 0), (3, 1), (4, 2)}, found  # the later excerpts; the exact copy (val 5) not again
    with pytest.raises(InputError, match=r"shape \(2,\) for 2 recordings of split 'train'"):
        lg.audit(splits, modality="audio", checks=["semantic_duplicate"],
                 config=lg.AuditConfig(engine="spark", spark=spark, progress=False,
                                       embedder=lambda items: np.zeros(len(items))))


def test_streamed_mean_and_spread_equal_numpy(spark):
    """The audio semantic check's standardisation on Spark: numpy's float32 mean and std along axis
    0, to the bit, from rows streamed in sample order in chunks (here 7 rows, 3 partitions, rows
    stored out of order); a float64 mean rounded to float32 differs."""
    from leakguard.search.spark_audio import STATS, _streamed_mean_std

    rng = np.random.default_rng(8)
    X = (rng.normal(size=(50, 168)) * rng.uniform(0.1, 40, 168) + rng.uniform(-60, 0, 168)).astype(np.float32)
    order = rng.permutation(len(X))
    frame = spark.createDataFrame([(int(i), X[i].tobytes()) for i in order],
                                  f"_lg_idx long, {STATS} binary").repartition(3)
    mu, sd = _streamed_mean_std(frame, len(X), chunk=7)
    assert np.array_equal(mu, X.mean(axis=0)) and np.array_equal(sd, X.std(axis=0))
    assert not np.array_equal(X.astype(np.float64).mean(axis=0).astype(np.float32), X.mean(axis=0))


def test_series_augmented_same_as_local(spark):
    """Jittered copies of series on Spark: the profile signature in the executors, the tabular
    scaling / null / kNN path with digests as exact keys; an unreadable training series (so the
    null's sample positions are not indices), an empty one (an all-NaN profile), a copy inside
    train. Distances are FAISS float32 values (within 1e-6)."""
    from leakguard.similarity.synthetic import random_series

    rng = np.random.default_rng(1)
    series = random_series(rng, 70, length=90)
    train, clean = series[:60], series[60:]
    train[5] = ["not", "a", "number"]                       # unreadable: skipped, counted
    train[7] = np.zeros(0)                                  # empty: an all-NaN profile
    train[9] = train[8].copy()                              # an exact copy inside train
    sources = [3, 11, 20, 33, 47, 58]
    copies = [train[s] + rng.normal(size=len(train[s])) * 0.05 for s in sources]
    val = clean + copies + [train[40].copy()]
    splits = {"train": train, "val": val}
    checks = ["exact_duplicate", "augmented_duplicate"]
    local, on_spark = _audit_both(spark, splits, checks, modality="series")
    assert on_spark.meta["spark"]["not_run"] == []
    assert [s["index"] for s in on_spark.skipped["train"]] == [5]
    _same_up_to_float32(_comparable(on_spark), _comparable(local))
    aug = on_spark.pairs(check="augmented_duplicate")
    assert set(zip(aug["index_b"].astype(int), aug["index_a"].astype(int))) == {
        (len(clean) + k, s) for k, s in enumerate(sources)}


def test_image_partial_same_as_local(spark):
    """Image partial_duplicate (same-scale tiles) on Spark: patch codes exploded in the executors,
    the rare-code filter and the code join in Spark, each pair's offset votes by the local
    offset_votes, the local pick, share and finding on the driver. Three splits, so an evaluation
    split is also checked against an earlier one; an exact copy is reported once."""
    from leakguard.similarity.image_planting import base_tiles, overlapping_tiles, photo

    rng = np.random.default_rng(0)
    train, val, test = [], [], []
    for name in ["astronaut", "coffee", "chelsea", "camera"]:
        a, b = overlapping_tiles(photo(name), 96, rng)[:2]
        train.append(a)
        val.append(b)
    a, b = overlapping_tiles(photo("immunohistochemistry"), 96, rng)[:2]
    val.append(a)                                  # val 4 overlaps test 0: evaluation x evaluation
    test.append(b)
    neg = base_tiles(96, 2, photos=("brick", "grass", "coins"), seed=5)
    train += neg[::2]
    val += neg[1::2]
    test.append(train[1].copy())                   # test 1: an exact copy of train 1
    splits = {"train": train, "val": val, "test": test}
    checks = ["exact_duplicate", "partial_duplicate"]
    local, on_spark = _audit_both(spark, splits, checks, modality="image")
    assert on_spark.meta["spark"]["not_run"] == []
    assert _comparable(on_spark) == _comparable(local)
    part = on_spark.pairs(check="partial_duplicate")
    found = set(zip(part["split_a"], part["index_a"].astype(int), part["split_b"], part["index_b"].astype(int)))
    # the four tile pairs, the evaluation x evaluation pair, and the tile the exact copy of train 1
    # shares with val 1 (the copy itself is reported once, by exact_duplicate)
    assert found == {("train", i, "val", i) for i in range(4)} | {("val", 4, "test", 0), ("val", 1, "test", 1)}
    assert on_spark.leaked("test", check="exact_duplicate").tolist() == [1]
    # the any-scale path (resized=True) runs on Spark too (was an error until session 7; more in
    # tests/test_spark_image_partial.py): the same report, the keypoint calibration in the finding
    local, on_spark = _audit_both(spark, splits, ["partial_duplicate"], {"partial_duplicate": {"resized": True}},
                                  modality="image")
    assert _comparable(on_spark) == _comparable(local)
    assert "calibration" in next(f for f in on_spark.findings if f.check == "partial_duplicate").extra


def test_text_partial_same_as_local(spark):
    """Shared passages on text: postings, fingerprint join and shared runs on Spark, the local null,
    boilerplate bar and finding: whole report JSON equal."""
    rng = np.random.default_rng(11)
    words = _prose(rng)
    licence = "this document is released under the terms of the open licence version two"
    train = [words(60) + (" " + licence if j % 3 == 0 else "") for j in range(90)]  # boilerplate: 30 texts
    val = [words(60) for _ in range(30)]
    for k in range(5):  # a passage of 14..30 words of a training text inside new text
        w = train[4 * k].split()
        val[k] = f"{words(20)} {' '.join(w[5 + 3 * k:19 + 7 * k])} {words(20)}"
    # a passage of 16 words followed by the boilerplate, which never counts
    val[5] = f"{words(20)} {' '.join(train[21].split()[5:21])} {licence} {words(10)}"
    train[60] = " ".join(train[59].split()[:30]) + " " + words(30)  # a passage two training texts share
    train[50] = train[49]                      # an exact copy inside train (not the null)
    val[10] = train[70]                        # an exact copy: reported once, by exact_duplicate
    train[7] = None                            # unreadable: skipped, indices kept
    splits = {"train": train, "val": val, "test": [words(40), " ".join(train[33].split()[10:40]), None]}
    checks = ["exact_duplicate", "partial_duplicate"]
    local = lg.audit(splits, checks=checks)
    on_spark = lg.audit(splits, checks=checks, config=lg.AuditConfig(engine="spark", spark=spark))
    assert on_spark.meta["spark"]["not_run"] == []
    assert _comparable(on_spark) == _comparable(local)
    part = on_spark.pairs(check="partial_duplicate")
    found = set(zip(part["split_b"], part["index_a"].astype(int), part["index_b"].astype(int)))
    assert found == {("val", 4 * k, k) for k in range(5)} | {("val", 21, 5), ("test", 33, 1)}
    val_pairs = [f.pairs for f in on_spark.findings if f.check == "partial_duplicate" and "val" in f.splits][0]
    # 16 words, and 5 more here: the passage ends with the word train 21 has before its licence too, and
    # that 6-gram (word + licence start) is in 2 training texts, not boilerplate; all 13 licence words: 29
    assert val_pairs.loc[val_pairs["index_b"] == 5, "passage_words"].tolist() == [21]


def test_image_crop_found_only_by_its_crop_window_same_as_local(spark, tmp_path, monkeypatch):
    """The local candidate search adds, per evaluation image, the owner of the training crop window
    nearest its 16 px thumbnail. On Spark each window is its own kNN source, so the group of the
    evaluation image holds that owner: the bench's seed-1 crop (evaluation image 62, a crop of
    training tile 88 that the local search reaches only through its crop window) is linked by both
    engines, with the same report. This data does not isolate the window sources: one of the other
    kNN sources' nearest images on Spark (uncapped in the group) is tile 88 too, so the test also
    passes without them; it checks that the engines agree on a window-found crop."""
    from pathlib import Path

    from PIL import Image

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    bench = pytest.importorskip("bench_image_similarity")
    train, evals, truth, family = bench.build(20, 10, 1)
    assert family[62] == "crop" and truth[62] == 88
    folders = {"train": tmp_path / "train", "val": tmp_path / "val"}
    for f in folders.values():
        f.mkdir()
    for i, t in enumerate(train):
        Image.fromarray(t).save(folders["train"] / f"t{i:03d}.png")
    Image.fromarray(evals[62]).save(folders["val"] / "v000.png")
    checks = ["exact_duplicate", "augmented_duplicate"]
    # k=1: the smallest groups (each kNN source keeps its nearest image)
    opts = {"augmented_duplicate": {"k": 1}}
    local, on_spark = _audit_both(spark, folders, checks, opts)
    pairs = local.pairs(check="augmented_duplicate")
    assert list(zip(pairs["index_a"].astype(int), pairs["index_b"].astype(int))) == [(88, 0)]
    _same_up_to_float32(_comparable(on_spark), _comparable(local))


def test_text_semantic_same_as_local(spark):
    """Rewordings of real prose (standard-library docstrings) on Spark: the TF-IDF fit on the driver,
    the embedding, the null, the kNN join and the float64 rescoring in the executors; the report is
    the local one (the threshold within 1e-6: FAISS float32 null scores). Boilerplate in a quarter of
    the texts, an exact copy (reported once, by exact_duplicate), identical training texts,
    unreadable texts in both splits (positions are not indices). ``min_cosine`` lowered so the
    threshold is the calibrated one (0.478 here), not the 0.6 floor."""
    from leakguard.similarity.synthetic import paraphrase, prose_corpus

    rng = np.random.default_rng(6)
    corpus = prose_corpus(270)
    boiler = ("This text is distributed under the terms of the project licence; see the file "
              "LICENSE in the source distribution for the full terms and conditions.")
    train = [t + " " + boiler if j % 4 == 0 else t for j, t in enumerate(corpus[:200])]
    train[151] = train[150]                           # identical training texts: the first is reported
    sources = [3, 17, 40, 88, 121, 151, 199]
    val = list(corpus[200:260]) + [paraphrase(train[s], rng) for s in sources] + [train[60]]
    train[5] = None                                   # unreadable: skipped, indices kept
    val[2] = None
    splits = {"train": train, "val": val}
    checks = ["exact_duplicate", "semantic_duplicate"]
    local, on_spark = _audit_both(spark, splits, checks, {"semantic_duplicate": {"min_cosine": 0.2}})
    assert on_spark.meta["spark"]["not_run"] == []
    _same_up_to_float32(_comparable(on_spark), _comparable(local))
    sem = [f for f in on_spark.findings if f.check == "semantic_duplicate"]
    assert sem and 0.2 < sem[0].extra["threshold"] < 0.6
    found = set(zip(sem[0].pairs["index_b"].astype(int), sem[0].pairs["index_a"].astype(int)))
    assert found == {(60 + k, 150 if s == 151 else s) for k, s in enumerate(sources)}
    assert on_spark.leaked("val", check="exact_duplicate").tolist() == [len(val) - 1]


def test_text_semantic_user_embedder_same_as_local(spark):
    """A user's embedder with a ``fit`` on Spark: fitted on the driver on the training texts, shipped
    to the executors with the tasks (a class defined here, so pickled by value), each batch embedded
    there; same report as locally. A wrong output shape is a clear error naming the split."""
    from collections import Counter

    from leakguard.similarity.synthetic import paraphrase, prose_corpus

    class WordCounts:
        """Counts of the training split's 300 most frequent words."""

        def fit(self, texts):
            c = Counter(w for t in texts for w in t.lower().split())
            self.vocab = {w: j for j, (w, _) in enumerate(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:300])}

        def __call__(self, texts):
            out = np.zeros((len(texts), len(self.vocab)), np.float32)
            for r, t in enumerate(texts):
                for w in t.lower().split():
                    if w in self.vocab:
                        out[r, self.vocab[w]] += 1
            return out

    rng = np.random.default_rng(2)
    corpus = prose_corpus(150)
    train, sources = list(corpus[:120]), [7, 30, 64, 99]
    val = list(corpus[120:150]) + [paraphrase(train[s], rng) for s in sources]
    train[3] = None
    splits = {"train": train, "val": val}
    local = lg.audit(splits, checks=["semantic_duplicate"], config=lg.AuditConfig(progress=False, embedder=WordCounts()))
    on_spark = lg.audit(splits, checks=["semantic_duplicate"],
                        config=lg.AuditConfig(engine="spark", spark=spark, progress=False, embedder=WordCounts()))
    assert on_spark.meta["spark"]["not_run"] == []
    _same_up_to_float32(_comparable(on_spark), _comparable(local))
    sem = on_spark.findings[0]
    assert sem.extra["embedder"] == "WordCounts"
    found = set(zip(sem.pairs["index_b"].astype(int), sem.pairs["index_a"].astype(int)))
    assert len(found) >= 3 and found <= {(30 + k, s) for k, s in enumerate(sources)}, found  # locally 3 of 4
    with pytest.raises(InputError, match="shape .* train texts"):
        lg.audit(splits, checks=["semantic_duplicate"],
                 config=lg.AuditConfig(engine="spark", spark=spark, progress=False,
                                       embedder=lambda texts: np.zeros(len(texts))))


def _preprocessed_cancer():
    """Breast-cancer columns, each group fitted over train + val + test together by another
    transform (standard, min-max, mean imputation), two continuous columns (no repeated value:
    only the moments screen keeps them) standardised over the union, the rest raw; 3 splits."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X = load_breast_cancer(as_frame=True).data.iloc[:, :24].copy()
    rng = np.random.default_rng(7)
    X["z0"], X["z1"] = rng.normal(size=len(X)), rng.normal(3.0, 2.0, size=len(X))
    out = X.copy()
    std, mm, imp = list(X.columns[:6]) + ["z0", "z1"], list(X.columns[6:12]), list(X.columns[12:18])
    out[std] = StandardScaler().fit_transform(X[std])
    out[mm] = MinMaxScaler().fit_transform(X[mm])
    holes = X[imp].mask(rng.random((len(X), len(imp))) < 0.08)
    out[imp] = SimpleImputer(strategy="mean").fit_transform(holes)
    perm = rng.permutation(len(X))
    splits = {"train": out.iloc[perm[:400]], "val": out.iloc[perm[400:480]], "test": out.iloc[perm[480:]]}
    return X, splits, StandardScaler().fit(X[std]), std


def test_preprocessing_same_as_local(spark):
    """preprocessing_contamination on Spark: the local check on the driver with the columns from
    Spark, so the whole report JSON is equal (no tolerance): standard, min-max and mean-imputation
    marks over the union of 3 splits, a fitted scaler that saw them all, then a diabetes table
    median-imputed over the union (the table vote). The continuous standardised columns z0, z1
    have no repeated value: without the moments screen they are never fetched (mutation:
    ``marked = []`` in columns_to_fetch fails here)."""
    from sklearn.datasets import load_diabetes
    from sklearn.impute import SimpleImputer

    X, splits, scaler, std = _preprocessed_cancer()
    check = ["preprocessing_contamination"]
    local, on_spark = _audit_both(spark, splits, check, fitted=[scaler])
    assert on_spark.meta["spark"]["not_run"] == []
    assert _comparable(on_spark) == _comparable(local)
    kinds = {f.extra["kind"]: f for f in on_spark.findings}
    assert set(kinds) == {"standard", "minmax", "impute_mean", "fitted"}
    assert {"z0", "z1"} <= set(kinds["standard"].features) and kinds["standard"].splits == ("train", "val", "test")

    W = load_diabetes(as_frame=True, scaled=False).data
    rng = np.random.default_rng(3)
    holes = W.astype(float).mask(rng.random(W.shape) < 0.08)
    perm = rng.permutation(len(W))
    filled = pd.DataFrame(SimpleImputer(strategy="median").fit_transform(holes), columns=W.columns)
    splits = {"train": filled.iloc[perm[:353]], "test": filled.iloc[perm[353:]]}
    local, on_spark = _audit_both(spark, splits, check)
    assert _comparable(on_spark) == _comparable(local)
    [f] = on_spark.findings
    assert f.extra["kind"] == "impute_median" and f.extra["p_contaminated"]


def test_preprocessing_screen_and_what_reaches_the_driver(spark):
    """The screen and the statistics on Spark's aggregates: a continuous column scaled on train alone
    is left out; the same column scaled over the union keeps only its percentiles' order statistics
    (a window rank in the executors), no value table; an integer column (repeated values: a possible
    fill) brings its value table (distinct values x counts per split), not its rows; booleans are
    not numeric. Mutation: every kept column as a value table fails here."""
    from leakguard.search.spark import prepare_split
    from leakguard.search.spark_checks import driver_context
    from leakguard.search.spark_preprocessing import SparkColumnStats

    rng = np.random.default_rng(2)
    raw = rng.normal(5.0, 2.0, size=(300, 1))
    frame = pd.DataFrame({"train_scaled": (raw[:, 0] - raw[:200, 0].mean()) / raw[:200, 0].std(),
                          "union_scaled": (raw[:, 0] - raw[:, 0].mean()) / raw[:, 0].std(),
                          "counts": rng.integers(0, 40, 300), "flag": rng.random(300) < 0.5})
    prepared = {name: prepare_split(spark, name, part, role) for name, part, role in
                (("train", frame.iloc[:200], "train"), ("val", frame.iloc[200:], "eval"))}
    config = lg.AuditConfig(engine="spark", spark=spark, progress=False)
    ctx = driver_context(prepared, "train", config, [], collect=False)
    stats = SparkColumnStats(spark, ctx, prepared, 1e-6, 1 << 30)
    assert stats.common == ["train_scaled", "union_scaled", "counts"]  # booleans are not numeric
    try:
        assert stats.screen() == ["union_scaled", "counts"]
    finally:
        stats.close()
    meta = stats.meta
    assert meta["left_out"] == ["train_scaled"] and meta["aggregated"] == ["union_scaled"]
    assert list(meta["value_tables"]) == ["counts"] and meta["value_tables"]["counts"] <= 40
    # 3 unions-or-train x (q25, median, q75: at most 6 ranks); the value table: <= 40 x 3 numbers
    assert meta["order_statistics"] <= 2 * 6 and meta["values_to_driver"] <= 12 + 40 * 4 < 300
    # the statistics the decisions read equal the local engine's, to the bit
    from leakguard.checks.preprocessing import TableColumns, _stats

    local = TableColumns({"train": frame.iloc[:200, :3].astype(float), "val": frame.iloc[200:, :3].astype(float)})
    for c in ("union_scaled", "counts"):
        for union in (("train",), ("train", "val")):
            assert _stats(stats.column(c).of(union)) == _stats(local.column(c).of(union))
            assert stats.column(c).of(union).n_distinct == local.column(c).of(union).n_distinct


def _planted_scalings(rng, n=3000):
    """3 splits of one table: continuous columns standardised, min-max and robust-scaled over the
    union (values that never repeat: only aggregates reach the driver), integer columns mean- and
    median-imputed over the union (their value tables are small), a raw continuous column, a column
    with infinities and NaN; and fitted objects holding means and medians."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import RobustScaler, StandardScaler

    X = pd.DataFrame({f"z{i}": rng.normal(3 * i, 1 + i, n) for i in range(3)})
    perm = rng.permutation(n)
    cut1, cut2 = int(0.7 * n), int(0.85 * n)
    X["m0"] = rng.gamma(2.0, 3.0, n)
    low = X["m0"].idxmin()  # the minimum in val: train's own range is not [0, 1]
    X.loc[[low, perm[cut1]], "m0"] = X.loc[[perm[cut1], low], "m0"].to_numpy()
    X["r0"], X["r1"] = rng.standard_t(3, n), rng.normal(-2, 4, n)
    X["raw"] = rng.normal(10, 2, n)
    ints = pd.DataFrame({f"i{k}": rng.poisson(20 + 5 * k, n).astype(float) for k in range(4)})
    holes = ints.mask(rng.random(ints.shape) < 0.08)
    out = X.copy()
    out[["z0", "z1", "z2"]] = StandardScaler().fit_transform(X[["z0", "z1", "z2"]])
    out["m0"] = (X["m0"] - X["m0"].min()) / (X["m0"].max() - X["m0"].min())
    robust = RobustScaler().fit(X[["r0", "r1"]])
    out[["r0", "r1"]] = robust.transform(X[["r0", "r1"]])
    means = SimpleImputer(strategy="mean").fit(holes[["i0", "i1"]])
    medians = SimpleImputer(strategy="median").fit(holes[["i2", "i3"]])
    out[["i0", "i1"]] = means.transform(holes[["i0", "i1"]])
    out[["i2", "i3"]] = medians.transform(holes[["i2", "i3"]])
    out["odd"] = rng.normal(size=n)
    out.loc[rng.choice(n, 5, replace=False), "odd"] = np.inf
    out.loc[rng.choice(n, 3, replace=False), "odd"] = -np.inf
    out.loc[rng.choice(n, 7, replace=False), ["odd", "raw"]] = np.nan
    splits = {"train": out.iloc[perm[:cut1]], "val": out.iloc[perm[cut1:cut2]], "test": out.iloc[perm[cut2:]]}
    # fitted on the union: the imputer's medians and the scaler's centres (NaN in "raw") match it
    fitted = [robust, means, medians, RobustScaler().fit(out[["raw", "r1"]])]
    return splits, fitted


def test_preprocessing_robust_median_and_fitted_medians_same_as_local(spark):
    """Standard, min-max and robust scaling over the union on continuous columns (order statistics
    by a rank in the executors), median imputation of integer columns over the union (value
    tables), infinities and NaN, and fitted objects holding medians (RobustScaler.center_, a median
    SimpleImputer): the whole report JSON equals the local engine's. With a driver budget far below
    one column (8 x 3000 bytes) it still does: no column comes to the driver whole. Mutation: the
    rank off by one (``row_number()`` without ``- 1``) fails here."""
    splits, fitted = _planted_scalings(np.random.default_rng(5))
    check = ["preprocessing_contamination"]
    opts = {"preprocessing_contamination": {"driver_budget_bytes": 8000}}
    local, on_spark = _audit_both(spark, splits, check, opts, fitted=fitted)
    assert _comparable(on_spark) == _comparable(local)
    kinds = {f.extra["kind"]: f.features for f in on_spark.findings if f.extra.get("source") == "data"}
    assert set(kinds["standard"]) == {"z0", "z1", "z2"} and kinds["minmax"] == ["m0"]
    assert set(kinds["robust"]) == {"r0", "r1"} and kinds["impute_mean"] == ["i0", "i1"]
    assert {f.extra.get("attribute") for f in on_spark.findings if f.extra["kind"] == "fitted"} >= {"center_", "statistics_"}
    meta = on_spark.meta["spark"]["preprocessing"]
    assert {"z0", "z1", "z2", "m0", "r0", "r1"} <= set(meta["aggregated"]) and "raw" in meta["left_out"]
    assert set(meta["value_tables"]) == {"i0", "i1", "i2", "i3"}
    assert meta["values_to_driver"] < 3000 // 2
    # past the budget for the value tables: a "could not run" finding naming the option, not a crash
    with pytest.warns(RuntimeWarning, match="driver_budget_bytes"):
        small = lg.audit(splits, checks=check, config=lg.AuditConfig(
            engine="spark", spark=spark, progress=False,
            check_options={"preprocessing_contamination": {"driver_budget_bytes": 500}}))
    [f] = small.findings
    assert "could not run" in f.title and "driver_budget_bytes" in f.detail


def test_target_leakage_same_as_local(spark):
    """target_leakage on Spark: the rows the local screen subsamples (max_rows 150 of 400, three
    training labels missing, so positions are not indices) are collected and the local check runs
    on them: whole report JSON equal, with a text column naming the outcome, a date and a string
    id among the features (mutation: taking the positions for indices fails here)."""
    from sklearn.datasets import load_breast_cancer

    from leakguard.explain.planted import plant_tabular

    d = load_breast_cancer(as_frame=True)
    order = np.random.default_rng(0).permutation(len(d.target))
    X, y = d.data.iloc[order].reset_index(drop=True), d.target.to_numpy()[order]
    frame, leaky = plant_tabular(X.iloc[:, :12], y, "post_outcome_text", seed=1)
    frame = frame.assign(seen=pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(frame)) % 90, "D"),
                         ward=[f"w{i % 7}" for i in range(len(frame))], label=y.astype(float))
    frame.loc[[3, 50, 77], "label"] = np.nan
    splits = {"train": frame.iloc[:400], "val": frame.iloc[400:]}
    opts = {"target_leakage": {"max_rows": 150, "cv": 3}}
    local, on_spark = _audit_both(spark, splits, ["target_leakage"], opts, labels="label")
    assert on_spark.meta["spark"]["not_run"] == []
    assert _comparable(on_spark) == _comparable(local)
    assert [f.features for f in on_spark.findings] == [leaky]
    assert "150 rows" in on_spark.findings[0].detail


def test_oversampling_same_as_local(spark):
    """oversampling_leakage on Spark (tables), the collect path (``spark_path="driver"``: rows to
    the driver, the local check there; the distributed default is tested in
    tests/test_spark_oversampling.py); whole report JSON equal. SMOTE before the split (labels as
    arrays) and random oversampling before the split (labels as a column: the label column is not
    a feature). A pooled table past the driver budget becomes a "could not run" finding."""
    imblearn = pytest.importorskip("imblearn")  # noqa: F841
    from imblearn.over_sampling import SMOTE, RandomOverSampler
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :10]
    rng = np.random.default_rng(0)
    keep = np.concatenate([np.flatnonzero(y == 1), rng.choice(np.flatnonzero(y == 0), 60, replace=False)])
    X, y = X.iloc[keep].reset_index(drop=True), y.iloc[keep].reset_index(drop=True)
    check = ["oversampling_leakage"]
    Xs, ys = SMOTE(random_state=0).fit_resample(X, y)
    perm = np.random.default_rng(1).permutation(len(Xs))
    tr, te = perm[:int(0.8 * len(Xs))], perm[int(0.8 * len(Xs)):]
    splits = {"train": Xs.iloc[tr], "test": Xs.iloc[te]}
    labels = {"train": ys.iloc[tr].to_numpy(), "test": ys.iloc[te].to_numpy()}
    driver = {"oversampling_leakage": {"spark_path": "driver"}}
    local, on_spark = _audit_both(spark, splits, check, driver, labels=labels)
    assert on_spark.meta["spark"]["not_run"] == []
    assert on_spark.meta["spark"]["oversampling_path"] == "driver"
    assert _comparable(on_spark) == _comparable(local)
    assert any(f.extra.get("kind") == "interpolation" and f.cross_split for f in on_spark.findings)

    Xr, yr = RandomOverSampler(random_state=0).fit_resample(X, y)
    table = Xr.assign(label=yr.to_numpy())
    splits = {"train": table.iloc[tr[tr < len(table)]], "test": table.iloc[te[te < len(table)]]}
    local, on_spark = _audit_both(spark, splits, check, driver, labels="label")
    assert _comparable(on_spark) == _comparable(local)
    assert [f.extra["kind"] for f in on_spark.findings] == ["copies"]

    with pytest.warns(RuntimeWarning, match="driver_budget_bytes"):
        small = lg.audit(splits, labels="label", checks=check, config=lg.AuditConfig(
            engine="spark", spark=spark, progress=False,
            check_options={"oversampling_leakage": {"driver_budget_bytes": 1000, "spark_path": "driver"}}))
    [f] = small.findings
    assert "could not run" in f.title and "driver_budget_bytes" in f.detail


def test_preprocessing_target_oversampling_on_parquet_same_as_local(spark, tmp_path):
    """The three checks on Parquet splits that Spark reads (not pandas frames handed over), with
    nullable integer columns holding missing cells and a label column: report JSON equal."""
    rng = np.random.default_rng(0)
    n = 500
    y = rng.integers(0, 2, n)
    frame = pd.DataFrame({"a": rng.normal(size=n), "visits": pd.array(rng.integers(0, 9, n), dtype="Int64"),
                          "code": pd.array(y * 10 + rng.integers(0, 2, n), dtype="Int64"), "label": y})
    frame.loc[rng.choice(n, 40, replace=False), "visits"] = pd.NA
    frame.loc[[5, 9], "code"] = pd.NA
    paths = {"train": tmp_path / "train.parquet", "val": tmp_path / "val.parquet"}
    frame.iloc[:400].to_parquet(paths["train"])
    frame.iloc[400:].to_parquet(paths["val"])
    checks = ["preprocessing_contamination", "oversampling_leakage", "target_leakage"]
    local, on_spark = _audit_both(spark, {k: str(v) for k, v in paths.items()}, checks,
                                  {"target_leakage": {"max_rows": 120, "cv": 3}}, labels="label")
    assert on_spark.meta["spark"]["not_run"] == []
    assert _comparable(on_spark) == _comparable(local)
    assert [f.features for f in on_spark.findings if f.check == "target_leakage"] == [["code"]]


def _oversampled_series(rng):
    """Two classes of series; the minority oversampled before the split: SMOTE-like interpolations
    ``a + lam (b - a)`` of two minority series, and plain copies; then shuffled and split."""
    t = np.linspace(0, 1, 40)
    major = [np.sin(2 * np.pi * (t * rng.uniform(1, 3) + rng.uniform())) + rng.normal(0, .3, 40) for _ in range(80)]
    minor = [2 * np.cos(2 * np.pi * (t * rng.uniform(1, 3) + rng.uniform())) + rng.normal(0, .3, 40) for _ in range(20)]
    synthetic = []
    for _ in range(20):
        i, j = rng.choice(20, 2, replace=False)
        synthetic.append(minor[i] + rng.uniform(0.1, 0.9) * (minor[j] - minor[i]))
    copies = [minor[k].copy() for k in rng.choice(20, 10)]
    series = major + minor + synthetic + copies
    y = np.array([0] * 80 + [1] * 50)
    perm = rng.permutation(len(series))
    tr, te = perm[:100], perm[100:]
    return ({"train": [series[i] for i in tr], "test": [series[i] for i in te]},
            {"train": y[tr], "test": y[te]})


def test_series_oversampling_same_as_local(spark, monkeypatch):
    """Series oversampling_leakage on Spark: every series decoded to float64 in the executors, its
    size checked against driver_budget_bytes, the values collected in sample order and the local
    check run on the driver; whole report JSON equal, also when Spark hands the rows over in
    another order (as a cluster may). A series that does not convert to numbers fails the check
    alike on both engines; on the collect path (``spark_path="driver"``) past the budget, a
    "could not run" finding. (Since session 7 the default path is the distributed one.)"""
    from pyspark.sql import functions as F

    import leakguard.search.spark as spark_engine

    splits, labels = _oversampled_series(np.random.default_rng(0))
    check = ["oversampling_leakage"]
    local, on_spark = _audit_both(spark, splits, check, labels=labels, modality="series")
    assert on_spark.meta["spark"]["not_run"] == []
    assert _comparable(on_spark) == _comparable(local)
    cross = [f for f in on_spark.findings if f.extra.get("kind") == "interpolation" and f.cross_split]
    assert cross and cross[0].count >= 3

    prepare = spark_engine.prepare_split

    def shuffled(*args, **kwargs):  # the split's rows in a random order across partitions
        sp = prepare(*args, **kwargs)
        sp.frame = sp.frame.orderBy(F.rand(seed=3))
        return sp

    with monkeypatch.context() as m:
        m.setattr(spark_engine, "prepare_split", shuffled)
        reordered = lg.audit(splits, labels=labels, checks=check, modality="series",
                             config=lg.AuditConfig(engine="spark", spark=spark, progress=False))
    assert _comparable(reordered) == _comparable(local)

    broken = {"train": splits["train"][:-1] + [np.array(["not", "a", "number"])], "test": splits["test"]}
    with pytest.warns(RuntimeWarning, match="could not convert"):
        local, on_spark = _audit_both(spark, broken, check, labels=labels, modality="series")
    assert _comparable(on_spark) == _comparable(local)
    assert "could not run" in on_spark.findings[0].title

    with pytest.warns(RuntimeWarning, match="driver_budget_bytes"):
        small = lg.audit(splits, labels=labels, checks=check, modality="series", config=lg.AuditConfig(
            engine="spark", spark=spark, progress=False,
            check_options={"oversampling_leakage": {"driver_budget_bytes": 1000, "spark_path": "driver"}}))
    [f] = small.findings
    assert "could not run" in f.title and "driver_budget_bytes" in f.detail
