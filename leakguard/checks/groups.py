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
    # min-label propagation with pointer jumping, in numpy (scipy's csgraph import cost ~0.1-0.4 s
    # in every process's first audit with links, a quarter of the #4 benchmark's loader pass):
    # each edge hooks the larger root under the smaller until both ends share one
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    root = np.arange(total, dtype=np.int64)
    while True:
        ra, rb = root[a], root[b]
        differ = ra != rb
        if not differ.any():
            break
        ra, rb = ra[differ], rb[differ]
        np.minimum.at(root, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # every node points at its root
            up = root[root]
            if np.array_equal(up, root):
                break
            root = up
        a, b = a[differ], b[differ]
    # labels 0, 1, ... in the order of each component's smallest node (as scipy numbers them)
    return np.unique(root, return_inverse=True)[1].astype(np.int64).reshape(-1)


# one static scene (frames of a fixed camera, a video whose background stays): on the 64 x 64 grey
# thumbnails (contrast-stretched), most pixels agree within a few grey levels, and most of them off
# the image's dominant level, so flat backgrounds (digits on black, products on white) never link
SCENE_NEIGHBOURS = 8     # candidates per image (nearest 16 x 16 thumbnails)
SCENE_TOLERANCE = 12     # grey levels of 255 for two pixels to agree (sensor noise, JPEG)
SCENE_SHARE = 0.6        # share of the pixels that agree (a moving object changes the rest)
SCENE_MAX = 50_000         # images: the exact 16 x 16 kNN is quadratic; above this no scene links
SCENE_TEXTURED_SHARE = 0.4  # share of the image that agrees off each image's dominant (background) level
# a mostly flat scene (a sky, a wall, a dark room with one lit part) has too little texture for
# that: nearly every pixel must agree, and most of the smaller textured part. Frames of such scenes
# (panned-frame benchmark): share >= 0.96, cover >= 0.8 of the smaller part; different digits on
# black (the 1797 of scikit-learn, best shift): share <= 0.885 and cover <= 0.75
SCENE_FLAT_SHARE = 0.93
SCENE_FLAT_COVER = 0.75
SCENE_FLAT_TEXTURED = 0.1
SCENE_SHIFT = 8          # thumbnail pixels (of 64) a camera may pan between two frames of one scene
# the screen on the 16 x 16 block means that decides which candidate pairs are compared pixel by
# pixel (a pair of distinct pictures stops there): share of blocks agreeing unshifted, and at the
# shift the blocks' phase correlation finds (within the range of the four blocks around it, levels
# mapped by gain and offset). Pairs linked in the panned-frame benchmark: >= 0.59 unshifted,
# >= 0.85 shifted (5th percentile 0.93); distinct pictures (bench_exact_images --data distinct):
# median 0.16 unshifted and 0.36 shifted, 99th percentile 0.26 and 0.55
SCENE_SCREEN_UNSHIFTED = 0.4
SCENE_SCREEN_SHIFTED = 0.6
SCENE_BLOCKS = 16        # blocks per side of the screen (and of the kNN)


def scene_links(ctx: AuditContext) -> pd.DataFrame:
    """Pairs of images of one static scene, within and across splits (group inference only).

    The similarity checks link copies, crops and look-alikes; frames of one video in which an
    object moves over a fixed background are none of these, and their file names may say nothing.
    Their backgrounds agree pixel for pixel: that is the link.
    """
    from ..report import empty_pairs

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
    shift = int(ctx.config.options(NAME).get("scene_shift", SCENE_SHIFT))
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    # the block-mean kNN is one small matrix product (numpy's exact search below 4096 images): BLAS's
    # threads cost more than they save there, and on a many-core machine they spin on after it
    # (16 cores: 2.25 s CPU for the scene links of 1000 images, 0.2 s on one thread)
    with threadpool_limits(1) if len(thumbs) <= 4096 else nullcontext():
        h, scores = scene_pairs(np.stack(thumbs), max_shift=shift, kept=_kept_verdicts(ctx, thumbs, shift))
    if not len(h):
        return empty_pairs()
    return pd.DataFrame({"split_a": np.asarray(names, dtype=object)[h[:, 0]],
                         "index_a": np.asarray(idx, dtype=np.int64)[h[:, 0]],
                         "split_b": np.asarray(names, dtype=object)[h[:, 1]],
                         "index_b": np.asarray(idx, dtype=np.int64)[h[:, 1]],
                         "check": NAME, "score": np.asarray(scores, dtype=np.float64)})



def _kept_verdicts(ctx: AuditContext, thumbs: list, shift: int):
    """With a cache (``AuditConfig(cache_dir=...)``): ``kept(pairs, verdicts)`` for :func:`scene_pairs`,
    answering the candidate pairs an earlier audit verified (keyed by both thumbnails' bytes, the shift
    window and this module's code: a pair's verdict is a function of its two thumbnails alone), so a
    re-audit verifies only new pairs. None without a cache."""
    if getattr(ctx.signatures, "cache", None) is None:
        return None
    import hashlib

    from ..similarity.memo import kept_pair_values

    digests = [hashlib.blake2b(t.tobytes() + repr(t.shape).encode(), digest_size=16).digest() for t in thumbs]

    def kept(pairs, verdicts):
        return kept_pair_values(ctx, "groups/scene", ("leakguard.checks.groups",), (int(shift),), digests, digests,
                                pairs[:, 0], pairs[:, 1], 2, lambda ia, ib: verdicts(np.stack([ia, ib], axis=1)))

    return kept


def scene_pairs(thumbs: np.ndarray, max_shift: int = SCENE_SHIFT, kept=None) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(i, j)``, i < j, of the grey thumbnails ``thumbs`` (n, side, side uint8, side a
    multiple of 16) that show one static scene, with the share of their pixels that agree.

    Candidates are each image's nearest neighbours on 16 x 16 block means. A candidate pair is one
    scene when, unshifted or shifted by at most ``max_shift`` pixels (a panning camera), at least
    ``SCENE_SHARE`` of the overlap agrees within ``SCENE_TOLERANCE`` grey levels and
    ``SCENE_TEXTURED_SHARE`` of it agrees off both images' dominant level (or, for a mostly flat
    scene, ``SCENE_FLAT_SHARE`` of it and ``SCENE_FLAT_COVER`` of the smaller textured part). The
    shift is the peak of the two thumbnails' phase correlation, to a fraction of a pixel (a pan
    resamples the picture: the shifted frame is interpolated there), and the levels are compared
    after a gain and offset fitted per pair (each thumbnail is contrast-stretched on its own).
    Only pairs whose 16 x 16 block means agree, unshifted or at their shift, are compared pixel
    by pixel: a pair of distinct pictures costs a comparison of 256 block means.

    ``kept``: ``kept(pairs, verdicts)`` gives the ``verdicts`` of ``pairs``, reading back those an earlier
    audit worked out (:func:`_kept_verdicts`); the pairs and shares are the same.

    >>> pairs, share = scene_pairs(np.stack([frame, frame_panned_3px, other_photo]))  # doctest: +SKIP
    """
    from ..search import nearest

    n, side = thumbs.shape[:2]
    max_shift = scene_max_shift(max_shift, side)
    small = scene_block_means(thumbs)
    k = min(SCENE_NEIGHBOURS, n - 1)
    # numpy's exact search below a few thousand images: FAISS's threads cost more than they save there
    _, nn = nearest(small.reshape(n, -1), small.reshape(n, -1), k=k, metric="l2", exclude_self=True,
                    use_faiss=None if n > 4096 else False)
    ia = np.repeat(np.arange(n), k)
    ib = nn.ravel()
    cand = np.unique(np.stack([np.minimum(ia, ib), np.maximum(ia, ib)], axis=1)[(ib >= 0)], axis=0)
    none = np.zeros((0, 2), np.int64), np.zeros(0)
    if not len(cand):
        return none

    def verdicts(pairs):
        return _scene_verdicts(thumbs, small, pairs, max_shift)

    verdict = verdicts(cand) if kept is None else kept(cand, verdicts)
    # unshifted links first, then those at a shift, each in candidate order
    stage = verdict[:, 0]
    return (np.concatenate([cand[stage == 1], cand[stage == 2]]).astype(np.int64),
            np.concatenate([verdict[stage == 1, 1], verdict[stage == 2, 1]]).astype(np.float64))


def scene_max_shift(max_shift: int, side: int) -> int:
    """The pan window :func:`scene_pairs` compares at: a wider one would wrap around the frame."""
    return min(int(max_shift), side // 2 - 2)


def scene_block_means(thumbs: np.ndarray) -> np.ndarray:
    """(n, 16, 16) float32 block means of the grey thumbnails ``thumbs`` (n, side, side uint8): what
    :func:`scene_pairs` searches for candidates and screens them on (the Spark engine computes them
    in its executors with this function)."""
    n, side = thumbs.shape[:2]
    f = side // SCENE_BLOCKS
    # block sums over whole rows first (contiguous), then across each row's f-pixel runs: the same
    # integers as summing the (n, 16, f, 16, f) view's axes 4 then 2, in a third of the time
    rows = thumbs.reshape(n, SCENE_BLOCKS, f, side).sum(axis=2, dtype=np.uint16)
    return rows.reshape(n, SCENE_BLOCKS, SCENE_BLOCKS, f).sum(axis=3, dtype=np.uint16).astype(np.float32) / (f * f)


def scene_verdicts(thumbs: np.ndarray, pairs: np.ndarray, max_shift: int = SCENE_SHIFT) -> np.ndarray:
    """:func:`scene_pairs`' verdict on the candidate ``pairs`` (rows ``(a, b)`` into ``thumbs``):
    (0, 0) no scene, (1, share) one scene unshifted, (2, share) at a shift. A row depends on its two
    thumbnails alone, so any subset of the images holding both gives the same row (the Spark engine
    verifies its candidates in batches)."""
    return _scene_verdicts(thumbs, scene_block_means(thumbs), np.asarray(pairs, dtype=np.int64),
                           scene_max_shift(max_shift, thumbs.shape[1]))


def _scene_verdicts(thumbs: np.ndarray, small: np.ndarray, cand: np.ndarray, max_shift: int) -> np.ndarray:
    """Per candidate pair (rows of ``cand``) of :func:`scene_pairs`: (0, 0) when it is no scene, or
    (1, share) when it is one unshifted, (2, share) at a shift. Each row depends on its two
    thumbnails alone (kept per pair between audits)."""
    n, side = thumbs.shape[:2]
    f = side // SCENE_BLOCKS
    verdict = np.zeros((len(cand), 2), np.float64)
    levels = thumbs.astype(np.int16)  # integer arithmetic: 2-4x cheaper than float
    off_mode = np.zeros(levels.shape, bool)
    known = np.zeros(n, bool)

    def dominant(pairs):
        """off_mode of the images of ``pairs``, worked out once (most images stop at the screen)"""
        todo = np.setdiff1d(pairs, np.flatnonzero(known))
        if len(todo):
            off_mode[todo] = _off_dominant(levels[todo])
            known[todo] = True

    # unshifted: blocks first, then the pixels of the pairs whose blocks agree
    screen = np.count_nonzero(np.abs(small[cand[:, 0]] - small[cand[:, 1]]) <= SCENE_TOLERANCE,
                              axis=(1, 2)) / SCENE_BLOCKS ** 2
    linked = np.zeros(len(cand), bool)
    rows = np.flatnonzero(screen >= SCENE_SCREEN_UNSHIFTED)
    for lo in range(0, len(rows), 1024):  # batches of pairs: (1024, 64, 64) at a time
        r = rows[lo:lo + 1024]
        a, b = cand[r, 0], cand[r, 1]
        dominant(cand[r])
        agree = np.abs(levels[a] - levels[b]) <= SCENE_TOLERANCE
        share = np.count_nonzero(agree, axis=(1, 2)) / side ** 2
        agree &= off_mode[a]
        agree &= off_mode[b]
        textured = np.count_nonzero(agree, axis=(1, 2)) / side ** 2
        smaller = np.minimum(np.count_nonzero(off_mode[a], axis=(1, 2)),
                             np.count_nonzero(off_mode[b], axis=(1, 2))) / side ** 2
        ok = _one_scene(share, textured, smaller)
        linked[r[ok]] = True
        verdict[r[ok], 0], verdict[r[ok], 1] = 1, share[ok]
    if max_shift > 0 and not linked.all():
        # a panning camera moves the whole background by a few pixels: compare the overlap at the
        # shift phase correlation finds (one shift per pair, not a search over all of them), on the
        # blocks first (a block per f pixels), then pixel by pixel
        at = np.flatnonzero(~linked)
        rest = cand[at]
        w = min(max(1, -(-max_shift // f)), SCENE_BLOCKS // 2 - 2)
        dy, dx = _phase_shift(small, rest, w)
        screen = _shifted_agreement(small, None, rest, dy, dx, screen=True)[0]
        at, rest = at[screen >= SCENE_SCREEN_SHIFTED], rest[screen >= SCENE_SCREEN_SHIFTED]
        if len(rest):
            dy, dx = _phase_shift(thumbs, rest, max_shift)
            dominant(rest)
            share, textured, smaller = _shifted_agreement(levels, off_mode, rest, dy, dx)
            ok = _one_scene(share, textured, smaller)
            verdict[at[ok], 0], verdict[at[ok], 1] = 2, share[ok]
    return verdict


def _off_dominant(levels: np.ndarray) -> np.ndarray:
    """Pixels off each image's dominant level (a flat background: agreement there says nothing).
    The dominant level is the one whose +-tolerance window holds the most pixels -- not a fixed
    bin: the stretch of two frames of one scene differs, and their background must stay the same
    pixels."""
    n = len(levels)
    counts = np.bincount((np.arange(n)[:, None] * 256 + levels.reshape(n, -1)).ravel(),
                         minlength=n * 256).reshape(n, 256)
    window = np.cumsum(np.pad(counts, ((0, 0), (SCENE_TOLERANCE + 1, SCENE_TOLERANCE))), axis=1)
    modal = (window[:, 2 * SCENE_TOLERANCE + 1:] - window[:, :-2 * SCENE_TOLERANCE - 1]).argmax(axis=1)
    return np.abs(levels - modal[:, None, None].astype(levels.dtype)) > SCENE_TOLERANCE


def _one_scene(share, textured, smaller) -> np.ndarray:
    """Pairs that agree as one scene: most pixels, and most of them textured; or, in a mostly flat
    scene, nearly every pixel and most of the smaller textured part."""
    cover = textured / np.maximum(smaller, 1e-9)
    return (((share >= SCENE_SHARE) & (textured >= SCENE_TEXTURED_SHARE))
            | ((share >= SCENE_FLAT_SHARE) & (textured >= SCENE_FLAT_TEXTURED) & (cover >= SCENE_FLAT_COVER)))


def _phase_shift(images: np.ndarray, pairs: np.ndarray, max_shift: int):
    """Per pair (rows ``(a, b)`` of ``pairs``): the shift ``(dy, dx)`` within ``max_shift`` at which
    the phase correlation of images a and b peaks (a(y, x) ~ b(y - dy, x - dx)), in pixels, with its
    sub-pixel part: from the peak and its higher neighbour (c0, c1), d = c1 / (c0 + c1) of a pixel
    toward that neighbour (the peak of a shifted picture is a sinc; Foroosh et al. 2002)."""
    side = images.shape[1]
    used, inv = np.unique(pairs, return_inverse=True)
    inv = inv.reshape(pairs.shape)
    grey = images[used].astype(np.float32)
    # a Hann window: frame borders do not wrap around, and their jump would pin the peak at no shift
    hann = np.outer(np.hanning(side), np.hanning(side)).astype(np.float32)
    spectra = np.fft.rfft2((grey - grey.mean(axis=(1, 2), keepdims=True)) * hann).astype(np.complex64)
    offsets = np.arange(-max_shift - 1, max_shift + 2) % side   # the window and one ring around it
    span = 2 * max_shift + 1
    dy, dx = np.zeros(len(pairs)), np.zeros(len(pairs))
    for lo in range(0, len(pairs), 512):
        a, b = inv[lo:lo + 512, 0], inv[lo:lo + 512, 1]
        cross = spectra[a] * np.conj(spectra[b])
        corr = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=(side, side))[:, offsets][:, :, offsets]
        peak = corr[:, 1:-1, 1:-1].reshape(len(a), -1).argmax(axis=1)
        py, px = peak // span + 1, peak % span + 1   # in corr's coordinates
        at = np.arange(len(a))
        c0 = np.maximum(corr[at, py, px], 1e-9)
        for axis, out in ((0, dy), (1, dx)):
            up = corr[at, py + 1, px] if axis == 0 else corr[at, py, px + 1]
            down = corr[at, py - 1, px] if axis == 0 else corr[at, py, px - 1]
            c1 = np.maximum(np.maximum(up, down), 0)
            part = np.where(up >= down, 1, -1) * c1 / (c0 + c1)
            out[lo:lo + 512] = (py if axis == 0 else px) - max_shift - 1 + part
    return np.clip(dy, -max_shift, max_shift), np.clip(dx, -max_shift, max_shift)


SCENE_GAIN = (0.67, 1.5)  # the contrast change allowed between two frames (their stretches differ)


def _level_map(mine: np.ndarray, other: np.ndarray, robust: bool = True):
    """Per pair (axis 0), gain and offset with ``mine ~ gain * other + offset``: each thumbnail is
    contrast-stretched on its own, so an object entering the frame changes every level of it.
    Least squares; ``robust``: refitted on the better-fitting 60 % (a moving object does not pull
    the fit). The gain is kept within ``SCENE_GAIN``."""
    y = mine.reshape(len(mine), -1).astype(np.float32)
    x = other.reshape(len(other), -1).astype(np.float32)
    keep = None
    for _ in range(2 if robust else 1):
        if keep is None:
            mx, my = x.mean(axis=1, keepdims=True), y.mean(axis=1, keepdims=True)
            var = ((x - mx) ** 2).sum(axis=1, keepdims=True)
            cov = ((x - mx) * (y - my)).sum(axis=1, keepdims=True)
        else:
            n = np.maximum(keep.sum(axis=1, keepdims=True), 1)
            mx, my = (x * keep).sum(axis=1, keepdims=True) / n, (y * keep).sum(axis=1, keepdims=True) / n
            var = (((x - mx) ** 2) * keep).sum(axis=1, keepdims=True)
            cov = ((x - mx) * (y - my) * keep).sum(axis=1, keepdims=True)
        gain = np.clip(cov / np.maximum(var, 1e-6), *SCENE_GAIN)
        offset = my - gain * mx
        if robust and keep is None:
            resid = np.abs(y - (gain * x + offset))
            kth = int(0.6 * (resid.shape[1] - 1))
            keep = resid <= np.partition(resid, kth, axis=1)[:, kth:kth + 1]
    return gain[:, :, None].astype(np.float32), offset[:, :, None].astype(np.float32)


def _shifted_agreement(levels, off_mode, pairs, dy, dx, screen: bool = False):
    """Per pair: the share of the overlap where a's pixel agrees within the tolerance with b shifted
    by the sub-pixel ``(dy, dx)`` (bilinear between the four integer shifts around it), and (with
    ``off_mode``) the share that also lies off both images' dominant level and the smaller of the
    two images' shares off their dominant level. ``screen``: a's pixel
    agrees when it lies within the tolerance of the range of those four pixels (a block mean of a
    picture shifted by a fraction of a block is no interpolation of its block means: a screen
    must not lose such pairs)."""
    side = levels.shape[1]
    share, textured, smaller = np.zeros(len(pairs)), np.zeros(len(pairs)), np.zeros(len(pairs))
    y0, x0 = np.floor(dy).astype(np.int64), np.floor(dx).astype(np.int64)
    # a pan by a fraction of a pixel resamples the picture: pairs share the four integer shifts
    # around their shift, and their weights are their own
    fy, fx = (dy - y0).astype(np.float32), (dx - x0).astype(np.float32)
    corners, which = np.unique(np.stack([y0, x0], axis=1), axis=0, return_inverse=True)
    which = which.ravel()
    for c, (y1, x1) in enumerate(corners.tolist()):
        rows = np.flatnonzero(which == c)
        a, b = pairs[rows, 0], pairs[rows, 1]
        # the overlap of a with b at all four shifts: a(y, x) ~ b(y - sy, x - sx)
        ys = slice(max(0, y1 + 1), side + min(0, y1))
        xs = slice(max(0, x1 + 1), side + min(0, x1))
        wy, wx = fy[rows, None, None], fx[rows, None, None]
        mine = levels[a][:, ys, xs]
        moved = [levels[b][:, ys.start - y:ys.stop - y, xs.start - x:xs.stop - x]
                 for y in (y1, y1 + 1) for x in (x1, x1 + 1)]
        if screen:
            lo, hi = np.minimum.reduce(moved), np.maximum.reduce(moved)
            gain, offset = _level_map(mine, (lo + hi) / 2, robust=False)
            lo, hi = gain * lo + offset, gain * hi + offset
            agree = (mine >= np.minimum(lo, hi) - SCENE_TOLERANCE) & (mine <= np.maximum(lo, hi) + SCENE_TOLERANCE)
        else:
            weights = ((1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx)
            moved = sum(w * m for w, m in zip(weights, moved))
            gain, offset = _level_map(mine, moved)
            agree = np.abs(mine - (gain * moved + offset)) <= SCENE_TOLERANCE
        area = agree[0].size
        share[rows] = np.count_nonzero(agree, axis=(1, 2)) / area
        if off_mode is not None:
            agree &= off_mode[a][:, ys, xs]
            off_b = off_mode[b][:, ys.start - y1:ys.stop - y1, xs.start - x1:xs.stop - x1]
            agree &= off_b
            textured[rows] = np.count_nonzero(agree, axis=(1, 2)) / area
            smaller[rows] = np.minimum(np.count_nonzero(off_mode[a][:, ys, xs], axis=(1, 2)),
                                       np.count_nonzero(off_b, axis=(1, 2))) / area
    return share, textured, smaller


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

    opts = ctx.config.options("partial_duplicate")
    _, t_docs = T._valid_stack(ctx, ctx.train, "passages")
    h, _ = T._inverted_index(t_docs)
    min_docs, max_postings = T.partial_limits(opts, len(t_docs))
    boiler = T._boilerplate(h, min_docs)
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
    reach_at = passage_reach(ctx)
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
    # over the texts compared with another (a text with no candidate would only add a 0)
    min_run = passage_min_run(ctx, [null.get(k, 0) for k in sorted({x for pair in run_of for x in pair})])
    kept = [(a, b, r) for (a, b), r in run_of.items() if r >= min_run]
    if not kept:
        return empty_pairs()
    qa, db, runs = (list(x) for x in zip(*kept))
    split_of, index_of = np.asarray(owner_split, dtype=object), np.asarray(owner_idx, dtype=np.int64)
    return pd.DataFrame({"split_a": split_of[qa], "index_a": index_of[qa], "split_b": split_of[db],
                         "index_b": index_of[db], "check": NAME, "score": np.asarray(runs, dtype=np.float64)})


def passage_reach(ctx: AuditContext) -> float:
    """The run (words) at which :func:`passage_links` searches on from a text: the user's fixed
    partial_duplicate threshold, else its ``min_words`` floor (the calibrated length is at least this)."""
    fixed = ctx.config.thresholds.get("partial_duplicate")
    return float(fixed) if fixed is not None else float(ctx.config.options("partial_duplicate").get("min_words", 12))


def passage_min_run(ctx: AuditContext, null) -> float:
    """The run (words) a passage link needs: the fixed threshold, else the ``1 - fpr`` tail of ``null``
    (each compared evaluation text's longest run through phrases in 3+ texts), never below the floor."""
    from ..similarity.findings import tail_threshold

    fixed = ctx.config.thresholds.get("partial_duplicate")
    if fixed is not None:
        return float(fixed)
    floor = float(ctx.config.options("partial_duplicate").get("min_words", 12))
    return max(floor, float(tail_threshold(np.asarray(null, dtype=np.float64), ctx.config.fpr, higher_is_closer=True)))


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
    scene = _inferred_links(ctx, "scenes", scene_links) if _wants_scenes(ctx) and len(has) < pool.total else None
    sa = sb = np.zeros(0, np.int64)
    if scene is not None and len(scene):
        sa, sb = pool.glob(scene["split_a"], scene["index_a"]), pool.glob(scene["split_b"], scene["index_b"])
        ga, gb = np.concatenate([ga, sa]), np.concatenate([gb, sb])
    # passages shared among evaluation texts (chunks of one document), also only where ids are missing
    passages = (_inferred_links(ctx, "passages", passage_links) if _wants_passages(ctx) and len(has) < pool.total
                else None)
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


# An engine that holds the samples' signatures elsewhere (the Spark engine runs this check on its
# driver with signatures=None) finds the scene and passage links with its own search, on the same
# functions, and puts it here: ctx.shared[ENGINE_LINKS] = {"scenes": fn, "passages": fn}, fn(ctx) -> pairs
ENGINE_LINKS = "group_overlap.engine_links"


def _inferred_links(ctx: AuditContext, kind: str, local) -> pd.DataFrame:
    found = ctx.shared.get(ENGINE_LINKS, {}).get(kind)
    return found(ctx) if found is not None else local(ctx)


def _can_read(ctx: AuditContext, kind: str) -> bool:
    """The signatures are here, or the engine brings its own search (leakguard.search.spark_groups)."""
    return ctx.signatures is not None or kind in ctx.shared.get(ENGINE_LINKS, {})


def _wants_scenes(ctx: AuditContext) -> bool:
    opts = ctx.config.options(NAME)
    return (ctx.splits.modality == "image" and opts.get("infer", True) and opts.get("scenes", True)
            and _can_read(ctx, "scenes"))


def _wants_passages(ctx: AuditContext) -> bool:
    opts = ctx.config.options(NAME)
    return (ctx.splits.modality == "text" and opts.get("infer", True) and opts.get("passages", True)
            and _can_read(ctx, "passages"))


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
