"""``leakguard resplit data.yaml --out DIR``: a leak-free split of a YOLO dataset.

The dataset is audited, then :func:`leakguard.resplit` pools its images and keeps together what
must not be separated (every video's frames, every cluster of duplicates, every source image of
crops), and the new split is written as image list files and a new ``data.yaml`` (detect,
segment, pose, OBB; the images and label files stay where they are) or as class folders of links
(classification). Train on it with ``yolo train data=DIR/data.yaml``.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "resplit", help="write a leak-free re-split of a YOLO dataset (image lists and a new data.yaml)",
        description="Audit a YOLO dataset, then write a split that keeps each video, each duplicate "
                    "cluster and each source image in one split.")
    p.add_argument("data", type=Path, help="a YOLO data.yaml, or a classification dataset folder")
    p.add_argument("--out", type=Path, required=True, help="folder for the new split (created)")
    p.add_argument("--ratios", help="new split shares, e.g. train=0.8,val=0.2 (default: the current sizes)")
    p.add_argument("--frame-pattern", default="auto",
                   help="how file names encode video frames, e.g. '{video}_{frame}' (default: auto; 'none' for no groups)")
    p.add_argument("--checks", help="comma-separated check names for the audit (default: every check that applies)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the re-split")
    p.add_argument("--no-verify", action="store_true", help="do not audit the new split")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_resplit)


def _parse_ratios(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep:
            raise SystemExit(f"leakguard resplit: --ratios wants name=share pairs, got {part!r}")
        out[name.strip()] = float(value)
    return out


def resplit_yolo(data, out, ratios=None, frame_pattern="auto", checks=None, config=None,
                 random_state: int = 0, verify: bool = True) -> dict:
    """Audit the YOLO dataset ``data``, re-split it without leaks, write it to ``out``.

    Returns a summary: ``data`` (the new data.yaml or folder), ``sizes``, ``moved``, ``before``
    (the audit's report), ``after`` (the new split's report when ``verify``).

    >>> summary = resplit_yolo("data.yaml", "clean-split", ratios={"train": 0.8, "val": 0.2})  # doctest: +SKIP
    >>> summary["after"].passed                                                              # doctest: +SKIP
    True
    """
    import leakguard as lg

    out = Path(out)
    ds = lg.from_yolo(data, frame_pattern=frame_pattern)
    report = lg.audit(**ds.audit_kwargs(), checks=checks, config=config)
    strata = {name: [list(c) if isinstance(c, tuple) else c for c in ds.classes[name]] for name in ds}
    new = lg.resplit(dict(ds), report, ratios=ratios, train=ds.train, labels=strata, groups=ds.groups,
                     random_state=random_state)
    if out.exists() and any(out.iterdir()):
        if not (out / "leakguard-resplit.json").exists():
            raise lg.InputError(f"{out} exists and was not written by `leakguard resplit`; choose an empty folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    written = _write_classify(ds, new, out) if ds.task == "classify" else _write_lists(ds, new, out)
    summary = {"source": str(data), "data": str(written), "task": ds.task, "sizes": {k: len(v) for k, v in new.items()},
               "moved": new.moved, "strategy": new.info.get("strategy"), "before": report, "after": None}
    origin = {name: [{"file": str(ds[s][int(i)]), "from": s} for s, i in zip(frame["split"], frame["index"])]
              for name, frame in new.origin.items()}
    (out / "leakguard-resplit.json").write_text(json.dumps(
        {"source": str(data), "task": ds.task, "sizes": summary["sizes"], "moved": new.moved,
         "strategy": summary["strategy"], "verdict_before": report.verdict,
         "leaked_before": {n: int(len(report.leaked(n))) for n in report.eval_splits}, "origin": origin},
        indent=1), encoding="utf-8")
    if verify:
        ds_new = lg.from_yolo(written, frame_pattern=frame_pattern)
        summary["after"] = lg.audit(**ds_new.audit_kwargs(), checks=checks, config=config)
    return summary


def _write_lists(ds, new, out: Path) -> Path:
    import yaml

    data = {k: v for k, v in ds.data.items()
            if k not in ("path", "yaml_file", "train", "val", "test", "minival", "download")}
    for name, images in new.items():
        (out / f"{name}.txt").write_text("".join(f"{Path(p).resolve()}\n" for p in images), encoding="utf-8")
        data[name] = f"{name}.txt"  # relative to the yaml's folder (no `path:` key)
    data["names"] = dict(ds.names)
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _write_classify(ds, new, out: Path) -> Path:
    origin = new.origin
    for name, images in new.items():
        for cls in ds.names.values():
            (out / name / cls).mkdir(parents=True, exist_ok=True)
        frame = origin[name]
        for path, old_split, old_index in zip(images, frame["split"], frame["index"]):
            cls = ds.classes[old_split][int(old_index)]
            target = out / name / cls / Path(path).name
            if target.exists() or target.is_symlink():  # same file name from two old splits
                target = target.with_name(f"{old_split}_{target.name}")
            try:
                os.symlink(Path(path).resolve(), target)
            except OSError:
                shutil.copy2(path, target)
    return out


def cmd_resplit(args) -> int:
    from rich.console import Console

    import leakguard as lg

    console = Console()
    pattern = None if str(args.frame_pattern).lower() == "none" else args.frame_pattern
    config = lg.AuditConfig(progress=False if args.no_progress else None)
    try:
        summary = resplit_yolo(args.data, args.out, ratios=_parse_ratios(args.ratios), frame_pattern=pattern,
                               checks=args.checks.split(",") if args.checks else None, config=config,
                               random_state=args.seed, verify=not args.no_verify)
    except lg.InputError as err:
        console.print(f"[red]error:[/red] {err}")
        return 2
    before, after = summary["before"], summary["after"]
    console.print(f"before: verdict {before.verdict.upper()}, "
                  + ", ".join(f"{n}: {len(before.leaked(n))}/{before.splits[n]['n']} leaked" for n in before.eval_splits))
    console.print(f"re-split ({summary['strategy']}): {summary['moved']} images moved; sizes "
                  + ", ".join(f"{k}={v}" for k, v in summary["sizes"].items()))
    if after is not None:
        console.print(f"after: verdict {after.verdict.upper()}, "
                      + ", ".join(f"{n}: {len(after.leaked(n))}/{after.splits[n]['n']} leaked" for n in after.eval_splits))
    console.print(f"new dataset: {summary['data']}")
    return 0
