"""exact_duplicate: the same canonical content in the training split and an evaluation split."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from ..report import Finding, make_pairs
from ..search import duplicate_groups, hash_join
from ..signatures.exact import canonical_columns, frame_row_hashes
from ..sources import TabularSource
from .base import AuditContext, Check, register_check

WHAT = {"image": "images (same decoded pixels)", "text": "texts (same characters after Unicode "
        "NFC and whitespace folding)", "audio": "recordings (same waveform)", "series": "series (same values)",
        "tabular": "rows (same values in every feature column)"}


@register_check
class ExactDuplicate(Check):
    """Samples of an evaluation split whose canonical content equals a training sample's."""

    name = "exact_duplicate"
    order = 10
    description = "the same content in the training split and an evaluation split"

    def needs(self, splits) -> set[str]:
        return set() if splits.modality == "tabular" else {"digest"}

    def run(self, ctx: AuditContext) -> list[Finding]:
        splits = ctx.splits
        names = list(splits)
        if splits.modality == "tabular":
            keys, frames = _tabular_keys(splits)
        else:
            keys = {n: ctx.signatures.get(n, "digest") for n in names}
            frames = None
        findings = []
        modality = splits.modality
        # cross-split: train against every evaluation split, then evaluation splits among themselves
        order = [splits.train] + splits.eval_names
        for a_pos, a in enumerate(order):
            for b in order[a_pos + 1:]:
                ib, ia = hash_join(keys[a], keys[b])
                if frames is not None and len(ib):
                    same = _rows_equal(frames[a], ia, frames[b], ib)
                    ia, ib = ia[same], ib[same]
                if not len(ib):
                    continue
                conflicts = label_conflicts(splits[a], ia, splits[b], ib)
                finding = exact_cross_finding(a, ia, b, ib, len(splits[b]), modality,
                                              a == splits.train, ctx.severity, conflicts)
                ctx.links.append(finding.pairs)
                findings.append(finding)
        # inside each split: information only
        for n in names:
            groups = _groups_within(keys[n], frames[n] if frames is not None else None)
            if groups:
                findings.append(exact_within_finding(n, groups, ctx.severity))
        return findings


def exact_cross_finding(a, ia, b, ib, n_b, modality, involves_train, severity, conflicts=None):
    """The cross-split finding of exact copies (shared by the local and the Spark engine)."""
    name = "exact_duplicate"
    sev = severity(name, "critical" if involves_train else "warning")
    pairs = make_pairs(a, ia, b, ib, name, 1.0)
    count = _distinct_count(ib)
    return Finding(
        check=name, severity=sev,
        title=f"{count} of {n_b} {b!r} samples are exact copies of {a!r} samples",
        detail=(f"{count} {WHAT[modality]} in {b!r} ({count / max(n_b, 1):.1%}) also occur in "
                f"{a!r}. " + ("A model scored on them is scored on data it trained on."
                              if involves_train else
                              "The two evaluation splits are not independent.")
                + (f" {conflicts['count']} of the copies carry a different label in {b!r} than in "
                   f"{a!r}: label noise, or the same sample annotated twice." if conflicts else "")),
        remedy=(f"Remove the copies from {b!r}, or re-split with lg.resplit(), which keeps "
                "every copy of a sample in one split. Deduplicate before splitting."),
        splits=(a, b), count=count, pairs=pairs,
        extra={"label_conflicts": conflicts} if conflicts else {})


def _distinct_count(values) -> int:
    """Number of distinct integers, by sorting (numpy's hash-based unique was slower here)."""
    values = np.sort(np.asarray(values))
    return int(len(values) and 1 + np.count_nonzero(values[1:] != values[:-1]))


def exact_within_finding(n, groups, severity):
    """The within-split (information) finding of repeated samples (local and Spark engines)."""
    name = "exact_duplicate"
    sizes = np.fromiter(map(len, groups), dtype=np.int64, count=len(groups))
    members = np.concatenate(groups)
    heads = np.cumsum(sizes) - sizes  # position of each group's first member in ``members``
    extra = int(sizes.sum() - len(groups))
    first = np.repeat(members[heads], sizes - 1)
    rest = np.delete(members, heads)
    return Finding(
        check=name, severity=severity(name + ".within", "info"),
        title=f"{extra} redundant copies inside {n!r} ({len(groups)} repeated samples)",
        detail=(f"{len(groups)} samples of {n!r} occur more than once; {extra} copies add no "
                "information and weigh those samples more in training or scoring."),
        remedy="Deduplicate inside the split unless the repetition is intended.",
        splits=(n,), count=extra, pairs=make_pairs(n, first, n, rest, name, 1.0),
        extra={"groups": len(groups)})


def label_conflicts(split_a, ia, split_b, ib, limit: int = 100) -> dict | None:
    """Linked pairs whose samples carry different labels: {"count", "pairs": [[ia, ib, label_a, label_b]]}."""
    if split_a.labels is None or split_b.labels is None or not len(ia):
        return None
    # labels compare as their str(), as Python objects (numpy's own formatting may differ)
    la = _labels_at(split_a.labels, ia).astype(str)
    lb = _labels_at(split_b.labels, ib).astype(str)
    diff = np.flatnonzero(la != lb)
    if not len(diff):
        return None
    return {"count": len(diff),
            "pairs": [[int(ia[k]), int(ib[k]), str(la[k]), str(lb[k])] for k in diff[:limit]]}


def _labels_at(labels, rows) -> np.ndarray:
    if isinstance(labels, np.ndarray):
        return labels[rows].astype(object)  # numpy scalars become Python ones, as np.asarray(dtype=object)
    return np.asarray(labels, dtype=object)[rows]


class CanonicalRows:
    """The canonical values of a tabular split's rows, computed on demand for the rows asked for.

    Only rows whose hash matches another row's are ever compared value by value, so canonical
    columns are built for those rows alone, not for the whole split.
    """

    def __init__(self, frame, columns: list[str]):
        self.frame = frame
        self.columns = columns

    def __len__(self) -> int:
        return len(self.frame)

    def take(self, rows, columns: list[str] | None = None) -> dict:
        """Canonical columns (see ``canonical_columns``) of the given rows, in that order."""
        columns = self.columns if columns is None else columns
        # rows first: selecting columns of the whole frame first would copy its blocks
        part = self.frame.iloc[np.asarray(rows, dtype=np.int64)][columns].reset_index(drop=True)
        return canonical_columns(part, columns)

    def arrow_text_columns(self) -> set[str]:
        """Columns held as Arrow text (pandas' ``str`` dtype): compared in Arrow, not as objects."""
        return {c for c in self.columns if isinstance(self.frame[c].dtype, pd.StringDtype)
                and self.frame[c].dtype.storage == "pyarrow"}


def tabular_canonical(split, columns: list[str]) -> tuple[CanonicalRows, np.ndarray]:
    """(canonical rows on demand, row hashes) of a tabular split, computed once and kept on the split."""
    memo = split.extra.get("canonical")
    if memo is not None and memo[0] == columns:
        return memo[1], memo[2]
    frame = split.source.frame.rename(columns=str)
    hashes = frame_row_hashes(frame, columns)
    rows = CanonicalRows(frame, columns)
    split.extra["canonical"] = (columns, rows, hashes)
    return rows, hashes


def _tabular_keys(splits):
    columns = sorted(str(c) for c in splits[splits.train].source.frame.columns)
    keys, frames = {}, {}
    for name, split in splits.items():
        present = {str(c) for c in split.source.frame.columns}
        missing = set(columns) - present
        extra = present - set(columns)
        if missing or extra:
            raise InputError(f"split {name!r} has different feature columns than {splits.train!r}: "
                             f"missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}")
        frames[name], keys[name] = tabular_canonical(split, columns)
    return keys, frames


def _rows_equal(rows_a: CanonicalRows, ia, rows_b: CanonicalRows, ib) -> np.ndarray:
    """Verify hash matches value by value (NaN equals NaN), so a hash collision is never reported."""
    ia, ib = np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64)
    same = np.ones(len(ia), dtype=bool)
    if not len(ia):
        return same
    text = rows_a.arrow_text_columns() & rows_b.arrow_text_columns()
    for col in text:
        same &= _arrow_text_equal(rows_a.frame[col], ia, rows_b.frame[col], ib)
    rest = [c for c in rows_a.columns if c not in text]
    if not rest:
        return same
    fa, fb = rows_a.take(ia, rest), rows_b.take(ib, rest)
    for col in fa:
        va, vb = fa[col], fb[col]
        eq = va == vb
        if va.dtype.kind == "f" and vb.dtype.kind == "f":
            eq |= np.isnan(va) & np.isnan(vb)
        same &= np.asarray(eq, dtype=bool)
    return same


def _arrow_text_equal(sa, ia, sb, ib) -> np.ndarray:
    """Canonical equality of two Arrow text columns at the given rows: NFC text, a missing value
    equal to a missing value (both canonicalise to "\\0nan"), compared in Arrow; only the rows
    whose raw text differs are normalised, in Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..signatures.exact import _NULL_TEXT, _nfc

    a = pa.array(sa.array).take(pa.array(ia)).fill_null(_NULL_TEXT)
    b = pa.array(sb.array).take(pa.array(ib)).fill_null(_NULL_TEXT)
    eq = pc.equal(a, b).to_numpy(zero_copy_only=False).copy()
    differ = np.flatnonzero(~eq)
    if len(differ):
        ta, tb = a.take(pa.array(differ)).to_pylist(), b.take(pa.array(differ)).to_pylist()
        eq[differ] = [_nfc(x) == _nfc(y) for x, y in zip(ta, tb)]
    return eq


def _groups_within(keys, rows) -> list[np.ndarray]:
    groups = duplicate_groups(keys)
    if rows is None or not groups:
        return groups
    # every member against its group's first member, all groups at once
    sizes = np.fromiter(map(len, groups), dtype=np.int64, count=len(groups))
    members = np.concatenate(groups)
    firsts = np.repeat(members[np.cumsum(sizes) - sizes], sizes)
    same = _rows_equal(rows, firsts, rows, members)
    if same.all():
        return [np.asarray(g, dtype=np.int64) for g in groups]
    out, at = [], 0
    for g in groups:  # a hash collision (rare): split the group by exact value equality
        ok = same[at:at + len(g)]
        at += len(g)
        if ok.all():
            out.append(np.asarray(g, dtype=np.int64))
            continue
        members = g
        while len(members) > 1:
            eq = _rows_equal(rows, np.repeat(members[0], len(members)), rows, members)
            if eq.sum() > 1:
                out.append(np.asarray(members[eq], dtype=np.int64))
            members = members[~eq]
    return out
