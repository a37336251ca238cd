"""find_target_leakage after training: real models, planted shortcuts, SHAP + HDBSCAN clusters."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import leakguard as lg
from leakguard.explain.planted import digit_images, plant_tabular, stamp_marker


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """HistGradientBoosting / LightGBM / XGBoost fit on one OpenMP thread: on a shared, loaded CPU
    their all-cores default is ~40x slower for these small tables (digits: 8 s vs 358 s)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def cancer_splits():
    d = load_breast_cancer(as_frame=True)
    y = d.target.to_numpy()
    out = {}
    for kind in ("clean", "label_noise", "identifier"):
        X, _ = plant_tabular(d.data, y, kind, seed=0)
        X = X.select_dtypes("number").fillna(0.0)
        out[kind] = train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)
    return out


@pytest.fixture(scope="module")
def leaky_hgb(cancer_splits):
    """One explained leaky model shared by the tests that read its result."""
    Xtr, Xva, ytr, yva = cancer_splits["label_noise"]
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(Xtr, ytr)
    return model, lg.find_target_leakage(model, Xva, yva, max_samples=228, progress=False), Xva, yva


def test_leak_ranked_first_and_flagged_critical(leaky_hgb):
    _, tl, _, _ = leaky_hgb
    assert tl.features.iloc[0]["feature"] == "outcome_score"
    assert tl.suspicious_features == ["outcome_score"]
    assert [(f.features, f.severity) for f in tl.findings] == [(["outcome_score"], "critical")]
    assert tl.attribution.method == "tree" and abs(tl.features["share"].sum() - 1) < 1e-4


@pytest.mark.parametrize("make_model, kind, leaky", [
    (lambda: RandomForestClassifier(60, random_state=0), "label_noise", "outcome_score"),
    (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), "label_noise", "outcome_score"),
    (lambda: HistGradientBoostingClassifier(max_iter=60, random_state=0), "identifier", "record_id"),
])
def test_tabular_leak_is_ranked_first_and_flagged(cancer_splits, make_model, kind, leaky):
    Xtr, Xva, ytr, yva = cancer_splits[kind]
    model = make_model().fit(Xtr, ytr)
    tl = lg.find_target_leakage(model, Xva, yva, max_samples=150, progress=False)
    assert tl.features.iloc[0]["feature"] == leaky
    assert tl.suspicious_features == [leaky], tl.features.head(3)
    assert [f.features for f in tl.findings] == [[leaky]]
    f = tl.findings[0]
    assert f.check == "target_leakage" and leaky in f.detail and "attribution" in f.detail
    assert abs(tl.features["share"].sum() - 1) < 1e-4
    assert tl.attribution.method in ("tree", "linear", "pipeline/linear") or tl.attribution.method.startswith("pipeline")


@pytest.mark.parametrize("make_model", [
    lambda: HistGradientBoostingClassifier(max_iter=60, random_state=0),
    lambda: RandomForestClassifier(60, random_state=0),
])
def test_clean_tabular_model_flags_nothing(cancer_splits, make_model):
    Xtr, Xva, ytr, yva = cancer_splits["clean"]
    tl = lg.find_target_leakage(make_model().fit(Xtr, ytr), Xva, yva, max_samples=150, progress=False)
    assert tl.findings == [] and tl.suspicious_features == []
    assert not any(c["suspicious"] for c in tl.clusters)


def _gbm(library: str, **kw):
    """A scikit-learn-API LightGBM / XGBoost classifier, or skip when the library is missing."""
    if library == "lightgbm":
        return pytest.importorskip("lightgbm").LGBMClassifier(n_estimators=60, n_jobs=1, verbose=-1,
                                                              random_state=0, **kw)
    return pytest.importorskip("xgboost").XGBClassifier(n_estimators=60, n_jobs=1, random_state=0, **kw)


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_lightgbm_and_xgboost_go_through_tree_shap(cancer_splits, library):
    Xtr, Xva, ytr, yva = cancer_splits["label_noise"]
    model = _gbm(library).fit(Xtr, ytr)
    tl = lg.find_target_leakage(model, Xva, yva, max_samples=150, progress=False)
    assert tl.attribution.method == "tree"
    assert tl.features.iloc[0]["feature"] == "outcome_score" and tl.suspicious_features == ["outcome_score"]
    assert tl.findings[0].severity == "critical"
    # attributions are toward the class the model predicted, for every explained row
    assert np.array_equal(tl.attribution.predicted, model.predict(Xva.iloc[tl.attribution.indices]))
    Xtr, Xva, ytr, yva = cancer_splits["clean"]
    clean = lg.find_target_leakage(_gbm(library).fit(Xtr, ytr), Xva, yva, max_samples=150, progress=False)
    assert clean.findings == [] and clean.attribution.method == "tree"


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_gradient_boosting_multiclass_and_native_boosters(library):
    from sklearn.datasets import load_wine

    d = load_wine(as_frame=True)
    y = d.target.to_numpy()
    X, _ = plant_tabular(d.data, y, "label_noise", seed=0)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)
    model = _gbm(library).fit(Xtr, ytr)  # three classes: shap gives one slice per class
    tl = lg.find_target_leakage(model, Xva, yva, progress=False)
    assert tl.attribution.values.shape == (len(Xva), X.shape[1])
    assert tl.suspicious_features == ["outcome_score"]
    assert np.array_equal(tl.attribution.predicted, model.predict(Xva))
    # the library's own Booster (no predict_proba; XGBoost's predict wants a DMatrix)
    booster = model.booster_ if library == "lightgbm" else model.get_booster()
    native = lg.find_target_leakage(booster, Xva, yva, progress=False)
    assert native.attribution.method == "tree" and native.suspicious_features == ["outcome_score"]
    assert np.array_equal(native.attribution.predicted, model.predict(Xva))
    assert np.allclose(native.attribution.values, tl.attribution.values, atol=1e-4)


def test_clusters_describe_members_and_purity(leaky_hgb):
    _, tl, Xva, yva = leaky_hgb
    assert tl.clusters, "HDBSCAN found no cluster"
    for c in tl.clusters:
        assert c["size"] == len(c["members"]) >= 5
        assert set(c["members"]) <= set(range(len(Xva)))
        labels = yva[c["members"]]
        assert c["label_purity"] == pytest.approx(np.mean(labels == c["majority_label"]))
        assert np.shape(c["mean_attribution"]) == (Xva.shape[1],)
        assert len(c["top_features"]) >= 1 and set(c["exemplars"]) <= set(c["members"])
    pure = [c for c in tl.clusters if c["suspicious"]]
    assert pure and all(c["top_features"][0] == "outcome_score" and c["label_purity"] >= 0.95 for c in pure)


def test_without_labels_a_dominant_feature_is_still_flagged(leaky_hgb):
    model, _, Xva, _ = leaky_hgb
    tl = lg.find_target_leakage(model, Xva.to_numpy(), feature_names=list(Xva.columns), max_samples=120,
                                progress=False)
    assert tl.suspicious_features == ["outcome_score"]
    assert tl.findings[0].severity == "warning"  # no labels: no single-feature evidence to make it critical


def test_generic_callable_uses_permutation_and_respects_budget(cancer_splits):
    Xtr, Xva, ytr, yva = cancer_splits["label_noise"]
    cols = ["outcome_score", "mean radius", "mean texture", "worst area"]
    from sklearn.neighbors import KNeighborsClassifier

    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(5)).fit(Xtr[cols], ytr)
    tl = lg.find_target_leakage(knn.predict_proba, Xva[cols], yva, max_samples=24, progress=False)
    assert tl.attribution.method == "permutation"
    assert tl.features.iloc[0]["feature"] == "outcome_score"
    capped = lg.find_target_leakage(knn.predict_proba, Xva[cols], max_samples=48, time_budget=0.0,
                                    progress=False)
    assert len(capped.attribution.indices) < 48 and capped.attribution.notes  # stopped after one batch


def test_bad_input_is_a_clear_error(cancer_splits):
    Xtr, Xva, ytr, yva = cancer_splits["clean"]
    model = RandomForestClassifier(10, random_state=0).fit(Xtr, ytr)
    with pytest.raises(lg.InputError, match="labels but X has"):
        lg.find_target_leakage(model, Xva, yva[:-3])
    with pytest.raises(lg.InputError, match="feature_names has"):
        lg.find_target_leakage(model, Xva.to_numpy(), feature_names=["a", "b"])


# ------------------------------------------------------------------------------ torch
def _torch_mlp(Xtr, ytr, steps=150):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(Xtr.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    X, y = torch.tensor(Xtr, dtype=torch.float32), torch.tensor(ytr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    return net


def test_torch_tabular_model_explained_on_a_copy(cancer_splits):
    import torch

    Xtr, Xva, ytr, yva = cancer_splits["label_noise"]
    scaler = StandardScaler().fit(Xtr)
    net = _torch_mlp(scaler.transform(Xtr), ytr)
    before = copy.deepcopy(net.state_dict())
    x = torch.tensor(scaler.transform(Xva), dtype=torch.float32)
    tl = lg.find_target_leakage(net, x, yva, feature_names=list(Xva.columns), max_samples=60, progress=False)
    assert tl.attribution.method in ("deep", "gradient")
    assert tl.features.iloc[0]["feature"] == "outcome_score" and "outcome_score" in tl.suspicious_features
    # the user's module is untouched: same weights, no hooks left behind
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(not m._forward_hooks and not m._backward_hooks for m in net.modules())


def _train_cnn(images, labels, epochs=2, seed=0):
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    X, y = torch.tensor(images), torch.tensor(labels)
    for _ in range(epochs):
        for i in range(0, len(X), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    return net.train()  # as a training loop leaves it; the explainer must switch its copy to eval


@pytest.fixture(scope="module")
def digits_marker():
    images, labels = digit_images(size=28)
    marked_images, marked, region = stamp_marker(images, labels, target_class=0, share=0.9, marker=4, seed=0)
    order = np.random.default_rng(0).permutation(len(labels))
    return images, marked_images, labels, marked, region, order[:1300], order[1300:1460]


def test_marker_on_one_class_is_found_as_a_cluster(digits_marker, tmp_path):
    import torch

    _, images, labels, marked, (rows, cols), tr, va = digits_marker
    net = _train_cnn(images[tr], labels[tr])
    tl = lg.find_target_leakage(copy.deepcopy(net), torch.tensor(images[va]), labels[va], max_samples=160,
                                progress=False)
    assert tl.attribution.modality == "image" and tl.attribution.method == "gradient"
    flagged = [c for c in tl.clusters if c["suspicious"]]
    assert len(flagged) == 1, [(c["size"], c.get("region")) for c in tl.clusters]
    c = flagged[0]
    assert np.mean(marked[va][c["members"]]) >= 0.9       # the cluster is the marked images
    assert c["majority_label"] == 0 and c["label_purity"] >= 0.9
    region = c["region"]
    assert region["rows"][0] < rows.stop and region["cols"][0] < cols.stop  # it overlaps the marker corner
    assert region["content_elsewhere"] < 0.1 and "corner" in region["where"]
    # what sets the cluster apart lies in the marker more than its raw share of the mass does
    assert region["contrast_share"] > region["mass_share"] and 0 < region["positive_share"] <= 1
    # the intervention test on the model: the marker pasted onto other digits turns some into 0s
    assert region["cluster_class"] == 0 and region["pasted_onto"] > 50
    assert region["pasted_flip"] >= 0.2 and 0 <= region["kept_without_region"] <= 1
    assert "pasting this region onto" in c["reason"]
    assert np.shape(c["mean_attribution"]) == (1, 28, 28)
    f = [f for f in tl.findings if "top-left corner" in f.title]
    assert len(f) == 1 and f[0].severity == "critical" and f[0].count == c["size"]
    # pictures a person reviews: summary and an exemplar grid with attribution overlay
    pics = tl.pictures()
    assert {"shap_summary", f"cluster_{c['id']}"} <= set(pics)
    grid = np.asarray(pics[f"cluster_{c['id']}"])
    assert grid.shape[0] > 96 and (grid[..., 0].astype(int) - grid[..., 1]).max() > 100  # red overlay drawn


def test_predict_classes_gives_images_back_in_the_models_layout():
    """The intervention test re-runs the model on edited images: each in the layout it was given."""
    from leakguard.explain.attribution import predict_classes

    rng = np.random.default_rng(0)
    nchw = rng.random((6, 3, 8, 8)).astype(np.float32)
    nchw[:3, :, :2, :2] = 5.0  # bright corner: class 1

    def corner_scores(images):  # a model that takes channel-last images
        assert images.shape[-1] == 3
        bright = images[:, :2, :2, :].mean((1, 2, 3)) > 2
        return np.stack([~bright, bright], 1).astype(float)

    assert predict_classes(corner_scores, nchw, "nhwc").tolist() == [1, 1, 1, 0, 0, 0]
    assert predict_classes(lambda x: x[:, :2, :2].mean((1, 2)) > 2, nchw[:, :1], "nhw").tolist() == [1, 1, 1, 0, 0, 0]


def test_clean_images_flag_no_region(digits_marker):
    import torch

    images, _, labels, _, _, tr, va = digits_marker
    net = _train_cnn(images[tr], labels[tr])
    tl = lg.find_target_leakage(net, torch.tensor(images[va]), labels[va], max_samples=160, progress=False)
    assert tl.findings == [] and not any(c["suspicious"] for c in tl.clusters)
    assert len(tl.clusters) >= 3  # explanations still cluster (by digit), just nothing suspicious


# ------------------------------------------------------------------------------ MLflow
def test_log_to_mlflow_writes_report_pictures_and_keeps_the_worse_verdict(leaky_hgb, mlflow_uri):
    import mlflow
    from mlflow.tracking import MlflowClient

    _, tl, _, _ = leaky_hgb
    client = MlflowClient(mlflow_uri)
    with mlflow.start_run() as run:
        client.set_tag(run.info.run_id, "leakguard.verdict", "pass")
        out = tl.log_to_mlflow()
    assert out["uploaded"]
    data = client.get_run(run.info.run_id).data
    assert data.tags["leakguard.verdict"] == "fail" and data.tags["leakguard.explain.verdict"] == "fail"
    assert data.metrics["leakguard/target_leakage/suspicious_features"] == 1.0
    names = {a.path for a in client.list_artifacts(run.info.run_id, "leakguard/explain")}
    assert {"leakguard/explain/report.json", "leakguard/explain/report.html",
            "leakguard/explain/shap_summary.png"} <= names
    assert any(n.startswith("leakguard/explain/cluster_") for n in names)
    saved = lg.Report.from_json(out["saved"]["json"])
    assert [f.features for f in saved.findings] == [["outcome_score"]]
    assert saved.meta["target_leakage"]["clusters"] and "outcome_score" in saved.to_html()


# ------------------------------------------------------------------------------ Ultralytics
@pytest.fixture(scope="module")
def yolo_offline(tmp_path_factory):
    """Ultralytics without network (tests/conftest.py), its MLflow callback off."""
    from conftest import yolo_offline_settings

    pytest.importorskip("ultralytics")
    with yolo_offline_settings(tmp_path_factory, mlflow=False):
        yield


@pytest.mark.slow  # a real (1-epoch) YOLO training, as in tests/test_ultralytics.py
def test_yolo_classifier_explained_on_its_val_images(yolo_offline, tmp_path):
    """A real YOLO classification training (1 epoch, CPU) on digit folders, class 'zero' marked;
    the adapter the Ultralytics integration calls at train end explains its best.pt on val images."""
    from pathlib import Path

    import torch
    from PIL import Image
    from ultralytics import YOLO

    from leakguard.explain.yolo import explain_yolo_classifier

    images, labels = digit_images(size=32)
    marked_images, marked, _ = stamp_marker(images, labels, target_class=0, share=0.9, marker=5, seed=0)
    names = ["zero", "one", "two"]
    keep = np.flatnonzero(labels < 3)
    rng = np.random.default_rng(0)
    val = set(rng.choice(keep, 60, replace=False).tolist())
    for i in keep:
        folder = tmp_path / "digits" / ("val" if i in val else "train") / names[labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((marked_images[i, 0] * 255).astype(np.uint8)).convert("RGB").save(folder / f"{i}.png")
    model = YOLO("yolov8n-cls.yaml")
    model.train(data=str(tmp_path / "digits"), epochs=1, imgsz=32, batch=32, workers=0, plots=False,
                device="cpu", amp=False, val=True, verbose=False, exist_ok=True, seed=0,
                project=str(tmp_path / "runs"), name="cls")
    trainer = model.trainer
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    tl = explain_yolo_classifier(trainer, max_samples=40, progress=False)
    assert tl.attribution.modality == "image" and tl.attribution.method == "gradient"
    assert tl.attribution.values.shape == (40, 3, 32, 32) and len(tl.meta["files"]) == 40
    assert tl.meta["imgsz"] == 32 and tl.meta["split"] == "val"
    # labels come from the class folders, in the model's class order; members name files
    files = [Path(f) for f in tl.meta["files"]]
    assert all(f.parent.parent.name == "val" for f in files)
    assert tl.meta["class_names"] == {0: "one", 1: "two", 2: "zero"}  # Ultralytics sorts class folders
    assert [sorted(names).index(f.parent.name) for f in files] == tl.y.tolist()
    assert len(set(tl.y.tolist())) == 3  # stratified: every class sampled
    for c in tl.clusters:
        assert set(c["members"]) <= set(range(40)) and "region" in c
    assert all(torch.equal(before[k], v) for k, v in model.model.state_dict().items())  # untouched
    # the YOLO object and best.pt are accepted too
    again = explain_yolo_classifier(Path(trainer.best), data=str(tmp_path / "digits"), max_samples=12,
                                    progress=False)
    assert again.attribution.values.shape == (12, 3, 32, 32)
    with pytest.raises(lg.InputError, match="give data="):
        explain_yolo_classifier(model.model, max_samples=4)
