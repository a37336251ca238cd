"""The ``leakguard`` MLflow evaluator, through ``mlflow.models.evaluate``."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import leakguard as lg

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def tables():
    """Breast-cancer rows: the evaluation table holds 30 copies of training rows."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    train = frame.iloc[:400].reset_index(drop=True)
    evaluation = pd.concat([frame.iloc[400:], frame.iloc[:30]], ignore_index=True)
    return train, evaluation


def fit(train):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(
        train.drop(columns="target"), train["target"])


def test_evaluate_with_leakguard_evaluator(mlflow_uri, tables):
    from mlflow import MlflowClient

    train, evaluation = tables
    model = fit(train)
    with mlflow.start_run() as run:
        # pip_requirements given: MLflow then skips inferring them in a subprocess (a minute under load)
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = mlflow.models.evaluate(
                info.model_uri, evaluation, targets="target", model_type="classifier",
                evaluators=["default", "leakguard"],
                evaluator_config={"default": {"log_model_explainability": False},
                                  "leakguard": {"train_data": train, "target_leakage": True,
                                                "max_samples": 100}})
    m = result.metrics
    assert "accuracy_score" in m                              # the default evaluator ran too
    assert m["leakguard/eval/exact_duplicate"] == 30
    assert m["leakguard/eval/leaked_fraction"] >= 30 / len(evaluation)
    assert 0 <= m["accuracy_score/clean"] <= 1 and 0 <= m["accuracy_score/leaked"] <= 1

    client = MlflowClient(tracking_uri=mlflow_uri)
    logged = client.get_run(run.info.run_id)
    assert len(client.search_runs([run.info.experiment_id])) == 1  # into the evaluation's run, no other
    assert logged.data.tags["leakguard.verdict"] == "fail"
    assert logged.data.metrics["leakguard/eval/exact_duplicate"] == 30
    assert logged.data.metrics["accuracy_score/leaked"] == m["accuracy_score/leaked"]
    names = {a.path for a in client.list_artifacts(run.info.run_id, "leakguard")}
    assert {"leakguard/report.html", "leakguard/report.json", "leakguard/pairs.parquet"} <= names
    contexts = {i.dataset.name: {t.key: t.value for t in i.tags}.get("mlflow.data.context")
                for i in logged.inputs.dataset_inputs}
    assert contexts.get("train") == "training" and contexts.get("eval") == "validation"

    messages = [str(w.message) for w in caught if "leakguard evaluator" in str(w.message)]
    try:
        from leakguard.explain import find_target_leakage  # noqa: F401
        available = True
    except (ImportError, AttributeError):
        available = False
    if available:  # the explanation logs into the same run, beside the audit
        assert not any("not available" in msg for msg in messages), messages
        explained = {a.path for a in client.list_artifacts(run.info.run_id, "leakguard/explain")}
        assert "leakguard/explain/report.html" in explained, explained
    else:
        assert any("target-leakage analysis skipped" in msg for msg in messages), messages


def test_evaluator_needs_training_data(mlflow_uri, tables):
    train, evaluation = tables
    model = fit(train)

    def predict(frame):
        return model.predict(frame)

    with mlflow.start_run():
        with pytest.raises(lg.InputError, match="train_data"):
            mlflow.models.evaluate(predict, evaluation, targets="target", model_type="classifier",
                                   evaluators=["leakguard"], evaluator_config={"leakguard": {}})


def test_evaluator_on_a_plain_function_without_model_logging(mlflow_uri, tables):
    """A python function as the model: the clean/leaked split still comes out; no target analysis."""
    train, evaluation = tables
    model = fit(train)
    with mlflow.start_run():
        result = mlflow.models.evaluate(lambda frame: model.predict(frame), evaluation, targets="target",
                                        model_type="classifier", evaluators=["leakguard"],
                                        evaluator_config={"leakguard": {"train_data": train,
                                                                        "target_leakage": False}})
    right = model.predict(evaluation.drop(columns="target")) == evaluation["target"].to_numpy()
    assert result.metrics["accuracy_score/leaked"] == pytest.approx(right[-30:].mean())
    leaked = np.zeros(len(evaluation), bool)
    leaked[-30:] = True
    if result.metrics["leakguard/eval/leaked_fraction"] == pytest.approx(30 / len(evaluation)):
        assert result.metrics["accuracy_score/clean"] == pytest.approx(right[~leaked].mean())
