"""Bad input: a clear error naming the split, index and file, or skipped and counted in the report."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import leakguard as lg

CFG = lg.AuditConfig(progress=False)
EXACT = ["exact_duplicate"]  # other checks have their own tests


@pytest.fixture
def image_files(tmp_path, rng):
    paths = []
    for i in range(6):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_corrupt_and_truncated_images_are_skipped_and_named(tmp_path, image_files):
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(image_files[0].read_bytes()[:60])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not a jpeg at all")
    val = [image_files[0], truncated, garbage]
    report = lg.audit({"train": image_files[:3], "val": val}, config=CFG, checks=["exact_duplicate"])
    skipped = report.skipped["val"]
    assert {s["index"] for s in skipped} == {1, 2}
    assert {s["file"] for s in skipped} == {str(truncated), str(garbage)}
    assert all(s["reason"] for s in skipped)
    assert report.leaked("val").tolist() == [0]          # the readable copy is still found
    assert report.summary()["leakguard/skipped"] == 2
    html = report.to_html()
    assert "garbage.jpg" in html and "could not be read" in html


def test_unknown_extensions_in_a_folder_are_skipped_and_counted(tmp_path, image_files):
    folder = tmp_path / "val"
    folder.mkdir()
    Image.open(image_files[1]).save(folder / "copy.png")
    (folder / "notes.xyz").write_text("hello")
    report = lg.audit({"train": image_files, "val": folder}, config=CFG, checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [0]
    (skip,) = report.skipped["val"]
    assert skip["file"].endswith("notes.xyz") and "unknown extension" in skip["reason"]


def test_missing_file_is_skipped_with_its_name(tmp_path, image_files):
    missing = tmp_path / "gone.png"
    report = lg.audit({"train": image_files, "val": [missing, image_files[2]]}, config=CFG,
                      checks=["exact_duplicate"])
    (skip,) = report.skipped["val"]
    assert skip["index"] == 0 and skip["file"] == str(missing)
    assert "no such file" in skip["reason"]
    assert report.leaked("val").tolist() == [1]


def test_empty_training_split_is_an_error():
    with pytest.raises(lg.InputError, match="training split 'train' is empty"):
        lg.audit({"train": np.zeros((0, 3)), "val": np.ones((4, 3))}, config=CFG, checks=EXACT)


def test_empty_evaluation_split_is_audited_as_empty(rng):
    report = lg.audit({"train": rng.normal(size=(10, 3)), "val": np.zeros((0, 3))}, config=CFG, checks=EXACT)
    assert report.passed and report.summary()["leakguard/val/leaked_fraction"] == 0.0


def test_label_length_mismatch_names_the_split(rng):
    with pytest.raises(lg.InputError, match=r"split 'val': labels has 3 values but the split has 5 samples"):
        lg.audit({"train": rng.normal(size=(10, 2)), "val": rng.normal(size=(5, 2))},
                 labels={"train": np.zeros(10), "val": np.zeros(3)}, config=CFG, checks=EXACT)


@pytest.mark.parametrize("kind", ["groups", "timestamps"])
def test_group_and_time_length_mismatch(rng, kind):
    with pytest.raises(lg.InputError, match=f"split 'train': {kind} has 4 values"):
        lg.audit({"train": rng.normal(size=(10, 2)), "val": rng.normal(size=(5, 2))},
                 **{kind: {"train": np.zeros(4), "val": np.zeros(5)}}, config=CFG, checks=EXACT)


def test_missing_label_column_is_named():
    df = pd.DataFrame({"a": [1, 2]})
    with pytest.raises(lg.InputError, match="no column 'target'"):
        lg.audit({"train": df, "val": df}, labels="target", config=CFG, checks=EXACT)


def test_unknown_split_name_and_single_split():
    with pytest.raises(lg.InputError, match="training split 'training' is not among"):
        lg.audit({"train": np.ones((2, 2)), "val": np.ones((2, 2))}, train="training", config=CFG, checks=EXACT)
    with pytest.raises(lg.InputError, match="at least one evaluation split"):
        lg.audit({"train": np.ones((2, 2))}, config=CFG, checks=EXACT)


def test_unknown_modality_and_undecidable_arrays():
    with pytest.raises(lg.InputError, match="unknown modality 'video'"):
        lg.audit({"train": np.ones((2, 2)), "val": np.ones((2, 2))}, modality="video", config=CFG, checks=EXACT)
    with pytest.raises(lg.InputError, match="cannot tell the modality of an array of shape"):
        lg.audit({"train": np.ones((4, 2, 2, 2, 2)), "val": np.ones((4, 2, 2, 2, 2))}, config=CFG, checks=EXACT)
    with pytest.raises(lg.InputError, match="different kinds of data"):
        lg.audit({"train": np.ones((3, 4)), "val": ["some text"]}, config=CFG, checks=EXACT)


def test_nan_and_inf_rows(rng):
    train = np.array([[1.0, np.inf], [np.nan, 2.0], [3.0, 4.0]])
    val = np.array([[1.0, np.inf], [np.nan, 2.0], [3.0, -np.inf]])
    report = lg.audit({"train": train, "val": val}, config=CFG, checks=EXACT)
    assert report.leaked("val").tolist() == [0, 1]


def test_mixed_types_in_one_column_compare_by_type_and_value():
    train = pd.DataFrame({"a": [1, "1", None, 2.5], "b": [0, 0, 0, 0]})
    val = pd.DataFrame({"a": ["1", 1.0, np.nan, "2.5"], "b": [0, 0, 0, 0]})
    report = lg.audit({"train": train, "val": val}, config=CFG, checks=EXACT)
    # "1" matches "1", 1.0 matches 1, missing matches missing; the string "2.5" is not the number 2.5
    assert report.leaked("val").tolist() == [0, 1, 2]


def test_empty_and_huge_texts():
    huge = "word " * 300_000
    report = lg.audit({"train": ["", huge, "short"], "val": ["   ", huge + " ", "other"]}, config=CFG,
                      checks=["exact_duplicate"])
    # whitespace folding: "   " equals "" and the huge text with a trailing space equals the original
    assert report.leaked("val").tolist() == [0, 1]
    assert len(report.to_json()) < 200_000  # previews are cut, the report stays small


def test_nan_in_audio_is_skipped(tmp_path):
    good = (np.sin(np.linspace(0, 100, 8000)).astype(np.float32), 8000)
    bad = (np.full(8000, np.nan, dtype=np.float32), 8000)
    report = lg.audit({"train": [good], "val": [bad, good]}, modality="audio", config=CFG,
                      checks=["exact_duplicate"])
    (skip,) = report.skipped["val"]
    assert skip["index"] == 0 and "NaN" in skip["reason"]
    assert report.leaked("val").tolist() == [1]


def test_zero_size_image_array_is_skipped_by_the_default_audit(rng):
    img = [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for _ in range(4)]
    report = lg.audit({"train": [img[0], np.zeros((0, 5, 3), np.uint8), img[1], img[2]],
                       "val": [img[0].copy(), np.zeros((7, 0), np.uint8), img[3]]},
                      modality="image", config=CFG)  # every image check: the patch codes used to crash
    assert [s["index"] for s in report.skipped["train"]] == [1]
    assert [(s["index"], "empty image" in s["reason"]) for s in report.skipped["val"]] == [(1, True)]
    assert 0 in report.leaked("val").tolist()


def test_non_utf8_text_file_is_skipped(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("hello world", encoding="utf-8")
    bad.write_bytes(b"\xff\xfe\x00bad latin \xe9")
    report = lg.audit({"train": [good], "val": [bad, good]}, config=CFG, checks=["exact_duplicate"])
    (skip,) = report.skipped["val"]
    assert skip["file"] == str(bad) and "UTF-8" in skip["reason"]


def test_datetime_timestamps_become_seconds():
    from leakguard.splits import _as_times

    out = _as_times(np.array(["2024-01-01T00:00:00", "2024-01-01T01:00:00", None], dtype=object), "s")
    assert out[1] - out[0] == 3600.0 and out[0] == pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    assert np.isnan(out[2])
    with pytest.raises(lg.InputError, match="split 'val': timestamps cannot be read"):
        _as_times(np.array(["yesterday-ish", "soon"], dtype=object), "val")


def test_corrupt_image_after_ultralytics_patched_pillow(tmp_path, image_files):
    """Ultralytics swaps PIL.Image.open for one that tries to install pi-heif on unknown files."""
    pytest.importorskip("ultralytics")
    import ultralytics.utils.patches  # noqa: F401  (applies the patch)
    from PIL import Image as PILImage

    assert PILImage.open.__module__.startswith("ultralytics")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png")
    report = lg.audit({"train": image_files[:2], "val": [garbage]}, config=CFG, checks=EXACT)
    (skip,) = report.skipped["val"]
    assert "not an image Pillow can read" in skip["reason"]
