"""The `leakguard` command from a user's seat: a real subprocess, real files."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
from PIL import Image


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "leakguard", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_audit_folders_writes_reports_and_exits_1_on_leak(tmp_path, rng):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
    pics = [rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(5)]
    for i, p in enumerate(pics[:4]):
        Image.fromarray(p).save(tmp_path / "train" / f"t{i}.png")
    Image.fromarray(pics[2]).save(tmp_path / "val" / "copy_of_t2.png")
    Image.fromarray(pics[4]).save(tmp_path / "val" / "new.png")
    out = run("audit", str(tmp_path / "train"), str(tmp_path / "val"), "--checks", "exact_duplicate",
              "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"), "--no-progress")
    assert out.returncode == 1, out.stderr
    assert "verdict: FAIL" in out.stdout and "exact_duplicate" in out.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verdict"] == "fail" and data["summary"]["leakguard/val/exact_duplicate"] == 1
    html = (tmp_path / "r.html").read_text()
    assert "copy_of_t2.png" in html and "data:image/png;base64," in html


def test_audit_csv_with_label_column_passes_when_clean(tmp_path, rng):
    X = rng.normal(size=(60, 3))
    pd.DataFrame(X[:40], columns=list("abc")).assign(y=rng.integers(0, 2, 40)).to_csv(tmp_path / "tr.csv", index=False)
    pd.DataFrame(X[40:], columns=list("abc")).assign(y=rng.integers(0, 2, 20)).to_csv(tmp_path / "va.csv", index=False)
    out = run("audit", str(tmp_path / "tr.csv"), str(tmp_path / "va.csv"), "--labels", "y",
              "--checks", "exact_duplicate", "--no-progress")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verdict: PASS" in out.stdout


def test_audit_bad_path_is_a_clear_error(tmp_path):
    out = run("audit", str(tmp_path / "nope"), str(tmp_path / "nope2"), "--no-progress")
    assert out.returncode == 2
    assert "no such file or folder" in out.stdout


def test_demo_runs_and_writes_reports(tmp_path):
    out = run("demo", "--out", str(tmp_path / "demo"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "validation images" in out.stdout
    assert (tmp_path / "demo" / "report.html").exists() and (tmp_path / "demo" / "report.json").exists()
    data = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert data["summary"]["leakguard/val/leaked_fraction"] > 0.1


def test_import_leakguard_imports_no_training_framework():
    code = ("import sys, leakguard as lg; lg.AuditConfig; "
            "bad = [m for m in ('torch', 'lightning', 'ultralytics', 'mlflow', 'shap', 'pyspark', 'pandas') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_recalibrate_growth_flag_keeps_or_recomputes_thresholds_of_a_grown_training_split(tmp_path):
    """`--cache-dir` with a training folder grown by 2 %: the default keeps the earlier thresholds,
    `--recalibrate-growth 0` calibrates again; the JSON report says which."""
    from leakguard.similarity.synthetic import prose_corpus

    corpus = prose_corpus(130)
    train, val = tmp_path / "train", tmp_path / "val"
    train.mkdir(), val.mkdir()
    for i, text in enumerate(corpus[:100]):
        (train / f"t{i:03d}.txt").write_text(text)
    for i, text in enumerate(corpus[110:130]):
        (val / f"v{i:03d}.txt").write_text(text)
    cache = tmp_path / "cache"

    def audit(*extra):
        out = run("audit", str(train), str(val), "--checks", "augmented_duplicate", "--cache-dir", str(cache),
                  "--json", str(tmp_path / "r.json"), "--no-progress", "--no-fail", *extra)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads((tmp_path / "r.json").read_text())["meta"]["cache"]["calibration"]["augmented_duplicate"]

    assert audit()["state"] == "computed"
    for i, text in enumerate(corpus[100:102]):             # +2 % training texts
        (train / f"new{i}.txt").write_text(text)
    kept = audit()
    assert kept["state"] == "kept" and kept["kept_from"] == 100
    assert audit("--recalibrate-growth", "0")["state"] == "computed"
