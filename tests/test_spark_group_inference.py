"""group_overlap on the Spark engine with ids missing: images and texts.

Locally the check also links images of one static scene and evaluation texts sharing a passage; both
read every sample's signature, which the Spark driver does not hold. On Spark they are left out and
listed in ``report.meta["spark"]["local_only"]``; the check itself still runs (it used to fail with
"the group_overlap check could not run" on every image folder and on texts with partial duplicates).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("pyspark")
if shutil.which("java") is None:  # pragma: no cover - pyspark needs a JVM
    pytest.skip("the Spark engine needs Java", allow_module_level=True)

import leakguard as lg  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
              pytest.mark.timeout(900)]


def _spark_config(spark):
    return lg.AuditConfig(engine="spark", spark=spark, progress=False)


def _failed_checks(report) -> list[str]:
    return [f.check for f in report.findings if "could not run" in f.title]


def test_image_folder_group_overlap_runs_without_scene_links(spark, tmp_path):
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
    assert report.meta["spark"]["local_only"] == ["group_overlap scene links (images of one static scene)"]
    assert report.leaked("val", check="exact_duplicate").tolist() == [6]  # copy.png sorts last


def test_texts_with_a_shared_passage_group_overlap_runs_without_passage_links(spark):
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(3000)]

    def text(n):
        return " ".join(rng.choice(words, n))

    document = text(200).split()
    train = [text(60) for _ in range(30)] + [" ".join(document[100:180])]
    test = [" ".join(document[60:140])] + [text(60) for _ in range(5)]
    report = lg.audit({"train": train, "test": test}, checks=["partial_duplicate", "group_overlap"],
                      config=_spark_config(spark))
    assert _failed_checks(report) == []
    assert report.leaked("test", check="partial_duplicate").tolist() == [0]
    assert report.meta["spark"]["local_only"] == [
        "group_overlap passage links (evaluation texts sharing a passage)"]


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
