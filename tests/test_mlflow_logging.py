"""report.log_to_mlflow / log_report against a real sqlite tracking store."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import leakguard as lg

mlflow = pytest.importorskip("mlflow")


def leaky_images(rng, n_train=40, n_new=12, n_copies=6):
    """RGB images; the validation split holds exact copies of the first ``n_copies`` training images."""
    train = rng.integers(0, 256, (n_train, 16, 16, 3), dtype=np.uint8)
    val = np.concatenate([train[:n_copies], rng.integers(0, 256, (n_new, 16, 16, 3), dtype=np.uint8)])
    return train, val


@pytest.fixture
def report(rng):
    train, val = leaky_images(rng)
    return lg.audit({"train": train, "val": val}, modality="image", checks=["exact_duplicate"],
                    config=lg.AuditConfig(progress=False))


def new_run(client, name="r"):
    exp = client.get_experiment_by_name("Default")
    return client.create_run(exp.experiment_id, run_name=name).info.run_id


def count_runs(client):
    return sum(len(client.search_runs([e.experiment_id])) for e in client.search_experiments())


def test_logs_metrics_tags_artifacts_table_and_datasets(mlflow_uri, report, tmp_path):
    from mlflow import MlflowClient
    from PIL import Image

    client = MlflowClient(tracking_uri=mlflow_uri)
    run_id = new_run(client)
    extra = Image.new("RGB", (20, 10), (200, 30, 30))
    extra_path = tmp_path / "cluster.png"
    Image.new("RGB", (8, 8), (0, 0, 255)).save(extra_path)
    before = count_runs(client)
    out = report.log_to_mlflow(run_id=run_id, client=client,
                               pictures={"shap_summary": extra, "cluster_0.png": extra_path})
    assert out["uploaded"] and out["run_id"] == run_id
    assert count_runs(client) == before, "logging must never create a run"
    assert mlflow.active_run() is None

    run = client.get_run(run_id)
    m = run.data.metrics
    assert m["leakguard/val/leaked_fraction"] == pytest.approx(6 / 18)
    assert m["leakguard/val/exact_duplicate"] == 6
    assert run.data.tags["leakguard.verdict"] == "fail"
    assert run.data.tags["leakguard.version"] == lg.__version__

    names = {a.path for a in client.list_artifacts(run_id, "leakguard")}
    for f in ("report.html", "report.json", "pairs.csv", "pairs.parquet", "pairs_table.json",
              "pairs_exact_duplicate_val.png", "shap_summary.png", "cluster_0.png"):
        assert f"leakguard/{f}" in names, f"{f} missing from {sorted(names)}"

    local = client.download_artifacts(run_id, "leakguard", str(tmp_path / "dl"))
    html = open(f"{local}/report.html", encoding="utf-8").read()
    assert 'src="http' not in html and "<script src" not in html  # self-contained
    assert json.loads(open(f"{local}/report.json").read())["verdict"] == "fail"
    pq = pd.read_parquet(f"{local}/pairs.parquet")
    assert sorted(pq.index_b) == list(range(6)) and set(pq.check) == {"exact_duplicate"}
    from PIL import Image as PILImage

    with PILImage.open(f"{local}/pairs_exact_duplicate_val.png") as pic:
        assert pic.size[0] > 200 and pic.size[1] > 100
    with PILImage.open(f"{local}/cluster_0.png") as pic:
        assert pic.getpixel((0, 0)) == (0, 0, 255)

    # the pairs through log_table: MLflow's own loader lines runs up by the artifact file
    exp_id = run.info.experiment_id
    table = client.load_table(exp_id, "leakguard/pairs_table.json", run_ids=[run_id])
    assert len(table) == 6 and set(table["split_b"]) == {"val"}

    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "val"}
    ctx = {n: {t.key: t.value for t in i.tags}["mlflow.data.context"] for n, i in inputs.items()}
    assert ctx == {"train": "training", "val": "validation"}
    assert inputs["val"].dataset.digest == report.splits["val"]["digest"]


def test_same_data_same_digest_in_two_runs(mlflow_uri, rng):
    from mlflow import MlflowClient

    train, val = leaky_images(rng)
    client = MlflowClient(tracking_uri=mlflow_uri)
    digests = []
    for data_val in (val, val.copy(), np.concatenate([val, val[-1:] // 2])):
        rep = lg.audit({"train": train, "test": data_val}, modality="image", checks=["exact_duplicate"],
                       config=lg.AuditConfig(progress=False))
        run_id = new_run(client)
        rep.log_to_mlflow(run_id=run_id, client=client)
        inputs = client.get_run(run_id).inputs.dataset_inputs
        by_name = {i.dataset.name: i for i in inputs}
        assert {t.value for t in by_name["test"].tags if t.key == "mlflow.data.context"} == {"test"}
        digests.append((by_name["train"].dataset.digest, by_name["test"].dataset.digest))
    assert digests[0] == digests[1]                        # same data, two runs: same digests
    assert digests[2][0] == digests[0][0] and digests[2][1] != digests[0][1]   # one sample more


def test_active_run_and_no_stray_run(mlflow_uri, report):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    with pytest.raises(lg.LeakGuardError, match="never starts a stray run"):
        report.log_to_mlflow()
    assert count_runs(client) == 0
    with mlflow.start_run() as run:
        out = report.log_to_mlflow(step=3)
    assert out["run_id"] == run.info.run_id and count_runs(client) == 1
    hist = client.get_metric_history(run.info.run_id, "leakguard/val/leaked_fraction")
    assert [h.step for h in hist] == [3]


def test_custom_prefix(mlflow_uri, report):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    run_id = new_run(client)
    report.log_to_mlflow(run_id=run_id, client=client, prefix="audit_epoch0")
    run = client.get_run(run_id)
    assert "audit_epoch0/val/leaked_fraction" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run_id, "audit_epoch0")} >= {"audit_epoch0/report.html"}


def test_refused_write_keeps_report_and_upload_sends_it_later(mlflow_uri, report, tmp_path):
    """A run the store refuses (it does not exist): warning with the path, nothing raised, upload later."""
    from mlflow import MlflowClient

    from leakguard.cli import main

    client = MlflowClient(tracking_uri=mlflow_uri)
    with pytest.warns(RuntimeWarning, match="leakguard upload") as rec:
        out = report.log_to_mlflow(run_id="0" * 32, client=client, save_dir=tmp_path / "kept")
    assert not out["uploaded"]
    message = str(rec[0].message)
    assert str((tmp_path / "kept").resolve()) in message and "0" * 32 in message
    for f in ("report.json", "report.html", "pairs.csv", "pairs.parquet", "pairs_exact_duplicate_val.png"):
        assert (tmp_path / "kept" / f).is_file()

    run_id = new_run(client, "later")
    assert main(["upload", str(tmp_path / "kept"), "--run-id", run_id, "--tracking-uri", mlflow_uri]) == 0
    run = client.get_run(run_id)
    assert run.data.tags["leakguard.verdict"] == "fail"
    assert run.data.metrics["leakguard/val/exact_duplicate"] == 6
    names = {a.path for a in client.list_artifacts(run_id, "leakguard")}
    assert {"leakguard/report.html", "leakguard/pairs_exact_duplicate_val.png"} <= names
    assert not any(n.endswith(".leakguard-upload.json") for n in names)
    # without --run-id the folder's own record names the run it was meant for (which is refused again)
    assert main(["upload", str(tmp_path / "kept"), "--tracking-uri", mlflow_uri]) == 1
    assert main(["upload", str(tmp_path / "nothing-here"), "--run-id", run_id]) == 2


def test_clean_report_passes_and_logs_no_table(mlflow_uri, rng):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    a = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    b = rng.integers(0, 256, (10, 8, 8), dtype=np.uint8)
    rep = lg.audit({"train": a, "val": b}, modality="image", checks=["exact_duplicate"],
                   config=lg.AuditConfig(progress=False))
    run_id = new_run(client)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rep.log_to_mlflow(run_id=run_id, client=client)
    run = client.get_run(run_id)
    assert run.data.tags["leakguard.verdict"] == "pass"
    assert run.data.metrics["leakguard/val/leaked_fraction"] == 0
    names = {a.path for a in client.list_artifacts(run_id, "leakguard")}
    assert "leakguard/report.html" in names and "leakguard/pairs_table.json" not in names


def test_second_report_under_another_prefix_keeps_both(mlflow_uri, report, rng, tmp_path):
    """An audit and a model explanation in one run: own folders, own artifacts, the worse verdict."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    run_id = new_run(client)
    a = rng.integers(0, 256, (10, 8, 8), dtype=np.uint8)
    clean = lg.audit({"train": a, "val": rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)},
                     modality="image", checks=["exact_duplicate"], config=lg.AuditConfig(progress=False))
    assert clean.verdict == "pass"
    first = report.log_to_mlflow(run_id=run_id, client=client)
    second = clean.log_to_mlflow(run_id=run_id, client=client, prefix="leakguard/explain")
    assert first["folder"] != second["folder"] and second["folder"].parent == first["folder"]
    assert json.loads((first["folder"] / "report.json").read_text())["verdict"] == "fail"
    assert json.loads((second["folder"] / "report.json").read_text())["verdict"] == "pass"
    run = client.get_run(run_id)
    assert run.data.tags["leakguard.verdict"] == "fail"   # a passing explanation hides no failed audit
    assert "leakguard/explain/val/leaked_fraction" in run.data.metrics
    top = {x.path for x in client.list_artifacts(run_id, "leakguard")}
    explain = {x.path for x in client.list_artifacts(run_id, "leakguard/explain")}
    assert "leakguard/report.json" in top and "leakguard/explain/report.json" in explain
    assert not any("leakguard_explain" in p for p in top | explain)


def test_pair_pictures_for_images_text_and_rows(report, rng):
    """One PNG per finding with previews: image thumbnails, and text snippets / table rows drawn."""
    from leakguard.report.pictures import pair_pictures

    pics = pair_pictures(report)
    assert list(pics) == ["pairs_exact_duplicate_val"]
    grid = pics["pairs_exact_duplicate_val"]
    assert grid.size[0] >= 3 * 2 * 96 and grid.size[1] >= 2 * 96  # 6 pairs: 3 per row, 2 rows

    texts = [f"note {i}: the patient was seen on day {i} and sent home" for i in range(20)]
    text_report = lg.audit({"train": texts, "val": texts[:2] + ["an unrelated note"]}, checks=["exact_duplicate"],
                           config=lg.AuditConfig(progress=False))
    text_grid = pair_pictures(text_report)["pairs_exact_duplicate_val"]
    frame = pd.DataFrame(rng.normal(size=(20, 3)), columns=["x", "<y>", "z"])
    row_report = lg.audit({"train": frame, "val": frame.iloc[:2]}, checks=["exact_duplicate"],
                          config=lg.AuditConfig(progress=False))
    row_grid = pair_pictures(row_report)["pairs_exact_duplicate_val"]
    for g in (text_grid, row_grid):
        px = np.asarray(g.convert("L"))
        assert px.shape[1] > 400 and (px < 100).mean() > 0.005  # dark text was drawn in the cells


def test_bad_picture_and_unwritable_folder_warn_but_log(mlflow_uri, report, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    run_id = new_run(client)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.warns(RuntimeWarning) as rec:
        out = report.log_to_mlflow(run_id=run_id, client=client, save_dir=blocked / "sub",
                                   pictures={"broken": 42, "missing": tmp_path / "nope.png"})
    text = " ".join(str(w.message) for w in rec)
    assert "could not save the report" in text and "'broken' not saved" in text and "'missing' not saved" in text
    assert out["uploaded"] and (out["folder"] / "report.json").is_file()
    names = {a.path for a in client.list_artifacts(run_id, "leakguard")}
    assert "leakguard/report.html" in names and not any("broken" in n or "missing" in n for n in names)


def test_upload_sends_the_explanation_subfolder_too(mlflow_uri, report, tmp_path, monkeypatch):
    """A refused run: the audit and the explanation (prefix leakguard/explain) are saved in one folder
    and its subfolder; `leakguard upload FOLDER` sends both into the run."""
    from mlflow import MlflowClient

    from leakguard.cli import main
    from leakguard.tracking import log_report

    monkeypatch.setenv("LEAKGUARD_REPORT_DIR", str(tmp_path))
    client = MlflowClient(tracking_uri=mlflow_uri)
    with pytest.warns(RuntimeWarning, match="leakguard upload"):
        log_report(report, run_id="0" * 32, client=client)
        log_report(report, run_id="0" * 32, client=client, prefix="leakguard/explain")
    folder = tmp_path / ("0" * 32)
    subs = [p for p in folder.iterdir() if p.is_dir()]
    assert len(subs) == 1 and (subs[0] / "report.json").is_file()
    run_id = new_run(client, "later")
    assert main(["upload", str(folder), "--run-id", run_id, "--tracking-uri", mlflow_uri]) == 0
    names = {a.path for a in client.list_artifacts(run_id, "leakguard")}
    assert {"leakguard/report.html", "leakguard/explain"} <= names
    assert "leakguard/explain/report.html" in {a.path for a in client.list_artifacts(run_id, "leakguard/explain")}
