"""leakguard where users train: models on a GPU, in half / bfloat16 precision, in training mode.

Nothing in leakguard needs a GPU, and everything must work with one. The tests marked ``gpu`` run
only where CUDA is available (CI has none and skips them; they ran on an H100, see the session-5
GPU note): the Lightning callback with ``Trainer(accelerator="gpu")``, the Ultralytics callbacks
with ``device=0``, ``lg.find_target_leakage`` and the image embedders with CUDA models. The
others reproduce on the CPU what a GPU run showed: a model in another precision than the
inputs (``bf16-true``), and a user's model that must come back in the device, precision and mode
it was in. Ultralytics test names hold ``test_mlflow`` (its MLflow callback is off in other tests).
"""
from __future__ import annotations

import copy
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import leakguard as lg  # noqa: E402

CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (CI has none; these ran on the device machine)")


# ------------------------------------------------------------------------------ helpers
def digits(size: int = 8):
    from leakguard.explain.planted import digit_images

    if size == 8:
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)
    return digit_images(size=size)


def breast_cancer_standardised():
    """scikit-learn's breast cancer table, each column standardised, as float32, and its labels."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return ((d.data - d.data.mean(0)) / d.data.std(0)).astype(np.float32), d.target


def small_cnn(channels: int = 1, side: int = 8, classes: int = 10):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * (side // 2) ** 2, classes))


def fit_steps(net, X, y, steps: int = 60, device="cpu"):
    """A few Adam steps on ``device``; the net is left in training mode, as a training loop leaves it."""
    net = net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    X, y = torch.as_tensor(X).to(device), torch.as_tensor(y).to(device)
    for step in range(steps):
        i = (step * 64) % max(1, len(X) - 64)
        opt.zero_grad()
        nn.functional.cross_entropy(net(X[i:i + 64]), y[i:i + 64]).backward()
        opt.step()
    return net


def snapshot(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def assert_untouched(net, before, device, dtype, training=True):
    """The user's module as it was: weights, device, precision, mode, and no hooks left behind."""
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert {p.device for p in net.parameters()} == {torch.device(device)}
    assert {p.dtype for p in net.parameters()} == {dtype}
    assert net.training is training
    assert all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks for m in net.modules())


def cuda0():
    return torch.device("cuda", torch.cuda.current_device())


# ------------------------------------------------------------------------------ CPU: precision and mode
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_module_is_explained_in_float32_and_left_as_it_was(dtype):
    """A bf16 / fp16 module (Lightning "bf16-true", a half model on a GPU): SHAP and numpy work in
    float32, so the copy explained is float32; before the fix every explainer failed
    ("Got unsupported ScalarType BFloat16")."""
    X, y = digits()
    net = fit_steps(small_cnn(), X[:600], y[:600]).to(getattr(torch, dtype))
    before = snapshot(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback from one explainer to the next
        tl = lg.find_target_leakage(net, torch.as_tensor(X[600:680]), y[600:680], max_samples=40, progress=False)
    att = tl.attribution
    assert att.method == "gradient" and att.device == "cpu"
    assert att.values.shape == (40, 1, 8, 8) and att.values.dtype == np.float32 and np.isfinite(att.values).all()
    assert tl.to_report().meta["target_leakage"]["device"] == "cpu"
    assert_untouched(net, before, "cpu", getattr(torch, dtype))
    # the intervention test's predictions run on a float32 copy too
    from leakguard.explain.attribution import predict_classes

    pred = predict_classes(net, X[600:640])
    with torch.no_grad():
        own = net.float()(torch.as_tensor(X[600:640])).argmax(1).numpy()
    assert (pred == own).mean() >= 0.9  # bf16 rounding may flip a close call


def test_tabular_deep_explainer_leaves_the_users_module_in_training_mode():
    X, target = breast_cancer_standardised()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    net = fit_steps(net, X[:400], target[:400], steps=40)
    before = snapshot(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        tl = lg.find_target_leakage(net, X[400:], target[400:], max_samples=60, progress=False, screen=False)
    assert tl.attribution.method == "deep" and tl.attribution.values.shape == (60, 30)
    assert_untouched(net, before, "cpu", torch.float32)


class _HoldsATrainer(nn.Module):
    """A module deepcopy cannot copy: after GPU training an Ultralytics network reaches its trainer,
    whose ``accelerator`` is the ``torch.cuda`` module ("cannot pickle 'module' object")."""

    def __init__(self):
        super().__init__()
        import threading
        import types

        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(30, 16), nn.ReLU())
        self.head = nn.Linear(16, 2)
        self.again = self.body  # one submodule under two names
        self.trainer = types.SimpleNamespace(accelerator=torch.cuda, lock=threading.Lock())

    def forward(self, x):
        return self.head(self.body(x))


def test_a_module_deepcopy_cannot_copy_is_explained_on_a_clone():
    from leakguard.explain.attribution import predict_classes

    X, target = breast_cancer_standardised()
    net = fit_steps(_HoldsATrainer(), X[:400], target[:400], steps=40)
    with pytest.raises(TypeError):
        copy.deepcopy(net)
    before = snapshot(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        tl = lg.find_target_leakage(net, X[400:], target[400:], max_samples=50, progress=False, screen=False)
    assert tl.attribution.method == "deep" and tl.attribution.values.shape == (50, 30)
    assert_untouched(net, before, "cpu", torch.float32)
    assert net.trainer.accelerator is torch.cuda and net.again is net.body
    with torch.no_grad():
        own = net(torch.as_tensor(X[400:450])).argmax(1).numpy()
    assert (predict_classes(net, X[400:450], layout="rows") == own).all()


class _FeatureNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten())

    def forward(self, x):
        return self.body(x)


def test_torch_embedder_takes_a_module_as_it_is_and_gives_it_back():
    """AuditConfig(embedder=module): wrapped (a module called on a list of arrays failed), run where it
    is, in its precision, in eval mode for the call (BatchNorm), and handed back in training mode."""
    from leakguard.embedders import TorchEmbedder, get_embedder

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (20, 24, 3), dtype=np.uint8) for _ in range(5)]
    net = _FeatureNet().train()
    emb = get_embedder(net, size=32)
    assert isinstance(emb, TorchEmbedder) and emb.device == torch.device("cpu")
    v1 = emb(images)
    assert v1.shape == (5, 32) and v1.dtype == np.float32
    assert net.training and all(p.device.type == "cpu" for p in net.parameters())
    np.testing.assert_allclose(emb(images[:2]), v1[:2], rtol=1e-5, atol=1e-6)  # eval mode: batch-independent
    half = _FeatureNet().to(torch.bfloat16).eval()
    vh = TorchEmbedder(half, size=32)(images)
    assert vh.dtype == np.float32 and np.isfinite(vh).all() and not half.training
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}


def test_an_embedder_module_in_an_audit_finds_copies():
    rng = np.random.default_rng(1)
    train = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(40)]
    val = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(10)] + [train[3], train[7]]
    net = _FeatureNet().train()
    report = lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"],
                      config=lg.AuditConfig(embedder=net, progress=False))
    assert {10, 11} <= set(report.leaked("val").tolist())
    assert net.training


@pytest.fixture(scope="module")
def yolo_offline(tmp_path_factory):
    pytest.importorskip("ultralytics")
    from conftest import yolo_offline_settings

    with yolo_offline_settings(tmp_path_factory, mlflow=False):
        yield


def test_a_yolo_object_is_explained_through_its_network_and_never_trained(yolo_offline, tmp_path):
    """A YOLO object is an nn.Module whose train() starts training: the explanation's eval() on it
    (once deepcopy failed on a GPU-trained one) ran a training run; its network is explained."""
    from ultralytics import YOLO

    from leakguard.explain.yolo import explain_yolo_classifier
    from leakguard.sources.yolo_synthetic import make_video_frames

    data = make_video_frames(tmp_path / "frames", n_videos=3, frames_per_video=4, clean_val_videos=1,
                             random_state=1, task="classify", size=32)
    model = YOLO("yolov8n-cls.yaml")
    net = model.model.train()
    before = snapshot(net)
    tl = explain_yolo_classifier(model, data=str(data), imgsz=32, max_samples=4, progress=False)
    assert model.trainer is None  # no training run started
    assert tl.attribution.values.shape == (4, 3, 32, 32) and tl.attribution.device == "cpu"
    assert_untouched(net, before, "cpu", torch.float32)


@pytest.fixture
def lightning():
    return pytest.importorskip("lightning.pytorch")


def _lightning_net(L):
    import torch.nn.functional as F

    class DigitsNet(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = small_cnn()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self(x)
            self.log("val_loss", F.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    return DigitsNet()


N_TRAIN, N_FRESH, N_COPIES = 400, 80, 40


def _lightning_loaders():
    from torch.utils.data import DataLoader, TensorDataset

    X, y = digits()
    Xtr, ytr = X[:N_TRAIN], y[:N_TRAIN]
    Xva = np.concatenate([X[N_TRAIN:N_TRAIN + N_FRESH], Xtr[:N_COPIES]])
    yva = np.concatenate([y[N_TRAIN:N_TRAIN + N_FRESH], ytr[:N_COPIES]])
    train = TensorDataset(torch.tensor(Xtr), torch.tensor(ytr))
    val = TensorDataset(torch.tensor(Xva), torch.tensor(yva))
    return DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=32), val


def _fit(L, tmp_path, logger=False, **trainer_kw):
    from leakguard.integrations.lightning import LeakGuardCallback

    cb = LeakGuardCallback(checks=["exact_duplicate"], max_samples=60, cache_dir=None)
    model = _lightning_net(L)
    train, val, val_ds = _lightning_loaders()
    opts = dict(max_epochs=2, devices=1, enable_progress_bar=False, enable_checkpointing=False,
                enable_model_summary=False, default_root_dir=str(tmp_path), num_sanity_val_steps=0,
                log_every_n_steps=1)
    opts.update(trainer_kw)
    with pytest.warns(RuntimeWarning, match="leakguard found leakage") as record:
        L.Trainer(callbacks=[cb], logger=logger, **opts).fit(model, train, val)
    failures = [str(w.message) for w in record if "could not" in str(w.message) or "failed" in str(w.message)]
    assert not failures, failures
    return cb, model, val_ds


def _accuracy(model, dataset, indices, device="cpu", dtype=torch.float32):
    x, y = dataset.tensors
    model = model.to(device).eval()
    with torch.no_grad():
        out = model(x[indices].to(device=device, dtype=dtype)).argmax(1).cpu()
    return (out == y[indices]).float().mean().item()


def test_lightning_bf16_true_scores_clean_and_leaked_and_explains(lightning, tmp_path):
    """precision="bf16-true": the separate clean / leaked pass gives the bf16 module bf16 inputs (as
    Lightning's loop does; before: "mat1 and mat2 must have the same dtype"), and the fit-end
    explanation runs on a float32 copy."""
    torch.set_num_threads(1)
    cb, model, val_ds = _fit(lightning, tmp_path, accelerator="cpu", precision="bf16-true")
    leaked = list(range(N_FRESH, N_FRESH + N_COPIES))
    clean = list(range(N_FRESH))
    assert cb.leak_effect["val_acc/leaked"] == pytest.approx(_accuracy(model, val_ds, leaked, dtype=torch.bfloat16))
    assert cb.leak_effect["val_acc/clean"] == pytest.approx(_accuracy(model, val_ds, clean, dtype=torch.bfloat16))
    assert cb.explanation is not None and cb.explanation.attribution.method == "gradient"
    assert next(model.parameters()).dtype == torch.bfloat16


# ------------------------------------------------------------------------------ GPU
@gpu
def test_gpu_find_target_leakage_with_a_cuda_cnn_marker_cluster():
    """A CNN trained on CUDA with a marker on most zeros; X and y given as CUDA tensors."""
    from leakguard.explain.planted import stamp_marker

    images, labels = digits(size=28)
    images, marked, (rows, cols) = stamp_marker(images, labels, target_class=0, share=0.9, marker=4, seed=0)
    order = np.random.default_rng(0).permutation(len(labels))
    tr, va = order[:1300], order[1300:1460]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    net = fit_steps(net, images[tr], labels[tr], steps=2 * 1300 // 64, device="cuda")
    before = snapshot(net)
    X, y = torch.as_tensor(images[va]).cuda(), torch.as_tensor(labels[va]).cuda()
    tl = lg.find_target_leakage(net, X, y, max_samples=160, progress=False)
    att = tl.attribution
    assert att.method == "gradient" and att.device.startswith("cuda")
    assert att.values.shape == (160, 1, 28, 28) and np.isfinite(att.values).all()
    assert_untouched(net, before, cuda0(), torch.float32)
    flagged = [c for c in tl.clusters if c["suspicious"]]
    assert flagged, [(c["size"], c.get("region")) for c in tl.clusters]
    c = max(flagged, key=lambda c: c["size"])
    assert np.mean(marked[va][c["members"]]) >= 0.9 and c["majority_label"] == 0
    region = c["region"]
    assert region["rows"][0] < rows.stop and region["cols"][0] < cols.stop
    assert region["pasted_onto"] > 0  # the intervention test ran the CUDA model
    assert tl.pictures()  # pictures from CUDA-made attributions


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_gpu_deep_explainer_on_a_cuda_mlp_matches_the_cpu(dtype):
    """DeepExplainer itself (no fallback) on a CUDA module, X and y as CUDA tensors: the same
    attributions as the same weights give on the CPU (a half module: explained in float32)."""
    X, target = breast_cancer_standardised()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))
    net = fit_steps(net, X[:400], target[:400], steps=150, device="cuda").to(getattr(torch, dtype))
    before = snapshot(net)
    options = dict(feature_names=[f"f{i}" for i in range(30)], max_samples=100, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # DeepExplainer itself, no fallback
        tl = lg.find_target_leakage(net, torch.as_tensor(X[400:]).cuda(), torch.as_tensor(target[400:]).cuda(),
                                    **options)
    assert tl.attribution.method == "deep" and tl.attribution.device.startswith("cuda")
    assert_untouched(net, before, cuda0(), getattr(torch, dtype))
    on_cpu = lg.find_target_leakage(copy.deepcopy(net).float().cpu(), X[400:], target[400:], **options)
    assert on_cpu.attribution.method == "deep" and on_cpu.attribution.device == "cpu"
    np.testing.assert_array_equal(tl.attribution.indices, on_cpu.attribution.indices)
    np.testing.assert_array_equal(tl.attribution.predicted, on_cpu.attribution.predicted)
    np.testing.assert_allclose(tl.attribution.values, on_cpu.attribution.values, rtol=1e-3, atol=1e-5)
    assert tl.features["feature"].tolist()[:5] == on_cpu.features["feature"].tolist()[:5]


@gpu
def test_gpu_torch_embedder_runs_a_cuda_module_where_it_is():
    from leakguard.embedders import TorchEmbedder

    rng = np.random.default_rng(1)
    train = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(40)]
    val = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(10)] + [train[3], train[7]]
    net = _FeatureNet().cuda().train()
    emb = TorchEmbedder(net, size=32)
    assert emb.device == cuda0()
    vecs = emb(val)
    assert vecs.shape == (12, 32) and vecs.dtype == np.float32
    cpu = TorchEmbedder(copy.deepcopy(net).cpu(), size=32)(val)
    np.testing.assert_allclose(vecs, cpu, rtol=1e-3, atol=1e-4)
    half = TorchEmbedder(copy.deepcopy(net).half(), size=32)(val)
    np.testing.assert_allclose(half, cpu, rtol=2e-2, atol=2e-2)
    report = lg.audit({"train": train, "val": val}, checks=["semantic_duplicate"],
                      config=lg.AuditConfig(embedder=net, progress=False))
    assert {10, 11} <= set(report.leaked("val").tolist())
    assert net.training and {p.device for p in net.parameters()} == {cuda0()}


@gpu
def test_gpu_lightning_callback_with_mlflow_logger(lightning, tmp_path):
    """Trainer(accelerator="gpu"): audit, clean / leaked metrics in the MLFlowLogger's run (sqlite),
    the fit-end explanation on the GPU, logged into the same run."""
    pytest.importorskip("mlflow")
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = MLFlowLogger(experiment_name="gpu", tracking_uri=uri)
    cb, model, val_ds = _fit(lightning, tmp_path, logger=logger, accelerator="gpu")
    assert cb.leaked["val"].tolist() == list(range(N_FRESH, N_FRESH + N_COPIES))
    client = MlflowClient(uri)
    run = client.get_run(logger.run_id)
    m = run.data.metrics
    assert run.data.tags["leakguard.verdict"] == "fail"
    leaked, clean = list(range(N_FRESH, N_FRESH + N_COPIES)), list(range(N_FRESH))
    assert m["val_acc/leaked"] == pytest.approx(_accuracy(model, val_ds, leaked, "cuda"), abs=1e-6)
    assert m["val_acc/clean"] == pytest.approx(_accuracy(model, val_ds, clean, "cuda"), abs=1e-6)
    assert len(client.get_metric_history(logger.run_id, "val_acc/clean")) == 2
    att = cb.explanation.attribution
    assert att.device.startswith("cuda") and 0 < m["leakguard/target_leakage/explained"] <= 60
    names = {os.path.basename(a.path) for a in client.list_artifacts(logger.run_id, "leakguard/explain")}
    assert "report.json" in names
    assert len([r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]) == 1


@gpu
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed", "bf16-true"])
def test_gpu_lightning_callback_in_lower_precision(lightning, tmp_path, precision):
    """The clean / leaked pass runs under the trainer's autocast / input conversion, so it scores the
    model as Lightning's own validation does."""
    cb, model, val_ds = _fit(lightning, tmp_path, accelerator="gpu", precision=precision)
    assert {"val_acc/clean", "val_acc/leaked", "val_loss/clean", "val_loss/leaked"} <= set(cb.leak_effect)
    dtype = torch.bfloat16 if precision == "bf16-true" else torch.float32
    leaked = list(range(N_FRESH, N_FRESH + N_COPIES))
    own = _accuracy(model, val_ds, leaked, "cuda", dtype=dtype)
    assert cb.leak_effect["val_acc/leaked"] == pytest.approx(own, abs=1 / N_COPIES + 1e-6)  # autocast rounding
    assert cb.explanation is not None and cb.explanation.attribution.device.startswith("cuda")


@gpu
def test_gpu_data_already_on_the_gpu(lightning, tmp_path):
    """Tensors that live on the GPU (a TensorDataset of CUDA tensors, as small datasets often are):
    lg.audit reads them, and the callback audits, scores and explains them."""
    from torch.utils.data import DataLoader, TensorDataset

    from leakguard.integrations.lightning import LeakGuardCallback

    X, y = digits()
    Xtr, ytr = torch.tensor(X[:N_TRAIN]).cuda(), torch.tensor(y[:N_TRAIN]).cuda()
    Xva = torch.cat([torch.tensor(X[N_TRAIN:N_TRAIN + N_FRESH]).cuda(), Xtr[:N_COPIES]])
    yva = torch.cat([torch.tensor(y[N_TRAIN:N_TRAIN + N_FRESH]).cuda(), ytr[:N_COPIES]])
    leaked = list(range(N_FRESH, N_FRESH + N_COPIES))
    report = lg.audit({"train": TensorDataset(Xtr, ytr), "val": TensorDataset(Xva, yva)},
                      labels={"train": ytr, "val": yva}, checks=["exact_duplicate"],
                      config=lg.AuditConfig(progress=False))
    assert report.leaked("val").tolist() == leaked
    cb = LeakGuardCallback(checks=["exact_duplicate"], max_samples=60, cache_dir=None,
                           labels=lambda dataset, i: dataset.tensors[1][i])  # a CUDA scalar per sample
    with pytest.warns(RuntimeWarning, match="leakguard found leakage") as record:
        lightning.Trainer(callbacks=[cb], logger=False, accelerator="gpu", devices=1, max_epochs=1,
                          enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                          default_root_dir=str(tmp_path), num_sanity_val_steps=0).fit(
            _lightning_net(lightning), DataLoader(TensorDataset(Xtr, ytr), batch_size=32, shuffle=True),
            DataLoader(TensorDataset(Xva, yva), batch_size=32))
    assert not [str(w.message) for w in record if "could not" in str(w.message) or "failed" in str(w.message)]
    assert cb.leaked["val"].tolist() == leaked
    assert {"val_acc/clean", "val_acc/leaked"} <= set(cb.leak_effect)
    assert cb.explanation.attribution.device.startswith("cuda")


# ------------------------------------------------------------------------------ Ultralytics on GPU
@pytest.fixture(scope="module")
def yolo_gpu(tmp_path_factory):
    if not CUDA:
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("ultralytics")
    pytest.importorskip("mlflow")
    from conftest import yolo_offline_settings

    with yolo_offline_settings(tmp_path_factory, mlflow=True) as settings:
        yield settings


@pytest.fixture
def yolo_store(tmp_path, monkeypatch):
    import mlflow

    from conftest import sqlite_mlflow_store

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "yolo-gpu")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    with sqlite_mlflow_store(tmp_path) as uri:
        yield uri
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.autolog(disable=True)
    from mlflow.tracking import fluent

    if hasattr(fluent, "_active_experiment_id"):
        fluent._active_experiment_id = None


GPU_TRAIN = dict(epochs=1, imgsz=64, batch=8, workers=0, plots=False, device=0, val=True, verbose=False,
                 exist_ok=True, seed=0, deterministic=False)


def _yolo_runs():
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


@gpu
def test_mlflow_gpu_yolo_classify_device0_clean_leaked_and_explanation(yolo_gpu, yolo_store, tmp_path):
    from ultralytics import YOLO

    from leakguard.explain.yolo import explain_yolo_classifier
    from leakguard.integrations.ultralytics import attach
    from leakguard.sources.yolo_synthetic import make_video_frames

    data = make_video_frames(tmp_path / "frames", n_videos=4, frames_per_video=6, exact_copies=2,
                             conflicting_copies=1, clean_val_videos=2, random_state=1, task="classify")
    model = YOLO("yolov8n-cls.yaml")
    guard = attach(model, on_leak="ignore", checks=["exact_duplicate", "group_overlap", "temporal_overlap"],
                   max_samples=8)
    model.train(data=str(data), project=str(tmp_path / "runs"), name="cls", **{**GPU_TRAIN, "imgsz": 32})
    assert model.trainer.device.type == "cuda"
    runs = _yolo_runs()
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    metrics = runs[0].data.metrics
    for part in ("clean", "leaked"):
        assert metrics[f"metrics/accuracy_top1/{part}"] == pytest.approx(
            guard.evaluation[part]["metrics"]["metrics/accuracy_top1"])
    att = guard.explanation.attribution
    assert len(att.indices) == 8 and att.device.startswith("cuda")  # best.pt explained on the trainer's GPU
    assert metrics["leakguard/target_leakage/explained"] == 8
    # straight from the YOLO object: its network stays where it is, as it was
    net = model.model
    device, before = next(net.parameters()).device, snapshot(net)
    tl = explain_yolo_classifier(model, data=str(data), max_samples=6, progress=False)
    assert tl.attribution.device == str(device) and tl.attribution.values.shape[0] == 6
    assert next(net.parameters()).device == device
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@gpu
def test_mlflow_gpu_yolo_detect_device0_clean_and_leaked_map(yolo_gpu, yolo_store, tmp_path):
    from ultralytics import YOLO

    from leakguard.integrations.ultralytics import attach
    from leakguard.sources.yolo_synthetic import make_video_frames

    data = make_video_frames(tmp_path / "frames", n_videos=4, frames_per_video=6, exact_copies=2,
                             conflicting_copies=1, clean_val_videos=2, random_state=1)
    model = YOLO("yolov8n.yaml")
    guard = attach(model, on_leak="warn", checks=["exact_duplicate", "group_overlap", "temporal_overlap"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train(data=str(data), project=str(tmp_path / "runs"), name="det", **GPU_TRAIN)
    assert model.trainer.device.type == "cuda"
    runs = _yolo_runs()
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    metrics = runs[0].data.metrics
    assert runs[0].data.tags["leakguard.verdict"] == "fail"
    for part in ("clean", "leaked"):
        assert metrics[f"metrics/mAP50-95B/{part}"] == pytest.approx(
            guard.evaluation[part]["metrics"]["metrics/mAP50-95(B)"])
