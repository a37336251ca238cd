"""group_overlap: one group (patient, speaker, video, source image, user) in several splits.

Three views of the same question, "can the model recognise the group instead of learning the
task?":

- group ids given: every group with samples in two splits, with its samples;
- group ids missing or partial: groups recovered from content, as the connected components of
  the links the earlier checks found (duplicates, crops, near neighbours) joined with the given
  ids; an evaluation sample tied to the training split only through such a chain is reported;
- inconsistent metadata: samples linked by content but carrying different group ids (the same
  person under two ids), flagged for review.

Options (``AuditConfig(check_options={"group_overlap": {...}})``): ``infer`` (default True),
``inconsistent`` (default True), ``scenes`` (default True: images of one static scene, e.g. frames
of one video, join a group when ids are missing; ``scene_max``, default 50 000 images, above which
they are skipped; ``scene_shift``, default 8 thumbnail pixels of 64, the camera pan allowed
between two frames, found by phase correlation; 0 compares frames unshifted only), ``passages`` (default True: evaluation texts sharing a passage with each other, e.g.
overlapping chunks of one document, join a group when ids are missing and partial_duplicate linked
something), ``group_name`` (what a group is, for the text: "patient").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..report import Finding, make_pairs
from .base import AuditContext, Check, register_check

NAME = "group_overlap"
MAX_LISTED = 50  # groups listed in a finding's evidence


def group_keys(values) -> np.ndarray:
    """Group ids as hashable Python objects; None for a missing id (None, NaN, empty string).

    Integral floats become ints, so ids read as 3 in one split and 3.0 in another (pandas turns
    integer columns with gaps into floats) are the same group.
    """
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if isinstance(v, np.generic):
            v = v.item()
        if v is None or (isinstance(v, float) and not np.isfinite(v)) or (isinstance(v, str) and not v.strip()):
            out[i] = None
        elif isinstance(v, float) and v.is_integer():
            out[i] = int(v)
        elif isinstance(v, (list, np.ndarray)):
            out[i] = tuple(np.asarray(v).ravel().tolist())
        else:
            out[i] = v
    return out


class PooledIndex:
    """Global positions for every sample of every split (splits in order), and back."""

    def __init__(self, splits):
        self.names = list(splits)
        self.sizes = {n: len(splits[n]) for n in self.names}
        offsets = np.cumsum([0] + [self.sizes[n] for n in self.names])
        self.start = dict(zip(self.names, offsets[:-1].tolist()))
        self.total = int(offsets[-1])
        self.split_code = np.repeat(np.arange(len(self.names)), [self.sizes[n] for n in self.names])
        self.local = np.concatenate([np.arange(self.sizes[n]) for n in self.names]) if self.total else \
            np.zeros(0, dtype=np.int64)

    def glob(self, split_col, index_col) -> np.ndarray:
        starts = pd.Series(split_col).astype(str).map(self.start)
        return starts.to_numpy(np.int64) + np.asarray(index_col, dtype=np.int64)

    def split_of(self, g) -> np.ndarray:
        return np.asarray(self.names, dtype=object)[self.split_code[g]]


def pooled_group_codes(splits, pool: PooledIndex) -> tuple[np.ndarray, np.ndarray]:
    """(codes per pooled sample, -1 where missing; the group id of each code)."""
    keys = np.empty(pool.total, dtype=object)
    for n in pool.names:
        g = splits[n].groups
        sl = slice(pool.start[n], pool.start[n] + pool.sizes[n])
        keys[sl] = group_keys(g) if g is not None else None
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object), use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def content_links(ctx: AuditContext) -> pd.DataFrame:
    """Every link earlier checks found, with this check's own inferred pairs left out."""
    links = ctx.all_links()
    return links[links["check"] != NAME] if len(links) else links


def components(total: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of the graph with edges (a[i], b[i]) on ``total`` nodes."""
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    if len(a) == 0:
        return np.arange(total, dtype=np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(total, total))
    return connected_components(graph, directed=False)[1].astype(np.int64)


# one static scene (frames of a fixed camera, a video whose background stays): on the 64 x 64 grey
# thumbnails (contrast-stretched), most pixels agree within a few grey levels, and most of them off
# the image's dominant level, so flat backgrounds (digits on black, products on white) never link
SCENE_NEIGHBOURS = 8     # candidates per image (nearest 16 x 16 thumbnails)
SCENE_TOLERANCE = 12     # grey levels of 255 for two pixels to agree (sensor noise, JPEG)
SCENE_SHARE = 0.6        # share of the pixels that agree (a moving object changes the rest)
SCENE_MAX = 50_000         # images: the exact 16 x 16 kNN is quadratic; above this no scene links
SCENE_TEXTURED_SHARE = 0.4  # share of the image that agrees off each image's dominant (background) level
SCENE_SHIFT = 8          # thumbnail pixels (of 64) a camera may pan between two frames of one scene


def scene_links(ctx: AuditContext) -> pd.DataFrame:
    """Pairs of images of one static scene, within and across splits (group inference only).

    The similarity checks link copies, crops and look-alikes; frames of one video in which an
    object moves over a fixed background are none of these, and their file names may say nothing.
    Their backgrounds agree pixel for pixel: that is the link.
    """
    from ..report import empty_pairs
    from ..search import nearest

    splits = ctx.splits
    names, idx, thumbs = [], [], []
    for n in splits:
        valid = np.flatnonzero(ctx.valid(n))
        values = ctx.signatures.get(n, "thumb")
        for i in valid:
            t = values[i]
            if t is not None:
                names.append(n)
                idx.append(int(i))
                thumbs.append(np.asarray(t, dtype=np.uint8))
    limit = int(ctx.config.options(NAME).get("scene_max", SCENE_MAX))
    if len(thumbs) < 2 or len(thumbs) > limit or len({t.shape for t in thumbs}) != 1:
        return empty_pairs()
    t = np.stack(thumbs).astype(np.float32)
    side = t.shape[1]
    small = t.reshape(len(t), 16, side // 16, 16, side // 16).mean(axis=(2, 4)).reshape(len(t), -1)
    k = min(SCENE_NEIGHBOURS, len(t) - 1)
    _, nn = nearest(small, small, k=k, metric="l2", exclude_self=True)
    ia = np.repeat(np.arange(len(t)), k)
    ib = nn.ravel()
    cand = np.unique(np.stack([np.minimum(ia, ib), np.maximum(ia, ib)], axis=1)[(ib >= 0)], axis=0)
    # each image's dominant level (a flat background): agreement there says nothing
    levels = np.stack(thumbs).reshape(len(t), -1)  # uint8: integer arithmetic below, 2-4x cheaper than float
    bins = levels // (2 * SCENE_TOLERANCE)
    n_bins = 255 // (2 * SCENE_TOLERANCE) + 1
    counts = np.bincount((np.arange(len(t))[:, None] * n_bins + bins).ravel(),
                         minlength=len(t) * n_bins).reshape(len(t), n_bins)
    modal = counts.argmax(axis=1)
    off_mode = bins != modal[:, None].astype(bins.dtype)
    levels = levels.astype(np.int16)
    hits, scores = [], []
    missed = []
    for lo in range(0, len(cand), 1024):  # batches of pairs: (1024, 64 * 64) at a time
        a, b = cand[lo:lo + 1024, 0], cand[lo:lo + 1024, 1]
        agree = np.abs(levels[a] - levels[b]) <= SCENE_TOLERANCE
        share = np.count_nonzero(agree, axis=1) / agree.shape[1]
        agree &= off_mode[a]
        agree &= off_mode[b]
        textured = np.count_nonzero(agree, axis=1) / agree.shape[1]
        ok = (share >= SCENE_SHARE) & (textured >= SCENE_TEXTURED_SHARE)
        hits.append(cand[lo:lo + 1024][ok])
        scores.append(share[ok])
        missed.append(cand[lo:lo + 1024][~ok])
    shift = int(ctx.config.options(NAME).get("scene_shift", SCENE_SHIFT))
    if shift > 0 and missed:
        # a panning camera moves the whole background by a few pixels: compare the overlap at the
        # shift phase correlation finds (one shift per pair, not a search over all of them)
        extra, extra_scores = _shifted_scene_links(np.concatenate(missed), levels.reshape(t.shape),
                                                   off_mode.reshape(t.shape), shift)
        hits.append(extra)
        scores.append(extra_scores)
    h = np.concatenate(hits) if hits else np.zeros((0, 2), np.int64)
    scores = np.concatenate(scores) if scores else np.zeros(0)
    if not len(h):
        return empty_pairs()
    return pd.DataFrame({"split_a": np.asarray(names, dtype=object)[h[:, 0]],
                         "index_a": np.asarray(idx, dtype=np.int64)[h[:, 0]],
                         "split_b": np.asarray(names, dtype=object)[h[:, 1]],
                         "index_b": np.asarray(idx, dtype=np.int64)[h[:, 1]],
                         "check": NAME, "score": np.asarray(scores, dtype=np.float64)})



def _shifted_scene_links(cand: np.ndarray, levels: np.ndarray, off_mode: np.ndarray, max_shift: int):
    """The candidate pairs (rows of ``cand``) that agree as one scene once shifted by at most
    ``max_shift`` pixels, with their agreeing share. The shift of each pair is the peak of the
    phase correlation of its two thumbnails inside that window."""
    n, side = len(cand), levels.shape[1]
    if not n:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    used = np.unique(cand)
    spectra = np.zeros((levels.shape[0], side, side), dtype=np.complex64)
    grey = levels[used].astype(np.float32)
    # a Hann window: frame borders do not wrap around, and their jump would pin the peak at no shift
    hann = np.outer(np.hanning(side), np.hanning(side)).astype(np.float32)
    spectra[used] = np.fft.fft2((grey - grey.mean(axis=(1, 2), keepdims=True)) * hann).astype(np.complex64)
    window = np.r_[0:max_shift + 1, side - max_shift:side]
    dy = np.zeros(n, np.int64)
    dx = np.zeros(n, np.int64)
    for lo in range(0, n, 512):
        a, b = cand[lo:lo + 512, 0], cand[lo:lo + 512, 1]
        cross = spectra[a] * np.conj(spectra[b])
        corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real[:, window][:, :, window]
        peak = corr.reshape(len(a), -1).argmax(axis=1)
        py, px = window[peak // len(window)], window[peak % len(window)]
        dy[lo:lo + 512] = np.where(py > side // 2, py - side, py)
        dx[lo:lo + 512] = np.where(px > side // 2, px - side, px)
    # the peak is an integer shift; a pan of a fraction of a thumbnail pixel agrees best at a neighbour
    best_share, best_textured = np.zeros(n), np.zeros(n)
    for ny in (-1, 0, 1):
        for nx in (-1, 0, 1):
            sy_all = np.clip(dy + ny, -max_shift, max_shift)
            sx_all = np.clip(dx + nx, -max_shift, max_shift)
            for sy, sx in {(int(y), int(x)) for y, x in zip(sy_all, sx_all)} - {(0, 0)}:
                rows = np.flatnonzero((sy_all == sy) & (sx_all == sx))
                a, b = cand[rows, 0], cand[rows, 1]
                # a(y, x) ~ b(y - sy, x - sx): compare the overlap of the two frames
                ya, yb = slice(max(0, sy), side + min(0, sy)), slice(max(0, -sy), side + min(0, -sy))
                xa, xb = slice(max(0, sx), side + min(0, sx)), slice(max(0, -sx), side + min(0, -sx))
                agree = np.abs(levels[a][:, ya, xa] - levels[b][:, yb, xb]) <= SCENE_TOLERANCE
                area = agree[0].size
                share = np.count_nonzero(agree, axis=(1, 2)) / area
                agree &= off_mode[a][:, ya, xa]
                agree &= off_mode[b][:, yb, xb]
                textured = np.count_nonzero(agree, axis=(1, 2)) / area
                better = share > best_share[rows]
                best_share[rows[better]] = share[better]
                best_textured[rows[better]] = textured[better]
    ok = (best_share >= SCENE_SHARE) & (best_textured >= SCENE_TEXTURED_SHARE)
    return cand[ok], best_share[ok]

def passage_links(ctx: AuditContext) -> pd.DataFrame:
    """Pairs of evaluation texts sharing a passage, within and across evaluation splits (group
    inference only).

    Text partial_duplicate compares evaluation texts with training texts; overlapping chunks of one
    document that all sit in evaluation splits are tied to each other by nothing, so a chunk whose
    neighbours are both in test never joins its document. The same search among the evaluation
    texts closes the chain: word 6-gram runs past the training split's boilerplate, at least the
    length the check's own rule calibrates on the texts searched (their longest runs through phrases
    in 3+ texts, at ``fpr``, never below ``min_words``, or the user's fixed threshold). Run only when
    partial_duplicate linked something (there is a chain to extend) and ids are missing, and searched
    outward from the linked evaluation texts only.
    """
    from ..report import empty_pairs

    links = content_links(ctx)
    if not len(links) or not (links["check"] == "partial_duplicate").any():
        return empty_pairs()
    from ..similarity import text as T
    from ..similarity.findings import tail_threshold

    opts = ctx.config.options("partial_duplicate")
    _, t_docs = T._valid_stack(ctx, ctx.train, "passages")
    h, _ = T._inverted_index(t_docs)
    min_docs = max(3, int(np.ceil(float(opts.get("boilerplate_df", 0.01)) * len(t_docs))))
    boiler = T._boilerplate(h, min_docs)
    max_postings = max(min_docs, 50)
    fixed = ctx.config.thresholds.get("partial_duplicate")
    floor = float(opts.get("min_words", 12))
    # the evaluation splits pooled: chunks of one document may sit in val and test
    owner_split, owner_idx, e_docs = [], [], []
    for name in ctx.splits.eval_names:
        ids, docs = T._valid_stack(ctx, name, "passages")
        owner_split += [name] * len(ids)
        owner_idx += ids.tolist()
        e_docs += docs
    if len(e_docs) < 2:
        return empty_pairs()
    pos_of = {(n, i): k for k, (n, i) in enumerate(zip(owner_split, owner_idx))}
    # searched outward from the evaluation texts some check linked: a chain must start at a link, so
    # texts no chain reaches are never queried (cheap when few texts are linked)
    frontier = sorted({pos_of[key] for side in ("a", "b")
                       for key in zip(links[f"split_{side}"], links[f"index_{side}"]) if key in pos_of})
    eh, eo = T._inverted_index(e_docs)
    uniq, df = np.unique(eh, return_counts=True)
    boiler_null = np.union1d(boiler, uniq[df == 2])  # the null counts phrases in 3+ texts (as the check)
    reached, run_of, null = set(frontier), {}, {}
    linked = set(frontier)
    reach_at = float(fixed) if fixed is not None else floor  # the calibrated length is at least this
    while frontier:
        q, d = T._passage_candidates(eh, eo, [e_docs[k] for k in frontier], boiler, max_postings)
        new = set()
        for qi, b in zip(q, d):
            a = frontier[qi]
            if a == b or (min(a, b), max(a, b)) in run_of or (a in linked and b in linked):
                continue  # two texts some check linked already: a link between them ties nothing new
            run, _ = T.shared_passage(e_docs[a], e_docs[b], boiler)
            run_of[(min(a, b), max(a, b))] = run
            if not np.array_equal(e_docs[a], e_docs[b]):
                chance, _ = T.shared_passage(e_docs[a], e_docs[b], boiler_null)
                null[a], null[b] = max(null.get(a, 0), chance), max(null.get(b, 0), chance)
            if run >= reach_at and b not in reached:
                new.add(int(b))
        reached |= new
        frontier = sorted(new)
    if not run_of:
        return empty_pairs()
    if fixed is not None:
        min_run = float(fixed)
    else:
        # over the texts compared with another (a text with no candidate would only add a 0)
        sample = np.asarray([null.get(k, 0) for k in sorted({x for pair in run_of for x in pair})], dtype=np.float64)
        min_run = max(floor, float(tail_threshold(sample, ctx.config.fpr, higher_is_closer=True)))
    kept = [(a, b, r) for (a, b), r in run_of.items() if r >= min_run]
    if not kept:
        return empty_pairs()
    qa, db, runs = (list(x) for x in zip(*kept))
    split_of, index_of = np.asarray(owner_split, dtype=object), np.asarray(owner_idx, dtype=np.int64)
    return pd.DataFrame({"split_a": split_of[qa], "index_a": index_of[qa], "split_b": split_of[db],
                         "index_b": index_of[db], "check": NAME, "score": np.asarray(runs, dtype=np.float64)})


def effective_groups(ctx: AuditContext) -> dict:
    """Given ids joined with content links: the groups a leak-free split must keep whole.

    Cached in ``ctx.shared["groups"]`` for the other checks (temporal_overlap).
    """
    if "groups" in ctx.shared:
        return ctx.shared["groups"]
    splits = ctx.splits
    pool = PooledIndex(splits)
    codes, ids = pooled_group_codes(splits, pool)
    links = content_links(ctx)
    la = pool.glob(links["split_a"], links["index_a"]) if len(links) else np.zeros(0, np.int64)
    lb = pool.glob(links["split_b"], links["index_b"]) if len(links) else np.zeros(0, np.int64)
    ok = (la >= 0) & (lb >= 0) & (la < pool.total) & (lb < pool.total)
    la, lb = la[ok], lb[ok]
    links = links[ok] if len(links) else links
    has = np.flatnonzero(codes >= 0)
    if len(has):
        first = pd.Series(has).groupby(codes[has]).transform("first").to_numpy()
        ga, gb = np.concatenate([la, has]), np.concatenate([lb, first])
    else:
        ga, gb = la, lb
    # scenes only where ids are missing: a camera filming several given groups is not one group
    scene = scene_links(ctx) if _wants_scenes(ctx) and len(has) < pool.total else None
    sa = sb = np.zeros(0, np.int64)
    if scene is not None and len(scene):
        sa, sb = pool.glob(scene["split_a"], scene["index_a"]), pool.glob(scene["split_b"], scene["index_b"])
        ga, gb = np.concatenate([ga, sa]), np.concatenate([gb, sb])
    # passages shared among evaluation texts (chunks of one document), also only where ids are missing
    passages = passage_links(ctx) if _wants_passages(ctx) and len(has) < pool.total else None
    pa = pb = np.zeros(0, np.int64)
    if passages is not None and len(passages):
        pa = pool.glob(passages["split_a"], passages["index_a"])
        pb = pool.glob(passages["split_b"], passages["index_b"])
        ga, gb = np.concatenate([ga, pa]), np.concatenate([gb, pb])
    out = {"pool": pool, "codes": codes, "ids": ids, "links": links, "link_a": la, "link_b": lb,
           "scene_a": sa, "scene_b": sb, "passage_a": pa, "passage_b": pb,
           "component": components(pool.total, ga, gb)}
    ctx.shared["groups"] = out
    return out


def _wants_scenes(ctx: AuditContext) -> bool:
    opts = ctx.config.options(NAME)
    return ctx.splits.modality == "image" and opts.get("infer", True) and opts.get("scenes", True)


def _wants_passages(ctx: AuditContext) -> bool:
    opts = ctx.config.options(NAME)
    return ctx.splits.modality == "text" and opts.get("infer", True) and opts.get("passages", True)


def _split_pairs(splits) -> list[tuple[str, str]]:
    order = [splits.train] + splits.eval_names
    return [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]


@register_check
class GroupOverlap(Check):
    """Groups (given, or recovered from content) whose samples sit in more than one split.

    >>> report = lg.audit({"train": df_tr, "val": df_va}, groups="patient")   # doctest: +SKIP
    >>> report.leaked("val", check="group_overlap")                          # doctest: +SKIP
    """

    name = NAME
    order = 60
    description = "one group (patient, speaker, video, source image, user) in several splits"

    def needs(self, splits) -> set[str]:
        # images of one static scene are linked on their thumbnails (frames of one video)
        if splits.modality != "image":
            return set()
        from ..signatures import image  # noqa: F401  (registers the image signatures)

        return {"thumb"}

    def run(self, ctx: AuditContext) -> list[Finding]:
        opts = ctx.config.options(self.name)
        noun = opts.get("group_name", "group")
        eg = effective_groups(ctx)
        findings = []
        reported = np.zeros(eg["pool"].total, dtype=bool)
        if ctx.splits.has_groups:
            findings += self._given(ctx, eg, noun, reported)
        if opts.get("infer", True):
            findings += self._inferred(ctx, eg, noun, reported)
        if ctx.splits.has_groups and opts.get("inconsistent", True):
            findings += self._inconsistent(ctx, eg, noun)
        return findings

    # ------------------------------------------------------------------ given ids
    def _given(self, ctx, eg, noun, reported) -> list[Finding]:
        pool, codes, ids = eg["pool"], eg["codes"], eg["ids"]
        out = []
        for a, b in _split_pairs(ctx.splits):
            ca = codes[pool.start[a]: pool.start[a] + pool.sizes[a]]
            cb = codes[pool.start[b]: pool.start[b] + pool.sizes[b]]
            shared = np.intersect1d(ca[ca >= 0], cb[cb >= 0])
            if not len(shared):
                continue
            in_b = np.flatnonzero(np.isin(cb, shared))
            # each affected b sample is paired with the first a sample of its group
            a_idx = np.flatnonzero(np.isin(ca, shared))
            first_a = pd.Series(a_idx).groupby(ca[a_idx]).first()
            pairs = make_pairs(a, first_a.loc[cb[in_b]].to_numpy(), b, in_b, self.name, 1.0)
            reported[pool.start[b] + in_b] = True
            na = pd.Series(ca[a_idx]).value_counts()
            nb = pd.Series(cb[in_b]).value_counts()
            listed = sorted(shared, key=lambda c: -(na.get(c, 0) + nb.get(c, 0)))[:MAX_LISTED]
            table = [{"group": _id_str(ids[c]), f"n_{a}": int(na.get(c, 0)), f"n_{b}": int(nb.get(c, 0)),
                      f"{b}_indices": np.flatnonzero(cb == c)[:20].tolist()} for c in listed]
            involves_train = a == ctx.train
            n_b = pool.sizes[b]
            nouns = noun + ("s" if len(shared) != 1 else "")
            out.append(Finding(
                check=self.name,
                severity=ctx.severity(self.name, "critical" if involves_train else "warning"),
                title=f"{len(shared)} {nouns} have samples in both {a!r} and {b!r}",
                detail=(f"{len(in_b)} of {n_b} {b!r} samples ({len(in_b) / max(n_b, 1):.1%}) belong to "
                        f"{len(shared)} {nouns} that also have {int(na.loc[shared].sum())} samples in {a!r}, "
                        f"e.g. {', '.join(repr(t['group']) for t in table[:5])}. "
                        + (f"A model can score well on them by recognising the {noun} rather than "
                           "learning the task, which it cannot do for new ones."
                           if involves_train else "The two evaluation splits are not independent.")),
                remedy=(f"Split by {noun}, not by sample: lg.resplit(splits, report, groups=...) keeps every "
                        f"{noun} in one split (or scikit-learn's GroupShuffleSplit / GroupKFold)."),
                splits=(a, b), count=len(in_b), pairs=pairs,
                extra={"kind": "given", "groups": int(len(shared)), "listed": table}))
        return out

    # ------------------------------------------------------------------ inferred from content
    def _inferred(self, ctx, eg, noun, reported) -> list[Finding]:
        pool, comp = eg["pool"], eg["component"]
        if pool.total == 0 or len(np.unique(comp)) == pool.total:
            return []
        la, lb = eg["link_a"], eg["link_b"]
        out = []
        code = pool.split_code
        for a, b in _split_pairs(ctx.splits):
            ka, kb = pool.names.index(a), pool.names.index(b)
            comps_a = np.unique(comp[code == ka])
            b_glob = np.flatnonzero(code == kb)
            tied = b_glob[np.isin(comp[b_glob], comps_a)]
            if not len(tied):
                continue
            # samples already linked directly to split a, or in a given group that crosses, are
            # reported by their own findings; the news here is the chain
            direct = np.zeros(pool.total, dtype=bool)
            cross = ((code[la] == ka) & (code[lb] == kb))
            direct[lb[cross]] = True
            cross = ((code[lb] == ka) & (code[la] == kb))
            direct[la[cross]] = True
            new = tied[~direct[tied] & ~reported[tied]]
            if not len(new):
                continue
            # pair each with a sample of split a in its component (the first)
            a_glob = np.flatnonzero(code == ka)
            rep = pd.Series(a_glob).groupby(comp[a_glob]).first()
            partner = rep.loc[comp[new]].to_numpy()
            pairs = make_pairs(a, pool.local[partner], b, pool.local[new], self.name, 0.5)
            n_groups = len(np.unique(comp[new]))
            sizes = pd.Series(comp).value_counts()
            biggest = int(sizes.loc[np.unique(comp[new])].max())
            involves_train = a == ctx.train
            n_b = pool.sizes[b]
            via_ids = bool(ctx.splits.has_groups)
            out.append(Finding(
                check=self.name,
                severity=ctx.severity(self.name, "critical" if involves_train else "warning"),
                title=(f"{len(new)} {b!r} samples are tied to {a!r} through inferred {noun}s "
                       f"({n_groups} {noun}{'s' if n_groups != 1 else ''} recovered from content)"),
                detail=(f"Linking every pair of samples the other checks matched (copies, crops, near "
                        f"neighbours{', and shared ids' if via_ids else ''}"
                        f"{', and images of one static scene' if len(eg['scene_a']) else ''}"
                        f"{', and evaluation texts sharing a passage' if len(eg['passage_a']) else ''}"
                        ") joins the data "
                        f"into {noun}s; "
                        f"{n_groups} of them span {a!r} and {b!r}. {len(new)} of {n_b} {b!r} samples "
                        f"({len(new) / max(n_b, 1):.1%}) have no direct match in {a!r} but belong to one of "
                        f"these (the largest has {biggest} samples), like consecutive frames of one video "
                        "or patches of one image."),
                remedy=(f"Treat each recovered {noun} as a group: lg.resplit(splits, report) keeps every "
                        "linked component in one split. If the data has a natural group id (patient, "
                        "video, source file), pass it as groups= to the audit and the split."),
                splits=(a, b), count=len(new), pairs=pairs,
                extra={"kind": "inferred", "groups": int(n_groups), "largest": biggest,
                       "scene_links": int(len(eg["scene_a"])), "passage_links": int(len(eg["passage_a"]))}))
        return out

    # ------------------------------------------------------------------ inconsistent metadata
    def _inconsistent(self, ctx, eg, noun) -> list[Finding]:
        codes, ids, pool = eg["codes"], eg["ids"], eg["pool"]
        la, lb, links = eg["link_a"], eg["link_b"], eg["links"]
        if not len(la):
            return []
        ca, cb = codes[la], codes[lb]
        bad = (ca >= 0) & (cb >= 0) & (ca != cb)
        if not bad.any():
            return []
        sel = links[bad]
        pairs = make_pairs("", [], "", [], self.name)
        pairs = pd.DataFrame({"split_a": sel["split_a"].to_numpy(), "index_a": sel["index_a"].to_numpy(np.int64),
                              "split_b": sel["split_b"].to_numpy(), "index_b": sel["index_b"].to_numpy(np.int64),
                              "check": self.name, "score": sel["score"].to_numpy(np.float64)})[pairs.columns]
        lo, hi = np.minimum(ca[bad], cb[bad]), np.maximum(ca[bad], cb[bad])
        id_pairs = pd.DataFrame({"lo": lo, "hi": hi, "by": sel["check"].to_numpy()}).groupby(["lo", "hi"])
        table = [{"id_a": _id_str(ids[x]), "id_b": _id_str(ids[y]), "pairs": int(len(g)),
                  "found_by": sorted(set(g["by"]))}
                 for (x, y), g in sorted(id_pairs, key=lambda kv: -len(kv[1]))][:MAX_LISTED]
        n_ids = len(np.unique(np.concatenate([lo, hi])))
        involved = tuple(n for n in pool.names if n in set(pairs.split_a) | set(pairs.split_b))
        eval_touched = set()
        for s, i in zip(np.concatenate([pairs.split_a, pairs.split_b]), np.concatenate([pairs.index_a, pairs.index_b])):
            if s != ctx.train:
                eval_touched.add((s, int(i)))
        return [Finding(
            check=self.name, severity=ctx.severity(self.name + ".inconsistent", "warning"),
            title=(f"{int(bad.sum())} pairs of matching samples carry different {noun} ids "
                   f"({len(table)} pairs of ids)"),
            detail=(f"Samples that the content checks found to be copies or near copies are labelled "
                    f"with different {noun} ids, {n_ids} ids in all, e.g. "
                    + ", ".join(f"{t['id_a']!r} and {t['id_b']!r}" for t in table[:5])
                    + f". Either one {noun} was recorded under two ids, or the data was copied between "
                    f"{noun}s; either way splitting by these ids does not keep the {noun} together."),
            remedy=(f"Review these ids; merge the ones that are one {noun}. lg.resplit(splits, report, "
                    "groups=...) already keeps content-linked samples together whatever their ids."),
            splits=involved, count=len(eval_touched), pairs=pairs,
            extra={"kind": "inconsistent", "id_pairs": table})]


def _id_str(v) -> str:
    return str(v)
