"""target_leakage before training: each feature scored alone, cross-validated, inside lg.audit."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

import leakguard as lg
from leakguard.explain.planted import TABULAR_PLANTS, plant_tabular
from leakguard.explain.screening import FeatureScreen

CFG = lg.AuditConfig(progress=False)


def _audit(frame: pd.DataFrame, y, split_at: float = 0.7, config=CFG):
    frame = frame.assign(label=y)
    cut = int(len(frame) * split_at)
    return lg.audit({"train": frame.iloc[:cut], "val": frame.iloc[cut:]}, labels="label",
                    checks=["target_leakage"], config=config)


@pytest.fixture(scope="module")
def cancer():
    d = load_breast_cancer(as_frame=True)
    order = np.random.default_rng(0).permutation(len(d.target))
    return d.data.iloc[order].reset_index(drop=True), d.target.to_numpy()[order]


@pytest.mark.parametrize("kind", TABULAR_PLANTS)
def test_each_planted_leak_is_the_only_flagged_feature(cancer, kind):
    X, y = cancer
    frame, leaky = plant_tabular(X, y, kind, seed=1)
    report = _audit(frame, y)
    flagged = [f.features[0] for f in report.findings]
    column = leaky[0].removesuffix(" (missing)")
    assert flagged == [column], (kind, [(f.title, f.detail) for f in report.findings])
    f = report.findings[0]
    assert f.check == "target_leakage" and f.severity in ("warning", "critical")
    assert column in f.detail and f.remedy
    assert f.extra["rank"] == 1  # the planted feature is ranked first


def test_clean_table_with_decoys_of_every_type_flags_nothing(cancer):
    X, y = cancer
    frame, leaky = plant_tabular(X, y, "clean", seed=2)  # random ids, categories, notes, dates, missing values
    assert leaky == []
    report = _audit(frame, y)
    assert report.findings == [], [(f.title, f.detail) for f in report.findings]
    assert report.passed


def test_reasons_are_plain_words_naming_the_evidence(cancer):
    X, y = cancer
    text, _ = plant_tabular(X, y, "post_outcome_text", seed=0)
    f = _audit(text, y).findings[0]
    assert "text" in f.detail and "words that carry it" in f.detail
    assert any(w in f.detail for w in ("malignant", "benign", "tumour", "malignancy"))
    fn, _ = plant_tabular(X, y, "function_of_label", seed=0)
    assert "deterministic function of the label" in _audit(fn, y).findings[0].detail
    both, _ = plant_tabular(X, y, "function_of_label_and_other", seed=0)
    f = _audit(both, y).findings[0]
    assert "'department'" in f.detail and f.features == ["billed_amount"]
    miss, _ = plant_tabular(X, y, "missingness", seed=0)
    assert "missing in" in _audit(miss, y).findings[0].detail


def test_unique_identifier_cannot_fake_skill_under_cross_validation(rng):
    # a row id is a perfect lookup key for the training folds, and worthless on held-out folds
    n = 600
    y = rng.integers(0, 2, n)
    frame = pd.DataFrame({"row_key": [f"R-{i:06d}" for i in rng.permutation(n)],
                          "noise": rng.normal(size=n)})
    table = FeatureScreen().fit(frame, y).table_.set_index("feature")
    assert table.loc["row_key", "kind"] == "identifier"
    assert table.loc["row_key", "skill"] < 0.15 and not table["suspicious"].any()
    # the same id, numbered by outcome, is flagged
    frame["row_key"] = [f"R-{i:06d}" for i in np.argsort(np.argsort(y + rng.uniform(0, 1.2, n)))]
    table = FeatureScreen().fit(frame, y).table_.set_index("feature")
    assert table.loc["row_key", "suspicious"] and "identifier" in table.loc["row_key", "reason"]


def test_multiclass_and_regression_labels(rng):
    d = load_wine(as_frame=True)
    frame, _ = plant_tabular(d.data, d.target.to_numpy(), "label_noise", seed=0)
    report = _audit(frame, d.target.to_numpy(), split_at=0.99)
    assert [f.features for f in report.findings] == [["outcome_score"]]
    assert "chance is 0.33" in report.findings[0].detail
    r = load_diabetes(as_frame=True)
    y = r.target.to_numpy()
    clean = FeatureScreen().fit(r.data, y)
    assert clean.task_ == "regression" and not clean.table_["suspicious"].any()
    leaky = r.data.assign(post_value=y * 2 + rng.normal(0, 3, len(y)))
    table = FeatureScreen().fit(leaky, y).table_
    assert table.iloc[0]["feature"] == "post_value" and table.iloc[0]["severity"] == "critical"
    assert "R\u00b2" in table.iloc[0]["reason"]


def test_numpy_arrays_labels_mapping_and_report_round_trip(tmp_path, cancer):
    X, y = cancer
    arr = np.column_stack([X.to_numpy(), y + np.random.default_rng(0).normal(0, 0.05, len(y))])
    report = lg.audit({"train": arr[:400], "val": arr[400:]}, labels={"train": y[:400], "val": y[400:]},
                      config=CFG)
    tl = [f for f in report.findings if f.check == "target_leakage"]
    assert [f.features for f in tl] == [[f"x{X.shape[1]}"]] and tl[0].severity == "critical"
    assert report.summary()["leakguard/target_leakage/features"] == 1.0
    back = lg.Report.from_json(report.to_json(tmp_path / "r.json"))
    assert [f.features for f in back.findings if f.check == "target_leakage"] == [[f"x{X.shape[1]}"]]
    html = report.to_html()
    assert "target_leakage" in html and f"x{X.shape[1]}" in html


def test_check_applies_only_to_labelled_tables(rng):
    X = rng.normal(size=(50, 3))
    assert "target_leakage" not in lg.audit({"train": X[:40], "val": X[40:]}, config=CFG).meta["checks"]
    with pytest.raises(lg.InputError, match="do not apply"):
        lg.audit({"train": X[:40], "val": X[40:]}, checks=["target_leakage"], config=CFG)


def test_options_from_config(cancer):
    X, y = cancer
    frame, _ = plant_tabular(X, y, "identifier", seed=1)
    strict = lg.AuditConfig(progress=False, check_options={"target_leakage": {"identifier_skill": 0.99}},
                            severity={"target_leakage": "critical"})
    assert _audit(frame, y, config=strict).findings == []
    frame, _ = plant_tabular(X, y, "function_of_label", seed=1)
    f = _audit(frame, y, config=strict).findings
    assert f and all(x.severity == "critical" for x in f)


def test_text_names_outcome_html_escaped(cancer):
    X, y = cancer
    frame = X.iloc[:, :3].copy()
    frame["<b>note</b>"] = np.where(y == 1, "all <script>clear</script> benign follow up", "malignant tumour found today")
    report = _audit(frame, y)
    assert [f.features for f in report.findings] == [["<b>note</b>"]]
    html = report.to_html()
    assert "<b>note</b>" not in html and "&lt;b&gt;note&lt;/b&gt;" in html


def test_two_leaks_two_findings_counted_once_each(cancer):
    X, y = cancer
    frame, a = plant_tabular(X, y, "label_noise", seed=0)
    frame, b = plant_tabular(frame, y, "function_of_label", seed=0)
    report = _audit(frame, y)
    assert sorted(f.features[0] for f in report.findings) == sorted(a + b)
    assert report.summary()["leakguard/target_leakage/features"] == 2.0
    assert not report.passed and report.verdict == "fail"
