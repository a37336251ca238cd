"""Image backend of the ``partial_duplicate`` check: overlapping tiles / crops of one larger image.

Two kinds of evidence, both cheap enough to run on every image:

1. **Same scale** (tiles cut from one picture, no resizing): codes of the 16 x 16 patches around
   band-pass keypoints (the ``patches`` signature, ``leakguard.signatures.image``) joined on the
   code and voted by offset (:func:`overlap_pairs`). Exact: the offset is pixel-accurate.
2. **Any scale** (overlapping crops resized differently, rotated a little): SIFT keypoints on a
   grey rendering of at most ``KP_SIDE`` px a side, aspect kept (the ``partial_kp`` signature,
   OpenCV; without OpenCV this path is off). Candidates: the nearest training descriptors of each
   evaluation descriptor (FAISS, exact on small splits, IVF on large ones) vote for their image
   when clearly nearer than the rest (Lowe's ratio); verification of each candidate: ratio-tested SIFT
   matches, a RANSAC similarity transform (scale, rotation, shift), then the band-passed Pearson r
   of one ``thumb_kp`` thumbnail warped onto the other over their overlap. The threshold is
   calibrated on the training split: sampled training images, mirrored, go through the same
   search and verification (a mirror image keeps the textures but cannot overlap under a
   similarity transform), so look-alike textures do not pass and tiles that overlap inside the
   training split do not inflate the threshold.

The score of a pair is its overlapping share: overlapping area / area of the smaller image (in
one frame, after undoing the scale). Evidence per pair in ``finding.extra``: ``overlap_shares``,
``scales`` (evaluation / training pixels), ``rotations`` (degrees), ``offsets`` (where the
evaluation image's origin lies in the training image's pixels), ``methods`` ("patch codes" or
"keypoints"), ``correlations`` (r, keypoint pairs only), and the calibration.

Options (``AuditConfig(check_options={"partial_duplicate": {...}})``): ``min_share`` /
``max_share`` (0.1 / 0.9: larger overlaps are the exact and augmented checks' job),
``resized`` (False; True adds the any-scale path: SIFT keypoints on every image, ~10 x the
cost of decoding it, so it is opt-in), ``null_samples`` (200 training images mirrored for the
calibration), ``min_score`` (0.8, a floor under the calibrated threshold: resized overlaps score
0.85-0.99, unrelated look-alikes up to ~0.75 on the benchmark), ``threshold`` (skip calibration),
``kp_candidates`` (8 verified candidates per evaluation image), ``min_inliers`` (4).

>>> import numpy as np
>>> from leakguard.similarity.image_partial import overlap_share
>>> square = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], np.float32)
>>> round(overlap_share(square, (100, 100), np.array([[1, 0, 50], [0, 1, 0]], float)), 2)
0.5
"""
from __future__ import annotations

import numpy as np

from ..checks.similarity import register_backend
from ..report import Finding, make_pairs
from ..signatures import image as _image_signatures  # noqa: F401  (registers the image signatures)
from ..signatures.image import image_views
from ..signatures.registry import register_signature
from . import image_align as _image_align  # noqa: F401  (registers thumb_kp)
from .calibration import calibrated_threshold
from .image_align import have_opencv
from .memo import kept_value

# modules whose code decides the calibration (kept_value keys it by their source)
PARTIAL_CODE = ("leakguard.similarity.image_partial", "leakguard.similarity.image_align",
                "leakguard.similarity.calibration", "leakguard.search.knn", "leakguard.signatures.image")

KP_SIDE = 192          # SIFT runs on a grey rendering of at most this many px a side (aspect kept)
KP_FEATURES = 200      # keypoints kept per image (strongest first)
KP_LOW_CONTRAST = 100  # fewer than this: detect again with a much lower contrast threshold
KP_ROW = 8 + 128       # bytes per keypoint in the signature: x, y (2 float32) + SIFT descriptor (uint8)
RATIO = 0.8            # Lowe's ratio test inside a candidate pair
RANSAC_PX = 4.0        # inlier tolerance, in pixels of the KP_SIDE rendering
STRONG_INLIERS = 8     # fewer consistent matches than this: weak geometry, the score is discounted
WEAK_DISCOUNT = 0.1    # by this much (unrelated pairs reach r ~0.7 with 5-6 chance inliers)
HYPOTHESES = 1         # RANSAC fits per pair (a second one on the matches the first left out found no more on the benchmark)
GOOD_ENOUGH = 0.9      # a fit scoring this needs no second one


def _linked_pairs(ctx, a_name: str, b_name: str) -> set[tuple[int, int]]:
    """(index_a, index_b) pairs of the two splits that earlier checks already linked."""
    links = ctx.all_links()
    sel = (links["split_a"] == a_name) & (links["split_b"] == b_name)
    return set(zip(links.loc[sel, "index_a"].astype(int), links.loc[sel, "index_b"].astype(int)))


def _linked_eval(ctx, a_name: str, b_name: str) -> set[int]:
    # imported here: image.py imports this module at load time (re-export), not the other way round
    from .image import _linked_eval as linked

    return linked(ctx, a_name, b_name)


# ---- the any-scale keypoints: signature, overlap geometry, verification ------------------------

_SIFT: dict = {}


@register_signature("image", "partial_kp", version="1")
def image_partial_kp(img: np.ndarray) -> np.ndarray:
    """(k, 136) uint8 rows: SIFT keypoints for partial duplicates at any scale.

    Bytes 0-7 of a row are the keypoint's x, y (float32, original pixels), bytes 8-135 its SIFT
    descriptor; strongest keypoints first. Found on the grey image shrunk to at most ``KP_SIDE`` px a side (aspect kept),
    contrast-stretched; empty without OpenCV or for images under 24 px a side.
    """
    empty = np.zeros((0, KP_ROW), np.uint8)
    h, w = img.shape[:2]
    if min(h, w) < 24 or not have_opencv():
        return empty
    import cv2

    g, _ = image_views(img).grey_patch
    gh, gw = g.shape
    f = min(1.0, KP_SIDE / max(gh, gw))
    if f < 1.0:
        g = cv2.resize(g, (max(8, round(gw * f)), max(8, round(gh * f))), interpolation=cv2.INTER_AREA)
    lo, hi = np.percentile(g, [1, 99])
    if hi <= lo:
        return empty
    g8 = np.clip((g - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    if "hi" not in _SIFT:
        _SIFT["hi"] = cv2.SIFT_create(nfeatures=KP_FEATURES, contrastThreshold=0.02)
        _SIFT["lo"] = cv2.SIFT_create(nfeatures=KP_FEATURES, contrastThreshold=0.002)
    kps, des = _SIFT["hi"].detectAndCompute(g8, None)
    if len(kps) < KP_LOW_CONTRAST:
        # smooth pictures (skies, a clock face) only have faint structure: look again
        low = _SIFT["lo"].detectAndCompute(g8, None)
        if len(low[0]) > len(kps):
            kps, des = low
    if des is None or not len(kps):
        return empty
    order = np.argsort([-k.response for k in kps], kind="stable")  # strongest first: the search uses the head
    kps, des = [kps[i] for i in order], des[order]
    sy, sx = g8.shape[0] / h, g8.shape[1] / w
    pts = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
    pts = np.stack([(pts[:, 0] + 0.5) / sx - 0.5, (pts[:, 1] + 0.5) / sy - 0.5], axis=1).astype(np.float32)
    desc = np.clip(np.round(des), 0, 255).astype(np.uint8)
    return np.concatenate([pts.view(np.uint8).reshape(-1, 8), desc], axis=1)


def _unpack(rows) -> tuple[np.ndarray, np.ndarray]:
    """(points (k, 2) float32 x y, descriptors (k, 128) float32) of a ``partial_kp`` signature."""
    rows = np.zeros((0, KP_ROW), np.uint8) if rows is None else np.ascontiguousarray(rows, dtype=np.uint8)
    return rows[:, :8].copy().view(np.float32).reshape(-1, 2), rows[:, 8:].astype(np.float32)


def overlap_share(corners_a: np.ndarray, shape_b, affine: np.ndarray) -> float:
    """Overlapping area / area of the smaller image, for image a mapped into b's frame by ``affine``.

    ``corners_a``: a's 4 corners (x, y) in its own pixels; ``shape_b``: (h, w); ``affine``: 2 x 3
    similarity a -> b. Areas are compared in b's frame (a's area scaled by the transform).
    """
    import cv2

    hb, wb = shape_b
    warped = (corners_a @ affine[:, :2].T + affine[:, 2]).astype(np.float32)
    rect = np.array([[0, 0], [wb, 0], [wb, hb], [0, hb]], np.float32)
    area, _ = cv2.intersectConvexConvex(warped, rect)
    area_a = abs(float(cv2.contourArea(warped)))
    return float(area) / max(min(area_a, float(wb * hb)), 1e-9)


def _to_thumb(shape, side: int) -> np.ndarray:
    """3 x 3 map from an image's pixels to its ``side`` px square thumbnail (aspect not kept)."""
    h, w = shape
    sx, sy = side / w, side / h
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def _thumb_correlation(thumb_a: np.ndarray, thumb_b: np.ndarray, affine_thumb: np.ndarray) -> float:
    """Band-passed Pearson r of thumbnail b against a warped onto it, over their overlap (-1: too small)."""
    import cv2

    from .image_align import BLUR_HYPOTHESES, _band, _pearson

    pa = np.asarray(thumb_a, np.float32)
    pb = np.asarray(thumb_b, np.float32)
    h, w = pb.shape
    warped = cv2.warpAffine(pa, affine_thumb, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    inside = cv2.warpAffine(np.ones_like(pa), affine_thumb, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.erode((inside > 0.999).astype(np.float32), np.ones((5, 5), np.uint8))
    sel = mask > 0.5
    if sel.sum() < 256:  # a 16 x 16 px overlap of the thumbnails: too little to judge
        return -1.0
    r = _pearson(_band(warped, mask)[sel], _band(pb, mask)[sel])
    if r < GOOD_ENOUGH:  # resizing blurs one side: compare at a blurrier scale too
        s = BLUR_HYPOTHESES[0]
        r = max(r, _pearson(_band(warped, mask, s)[sel], _band(pb, mask, s)[sel]))
    return float(r)


def verify_overlap(kp_a, kp_b, shape_a, shape_b, thumb_a, thumb_b, min_inliers: int = 4) -> dict | None:
    """Is image b an overlapping crop of image a at some scale? The evidence, or None.

    ``kp_*``: ``partial_kp`` signatures; ``shape_*``: (h, w); ``thumb_*``: ``thumb_kp`` thumbnails.
    Returns {"score", "r", "share", "scale" (b px per a px), "rotation" (degrees), "offset" (b's
    origin in a's pixels, (y, x)), "inliers"}. ``score`` is what the caller thresholds: the
    post-warp r, less ``WEAK_DISCOUNT`` when fewer than ``STRONG_INLIERS`` matches agree.
    """
    import cv2

    pa, da = _unpack(kp_a)
    pb, db = _unpack(kp_b)
    if len(da) < 2 or len(db) < 2:
        return None
    matcher = _SIFT.setdefault("matcher", cv2.BFMatcher(cv2.NORM_L2))
    pairs = matcher.knnMatch(db, da, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < min_inliers:
        return None
    src = pa[[g.trainIdx for g in good]]
    dst = pb[[g.queryIdx for g in good]]
    tol = RANSAC_PX * max(max(shape_a), max(shape_b)) / KP_SIDE
    best = None
    for _ in range(HYPOTHESES):
        if len(src) < min_inliers:
            break
        affine, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=tol,
                                                  maxIters=2000, confidence=0.995)
        if affine is None or int(inl.sum()) < min_inliers:
            break
        ev = _evaluate(affine, int(inl.sum()), shape_a, shape_b, thumb_a, thumb_b)
        if ev is not None and (best is None or ev["score"] > best["score"]):
            best = ev
        if best is not None and best["score"] >= GOOD_ENOUGH:
            break
        # repeated structure (windows, bricks) can win the consensus: try the matches it left out
        out = inl.ravel() == 0
        src, dst = src[out], dst[out]
    return best


def _evaluate(affine, n_inl: int, shape_a, shape_b, thumb_a, thumb_b) -> dict | None:
    scale = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
    if not 0.2 < scale < 5.0:
        return None
    ha, wa = shape_a
    corners = np.array([[0, 0], [wa, 0], [wa, ha], [0, ha]], np.float32)
    share = overlap_share(corners, shape_b, affine)
    full = np.vstack([affine, [0.0, 0.0, 1.0]])
    side = int(np.asarray(thumb_a).shape[0])
    affine_thumb = (_to_thumb(shape_b, side) @ full @ np.linalg.inv(_to_thumb(shape_a, side)))[:2]
    r = _thumb_correlation(thumb_a, thumb_b, affine_thumb)
    origin = np.linalg.inv(full) @ np.array([0.0, 0.0, 1.0])  # b's origin in a's pixels
    rotation = float(np.degrees(np.arctan2(affine[1, 0], affine[0, 0])))
    score = r - (WEAK_DISCOUNT if n_inl < STRONG_INLIERS else 0.0)
    return {"score": score, "r": r, "share": share, "scale": scale, "rotation": rotation,
            "offset": (float(origin[1]), float(origin[0])), "inliers": n_inl}


# ---- candidates: descriptor nearest neighbours voted by image pair ----------------------------

KP_SEARCH = 100        # strongest keypoints per image that take part in the candidate search (all verify)
EXACT_SEARCH = 2e7     # query x index descriptors below which the descriptor search is exact, on one thread
VOTE_K = 5             # neighbours per query descriptor; a neighbour votes when clearly nearer than the last
MIN_DESC_VOTES = 2     # voting descriptors that make an image pair a candidate


class Descriptors:
    """All ``partial_kp`` descriptors of one split, stacked, with the image each one belongs to."""

    def __init__(self, kps: list, head: int | None = KP_SEARCH):
        desc = [_unpack(k if head is None or k is None else k[:head])[1] for k in kps]
        self.owner = np.repeat(np.arange(len(desc), dtype=np.int64), [len(d) for d in desc])
        self.desc = np.ascontiguousarray(np.concatenate(desc) if desc else np.zeros((0, 128), np.float32))
        self.ivf = None  # the FAISS IVF index of these descriptors, once a large search built it

    def subset(self, images) -> "Descriptors":
        out = Descriptors([])
        sel = np.isin(self.owner, np.asarray(images, dtype=np.int64))
        out.owner, out.desc = self.owner[sel], np.ascontiguousarray(self.desc[sel])
        return out


def _neighbours(base: "Descriptors", query: np.ndarray, k: int, random_state: int = 0):
    """(squared L2 distances, indices) of the ``k`` nearest ``base`` descriptors of each query one.

    Exact (``leakguard.search.knn``) below ``EXACT_SEARCH`` distance computations; above it FAISS
    IVF (2 sqrt(n) lists, 8 probed) when installed: splits beyond a few dozen images cost ~n^1.5,
    not n^2 (exact search of 100 descriptors per image: 20 s for 130 x 100 images on a busy core).
    One thread: FAISS / BLAS thread wake-ups on busy cores cost more than they save here. The IVF
    index is built once per split (``base.ivf``) and reused for every split searched against it.
    """
    from threadpoolctl import threadpool_limits

    from ..search.knn import _faiss, nearest

    vectors = base.desc
    with threadpool_limits(1):
        if exact_descriptor_search(len(vectors), len(query)):
            d, i = nearest(vectors, query, k=k, metric="l2")
            return d.astype(np.float64) ** 2, i
        if base.ivf is None:
            index = train_ivf(vectors[ivf_sample_positions(len(vectors), random_state)], len(vectors))
            index.add(vectors)
            index.nprobe = IVF_PROBES
            base.ivf = index
        d, i = base.ivf.search(query, k)
    return d.astype(np.float64), i


IVF_PROBES = 8    # inverted lists searched per query descriptor (large splits)
IVF_FROM = 2_000  # index descriptors from which a search past EXACT_SEARCH is IVF


def exact_descriptor_search(n_index: int, n_query: int) -> bool:
    """Whether :func:`_neighbours` searches ``n_query`` descriptors among ``n_index`` exactly (else
    FAISS IVF). The Spark engine takes the same branch (``leakguard.search.spark_image_partial_kp``)."""
    from ..search.knn import _faiss

    return _faiss() is None or n_index * n_query <= EXACT_SEARCH or n_index < IVF_FROM


def ivf_lists(n_index: int) -> int:
    """Inverted lists of the IVF index over ``n_index`` descriptors: 2 sqrt(n), within [64, 16384]."""
    return int(np.clip(2 * np.sqrt(n_index), 64, 16384))


def ivf_sample_positions(n_index: int, random_state: int = 0) -> np.ndarray:
    """Positions (in the split's stacked descriptors) of the IVF training sample, in sample order."""
    rng = np.random.default_rng(random_state)
    return rng.choice(n_index, min(n_index, 32 * ivf_lists(n_index)), replace=False)


def train_ivf(sample: np.ndarray, n_index: int):
    """The FAISS IVF index (trained, empty) for ``n_index`` descriptors, its centroids from ``sample``
    (call under one thread: the k-means then gives the same centroids on the driver of a Spark job)."""
    import faiss

    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(sample.shape[1]), sample.shape[1], ivf_lists(n_index))
    index.cp.min_points_per_centroid = 1  # no "too few points" warning on a sampled training set
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def descriptor_candidates(da: Descriptors, db: Descriptors, per_b: int, exclude_self: bool = False,
                          random_state: int = 0):
    """(ia, ib, votes): for each b image, its ``per_b`` a images with the most voting descriptors
    (at least ``MIN_DESC_VOTES``). A b descriptor votes for the image of each of its ``VOTE_K``
    nearest a descriptors that is clearly nearer (Lowe's ratio) than the farthest of them, once
    per image; descriptors of flat or repeated texture have many equally near neighbours and do
    not vote."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if len(da.desc) < 2 or not len(db.desc):
        return empty
    k = min(VOTE_K + (1 if exclude_self else 0), len(da.desc))
    d2, idx = _neighbours(da, db.desc, k, random_state)
    img_a = np.where(idx >= 0, da.owner[np.clip(idx, 0, None)], -1)
    img_b = np.repeat(db.owner[:, None], k, axis=1)
    return neighbour_votes(d2, img_a, img_b, per_b, exclude_self)


def neighbour_votes(d2: np.ndarray, img_a: np.ndarray, img_b: np.ndarray, per_b: int, exclude_self: bool = False):
    """(ia, ib, votes) of :func:`descriptor_candidates` from each query descriptor's ``k`` nearest
    index descriptors: ``d2`` their squared distances, ``img_a`` their images (-1: none), ``img_b``
    the query's image, all ``(n_query, k)``. Each ``b`` image's result depends on its own rows
    only (the Spark engine votes image by image)."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if exclude_self:
        d2 = np.where(img_a == img_b, np.inf, d2)
    finite = np.isfinite(d2) & (img_a >= 0)
    ref = np.where(finite, d2, -np.inf).max(axis=1, keepdims=True)  # the farthest real neighbour
    ok = (d2 < (RATIO ** 2) * ref) & (img_a >= 0)
    if not ok.any():
        return empty
    import pandas as pd

    votes = pd.DataFrame({"b": img_b[ok], "a": img_a[ok], "q": np.nonzero(ok)[0]}).drop_duplicates(["q", "a"])
    votes = votes.groupby(["b", "a"]).size().reset_index(name="n")
    votes = votes[votes["n"] >= MIN_DESC_VOTES].sort_values(["b", "n"], ascending=[True, False])
    votes = votes.groupby("b").head(per_b)
    return votes["a"].to_numpy(np.int64), votes["b"].to_numpy(np.int64), votes["n"].to_numpy(np.int64)


# ---- partial duplicates: overlapping tiles / crops of one larger image ----------------------

PARTIAL_DEFAULTS = {"min_votes": 4, "min_share": 0.1, "max_share": 0.9, "tolerance": 2,
                    "resized": False, "kp_candidates": 8, "min_inliers": 4, "null_samples": 200,
                    "min_score": 0.8, "threshold": None}


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
    if fa.empty or fb.empty:
        return EMPTY_OVERLAPS
    # codes repeated many times inside one split (flat skies, borders) are not evidence
    common = fa["code"].value_counts()
    fa = fa[fa["code"].map(common) <= MAX_CODE_REPEATS]
    m = fa.merge(fb, on="code")
    if m.empty:
        return EMPTY_OVERLAPS
    return best_offsets(offset_votes(m, tolerance), shapes_a, shapes_b, min_votes)


EMPTY_OVERLAPS = (np.zeros(0, np.int64),) * 2 + (np.zeros(0),) + (np.zeros(0, np.int64),) * 2
MAX_CODE_REPEATS = 3   # a code held this often or less in the earlier split counts as evidence


def offset_votes(m, tolerance: int = 2):
    """Votes per (ia, ib, offset bin) of matched codes ``m`` (columns ``ia, ib, code, ya, xa, yb,
    xb``): count ``n`` and median offset ``dy, dx``, sorted by (ia, ib, by, bx). Each image pair's
    votes depend on its own matches only (the Spark engine computes them pair by pair)."""
    q = max(1, 2 * tolerance + 1)
    m = m.copy()
    m["dy"] = m["ya"] - m["yb"]
    m["dx"] = m["xa"] - m["xb"]
    m["by"] = np.floor_divide(m["dy"] + tolerance, q)
    m["bx"] = np.floor_divide(m["dx"] + tolerance, q)
    votes = m.groupby(["ia", "ib", "by", "bx"]).agg(n=("code", "size"), dy=("dy", "median"), dx=("dx", "median"))
    return votes.reset_index()


def best_offsets(votes, shapes_a: np.ndarray, shapes_b: np.ndarray, min_votes: int = 4):
    """(ia, ib, share, dy, dx) from :func:`offset_votes`: per pair its most voted offset, if it has
    ``min_votes``; ``share`` from the two shapes (``shapes_a[ia]``, ``shapes_b[ib]``)."""
    votes = votes.sort_values("n", ascending=False).drop_duplicates(["ia", "ib"])
    votes = votes[votes["n"] >= min_votes]
    if votes.empty:
        return EMPTY_OVERLAPS
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


def _verify_all(kp_a, kp_b, shapes_a, shapes_b, thumbs_a, thumbs_b, ia, ib, opts, progress=False) -> list:
    from tqdm.auto import tqdm

    out = []
    for i, j in tqdm(list(zip(ia.tolist(), ib.tolist())), desc="verifying partial overlaps", unit="pair",
                     disable=not progress or len(ia) < 200, leave=False):
        out.append(verify_overlap(kp_a[i], kp_b[j], shapes_a[i], shapes_b[j], thumbs_a[i], thumbs_b[j],
                                  int(opts["min_inliers"])))
    return out


def mirrored(rows, shape) -> np.ndarray:
    """The ``partial_kp`` signature the left-right mirror image would have (no new detection).

    A mirror image shares every texture statistic with the picture but, the similarity transforms
    having no reflection, no overlap with it: the calibration's source of unrelated look-alikes.
    """
    from .image_align import MIRROR_PERM

    pts, desc = _unpack(rows)
    pts = pts.copy()
    pts[:, 0] = float(shape[1]) - 1.0 - pts[:, 0]
    out = np.clip(desc[:, MIRROR_PERM], 0, 255).astype(np.uint8)
    return np.concatenate([pts.astype(np.float32).view(np.uint8).reshape(-1, 8), out], axis=1)


def calibrate_partial(ctx, kps: list, shapes: np.ndarray, thumbs: list, digests: list, table: Descriptors, opts,
                      progress: bool = False) -> dict:
    """Threshold on the verification score, from training images mirrored against the training split.

    Each sampled training image (by content, as the augmented check's calibration), mirrored
    left-right, is searched and verified against the training split exactly as an evaluation image
    is; its null score is its best verified score (-1: no geometric hypothesis). A mirror image
    keeps the textures (brick, grass, the same photo's look-alike regions) but no overlap can
    explain it, so tiles that overlap inside the training split (cut before splitting) do not
    inflate the null. The threshold flags ``config.fpr`` of the null, floored at ``min_score``.
    """
    from .image import stable_sample

    if opts.get("threshold") is not None:
        return {"threshold": float(opts["threshold"]), "source": "given", "null": []}
    n = len(kps)
    if n < 3:
        return {"threshold": max(float(opts["min_score"]), 0.9), "source": "default (training split too small)",
                "null": []}
    rows = stable_sample(digests, min(n, int(opts["null_samples"])), ctx.config.random_state)
    mirror_kp = [mirrored(kps[j], shapes[j]) for j in rows]
    query = Descriptors(mirror_kp)
    query.owner = rows[query.owner]  # numbered as the training images they mirror
    ia, ib, _ = descriptor_candidates(table, query, int(opts["kp_candidates"]), exclude_self=True,
                                      random_state=ctx.config.random_state or 0)
    same = np.array([digests[i] is not None and digests[i] == digests[j] for i, j in zip(ia, ib)], dtype=bool)
    ia, ib = ia[~same], ib[~same]
    pos = {int(j): k for k, j in enumerate(rows)}
    kp_b = {int(j): mirror_kp[pos[int(j)]] for j in np.unique(ib)}
    th_b = {int(j): np.ascontiguousarray(np.asarray(thumbs[int(j)])[:, ::-1]) for j in np.unique(ib)}
    found = _verify_all(kps, kp_b, shapes, shapes, thumbs, th_b, ia, ib, opts, progress)
    best = {int(j): -1.0 for j in rows}
    for j, ev in zip(ib.tolist(), found):
        if ev is not None and opts["min_share"] <= ev["share"]:
            best[j] = max(best[j], ev["score"])
    null = np.array(list(best.values()), dtype=np.float64)
    q = calibrated_threshold(null, ctx.config.fpr, default=opts["min_score"])
    return {"threshold": float(max(q, opts["min_score"])),
            "source": f"{len(rows)} training images, mirrored, vs the training split", "null": null.tolist()}


# partial_kp / thumb_kp are read (and computed, one more decode) only when the any-scale path runs
@register_backend("partial_duplicate", "image", needs={"patches", "shape", "digest"})
def partial_duplicates(ctx, check) -> list:
    """Evaluation images that overlap part of a training image (tiles or crops of one larger image).

    Same-scale overlaps: corner-patch codes that match at one consistent offset. Any-scale
    overlaps (``resized``, OpenCV): SIFT descriptor neighbours vote for candidates, a RANSAC
    similarity transform plus the post-warp correlation (calibrated on the training split)
    verify them. The score is the overlapping share of the smaller image. Overlaps above
    ``max_share`` (0.9) are left to the exact and augmented checks; pairs they already linked are
    not reported again.
    """
    opts = {**PARTIAL_DEFAULTS, **ctx.config.options(check.name)}
    splits = ctx.splits
    progress = bool(ctx.config.progress)
    findings = []
    order = [splits.train] + splits.eval_names
    data = {}
    for n in order:
        valid = np.flatnonzero(ctx.valid(n))
        data[n] = (valid, [ctx.signatures.get(n, "patches")[i] for i in valid],
                   np.array([ctx.signatures.get(n, "shape")[i] for i in valid], dtype=np.int64).reshape(-1, 2))
    resized = bool(opts["resized"]) and have_opencv()
    kp, thumbs, tables, calib = {}, {}, {}, None
    if resized:
        ctx.signatures.ensure({"partial_kp", "thumb_kp"})  # one more pass over the images for both, not two
        for n in order:
            valid = data[n][0]
            kp[n] = [ctx.signatures.get(n, "partial_kp")[i] for i in valid]
            thumbs[n] = [ctx.signatures.get(n, "thumb_kp")[i] for i in valid]
        for n in order:
            tables[n] = Descriptors(kp[n])
        digests = ctx.signatures.get(splits.train, "digest")
        train_digests = [digests[i] for i in data[splits.train][0]]
        # kept in the cache under the training split's content, options and code (similarity/memo.py)
        calib = kept_value(ctx, "image/partial/calibration", train_digests,
                           (repr(sorted(opts.items())), ctx.config.fpr, ctx.config.random_state), PARTIAL_CODE,
                           lambda: calibrate_partial(ctx, kp[splits.train], data[splits.train][2],
                                                     thumbs[splits.train], train_digests, tables[splits.train],
                                                     opts, progress))
    for a_pos, a_name in enumerate(order):
        for b_name in order[a_pos + 1:]:
            va, pa, sa = data[a_name]
            vb, pb, sb = data[b_name]
            ia, ib, share, dy, dx = overlap_pairs(pa, pb, sa, sb, opts["min_votes"], opts["tolerance"])
            rows = patch_code_rows(ctx, a_name, b_name, va[ia], vb[ib], share, dy, dx, opts)
            if resized:
                # a tile overlaps several others: only the pairs already linked are skipped
                seen = {(r["a"], r["b"]) for r in rows} | _linked_pairs(ctx, a_name, b_name)
                ka, kb, _ = descriptor_candidates(tables[a_name], tables[b_name], int(opts["kp_candidates"]),
                                                  random_state=ctx.config.random_state or 0)
                todo = np.array([(int(va[i]), int(vb[j])) not in seen for i, j in zip(ka, kb)], dtype=bool)
                ka, kb = ka[todo], kb[todo]
                found = _verify_all(kp[a_name], kp[b_name], sa, sb, thumbs[a_name], thumbs[b_name], ka, kb,
                                    opts, progress)
                for i, j, ev in zip(ka.tolist(), kb.tolist(), found):
                    if (ev is None or ev["score"] < calib["threshold"]
                            or not opts["min_share"] <= ev["share"] <= opts["max_share"]
                            or (int(va[i]), int(vb[j])) in seen):
                        continue
                    rows.append({"a": int(va[i]), "b": int(vb[j]), "share": ev["share"], "scale": ev["scale"],
                                 "rotation": ev["rotation"], "offset": tuple(round(v, 1) for v in ev["offset"]),
                                 "method": "keypoints", "r": round(ev["r"], 4), "inliers": ev["inliers"]})
            f = partial_finding(ctx, check.name, a_name, b_name, rows, calib)
            if f is not None:
                findings.append(f)
    return findings


def patch_code_rows(ctx, a_name: str, b_name: str, ia, ib, share, dy, dx, opts) -> list:
    """The same-scale overlaps (sample indices ``ia`` of ``a_name``, ``ib`` of ``b_name``) kept for
    the finding: overlap share within [min_share, max_share], evaluation images not linked yet."""
    keep = (share >= opts["min_share"]) & (share <= opts["max_share"])
    already = _linked_eval(ctx, a_name, b_name)
    return [{"a": int(i), "b": int(j), "share": float(s), "scale": 1.0, "rotation": 0.0,
             "offset": (int(y), int(x)), "method": "patch codes", "r": None}
            for i, j, s, y, x in zip(ia[keep], ib[keep], share[keep], dy[keep], dx[keep])
            if int(j) not in already]


def partial_finding(ctx, check_name: str, a_name: str, b_name: str, rows: list, calib) -> Finding | None:
    """The ``partial_duplicate`` finding of split ``b_name`` against ``a_name`` from its overlap
    rows (also the Spark engine's); the pairs are added to ``ctx.links``."""
    splits = ctx.splits
    if not rows:
        return None
    gi_a = np.array([r["a"] for r in rows], dtype=np.int64)
    gi_b = np.array([r["b"] for r in rows], dtype=np.int64)
    share = np.array([r["share"] for r in rows], dtype=np.float64)
    pairs = make_pairs(a_name, gi_a, b_name, gi_b, check_name, share)
    ctx.links.append(pairs)
    count = len(np.unique(gi_b))
    n_b = len(splits[b_name])
    involves_train = a_name == splits.train
    n_resized = sum(r["method"] == "keypoints" for r in rows)
    extra = {"offsets": [list(r["offset"]) for r in rows],
             "overlap_shares": [round(float(r["share"]), 4) for r in rows],
             "scales": [round(float(r["scale"]), 4) for r in rows],
             "rotations": [round(float(r["rotation"]), 2) for r in rows],
             "methods": [r["method"] for r in rows],
             "correlations": [r["r"] for r in rows],
             "inliers": [r.get("inliers") for r in rows]}
    if calib is not None:
        extra["calibration"] = {"threshold": calib["threshold"], "source": calib["source"],
                                "null_quantiles": _quantiles(calib["null"])}
    scaled = (f" ({n_resized} of the pairs at another scale: crops resized apart)" if n_resized else "")
    return Finding(
        check=check_name,
        severity=ctx.severity(check_name, "critical" if involves_train else "warning"),
        title=f"{count} of {n_b} {b_name!r} images overlap part of a {a_name!r} image",
        detail=(f"{count} images in {b_name!r} ({count / max(n_b, 1):.1%}) share a region with a "
                f"{a_name!r} image (median overlap {np.median(share):.0%} of the smaller image){scaled}: "
                "tiles or crops cut from one larger picture and split apart."),
        remedy=("Split by source image (groups= with the id of the picture each tile was cut from), "
                "or re-split with lg.resplit()."),
        splits=(a_name, b_name), count=count, pairs=pairs, extra=extra)


def _quantiles(null) -> dict:
    v = np.asarray(null, dtype=np.float64)
    if not len(v):
        return {}
    return {f"q{int(q * 100)}": round(float(np.quantile(v, q)), 4) for q in (0.5, 0.9, 0.99)} | {"max": round(float(v.max()), 4)}


# ---- planted truth for tests and benchmarks ---------------------------------------------------

def crop_box(img_shape, rng: np.random.Generator, sizes=(96, 192)) -> tuple[int, int, int]:
    """A random square crop (y, x, side) of an image of ``img_shape`` with side in ``sizes``."""
    h, w = img_shape[:2]
    side = int(rng.integers(sizes[0], min(sizes[1], h, w) + 1))
    return int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side


def box_overlap(a: tuple, b: tuple) -> float:
    """Overlapping area of two (y, x, side) boxes / area of the smaller one."""
    oh = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ow = max(0, min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1]))
    return oh * ow / min(a[2], b[2]) ** 2


def cut(img: np.ndarray, box: tuple, factor: float = 1.0) -> np.ndarray:
    """The (y, x, side) crop of ``img`` resized by ``factor`` (bilinear)."""
    from PIL import Image

    y, x, s = box
    tile = np.ascontiguousarray(img[y:y + s, x:x + s])
    if factor == 1.0:
        return tile.copy()
    side = max(8, int(round(s * factor)))
    return np.asarray(Image.fromarray(tile).resize((side, side), Image.BILINEAR))


def resized_overlapping_crops(img: np.ndarray, rng: np.random.Generator, share=(0.25, 0.75), scale=(0.6, 1.5),
                              sizes=(96, 192)) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Two square crops of ``img`` overlapping by ``share`` (of the smaller one), each resized by a
    factor in ``scale``: (crop_a, crop_b, true share, true scale of b's pixels per a's pixel).

    >>> import numpy as np
    >>> img = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    >>> a, b, share, scale = resized_overlapping_crops(img, np.random.default_rng(1))
    >>> 0.25 <= share <= 0.75
    True
    """
    for _ in range(5000):
        ba, bb = crop_box(img.shape, rng, sizes), crop_box(img.shape, rng, sizes)
        s = box_overlap(ba, bb)
        if share[0] <= s <= share[1]:
            fa, fb = rng.uniform(*scale, 2)
            a, b = cut(img, ba, fa), cut(img, bb, fb)
            return a, b, float(s), (b.shape[0] / bb[2]) / (a.shape[0] / ba[2])
    raise ValueError(f"no two crops of an image of shape {img.shape} overlap by {share}")


def disjoint_crops(img: np.ndarray, rng: np.random.Generator, n: int = 2, scale=(0.6, 1.5),
                   sizes=(96, 192)) -> list[np.ndarray]:
    """``n`` square crops of ``img`` that do not overlap, each resized by a factor in ``scale``:
    hard negatives when ``img`` is a texture (brick, grass, gravel)."""
    boxes: list = []
    for _ in range(5000 * n):
        if len(boxes) == n:
            break
        box = crop_box(img.shape, rng, sizes)
        if all(box_overlap(box, o) == 0 for o in boxes):
            boxes.append(box)
    if len(boxes) < n:
        raise ValueError(f"no {n} disjoint crops fit in an image of shape {img.shape}")
    return [cut(img, b, float(rng.uniform(*scale))) for b in boxes]
