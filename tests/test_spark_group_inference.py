"""group_overlap on the Spark engine with ids missing: images and texts.

Locally the check also links images of one static scene and evaluation texts sharing a passage; both
read every sample's signature, which the Spark driver does not hold. On Spark they run in the executors
(leakguard.search.spark_groups: a block-mean kNN join and the local scene verdicts; passage rounds as
joins and the local shared_passage) and only the links come to the driver; the report equals the local
engine's. (Before session 7 they were left out and listed in ``report.meta["spark"]["local_only"]``; the
check used to fail with "could not run" on every image folder and on texts with partial duplicates.)
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:  # pragma: no cover - pyspark needs a JVM
    pytest.skip("the Spark engine needs Java", allow_module_level=True)

import leakguard as lg  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
              pytest.mark.timeout(900)]


def _spark_config(spark, **kwargs):
    return lg.AuditConfig(engine="spark", spark=spark, progress=False, **kwargs)


def _failed_checks(report) -> list[str]:
    return [f.check for f in report.findings if "could not run" in f.title]


def _comparable(report) -> dict:
    """The report as JSON, without what legitimately differs between two runs (time, engine)."""
    d = json.loads(report.to_json())
    d["meta"] = {k: v for k, v in d["meta"].items() if k not in ("duration_s", "created", "config", "spark", "cache")}
    return d


def _inferred(report):
    return [f for f in report.findings if f.check == "group_overlap" and f.extra.get("kind") == "inferred"]


def _video_folders(root):
    """Frames of moving-shape videos split at random (no copy links them, their backgrounds do), a test
    split with a video of its own, and frames of a camera panning 5 px a frame (linked at a shift) with
    unrelated moon frames in val."""
    from PIL import Image
    from skimage import data

    from leakguard.sources.yolo_synthetic import make_video_frames

    make_video_frames(root, n_videos=5, frames_per_video=6, split="random", test_videos=1, random_state=3)
    camera, moon = data.camera()[100:300, 100:400], data.moon()[100:300, 100:400]
    for k in range(6):
        Image.fromarray(camera[:128, 5 * k:5 * k + 128]).save(root / "images" / ("train" if k % 2 else "val") / f"pan_{k}.png")
    for k in range(0, 6, 2):
        Image.fromarray(moon[:128, 7 * k:7 * k + 128]).save(root / "images" / "val" / f"moon_{k}.png")
    return {s: root / "images" / s for s in ("train", "val", "test")}


def test_image_scene_links_same_as_local(spark, tmp_path):
    splits = _video_folders(tmp_path / "frames")
    checks = ["exact_duplicate", "augmented_duplicate", "group_overlap"]
    local = lg.audit(splits, checks=checks, config=lg.AuditConfig(progress=False))
    [inferred] = _inferred(local)
    assert inferred.extra["scene_links"] > 0 and inferred.count >= 3  # the data holds what is compared
    on_spark = lg.audit(splits, checks=checks, config=_spark_config(spark))
    assert _failed_checks(on_spark) == [] and on_spark.meta["spark"]["local_only"] == []
    assert _comparable(on_spark) == _comparable(local)


def _article_chunks():
    """Retrieval-style chunks (4 sentences, stride 2, 5 per article) of 9 articles; chunks 1-3 of
    articles 0-5 and articles 6-7 whole in test: chunk 2 of 0-5 has no training neighbour, only its test
    neighbours (as tests/test_groups.py's chunk test); article 8's chunk 0 in train, 1-4 in test: a chain
    the passage search follows over three rounds (chunk 1 is linked, 2, 3 and 4 are reached one by one)."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(3000)]

    def sentence():
        return " ".join(rng.choice(vocab, int(rng.integers(10, 16)))) + "."

    chunks, art = [], []
    for a in range(9):
        sents = [sentence() for _ in range(12)]
        for i in range(0, len(sents) - 3, 2):
            chunks.append(" ".join(sents[i:i + 4]))
            art.append(a)
    art = np.asarray(art)
    pos = np.concatenate([np.arange((art == a).sum()) for a in range(9)])
    in_test = np.isin(art, [6, 7]) | np.isin(pos, [1, 2, 3]) | ((art == 8) & (pos > 0))
    train = [c for c, t in zip(chunks, in_test) if not t]
    test = [c for c, t in zip(chunks, in_test) if t]
    return {"train": train, "test": test}


def test_text_passage_links_same_as_local(spark):
    splits = _article_chunks()
    checks = ["exact_duplicate", "partial_duplicate", "group_overlap"]
    local = lg.audit(splits, checks=checks, config=lg.AuditConfig(progress=False))
    [inferred] = _inferred(local)
    # the six chunk-2s, and article 8's chunks 2-4 (found in rounds 1-3)
    assert inferred.extra["passage_links"] > 0 and inferred.count == 9
    on_spark = lg.audit(splits, checks=checks, config=_spark_config(spark))
    assert _failed_checks(on_spark) == [] and on_spark.meta["spark"]["local_only"] == []
    assert _comparable(on_spark) == _comparable(local)


def test_image_folder_group_overlap_runs_on_spark(spark, tmp_path):
    """Random pictures (no scene), one exact copy: the check runs, nothing is left out."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 6)):
        (tmp_path / split).mkdir()
        for i in range(n):
            pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / split / f"{i:02d}.png")
    shutil.copy(tmp_path / "train" / "03.png", tmp_path / "val" / "copy.png")
    report = lg.audit({"train": tmp_path / "train", "val": tmp_path / "val"},
                      checks=["exact_duplicate", "group_overlap"], config=_spark_config(spark))
    assert _failed_checks(report) == []
    assert "group_overlap" in report.meta["checks"]
    assert report.meta["spark"]["local_only"] == []
    assert report.leaked("val", check="exact_duplicate").tolist() == [6]  # copy.png sorts last


def test_spark_audit_does_not_repeat_pysparks_pandas_version_warning(spark):
    """PySpark 4 warns on each pandas conversion under pandas >= 3: dozens of lines in `leakguard audit
    --engine spark`'s output (the user's seat); the audit silences that one warning, nothing else."""
    import warnings

    rng = np.random.default_rng(2)
    train = rng.normal(size=(40, 3))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        report = lg.audit({"train": train, "val": np.vstack([rng.normal(size=(10, 3)), train[:2]])},
                          checks=["exact_duplicate"], config=_spark_config(spark))
    assert report.leaked("val").tolist() == [10, 11]
    assert [str(w.message) for w in seen if "does not yet fully support pandas" in str(w.message)] == []
