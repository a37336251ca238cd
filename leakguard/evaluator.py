"""``leakguard`` as an MLflow model evaluator.

Registered under the ``mlflow.model_evaluator`` entry point, so ``mlflow.models.evaluate`` runs
it next to MLflow's default evaluator: it audits the evaluation data against the training data,
scores the model on the clean and the leaked part of the evaluation data (``<metric>/clean``,
``<metric>/leaked``), runs the target-leakage analysis when ``leakguard.find_target_leakage`` is
available, and logs everything into the evaluation's run.

>>> import mlflow                                                     # doctest: +SKIP
>>> result = mlflow.models.evaluate(
...     model_uri, eval_df, targets="label", model_type="classifier",
...     evaluators=["default", "leakguard"],
...     evaluator_config={"leakguard": {"train_data": train_df}})
>>> result.metrics["leakguard/eval/leaked_fraction"]

``evaluator_config["leakguard"]`` keys:

- ``train_data`` (required): the training data, a DataFrame (the target column, if present, is
  taken as the training labels) or an array.
- ``train_targets``: training labels (a sequence) when ``train_data`` does not hold them.
- ``eval_name``: name of the evaluation split in the report (default ``"eval"``).
- ``checks``, ``config``: passed to :func:`leakguard.audit`.
- ``target_leakage``: run the attribution analysis (default True when it is available).
- ``max_samples``: samples the attribution analysis explains (default 1000).
"""
from __future__ import annotations

import warnings

import numpy as np
from mlflow.models.evaluation import EvaluationResult, ModelEvaluator

SUPPORTED_TYPES = ("classifier", "regressor")


class LeakGuardEvaluator(ModelEvaluator):
    """Audit the evaluation data against the training data inside ``mlflow.models.evaluate``."""

    @classmethod
    def can_evaluate(cls, *, model_type, evaluator_config, **kwargs) -> bool:
        return model_type in SUPPORTED_TYPES

    def evaluate(self, *, model_type, dataset, run_id, evaluator_config, model=None, extra_metrics=None,
                 custom_artifacts=None, predictions=None, **kwargs):
        from mlflow.tracking import MlflowClient

        import leakguard as lg

        from .errors import InputError
        from .tracking import log_report

        config = dict(evaluator_config or {})
        if "train_data" not in config:
            raise InputError('the leakguard evaluator needs the training data: evaluator_config='
                             '{"leakguard": {"train_data": train_df}}')
        eval_name = str(config.get("eval_name", "eval"))
        if eval_name == "train":
            raise InputError("eval_name must differ from 'train'")
        target = dataset.targets_name
        train_X, train_y = _split_target(config["train_data"], target, config.get("train_targets"))
        eval_X = _frame(dataset.features_data, dataset.feature_names)
        train_X = _frame(train_X, dataset.feature_names)
        missing = [c for c in eval_X.columns if c not in train_X.columns]
        if missing:
            raise InputError(f"train_data lacks the evaluation features {missing[:10]}"
                             f"{' …' if len(missing) > 10 else ''}")
        train_X = train_X[list(eval_X.columns)]
        eval_y = None if dataset.labels_data is None else np.asarray(dataset.labels_data)
        labels = None
        if train_y is not None and eval_y is not None:
            labels = {"train": np.asarray(train_y), eval_name: eval_y}
        report = lg.audit({"train": train_X, eval_name: eval_X}, train="train", labels=labels,
                          modality="tabular", checks=config.get("checks"), config=config.get("config"))
        client = MlflowClient()
        metrics = dict(report.summary())
        metrics.update(self._clean_leaked_metrics(model, model_type, eval_X, eval_y, report.leaked(eval_name),
                                                  predictions, dataset))
        tl = self._target_leakage(model, eval_X, eval_y, train_X, config)
        if tl is not None:
            # one report with every finding; the explanation also logs its own pictures below
            report.findings.extend(getattr(tl, "findings", []) or [])
            metrics.update(report.summary())
        log_report(report, run_id=run_id, client=client)
        if tl is not None:
            _log_target_leakage(tl, run_id, client)
        extra = {k: v for k, v in metrics.items() if not k.startswith("leakguard/")}
        if extra:
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in extra.items()])
        return EvaluationResult(metrics=metrics, artifacts={}, run_id=run_id)

    # ------------------------------------------------------------------ parts
    @staticmethod
    def _clean_leaked_metrics(model, model_type, X, y, leaked_idx, predictions, dataset) -> dict:
        """The model's score on the clean and on the leaked rows of the evaluation data."""
        if y is None or (model is None and not getattr(dataset, "has_predictions", False)):
            return {}
        try:
            pred = np.asarray(dataset.predictions_data) if model is None else _predict(model, X, predictions)
        except Exception as err:  # noqa: BLE001 - the audit is logged even if the model cannot predict here
            warnings.warn(f"leakguard evaluator: no clean/leaked scores, the model did not predict "
                          f"({type(err).__name__}: {err})", RuntimeWarning, stacklevel=3)
            return {}
        leaked = np.zeros(len(y), dtype=bool)
        leaked[np.asarray(leaked_idx, dtype=int)] = True
        out = {}
        for part, mask in (("clean", ~leaked), ("leaked", leaked)):
            if not mask.any():
                continue
            if model_type == "classifier":
                out[f"accuracy_score/{part}"] = float(np.mean(pred[mask] == y[mask]))
            else:
                err = pred[mask].astype(float) - y[mask].astype(float)
                out[f"mean_absolute_error/{part}"] = float(np.mean(np.abs(err)))
                out[f"root_mean_squared_error/{part}"] = float(np.sqrt(np.mean(err ** 2)))
        return out

    @staticmethod
    def _target_leakage(model, X, y, train_X, config):
        """``lg.find_target_leakage`` on the evaluation data, or None (with a warning saying why)."""
        if config.get("target_leakage", True) is False or model is None:
            return None
        try:
            from .explain import find_target_leakage
        except (ImportError, AttributeError) as err:
            warnings.warn("leakguard evaluator: target-leakage analysis skipped: "
                          f"leakguard.find_target_leakage is not available here ({err})", RuntimeWarning,
                          stacklevel=3)
            return None
        raw = _raw_model(model)
        try:
            return find_target_leakage(raw, X, y=y, feature_names=list(X.columns),
                                       background=train_X.sample(min(len(train_X), 100), random_state=0),
                                       max_samples=int(config.get("max_samples", 1000)))
        except Exception as err:  # noqa: BLE001 - the dataset audit still goes into the run
            warnings.warn(f"leakguard evaluator: target-leakage analysis failed ({type(err).__name__}: {err}); "
                          "the dataset audit is logged without it", RuntimeWarning, stacklevel=3)
            return None


def _log_target_leakage(tl, run_id: str, client) -> None:
    """The attribution analysis' own logging, through our client when it accepts one."""
    import inspect

    log = getattr(tl, "log_to_mlflow", None)
    if log is None:
        return
    try:
        params = inspect.signature(log).parameters
        log(run_id=run_id, client=client) if "client" in params else log(run_id=run_id)
    except Exception as err:  # noqa: BLE001
        warnings.warn(f"leakguard evaluator: target-leakage results not logged ({type(err).__name__}: {err})",
                      RuntimeWarning, stacklevel=3)


def _raw_model(model):
    """The framework model behind an MLflow pyfunc model, for SHAP; else the pyfunc itself."""
    for get in ("get_raw_model",):
        try:
            return getattr(model, get)()
        except Exception:  # noqa: BLE001 - not every flavour exposes its model
            pass
    return model


def _predict(model, X, predictions=None):
    out = model.predict(X)
    if hasattr(out, "columns"):
        col = predictions if predictions in out.columns else out.columns[0]
        out = out[col]
    return np.asarray(out).reshape(len(X), -1)[:, 0] if np.ndim(out) > 1 else np.asarray(out)


def _split_target(train_data, target, train_targets):
    """(features, labels) of the training data: labels from ``train_targets`` or the target column."""
    import pandas as pd

    if train_targets is not None:
        if isinstance(train_targets, str) and isinstance(train_data, pd.DataFrame):
            return train_data.drop(columns=[train_targets]), train_data[train_targets].to_numpy()
        return train_data, np.asarray(train_targets)
    if isinstance(train_data, pd.DataFrame) and target is not None and target in train_data.columns:
        return train_data.drop(columns=[target]), train_data[target].to_numpy()
    return train_data, None


def _frame(data, feature_names):
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.rename(columns=str).reset_index(drop=True)
    arr = np.asarray(data)
    arr = arr.reshape(len(arr), -1)
    names = [str(n) for n in feature_names] if feature_names is not None and len(feature_names) == arr.shape[1] \
        else [f"feature_{i}" for i in range(arr.shape[1])]
    return pd.DataFrame(arr, columns=names)
