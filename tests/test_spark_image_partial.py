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


def test_resized_partial_same_as_local_ivf_search(spark, planted, monkeypatch):
    """The IVF branch: the driver trains the local quantizer on the same sample, the executors
    assign lists with it, the lists are the join key."""
    import leakguard.similarity.image_partial as ip

    monkeypatch.setattr(ip, "EXACT_SEARCH", 0)
    monkeypatch.setattr(ip, "IVF_FROM", 0)
    assert not ip.exact_descriptor_search(1000, 1000)
    local = lg.audit(planted, modality="image", checks=CHECKS, config=_config(min_share=0.05))
    on_spark = lg.audit(planted, modality="image", checks=CHECKS, config=_config(spark, min_share=0.05))
    assert _comparable(on_spark) == _comparable(local)
    assert ("val", 5, "test", 0) in _pairs(on_spark)


def test_resized_partial_given_threshold_and_no_training_keypoints(spark, planted):
    """A given threshold skips the calibration; a training split of flat images (no keypoints)
    gives no keypoint candidates on either engine."""
    local = lg.audit(planted, modality="image", checks=CHECKS, config=_config(threshold=0.95))
    on_spark = lg.audit(planted, modality="image", checks=CHECKS, config=_config(spark, threshold=0.95))
    assert _comparable(on_spark) == _comparable(local)
    flat = {"train": [np.full((64, 64, 3), v, np.uint8) for v in (10, 90, 200)], "val": planted["val"][:2]}
    local = lg.audit(flat, modality="image", checks=CHECKS, config=_config())
    on_spark = lg.audit(flat, modality="image", checks=CHECKS, config=_config(spark))
    assert _comparable(on_spark) == _comparable(local)
