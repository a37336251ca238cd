"""MLflow logging: figures as metrics, the verdict as a tag, the report as artifacts.

Everything goes through MLflow's client API into an existing run (the given one or the active
one); leakguard never starts a run of its own here. The report is written to local disk first,
so a tracking server that is down loses nothing: upload it later with ``leakguard upload``.

What lands in the run (``prefix`` defaults to ``leakguard``):

- metrics ``leakguard/<split>/leaked_fraction``, ``leakguard/<split>/<check>`` and the other
  figures of ``report.summary()``;
- tags ``leakguard.verdict`` (pass / warn / fail) and ``leakguard.version``;
- artifacts ``leakguard/report.html`` (self-contained), ``report.json``, ``pairs.csv``,
  ``pairs.parquet``, ``pairs_<check>_<split>.png`` (worst pairs) and any ``pictures=`` given;
- the pairs as an MLflow table (``leakguard/pairs_table.json``, for the Evaluation view);
- each audited split as a dataset input (context training / validation / test) whose digest
  leakguard computes over every sample.

>>> import mlflow, leakguard as lg
>>> with mlflow.start_run():                                   # doctest: +SKIP
...     lg.audit({"train": X_train, "val": X_val}).log_to_mlflow()
"""
from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from pathlib import Path

from ._version import __version__
from .errors import LeakGuardError

ARTIFACT_DIR = "leakguard"
MANIFEST = ".leakguard-upload.json"   # how to upload a saved folder later; never uploaded itself
TABLE_ROWS = 10_000                   # pairs sent through log_table (all of them are in pairs.parquet)
PROBE_TIMEOUT_S = 5.0
# While leakguard uploads, MLflow's HTTP retries are bounded (unless the user set them), so a dead
# server costs seconds, not the minutes of MLflow's default back-off, and training goes on.
UPLOAD_HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


class TrackingUnavailable(LeakGuardError, ConnectionError):
    """The MLflow tracking server could not be reached."""


def resolve_run_id(run_id: str | None) -> str:
    """The given run id, or the active run's; a clear error when there is neither."""
    if run_id:
        return run_id
    import mlflow

    active = mlflow.active_run()
    if active is None:
        raise LeakGuardError("no MLflow run to log into: pass run_id=, or call inside "
                             "`with mlflow.start_run():` (leakguard never starts a stray run)")
    return active.info.run_id


def local_report_dir(run_id: str | None = None, prefix: str = ARTIFACT_DIR) -> Path:
    """Where reports are kept on disk before upload (``$LEAKGUARD_REPORT_DIR`` or ./leakguard-reports).

    ``<base>/<run_id>`` for the audit; reports logged under another prefix (the model explanation,
    ``leakguard/explain``) get a folder of their own inside it, so neither overwrites the other.
    """
    base = Path(os.environ.get("LEAKGUARD_REPORT_DIR", "leakguard-reports")) / (run_id or "local")
    if prefix == ARTIFACT_DIR:
        return base
    from .report.pictures import safe_name

    return base / safe_name(prefix.replace("/", "_"))


def split_context(report, split: str) -> str:
    """MLflow's dataset context of a split: training, validation or test."""
    if split == report.train:
        return "training"
    return "test" if "test" in split.lower() else "validation"


# ---------------------------------------------------------------------------------- saving
def save_report_files(report, folder, pictures: dict | None = None, *, prefix: str = ARTIFACT_DIR,
                      step: int | None = None, run_id: str | None = None) -> dict[str, Path]:
    """Write everything that will be uploaded into ``folder``; returns ``{kind: path}``.

    report.json, report.html, pairs.csv, pairs.parquet, one PNG of the worst pairs per finding
    with thumbnails, and the given ``pictures`` (``{name: PIL image or path to an image}``).
    """
    folder = Path(folder)
    saved = dict(report.save(folder))
    pairs = _pairs_with_names(report)
    try:
        pairs.to_parquet(folder / "pairs.parquet", index=False)
        saved["parquet"] = folder / "pairs.parquet"
    except (ImportError, ValueError) as err:  # no parquet engine: pairs.csv has the same rows
        warnings.warn(f"leakguard: pairs.parquet not written ({err}); pairs.csv has the pairs", RuntimeWarning,
                      stacklevel=3)
    try:
        from .report.pictures import pair_pictures

        drawn = pair_pictures(report)
    except Exception as err:  # noqa: BLE001 - a picture that cannot be drawn must not stop the logging
        warnings.warn(f"leakguard: pictures of the worst pairs not drawn ({type(err).__name__}: {err})",
                      RuntimeWarning, stacklevel=3)
        drawn = {}
    for name, pic in {**drawn, **(pictures or {})}.items():
        try:
            saved[f"picture:{name}"] = _save_picture(pic, folder, name)
        except (TypeError, ValueError, OSError) as err:  # one bad picture must not stop the logging
            warnings.warn(f"leakguard: picture {name!r} not saved ({type(err).__name__}: {err})", RuntimeWarning,
                          stacklevel=3)
    manifest = {"run_id": run_id, "prefix": prefix, "step": step, "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (folder / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return saved


def _save_picture(pic, folder: Path, name: str) -> Path:
    """Save a PIL image (or copy an image file) as ``folder/<name>.png``."""
    from PIL import Image

    from .report.pictures import safe_name

    stem = safe_name(Path(name).stem if str(name).lower().endswith(".png") else name)
    path = folder / f"{stem}.png"
    if isinstance(pic, (str, os.PathLike)):
        with Image.open(pic) as img:
            img.save(path, format="PNG")
    elif hasattr(pic, "savefig"):  # a matplotlib figure
        pic.savefig(path, format="png", bbox_inches="tight")
    elif hasattr(pic, "save"):     # a PIL image
        pic.save(path, format="PNG")
    else:
        raise TypeError(f"picture {name!r} must be a PIL image, a matplotlib figure or a path, "
                        f"got {type(pic).__name__}")
    return path


def _pairs_with_names(report):
    """The pairs plus the sample names the previews know (file names, where the data has them)."""
    pairs = report.pairs().copy()

    def name(split, index):
        return report.samples.get(f"{split}:{int(index)}", {}).get("name", "")

    if len(pairs):
        pairs["name_a"] = [name(s, i) for s, i in zip(pairs.split_a, pairs.index_a)]
        pairs["name_b"] = [name(s, i) for s, i in zip(pairs.split_b, pairs.index_b)]
    else:
        pairs["name_a"] = pairs["name_b"] = pairs["split_a"]
    return pairs


# ---------------------------------------------------------------------------------- logging
def log_report(report, run_id: str | None = None, *, client=None, save_dir=None,
               prefix: str = ARTIFACT_DIR, step: int | None = None, pictures: dict | None = None,
               datasets: bool = True, table: bool = True) -> dict:
    """Log ``report`` into an MLflow run.

    Returns ``{"run_id", "saved": {kind: path}, "uploaded": bool, "folder": Path}`` (and
    ``"error"`` when the upload failed).

    Parameters
    ----------
    run_id : the run to log into; None uses the active run (never starts one).
    client : an ``MlflowClient`` (e.g. pointing at a framework's tracking URI); None makes one
        for the current tracking URI. All writes go through it.
    save_dir : where the report is saved before upload (default ``leakguard-reports/<run_id>``,
        or ``$LEAKGUARD_REPORT_DIR/<run_id>``; a sub-folder for other prefixes).
    prefix : artifact folder and metric prefix (``leakguard``).
    step : metric step (e.g. the epoch an integration audits at).
    pictures : extra pictures, ``{name: PIL image | matplotlib figure | path}``, logged as
        ``<prefix>/<name>.png`` (SHAP plots, explanation clusters...).
    datasets : log each split as an MLflow dataset input with leakguard's digest.
    table : log the pairs through ``log_table`` (MLflow's Evaluation view).

    If the upload fails (server down, write refused) a RuntimeWarning names the problem and the
    saved folder, and the call returns normally with ``uploaded=False``: training goes on.

    >>> report.log_to_mlflow(run_id=run.info.run_id, client=MlflowClient("http://mlflow:5000"))  # doctest: +SKIP
    """
    from mlflow.tracking import MlflowClient

    run_id = resolve_run_id(run_id)
    client = client or MlflowClient()
    folder = Path(save_dir) if save_dir else local_report_dir(run_id, prefix)
    try:
        saved = save_report_files(report, folder, pictures, prefix=prefix, step=step, run_id=run_id)
    except OSError as err:  # e.g. a read-only or full disk: keep a copy somewhere and still upload
        import tempfile

        fallback = Path(tempfile.mkdtemp(prefix="leakguard-report-"))
        warnings.warn(f"leakguard could not save the report in {folder} ({err}); saving it in {fallback}",
                      RuntimeWarning, stacklevel=2)
        folder = fallback
        saved = save_report_files(report, folder, pictures, prefix=prefix, step=step, run_id=run_id)
    try:
        _upload(report, run_id, client, folder, prefix, step, datasets=datasets, table=table)
    except Exception as err:  # noqa: BLE001 - a tracking failure must never lose the report
        warnings.warn(f"leakguard could not log to MLflow run {run_id} at {_uri(client)} "
                      f"({type(err).__name__}: {_short(err)}); the report is saved in {folder.resolve()}; "
                      f"send it later with `leakguard upload {folder.resolve()} --run-id {run_id}`",
                      RuntimeWarning, stacklevel=2)
        return {"run_id": run_id, "saved": saved, "uploaded": False, "folder": folder, "error": err}
    return {"run_id": run_id, "saved": saved, "uploaded": True, "folder": folder}


def _short(err: Exception, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + "…"


def _uri(client) -> str:
    return str(getattr(client, "tracking_uri", None) or getattr(getattr(client, "_tracking_client", None),
                                                                 "tracking_uri", "?"))


@contextlib.contextmanager
def bounded_http_retries():
    """MLflow HTTP retries bounded for the duration (values the user set are kept)."""
    changed = {k: v for k, v in UPLOAD_HTTP_ENV.items() if k not in os.environ}
    os.environ.update(changed)
    try:
        yield
    finally:
        for k in changed:
            os.environ.pop(k, None)


def check_reachable(client, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`TrackingUnavailable` when an HTTP tracking server does not answer its health check."""
    uri = _uri(client)
    if not uri.startswith(("http://", "https://")):
        return  # local stores (sqlite, files) need no probe
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as err:
        raise TrackingUnavailable(f"tracking server {uri} did not answer ({type(err).__name__})") from err


def _upload(report, run_id: str, client, folder: Path, prefix: str = ARTIFACT_DIR, step: int | None = None,
            *, datasets: bool = True, table: bool = True) -> None:
    from mlflow.entities import Metric, RunTag

    folder = Path(folder)
    with bounded_http_retries():
        check_reachable(client)
        now = int(time.time() * 1000)
        metrics = [Metric(k if prefix == ARTIFACT_DIR else k.replace(f"{ARTIFACT_DIR}/", f"{prefix}/", 1),
                          float(v), now, step or 0) for k, v in report.summary().items()]
        tags = [RunTag("leakguard.verdict", _combined_verdict(client, run_id, report.verdict)),
                RunTag("leakguard.version", __version__)]
        for i in range(0, max(len(metrics), 1), 900):  # log_batch takes at most 1000 metrics
            client.log_batch(run_id, metrics=metrics[i:i + 900], tags=tags if i == 0 else [])
        # the files of this report only (sub-folders hold reports logged under other prefixes)
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                client.log_artifact(run_id, str(path), artifact_path=prefix)
        if table:
            _log_pairs_table(report, run_id, client, prefix)
        if datasets:
            log_split_datasets(report, run_id, client)


VERDICT_ORDER = ("pass", "warn", "fail")


def _combined_verdict(client, run_id: str, verdict: str) -> str:
    """The worse of this report's verdict and the run's: a dataset audit and a model explanation
    logged into one run (under different prefixes) must not hide each other's failures."""
    current = client.get_run(run_id).data.tags.get("leakguard.verdict")
    if current not in VERDICT_ORDER:
        return verdict
    return max(verdict, current, key=VERDICT_ORDER.index)


def _log_pairs_table(report, run_id: str, client, prefix: str) -> None:
    pairs = _pairs_with_names(report)
    if not len(pairs):
        return
    pairs = pairs.sort_values("score", ascending=False, kind="stable").head(TABLE_ROWS)
    pairs = pairs.assign(audit=str(report.meta.get("created", "")))  # log_table appends: keep audits apart
    client.log_table(run_id, pairs.reset_index(drop=True), f"{prefix}/pairs_table.json")


def split_datasets(report) -> list:
    """MLflow ``DatasetInput``s of the audited splits, with leakguard's full-data digest."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    out = []
    for name, info in report.splits.items():
        digest = str(info.get("digest") or "")
        if not digest:
            continue
        source = CodeDatasetSource(tags={"leakguard.split": name, "leakguard.samples": str(info.get("n", 0)),
                                         "leakguard.modality": str(info.get("modality", ""))})
        ds = MetaDataset(source, name=name, digest=digest)._to_mlflow_entity()
        tags = [InputTag("mlflow.data.context", split_context(report, name)),
                InputTag("leakguard.samples", str(info.get("n", 0)))]
        out.append(DatasetInput(ds, tags))
    return out


def log_split_datasets(report, run_id: str, client) -> None:
    """Log each audited split as a dataset input of the run (same data, same digest, in every run)."""
    inputs = split_datasets(report)
    if inputs:
        client.log_inputs(run_id, datasets=inputs)


def upload_saved(folder, run_id: str | None = None, client=None, *, prefix: str | None = None,
                 step: int | None = None) -> str:
    """Send a report saved on disk (``report.json`` and its files) into an MLflow run; returns the run id.

    ``run_id``, ``prefix`` and ``step`` default to what was recorded when the report was saved.

    >>> upload_saved("leakguard-reports/1a2b3c", run_id="1a2b3c")   # doctest: +SKIP
    """
    from mlflow.tracking import MlflowClient

    from .report import Report

    folder = Path(folder)
    if not (folder / "report.json").is_file():
        raise LeakGuardError(f"{folder} holds no report.json: give the folder a failed upload named")
    manifest = {}
    if (folder / MANIFEST).is_file():
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    run_id = run_id or manifest.get("run_id")
    if not run_id:
        raise LeakGuardError(f"no run id for {folder}: pass --run-id")
    report = Report.from_json(folder / "report.json")
    _upload(report, run_id, client or MlflowClient(), folder, prefix or manifest.get("prefix") or ARTIFACT_DIR,
            step if step is not None else manifest.get("step"))
    return run_id


# ---------------------------------------------------------------------------------- comparing
def find_run(ref: str, client):
    """A run by id, or else by run name (newest first, over every experiment)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(ref)
    except MlflowException:
        pass
    experiments = [e.experiment_id for e in client.search_experiments()]
    safe = ref.replace("'", "\\'")
    runs = client.search_runs(experiments, filter_string=f"attributes.run_name = '{safe}'",
                              order_by=["attributes.start_time DESC"], max_results=1) if experiments else []
    if not runs:
        raise LeakGuardError(f"no MLflow run with id or name {ref!r} at {_uri(client)}")
    return runs[0]


def _base_metric(name: str) -> tuple[str, str] | None:
    for part in ("clean", "leaked"):
        if name.endswith("/" + part):
            return name[: -len(part) - 1], part
    return None


def compare_runs(run_a: str, run_b: str, client=None) -> dict:
    """Leakage figures, verdicts, model metrics and datasets of two runs, side by side.

    Returns a dict: ``runs`` (two dicts: id, name, experiment, status, verdict, version),
    ``leakage`` rows (metric, a, b), ``clean_leaked`` rows (metric; all / clean / leaked / gap per
    run; the gap ``leaked - clean`` says how much of the score the leak explains), ``model`` rows
    (other metrics) and ``datasets`` rows (name, context, digest a, digest b, same).

    >>> cmp = compare_runs("leaky-run-id", "clean-run-id")          # doctest: +SKIP
    >>> cmp["runs"][0]["verdict"], cmp["runs"][1]["verdict"]        # doctest: +SKIP
    ('fail', 'pass')
    """
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient()
    runs = [find_run(run_a, client), find_run(run_b, client)]
    metrics = [r.data.metrics for r in runs]
    names = sorted(set(metrics[0]) | set(metrics[1]))
    leak_names = [n for n in names if n.startswith(f"{ARTIFACT_DIR}/")]
    # leaked_fraction first, then the per-check counts, then the totals
    leak_names.sort(key=lambda n: (n.count("/") != 2, not n.endswith("leaked_fraction"), n))
    split_bases = {}
    for n in names:
        if not n.startswith(f"{ARTIFACT_DIR}/") and _base_metric(n):
            base, part = _base_metric(n)
            split_bases.setdefault(base, set()).add(part)
    clean_leaked = []
    for base in sorted(split_bases):
        row = {"metric": base}
        for side, m in zip("ab", metrics):
            clean, leaked = m.get(f"{base}/clean"), m.get(f"{base}/leaked")
            row[side] = {"all": m.get(base), "clean": clean, "leaked": leaked,
                         "gap": None if clean is None or leaked is None else leaked - clean}
        clean_leaked.append(row)
    covered = set(leak_names) | {f"{b}/{p}" for b in split_bases for p in ("clean", "leaked")} | set(split_bases)
    model = [{"metric": n, "a": metrics[0].get(n), "b": metrics[1].get(n)} for n in names if n not in covered]
    for row in model:
        row["delta"] = None if row["a"] is None or row["b"] is None else row["b"] - row["a"]
    datasets: dict[tuple, dict] = {}
    for side, run in zip("ab", runs):
        for inp in (run.inputs.dataset_inputs if run.inputs else []) or []:
            ctx = next((t.value for t in inp.tags if t.key == "mlflow.data.context"), "")
            row = datasets.setdefault((inp.dataset.name, ctx), {"name": inp.dataset.name, "context": ctx,
                                                                 "a": None, "b": None})
            row[side] = inp.dataset.digest
    for row in datasets.values():
        row["same"] = row["a"] is not None and row["a"] == row["b"]
    info = []
    for r in runs:
        exp = client.get_experiment(r.info.experiment_id)
        info.append({"id": r.info.run_id, "name": r.info.run_name or "", "experiment": exp.name if exp else "",
                     "status": r.info.status, "verdict": r.data.tags.get("leakguard.verdict", "not audited"),
                     "version": r.data.tags.get("leakguard.version", "")})
    return {"tracking_uri": _uri(client), "runs": info,
            "leakage": [{"metric": n, "a": metrics[0].get(n), "b": metrics[1].get(n)} for n in leak_names],
            "clean_leaked": clean_leaked, "model": model, "datasets": list(datasets.values())}


def __getattr__(name: str):
    # The MLflow evaluator lives in its own module (it subclasses an MLflow class); the entry point
    # ``leakguard.tracking:LeakGuardEvaluator`` resolves here without importing MLflow eagerly.
    if name == "LeakGuardEvaluator":
        from .evaluator import LeakGuardEvaluator

        return LeakGuardEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
