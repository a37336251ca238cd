"""MLflow logging: figures as metrics, the verdict as a tag, the report as artifacts.

Everything goes through MLflow's client API into an existing run (the given one or the active
one); leakguard never starts a run of its own here. The report is written to local disk first,
so a tracking server that is down loses nothing: upload it later with ``leakguard upload``.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from ._version import __version__
from .errors import LeakGuardError

ARTIFACT_DIR = "leakguard"


def resolve_run_id(run_id: str | None) -> str:
    """The given run id, or the active run's; a clear error when there is neither."""
    import mlflow

    if run_id:
        return run_id
    active = mlflow.active_run()
    if active is None:
        raise LeakGuardError("no MLflow run to log into: pass run_id=, or call inside "
                             "`with mlflow.start_run():` (leakguard never starts a stray run)")
    return active.info.run_id


def local_report_dir(run_id: str | None = None) -> Path:
    """Where reports are kept on disk before upload (``$LEAKGUARD_REPORT_DIR`` or ./leakguard-reports)."""
    base = Path(os.environ.get("LEAKGUARD_REPORT_DIR", "leakguard-reports"))
    return base / (run_id or "local")


def log_report(report, run_id: str | None = None, *, client=None, save_dir=None,
               prefix: str = "leakguard", step: int | None = None) -> dict:
    """Log ``report`` into an MLflow run. Returns {"run_id", "saved": {kind: path}, "uploaded": bool}.

    The report is saved under ``save_dir`` (default ``leakguard-reports/<run_id>``) before any
    upload; if the upload fails, a warning names the problem and the saved folder.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    run_id = resolve_run_id(run_id)
    client = client or MlflowClient()
    folder = Path(save_dir) if save_dir else local_report_dir(run_id)
    saved = report.save(folder)
    try:
        _upload(report, run_id, client, folder, prefix, step)
    except Exception as err:  # noqa: BLE001 - a tracking failure must never lose the report
        warnings.warn(f"leakguard could not log to MLflow run {run_id} ({type(err).__name__}: {err}); "
                      f"the report is saved in {folder.resolve()}; send it later with "
                      f"`leakguard upload {folder} --run-id {run_id}`", RuntimeWarning, stacklevel=2)
        return {"run_id": run_id, "saved": saved, "uploaded": False}
    return {"run_id": run_id, "saved": saved, "uploaded": True}


def _upload(report, run_id: str, client, folder: Path, prefix: str, step: int | None) -> None:
    import time

    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric(k if prefix == "leakguard" else k.replace("leakguard/", f"{prefix}/", 1),
                      float(v), now, step or 0) for k, v in report.summary().items()]
    tags = [RunTag("leakguard.verdict", report.verdict), RunTag("leakguard.version", __version__)]
    client.log_batch(run_id, metrics=metrics, tags=tags)
    client.log_artifacts(run_id, str(folder), artifact_path=prefix)


def upload_saved(folder, run_id: str, client=None) -> None:
    """Send a report saved on disk (``report.json`` and its files) into an MLflow run."""
    from mlflow.tracking import MlflowClient

    from .report import Report

    folder = Path(folder)
    report = Report.from_json(folder / "report.json")
    _upload(report, run_id, client or MlflowClient(), folder, "leakguard", None)
