"""The ``leakguard`` command: audit splits, compare MLflow runs, run the demo."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_LEAK = 1  # `leakguard audit` exits 1 when the verdict is "fail", so scripts and CI can gate on it


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    p = argparse.ArgumentParser(prog="leakguard", description="Find data leakage between training and evaluation data.")
    p.add_argument("--version", action="version", version=f"leakguard {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    a = sub.add_parser("audit", help="audit TRAIN against VAL [TEST] (folders, file lists, CSV/Parquet, or a YOLO data.yaml)")
    a.add_argument("paths", nargs="+", metavar="TRAIN VAL [TEST]",
                   help="the training split, then evaluation splits; or one YOLO data.yaml")
    a.add_argument("--names", help="comma-separated split names (default: train,val,test)")
    a.add_argument("--labels", help="label column (tables)")
    a.add_argument("--groups", help="group column (tables)")
    a.add_argument("--time", help="timestamp column (tables)")
    a.add_argument("--modality", choices=["image", "text", "tabular", "audio", "series"])
    a.add_argument("--checks", help="comma-separated check names (default: every check that applies)")
    a.add_argument("--html", type=Path, help="write the HTML report here")
    a.add_argument("--json", type=Path, help="write the JSON report here")
    a.add_argument("--mlflow", action="store_true", help="log into the MLflow run $MLFLOW_RUN_ID, or a new run")
    a.add_argument("--experiment", help="MLflow experiment for --mlflow (default: MLflow's default)")
    a.add_argument("--cache-dir", type=Path, help="signature cache folder (second audits read only new samples; "
                   "local engine only: --engine spark ignores it)")
    a.add_argument("--recalibrate-growth", type=float, default=0.05,
                   help="with --cache-dir: keep an earlier audit's thresholds while the training split only "
                        "grew by at most this share (0: always calibrate again)")
    a.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="spark: run the audit as a Spark job (pip install 'leakguard-ml[spark]'), same report; "
                        "checks it cannot run are listed in the report (default: local)")
    a.add_argument("--no-progress", action="store_true", help="no progress bars")
    a.add_argument("--no-fail", action="store_true", help="exit 0 even when the verdict is fail")

    sub.add_parser("demo", help="the one-minute story: augmented digits split at random, audited").add_argument(
        "--out", type=Path, default=Path("demo-output"), help="folder for the reports (default: demo-output)")
    sub.add_parser("checks", help="list the checks")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    _extend(parser)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args) or 0)
    if args.command == "audit":
        return cmd_audit(args)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.out)
        return 0
    if args.command == "checks":
        from .checks import CHECKS, available_checks

        for name in available_checks():
            print(f"{name:30s} {CHECKS[name].description}")
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


def _extend(parser: argparse.ArgumentParser) -> None:
    """Commands defined in other modules register themselves here (``add_commands(subparsers)``)."""
    import importlib

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for mod in ("leakguard.cli_mlflow", "leakguard.cli_resplit"):
        try:
            importlib.import_module(mod).add_commands(sub)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise


def load_cli_splits(args) -> tuple[dict, str]:
    """The splits named on the command line, as ``audit`` takes them."""
    paths = [Path(p) for p in args.paths]
    if len(paths) == 1 and (paths[0].suffix.lower() in (".yaml", ".yml")
                            or (paths[0].is_dir() and (paths[0] / "train").is_dir())):
        # a YOLO data.yaml, or a YOLO classification folder (train/, val/, test/ of class folders)
        from .sources.yolo import from_yolo

        return from_yolo(paths[0]), "train"
    if len(paths) < 2:
        raise SystemExit("leakguard audit: give TRAIN and at least one of VAL, TEST (or one data.yaml)")
    names = args.names.split(",") if args.names else ["train", "val", "test", *[f"eval{i}" for i in range(3, 10)]]
    if len(names) < len(paths):
        raise SystemExit(f"leakguard audit: --names gives {len(names)} names for {len(paths)} splits")
    return {names[i]: p for i, p in enumerate(paths)}, names[0]


def cmd_audit(args) -> int:
    from rich.console import Console

    import leakguard as lg

    from .errors import InputError

    console = Console(stderr=False)
    try:
        splits, train = load_cli_splits(args)
        config = lg.AuditConfig(cache_dir=args.cache_dir, progress=False if args.no_progress else None,
                                engine=args.engine, recalibrate_growth=args.recalibrate_growth)
        checks = args.checks.split(",") if args.checks else None
        with console.status("auditing…", spinner="dots") if not args.no_progress else _null():
            # a YOLO dataset brings its label digests, video groups and frame numbers
            found = splits.audit_kwargs() if hasattr(splits, "audit_kwargs") else {}
            report = lg.audit(splits, train=train, labels=args.labels or found.get("labels"),
                              groups=args.groups or found.get("groups"),
                              timestamps=args.time or found.get("timestamps"), modality=args.modality,
                              checks=checks, config=config)
    except InputError as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    print_report(report, console)
    if args.json:
        report.to_json(args.json)
        console.print(f"JSON report: {args.json}")
    if args.html:
        report.to_html(args.html)
        console.print(f"HTML report: {args.html}")
    if args.mlflow:
        _log_cli_report(report, args.experiment, console)
    return EXIT_LEAK if report.verdict == "fail" and not args.no_fail else 0


def _log_cli_report(report, experiment, console) -> None:
    import os

    import mlflow

    if experiment:
        mlflow.set_experiment(experiment)
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        out = report.log_to_mlflow(run_id=run_id)
    else:
        with mlflow.start_run(run_name="leakguard-audit") as run:
            out = report.log_to_mlflow(run_id=run.info.run_id)
    console.print(f"MLflow run {out['run_id']} ({mlflow.get_tracking_uri()})"
                  + ("" if out["uploaded"] else f": upload failed, report kept in {out['saved']['json'].parent}"))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def print_report(report, console=None) -> None:
    """A readable summary in the terminal: verdict, per-split leakage, one line per finding."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    colour = {"fail": "red", "warn": "yellow", "pass": "green"}[report.verdict]
    console.print(f"[bold {colour}]verdict: {report.verdict.upper()}[/]  "
                  f"({len(report.findings)} findings, {report.meta.get('duration_s', 0)} s)")
    t = Table(title="splits", show_lines=False)
    for col in ("split", "samples", "leaked", "share", "skipped"):
        t.add_column(col, justify="right" if col != "split" else "left")
    for name, info in report.splits.items():
        leaked = "" if name == report.train else str(len(report.leaked(name)))
        share = "" if name == report.train else f"{report.summary().get(f'leakguard/{name}/leaked_fraction', 0):.1%}"
        t.add_row(escape(name) + (" (train)" if name == report.train else ""), str(info["n"]), leaked, share,
                  str(len(info.get("skipped", []))))
    console.print(t)
    if report.findings:
        ft = Table(title="findings")
        for col in ("severity", "check", "splits", "affected", "what"):
            ft.add_column(col)
        sev_colour = {"critical": "red", "warning": "yellow", "info": "blue"}
        for f in sorted(report.findings, key=lambda f: ("critical", "warning", "info").index(f.severity)):
            ft.add_row(f"[{sev_colour[f.severity]}]{f.severity}[/]", f.check, escape(" → ".join(f.splits)),
                       str(f.count), escape(f.title))
        console.print(ft)
    skipped = sum(len(v) for v in report.skipped.values())
    if skipped:
        noun, verb = ("sample", "was") if skipped == 1 else ("samples", "were")
        console.print(f"[yellow]{skipped} {noun} could not be read and {verb} skipped[/] (listed in the report)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
