"""lg.resplit: a leak-free re-split that keeps linked samples together.

Every sample of every input split is pooled, linked samples are joined into components (the
pairs of an audit report: duplicate clusters, near duplicates, inferred groups; samples sharing a
group id), and whole components are assigned to the new splits at the requested ratios,
stratified by label, or in time order (rolling origin: the training split holds the earliest data).

>>> import numpy as np, leakguard as lg
>>> X = np.random.default_rng(0).normal(size=(100, 3))
>>> splits = {"train": X[:80], "val": np.vstack([X[80:], X[:5]])}
>>> report = lg.audit(splits)                                    # doctest: +SKIP
>>> new = lg.resplit(splits, report)                             # doctest: +SKIP
>>> lg.audit(new).passed                                         # doctest: +SKIP
True
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .splits import _per_split

__all__ = ["resplit", "ResplitResult"]


class ResplitResult(Mapping):
    """The new splits: a mapping of split name to data of the input's type, ready for ``lg.audit``.

    Attributes
    ----------
    labels, groups, timestamps : mapping of split name to array (the values given to
        :func:`resplit`, rearranged), or None when none were given.
    origin : mapping of split name to a DataFrame with columns ``split`` and ``index``: where each
        sample of the new split was in the input.
    assignment : one row per input sample: ``split``, ``index`` (its old place), ``new_split``,
        ``new_index``, ``component`` (samples that must stay together share it), ``moved``.
    moved : number of samples whose split changed.
    train : name of the training split.

    >>> new = lg.resplit(splits, report)          # doctest: +SKIP
    >>> lg.audit(new, labels=new.labels)          # doctest: +SKIP
    """

    def __init__(self, data: dict, train: str, assignment: pd.DataFrame, labels=None, groups=None,
                 timestamps=None, info: dict | None = None):
        self._data = data
        self.train = train
        self.assignment = assignment
        self.labels = labels
        self.groups = groups
        self.timestamps = timestamps
        self.info = info or {}

    def __getitem__(self, name):
        return self._data[name]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def origin(self) -> dict[str, pd.DataFrame]:
        out = {}
        for name in self._data:
            rows = self.assignment[self.assignment.new_split == name].sort_values("new_index")
            out[name] = pd.DataFrame({"split": rows["split"].to_numpy(),
                                      "index": rows["index"].to_numpy(np.int64)})
        return out

    @property
    def moved(self) -> int:
        return int(self.assignment["moved"].sum())

    def sizes(self) -> dict[str, int]:
        return {name: int((self.assignment.new_split == name).sum()) for name in self._data}

    def summary(self) -> dict:
        """Figures about the re-split: sizes, ratios reached, moved samples, components kept whole."""
        a = self.assignment
        n = len(a)
        comp_sizes = a.groupby("component").size()
        out = {"n": n, "sizes": self.sizes(),
               "ratios": {k: (v / n if n else 0.0) for k, v in self.sizes().items()},
               "target_ratios": dict(self.info.get("ratios", {})),
               "moved": self.moved,
               "moved_by_split": {f"{s}->{t}": int(c) for (s, t), c in
                                  a[a.moved].groupby(["split", "new_split"]).size().items()},
               "components": int(len(comp_sizes)),
               "linked_components": int((comp_sizes > 1).sum()),
               "samples_in_linked_components": int(comp_sizes[comp_sizes > 1].sum()),
               "largest_component": int(comp_sizes.max()) if len(comp_sizes) else 0,
               "links_used": int(self.info.get("links", 0)),
               "strategy": self.info.get("strategy", "")}
        if self.labels is not None:
            dist = {}
            for name, labs in self.labels.items():
                values, counts = np.unique(_label_keys(labs), return_counts=True)
                dist[name] = {str(v): int(c) for v, c in zip(values, counts)}
            out["label_counts"] = dist
        if self.info.get("time_ranges"):
            out["time_ranges"] = self.info["time_ranges"]
            out["time_overlap_components"] = self.info.get("time_overlap_components", 0)
        if self.info.get("missing_times"):
            out["missing_times"] = self.info["missing_times"]
        if "verified" in self.info:
            out["verified"] = self.info["verified"]
            out["verify_rounds"] = self.info.get("verify_rounds", 0)
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return f"<leakguard.ResplitResult {sizes} moved={self.moved}>"


def resplit(splits: Mapping, report=None, ratios=None, train: str = "train", labels=None, groups=None,
            timestamps=None, time_order: bool = False, stratify: bool = True, random_state: int = 0,
            minimal_moves: bool = True, verify="auto", config=None) -> ResplitResult:
    """Re-split the pooled samples so that no linked samples sit in different splits.

    Parameters
    ----------
    splits : mapping of split name to data, as given to :func:`leakguard.audit` (numpy arrays,
        DataFrames, lists of paths / strings / arrays, a folder, a torch Dataset).
    report : the :class:`~leakguard.Report` of an audit of ``splits`` (its pairs join samples), a
        pairs DataFrame (``split_a, index_a, split_b, index_b``), or None (groups only).
    ratios : mapping of new split name to share (normalised to sum 1), or a sequence of shares in
        the order of ``splits``; None keeps the input's split sizes.
    train : the training split's name (the first split in time order).
    labels, groups, timestamps : as for :func:`leakguard.audit`: mapping of split name to a
        sequence, or a column name when the splits are DataFrames (the column stays in the data).
        Samples sharing a group id always land in one split.
    time_order : assign in time order (rolling origin): the training split takes the earliest
        components, then each further split in the order of ``ratios``. A linked component whose
        times straddle a cut stays whole: it is counted in ``info["time_overlap_components"]`` and
        a warning says so (an audit of the output can then still report ``temporal_overlap``).
    stratify : keep each label's share about equal across splits (when labels are given).
    random_state : seed for the order in which equal candidates are placed.
    minimal_moves : keep a sample in its current split when that split has room for it, so the
        re-split moves few samples; False draws a fresh split.
    verify : how to find the links the report cannot hold. An audit links training samples to
        evaluation samples, not near-duplicates inside one split; once a sample moves, such a
        neighbour it left behind would leak.

        - ``"auto"`` (default, with a Report; a pairs DataFrame or None is taken as the complete
          set of links): every moved sample is searched against the split it
          came from, with the report's duplicate checks (exact, augmented, partial, semantic), and
          what they link is kept together; repeated until a round links nothing new (at most 8
          rounds in all).
          Then one audit of the result with those checks (the report kept each evaluation
          sample's best match only); what it still links is folded in the same way.
          The cost: the moved samples searched against their old split, and one audit. In the
          rounds after the first a split may exceed its share by 2% of the data (a linked
          component stays rather than pushing new neighbours across).
        - ``True``: audit the whole new split with the report's checks, fold the cross-split
          links back and split again (at most 3 rounds); a list of check names chooses them.
        - ``False``: only the report's pairs and the group ids.
    config : :class:`~leakguard.AuditConfig` for the verifying audits.

    Returns
    -------
    :class:`ResplitResult`, a mapping of split name to data of the input's type.

    Example
    -------
    >>> new = lg.resplit({"train": X_tr, "test": X_te}, report, labels={"train": y_tr, "test": y_te})  # doctest: +SKIP
    >>> new.moved, new.summary()["sizes"]                                                               # doctest: +SKIP
    """
    kwargs = dict(ratios=ratios, train=train, labels=labels, groups=groups, timestamps=timestamps,
                  time_order=time_order, stratify=stratify, random_state=random_state, minimal_moves=minimal_moves)
    result, pairs = _resplit_once(splits, report, **kwargs)
    if verify == "auto":
        if getattr(report, "meta", None) is not None:  # a Report (a pairs DataFrame: the user's links)
            result = _verified_moved(result, splits, report, pairs, config, kwargs)
    elif verify:
        result = _verified(result, splits, report, pairs, verify, config, kwargs)
    n_across = int(result.info.get("time_overlap_components", 0)) if time_order else 0
    if n_across:  # linked samples stay together, so such a group cannot sit on one side of the time cut
        import warnings

        warnings.warn(f"lg.resplit(time_order=True): {n_across} linked groups hold samples from both sides of a "
                      "split's time boundary (kept whole, they are placed by their earliest time), so an audit of "
                      "the new splits can still report temporal_overlap; see new.info['time_overlap_components'] "
                      "(verify=False links only the report's pairs and the group ids)", stacklevel=2)
    return result


def _resplit_once(splits, report, ratios, train, labels, groups, timestamps, time_order, stratify,
                  random_state, minimal_moves, home=None, slack: float = 0.0):
    """One assignment from the report's pairs and the group ids; ``home``: each sample's preferred
    split (default: where it is now), which minimal moves keep it in."""
    if not isinstance(splits, Mapping) or not splits:
        raise InputError("resplit() takes a mapping of split name to data, e.g. {'train': X_train, 'val': X_val}")
    names = [str(n) for n in splits]
    data = {str(k): _materialise(v, str(k)) for k, v in splits.items()}
    if train not in data:
        raise InputError(f"the training split {train!r} is not among the splits {names}")
    sizes = {n: _length(data[n], n) for n in names}
    offsets = np.cumsum([0] + [sizes[n] for n in names])
    start = dict(zip(names, offsets[:-1]))
    total = int(offsets[-1])
    if total == 0:
        raise InputError("resplit(): every split is empty")

    new_ratios = _ratios(ratios, names, sizes, train)
    new_names = list(new_ratios)

    labs = _per_split_values(labels, data, "labels", sizes)
    grps = _per_split_values(groups, data, "groups", sizes)
    times = _per_split_values(timestamps, data, "timestamps", sizes)
    if time_order and times is None:
        raise InputError("time_order=True needs timestamps= (a column name or a mapping of split name to values)")

    # --- components: links from the report and shared group ids
    rows, cols = [], []
    n_links = 0
    pairs = _pairs_of(report)
    if pairs is not None and len(pairs):
        _check_report_sizes(report, sizes)
        a_ok = pairs["split_a"].astype(str).isin(start) & pairs["split_b"].astype(str).isin(start)
        pairs = pairs[a_ok]
        ga = pairs["split_a"].astype(str).map(start).to_numpy(np.int64) + pairs["index_a"].to_numpy(np.int64)
        gb = pairs["split_b"].astype(str).map(start).to_numpy(np.int64) + pairs["index_b"].to_numpy(np.int64)
        bad = (ga >= total) | (gb >= total) | (pairs["index_a"].to_numpy() < 0) | (pairs["index_b"].to_numpy() < 0)
        for n in names:  # an index past its split's end means the report is of other data
            sel = ((pairs["split_a"] == n) & (pairs["index_a"] >= sizes[n])) | \
                  ((pairs["split_b"] == n) & (pairs["index_b"] >= sizes[n]))
            if sel.any():
                raise InputError(f"the report links sample {int(pairs.loc[sel, 'index_a'].iloc[0])} or later of "
                                 f"split {n!r}, which has {sizes[n]} samples: the report is of other data")
        rows.append(ga[~bad])
        cols.append(gb[~bad])
        n_links = int((~bad).sum())
    if grps is not None:
        all_groups = np.concatenate([_group_keys(grps[n]) for n in names])
        codes, _ = pd.factorize(pd.Series(all_groups, dtype=object), use_na_sentinel=True)
        valid = codes >= 0
        idx = np.flatnonzero(valid)
        # link each sample to the first sample of its group: a star per group
        first = pd.Series(idx).groupby(codes[valid]).transform("first").to_numpy()
        rows.append(idx.astype(np.int64))
        cols.append(first.astype(np.int64))
    component = _components(total, rows, cols)

    # --- per-sample label codes for stratification (multi-label: several codes per sample)
    label_matrix = None
    if labs is not None and stratify and not time_order:
        label_matrix = _label_matrix(np.concatenate([np.asarray(labs[n]).astype(object) for n in names]))
    if label_matrix is None:
        label_matrix = np.ones((total, 1), dtype=np.float64)

    old_split = np.concatenate([np.full(sizes[n], n, dtype=object) for n in names])
    old_index = np.concatenate([np.arange(sizes[n], dtype=np.int64) for n in names])

    info: dict = {"ratios": new_ratios, "links": n_links}
    if time_order:
        t = np.concatenate([_times_of(times[n], n) for n in names])
        new_of_comp, time_info = _assign_in_time(component, t, new_names, new_ratios, total)
        info.update(time_info)
        info["strategy"] = "time order (rolling origin)"
    else:
        home = (old_split if home is None else home) if minimal_moves else None
        new_of_comp = _assign_greedy(component, label_matrix, new_names, new_ratios, home,
                                     np.random.default_rng(random_state), tol=0.5 + slack * total)
        info["strategy"] = ("stratified " if labs is not None and stratify else "") + \
            ("minimal-move" if minimal_moves else "fresh") + " group-aware split"
    new_split = np.asarray([new_names[k] for k in new_of_comp[component]], dtype=object)

    # --- build the new splits (pooled order: input split order, then index)
    assignment = pd.DataFrame({"split": old_split, "index": old_index, "new_split": new_split,
                               "component": component})
    assignment["new_index"] = assignment.groupby("new_split").cumcount().astype(np.int64)
    assignment["moved"] = assignment["split"].to_numpy() != assignment["new_split"].to_numpy()
    assignment = assignment[["split", "index", "new_split", "new_index", "component", "moved"]]

    out_data, out_labels, out_groups, out_times = {}, {}, {}, {}
    for name in new_names:
        sel = assignment[assignment.new_split == name]
        pieces = [(n, sel.loc[sel.split == n, "index"].to_numpy(np.int64)) for n in names]
        out_data[name] = _combine([data[n] for n in names], pieces, data[train])
        if labs is not None:
            out_labels[name] = _gather(labs, pieces)
        if grps is not None:
            out_groups[name] = _gather(grps, pieces)
        if times is not None:
            out_times[name] = _gather(times, pieces)
    result = ResplitResult(out_data, train, assignment.reset_index(drop=True),
                           labels=out_labels if labs is not None else None,
                           groups=out_groups if grps is not None else None,
                           timestamps=out_times if times is not None else None, info=info)
    return result, pairs


VERIFY_SLACK = 0.02  # share of all samples a split may exceed its ratio by in verify rounds
LINK_CHECKS = ("exact_duplicate", "augmented_duplicate", "partial_duplicate", "semantic_duplicate")


def _link_checks(report, data: dict, train: str) -> list[str]:
    """The duplicate checks to search moved samples with: the report's, else those that apply."""
    meta = getattr(report, "meta", None) or {}
    if meta.get("checks") is not None:
        return [c for c in meta["checks"] if c in LINK_CHECKS]
    from .checks import get_check
    from .splits import build_splits

    sp = build_splits(data, train=train)
    return [c for c in LINK_CHECKS if get_check(c).applies(sp)]


def _verified_moved(result, splits, report, pairs, config, kwargs, rounds: int = 8):
    """Search each moved sample against the split it left; keep what links together; repeat.

    Two samples of one input split can only land in different new splits when one of them moved,
    so searching the moved samples against their old split-mates finds every link the report
    could not hold (a link between input splits is in the report already).
    """
    import tempfile
    import warnings
    from dataclasses import replace

    from .auditing import audit
    from .config import AuditConfig

    data = {str(k): _materialise(v, str(k)) for k, v in splits.items()}
    checks = _link_checks(report, data, kwargs["train"])
    meta = getattr(report, "meta", None) or {}
    known = pairs[["split_a", "index_a", "split_b", "index_b"]] if pairs is not None and len(pairs) else None
    result.info.update({"verified": not checks, "verify_rounds": 0, "verify_links": 0, "verify_checks": checks})
    if not checks:
        return result
    config = config or AuditConfig(progress=False)
    if meta.get("modality") == "image":
        # the thresholds the report's audit calibrated: the same links, and no calibration per round
        found_thr = {f.check: float(f.extra["threshold"]) for f in getattr(report, "findings", [])
                     if f.check in checks and isinstance(f.extra, dict) and "threshold" in f.extra}
        if found_thr:
            config = replace(config, thresholds={**found_thr, **dict(config.thresholds)})
    with tempfile.TemporaryDirectory(prefix="leakguard-resplit-") as tmp:
        if config.cache_dir is None:  # signatures of a sample are computed once over the rounds
            config = replace(config, cache_dir=tmp)
        searched: set = set()   # (old split, index, new split) already searched against its old split
        total_links = 0
        for attempt in range(rounds):
            a = result.assignment
            found = []
            for old in data:
                rows = a[a.split == old]
                moved = rows[rows.moved]
                fresh = moved[[(old, int(i), ns) not in searched for i, ns in zip(moved["index"], moved.new_split)]]
                if not len(fresh):
                    continue
                # the fresh movers, by destination, against every other sample of their old split
                is_fresh = rows.index.isin(fresh.index)
                rest = rows.loc[~is_fresh, "index"].to_numpy(np.int64)
                parts = {"rest": rest} if len(rest) else {}
                for dest, grp in fresh.groupby("new_split", sort=False):
                    parts[f"moved to {dest}"] = grp["index"].to_numpy(np.int64)
                if len(parts) < 2:
                    continue
                sub = {k: _combine([data[old]], [(old, idx)], data[old]) for k, idx in parts.items()}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the verifying audit's own findings are not the user's
                    rep = audit(sub, train=next(iter(parts)), checks=checks, config=config,
                                modality=meta.get("modality"))
                got = rep.pairs()
                if len(got):
                    ia = np.asarray([parts[s][i] for s, i in zip(got["split_a"], got["index_a"])], dtype=np.int64)
                    ib = np.asarray([parts[s][i] for s, i in zip(got["split_b"], got["index_b"])], dtype=np.int64)
                    found.append(pd.DataFrame({"split_a": old, "index_a": ia, "split_b": old, "index_b": ib}))
                searched.update((old, int(i), ns) for i, ns in zip(fresh["index"], fresh.new_split))
            new_links = pd.concat(found, ignore_index=True) if found else None
            # only links between samples the current split separates change anything
            if new_links is not None:
                where = a.set_index(["split", "index"])["new_split"]
                na = where.loc[list(zip(new_links.split_a, new_links.index_a))].to_numpy()
                nb = where.loc[list(zip(new_links.split_b, new_links.index_b))].to_numpy()
                known = new_links if known is None else pd.concat([known, new_links], ignore_index=True)
                total_links += len(new_links)
                crossing = int((na != nb).sum())
            else:
                crossing = 0
            result.info.update({"verify_rounds": attempt + 1, "verify_links": total_links})
            if not crossing:
                # the report held each evaluation sample's best match only: one audit of the result
                # finds a second match left across (and is what the user would run next)
                extra = _cross_links(result, checks, config, meta.get("modality"))
                result.info["verify_final_audit_links"] = int(len(extra))
                if not len(extra):
                    result.info["verified"] = True
                    return result
                known = pd.concat([known, extra], ignore_index=True) if known is not None else extra
                total_links += len(extra)
            # later rounds move as little as they can from the last round (also after a fresh
            # first draw): every move makes new neighbours to search
            home = a["new_split"].to_numpy(dtype=object)
            info = result.info
            # ... and a split may run 2% of the data over its share rather than push a component
            # out (each push makes new neighbours; without slack the rounds chase each other)
            result, _ = _resplit_once(splits, known, home=home, slack=VERIFY_SLACK,
                                      **{**kwargs, "minimal_moves": True})
            result.info.update({k: v for k, v in info.items() if k.startswith("verify")})
            result.info["links"] = int(len(known))
    result.info["verified"] = False
    return result


def _cross_links(result, checks, config, modality) -> pd.DataFrame:
    """Links an audit of the new splits finds across them, in the input's coordinates."""
    import warnings

    from .auditing import audit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = audit(result, train=result.train, checks=checks, config=config, modality=modality).pairs()
    found = found[found["split_a"] != found["split_b"]]
    if not len(found):
        return pd.DataFrame(columns=["split_a", "index_a", "split_b", "index_b"])
    a = result.assignment.set_index(["new_split", "new_index"])
    old_a = a.loc[list(zip(found["split_a"], found["index_a"])), ["split", "index"]].to_numpy()
    old_b = a.loc[list(zip(found["split_b"], found["index_b"])), ["split", "index"]].to_numpy()
    return pd.DataFrame({"split_a": old_a[:, 0], "index_a": old_a[:, 1].astype(np.int64),
                         "split_b": old_b[:, 0], "index_b": old_b[:, 1].astype(np.int64)})


def _verified(result, splits, report, pairs, verify, config, kwargs, rounds: int = 3):
    """Audit the re-split; fold any cross-split links it finds back (in old coordinates) and redo."""
    from .auditing import audit

    checks = list(verify) if isinstance(verify, (list, tuple)) else (getattr(report, "meta", {}) or {}).get("checks")
    modality = (getattr(report, "meta", {}) or {}).get("modality")
    known = pairs if pairs is not None else None
    for attempt in range(rounds):
        rep = audit(result, train=kwargs["train"], checks=checks, config=config, modality=modality,
                    labels=_audit_form(kwargs["labels"], result.labels),
                    groups=_audit_form(kwargs["groups"], result.groups),
                    timestamps=_audit_form(kwargs["timestamps"], result.timestamps))
        found = rep.pairs()
        cross = int((found["split_a"] != found["split_b"]).sum())
        result.info["verify_rounds"] = attempt + 1
        result.info["verify_cross_links"] = cross
        if not cross:
            result.info["verified"] = True
            return result
        # every link (within a split too), so the next split keeps all of them together
        a = result.assignment.set_index(["new_split", "new_index"])
        old_a = a.loc[list(zip(found["split_a"], found["index_a"])), ["split", "index"]].to_numpy()
        old_b = a.loc[list(zip(found["split_b"], found["index_b"])), ["split", "index"]].to_numpy()
        extra = pd.DataFrame({"split_a": old_a[:, 0], "index_a": old_a[:, 1].astype(np.int64),
                              "split_b": old_b[:, 0], "index_b": old_b[:, 1].astype(np.int64)})
        base = known[["split_a", "index_a", "split_b", "index_b"]] if known is not None and len(known) else None
        known = extra if base is None else pd.concat([base, extra], ignore_index=True)
        home = result.assignment["new_split"].to_numpy(dtype=object)  # move as little as the last round did
        info = {k: v for k, v in result.info.items() if k.startswith("verify")}
        result, _ = _resplit_once(splits, known, home=home, **{**kwargs, "minimal_moves": True})
        result.info.update(info)
    result.info["verified"] = False
    return result


def _audit_form(given, rearranged):
    """labels/groups/timestamps for auditing the new splits: the column name, or the new mapping."""
    if given is None:
        return None
    return given if isinstance(given, str) else rearranged


# ---------------------------------------------------------------------------- inputs
def _materialise(value, name: str):
    """Folders become their file lists (the order an audit reads them in); str paths become Paths."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, Path):
        value = Path(value)
    if isinstance(value, Path):
        if value.is_dir():
            from .sources import files_in_folder

            return files_in_folder(value)[0]
        raise InputError(f"split {name!r}: resplit() takes a folder or in-memory data, not the file {value}")
    return value


def _length(value, name: str) -> int:
    try:
        return len(value)
    except TypeError as err:
        raise InputError(f"split {name!r}: resplit() needs data with a length, got {type(value).__name__}") from err


def _ratios(ratios, names, sizes, train) -> dict[str, float]:
    if ratios is None:
        out = {n: float(sizes[n]) for n in names}
    elif isinstance(ratios, Mapping):
        out = {str(k): float(v) for k, v in ratios.items()}
    elif isinstance(ratios, Sequence) and not isinstance(ratios, str):
        if len(ratios) != len(names):
            raise InputError(f"ratios has {len(ratios)} values for {len(names)} splits {names}; "
                             "pass a mapping of split name to share for other split names")
        out = {n: float(r) for n, r in zip(names, ratios)}
    else:
        raise InputError(f"ratios must be a mapping of split name to share or a sequence, got {type(ratios).__name__}")
    if train not in out:
        raise InputError(f"ratios {list(out)} must include the training split {train!r}")
    if any(v < 0 or not np.isfinite(v) for v in out.values()) or sum(out.values()) <= 0:
        raise InputError(f"ratios must be non-negative with a positive sum, got {out}")
    s = sum(out.values())
    # training split first: time order and tie-breaking read the order
    ordered = {train: out[train] / s}
    ordered.update({k: v / s for k, v in out.items() if k != train})
    return ordered


def _per_split_values(value, data, kind, sizes):
    """labels/groups/timestamps as a dict split -> array (the column stays in a DataFrame)."""
    if value is None:
        return None
    out = {}
    for name, d in data.items():
        arr, _ = _per_split(value, name, d, kind, sizes[name])
        if arr is None:
            raise InputError(f"{kind} has no values for split {name!r}; give them for every split")
        out[name] = arr
    return out


def _pairs_of(report):
    if report is None:
        return None
    if isinstance(report, pd.DataFrame):
        missing = {"split_a", "index_a", "split_b", "index_b"} - set(report.columns)
        if missing:
            raise InputError(f"the pairs DataFrame lacks columns {sorted(missing)}")
        return report
    if hasattr(report, "pairs"):
        return report.pairs()
    raise InputError(f"report must be a leakguard Report or a pairs DataFrame, got {type(report).__name__}")


def _check_report_sizes(report, sizes):
    info = getattr(report, "splits", None)
    if not isinstance(info, Mapping):
        return
    for name, d in info.items():
        n = d.get("n") if isinstance(d, Mapping) else None
        if name in sizes and n is not None and n != sizes[name]:
            raise InputError(f"the report's split {name!r} has {n} samples but the data given has "
                             f"{sizes[name]}: pass the splits that were audited")


def _group_keys(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out[i] = None
        else:
            out[i] = v.item() if isinstance(v, np.generic) else v
    return out


def _label_keys(values) -> np.ndarray:
    return np.asarray([str(sorted(map(str, v))) if isinstance(v, (list, tuple, set, np.ndarray)) else str(v)
                       for v in values], dtype=object)


def _label_matrix(values: np.ndarray) -> np.ndarray | None:
    """Samples x label-codes counts; multi-label samples count once per label; many-valued numbers binned."""
    n = len(values)
    if n == 0:
        return None
    multi = any(isinstance(v, (list, tuple, set, np.ndarray)) for v in values[:1000])
    if multi:
        flat, owner = [], []
        for i, v in enumerate(values):
            items = list(v) if isinstance(v, (list, tuple, set, np.ndarray)) else [v]
            for it in set(map(str, items)):
                flat.append(it)
                owner.append(i)
        if not flat:
            return None
        codes, uniques = pd.factorize(pd.Series(flat, dtype=object))
        mat = np.zeros((n, len(uniques) + 1))
        np.add.at(mat, (np.asarray(owner), codes), 1.0)
        mat[mat.sum(axis=1) == 0, -1] = 1.0  # samples without any label form their own stratum
        return mat
    series = pd.Series(values)
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all() and numeric.nunique() > 20 and (numeric % 1 != 0).any():
        # a regression target: stratify by deciles
        series = pd.qcut(numeric, 10, labels=False, duplicates="drop").astype(object)
    codes, uniques = pd.factorize(series.astype(str))
    mat = np.zeros((n, len(uniques)))
    mat[np.arange(n), codes] = 1.0
    return mat


def _times_of(values, name) -> np.ndarray:
    from .splits import _as_times

    return _as_times(np.asarray(values), name)


# ---------------------------------------------------------------------------- components
def _components(total: int, rows: list, cols: list) -> np.ndarray:
    if not rows or sum(len(r) for r in rows) == 0:
        return np.arange(total, dtype=np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(total, total))
    _, comp = connected_components(graph, directed=False)
    return comp.astype(np.int64)


# ---------------------------------------------------------------------------- assignment
def _targets(new_ratios: dict, counts: np.ndarray) -> np.ndarray:
    """splits x labels target counts (float)."""
    r = np.asarray(list(new_ratios.values()))
    return r[:, None] * counts[None, :]


def _assign_greedy(component, label_matrix, new_names, new_ratios, home, rng, tol: float = 0.5) -> np.ndarray:
    """Place whole components, biggest first; prefer the component's current split while it has
    room (minimal moves), else the split whose labels most lack what the component holds."""
    n_comp = int(component.max()) + 1
    comp_labels = np.zeros((n_comp, label_matrix.shape[1]))
    np.add.at(comp_labels, component, label_matrix)
    comp_size = np.bincount(component, minlength=n_comp).astype(np.float64)
    target = _targets(new_ratios, label_matrix.sum(axis=0))           # S x L
    target_size = np.asarray(list(new_ratios.values())) * len(component)  # S
    current = np.zeros_like(target)
    current_size = np.zeros(len(new_names))
    comp_home = np.full(n_comp, -1, dtype=np.int64)
    whole = np.zeros(n_comp, dtype=bool)
    reserved = np.zeros(len(new_names))
    if home is not None:
        pos = {n: k for k, n in enumerate(new_names)}
        codes = np.asarray([pos.get(h, -1) for h in home], dtype=np.int64)
        # a component's home: the new split that holds most of its samples now
        known = codes >= 0
        votes = np.zeros((n_comp, len(new_names)))
        np.add.at(votes, (component[known], codes[known]), 1.0)
        comp_home = np.where(votes.sum(axis=1) > 0, votes.argmax(axis=1), -1)
        # components wholly in one split keep their room there: a component spread over splits
        # (a duplicate pair across the split) moves some samples wherever it goes, and taking the
        # room of a whole one would move all of that one's too (with duplicate pairs across an
        # 80/20 split: every pair sent to train, and as many training samples sent out as filler)
        whole = (votes.max(axis=1) == comp_size) & (comp_home >= 0)
        np.add.at(reserved, comp_home[whole], comp_size[whole])
    order = np.lexsort((rng.random(n_comp), -comp_size))
    out = np.zeros(n_comp, dtype=np.int64)
    for c in order:
        lab = comp_labels[c]
        size = comp_size[c]
        h = comp_home[c]
        if whole[c]:
            reserved[h] -= size
        elif h >= 0:
            # of the splits holding its samples, one with room left beyond the whole components'
            # (most of its samples first, then most room)
            held = np.flatnonzero(votes[c] > 0)
            free = target_size[held] - current_size[held] - reserved[held]
            fits = free + tol >= size
            if fits.any():
                h = int(held[np.lexsort((-free, -votes[c, held], ~fits))[0]])
        if h >= 0 and current_size[h] + size <= target_size[h] + tol and \
                np.all(current[h] + lab <= target[h] + tol + (lab == 0) * 1e9):
            k = h
        else:
            over = np.maximum(current + lab[None, :] - target, 0).sum(axis=1) + \
                np.maximum(current_size + size - target_size, 0)
            need = ((target - current) * lab[None, :] / np.maximum(target, 1e-9)).sum(axis=1) / max(lab.sum(), 1e-9)
            room = (target_size - current_size) / np.maximum(target_size, 1e-9)
            # fewest samples over target first; then the split lacking most of these labels
            k = int(np.lexsort((-room, -need, np.round(over, 6)))[0])
            if target_size[k] <= 0:
                positive = np.flatnonzero(target_size > 0)
                k = int(positive[np.argmin(over[positive])])
        out[c] = k
        current[k] += lab
        current_size[k] += size
    return out


def _assign_in_time(component, t, new_names, new_ratios, total):
    """Rolling origin: components in order of their latest timestamp fill train, then the others."""
    n_comp = int(component.max()) + 1
    t_sort = np.where(np.isnan(t), np.inf, t)
    comp_end = np.full(n_comp, -np.inf)
    np.maximum.at(comp_end, component, t_sort)
    comp_start = np.full(n_comp, np.inf)
    np.minimum.at(comp_start, component, t_sort)
    comp_size = np.bincount(component, minlength=n_comp)
    order = np.lexsort((comp_start, comp_end))
    bounds = np.cumsum(np.asarray(list(new_ratios.values())) * total)
    out = np.zeros(n_comp, dtype=np.int64)
    filled = 0
    k = 0
    for c in order:
        # move to the next split once this one is full (half a component's size of slack)
        while k < len(new_names) - 1 and filled + comp_size[c] / 2 > bounds[k]:
            k += 1
        out[c] = k
        filled += comp_size[c]
    ranges, overlap = {}, 0
    for k, name in enumerate(new_names):
        members = np.isin(component, np.flatnonzero(out == k))
        tk = t[members]
        tk = tk[~np.isnan(tk)]
        ranges[name] = [float(tk.min()), float(tk.max())] if len(tk) else None
    for k in range(1, len(new_names)):
        prev_end = max((ranges[new_names[j]][1] for j in range(k) if ranges[new_names[j]]), default=-np.inf)
        comps = np.flatnonzero(out == k)
        overlap += int((comp_start[comps] < prev_end).sum())
    return out, {"time_ranges": ranges, "time_overlap_components": overlap,
                 "missing_times": int(np.isnan(t).sum())}


# ---------------------------------------------------------------------------- output
def _gather(values: dict, pieces) -> np.ndarray:
    parts = [values[n][idx] for n, idx in pieces]
    if all(p.dtype != object for p in parts):
        return np.concatenate(parts)
    return np.concatenate([p.astype(object) for p in parts])


def _combine(datas, pieces, like):
    """The samples ``pieces`` [(split, indices)] as data of the input's type."""
    parts = dict(zip([n for n, _ in pieces], datas))
    if all(isinstance(d, np.ndarray) for d in datas):
        chunks = [parts[n][idx] for n, idx in pieces]
        return np.concatenate(chunks) if chunks else like[:0]
    if all(isinstance(d, pd.DataFrame) for d in datas):
        return pd.concat([parts[n].iloc[idx] for n, idx in pieces], ignore_index=True)
    if all(isinstance(d, pd.Series) for d in datas):
        return pd.concat([parts[n].iloc[idx] for n, idx in pieces], ignore_index=True)
    from .sources.torch import is_torch_data

    if any(is_torch_data(d) for d in datas):
        from torch.utils.data import ConcatDataset, Subset

        subsets = [Subset(parts[n], idx.tolist()) for n, idx in pieces if len(idx)]
        return ConcatDataset(subsets) if subsets else Subset(like, [])
    return [parts[n][int(i)] for n, idx in pieces for i in idx]
