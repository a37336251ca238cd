"""LeakGuardCallback: audit the splits when ``fit`` starts, measure the leak's effect after each
validation, and explain the trained model when ``fit`` ends, all inside the run Lightning logs to.

>>> from lightning.pytorch import Trainer                                  # doctest: +SKIP
>>> from lightning.pytorch.loggers import MLFlowLogger                     # doctest: +SKIP
>>> from leakguard.integrations.lightning import LeakGuardCallback         # doctest: +SKIP
>>> trainer = Trainer(callbacks=[LeakGuardCallback(on_leak="fail")],
...                   logger=MLFlowLogger(tracking_uri="sqlite:///mlflow.db"))  # doctest: +SKIP
>>> trainer.fit(model, datamodule=dm)                                      # doctest: +SKIP

Both packagings of Lightning are supported, never mixed: ``lightning.pytorch`` (``pip install
lightning``) and ``pytorch_lightning`` (``pip install pytorch-lightning``). The callback is an
instance of the ``Callback`` class of the package the trainer comes from; every Lightning name it
uses is imported from that package.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

FRAMEWORKS = ("lightning.pytorch", "pytorch_lightning")
STATE_VERSION = 1
POLICIES = ("fail", "warn", "ignore")
# the concrete classes pickle needs to find by name (ddp_spawn sends the callback to its workers)
_CLASS_NAMES = {"lightning.pytorch": "LeakGuardCallback_lightning",
                "pytorch_lightning": "LeakGuardCallback_pytorch_lightning"}
_CLASSES: dict[str, type] = {}


# ------------------------------------------------------------------------- which Lightning
def framework_of(obj) -> str | None:
    """``"lightning.pytorch"`` or ``"pytorch_lightning"``: the package ``obj``'s class comes from.

    Walks the class hierarchy, so a Trainer subclass defined in user code is recognised too.
    """
    for klass in type(obj).__mro__:
        module = klass.__module__ or ""
        for fw in FRAMEWORKS:
            if module == fw or module.startswith(fw + "."):
                return fw
    return None


def _default_framework() -> str:
    """The Lightning already imported (both imported: ``lightning.pytorch``, corrected at setup)."""
    loaded = [fw for fw in FRAMEWORKS if fw in sys.modules]
    if loaded:
        return loaded[0]
    for fw in FRAMEWORKS:
        try:
            importlib.import_module(fw)
            return fw
        except ImportError:
            continue
    raise ImportError("LeakGuardCallback needs Lightning: pip install 'leakguard-ml[lightning]' "
                      "(or pytorch-lightning)")


def callback_class(framework: str) -> type:
    """The concrete callback class for ``framework``: LeakGuardCallback and that package's Callback."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    if framework not in _CLASSES:
        base = importlib.import_module(framework).Callback
        name = _CLASS_NAMES[framework]
        klass = type(name, (LeakGuardCallback, base), {"__module__": __name__, "__qualname__": name,
                                                      "__doc__": LeakGuardCallback.__doc__})
        _CLASSES[framework] = klass
        globals()[name] = klass
    return _CLASSES[framework]


def __getattr__(name: str):
    # unpickling in a fresh process (ddp_spawn) looks the concrete class up by name
    for fw, class_name in _CLASS_NAMES.items():
        if name == class_name:
            return callback_class(fw)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _lightning(framework: str, module: str = ""):
    return importlib.import_module(f"{framework}.{module}" if module else framework)


# ------------------------------------------------------------------------- the callback
class LeakGuardCallback:
    """Audit the train / val / test dataloaders for leakage when ``fit`` starts; log what it finds.

    Parameters
    ----------
    on_leak : ``"warn"`` (log it, warn, train on), ``"fail"`` (stop before the first batch with
        :class:`leakguard.LeakageDetected`; the report is logged and the run marked failed), or a
        per-check policy such as ``{"exact_duplicate": "fail", "semantic_duplicate": "ignore",
        "*": "warn"}``. A policy acts on the critical findings of its check (raise a check's
        severity with ``AuditConfig(severity=...)``); ``"ignore"`` still logs the finding.
    labels, groups, timestamps : per-sample values for each split: None (labels: the dataset's
        ``targets`` / TensorDataset's second tensor / the ``y`` of ``(x, y)`` items), the name of
        an attribute of the dataset (indexed per sample, under ``Subset`` / ``ConcatDataset``), a
        callable ``fn(dataset, index) -> value``, or a mapping of split name to a sequence.
    audit_transform : how to read a dataset that augments in ``__getitem__`` (see
        ``leakguard.sources.torch``); default: its ``transform`` attribute is switched off.
    checks, config, modality : as for :func:`leakguard.audit`.
    audit_test : audit the test dataloader too when the module or datamodule defines one.
    cache_dir : where the audit keeps its signature cache, so that the next fit on the same data
        (a re-run, a new model, a resumed job) reads each unchanged sample's signatures and each
        verified pair back instead of computing them again, and a grown dataset costs only its
        new samples. ``"auto"`` (default): ``<trainer.default_root_dir>/.leakguard-cache``, beside
        ``lightning_logs``; a path; None: no cache. ``config.cache_dir``, when set, wins.
    evaluate_leak_effect : after each validation, score the model on the clean and the leaked part
        of each validation split with the module's own ``validation_step`` metrics, logged as
        ``<metric>/clean`` and ``<metric>/leaked``.
    explain : at the end of ``fit``, run :func:`leakguard.find_target_leakage` on a copy of the
        model and at most ``max_samples`` validation samples, and log its findings and pictures.
    max_samples : bound on the samples the explanation reads.
    explain_options : more keyword options of :func:`leakguard.find_target_leakage`, e.g.
        ``{"time_budget": 60}``.
    framework : ``"lightning.pytorch"`` or ``"pytorch_lightning"``; None takes the one imported
        (the trainer's, checked when ``fit`` starts).

    Attributes (after ``fit`` starts)
    ---------------------------------
    report : the :class:`leakguard.Report` (None on ranks other than zero, or when reused).
    audit_reused : True when a resumed run found its data unchanged and skipped the audit.
    leaked : mapping of evaluation split to the indices of its leaked samples.
    leak_effect : the last ``<metric>/clean`` and ``<metric>/leaked`` values.
    explanation : the result of ``find_target_leakage`` (or None).
    timings : seconds spent in each of the callback's parts: ``audit`` (fit start, logging
        included), ``leak_effect`` (all clean / leaked passes so far), ``explain`` (fit end).

    Example
    -------
    >>> cb = LeakGuardCallback(on_leak={"exact_duplicate": "fail", "*": "warn"}, labels="targets")
    >>> trainer = Trainer(callbacks=[cb], logger=MLFlowLogger(tracking_uri="sqlite:///mlflow.db"))  # doctest: +SKIP
    """

    def __new__(cls, *args, framework: str | None = None, **kwargs):
        if cls is LeakGuardCallback:
            cls = callback_class(framework or _default_framework())
        return super().__new__(cls)

    def __init__(self, on_leak="warn", labels=None, groups=None, timestamps=None, audit_transform=None,
                 checks=None, config=None, modality: str | None = None, audit_test: bool = True,
                 cache_dir="auto",
                 evaluate_leak_effect: bool = True, explain: bool = True, max_samples: int = 500,
                 explain_options: dict | None = None, framework: str | None = None):
        _validate_policy(on_leak)
        if max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples}")
        self.on_leak = on_leak
        self.labels = labels
        self.groups = groups
        self.timestamps = timestamps
        self.audit_transform = audit_transform
        self.checks = checks
        self.config = config
        self.modality = modality
        self.audit_test = audit_test
        self.cache_dir = cache_dir
        self.evaluate_leak_effect = evaluate_leak_effect
        self.explain = explain
        self.max_samples = int(max_samples)
        self.explain_options = dict(explain_options or {})
        self.framework = framework
        self.report = None
        self.audit_reused = False
        self.leaked: dict[str, np.ndarray] = {}
        self.leak_effect: dict[str, float] = {}
        self.explanation = None
        self.timings: dict[str, float] = {}
        self._digests: dict[str, str] = {}
        self._findings: list[dict] = []   # check, severity, title, count: what a decision needs
        self._verdict: str | None = None
        self._eval_loader_index: dict[str, int] = {}
        self._restored: dict | None = None

    # Lightning keys callback state by ``state_key``; one name for both packagings, so a
    # checkpoint written with one loads with the other
    @property
    def state_key(self) -> str:
        return "LeakGuardCallback"

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer, pl_module, stage: str) -> None:
        fw = framework_of(trainer)
        if fw is not None and not isinstance(self, callback_class(fw)):
            # built before the trainer, with both packagings imported: become the trainer's kind,
            # so nothing of the other package is used with this trainer
            self.__class__ = callback_class(fw)

    def on_fit_start(self, trainer, pl_module) -> None:
        decision = {"stop": False, "message": "", "leaked": {}, "eval_index": {}}
        if trainer.is_global_zero:
            started = time.perf_counter()
            try:
                decision = self._audit_and_decide(trainer, pl_module)
            except Exception as err:  # noqa: BLE001 - a failed audit never stops training
                warnings.warn(f"leakguard could not audit the data ({type(err).__name__}: {err}); "
                              "training goes on without the audit", RuntimeWarning, stacklevel=2)
            self.timings["audit"] = time.perf_counter() - started
        # every rank learns rank zero's decision, so all of them stop (or go on) together
        decision = trainer.strategy.broadcast(decision, src=0)
        self.leaked = {k: np.asarray(v, dtype=np.int64) for k, v in decision["leaked"].items()}
        self._eval_loader_index = dict(decision["eval_index"])
        if decision["stop"]:
            from leakguard.errors import LeakageDetected

            raise LeakageDetected(decision["message"], report=self.report)

    def on_validation_end(self, trainer, pl_module) -> None:
        if (not self.evaluate_leak_effect or trainer.sanity_checking or not trainer.is_global_zero
                or not any(len(v) for v in self.leaked.values())):
            return
        started = time.perf_counter()
        try:
            self._log_leak_effect(trainer, pl_module)
        except Exception as err:  # noqa: BLE001
            warnings.warn(f"leakguard could not score the clean and leaked validation samples "
                          f"({type(err).__name__}: {err}); training goes on", RuntimeWarning, stacklevel=2)
        self.timings["leak_effect"] = self.timings.get("leak_effect", 0.0) + time.perf_counter() - started

    def on_fit_end(self, trainer, pl_module) -> None:
        if not self.explain or not trainer.is_global_zero:
            return
        started = time.perf_counter()
        try:
            self._explain(trainer, pl_module)
        except Exception as err:  # noqa: BLE001 - the model is trained; never lose it to the explanation
            warnings.warn(f"leakguard's target-leakage analysis failed ({type(err).__name__}: {err}); "
                          "the trained model is unaffected", RuntimeWarning, stacklevel=2)
        self.timings["explain"] = time.perf_counter() - started

    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, "digests": dict(self._digests), "verdict": self._verdict,
                "findings": list(self._findings),
                "leaked": {k: np.asarray(v).astype(int).tolist() for k, v in self.leaked.items()},
                "eval_index": dict(self._eval_loader_index)}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("version") == STATE_VERSION and state_dict.get("digests"):
            self._restored = dict(state_dict)

    # ------------------------------------------------------------------ fit start
    def _audit_config(self, trainer=None):
        from leakguard.config import AuditConfig

        config = self.config or AuditConfig()
        if self.audit_transform is not None:
            config = dataclasses.replace(config, audit_transform=self.audit_transform)
        if config.cache_dir is None and self.cache_dir is not None and trainer is not None:
            folder = (Path(trainer.default_root_dir) / ".leakguard-cache" if self.cache_dir == "auto"
                      else Path(self.cache_dir))
            config = dataclasses.replace(config, cache_dir=folder)
        return config

    def _audit_and_decide(self, trainer, pl_module) -> dict:
        import leakguard as lg

        loaders = fit_dataloaders(trainer, pl_module, audit_test=self.audit_test)
        eval_index = {name: idx for name, (_, idx) in loaders.items() if idx is not None}
        if "train" not in loaders or len(loaders) < 2:
            warnings.warn("leakguard found no training and evaluation dataloaders to audit "
                          f"(found: {list(loaders) or 'none'}); training goes on without the audit",
                          RuntimeWarning, stacklevel=3)
            return {"stop": False, "message": "", "leaked": {}, "eval_index": eval_index}
        data = {name: loader for name, (loader, _) in loaders.items()}
        kwargs = {"labels": per_sample(self.labels, data, "labels"),
                  "groups": per_sample(self.groups, data, "groups"),
                  "timestamps": per_sample(self.timestamps, data, "timestamps")}
        config = self._audit_config(trainer)
        user_workers = max((getattr(dl, "num_workers", 0) or 0 for dl in data.values()), default=0)
        if config.workers is None and user_workers > 4:
            # the engine decodes files on a few threads by default; a loader given more workers is
            # on a machine that has the cores for them, so the audit reads with as many
            config = dataclasses.replace(config, workers=user_workers)
        if self._restored and self._data_unchanged(data, kwargs, config):
            self.audit_reused = True
            self._digests = dict(self._restored["digests"])
            self._findings = list(self._restored.get("findings", []))
            self._verdict = self._restored.get("verdict")
            leaked = {k: list(v) for k, v in self._restored.get("leaked", {}).items()}
            self._log_reused(trainer)
        else:
            from leakguard.integrations import audit_threads

            with audit_threads():
                report = lg.audit(data, train="train", modality=self.modality, checks=self.checks,
                                  config=config, **kwargs)
            self.report = report
            self._digests = {n: info.get("digest") for n, info in report.splits.items()}
            self._findings = [{"check": f.check, "severity": f.severity, "title": f.title,
                               "count": f.count} for f in report.findings]
            self._verdict = report.verdict
            leaked = {n: report.leaked(n).tolist() for n in report.eval_splits}
            self._log_report(trainer, report)
        stop, message, warn_lines = decide(self.on_leak, self._findings)
        if stop:
            self._mark_failed(trainer)
        if warn_lines and not stop:
            warnings.warn("leakguard found leakage:\n  " + "\n  ".join(warn_lines), RuntimeWarning, stacklevel=3)
        return {"stop": stop, "message": message, "leaked": leaked, "eval_index": eval_index}

    def _data_unchanged(self, data, kwargs, config) -> bool:
        """True when every split's content digest equals the one in the restored state."""
        from leakguard.auditing import split_digest
        from leakguard.signatures import SignatureStore
        from leakguard.splits import build_splits

        old = self._restored["digests"]
        if set(old) != set(data):
            return False
        sp = build_splits(data, train="train", modality=self.modality, audit_transform=config.audit_transform,
                          sample_rate=config.sample_rate, **kwargs)
        store = SignatureStore(sp, None, config.progress)
        return all(split_digest(split, store) == old[name] for name, split in sp.items())

    # ------------------------------------------------------------------ where things are logged
    def _mlflow_target(self, trainer):
        """(MlflowClient, run id) of the trainer's MLFlowLogger, else of the active MLflow run, else None."""
        for logger in trainer.loggers:
            if _is_mlflow_logger(logger):
                return logger.experiment, logger.run_id
        if "mlflow" in sys.modules:  # without mlflow imported there is no active run to find
            import mlflow

            active = mlflow.active_run()
            if active is not None:
                from mlflow.tracking import MlflowClient

                return MlflowClient(), active.info.run_id
        return None

    def _local_dir(self, trainer) -> Path:
        base = trainer.log_dir or trainer.default_root_dir
        return Path(base) / "leakguard"

    def _other_loggers(self, trainer):
        return [lg_ for lg_ in trainer.loggers if not _is_mlflow_logger(lg_)]

    def _log_report(self, trainer, report) -> None:
        target = self._mlflow_target(trainer)
        if target is not None:
            client, run_id = target
            report.log_to_mlflow(run_id=run_id, client=client)
        else:
            report.save(self._local_dir(trainer))
        for logger in self._other_loggers(trainer):
            logger.log_metrics(report.summary(), step=trainer.global_step)

    def _log_reused(self, trainer) -> None:
        target = self._mlflow_target(trainer)
        if target is not None:
            from leakguard import __version__

            client, run_id = target
            client.set_tag(run_id, "leakguard.verdict", self._verdict or "pass")
            client.set_tag(run_id, "leakguard.version", __version__)
            client.set_tag(run_id, "leakguard.audit", "reused: data unchanged since the checkpoint")

    def _mark_failed(self, trainer) -> None:
        # Lightning marks the logger's run failed when fit raises, except in ddp_spawn workers,
        # which run fit outside its exception handling: do it here so the run never hangs "running"
        for logger in trainer.loggers:
            if _is_mlflow_logger(logger):
                try:
                    logger.experiment.set_terminated(logger.run_id, "FAILED")
                except Exception as err:  # noqa: BLE001
                    warnings.warn(f"leakguard could not mark MLflow run {logger.run_id} failed: {err}",
                                  RuntimeWarning, stacklevel=2)

    def _log_metrics(self, trainer, metrics: dict[str, float]) -> None:
        step = trainer.global_step
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        if not any(_is_mlflow_logger(lg_) for lg_ in trainer.loggers):
            target = self._mlflow_target(trainer)
            if target is not None:
                from mlflow.entities import Metric

                client, run_id = target
                now = int(time.time() * 1000)
                client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])
            elif not trainer.loggers:
                import json

                folder = self._local_dir(trainer)
                folder.mkdir(parents=True, exist_ok=True)
                with open(folder / "leak_effect.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": step, **metrics}) + "\n")

    # ------------------------------------------------------------------ the leak's effect
    def _log_leak_effect(self, trainer, pl_module) -> None:
        val_loaders = _as_list(trainer.val_dataloaders)
        metrics: dict[str, float] = {}
        for split, indices in self.leaked.items():
            k = self._eval_loader_index.get(split)
            if k is None or not len(indices) or k >= len(val_loaders):
                continue  # the test split is not scored during fit
            loader = val_loaders[k]
            n = len(loader.dataset)
            leaked = np.asarray(indices, dtype=np.int64)
            clean = np.setdiff1d(np.arange(n), leaked)
            suffix = "" if len(val_loaders) == 1 else f"/{split}"
            for part, idx in (("clean", clean), ("leaked", leaked)):
                if not len(idx):
                    continue
                scores = evaluate_subset(trainer, pl_module, loader, idx,
                                         dataloader_idx=k if len(val_loaders) > 1 else None)
                for name, value in scores.items():
                    metrics[f"{name}{suffix}/{part}"] = value
            metrics[f"leakguard/{split}/n_clean"] = float(len(clean))
            metrics[f"leakguard/{split}/n_leaked"] = float(len(leaked))
        if metrics:
            self.leak_effect = metrics
            self._log_metrics(trainer, metrics)

    # ------------------------------------------------------------------ fit end
    def _explain(self, trainer, pl_module) -> None:
        try:
            from leakguard.explain import find_target_leakage
        except ImportError as err:
            warnings.warn(f"leakguard's target-leakage analysis is not available ({err}); skipped",
                          RuntimeWarning, stacklevel=3)
            return
        val_loaders = _as_list(trainer.val_dataloaders)
        if not val_loaders:
            return
        X, y = sample_inputs(val_loaders[0], self.max_samples, seed=self._audit_config().random_state)
        if X is None:
            warnings.warn("leakguard could not take (x, y) inputs from the validation batches; "
                          "target-leakage analysis skipped", RuntimeWarning, stacklevel=3)
            return
        # a copy: SHAP's explainers leave hooks on a model when they fail. Lightning has moved the
        # module back to the CPU by on_fit_end (teardown comes first): the copy goes back to the device
        # it trained on (find_target_leakage puts its inputs there; half / bf16 weights run in float32)
        model = copy.deepcopy(pl_module).to(trainer.strategy.root_device).eval()
        options = {"progress": self._audit_config().progress, **(self.explain_options or {})}
        result = find_target_leakage(model, X, y, max_samples=self.max_samples, **options)
        self.explanation = result
        target = self._mlflow_target(trainer)
        if target is not None:
            client, run_id = target
            result.log_to_mlflow(run_id=run_id, client=client)
        else:
            result.to_report().save(self._local_dir(trainer) / "explain")


# ------------------------------------------------------------------------- helpers
def _validate_policy(on_leak) -> None:
    if isinstance(on_leak, str):
        if on_leak not in ("fail", "warn"):
            raise ValueError(f"on_leak must be 'warn', 'fail' or a mapping of check to policy, got {on_leak!r}")
        return
    if not isinstance(on_leak, Mapping):
        raise ValueError(f"on_leak must be 'warn', 'fail' or a mapping of check to policy, got {on_leak!r}")
    bad = {k: v for k, v in on_leak.items() if v not in POLICIES}
    if bad:
        raise ValueError(f"on_leak policies must be one of {POLICIES}; got {bad}")


def decide(on_leak, findings: list[dict]) -> tuple[bool, str, list[str]]:
    """(stop, message, lines to warn about) for findings under the policy ``on_leak``."""
    policy = {"*": on_leak} if isinstance(on_leak, str) else {"*": "warn", **on_leak}
    stop_lines, warn_lines = [], []
    for f in findings:
        if f["severity"] == "info":
            continue
        line = f"[{f['severity']}] {f['check']}: {f['title']}"
        rule = policy.get(f["check"], policy["*"])
        if rule == "fail" and f["severity"] == "critical":
            stop_lines.append(line)
        elif rule != "ignore":
            warn_lines.append(line)
    message = ""
    if stop_lines:
        message = ("leakguard stopped training before the first batch: the data leaks.\n  "
                   + "\n  ".join(stop_lines)
                   + "\nThe report is in the run (leakguard/report.html); fix the splits (lg.resplit) "
                     "or set on_leak='warn' to train anyway.")
    return bool(stop_lines), message, warn_lines


def _is_mlflow_logger(logger) -> bool:
    # by name in the class hierarchy, so both packagings' MLFlowLogger count without importing either
    return any(k.__name__ == "MLFlowLogger" for k in type(logger).__mro__)


def _as_list(loaders) -> list:
    if loaders is None:
        return []
    if isinstance(loaders, Mapping):
        return list(loaders.values())
    if isinstance(loaders, (list, tuple)):
        return list(loaders)
    return [loaders]


def _named(prefix: str, loaders) -> list[tuple[str, object]]:
    iterables = getattr(loaders, "iterables", None)  # a CombinedLoader
    if iterables is not None:
        loaders = iterables
    if isinstance(loaders, Mapping):
        items = list(loaders.items())
        if len(items) == 1:
            return [(prefix, items[0][1])]
        return [(f"{prefix}_{k}", v) for k, v in items]
    if isinstance(loaders, (list, tuple)):
        if len(loaders) == 1:
            return [(prefix, loaders[0])]
        return [(prefix if i == 0 else f"{prefix}_{i}", v) for i, v in enumerate(loaders)]
    return [(prefix, loaders)]


def _request(trainer, pl_module, loop_attr: str, hook: str):
    """The dataloader(s) that the fit/validate/test loop will request, asked for now."""
    loop = trainer
    for attr in loop_attr.split("."):
        loop = getattr(loop, attr, None)
    source = getattr(loop, "_data_source", None)
    if source is not None:
        return source.dataloader() if source.is_defined() else None
    # no data source on this Lightning version: ask the datamodule, then the module
    for owner in (trainer.datamodule, pl_module):
        method = getattr(type(owner), hook, None) if owner is not None else None
        if method is not None and getattr(method, "__qualname__", "").split(".")[0] not in (
                "LightningModule", "LightningDataModule", "DataHooks"):
            return getattr(owner, hook)()
    return None


def fit_dataloaders(trainer, pl_module, audit_test: bool = True) -> dict[str, tuple[object, int | None]]:
    """{split name: (DataLoader, index among the validation loaders or None)} for the audit."""
    from torch.utils.data import ConcatDataset, DataLoader

    out: dict[str, tuple[object, int | None]] = {}
    train = _named("train", _request(trainer, pl_module, "fit_loop", "train_dataloader"))
    train = [(n, dl) for n, dl in train if dl is not None]
    if len(train) == 1:
        out["train"] = (train[0][1], None)
    elif len(train) > 1:  # several training loaders: one training split
        out["train"] = (ConcatDataset([getattr(dl, "dataset", dl) for _, dl in train]), None)
    val = _named("val", _request(trainer, pl_module, "fit_loop.epoch_loop.val_loop", "val_dataloader"))
    for k, (name, dl) in enumerate(val):
        if dl is not None:
            out[name] = (dl, k)
    if audit_test:
        try:
            test = _named("test", _request(trainer, pl_module, "test_loop", "test_dataloader"))
        except Exception as err:  # noqa: BLE001 - e.g. a datamodule that builds its test set in setup("test")
            warnings.warn(f"leakguard skips the test split: test_dataloader() failed at fit start "
                          f"({type(err).__name__}: {err})", RuntimeWarning, stacklevel=3)
            test = []
        for name, dl in test:
            if dl is not None:
                out[name] = (dl, None)
    for name, (dl, _) in list(out.items()):
        if not isinstance(dl, DataLoader) and not hasattr(dl, "__getitem__"):
            warnings.warn(f"leakguard skips split {name!r}: a {type(dl).__name__} is neither a DataLoader "
                          "nor a Dataset, so it cannot be read in order", RuntimeWarning, stacklevel=3)
            del out[name]
    return out


def _auto_labels(base) -> object:
    targets = getattr(base, "targets", None)
    if targets is not None:
        return targets
    tensors = getattr(base, "tensors", None)  # TensorDataset(x, y)
    if isinstance(tensors, tuple) and len(tensors) >= 2:
        return tensors[1]
    return None


def per_sample(spec, data: Mapping, kind: str):
    """Resolve a labels/groups/timestamps option into {split: array} for :func:`leakguard.audit`."""
    from leakguard.sources.torch import to_numpy, unwrap

    if spec is None and kind != "labels":
        return None
    if isinstance(spec, Mapping):
        return dict(spec)
    out = {}
    for name, loader in data.items():
        values = []
        for base, idx in unwrap(loader):
            if spec is None:
                column = _auto_labels(base)
                if column is None:
                    values = None
                    break
                values.append(to_numpy(column)[idx])
            elif isinstance(spec, str):
                if not hasattr(base, spec):
                    raise ValueError(f"split {name!r}: the dataset {type(base).__name__} has no attribute "
                                     f"{spec!r} for {kind}")
                column = getattr(base, spec)
                values.append(np.asarray([column[i] for i in idx]) if not hasattr(column, "shape")
                              else to_numpy(column)[idx])
            elif callable(spec):
                values.append(np.asarray([_scalar(spec(base, i)) for i in idx]))
            else:
                raise ValueError(f"{kind} must be None, an attribute name, a callable (dataset, index) "
                                 f"or a mapping of split name to values; got {type(spec).__name__}")
        if values:
            out[name] = np.concatenate([np.asarray(v).reshape(len(v), *np.shape(v)[1:]) for v in values])
    return out or None


def _scalar(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return value.item() if np.size(value) == 1 and hasattr(value, "item") else value


# ------------------------------------------------------------------------- scoring subsets
class _LogRecorder:
    """Stands in for ``LightningModule.log`` during a separate pass: collects what validation_step logs."""

    def __init__(self):
        self.values: dict[str, list[tuple[float, int]]] = {}
        self.reduce: dict[str, str] = {}
        self.metric_objects: dict[str, object] = {}
        self.batch_size = 1

    def log(self, name, value, *args, batch_size=None, reduce_fx="mean", **kwargs):
        if hasattr(value, "compute") and hasattr(value, "reset"):  # a torchmetrics Metric
            self.metric_objects[name] = value
            return
        if hasattr(value, "detach"):
            value = value.detach().float().mean().item()
        try:
            value = float(value)
        except (TypeError, ValueError):
            return
        fx = reduce_fx if isinstance(reduce_fx, str) else getattr(reduce_fx, "__name__", "mean")
        self.reduce[name] = fx
        self.values.setdefault(name, []).append((value, int(batch_size or self.batch_size)))

    def log_dict(self, dictionary, *args, **kwargs):
        for name, value in dictionary.items():
            self.log(name, value, *args, **kwargs)

    def result(self) -> dict[str, float]:
        out = {}
        for name, vals in self.values.items():
            v = np.asarray([x for x, _ in vals])
            w = np.asarray([b for _, b in vals], dtype=float)
            fx = self.reduce.get(name, "mean")
            out[name] = float(v.sum() if fx == "sum" else v.max() if fx == "max" else v.min() if fx == "min"
                              else (v * w).sum() / w.sum())
        for name, metric in self.metric_objects.items():
            value = metric.compute()
            out[name] = float(value.detach().float().mean().item() if hasattr(value, "detach") else value)
            metric.reset()
        return out


def _batch_size(batch) -> int:
    if hasattr(batch, "shape") and len(batch.shape):
        return int(batch.shape[0])
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            n = _batch_size(item)
            if n:
                return n
    return 0


def _subset_loader(loader, indices, batch_size=None):
    from torch.utils.data import DataLoader, Subset

    bs = batch_size or getattr(loader, "batch_size", None) or getattr(
        getattr(loader, "batch_sampler", None), "batch_size", None) or 32
    return DataLoader(Subset(loader.dataset, [int(i) for i in indices]), batch_size=bs, shuffle=False,
                      collate_fn=loader.collate_fn, num_workers=getattr(loader, "num_workers", 0))


def evaluate_subset(trainer, pl_module, loader, indices, dataloader_idx: int | None = None) -> dict[str, float]:
    """The module's own validation metrics on ``loader.dataset``'s samples ``indices``.

    A separate pass that no logger sees: ``validation_step`` runs as in validation, and what it
    logs with ``self.log`` is collected here and reduced over the batches (mean weighted by
    batch size, or the metric's ``reduce_fx``; torchmetrics objects are computed).
    """
    import torch

    recorder = _LogRecorder()
    was_training = pl_module.training
    pl_module.eval()
    # instance attributes shadow the methods for this pass only
    pl_module.__dict__["log"] = recorder.log
    pl_module.__dict__["log_dict"] = recorder.log_dict
    try:
        with torch.no_grad():
            for batch_idx, batch in enumerate(_subset_loader(loader, indices)):
                recorder.batch_size = _batch_size(batch) or 1
                # as Lightning's evaluation loop prepares a batch and runs the step: the input in the
                # trainer's precision ("bf16-true" weights take bf16 inputs) and under its autocast
                batch = trainer.precision_plugin.convert_input(batch)
                batch = trainer.strategy.batch_to_device(batch, dataloader_idx=dataloader_idx or 0)
                with trainer.precision_plugin.val_step_context():
                    if dataloader_idx is None:
                        pl_module.validation_step(batch, batch_idx)
                    else:
                        pl_module.validation_step(batch, batch_idx, dataloader_idx)
    finally:
        pl_module.__dict__.pop("log", None)
        pl_module.__dict__.pop("log_dict", None)
        pl_module.train(was_training)
    return recorder.result()


def sample_inputs(loader, max_samples: int, seed: int = 0):
    """(X, y) of at most ``max_samples`` samples of ``loader.dataset``, drawn at random (y may be None)."""
    import torch

    n = len(loader.dataset)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=min(n, max_samples), replace=False))
    xs, ys = [], []
    for batch in _subset_loader(loader, idx):
        if isinstance(batch, Mapping):
            x = next((batch[k] for k in ("image", "img", "input", "x") if k in batch), None)
            y = next((batch[k] for k in ("label", "target", "y") if k in batch), None)
        elif isinstance(batch, (list, tuple)):
            x, y = batch[0], batch[1] if len(batch) > 1 else None
        else:
            x, y = batch, None
        if not isinstance(x, torch.Tensor):
            return None, None
        xs.append(x.cpu())
        if y is not None:
            ys.append(y.cpu() if isinstance(y, torch.Tensor) else torch.as_tensor(y))
    X = torch.cat(xs)
    y = torch.cat(ys).numpy() if ys and len(ys) == len(xs) else None
    return X, y
