"""exact_duplicate on every modality: canonical content, no false positives."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import leakguard as lg

CFG = lg.AuditConfig(progress=False)
EXACT = ["exact_duplicate"]  # other checks have their own tests


def test_arrays_find_every_cross_split_copy(rng):
    X = rng.normal(size=(200, 6))
    val = np.vstack([rng.normal(size=(40, 6)), X[[3, 50, 199]]])
    report = lg.audit({"train": X, "val": val}, config=CFG, checks=EXACT)
    assert report.leaked("val").tolist() == [40, 41, 42]
    pairs = report.pairs("exact_duplicate")
    cross = pairs[pairs.split_a != pairs.split_b]
    assert sorted(zip(cross.index_a, cross.index_b)) == [(3, 40), (50, 41), (199, 42)]
    assert not report.passed and report.verdict == "fail"
    assert report.summary()["leakguard/val/leaked_fraction"] == pytest.approx(3 / 43)


def test_clean_split_passes(rng):
    X = rng.normal(size=(300, 5))
    report = lg.audit({"train": X[:200], "val": X[200:250], "test": X[250:]}, config=CFG, checks=EXACT)
    assert report.passed and report.verdict == "pass"
    assert report.findings == []
    assert len(report.leaked("val")) == 0 and len(report.leaked("test")) == 0


def test_floats_normalised_negative_zero_and_nan():
    train = np.array([[0.0, 1.0, np.nan], [2.0, 3.0, 4.0]])
    val = np.array([[-0.0, 1.0, float("nan")], [2.0, 3.0, 4.000001]])
    report = lg.audit({"train": train, "val": val}, config=CFG, checks=EXACT)
    assert report.leaked("val").tolist() == [0]


def test_dataframe_column_order_and_label_columns():
    train = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "label": [0, 1, 0]})
    val = pd.DataFrame({"label": [1, 1], "b": ["y", "q"], "a": [2.0, 9.0]})  # same row, other order and int/float
    report = lg.audit({"train": train, "val": val}, labels="label", config=CFG, checks=EXACT)
    assert report.leaked("val").tolist() == [0]


def test_dataframe_different_columns_is_a_clear_error():
    with pytest.raises(lg.InputError, match="different feature columns"):
        lg.audit({"train": pd.DataFrame({"a": [1]}), "val": pd.DataFrame({"b": [1]})}, config=CFG, checks=EXACT)


def test_text_unicode_nfc_and_whitespace():
    train = ["Caf\u00e9 au lait", "the quick brown fox", "something else"]
    val = ["Cafe\u0301   au\tlait", "The quick brown fox", "new text"]  # NFD + whitespace; case differs
    report = lg.audit({"train": train, "val": val}, config=CFG, checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [0]


def test_image_png_and_lossless_webp_are_the_same_image(tmp_path, rng):
    pix = rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8)
    other = rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8)
    Image.fromarray(pix).save(tmp_path / "a.png")
    Image.fromarray(other).save(tmp_path / "b.png")
    Image.fromarray(pix).save(tmp_path / "a.webp", lossless=True)
    Image.fromarray(other).save(tmp_path / "c.jpg", quality=95)  # lossy: not an exact copy
    report = lg.audit({"train": [tmp_path / "a.png", tmp_path / "b.png"],
                       "val": [tmp_path / "c.jpg", tmp_path / "a.webp"]}, config=CFG, checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [1]
    assert (tmp_path / "a.webp").read_bytes() != (tmp_path / "a.png").read_bytes()


def test_within_split_duplicates_are_information(rng):
    X = rng.normal(size=(50, 3))
    train = np.vstack([X, X[:2]])
    report = lg.audit({"train": train, "val": rng.normal(size=(10, 3))}, config=CFG, checks=EXACT)
    assert report.passed
    (f,) = report.findings
    assert f.severity == "info" and f.splits == ("train",) and f.count == 2


def test_json_round_trip(tmp_path, rng):
    X = rng.normal(size=(30, 4))
    report = lg.audit({"train": X, "val": X[:3]}, config=CFG, checks=EXACT)
    path = tmp_path / "r.json"
    report.to_json(path)
    back = lg.Report.from_json(path)
    assert back.summary() == report.summary()
    assert back.leaked("val").tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(back.pairs(), report.pairs())


def test_signature_cache_reads_only_new_samples(tmp_path, rng):
    imgs = [rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8) for _ in range(12)]
    paths = []
    for i, im in enumerate(imgs):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(im).save(p)
        paths.append(p)
    cfg = lg.AuditConfig(progress=False, cache_dir=tmp_path / "cache")
    first = lg.audit({"train": paths[:8], "val": paths[8:10]}, config=cfg, checks=["exact_duplicate"])
    assert first.meta["cache"]["hits"] == 0
    second = lg.audit({"train": paths[:8], "val": paths[8:12]}, config=cfg, checks=["exact_duplicate"])
    assert second.meta["cache"] == {"hits": 10, "misses": 2}


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_, np.uint64, np.float32, "S4"])
def test_cached_signatures_round_trip_every_dtype(dtype):
    from leakguard.signatures.compute import from_bytes, to_bytes

    arr = np.arange(6).reshape(2, 3).astype(dtype)
    back = from_bytes(to_bytes(arr))
    assert back.dtype == arr.dtype and back.shape == arr.shape and (back == arr).all()
    assert from_bytes(to_bytes(np.float64(2.5))) == 2.5


def test_image_signatures_come_back_from_the_cache(tmp_path, rng):
    """The second audit of images reads every signature kind the checks need from the cache."""
    paths = []
    for i in range(10):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    cfg = lg.AuditConfig(progress=False, cache_dir=tmp_path / "cache")
    checks = ["exact_duplicate", "augmented_duplicate"]
    first = lg.audit({"train": paths[:7], "val": paths[7:]}, config=cfg, checks=checks)
    second = lg.audit({"train": paths[:7], "val": paths[7:]}, config=cfg, checks=checks)
    assert first.meta["cache"]["hits"] == 0
    assert second.meta["cache"]["misses"] == 0 and second.meta["cache"]["hits"] > 0
    assert [f.check for f in second.findings] == [f.check for f in first.findings]


def test_same_sample_with_different_labels_is_flagged(rng):
    X = rng.normal(size=(20, 3))
    val = X[[1, 2, 3]]
    report = lg.audit({"train": X, "val": val}, labels={"train": np.zeros(20, int), "val": np.array([0, 1, 0])},
                      config=CFG, checks=EXACT)
    (f,) = [f for f in report.findings if f.cross_split]
    assert f.extra["label_conflicts"]["count"] == 1
    assert f.extra["label_conflicts"]["pairs"] == [[2, 1, "0", "1"]]
    assert "different label" in f.detail


def test_datetime_columns_compare_by_instant_whatever_the_unit():
    t = pd.Series(pd.to_datetime(["2024-01-01 10:00", "2024-02-01 11:30"]))
    train = pd.DataFrame({"when": t.astype("datetime64[us]"), "x": [1, 2]})
    val = pd.DataFrame({"when": t.astype("datetime64[ns]").iloc[[1]].reset_index(drop=True), "x": [2]})
    report = lg.audit({"train": train, "val": val}, config=CFG, checks=EXACT)
    assert report.leaked("val").tolist() == [0]


def test_tabular_text_nfc_nulls_and_long_values_across_storages():
    """Text cells compare after NFC whatever pandas stores them as (Arrow str, object, python)."""
    long = "a long free-text cell " * 20
    train = pd.DataFrame({"t": pd.array(["Caf\u00e9", None, long, "x", "", "k"], dtype="str"),
                          "n": [1, 2, 3, 4, 5, 6]})
    val = pd.DataFrame({"t": pd.Series(["Cafe\u0301", None, long, long + " ", "", "k"], dtype=object),
                        "n": [1.0, 2.0, 3.0, 3.0, 5.0, 7.0]})
    for storage in ("str", object, pd.StringDtype("python")):
        v = val.assign(t=val["t"].astype(storage))
        report = lg.audit({"train": train, "val": v}, config=CFG, checks=EXACT)
        assert report.leaked("val").tolist() == [0, 1, 2, 4], storage


def test_frame_row_hashes_equal_hashes_of_canonical_columns():
    """The fast path (raw frame) and the canonical-column path give the same row hashes."""
    from leakguard.signatures.exact import canonical_columns, frame_row_hashes, row_hashes

    rng = np.random.default_rng(0)
    n = 40_000  # past the dictionary-encoding threshold of text columns
    words = np.array(["", "a", "abcdefgh", "abcdefghi", "Caf\u00e9", "Cafe\u0301", "y" * 70, None], dtype=object)
    frame = pd.DataFrame({
        "f": rng.normal(size=n).round(1), "z": rng.choice([0.0, -0.0, np.nan], n),
        "i": rng.integers(0, 5, n), "b": rng.integers(0, 2, n).astype(bool),
        "s": pd.array(words[rng.integers(0, 8, n)], dtype="str"),
        "u": pd.array([f"id-{k}" * (k % 5) for k in range(n)], dtype="str"),
        "o": pd.Series(words[rng.integers(0, 7, n)], dtype=object),
        "m": pd.Series(np.array([1, "1", None, 2.5, "e\u0301"], dtype=object)[rng.integers(0, 5, n)]),
        "t": pd.to_datetime(rng.integers(0, 10, n), unit="D").astype("datetime64[us]"),
        "e": pd.array(rng.integers(0, 3, n), dtype="Int64")})
    columns = sorted(frame.columns)
    fast = frame_row_hashes(frame, columns)
    assert np.array_equal(fast, row_hashes(canonical_columns(frame, columns)))
    part = frame.iloc[123:4567]  # a slice: Arrow arrays with an offset
    assert np.array_equal(frame_row_hashes(part, columns), fast[123:4567])
    # NFC: the composed and decomposed spellings hash alike, and distinct rows rarely collide
    pair = pd.DataFrame({"s": pd.array(["Caf\u00e9", "Cafe\u0301", "Cafe"], dtype="str")})
    h = frame_row_hashes(pair, ["s"])
    assert h[0] == h[1] != h[2]
    assert len(np.unique(fast)) == len(pd.DataFrame(canonical_columns(frame, columns)).drop_duplicates())


def test_hash_join_returns_the_first_training_row_of_each_key():
    from leakguard.search import duplicate_groups, hash_join

    train = np.array([5, 7, 5, 9, 7], dtype=np.uint64)
    val = np.array([7, 1, 5, 5], dtype=np.uint64)
    ib, ia = hash_join(train, val)
    assert ib.tolist() == [0, 2, 3] and ia.tolist() == [1, 0, 0]
    assert sorted(g.tolist() for g in duplicate_groups(train)) == [[0, 2], [1, 4]]
