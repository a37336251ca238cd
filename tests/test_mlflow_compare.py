"""`leakguard compare`: a leaky and a clean run of the demo data, side by side (terminal and HTML)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mlflow_leaky_vs_clean.py"


def load_example():
    spec = importlib.util.spec_from_file_location("mlflow_leaky_vs_clean", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compare_leaky_and_clean_demo_runs(mlflow_uri, tmp_path, capsys, monkeypatch):
    from mlflow import MlflowClient

    from leakguard.cli import main
    from leakguard.tracking import compare_runs

    monkeypatch.setenv("COLUMNS", "160")  # rich wraps to the terminal width
    # exact duplicates only: the story needs one check, and the test stays fast
    leaky_id, clean_id = load_example().main(tracking_uri=mlflow_uri, save_root=tmp_path / "saved",
                                             checks=["exact_duplicate"])
    client = MlflowClient(tracking_uri=mlflow_uri)
    leaky, clean = client.get_run(leaky_id).data, client.get_run(clean_id).data
    assert leaky.tags["leakguard.verdict"] == "fail" and clean.tags["leakguard.verdict"] != "fail"
    assert leaky.metrics["leakguard/val/leaked_fraction"] > 0.1
    assert clean.metrics["leakguard/val/leaked_fraction"] < leaky.metrics["leakguard/val/leaked_fraction"]
    # a 1-NN model memorises: it scores the leaked part better than the clean part
    assert leaky.metrics["accuracy/leaked"] > leaky.metrics["accuracy/clean"]
    assert "accuracy/leaked" not in clean.metrics

    cmp = compare_runs(leaky_id, clean_id, client=client)
    assert [r["verdict"] for r in cmp["runs"]] == [leaky.tags["leakguard.verdict"], clean.tags["leakguard.verdict"]]
    row = next(r for r in cmp["clean_leaked"] if r["metric"] == "accuracy")
    assert row["a"]["gap"] == pytest.approx(leaky.metrics["accuracy/leaked"] - leaky.metrics["accuracy/clean"])
    assert row["b"]["leaked"] is None and row["b"]["clean"] == pytest.approx(clean.metrics["accuracy/clean"])
    digests = {r["name"]: r for r in cmp["datasets"]}
    assert digests["train"]["same"] and not digests["val"]["same"]  # same training data, cleaned val

    html_path = tmp_path / "cmp" / "compare.html"
    # runs are found by name too
    assert main(["compare", "leaky", "clean", "--tracking-uri", mlflow_uri, "--html", str(html_path)]) == 0
    out = capsys.readouterr().out
    for text in ("verdict", "fail", "leakguard/val/leaked_fraction", "accuracy", "same data",
                 f"{100 * leaky.metrics['leakguard/val/leaked_fraction']:.1f}%",
                 f"{leaky.metrics['accuracy/clean']:.4f}", f"{clean.metrics['accuracy']:.4f}"):
        assert text in out, f"{text!r} not in the terminal output:\n{out}"
    html = html_path.read_text(encoding="utf-8")
    assert 'id="verdict-a">fail<' in html and 'id="clean-leaked"' in html
    assert f"{leaky.metrics['accuracy/leaked'] - leaky.metrics['accuracy/clean']:+.4f}" in html


def test_compare_escapes_user_text_and_names_missing_runs(mlflow_uri, tmp_path, capsys):
    from mlflow import MlflowClient

    from leakguard.cli import main

    client = MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name("Default").experiment_id
    evil = "<script>alert('x')</script>"
    a = client.create_run(exp, run_name=evil).info.run_id
    b = client.create_run(exp, run_name="plain").info.run_id
    client.log_metric(a, "f1/clean", 0.5)
    client.log_metric(a, "f1/leaked", 0.9)
    client.set_tag(a, "leakguard.verdict", "<b>fail</b>")
    html_path = tmp_path / "c.html"
    assert main(["compare", a, b, "--tracking-uri", mlflow_uri, "--html", str(html_path)]) == 0
    html = html_path.read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;" in html and "<b>fail" not in html
    assert "+0.4000" in html  # the gap of the run with clean/leaked figures
    capsys.readouterr()
    assert main(["compare", a, "no-such-run", "--tracking-uri", mlflow_uri]) == 2
    assert "no-such-run" in capsys.readouterr().out
