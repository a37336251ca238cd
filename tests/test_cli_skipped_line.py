"""The `leakguard audit` summary's line on unreadable samples, from a user's seat (a real subprocess)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image


def test_one_unreadable_sample_is_one_sample(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / split / f"{i}.png")
    (tmp_path / "val" / "broken.png").write_bytes(b"not a png")
    out = subprocess.run([sys.executable, "-m", "leakguard", "audit", str(tmp_path / "train"), str(tmp_path / "val"),
                          "--checks", "exact_duplicate", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "1 samples" not in out.stdout and "1 sample could not be read and was skipped" in out.stdout


def test_html_report_says_one_sample_was_skipped(tmp_path):
    import leakguard as lg

    rng = np.random.default_rng(1)
    files = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
        files.append(path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    report = lg.audit({"train": files[:3], "val": [files[3], tmp_path / "broken.png"]}, checks=["exact_duplicate"],
                      config=lg.AuditConfig(progress=False))
    html = report.to_html(tmp_path / "r.html")
    assert "1 sample could not be read and was skipped" in html and "1 samples" not in html


def test_html_report_names_what_the_spark_engine_did_not_run(tmp_path):
    """report.meta["spark"] lists checks (not_run) and parts of checks (local_only) Spark left out;
    the HTML report says so, not only the JSON (the report's meta is set as the Spark engine sets it)."""
    import leakguard as lg

    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 3))
    report = lg.audit({"train": x[:20], "val": x[20:]}, checks=["exact_duplicate"], config=lg.AuditConfig(progress=False))
    assert "not run on the Spark engine" not in report.to_html(tmp_path / "local.html")
    report.meta["spark"] = {"not_run": ["partial_duplicate"],
                            "local_only": ["group_overlap scene links (images of one static scene)"]}
    html = report.to_html(tmp_path / "spark.html")
    assert "not run on the Spark engine: partial_duplicate" in html
    assert "group_overlap scene links (images of one static scene)" in html


def test_audit_help_explains_engine_and_cache_dir():
    # the options a Spark user reads first: what --engine spark does and that --cache-dir is local-only
    from leakguard.cli import build_parser

    parser = build_parser()
    audit = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith("audit"))
    text = " ".join(audit.format_help().split())
    assert "spark: run the audit as a Spark job" in text
    assert "local engine only: --engine spark ignores it" in text
