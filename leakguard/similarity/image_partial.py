"""Image backend of the ``partial_duplicate`` check: overlapping tiles / crops of one larger image.

Moved out of ``leakguard.similarity.image`` (which re-exports ``PARTIAL_DEFAULTS``,
``overlap_pairs`` and ``partial_duplicates``) so the partial path can grow on its own.

Corner-patch codes (the ``patches`` signature, ``leakguard.signatures.image``) that match at one
consistent offset are the evidence; the score is the overlapping share of the smaller image.
"""
from __future__ import annotations

import numpy as np

from ..checks.similarity import register_backend
from ..report import Finding, make_pairs
from ..signatures import image as _image_signatures  # noqa: F401  (registers the image signatures)


def _linked_eval(ctx, a_name: str, b_name: str) -> set[int]:
    # imported here: image.py imports this module at load time (re-export), not the other way round
    from .image import _linked_eval as linked

    return linked(ctx, a_name, b_name)


# ---- partial duplicates: overlapping tiles / crops of one larger image ----------------------

PARTIAL_DEFAULTS = {"min_votes": 4, "min_share": 0.1, "max_share": 0.9, "tolerance": 2}


def overlap_pairs(patches_a: list, patches_b: list, shapes_a: np.ndarray, shapes_b: np.ndarray,
                  min_votes: int = 4, tolerance: int = 2):
    """(ia, ib, share, dy, dx): pairs sharing >= ``min_votes`` patch codes at one consistent offset.

    ``share``: overlapping area / area of the smaller image, from the voted offset
    (b's origin sits at (dy, dx) in a's pixel frame). Work: one join on the codes.
    """
    import pandas as pd

    def frame(patches, side):
        arrs = [np.asarray(ps, dtype=np.int64).reshape(-1, 3) if ps is not None else np.zeros((0, 3), np.int64)
                for ps in patches]
        rows = np.concatenate(arrs) if arrs else np.zeros((0, 3), np.int64)
        owner = np.repeat(np.arange(len(arrs), dtype=np.int64), [len(x) for x in arrs])
        return pd.DataFrame({f"i{side}": owner, "code": rows[:, 0], f"y{side}": rows[:, 1], f"x{side}": rows[:, 2]})

    fa, fb = frame(patches_a, "a"), frame(patches_b, "b")
    empty = (np.zeros(0, np.int64),) * 2 + (np.zeros(0),) + (np.zeros(0, np.int64),) * 2
    if fa.empty or fb.empty:
        return empty
    # codes repeated many times inside one split (flat skies, borders) are not evidence
    common = fa["code"].value_counts()
    fa = fa[fa["code"].map(common) <= 3]
    m = fa.merge(fb, on="code")
    if m.empty:
        return empty
    q = max(1, 2 * tolerance + 1)
    m["dy"] = m["ya"] - m["yb"]
    m["dx"] = m["xa"] - m["xb"]
    m["by"] = np.floor_divide(m["dy"] + tolerance, q)
    m["bx"] = np.floor_divide(m["dx"] + tolerance, q)
    votes = m.groupby(["ia", "ib", "by", "bx"]).agg(n=("code", "size"), dy=("dy", "median"), dx=("dx", "median"))
    votes = votes.reset_index().sort_values("n", ascending=False).drop_duplicates(["ia", "ib"])
    votes = votes[votes["n"] >= min_votes]
    if votes.empty:
        return empty
    ia = votes["ia"].to_numpy(np.int64)
    ib = votes["ib"].to_numpy(np.int64)
    dy = votes["dy"].to_numpy().round().astype(np.int64)
    dx = votes["dx"].to_numpy().round().astype(np.int64)
    ha, wa = shapes_a[ia, 0], shapes_a[ia, 1]
    hb, wb = shapes_b[ib, 0], shapes_b[ib, 1]
    oh = np.clip(np.minimum(ha, dy + hb) - np.maximum(0, dy), 0, None)
    ow = np.clip(np.minimum(wa, dx + wb) - np.maximum(0, dx), 0, None)
    share = oh * ow / np.minimum(ha * wa, hb * wb)
    return ia, ib, share.astype(np.float64), dy, dx


@register_backend("partial_duplicate", "image", needs={"patches", "shape", "digest"})
def partial_duplicates(ctx, check) -> list:
    """Evaluation images that overlap part of a training image (tiles or crops of one larger image).

    Corner-patch codes that match at one consistent offset are the evidence; the score is the
    overlapping share of the smaller image. Overlaps above ``max_share`` (0.9) are left to the
    exact and augmented checks; pairs they already linked are not reported again.
    """
    opts = {**PARTIAL_DEFAULTS, **ctx.config.options(check.name)}
    splits = ctx.splits
    findings = []
    order = [splits.train] + splits.eval_names
    data = {}
    for n in order:
        valid = np.flatnonzero(ctx.valid(n))
        data[n] = (valid, [ctx.signatures.get(n, "patches")[i] for i in valid],
                   np.array([ctx.signatures.get(n, "shape")[i] for i in valid], dtype=np.int64).reshape(-1, 2))
    for a_pos, a_name in enumerate(order):
        for b_name in order[a_pos + 1:]:
            va, pa, sa = data[a_name]
            vb, pb, sb = data[b_name]
            ia, ib, share, dy, dx = overlap_pairs(pa, pb, sa, sb, opts["min_votes"], opts["tolerance"])
            keep = (share >= opts["min_share"]) & (share <= opts["max_share"])
            ia, ib, share, dy, dx = ia[keep], ib[keep], share[keep], dy[keep], dx[keep]
            already = _linked_eval(ctx, a_name, b_name)
            gi_a, gi_b = va[ia], vb[ib]
            keep = np.array([int(j) not in already for j in gi_b], dtype=bool)
            gi_a, gi_b, share, dy, dx = gi_a[keep], gi_b[keep], share[keep], dy[keep], dx[keep]
            if not len(gi_b):
                continue
            pairs = make_pairs(a_name, gi_a, b_name, gi_b, check.name, share)
            ctx.links.append(pairs)
            count = len(np.unique(gi_b))
            n_b = len(splits[b_name])
            involves_train = a_name == splits.train
            findings.append(Finding(
                check=check.name,
                severity=ctx.severity(check.name, "critical" if involves_train else "warning"),
                title=f"{count} of {n_b} {b_name!r} images overlap part of a {a_name!r} image",
                detail=(f"{count} images in {b_name!r} ({count / max(n_b, 1):.1%}) share a region with a "
                        f"{a_name!r} image (median overlap {np.median(share):.0%} of the smaller image): "
                        "tiles or crops cut from one larger picture and split apart."),
                remedy=("Split by source image (groups= with the id of the picture each tile was cut from), "
                        "or re-split with lg.resplit()."),
                splits=(a_name, b_name), count=count, pairs=pairs,
                extra={"offsets": np.stack([dy, dx], axis=1).tolist()}))
    return findings
