"""The self-contained HTML report (Jinja2 template in ``templates/``, all user data escaped)."""
from __future__ import annotations

import difflib
import functools

from jinja2 import Environment, PackageLoader, select_autoescape

CHECK_TITLES = {
    "exact_duplicate": "Exact duplicates", "augmented_duplicate": "Augmented copies",
    "semantic_duplicate": "Semantic near-duplicates", "partial_duplicate": "Partial duplicates",
    "group_overlap": "Groups in several splits", "temporal_overlap": "Time overlap",
    "target_leakage": "Target leakage", "preprocessing_contamination": "Preprocessing contamination",
    "oversampling_leakage": "Oversampling leakage",
}


def text_diff(a: str, b: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Segments (text, differs) of two texts, word by word, for marking the differences."""
    wa, wb = a.split(" "), b.split(" ")
    sm = difflib.SequenceMatcher(a=wa, b=wb, autojunk=False)
    sa, sb = [], []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if i2 > i1:
            sa.append((" ".join(wa[i1:i2]) + " ", op != "equal"))
        if j2 > j1:
            sb.append((" ".join(wb[j1:j2]) + " ", op != "equal"))
    return sa, sb


@functools.lru_cache(maxsize=1)
def _environment() -> Environment:
    # one per process: Jinja keeps the compiled template in it (compiling it cost ~0.05 s CPU
    # in every report saved, e.g. each Lightning fit's; the Environment is safe to share)
    env = Environment(loader=PackageLoader("leakguard.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"], default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: f"{100 * float(v):.1f}%"
    return env


def finding_rows(report, finding, limit: int) -> list[dict]:
    """The finding's best pairs with both samples' previews (and text differences marked)."""
    if finding.pairs is None or not len(finding.pairs):
        return []
    top = finding.pairs.sort_values("score", ascending=False, kind="stable").head(limit)
    rows = []
    for r in top.itertuples(index=False):
        a = report.samples.get(f"{r.split_a}:{int(r.index_a)}", {})
        b = report.samples.get(f"{r.split_b}:{int(r.index_b)}", {})
        row = {"split_a": r.split_a, "index_a": int(r.index_a), "split_b": r.split_b,
               "index_b": int(r.index_b), "score": float(r.score), "a": a, "b": b}
        if "text" in a and "text" in b:
            row["diff_a"], row["diff_b"] = text_diff(a["text"], b["text"])
        rows.append(row)
    return rows


def render_html(report) -> str:
    env = _environment()
    template = env.get_template("report.html.j2")
    limit = int(report.meta.get("config", {}).get("max_examples", 12) or 12)
    findings = sorted(report.findings, key=lambda f: ({"critical": 0, "warning": 1, "info": 2}[f.severity],
                                                     -f.count))
    sections = [{"f": f, "title": CHECK_TITLES.get(f.check, f.check), "rows": finding_rows(report, f, limit),
                 "n_pairs": 0 if f.pairs is None else len(f.pairs)} for f in findings]
    summary = report.summary()
    split_rows = []
    for name, info in report.splits.items():
        frac = summary.get(f"leakguard/{name}/leaked_fraction")
        split_rows.append({"name": name, "n": info.get("n", 0), "role": info.get("role", ""),
                           "modality": info.get("modality", ""), "leaked": len(report.leaked(name))
                           if name != report.train else None, "fraction": frac,
                           "skipped": len(info.get("skipped", [])), "digest": info.get("digest", "")})
    skipped = [s for v in report.skipped.values() for s in v]
    return template.render(report=report, verdict=report.verdict, sections=sections, splits=split_rows,
                           skipped=skipped[:200], n_skipped=len(skipped), meta=report.meta)
