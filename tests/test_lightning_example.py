"""examples/lightning_digits.py (what `make demo` runs) end to end, at a tiny size."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("lightning.pytorch")
pytest.importorskip("mlflow")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lightning_digits.py"


def test_example_prints_both_scores_and_logs_two_runs(tmp_path, capsys):
    from conftest import sqlite_mlflow_store

    spec = importlib.util.spec_from_file_location("lightning_digits", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    import torch

    threads = torch.get_num_threads()   # the example trains on one thread
    with sqlite_mlflow_store(tmp_path) as uri:
        try:
            out = example.main(["--tracking-uri", uri, "--digits", "80", "--epochs", "1", "--no-explain"])
        finally:
            torch.set_num_threads(threads)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("leakguard-lightning-digits")
        names = {r.info.run_name for r in client.search_runs([exp.experiment_id])}
        leaky = client.get_run(out["leaky_run"]).data.metrics
    printed = capsys.readouterr().out
    assert names == {"leaky-split", "leakguard-resplit"}
    assert out["leaky_verdict"] == "fail"
    assert {"val_acc/clean", "val_acc/leaked"} <= set(out["leak_effect"]) <= set(leaky)
    assert "clean" in printed and "leaked" in printed and "leak-free re-split" in printed
    assert "where the time went" in printed
