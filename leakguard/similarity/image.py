"""Image backends of the similarity checks: augmented, partial and semantic duplicates.

Pipeline (each stage cheap enough for the next one's input):

1. signatures, computed once per image and cached: dihedral perceptual hashes, window hashes,
   a 32 x 32 grey thumbnail, corner-patch codes (``leakguard.signatures.image``);
2. candidates, never all pairs: multi-index Hamming search of the hashes
   (``leakguard.search.hamming``) plus the nearest thumbnails under the 8 dihedral transforms
   (``leakguard.search.knn``), a few per evaluation image;
3. verification of each candidate: alignment by dihedral transform, small rotation, crop window
   and shift, scored by masked correlation (``leakguard.similarity.image_align``);
4. a threshold calibrated on the training split itself: the same verification applied to each
   sampled training image and its nearest other training images gives the scores unrelated
   look-alikes reach; the threshold lets through ``config.fpr`` of them.

Options (``AuditConfig(check_options={"augmented_duplicate": {...}})``): ``radius`` (Hamming
radius of the candidate search, default 10), ``k`` (nearest thumbnails per transform, default 3),
``null_samples`` (training images the calibration verifies, default 200), ``null_rank`` ("auto":
1, the nearest other training image, unless more than 5 % of the sampled training images have a
near-copy (score >= ``accept``) inside the training split -- data augmented before splitting --
then 2, the second best, so those copies do not inflate the threshold), ``min_score`` (a floor
under the calibrated threshold, default 0.6), ``threshold`` (skip calibration).
"""
from __future__ import annotations

import numpy as np

from ..checks.similarity import register_backend
from ..report import Finding, make_pairs
from ..search.hamming import MultiIndexHash
from ..search.knn import nearest
from ..signatures import image as _image_signatures  # noqa: F401  (registers the image signatures)
from ..signatures.image import THUMB, dihedral
from .calibration import calibrated_threshold
from .image_align import (
    Match, _dihedral_perms, _halve, prepare, standardise, verify_pair, whole_frame_scores)

AUGMENTED_NEEDS = {"phash", "phash_windows", "thumb", "shape", "digest"}
CONTAMINATED = 0.05  # share of training images with a near-copy in training that switches the null to rank 2
TINY = 16  # images this small (sides in pixels) are checked for flips, shifts and photometric changes only
DEFAULTS = {"radius": 10, "k": 3, "null_samples": 200, "null_rank": "auto", "min_score": 0.6,
            "max_candidates": 5, "accept": 0.97}


def fourier_descriptor(images: np.ndarray, keep: int = 6) -> np.ndarray:
    """(N, h, w) -> unit rows of |FFT| at the lowest ``keep`` frequencies (DC left out)."""
    if len(images) == 0:
        return np.zeros((0, keep * (2 * keep - 1)), np.float32)
    f = np.abs(np.fft.rfft2(images))  # (N, h, w//2+1); rows wrap negative frequencies
    rows = np.r_[0:keep, -keep + 1:0]
    mag = f[:, rows][:, :, :keep].reshape(len(images), -1)
    mag[:, 0] = 0.0
    mag = np.sqrt(mag)
    return (mag / np.maximum(np.linalg.norm(mag, axis=1, keepdims=True), 1e-9)).astype(np.float32)


class ImageSplitData:
    """The image signatures of one split as arrays, for the valid (readable) samples only."""

    def __init__(self, ctx, split: str):
        store = ctx.signatures
        self.name = split
        valid = np.flatnonzero(ctx.valid(split))
        self.index = valid                                    # position -> sample index in the split
        get = lambda kind: [store.get(split, kind)[i] for i in valid]  # noqa: E731
        self.digest = get("digest")
        self.shape = np.array(get("shape"), dtype=np.int64).reshape(len(valid), 2)
        self.phash = np.array(get("phash"), dtype=np.uint64).reshape(len(valid), 8)
        self.windows = np.array(get("phash_windows"), dtype=np.uint64).reshape(len(valid), -1)
        thumbs = np.array(get("thumb"), dtype=np.uint8).reshape(len(valid), THUMB, THUMB)
        self.prepared = np.stack([prepare(t) for t in thumbs]) if len(thumbs) else np.zeros((0, THUMB, THUMB), np.float32)
        self.z = standardise(self.prepared) if len(thumbs) else np.zeros((0, THUMB * THUMB), np.float32)
        small = np.stack([_halve(p) for p in self.prepared]) if len(thumbs) else np.zeros((0, 16, 16), np.float32)
        self.z16 = standardise(small) if len(thumbs) else np.zeros((0, 256), np.float32)
        self.small = small
        self._spectra: dict[int, np.ndarray] = {}

    def spectra(self, d: int = 0) -> np.ndarray:
        """Shift-tolerant descriptors: low-frequency Fourier magnitudes of the 16 x 16 thumbnails
        under dihedral transform ``d`` (a shifted copy has the same magnitudes)."""
        if d not in self._spectra:
            self._spectra[d] = fourier_descriptor(np.stack([dihedral(p, d) for p in self.small])
                                                  if len(self.small) else self.small)
        return self._spectra[d]

    def __len__(self) -> int:
        return len(self.index)


def _options(ctx, check: str) -> dict:
    opts = dict(DEFAULTS)
    opts.update(ctx.config.options(check))
    return opts


def candidate_pairs(a: ImageSplitData, b: ImageSplitData, radius: int, k: int, max_candidates: int,
                    same_split: bool = False, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (a position, b position) pairs: hash matches and nearest thumbnails; deduplicated.

    ``same_split``: a and b are the same split; self pairs are dropped.
    """
    ia, ib, rank = [], [], []
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # b is a dihedral transform of a (codes of a under all 8 transforms vs b's identity code),
    # or b is a crop of a (a's window codes), possibly transformed (b's 8 codes vs a's windows)
    rep = lambda n, m: np.repeat(np.arange(n), m)  # noqa: E731  (owner of each flattened code)
    searches = (  # (index codes, their owners, query codes, their owners, index side is a)
        (a.phash.ravel(), rep(len(a), 8), b.phash[:, 0], np.arange(len(b)), True),
        (a.windows.ravel(), rep(len(a), a.windows.shape[1]), b.phash.ravel(), rep(len(b), 8), True),
        (b.windows.ravel(), rep(len(b), b.windows.shape[1]), a.phash.ravel(), rep(len(a), 8), False),
    )
    for index_codes, index_owner, query_codes, query_owner, index_is_a in searches:
        if len(index_codes) == 0 or len(query_codes) == 0:
            continue
        qi, ii, dist = MultiIndexHash(index_codes, radius=radius).query(query_codes, radius, progress=progress)
        if index_is_a:
            ia.append(index_owner[ii])
            ib.append(query_owner[qi])
        else:
            ia.append(query_owner[qi])
            ib.append(index_owner[ii])
        rank.append(dist.astype(np.float32) / 64.0)
    # nearest thumbnails, b under each dihedral transform against a as it is
    perms = _dihedral_perms(16)
    kk = min(k, len(a))
    for d in range(8):
        sims, idx = nearest(a.z16, b.z16[:, perms[d]], k=kk + (1 if same_split else 0), metric="cosine")
        rows = np.repeat(np.arange(len(b)), idx.shape[1])
        ia.append(idx.ravel())
        ib.append(rows)
        rank.append((1.0 - sims.ravel()) / 2.0)
    # shifted copies: Fourier magnitudes ignore where the content sits
    for d in range(8):
        sims, idx = nearest(a.spectra(0), b.spectra(d), k=kk + (1 if same_split else 0), metric="cosine")
        ia.append(idx.ravel())
        ib.append(np.repeat(np.arange(len(b)), idx.shape[1]))
        rank.append((1.0 - sims.ravel()) / 2.0)
    ia = np.concatenate(ia).astype(np.int64)
    ib = np.concatenate(ib).astype(np.int64)
    rank = np.concatenate(rank)
    keep = ia >= 0
    if same_split:
        keep &= ia != ib
    ia, ib, rank = ia[keep], ib[keep], rank[keep]
    # best-ranked first, then keep the first occurrence of each pair, then cap per b sample
    order = np.lexsort((rank, ib))
    ia, ib, rank = ia[order], ib[order], rank[order]
    key = ib * max(len(a), 1) + ia
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    ia, ib, rank = ia[first], ib[first], rank[first]
    order = np.lexsort((rank, ib))
    ia, ib = ia[order], ib[order]
    pos_in_group = np.arange(len(ib)) - np.searchsorted(ib, ib, side="left")
    keep = pos_in_group < max_candidates
    return ia[keep], ib[keep]


def verify_candidates(a: ImageSplitData, b: ImageSplitData, ia, ib, opts, progress=False) -> list[Match]:
    """Verify candidate pairs: a vectorised same-framing pass, then full alignment for the rest."""
    from tqdm.auto import tqdm

    whole = whole_frame_scores(a.z, b.z, ia, ib)
    best_d = whole.argmax(axis=1)
    best_r = whole[np.arange(len(ia)), best_d] if len(ia) else np.zeros(0)
    out: list[Match] = [Match(float(r), int(d)) for r, d in zip(best_r, best_d)]
    todo = np.flatnonzero(best_r < opts["accept"])
    # crops and small rotations of images a few pixels wide cannot be told from look-alikes
    tiny = (a.shape[ia].max(axis=1) <= TINY) | (b.shape[ib].max(axis=1) <= TINY) if len(ia) else np.zeros(0, bool)
    for k in tqdm(todo, desc="aligning image pairs", unit="pair", disable=not progress or len(todo) < 200,
                  leave=False):
        # tiny images: the 2 best dihedral transforms of the same-framing pass, no search over them
        kw = {"crops": False, "angles": (0.0,), "dihedrals": np.argsort(-whole[k])[:2]} if tiny[k] else {}
        m = verify_pair(a.prepared[ia[k]], b.prepared[ib[k]], prepared=True, accept=opts["accept"],
                        reject_below=opts["min_score"] - 0.2, **kw)
        if m.score > out[k].score:
            out[k] = m
    return out


def calibrate(ctx, train: ImageSplitData, opts, progress=False) -> dict:
    """Threshold from verification scores of training images against their nearest other ones."""
    rng = np.random.default_rng(ctx.config.random_state)
    n = len(train)
    if n < 3:
        return {"threshold": max(opts["min_score"], 0.9), "null": [], "source": "default (training split too small)"}
    rows = np.sort(rng.choice(n, size=min(n, int(opts["null_samples"])), replace=False))
    sub = _Subset(train, rows)
    ia, ib = candidate_pairs(train, sub, opts["radius"], opts["k"], opts["max_candidates"], progress=False)
    ia_full = ia
    keep = ia_full != rows[ib]
    # exact copies inside the training split are not "unrelated" pairs
    keep &= np.array([train.digest[i] != train.digest[rows[j]] for i, j in zip(ia_full, ib)], dtype=bool)
    ia, ib = ia[keep], ib[keep]
    matches = verify_candidates(train, sub, ia, ib, opts, progress)
    scores = np.array([m.score for m in matches], dtype=np.float64)
    ranked = [np.sort(scores[ib == j])[::-1] for j in range(len(rows))]
    rank = opts["null_rank"]
    contaminated = float(np.mean([len(s) and s[0] >= opts["accept"] for s in ranked])) if ranked else 0.0
    if rank == "auto":
        # a training split where many images have a near-copy of their own (augmented before
        # splitting) would put those copies in the null; score against the second best instead
        rank = 2 if contaminated > CONTAMINATED else 1
    rank = int(rank)
    null = np.asarray([s[rank - 1] for s in ranked if len(s) >= rank])
    fpr = float(opts.get("fpr", ctx.config.fpr))
    t = calibrated_threshold(null, fpr, default=0.9) if len(null) else 0.9
    return {"threshold": float(min(max(t, opts["min_score"]), 1.0)), "null": null,
            "source": (f"calibrated on {len(null)} training images (rank-{rank} neighbour; {contaminated:.0%} "
                       f"of them have a near-copy inside the training split), fpr {fpr:g}")}


class _Subset:
    """Rows of an ImageSplitData (views for the calibration)."""

    def __init__(self, data: ImageSplitData, rows: np.ndarray):
        self.phash = data.phash[rows]
        self.windows = data.windows[rows]
        self.prepared = data.prepared[rows]
        self.z = data.z[rows]
        self.z16 = data.z16[rows]
        self.digest = [data.digest[i] for i in rows]
        self.shape = data.shape[rows]
        self.small = data.small[rows]
        self._spectra = {d: v[rows] for d, v in data._spectra.items()}
        self.index = data.index[rows]

    spectra = ImageSplitData.spectra

    def __len__(self) -> int:
        return len(self.index)


def _exact_pairs(ctx) -> set[tuple[str, int, str, int]]:
    links = ctx.all_links()
    ex = links[links["check"] == "exact_duplicate"]
    return set(zip(ex["split_a"], ex["index_a"].astype(int), ex["split_b"], ex["index_b"].astype(int)))


def _progress(ctx) -> bool:
    return ctx.config.progress is not False


@register_backend("augmented_duplicate", "image", needs=AUGMENTED_NEEDS)
def augmented_duplicates(ctx, check) -> list:
    """Evaluation images that are augmented copies (flips, rotations, crops, photometric) of others."""
    opts = _options(ctx, check.name)
    progress = _progress(ctx)
    splits = ctx.splits
    data = {n: ImageSplitData(ctx, n) for n in splits}
    thresholds = opts.get("threshold") or ctx.config.thresholds.get(check.name)
    calib = ctx.shared.get("image_calibration")
    if thresholds is None and calib is None:
        calib = calibrate(ctx, data[splits.train], opts, progress)
        ctx.shared["image_calibration"] = calib
    threshold = float(thresholds) if thresholds is not None else calib["threshold"]
    exact = _exact_pairs(ctx)
    findings = []
    order = [splits.train] + splits.eval_names
    for a_pos, a_name in enumerate(order):
        for b_name in order[a_pos + 1:]:
            A, B = data[a_name], data[b_name]
            ia, ib = candidate_pairs(A, B, opts["radius"], opts["k"], opts["max_candidates"], progress=progress)
            if len(ia):
                same = np.array([A.digest[i] == B.digest[j] for i, j in zip(ia, ib)], dtype=bool)
                ia, ib = ia[~same], ib[~same]
            matches = verify_candidates(A, B, ia, ib, opts, progress)
            scores = np.array([m.score for m in matches])
            hit = np.flatnonzero(scores >= threshold) if len(scores) else np.zeros(0, np.int64)
            # one pair per evaluation image: its best explanation
            best: dict[int, int] = {}
            for k in hit:
                if ib[k] not in best or scores[k] > scores[best[ib[k]]]:
                    best[ib[k]] = k
            ks = np.array(sorted(best.values(), key=lambda k: (ib[k], ia[k])), dtype=np.int64)
            ks = np.array([k for k in ks if (a_name, int(A.index[ia[k]]), b_name, int(B.index[ib[k]])) not in exact],
                          dtype=np.int64)
            if not len(ks):
                continue
            idx_a, idx_b = A.index[ia[ks]], B.index[ib[ks]]
            pairs = make_pairs(a_name, idx_a, b_name, idx_b, check.name, scores[ks])
            ctx.links.append(pairs)
            count = len(np.unique(idx_b))
            n_b = len(splits[b_name])
            involves_train = a_name == splits.train
            transforms = [matches[k].describe() for k in ks]
            kinds = _summarise(transforms)
            findings.append(Finding(
                check=check.name,
                severity=ctx.severity(check.name, "critical" if involves_train else "warning"),
                title=f"{count} of {n_b} {b_name!r} images are augmented copies of {a_name!r} images",
                detail=(f"{count} images in {b_name!r} ({count / max(n_b, 1):.1%}) are {a_name!r} images "
                        f"after flips, rotations, crops or photometric changes ({kinds}); each pair aligns "
                        f"with correlation >= {threshold:.3f} ({calib['source'] if calib and thresholds is None else 'threshold set by the user'})."
                        + (" A model scored on them has seen them in training." if involves_train else "")),
                remedy=("Augment after splitting, never before; re-split with lg.resplit() so that every "
                        "copy of an image stays in one split."),
                splits=(a_name, b_name), count=count, pairs=pairs,
                extra={"threshold": threshold, "transforms": transforms,
                       "calibration": None if calib is None else {
                           "source": calib["source"], "null_quantiles": _quantiles(calib["null"])}}))
    return findings


def _quantiles(null) -> dict:
    null = np.asarray(null, dtype=np.float64)
    if not len(null):
        return {}
    return {f"q{int(q * 100)}": float(np.quantile(null, q)) for q in (0.5, 0.9, 0.99, 1.0)}


def _summarise(transforms: list[str]) -> str:
    from collections import Counter

    parts = Counter(p.split(" ")[0] if not p.startswith("same") else "photometric only"
                    for t in transforms for p in t.split(", "))
    return ", ".join(f"{name} {n}" for name, n in parts.most_common(6))
