"""LeakGuardCallback in real Lightning fits (CPU, tiny data) logging into real MLflow sqlite stores."""
from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")
pytest.importorskip("mlflow")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import leakguard as lg  # noqa: E402
from leakguard.integrations.lightning import LeakGuardCallback, decide  # noqa: E402

N_TRAIN, N_FRESH, N_COPIES = 240, 80, 30   # val = 80 unseen digits + 30 copies of training digits
LEAKED = list(range(N_FRESH, N_FRESH + N_COPIES))


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def make_data(leak: bool = True):
    X, y = digits()
    Xtr, ytr = X[:N_TRAIN], y[:N_TRAIN]
    Xva, yva = X[N_TRAIN:N_TRAIN + N_FRESH], y[N_TRAIN:N_TRAIN + N_FRESH]
    if leak:
        Xva, yva = np.concatenate([Xva, Xtr[:N_COPIES]]), np.concatenate([yva, ytr[:N_COPIES]])
    return (TensorDataset(torch.tensor(Xtr).unsqueeze(1), torch.tensor(ytr)),
            TensorDataset(torch.tensor(Xva).unsqueeze(1), torch.tensor(yva)))


class TinyNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.train_batches = 0
        self.val_batches = 0

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        self.train_batches += 1
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        self.val_batches += 1
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)


def loaders(leak=True):
    train, val = make_data(leak)
    return DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=32)


def trainer(tmp_path, callbacks, logger, **kw):
    opts = dict(max_epochs=2, accelerator="cpu", devices=1, enable_progress_bar=False,
                enable_checkpointing=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                log_every_n_steps=1, num_sanity_val_steps=0)
    opts.update(kw)
    return L.Trainer(callbacks=callbacks, logger=logger, **opts)


def mlflow_logger(uri, name="lightning-test"):
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name=name, tracking_uri=uri)


def all_runs(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps) if exps else []


def artifacts(client, run_id, path="leakguard"):
    return {Path(a.path).name for a in client.list_artifacts(run_id, path)}


def accuracy(model, dataset, indices):
    x, y = dataset.tensors
    with torch.no_grad():
        return (model(x[indices]).argmax(1) == y[indices]).float().mean().item()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite tracking store for the module (creating one costs seconds); runs are counted per test."""
    from conftest import sqlite_mlflow_store

    with sqlite_mlflow_store(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models train fastest on one thread; on a shared, loaded machine two threads are 20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# the callback is under test here, not the checks: exact copies are the planted leak, and
# narrowing the checks keeps each audit at a fraction of a second
CHECKS = ["exact_duplicate"]


# ---------------------------------------------------------------------------------- tests
def test_warn_logs_report_and_clean_leaked_metrics_into_the_loggers_run(tmp_path, store):
    n_before = len(all_runs(store))
    logger = mlflow_logger(store)
    cb = LeakGuardCallback(checks=CHECKS, explain=False)
    model = TinyNet()
    train, val = loaders()
    with pytest.warns(RuntimeWarning, match="leakguard found leakage"):
        trainer(tmp_path, [cb], logger).fit(model, train, val)
    assert model.train_batches > 0                      # "warn" trains on
    assert cb.leaked["val"].tolist() == LEAKED
    assert cb.report is not None and cb.report.verdict == "fail"

    client = logger.experiment
    run = client.get_run(logger.run_id)
    assert run.data.tags["leakguard.verdict"] == "fail"
    assert "leakguard.version" in run.data.tags
    m = run.data.metrics
    assert m["leakguard/val/leaked_fraction"] == pytest.approx(N_COPIES / (N_FRESH + N_COPIES))
    assert m["leakguard/val/exact_duplicate"] == N_COPIES
    assert {"report.html", "report.json"} <= artifacts(client, logger.run_id)
    # the clean / leaked scores are the module's own metrics on the two parts of val, after the
    # last validation (no training step follows it, so the final model gives the same numbers)
    for name in ("val_acc/clean", "val_acc/leaked", "val_loss/clean", "val_loss/leaked"):
        assert len(client.get_metric_history(logger.run_id, name)) == 2   # one per validation
    _, val_ds = make_data()
    clean = [i for i in range(N_FRESH + N_COPIES) if i not in LEAKED]
    model.eval()
    assert m["val_acc/leaked"] == pytest.approx(accuracy(model, val_ds, LEAKED), abs=1e-6)
    assert m["val_acc/clean"] == pytest.approx(accuracy(model, val_ds, clean), abs=1e-6)
    assert m["leakguard/val/n_leaked"] == N_COPIES
    # the trainer's own validation metric is untouched by the extra pass
    assert m["val_acc"] == pytest.approx(accuracy(model, val_ds, list(range(N_FRESH + N_COPIES))), abs=1e-6)
    assert len(all_runs(store)) == n_before + 1            # no stray run
    # where the callback's time went: the audit (at least lg.audit's own time) and both clean / leaked passes
    assert set(cb.timings) == {"audit", "leak_effect"}
    assert cb.timings["audit"] >= cb.report.meta["duration_s"] > 0 and cb.timings["leak_effect"] > 0


def test_fail_stops_before_the_first_batch_and_marks_the_run_failed(tmp_path, store):
    n_before = len(all_runs(store))
    logger = mlflow_logger(store)
    model = TinyNet()
    train, val = loaders()
    t = trainer(tmp_path, [LeakGuardCallback(checks=CHECKS, on_leak="fail", explain=False)], logger, num_sanity_val_steps=2)
    with pytest.raises(lg.LeakageDetected, match="exact_duplicate") as info:
        t.fit(model, train, val)
    assert model.train_batches == 0 and model.val_batches == 0   # not even the sanity check ran
    assert info.value.report is not None and info.value.report.leaked("val").tolist() == LEAKED
    client = logger.experiment
    run = client.get_run(logger.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["leakguard.verdict"] == "fail"
    assert "report.html" in artifacts(client, logger.run_id)     # the report is still logged
    assert len(all_runs(store)) == n_before + 1


def test_per_check_policy(tmp_path, store):
    findings = [{"check": "exact_duplicate", "severity": "critical", "title": "t", "count": 3},
                {"check": "semantic_duplicate", "severity": "warning", "title": "s", "count": 1}]
    assert decide("fail", findings)[0] is True
    assert decide("warn", findings)[:2] == (False, "")
    assert decide({"exact_duplicate": "ignore"}, findings) == (False, "", ["[warning] semantic_duplicate: s"])
    assert decide({"semantic_duplicate": "fail"}, findings)[0] is False   # policies act on critical findings
    with pytest.raises(ValueError, match="on_leak"):
        LeakGuardCallback(checks=CHECKS, on_leak="stop")
    # in a fit: ignoring the check trains without a warning
    model = TinyNet()
    train, val = loaders()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        trainer(tmp_path, [LeakGuardCallback(checks=CHECKS, on_leak={"exact_duplicate": "ignore"}, explain=False)],
                mlflow_logger(store), max_epochs=1).fit(model, train, val)
    assert model.train_batches > 0


def test_active_mlflow_run_when_there_is_no_mlflow_logger(tmp_path, store):
    n_before = len(all_runs(store))
    import mlflow

    model = TinyNet()
    train, val = loaders()
    with mlflow.start_run() as run, pytest.warns(RuntimeWarning, match="leakage"):
        trainer(tmp_path, [LeakGuardCallback(checks=CHECKS, explain=False)], False, max_epochs=1).fit(model, train, val)
    client = mlflow.tracking.MlflowClient()
    data = client.get_run(run.info.run_id).data
    assert data.tags["leakguard.verdict"] == "fail"
    assert {"val_acc/clean", "val_acc/leaked", "leakguard/val/leaked_fraction"} <= set(data.metrics)
    assert len(all_runs(store)) == n_before + 1


def test_no_mlflow_at_all_writes_local_files_and_starts_no_run(tmp_path, store):
    n_before = len(all_runs(store))
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(str(tmp_path / "csv"))
    model = TinyNet()
    train, val = loaders(leak=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)   # clean data: nothing to warn about
        t = trainer(tmp_path, [LeakGuardCallback(checks=CHECKS, explain=False)], logger, max_epochs=1)
        t.fit(model, train, val)
    folder = Path(t.log_dir) / "leakguard"
    report = lg.Report.from_json(folder / "report.json")
    assert report.verdict == "pass" and (folder / "report.html").exists()
    import pandas as pd

    metrics = pd.read_csv(Path(t.log_dir) / "metrics.csv")
    assert metrics["leakguard/val/leaked_fraction"].dropna().tolist() == [0.0]
    assert not any(c.endswith("/clean") for c in metrics.columns)   # nothing leaked, nothing to split
    assert len(all_runs(store)) == n_before


def test_a_second_fit_reads_the_signatures_back_from_the_cache_beside_lightning_logs(tmp_path):
    reports = []
    for _ in range(2):
        cb = LeakGuardCallback(checks=CHECKS, explain=False, evaluate_leak_effect=False)
        train, val = loaders()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer(tmp_path, [cb], False, max_steps=1).fit(TinyNet(), train, val)
        reports.append(cb.report)
    first, second = (r.meta["cache"] for r in reports)
    assert (tmp_path / ".leakguard-cache").is_dir()
    # the first audit computes every distinct sample (its val copies of training digits hit the
    # entries their originals just wrote); the second computes nothing
    assert first["misses"] >= N_TRAIN + N_FRESH and second["misses"] == 0
    assert second["hits"] == first["hits"] + first["misses"]
    assert reports[1].leaked("val").tolist() == reports[0].leaked("val").tolist() == LEAKED
    # cache_dir=None: no cache, nothing written beside the logs
    cb = LeakGuardCallback(checks=CHECKS, explain=False, evaluate_leak_effect=False, cache_dir=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(tmp_path / "nocache", [cb], False, max_steps=1).fit(TinyNet(), *loaders())
    assert "cache" not in cb.report.meta and not (tmp_path / "nocache" / ".leakguard-cache").exists()


def test_resume_from_checkpoint_skips_the_audit_of_unchanged_data(tmp_path, store):
    from lightning.pytorch.callbacks import ModelCheckpoint

    train, val = loaders()
    ckpt_dir = tmp_path / "ckpt"
    first = LeakGuardCallback(checks=CHECKS, explain=False)
    with pytest.warns(RuntimeWarning):
        trainer(tmp_path, [first, ModelCheckpoint(dirpath=ckpt_dir, save_last=True)], mlflow_logger(store),
                max_epochs=1, enable_checkpointing=True).fit(TinyNet(), train, val)
    ckpt = ckpt_dir / "last.ckpt"
    state = torch.load(ckpt, weights_only=False)["callbacks"]["LeakGuardCallback"]
    assert state["digests"]["val"] == first.report.splits["val"]["digest"]

    logger = mlflow_logger(store)
    resumed = LeakGuardCallback(checks=CHECKS, explain=False)
    with pytest.warns(RuntimeWarning, match="leakage"):   # the restored findings still warn
        trainer(tmp_path, [resumed], logger, max_epochs=2).fit(TinyNet(), train, val, ckpt_path=str(ckpt))
    assert resumed.audit_reused and resumed.report is None
    assert resumed.leaked["val"].tolist() == LEAKED
    run = logger.experiment.get_run(logger.run_id)
    assert run.data.tags["leakguard.audit"].startswith("reused")
    assert "val_acc/leaked" in run.data.metrics            # the effect is still measured

    # changed validation data: the digest differs and the audit runs again
    _, clean_val = loaders(leak=False)
    again = LeakGuardCallback(checks=CHECKS, explain=False)
    trainer(tmp_path, [again], mlflow_logger(store), max_epochs=2).fit(
        TinyNet(), train, clean_val, ckpt_path=str(ckpt))
    assert not again.audit_reused and again.report is not None and again.report.verdict == "pass"


class LeakyDataModule(L.LightningDataModule):
    def setup(self, stage):
        self.train_ds, self.val_ds = make_data()
        if stage == "test":
            self.test_ds = self.val_ds

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=32)

    def test_dataloader(self):   # only usable after setup("test"): skipped with a warning at fit
        return DataLoader(self.test_ds, batch_size=32)


def test_datamodule_and_a_failing_explanation_never_crash_training(tmp_path, store, monkeypatch):
    import leakguard.integrations.lightning as integ

    def broken(*args, **kwargs):
        raise RuntimeError("explainer exploded")

    monkeypatch.setattr(integ, "sample_inputs", lambda *a, **k: (torch.zeros(4, 1, 8, 8), np.zeros(4)))
    import importlib

    try:
        explain = importlib.import_module("leakguard.explain")
        monkeypatch.setattr(explain, "find_target_leakage", broken, raising=False)
    except ImportError:
        pass
    model = TinyNet()
    cb = LeakGuardCallback(checks=CHECKS, explain=True)
    with pytest.warns(RuntimeWarning) as record:
        trainer(tmp_path, [cb], mlflow_logger(store), max_epochs=1).fit(model, datamodule=LeakyDataModule())
    messages = " ".join(str(w.message) for w in record)
    assert "skips the test split" in messages
    assert "target-leakage analysis" in messages
    assert model.train_batches > 0 and cb.leaked["val"].tolist() == LEAKED


def test_explanation_is_logged_when_the_analysis_is_available(tmp_path, store):
    n_before = len(all_runs(store))
    pytest.importorskip("shap")
    try:
        from leakguard.explain import find_target_leakage  # noqa: F401
    except ImportError:
        pytest.skip("leakguard.explain is not in this checkout yet")
    logger = mlflow_logger(store)
    cb = LeakGuardCallback(checks=CHECKS, max_samples=60)
    with pytest.warns(RuntimeWarning):
        trainer(tmp_path, [cb], logger, max_epochs=1).fit(TinyNet(), *loaders())
    assert cb.explanation is not None
    assert len(cb.explanation.features) > 0
    client = logger.experiment
    metrics = client.get_run(logger.run_id).data.metrics
    assert 0 < metrics["leakguard/target_leakage/explained"] <= 60          # bounded by max_samples
    assert "report.json" in artifacts(client, logger.run_id, "leakguard/explain")
    assert any(name.endswith(".png") for name in artifacts(client, logger.run_id, "leakguard/explain"))
    assert len(all_runs(store)) == n_before + 1


def test_callback_is_the_trainers_kind_and_pickles():
    import lightning.pytorch as lp

    cb = LeakGuardCallback(checks=CHECKS, on_leak="fail", max_samples=7)
    assert isinstance(cb, lp.Callback) and isinstance(cb, LeakGuardCallback)
    back = pickle.loads(pickle.dumps(cb))    # ddp_spawn sends callbacks to its workers
    assert type(back) is type(cb) and back.on_leak == "fail" and back.max_samples == 7
    assert cb.state_key == "LeakGuardCallback"


PL_SCRIPT = """
import sys, warnings
import numpy as np, torch
import pytorch_lightning as pl
from pytorch_lightning.loggers import MLFlowLogger
from torch.utils.data import DataLoader, TensorDataset
from leakguard.integrations.lightning import LeakGuardCallback

torch.set_num_threads(1)
X = torch.rand(120, 1, 8, 8); y = torch.randint(0, 3, (120,))
train = TensorDataset(X[:100], y[:100]); val = TensorDataset(torch.cat([X[100:], X[:5]]), torch.cat([y[100:], y[:5]]))

class Net(pl.LightningModule):
    def __init__(self):
        super().__init__(); self.lin = torch.nn.Linear(64, 3)
    def forward(self, x): return self.lin(x.flatten(1))
    def training_step(self, b, i): return torch.nn.functional.cross_entropy(self(b[0]), b[1])
    def validation_step(self, b, i): self.log("val_acc", (self(b[0]).argmax(1) == b[1]).float().mean())
    def configure_optimizers(self): return torch.optim.SGD(self.parameters(), lr=0.1)

cb = LeakGuardCallback(checks=["exact_duplicate"], explain=False)
assert isinstance(cb, pl.Callback), type(cb).__mro__
logger = MLFlowLogger(experiment_name="pl", tracking_uri=sys.argv[1])
warnings.simplefilter("ignore")
pl.Trainer(max_epochs=1, accelerator="cpu", callbacks=[cb], logger=logger, enable_progress_bar=False,
           enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0).fit(
    Net(), DataLoader(train, batch_size=20), DataLoader(val, batch_size=20))
run = logger.experiment.get_run(logger.run_id)
assert run.data.tags["leakguard.verdict"] == "fail", run.data.tags
assert "val_acc/leaked" in run.data.metrics and "val_acc/clean" in run.data.metrics
assert cb.leaked["val"].tolist() == [20, 21, 22, 23, 24]
mixed = sorted(m for m in sys.modules if m == "lightning" or m.startswith("lightning."))
assert not mixed, mixed
print("OK pytorch_lightning")
"""


def test_pytorch_lightning_packaging_without_importing_lightning(tmp_path):
    pytest.importorskip("pytorch_lightning")
    script = tmp_path / "pl_fit.py"
    script.write_text(PL_SCRIPT)
    out = subprocess.run([sys.executable, str(script), f"sqlite:///{tmp_path / 'mlflow.db'}"],
                         capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert out.returncode == 0 and "OK pytorch_lightning" in out.stdout, out.stdout[-2000:] + out.stderr[-4000:]


DDP_SCRIPT = """
import json, sys, warnings
from pathlib import Path
import torch
import lightning.pytorch as L
from lightning.pytorch.loggers import MLFlowLogger
from torch.utils.data import DataLoader, TensorDataset
from leakguard.integrations.lightning import LeakGuardCallback

URI, OUT = sys.argv[1], Path(sys.argv[2])

class Net(L.LightningModule):
    def __init__(self):
        super().__init__(); self.lin = torch.nn.Linear(64, 3); self.steps = 0
    def forward(self, x): return self.lin(x.flatten(1))
    def training_step(self, b, i):
        self.steps += 1
        return torch.nn.functional.cross_entropy(self(b[0]), b[1])
    def validation_step(self, b, i): self.log("val_acc", (self(b[0]).argmax(1) == b[1]).float().mean())
    def configure_optimizers(self): return torch.optim.SGD(self.parameters(), lr=0.1)

class RecordRanks(L.Callback):
    def on_exception(self, trainer, pl_module, exc):
        cb = next(c for c in trainer.callbacks if isinstance(c, LeakGuardCallback))
        OUT.joinpath(f"rank{trainer.global_rank}.json").write_text(json.dumps(
            {"what": type(exc).__name__, "steps": pl_module.steps, "leaked": cb.leaked["val"].tolist()}))

if __name__ == "__main__":
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(80, 1, 8, 8, generator=g); y = torch.randint(0, 3, (80,), generator=g)
    train = TensorDataset(X[:64], y[:64])
    val = TensorDataset(torch.cat([X[64:], X[:4]]), torch.cat([y[64:], y[:4]]))   # val 16..19 leak
    t = L.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp",
                  callbacks=[LeakGuardCallback(checks=["exact_duplicate"], on_leak="fail", explain=False), RecordRanks()],
                  logger=MLFlowLogger(experiment_name="ddp", tracking_uri=URI), enable_progress_bar=False,
                  enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0)
    try:
        t.fit(Net(), DataLoader(train, batch_size=16), DataLoader(val, batch_size=10))
    except Exception as err:
        print("RAISED", type(err).__name__)
        sys.exit(3)
    print("FINISHED")
"""


def test_ddp_two_processes_stop_together(tmp_path):
    """strategy="ddp" on two CPU processes: rank zero audits, both ranks get its decision and stop."""
    import json

    from mlflow.tracking import MlflowClient

    script = tmp_path / "ddp_fit.py"
    script.write_text(DDP_SCRIPT)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = subprocess.run([sys.executable, str(script), uri, str(tmp_path)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    log = out.stdout[-2000:] + out.stderr[-4000:]
    assert out.returncode == 3 and out.stdout.count("RAISED LeakageDetected") == 2, log   # both ranks
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["what"] for r in ranks] == ["LeakageDetected", "LeakageDetected"]
    assert [r["steps"] for r in ranks] == [0, 0]              # both stopped before their first batch
    assert ranks[0]["leaked"] == ranks[1]["leaked"] == [16, 17, 18, 19]   # rank zero's result on rank one
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info for r in runs]                           # one run, from rank zero
    assert runs[0].info.status == "FAILED" and runs[0].data.tags["leakguard.verdict"] == "fail"


def test_source_has_no_mixed_imports():
    # every Lightning name is imported from the trainer's package, never a hard-coded one
    text = Path(__file__).resolve().parents[1].joinpath("integrations", "lightning.py").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith((">>>", "...", "#")))
    assert "import lightning" not in code and "import pytorch_lightning" not in code
    assert "from lightning" not in code and "from pytorch_lightning" not in code
