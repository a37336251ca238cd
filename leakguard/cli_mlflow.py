"""``leakguard compare`` and ``leakguard upload``: the MLflow commands (registered through cli._extend).

    leakguard compare RUN_A RUN_B [--tracking-uri URI] [--html PATH]
    leakguard upload DIR [--run-id ID] [--tracking-uri URI]
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers) -> None:
    c = subparsers.add_parser(
        "compare", help="two MLflow runs side by side: leakage, verdicts, model metrics (clean vs leaked)",
        description="Compare the leakage figures, verdicts and model metrics of two MLflow runs. "
                    "RUN_A and RUN_B are run ids (or run names).")
    c.add_argument("run_a", metavar="RUN_A")
    c.add_argument("run_b", metavar="RUN_B")
    c.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default)")
    c.add_argument("--html", type=Path, help="also write the comparison as an HTML page here")
    c.set_defaults(handler=cmd_compare)

    u = subparsers.add_parser(
        "upload", help="send a report saved on disk (after a failed upload) into an MLflow run",
        description="Upload a leakguard report folder (report.json, report.html, pairs, pictures) into an "
                    "MLflow run: the metrics, tags, artifacts, pairs table and dataset inputs.")
    u.add_argument("folder", type=Path, metavar="DIR")
    u.add_argument("--run-id", help="the run to log into (default: the run recorded when the report was saved)")
    u.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's default)")
    u.set_defaults(handler=cmd_upload)


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri) if uri else MlflowClient()


def cmd_upload(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .errors import LeakGuardError
    from .tracking import upload_saved

    console = Console()
    client = _client(args.tracking_uri)
    try:
        run_id = upload_saved(args.folder, run_id=args.run_id, client=client)
        # reports logged under another prefix (the model explanation) were saved in subfolders
        # (tracking.local_report_dir): they belong to the same run, so they go with it
        for sub in sorted(p for p in args.folder.iterdir() if p.is_dir() and (p / "report.json").is_file()):
            upload_saved(sub, run_id=run_id, client=client)
            console.print(f"uploaded {sub} into MLflow run {run_id}", highlight=False)
    except LeakGuardError as err:
        console.print(f"[red]error:[/red] {err}", markup=True, highlight=False)
        return 2
    except Exception as err:  # noqa: BLE001 - the report stays on disk; say why it did not go
        console.print(f"[red]upload failed[/red] ({type(err).__name__}): {err}\n"
                      f"The report is still in {args.folder}.", highlight=False)
        return 1
    console.print(f"uploaded {args.folder} into MLflow run {run_id} ({client.tracking_uri})", highlight=False)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .errors import LeakGuardError
    from .tracking import compare_runs

    console = Console()
    try:
        cmp = compare_runs(args.run_a, args.run_b, client=_client(args.tracking_uri))
    except LeakGuardError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        return 2
    print_comparison(cmp, console)
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(comparison_html(cmp), encoding="utf-8")
        console.print(f"HTML comparison: {args.html}")
    return 0


def fmt(value, metric: str = "") -> str:
    """A figure as people read it: shares as percentages, counts as integers."""
    if value is None:
        return "–"
    if metric.endswith("leaked_fraction"):
        return f"{100 * value:.1f}%"
    if metric.startswith("leakguard/") and float(value).is_integer():
        return str(int(value))  # counts of samples, findings
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.6g}"


def fmt_delta(value) -> str:
    return "" if value is None else f"{value:+.4f}" if abs(value) < 1000 else f"{value:+.6g}"


def print_comparison(cmp: dict, console=None) -> None:
    """The comparison as rich tables in the terminal (user text escaped)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    colour = {"fail": "red", "warn": "yellow", "pass": "green"}
    a, b = cmp["runs"]

    def head(r):
        return f"{escape(r['name'] or r['id'][:8])}\n[dim]{r['id'][:12]}[/]"

    t = Table(title="runs", title_justify="left")
    t.add_column("")
    t.add_column(head(a), justify="right")
    t.add_column(head(b), justify="right")
    t.add_row("experiment", escape(a["experiment"]), escape(b["experiment"]))
    t.add_row("status", a["status"], b["status"])
    t.add_row("verdict", *(f"[bold {colour.get(r['verdict'], 'white')}]{escape(r['verdict'])}[/]" for r in (a, b)))
    console.print(t)
    if cmp["leakage"]:
        t = Table(title="leakage", title_justify="left")
        for col in ("figure", "A", "B"):
            t.add_column(col, justify="left" if col == "figure" else "right")
        for row in cmp["leakage"]:
            t.add_row(escape(row["metric"]), fmt(row["a"], row["metric"]), fmt(row["b"], row["metric"]))
        console.print(t)
    if cmp["clean_leaked"]:
        t = Table(title="model on the clean and the leaked part of the evaluation data "
                        "(gap = leaked − clean: the share of the score the leak explains)", title_justify="left")
        for col in ("metric", "run", "all", "clean", "leaked", "gap"):
            t.add_column(col, justify="left" if col in ("metric", "run") else "right")
        for row in cmp["clean_leaked"]:
            for side, r in zip("ab", (a, b)):
                s = row[side]
                t.add_row(escape(row["metric"]) if side == "a" else "", f"{side.upper()} {escape(r['name'])}",
                          fmt(s["all"]), fmt(s["clean"]), fmt(s["leaked"]),
                          f"[bold]{fmt_delta(s['gap'])}[/]" if s["gap"] is not None else "")
        console.print(t)
    if cmp["model"]:
        t = Table(title="model metrics", title_justify="left")
        for col in ("metric", "A", "B", "B − A"):
            t.add_column(col, justify="left" if col == "metric" else "right")
        for row in cmp["model"]:
            t.add_row(escape(row["metric"]), fmt(row["a"]), fmt(row["b"]), fmt_delta(row["delta"]))
        console.print(t)
    if cmp["datasets"]:
        t = Table(title="datasets (leakguard digests over every sample)", title_justify="left")
        for col in ("dataset", "context", "A digest", "B digest", "same data"):
            t.add_column(col)
        for row in cmp["datasets"]:
            t.add_row(escape(row["name"]), escape(row["context"]), row["a"] or "–", row["b"] or "–",
                      "yes" if row["same"] else "[yellow]no[/]")
        console.print(t)
    if not (cmp["leakage"] or cmp["model"]):
        console.print("[yellow]neither run has metrics[/]")


def comparison_html(cmp: dict) -> str:
    """The comparison as a self-contained HTML page (Jinja2, autoescaped)."""
    from .report.html import _environment

    env = _environment()
    env.filters["fig"] = fmt
    env.filters["delta"] = fmt_delta
    return env.get_template("compare.html.j2").render(cmp=cmp, a=cmp["runs"][0], b=cmp["runs"][1])
