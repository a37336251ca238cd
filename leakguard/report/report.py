"""Report: every finding of one audit, the figures MLflow logs, and its JSON / HTML forms."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .._version import __version__
from .finding import PAIR_COLUMNS, Finding, _jsonable, empty_pairs

SCHEMA_VERSION = 1


class Report:
    """What an audit found. Built by :func:`leakguard.audit`; read it, save it, log it.

    >>> report = lg.audit({"train": X_train, "val": X_val})      # doctest: +SKIP
    >>> report.passed, report.leaked("val")                      # doctest: +SKIP
    """

    def __init__(self, findings: list[Finding], splits: dict[str, dict], train: str,
                 samples: dict[str, dict] | None = None, meta: dict | None = None):
        self.findings = list(findings)
        self.splits = splits          # name -> {"n", "modality", "role", "skipped": [...], "digest"}
        self.train = train
        self.samples = samples or {}  # "split:index" -> {"name", "thumb", "text"} for the report
        self.meta = {"leakguard_version": __version__, "schema_version": SCHEMA_VERSION,
                     "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(meta or {})}

    # ---------------------------------------------------------------- reading
    @property
    def passed(self) -> bool:
        """False when any finding is critical."""
        return not any(f.severity == "critical" for f in self.findings)

    @property
    def verdict(self) -> str:
        """"fail" with a critical finding, "warn" with a warning, else "pass"."""
        sev = {f.severity for f in self.findings}
        return "fail" if "critical" in sev else "warn" if "warning" in sev else "pass"

    @property
    def eval_splits(self) -> list[str]:
        return [n for n in self.splits if n != self.train]

    @property
    def skipped(self) -> dict[str, list[dict]]:
        """Samples that could not be read, per split: index, file and reason."""
        return {n: info.get("skipped", []) for n, info in self.splits.items()}

    def leaked(self, split: str, check: str | None = None) -> np.ndarray:
        """Sorted unique indices of ``split``'s samples linked to the training split."""
        if split not in self.splits:
            raise KeyError(f"no split {split!r}; splits are {list(self.splits)}")
        parts = []
        for f in self.findings:
            if (check is not None and f.check != check) or self.train not in f.splits or split == self.train:
                continue
            if f.pairs is not None and len(f.pairs):
                p = f.pairs
                parts.append(p.loc[(p.split_b == split) & (p.split_a == self.train), "index_b"].to_numpy())
                parts.append(p.loc[(p.split_a == split) & (p.split_b == self.train), "index_a"].to_numpy())
            if split in f.indices:
                parts.append(np.asarray(f.indices[split]))
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts).astype(np.int64))

    def pairs(self, check: str | None = None) -> pd.DataFrame:
        """All linked pairs: split_a, index_a, split_b, index_b, check, score."""
        frames = [f.pairs for f in self.findings
                  if f.pairs is not None and len(f.pairs) and (check is None or f.check == check)]
        if not frames:
            return empty_pairs()
        return pd.concat(frames, ignore_index=True)[PAIR_COLUMNS]

    def by_check(self) -> dict[str, list[Finding]]:
        out: dict[str, list[Finding]] = {}
        for f in self.findings:
            out.setdefault(f.check, []).append(f)
        return out

    def summary(self) -> dict[str, float]:
        """Flat figures, named as they are logged to MLflow (``leakguard/<split>/...``)."""
        out: dict[str, float] = {}
        checks = sorted({f.check for f in self.findings})
        for split in self.eval_splits:
            n = self.splits[split].get("n", 0)
            leaked = self.leaked(split)
            out[f"leakguard/{split}/leaked_fraction"] = float(len(leaked) / n) if n else 0.0
            for check in checks:
                if any(split in f.splits and self.train in f.splits for f in self.findings if f.check == check):
                    out[f"leakguard/{split}/{check}"] = float(len(self.leaked(split, check)))
        flagged: dict[str, set] = {}  # distinct features per check, over all its findings
        for f in self.findings:
            if f.features and not (f.pairs is not None and len(f.pairs)) and not f.indices:
                flagged.setdefault(f.check, set()).update(f.features)
        for check, feats in flagged.items():
            out[f"leakguard/{check}/features"] = float(len(feats))
        out["leakguard/findings"] = float(len(self.findings))
        out["leakguard/critical"] = float(sum(f.severity == "critical" for f in self.findings))
        out["leakguard/warnings"] = float(sum(f.severity == "warning" for f in self.findings))
        out["leakguard/skipped"] = float(sum(len(v) for v in self.skipped.values()))
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={i.get('n', 0)}" for n, i in self.splits.items())
        return f"<leakguard.Report verdict={self.verdict} findings={len(self.findings)} splits({sizes})>"

    # ---------------------------------------------------------------- saving
    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "train": self.train, "meta": _jsonable(self.meta),
                "splits": _jsonable(self.splits), "findings": [f.to_dict() for f in self.findings],
                "samples": self.samples, "summary": self.summary(), "verdict": self.verdict}

    def to_json(self, path=None) -> str:
        """The report as JSON text; written to ``path`` too when given."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False, default=_jsonable)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path_or_text) -> "Report":
        """Read a report written by :meth:`to_json` (a path, or the JSON text)."""
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            text = Path(path_or_text).read_text(encoding="utf-8")
        d = json.loads(text)
        version = d.get("schema_version")
        if version is None or version > SCHEMA_VERSION:
            raise ValueError(f"report schema version {version!r} is not one this leakguard "
                             f"({__version__}, schema {SCHEMA_VERSION}) can read")
        rep = cls([Finding.from_dict(f) for f in d["findings"]], d["splits"], d["train"],
                  d.get("samples", {}), d.get("meta", {}))
        rep.meta.update(d.get("meta", {}))
        return rep

    def to_html(self, path=None) -> str:
        """A self-contained HTML page (thumbnails embedded); written to ``path`` too when given."""
        from .html import render_html

        html = render_html(self)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(html, encoding="utf-8")
        return html

    def save(self, folder) -> dict[str, Path]:
        """Write report.json, report.html and pairs.csv into ``folder``; returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"json": folder / "report.json", "html": folder / "report.html", "pairs": folder / "pairs.csv"}
        self.to_json(paths["json"])
        self.to_html(paths["html"])
        self.pairs().to_csv(paths["pairs"], index=False)
        return paths

    def log_to_mlflow(self, run_id: str | None = None, **kwargs):
        """Log figures, verdict and artifacts into the MLflow run ``run_id`` or the active run."""
        from ..tracking import log_report

        return log_report(self, run_id=run_id, **kwargs)
