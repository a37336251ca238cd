"""temporal_overlap: training data from after evaluation data, globally or within a group.

- Globally (forecasting-style data: timestamps without groups): evaluation samples earlier than
  the latest training sample. The finding shows the rolling-origin split ``lg.resplit(...,
  time_order=True)`` would make.
- Within a group (frames of one video, visits of one patient, sessions of one user): groups with
  samples in several splits, with the time gap between the closest pair across the splits.

Timestamps come from ``timestamps=`` (a column, a sequence: dates or numbers), or, for files
without them, from dates in the file names (``cam1_2024-03-05_14-22-10.jpg``, ``20240305T142210``).

Options (``AuditConfig(check_options={"temporal_overlap": {...}})``): ``scope`` = "auto" (global
when no groups are given, within groups otherwise), "global", "group" or "both";
``parse_names`` (default True).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from ..report import Finding
from .base import AuditContext, Check, register_check
from .groups import PooledIndex, pooled_group_codes

NAME = "temporal_overlap"
MAX_LISTED = 50

_DATETIME = re.compile(r"(?<!\d)((?:19|20)\d{2})[-_.]?(\d{2})[-_.]?(\d{2})[T_ -]?(\d{2})[-_:.h]?(\d{2})[-_:.m]?(\d{2})(?!\d)")
_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})([-_.]?)(\d{2})\2(\d{2})(?!\d)")


def time_from_name(name: str | None) -> float:
    """Seconds since 1970 (UTC) of a date or date-time written in a file name, or NaN."""
    if not name:
        return np.nan
    from pathlib import PurePath

    parts = PurePath(name).parts[::-1]  # the file name first, then its folders
    for part in parts[:3]:
        for rx, has_time in ((_DATETIME, True), (_DATE, False)):
            for m in rx.finditer(part):
                g = m.groups()
                try:
                    if has_time:
                        dt = datetime(int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]),
                                      tzinfo=timezone.utc)
                    else:
                        dt = datetime(int(g[0]), int(g[2]), int(g[3]), tzinfo=timezone.utc)
                except ValueError:
                    continue
                return dt.timestamp()
    return np.nan


def times_from_names(split) -> np.ndarray | None:
    """Timestamps parsed from a split's file names, when at least 90% of them carry one."""
    kept = split.extra.get("_times_from_names", False)  # applies() and run() both ask: parsed once per audit
    if kept is not False:
        return kept
    names = split.source.names if len(split) else []
    t = None
    if names and not all(n is None for n in names):
        t = np.full(len(names), np.nan)
        missing = 0
        for i, n in enumerate(names):
            t[i] = time_from_name(n)
            missing += bool(np.isnan(t[i]))
            if (len(names) - missing) / len(names) < 0.9:  # the 90 % cannot be reached any more: stop reading
                t = None
                break
    split.extra["_times_from_names"] = t
    return t


def split_times(splits, parse_names: bool = True) -> dict[str, np.ndarray]:
    """Float timestamps per split: given ones, else parsed from file names (splits without either are left out)."""
    out = {}
    for name, split in splits.items():
        if split.timestamps is not None:
            out[name] = np.asarray(split.timestamps, dtype=np.float64)
        elif parse_names and split.modality != "tabular":
            t = times_from_names(split)
            if t is not None:
                out[name] = t
    return out


def format_time(t: float, datelike: bool) -> str:
    if not np.isfinite(t):
        return "?"
    if datelike:
        dt = datetime.fromtimestamp(float(t), tz=timezone.utc)
        return dt.strftime("%Y-%m-%d") if dt.hour == dt.minute == dt.second == 0 else \
            dt.strftime("%Y-%m-%d %H:%M:%S")
    return f"{t:g}"


def format_gap(seconds: float, datelike: bool) -> str:
    if not datelike:
        # plain numbers (frame indices, sequence positions): name the unit so "1 apart" reads as a gap
        return f"{seconds:g} time unit" + ("" if seconds == 1 else "s")
    s = abs(float(seconds))
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.3g} s"


def _datelike(times: dict[str, np.ndarray]) -> bool:
    # float seconds after 1973 and before 2100: read as dates (numbers like frame indices stay numbers)
    allt = np.concatenate([t[np.isfinite(t)] for t in times.values()]) if times else np.zeros(0)
    return bool(len(allt)) and bool(np.all((allt > 1e8) & (allt < 4.1e9)))


@register_check
class TemporalOverlap(Check):
    """Evaluation samples from before training samples: globally, or inside one group.

    >>> report = lg.audit({"train": df_tr, "test": df_te}, timestamps="day")  # doctest: +SKIP
    >>> report.by_check()["temporal_overlap"][0].extra["rolling_origin"]     # doctest: +SKIP
    """

    name = NAME
    order = 62
    description = "training data from after evaluation data (globally, or within a group)"

    def applies(self, splits) -> bool:
        if splits.has_timestamps:
            return True
        if splits.modality == "tabular":
            return False
        times = split_times(splits)
        return splits.train in times and len(times) > 1

    def run(self, ctx: AuditContext) -> list[Finding]:
        opts = ctx.config.options(self.name)
        times = split_times(ctx.splits, opts.get("parse_names", True))
        train = ctx.train
        if train not in times or len(times) < 2:
            return []
        scope = opts.get("scope", "auto")
        grouped = ctx.splits.has_groups
        findings = []
        datelike = _datelike(times)
        if scope in ("global", "both") or (scope == "auto" and not grouped):
            findings += self._global(ctx, times, datelike)
        if grouped and scope in ("group", "both", "auto"):
            findings += self._within_groups(ctx, times, datelike)
        return findings

    # ------------------------------------------------------------------ global
    def _global(self, ctx, times, datelike) -> list[Finding]:
        train = ctx.train
        t_train = times[train]
        if not np.isfinite(t_train).any():
            return []
        latest = float(np.nanmax(t_train))
        proposal = rolling_origin(ctx, times)
        out = []
        fmt = lambda t: format_time(t, datelike)  # noqa: E731
        for e in ctx.splits.eval_names:
            if e not in times:
                continue
            te = times[e]
            early = np.flatnonzero(np.isfinite(te) & (te < latest))
            if not len(early):
                continue
            first_eval = float(np.nanmin(te))
            later_train = np.flatnonzero(np.isfinite(t_train) & (t_train > first_eval))
            n_e = len(te)
            ranges = {s: [fmt(np.nanmin(t)), fmt(np.nanmax(t))] for s, t in times.items() if np.isfinite(t).any()}
            # dates read from file names were not declared by the user to matter: a warning
            from_names = ctx.splits[train].timestamps is None or ctx.splits[e].timestamps is None
            out.append(Finding(
                check=self.name, severity=ctx.severity(self.name, "warning" if from_names else "critical"),
                title=f"{len(early)} of {n_e} {e!r} samples are earlier than the latest {train!r} sample",
                detail=(f"{train!r} runs from {ranges[train][0]} to {ranges[train][1]} and {e!r} from "
                        f"{ranges[e][0]} to {ranges[e][1]}"
                        + (" (dates read from the file names)" if from_names else "")
                        + f": {len(later_train)} training samples come after "
                        f"the first {e!r} sample. A model trained on the future scores better on the past "
                        "than it will on data that arrives after deployment."),
                remedy=("Split by time (rolling origin): train on the earliest data and evaluate on later "
                        "data. " + proposal["text"]),
                splits=(train, e), count=len(early), indices={e: early},
                extra={"kind": "global", "ranges": ranges, "from_file_names": bool(from_names),
                       "latest_train": fmt(latest),
                       "train_after_first_eval": int(len(later_train)),
                       "rolling_origin": proposal["splits"], "moved": proposal["moved"]}))
        return out

    # ------------------------------------------------------------------ within groups
    def _within_groups(self, ctx, times, datelike) -> list[Finding]:
        splits = ctx.splits
        pool = PooledIndex(splits)
        codes, ids = pooled_group_codes(splits, pool)
        t = np.full(pool.total, np.nan)
        for n, tn in times.items():
            t[pool.start[n]: pool.start[n] + pool.sizes[n]] = tn
        out = []
        train = splits.train
        order = [train] + splits.eval_names
        for i, a in enumerate(order):
            for b in order[i + 1:]:
                if a not in times or b not in times:
                    continue
                sa = slice(pool.start[a], pool.start[a] + pool.sizes[a])
                sb = slice(pool.start[b], pool.start[b] + pool.sizes[b])
                ca, cb = codes[sa], codes[sb]
                shared = np.intersect1d(ca[(ca >= 0) & np.isfinite(t[sa])], cb[(cb >= 0) & np.isfinite(t[sb])])
                if not len(shared):
                    continue
                rows = []
                affected = []
                for c in shared:
                    ia = np.flatnonzero((ca == c) & np.isfinite(t[sa]))
                    ib = np.flatnonzero((cb == c) & np.isfinite(t[sb]))
                    ta, tb = t[sa][ia], t[sb][ib]
                    gap, ja, jb = _closest(ta, tb)
                    affected.append(np.flatnonzero(cb == c))
                    rows.append({"group": str(ids[c]), f"n_{a}": len(ia), f"n_{b}": len(ib), "gap": gap,
                                 "gap_text": format_gap(gap, datelike),
                                 f"{a}_index": int(ia[ja]), f"{b}_index": int(ib[jb]),
                                 f"{a}_range": [format_time(ta.min(), datelike), format_time(ta.max(), datelike)],
                                 f"{b}_range": [format_time(tb.min(), datelike), format_time(tb.max(), datelike)]})
                rows.sort(key=lambda r: r["gap"])
                gaps = np.asarray([r["gap"] for r in rows])
                idx_b = np.unique(np.concatenate(affected))
                n_b = pool.sizes[b]
                involves_train = a == train
                out.append(Finding(
                    check=self.name,
                    severity=ctx.severity(self.name + ".group", "warning"),
                    title=(f"{len(shared)} groups have samples in both {a!r} and {b!r}, the closest "
                           f"{format_gap(gaps[0], datelike)} apart"),
                    detail=(f"{len(idx_b)} of {n_b} {b!r} samples belong to groups (videos, patients, "
                            f"users) that also have samples in {a!r}; within a group the closest samples "
                            f"across the two splits are a median {format_gap(float(np.median(gaps)), datelike)} "
                            f"apart (closest: group {rows[0]['group']!r}, {rows[0]['gap_text']}). "
                            + ("Neighbouring moments of one group look alike, so the model is scored on "
                               "near copies of what it trained on." if involves_train else
                               "The two evaluation splits are not independent.")),
                    remedy=("Keep each group in one split: lg.resplit(splits, report, groups=..., "
                            "timestamps=...) (add time_order=True to also train on the earliest groups)."),
                    splits=(a, b), count=len(idx_b), indices={b: idx_b},
                    extra={"kind": "group", "groups": int(len(shared)), "median_gap": float(np.median(gaps)),
                           "min_gap": float(gaps[0]), "listed": rows[:MAX_LISTED]}))
        return out


def _closest(ta: np.ndarray, tb: np.ndarray) -> tuple[float, int, int]:
    """Smallest |ta[i] - tb[j]| and its (i, j), in O((n + m) log n)."""
    order = np.argsort(ta)
    sa = ta[order]
    pos = np.searchsorted(sa, tb)
    best = (np.inf, 0, 0)
    for cand in (np.clip(pos - 1, 0, len(sa) - 1), np.clip(pos, 0, len(sa) - 1)):
        d = np.abs(sa[cand] - tb)
        j = int(np.argmin(d))
        if d[j] < best[0]:
            best = (float(d[j]), int(order[cand[j]]), j)
    return best


def rolling_origin(ctx: AuditContext, times: dict[str, np.ndarray]) -> dict:
    """The split lg.resplit(..., time_order=True) would make at the current sizes, in words and figures."""
    from ..resplitting import _assign_in_time

    names = [n for n in ctx.splits if n in times]
    sizes = {n: len(times[n]) for n in names}
    total = sum(sizes.values())
    order = [ctx.train] + [n for n in names if n != ctx.train]
    ratios = {n: sizes[n] / total for n in order}
    t = np.concatenate([times[n] for n in names])
    old = np.concatenate([np.full(sizes[n], k) for k, n in enumerate(names)])
    pool_codes = None
    if ctx.splits.has_groups:
        sub = {n: ctx.splits[n] for n in names}
        pool = PooledIndex(sub)
        pool_codes, _ = pooled_group_codes(sub, pool)
    if pool_codes is not None and (pool_codes >= 0).any():
        comp = np.where(pool_codes >= 0, pool_codes, pool_codes.max() + 1 + np.arange(total))
        comp = pd.factorize(comp)[0]
    else:
        comp = np.arange(total)
    assign, info = _assign_in_time(comp, t, order, ratios, total)
    new_of = assign[comp]
    new_names = np.asarray(order)[new_of]
    moved = int((new_names != np.asarray(names)[old]).sum())
    datelike = _datelike(times)
    desc = {}
    for k, n in enumerate(order):
        tk = t[(new_of == k) & np.isfinite(t)]
        desc[n] = {"n": int((new_of == k).sum()),
                   "from": format_time(tk.min(), datelike) if len(tk) else None,
                   "to": format_time(tk.max(), datelike) if len(tk) else None}
    parts = "; ".join(f"{n!r}: {d['n']} samples from {d['from']} to {d['to']}" for n, d in desc.items())
    text = (f"lg.resplit(splits, report, timestamps=..., time_order=True) at the current sizes gives {parts} "
            f"(moving {moved} samples).")
    return {"splits": desc, "moved": moved, "text": text}
