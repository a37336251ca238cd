"""Image partial_duplicate at any scale (resized=True) on Spark: the same report as the local engine.

Resized overlapping crops of scikit-image's photos across three splits, training crops that
overlap each other (the calibration must not count them), and disjoint crops of textures as hard
negatives. The descriptor search runs both ways the local one does: exact (small splits) and
FAISS IVF (forced on these small splits by lowering the local switch-over, which the Spark driver
reads too).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pyspark")

import leakguard as lg  # noqa: E402
from leakguard.similarity.image_align import have_opencv  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
              pytest.mark.skipif(not have_opencv(), reason="the any-scale path needs OpenCV"),
              pytest.mark.timeout(900)]

CHECKS = ["exact_duplicate", "partial_duplicate"]


def _comparable(report) -> dict:
    d = json.loads(report.to_json())
    d["meta"] = {k: v for k, v in d["meta"].items() if k not in ("duration_s", "created", "config", "spark", "cache")}
    return d


def _config(spark=None, **options):
    opts = {"partial_duplicate": {"resized": True, **options}}
    if spark is None:
        return lg.AuditConfig(progress=False, check_options=opts)
    return lg.AuditConfig(engine="spark", spark=spark, progress=False, check_options=opts)


@pytest.fixture(scope="module")
def planted():
    """train / val / test: 5 resized crop pairs (train i, val i), one (val 5, test 0), an exact copy
    of train 1 in test, training crops overlapping each other, texture crops as negatives."""
    from leakguard.similarity.image_partial import disjoint_crops, resized_overlapping_crops
    from leakguard.similarity.image_planting import photo

    rng = np.random.default_rng(7)
    train, val, test = [], [], []
    for name in ("astronaut", "coffee", "chelsea", "immunohistochemistry", "camera"):
        a, b, _, _ = resized_overlapping_crops(photo(name), rng, share=(0.3, 0.7), scale=(0.6, 1.5))
        train.append(a)
        val.append(b)
    a, b, _, _ = resized_overlapping_crops(photo("retina"), rng, share=(0.3, 0.7), scale=(0.6, 1.5))
    val.append(a)                          # val 5 overlaps test 0: evaluation x evaluation
    test.append(b)
    a, b, _, _ = resized_overlapping_crops(photo("rocket"), rng, share=(0.4, 0.8))
    train += [a, b]                        # overlap inside train (cut before splitting)
    for name in ("brick", "grass"):
        t1, t2, t3 = disjoint_crops(photo(name), rng, n=3)
        train.append(t1)
        val.append(t2)
        test.append(t3)
    test.append(train[1].copy())           # an exact copy: exact_duplicate's, not reported again
    return {"train": train, "val": val, "test": test}


def _pairs(report) -> set:
    part = report.pairs(check="partial_duplicate")
    return set(zip(part["split_a"], part["index_a"].astype(int), part["split_b"], part["index_b"].astype(int)))


def test_resized_partial_same_as_local_exact_search(spark, planted):
    local = lg.audit(planted, modality="image", checks=CHECKS, config=_config())
    on_spark = lg.audit(planted, modality="image", checks=CHECKS, config=_config(spark))
    assert on_spark.meta["spark"]["not_run"] == []
    assert _comparable(on_spark) == _comparable(local)
    # the five resized crop pairs, the evaluation x evaluation pair, and the crop that the exact copy
    # of train 1 (test 3) shares with val 1 (the copy itself is reported once, by exact_duplicate)
    assert _pairs(on_spark) == {("train", i, "val", i) for i in range(5)} | {("val", 5, "test", 0),
                                                                           ("val", 1, "test", 3)}
    f = next(f for f in on_spark.findings if f.check == "partial_duplicate" and f.splits == ("train", "val"))
    assert "keypoints" in f.extra["methods"] and f.extra["calibration"]["source"].endswith("training split")
    assert on_spark.leaked("test", check="exact_duplicate").tolist() == [len(planted["test"]) - 1]


def test_resized_partial_same_as_local_ivf_search(spark, planted, monkeypatch, tmp_path):
    """The IVF branch: the driver trains the local quantizer on the same sample, the executors
    assign lists with it, the lists are the join key. PNG files, with an unreadable file early in
    train and in val: sample indices are not positions among the readable images (the IVF sample
    and the calibration sample are drawn by position)."""
    from PIL import Image

    import leakguard.similarity.image_partial as ip

    monkeypatch.setattr(ip, "EXACT_SEARCH", 0)
    monkeypatch.setattr(ip, "IVF_FROM", 0)
    assert not ip.exact_descriptor_search(1000, 1000)
    splits = {}
    for name, imgs in planted.items():
        (tmp_path / name).mkdir()
        paths = []
        for i, img in enumerate(imgs):
            paths.append(tmp_path / name / f"{i:03d}.png")
            Image.fromarray(img).save(paths[-1])
        splits[name] = paths
    for name in ("train", "val"):
        bad = tmp_path / name / "bad.png"
        bad.write_bytes(b"not a png")
        splits[name].insert(1, bad)
    local = lg.audit(splits, modality="image", checks=CHECKS, config=_config(min_share=0.05))
    on_spark = lg.audit(splits, modality="image", checks=CHECKS, config=_config(spark, min_share=0.05))
    assert [s["index"] for s in on_spark.skipped["train"]] == [1]
    assert _comparable(on_spark) == _comparable(local)
    assert ("val", 6, "test", 0) in _pairs(on_spark)   # val 5 moved to 6 by the unreadable file


def test_resized_partial_without_training_keypoints(spark, planted):
    """A training split of flat images (no keypoints): no keypoint candidates on either engine."""
    flat = {"train": [np.full((64, 64, 3), v, np.uint8) for v in (10, 90, 200)], "val": planted["val"][:2]}
    local = lg.audit(flat, modality="image", checks=CHECKS, config=_config())
    on_spark = lg.audit(flat, modality="image", checks=CHECKS, config=_config(spark))
    assert _comparable(on_spark) == _comparable(local)


def _descriptor_frame(spark, kps):
    from leakguard.similarity.image_partial import KP_SEARCH

    rows = [(i, q, bytes(r[8:])) for i, k in enumerate(kps) for q, r in enumerate(k[:KP_SEARCH])]
    return spark.createDataFrame(rows, "img long, q int, desc binary"), len(rows)


@pytest.mark.parametrize("search", ["exact", "ivf", "ivf mirrored"])
def test_descriptor_candidates_same_as_local(spark, planted, monkeypatch, search):
    """The candidate search alone, on the keypoints of the planted crops: the Spark cells (image
    chunks, or the IVF lists of the driver's quantizer) give the local (a, b, votes) rows, in
    every vote count. "ivf mirrored": the calibration's search (mirrored training images, their
    own image left out)."""
    import pandas as pd

    import leakguard.similarity.image_partial as ip
    from leakguard.search.spark_image_partial_kp import candidates_on_spark

    if search != "exact":
        monkeypatch.setattr(ip, "EXACT_SEARCH", 0)
        monkeypatch.setattr(ip, "IVF_FROM", 0)
    kp_a = [ip.image_partial_kp(img) for img in planted["train"]]
    shapes = [img.shape[:2] for img in planted["train"]]
    kp_b = ([ip.mirrored(k, s) for k, s in zip(kp_a, shapes)] if search == "ivf mirrored"
            else [ip.image_partial_kp(img) for img in planted["val"] + planted["test"]])
    mirrored = search == "ivf mirrored"
    da, db = ip.Descriptors(kp_a), ip.Descriptors(kp_b)
    assert ip.exact_descriptor_search(len(da.desc), len(db.desc)) == (search == "exact")
    ia, ib, votes = ip.descriptor_candidates(da, db, 8, exclude_self=mirrored, random_state=3)
    (fa, n_a), (fb, n_b) = _descriptor_frame(spark, kp_a), _descriptor_frame(spark, kp_b)
    counts = pd.DataFrame({"_lg_idx": np.arange(len(kp_a)), "n": [min(len(k), ip.KP_SEARCH) for k in kp_a]})
    got = candidates_on_spark(spark, fa, fb, n_a, n_b, 8, mirrored, 3, {"counts": lambda: counts}).toPandas()
    got = got.sort_values(["b", "n", "a"], ascending=[True, False, True], kind="stable")
    assert len(ia) >= 5
    assert got["a"].tolist() == ia.tolist() and got["b"].tolist() == ib.tolist() and got["n"].tolist() == votes.tolist()
