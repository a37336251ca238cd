"""Image backends of the similarity checks: augmented, partial and semantic duplicates.

Pipeline (each stage cheap enough for the next one's input):

1. signatures, computed once per image and cached: dihedral perceptual hashes, window hashes,
   a 32 x 32 grey thumbnail, corner-patch codes (``leakguard.signatures.image``);
2. candidates, never all pairs: multi-index Hamming search of the hashes
   (``leakguard.search.hamming``) plus the nearest thumbnails under the 8 dihedral transforms
   (``leakguard.search.knn``), a few per evaluation image;
3. verification of each candidate: same-framing correlation under the 8 dihedral transforms for
   all, then keypoints (OpenCV SIFT + RANSAC affine + post-warp correlation) for the rest, or the
   numpy alignment bank without OpenCV and for tiny images (``leakguard.similarity.image_align``);
4. a threshold calibrated on the training split itself: the same verification applied to each
   sampled training image and its nearest other training images gives the scores unrelated
   look-alikes reach; the threshold lets through ``config.fpr`` of them.

With ``AuditConfig(cache_dir=...)`` each costly verification (keypoints, alignment bank) is kept
with the signatures, keyed by the two images' digests (:class:`VerifiedPairs`), and the
calibration samples training images by content (:func:`stable_sample`): a re-audit after adding
images verifies only the pairs that involve a new image, with the same findings as without cache.

Options (``AuditConfig(check_options={"augmented_duplicate": {...}})``): ``radius`` (Hamming
radius of the candidate search, default 10), ``k`` (nearest thumbnails per transform, default 3),
``null_samples`` (training images the calibration verifies, default 200), ``null_rank`` ("auto":
1, the nearest other training image, unless more than 5 % of the sampled training images have a
near-copy (score >= ``accept``) inside the training split -- data augmented before splitting --
then 2, the second best, so those copies do not inflate the threshold), ``min_score`` (a floor
under the calibrated threshold, default 0.8: copies under the augmentations of the benchmark score
>= 0.93 after alignment, unrelated pairs with a few agreeing keypoints up to ~0.94), ``threshold`` (skip calibration), ``gate_share``
(default 0.02) and ``copy_levels`` ("default": :data:`COPY_LEVELS`): the costly verification runs
only on candidate pairs whose cheap evidence -- 16 px correlation, crop-window correlation,
rotated-disc cosine, hash bit distance -- reaches a level that at most ``gate_share`` of training
images reach with unrelated neighbours ("unusual here") or the level augmented copies reach
("looks like a copy"); the same screen applies to the calibration, so the threshold accounts for
it. On distinct pictures almost nothing is verified; on look-alikes (textures) every pair that
could be a copy is. ``copy_levels=None`` keeps only the share; ``gate_share=None`` verifies every
candidate. A training split full of near-copies of itself (rank-2 null: video frames, data
augmented before splitting) is gated by the null alone at ``gate_share_contaminated`` (0.2).
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
from .image_memo import kept_calibration, kept_pairs, rank_capped
from .image_align import (
    BLUR_MISMATCH, BLURRED_DETECTION, COARSE_MATCHES, DISC_ANGLES, MIN_INLIERS, Match, _dihedral_perms, _halve,
    best_hypothesis, coarse_keypoints, coarse_matches, disc_descriptors, have_opencv, fine_detail, keypoint_hypotheses,
    keypoint_features, noise_factors, prepare, rotation_match, standardise, verify_keypoints, verify_pair,
    whole_frame_scores)
from .image_partial import (  # noqa: F401  (re-exported: the partial backend lives there)
    PARTIAL_DEFAULTS, overlap_pairs, partial_duplicates)

AUGMENTED_NEEDS = {"phash", "phash_windows", "thumb", "shape", "digest"}
CONTAMINATED = 0.05  # share of training images with a near-copy in training that switches the null to rank 2
TINY = 16  # images this small (sides in pixels) are checked for flips, shifts and photometric changes only
DEFAULTS = {"radius": 10, "k": 3, "null_samples": 200, "null_rank": "auto", "min_score": 0.8,
            "max_candidates": 5, "accept": 0.97, "align_top": 2, "gate_share": 0.02,
            "copy_levels": "default", "gate_share_contaminated": 0.2, "align_share": 0.02}
# align_top: full alignment (crops, small rotations: the costly part) only for the best
# same-framing candidates of each image; the others keep their same-framing score
# gate_share_contaminated: 0.5 until session 5. On video frames (rank-2 null, threshold ~0.9995) the
# frame pairs it let through scored 0.5-0.97 by keypoints and decided nothing; at 0.2, 2222 YOLO
# frames verify 143 pairs instead of 265 (exact + augmented audit 13.1 -> 9.2 s CPU) with the same
# findings and threshold; the demo, ultralytics tests and bench seeds 0-2 are unchanged


def _to_side(img: np.ndarray, side: int) -> np.ndarray:
    while img.shape[0] > side:
        img = _halve(img)
    return img


def _stack_to_side(stack: np.ndarray, side: int) -> np.ndarray:
    """``_to_side`` of each square image of an (N, n, n) stack, in one reduction per halving (bit-equal
    to the per-image loop: the same 2 x 2 means, checked on random stacks)."""
    while stack.shape[1] > side:
        n = stack.shape[1] // 2 * 2
        s = stack[:, :n, :n]
        # the pairwise order numpy's mean over axes (2, 4) adds in, written out: bit-equal to it and
        # to _to_side (tests/test_cache_incremental.py), ~7x less CPU (0.06 -> 0.009 s per 926 images)
        stack = ((s[:, 0::2, 0::2] + s[:, 0::2, 1::2]) + (s[:, 1::2, 0::2] + s[:, 1::2, 1::2])) / np.float32(4)
    return stack


def _stack_dihedral(stack: np.ndarray, d: int) -> np.ndarray:
    """``np.stack([dihedral(p, d) for p in stack])`` for an (N, H, W) stack, as one C-contiguous copy."""
    out = stack
    if d & 1:
        out = out[:, :, ::-1]
    if d & 2:
        out = out[:, ::-1]
    if d & 4:
        out = np.swapaxes(out, 1, 2)
    return np.ascontiguousarray(out)


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


class _ByPosition:
    def __init__(self, lazy, index):
        self.lazy, self.index = lazy, index

    def __getitem__(self, pos):
        return self.lazy[int(self.index[int(pos)])]

    def __len__(self):
        return len(self.index)

    def fetch(self, positions):
        self.lazy.fetch([int(self.index[int(p)]) for p in positions])


def _prefetch_thumbs(data, positions) -> None:
    """Compute the keypoint thumbnails of these images in one pass (reading threads)."""
    parent = getattr(data, "_parent", None)
    if parent is not None:
        positions = [int(data._rows[int(p)]) for p in positions]
        data = parent
    data.thumb_kp.fetch(sorted(set(int(p) for p in positions)))


class ImageSplitData:
    """The image signatures of one split as arrays, for the valid (readable) samples only.

    ``keypoint_memo``: a dict shared by the splits of one check, so that SIFT runs once per image
    *content* (an evaluation image copied from a training image, or a file repeated inside a
    split, has the same digest and so the same thumbnail and keypoints); None: one per split.
    """

    def __init__(self, ctx, split: str, keypoint_memo: dict | None = None):
        store = ctx.signatures
        self.name = split
        valid = np.flatnonzero(ctx.valid(split))
        self.index = valid                                    # position -> sample index in the split
        get = lambda kind: [store.get(split, kind)[i] for i in valid]  # noqa: E731
        self.digest = get("digest")
        self.shape = np.array(get("shape"), dtype=np.int64).reshape(len(valid), 2)
        self.phash = np.array(get("phash"), dtype=np.uint64).reshape(len(valid), 8)
        self.windows = np.array(get("phash_windows"), dtype=np.uint64).reshape(len(valid), -1)
        self._thumbs = np.array(get("thumb"), dtype=np.uint8).reshape(len(valid), THUMB, THUMB)
        # prepared / z / small / z16 are made on first use (properties below): a re-audit that reads
        # every evaluation image back from the cache (similarity/image_memo.py) never needs them
        self._prepared = self._z = self._small = self._z16 = None
        self._spectra: dict[int, np.ndarray] = {}
        # 128 px thumbnails for the keypoint verification; keypoints found lazily, once per image
        lazy = store.lazy(split, "thumb_kp")  # computed for the images that reach verification only
        self.thumb_kp = _ByPosition(lazy, valid)
        self._keypoints: dict = {}
        self._by_content: dict = {} if keypoint_memo is None else keypoint_memo
        self._discs: np.ndarray | None = None
        self._noise: np.ndarray | None = None

    @property
    def prepared(self) -> np.ndarray:
        """(N, THUMB, THUMB) band-passed float32 thumbnails (image_align.prepare)."""
        if self._prepared is None:
            self._prepared = (prepare(self._thumbs) if len(self._thumbs)
                              else np.zeros((0, THUMB, THUMB), np.float32))
        return self._prepared

    @property
    def z(self) -> np.ndarray:
        """(N, THUMB * THUMB) standardised rows of ``prepared``."""
        if self._z is None:
            self._z = (standardise(self.prepared) if len(self._thumbs)
                       else np.zeros((0, THUMB * THUMB), np.float32))
        return self._z

    @property
    def small(self) -> np.ndarray:
        """(N, 16, 16) ``prepared`` halved down to 16 px (2 x 2 means)."""
        if self._small is None:
            self._small = _stack_to_side(self.prepared, 16) if len(self._thumbs) else np.zeros((0, 16, 16), np.float32)
        return self._small

    @property
    def z16(self) -> np.ndarray:
        """(N, 256) standardised rows of ``small``."""
        if self._z16 is None:
            self._z16 = standardise(self.small) if len(self._thumbs) else np.zeros((0, 256), np.float32)
        return self._z16

    @property
    def noise(self) -> np.ndarray:
        """(N,) noise corrections of the same-framing correlation (image_align.noise_factors); 1 for
        tiny images (upscaled blocks read as noise)."""
        if self._noise is None:
            f = noise_factors(self._thumbs, self.prepared)
            self._noise = np.where(self.shape.max(axis=1) <= TINY, np.float32(1.0), f) if len(f) else f
        return self._noise

    def discs(self) -> np.ndarray:
        """(N, len(DISC_ANGLES), D) rotated central-disc descriptors (candidates of small rotations)."""
        if self._discs is None:
            self._discs = disc_descriptors(self.prepared, DISC_ANGLES)
        return self._discs

    def keypoints(self, pos: int, blurred: bool = False):
        """SIFT keypoints of the image at ``pos`` (computed on first use, then kept); ``blurred``:
        detected after a blur of ``BLURRED_DETECTION`` (what a blurred copy would show)."""
        key = (int(pos), bool(blurred))
        if key not in self._keypoints:
            self._keypoints[key] = self._detected(key, lambda: keypoint_features(
                self.thumb_kp[key[0]], BLURRED_DETECTION if blurred else 0.0))
        return self._keypoints[key]

    def coarse_keypoints(self, pos: int):
        """SIFT keypoints of the image at ``pos`` at 64 px (the keypoint verification's prefilter)."""
        key = (int(pos), "coarse")
        if key not in self._keypoints:
            self._keypoints[key] = self._detected(key, lambda: coarse_keypoints(self.thumb_kp[key[0]]))
        return self._keypoints[key]

    def _detected(self, key: tuple, detect):
        """``detect()``, or the keypoints already found on an image of the same content (digest)."""
        digest = self.digest[key[0]]
        if digest is None:
            return detect()
        content = (bytes(digest), key[1])
        if content not in self._by_content:
            self._by_content[content] = detect()
        return self._by_content[content]

    def spectra(self, d: int = 0) -> np.ndarray:
        """Shift-tolerant descriptors: low-frequency Fourier magnitudes of the 16 x 16 thumbnails
        under dihedral transform ``d`` (a shifted copy has the same magnitudes)."""
        if d not in self._spectra:
            # the transform of the whole stack at once: the same array as stacking each image's
            # dihedral(p, d) (values copied, no arithmetic), without 8 x N Python calls per split
            self._spectra[d] = fourier_descriptor(_stack_dihedral(self.small, d)
                                                  if len(self.small) else self.small)
        return self._spectra[d]

    def __len__(self) -> int:
        return len(self.index)


def _options(ctx, check: str) -> dict:
    opts = dict(DEFAULTS)
    opts.update(ctx.config.options(check))
    return opts


def candidate_pairs(a: ImageSplitData, b: ImageSplitData, radius: int, k: int, max_candidates: int,
                    same_split: bool = False, progress: bool = False,
                    self_index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (a position, b position) pairs: hash matches and nearest thumbnails; deduplicated.

    ``same_split``: a and b are the same split; self pairs are dropped. ``self_index``: b's rows
    are images of a, b[j] being a[self_index[j]] (a calibration sample); those self pairs are dropped.

    A re-audit whose training split only gained images keeps an evaluation image's candidates when no
    added image can enter these searches: image_memo._search_floors / _added_can_enter mirror the
    sources below (hash searches, kNN sources, crop window); a new source must be added there too.
    """
    if same_split:
        self_index = np.arange(len(b))
    same_split = self_index is not None
    ia, ib, rank, source = [], [], [], []
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
        source.append(np.zeros(len(qi), np.int64))
    # nearest thumbnails, b under each dihedral transform against a as it is
    perms = _dihedral_perms(16)
    kk = min(k, len(a))
    for d in range(8):
        sims, idx = nearest(a.z16, b.z16[:, perms[d]], k=kk + (1 if same_split else 0), metric="cosine")
        rows = np.repeat(np.arange(len(b)), idx.shape[1])
        ia.append(idx.ravel())
        ib.append(rows)
        rank.append((1.0 - sims.ravel()) / 2.0)
        source.append(np.full(idx.size, 1, np.int64))
    # shifted copies: Fourier magnitudes ignore where the content sits
    for d in range(8):
        sims, idx = nearest(a.spectra(0), b.spectra(d), k=kk + (1 if same_split else 0), metric="cosine")
        ia.append(idx.ravel())
        ib.append(np.repeat(np.arange(len(b)), idx.shape[1]))
        rank.append((1.0 - sims.ravel()) / 2.0)
        source.append(np.full(idx.size, 2, np.int64))
    # small rotations and crops: b's central disc turned by a few angles vs a's disc as it is
    disc_a, disc_b = a.discs(), b.discs()
    for h in range(disc_b.shape[1]):
        sims, idx = nearest(disc_a[:, 0], disc_b[:, h], k=kk + (1 if same_split else 0), metric="cosine")
        ia.append(idx.ravel())
        ib.append(np.repeat(np.arange(len(b)), idx.shape[1]))
        rank.append((1.0 - sims.ravel()) / 2.0)
        source.append(np.full(idx.size, 3, np.int64))
    ia = np.concatenate(ia).astype(np.int64)
    ib = np.concatenate(ib).astype(np.int64)
    rank = np.concatenate(rank)
    source = np.concatenate(source)
    keep = ia >= 0
    if same_split:
        keep &= ia != np.asarray(self_index, np.int64)[ib]
    ia, ib, rank, source = ia[keep], ib[keep], rank[keep], source[keep]
    # the best match of each source (hash codes, thumbnails, Fourier magnitudes, discs) comes first for every evaluation image: the
    # sources' similarities live on different scales (Fourier magnitudes are positive, their
    # cosines crowd near 1) and one source would otherwise fill every slot (measured: the true
    # source of rotated / cropped copies ranked 6th-9th, behind Fourier look-alikes); then one
    # entry per pair, best-ranked first, at most max_candidates per b sample. The re-audit's merge
    # ranks its kept entries with the same function, so both give the same order, ties included.
    ia, ib = rank_capped(ia, ib, rank, source, len(a), max_candidates)
    # crops: b's 16 px thumbnail (as it is) vs a's crop-window renderings. A crop's hash can sit
    # 14-22 bits from every code of its source and its thumbnail and disc look like anything else,
    # while its best window still ranks its source first (bench seeds 1 and 2: a crop and a
    # grayscale+crop whose source was no candidate). Its best window's owner is one extra
    # candidate after the capped ones, so it displaces none of them (as a capped source it
    # pushed a true copy out of the demo's candidates). Identity only: 8x cheaper; flipped crops
    # keep the hash search.
    win_a = window_descriptors(a)
    if win_a.shape[1] and len(b):
        n_win = win_a.shape[1]
        k_win = min(n_win + 1 if same_split else 1, win_a.shape[0] * n_win)
        sims, idx = nearest(win_a.reshape(-1, win_a.shape[2]), b.z16, k=k_win, metric="cosine")
        owner = np.where(idx >= 0, idx // n_win, -1)
        if same_split:  # the first window not of the sample itself
            owner = np.where(owner == np.asarray(self_index, np.int64)[:, None], -1, owner)
        first_other = np.argmax(owner >= 0, axis=1)
        wa = owner[np.arange(len(b)), first_other]
        wb = np.arange(len(b))
        # only where that window beats every kept candidate's whole 16 px thumbnail: a crop whose
        # source was missed (window r 0.47-0.56 vs r16 <= 0.21 for the kept look-alikes). Video
        # frames keep near-copies as candidates already; without this their window neighbours,
        # other frames, added 40 % more keypoint verifications for the same findings (YOLO bench)
        best_kept = np.full(len(b), -np.inf, np.float32)
        if len(ia):
            np.maximum.at(best_kept, ib, whole_frame_scores(a.z16, b.z16, ia, ib).max(axis=1))
        new = (wa >= 0) & (sims[np.arange(len(b)), first_other] > best_kept)
        new[wb[new]] &= ~np.isin(wb[new] * max(len(a), 1) + wa[new], ib * max(len(a), 1) + ia)
        if new.any():
            ia, ib = np.r_[ia, wa[new]], np.r_[ib, wb[new]]
            order = np.argsort(ib, kind="stable")  # each image's extra candidate after its capped ones
            ia, ib = ia[order], ib[order]
    return ia, ib


WINDOW_SIDE = 16  # side of the window descriptors of the cheap evidence


def _window_operators(n_in: int):
    """(W, 16, n_in) row and column resamplers cutting each window of ``WINDOWS`` to 16 x 16."""
    from ..signatures.image import WINDOWS, _interp_rows

    ly = np.stack([_interp_rows(y0, y1, WINDOW_SIDE, n_in) for y0, _, y1, _ in WINDOWS]).astype(np.float32)
    lx = np.stack([_interp_rows(x0, x1, WINDOW_SIDE, n_in) for _, x0, _, x1 in WINDOWS]).astype(np.float32)
    return ly, lx


def window_descriptors(data) -> np.ndarray:
    """(N, W, 256) standardised 16 x 16 renderings of each image's crop windows (kept on ``data``).

    A crop keeping >= 70 % of an image lies within half a grid step of one window, so its 16 x 16
    thumbnail correlates with that window's rendering: the cheap evidence of crops.
    """
    parent = getattr(data, "_parent", None)
    if parent is not None and getattr(parent, "_window_descriptors", None) is not None:
        return parent._window_descriptors[data._rows]  # a subset: rows of its split's descriptors
    # (a subset whose split has none yet makes its own rows only: the same values, image by image)
    cached = getattr(data, "_window_descriptors", None)
    if cached is None:
        # one halving of each prepared thumbnail: ``data.small`` when that is one halving (THUMB 32)
        small = getattr(data, "small", None)
        if small is not None and small.shape[1:] == (THUMB // 2, THUMB // 2):
            half = small.astype(np.float32, copy=False)
        else:
            half = _stack_to_side(data.prepared, THUMB // 2).astype(np.float32) if len(data.prepared) else \
                np.zeros((0, THUMB // 2, THUMB // 2), np.float32)
        ly, lx = _window_operators(half.shape[-1])
        cached = np.zeros((len(half), len(ly), WINDOW_SIDE * WINDOW_SIDE), np.float32)
        for lo in range(0, len(half), 512):  # two small matrix products per window, bounded memory
            win = np.matmul(np.matmul(ly[None], half[lo:lo + 512, None]), lx.transpose(0, 2, 1)[None])
            cached[lo:lo + 512] = standardise(win.reshape(-1, WINDOW_SIDE, WINDOW_SIDE)).reshape(len(win), len(ly), -1)
        data._window_descriptors = cached
    return cached


def cheap_evidence(a, b, ia, ib, chunk: int = 2048) -> dict[str, np.ndarray]:
    """What each candidate pair looks like before any alignment, vectorised; one array per kind:

    - ``r16``: best whole-frame correlation of the 16 x 16 thumbnails over the 8 dihedral transforms;
    - ``rwin``: best correlation of one image's 16 x 16 thumbnail (any dihedral transform) with a
      crop window of the other (crops, both ways);
    - ``rdisc``: best cosine of the rotated central discs, when the split data has them (small rotations);
    - ``bits``: fewest differing bits between a perceptual hash of one image and a hash (whole or
      window, any dihedral transform) of the other (lower is closer).
    """
    ia, ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
    out = {"r16": np.zeros(len(ia), np.float32), "rwin": np.zeros(len(ia), np.float32),
           "bits": np.zeros(len(ia), np.int64)}
    has_discs = callable(getattr(a, "discs", None)) and callable(getattr(b, "discs", None))
    if has_discs:
        out["rdisc"] = np.zeros(len(ia), np.float32)
    if not len(ia):
        return out
    out["r16"] = whole_frame_scores(a.z16, b.z16, ia, ib).max(axis=1)
    perms = _dihedral_perms(WINDOW_SIDE)
    win_a, win_b = window_descriptors(a), window_descriptors(b)
    discs = (a.discs(), b.discs()) if has_discs else None
    for lo in range(0, len(ia), chunk):
        sl = slice(lo, lo + chunk)
        pa, pb = a.phash[ia[sl]], b.phash[ib[sl]]
        d = np.bitwise_count(pa ^ pb[:, :1]).min(axis=1)
        d = np.minimum(d, np.bitwise_count(a.windows[ia[sl]][:, :, None] ^ pb[:, None, :]).min(axis=(1, 2)))
        d = np.minimum(d, np.bitwise_count(b.windows[ib[sl]][:, :, None] ^ pa[:, None, :]).min(axis=(1, 2)))
        out["bits"][sl] = d
        za, zb = a.z16[ia[sl]], b.z16[ib[sl]]
        # batched matrix products (7x less CPU than the equivalent einsum)
        r = np.matmul(win_a[ia[sl]], zb[:, perms].transpose(0, 2, 1)).max(axis=(1, 2))
        out["rwin"][sl] = np.maximum(r, np.matmul(win_b[ib[sl]], za[:, perms].transpose(0, 2, 1)).max(axis=(1, 2)))
        if has_discs:
            da, db = discs[0][ia[sl], 0], discs[1][ib[sl]]
            out["rdisc"][sl] = np.einsum("pk,phk->ph", da, db).max(axis=1)
    return out


# Cheap evidence that augmented copies reach when the same-framing pass does not already accept
# them: bench_image_similarity seeds 0-4 (18 families, 266 such copies; their weakest: crops and
# grayscale+crop at hash bits 12-16 with crop-window r 0.4-0.65, small rotations at rdisc >= 0.77
# with bits 10-16): these levels let all 266 through, while 7 % of the unrelated candidates of
# distinct pictures (bench_exact_images --data distinct) reach one of them, 9-12 % of texture
# tiles' (the old null-share gate at 0.5 let 45 % of distinct pictures' through). A pair at one
# of these levels is always verified, whatever the null says.
COPY_LEVELS = {"r16": 0.75, "rwin": 0.55, "rdisc": 0.7, "bits": 15}


def null_gate(train, sub, ia, ib, n_rows: int, share: float, accept: float, copy_levels=COPY_LEVELS,
              evidence: dict | None = None, contaminated_share: float = 0.2, align_share: float | None = None) -> dict:
    """Levels of cheap evidence a candidate pair must reach to be verified (keypoints / bank).

    Each kind's level is the lower of two: the level that only ``share`` of training images reach
    with unrelated neighbours (each kind gets an equal part of ``share``: "unusual for this data"),
    and ``copy_levels[kind]`` (what augmented copies reach: "looks like a copy"). On data with
    distinct pictures almost no pair reaches either, so almost nothing is verified; on data of
    look-alikes (textures) the copy levels let every plausible copy through. Candidates weaker
    than every level keep their same-framing score -- in the calibration and in the audit alike,
    so the calibrated threshold accounts for it. A training split where many images have a
    near-copy of their own (augmented before splitting) is measured at the second-best
    neighbour, as the threshold is, and gated as before the copy levels existed: by the null alone,
    at ``contaminated_share`` -- there every picture has look-alikes that pass the copy levels
    (frames of one video: 72 % of candidates did, and the audit of 1112 YOLO frames took 1.8x
    longer), while the threshold (near 1) leaves verification little to find.
    ``evidence``: :func:`cheap_evidence` of the pairs, when known.

    ``align_share``: also the levels (``gate["align"]``, one per kind of :data:`ALIGN_FLOORS`) that
    only this share of training images reach with unrelated neighbours (an equal part per kind),
    and never under the kind's floor: a pair that keypoints cannot explain is aligned by the
    restricted bank (:func:`_restricted_alignment`) only when its evidence reaches one of them.
    """
    ev = cheap_evidence(train, sub, ia, ib) if evidence is None else evidence
    ib = np.asarray(ib, np.int64)
    order = np.argsort(ib, kind="stable")
    starts = np.searchsorted(ib[order], np.arange(n_rows + 1))
    copies = np.array([bool(np.any(ev["r16"][order[starts[j]:starts[j + 1]]] >= accept)) for j in range(n_rows)])
    rank = 1 if copies.mean() > CONTAMINATED else 0
    if rank:
        share, copy_levels = contaminated_share, None
    part = share / len(ev)
    gate = {"share": share}
    align = {}
    for kind, values in ev.items():
        lower = kind == "bits"
        best = np.full(n_rows, 64.0 if lower else -1.0)
        for j in range(n_rows):
            mine = np.sort(values[order[starts[j]:starts[j + 1]]])
            mine = mine if lower else mine[::-1]
            if len(mine) > rank:
                best[j] = mine[rank]
        gate[kind] = float(np.quantile(best, part if lower else 1 - part))
        if copy_levels and kind in copy_levels:
            level = float(copy_levels[kind])
            gate[kind] = max(gate[kind], level) if lower else min(gate[kind], level)
        if align_share and kind in ALIGN_FLOORS:
            # the uncontaminated share whatever the rank: the bank is the costly part
            unusual = float(np.quantile(best, 1 - float(align_share) / len(ALIGN_FLOORS)))
            align[kind] = max(unusual, ALIGN_FLOORS[kind])
    if align_share:
        gate["align"] = align
    return gate


# The restricted alignment bank (for pairs keypoints cannot explain) runs where a pair's cheap evidence
# is unusual for the data (``null_gate``'s ``align_share``) and at least what copies reach (the gate's
# copy levels); without a calibrated gate (a threshold set by the user, a small training split), at
# ALIGN_FIXED, the fixed levels of session 6 (b8929a0)
ALIGN_FLOORS = {"r16": COPY_LEVELS["r16"], "rwin": COPY_LEVELS["rwin"], "rdisc": COPY_LEVELS["rdisc"]}
ALIGN_FIXED = {"r16": 0.8, "rdisc": 0.85, "rwin": 0.85}


def passes_gate(a, b, ia, ib, gate: dict, evidence: dict | None = None) -> np.ndarray:
    """Boolean per candidate pair: its cheap evidence reaches one of the ``gate`` levels."""
    ev = cheap_evidence(a, b, ia, ib) if evidence is None else evidence
    ok = ev["bits"] < gate["bits"]
    for kind in ("r16", "rwin", "rdisc"):
        if kind in ev and kind in gate:
            ok |= ev[kind] >= gate[kind]
    return ok


VERIFY_VERSION = "8"
SMOOTH_KEYPOINTS = 64  # fewer SIFT keypoints than this: a smooth picture, blurred detections tried both ways  # bump when verify_pair / verify_keypoints scores change: cached verifications are keyed by it
ECC_PER_PAIR = 2  # keypoint hypotheses of one pair refined by ECC at most (was up to 6: 2 orientations x 3 detections)
_FEATURELESS = "featureless"  # a keypoint verification that could not judge the pair (too few keypoints)


class VerifiedPairs:
    """Costly verifications of image pairs, kept with the signatures (``AuditConfig(cache_dir=...)``).

    Keyed by the two images' content digests, the verification path (keypoints, alignment bank,
    tiny-image bank) and the options that change its result, under :data:`VERIFY_VERSION` and the
    versions of the thumbnails it reads; the audio backend keeps its alignments the same way. Each
    verification is a function of the two images alone (the choice of *which* pairs to verify --
    gate, ``align_top``, ``stop_at`` -- is made afresh every audit from cheap evidence), so an audit
    gives the same findings with or without the cache, and a re-audit of a grown dataset verifies
    only pairs it has not seen: those with a new image, or newly made candidates.
    ``computed`` / ``cached`` count the pairs verified and read back.

    >>> verified = VerifiedPairs(ctx.signatures.cache, {"accept": 0.97})   # doctest: +SKIP
    """

    def __init__(self, cache, params: dict):
        import hashlib

        from ..signatures.registry import get_signature

        self.cache = cache
        versions = "/".join(get_signature("image", k).version for k in ("digest", "thumb", "thumb_kp"))
        self.kind = f"image/verified/{VERIFY_VERSION}/{versions}"
        self.params = hashlib.blake2b(repr(sorted(params.items())).encode(), digest_size=4).digest()
        self.found: dict[bytes, bytes] = {}
        self.computed = 0
        self.cached = 0

    def key(self, digest_a, digest_b, path: bytes) -> bytes | None:
        if self.cache is None or digest_a is None or digest_b is None:
            return None
        return bytes(digest_a) + bytes(digest_b) + path + self.params

    def prefetch(self, keys) -> None:
        """Read the entries of ``keys`` in one go (the verification loop then asks the dict)."""
        want = list({k for k in keys if k is not None and k not in self.found})
        if want:
            self.found.update(self.cache.get_many(self.kind, want))

    def get(self, key):
        """(True, verification) when cached; (False, None) when the pair must be verified."""
        blob = self.found.get(key) if key is not None else None
        if blob is None:
            return False, None
        self.cached += 1
        return True, _decode_match(blob)

    def put(self, key, value) -> None:
        self.computed += 1
        if key is not None:
            blob = _encode_match(value)
            self.found[key] = blob
            self.cache.put(self.kind, key, blob)


def _encode_match(m) -> bytes:
    if m is None:
        return np.zeros(1).tobytes()
    if isinstance(m, str):  # _FEATURELESS
        return np.full(1, -1.0).tobytes()
    return np.array([1.0, m.score, m.dihedral, m.angle, m.window[0], m.window[1], m.swapped, m.shift,
                     m.inliers], dtype=np.float64).tobytes()


def _decode_match(blob: bytes):
    v = np.frombuffer(blob, dtype=np.float64)
    if v[0] == 0.0:
        return None
    if v[0] < 0.0:
        return _FEATURELESS
    return Match(float(v[1]), int(v[2]), float(v[3]), (float(v[4]), float(v[5])), bool(v[6]), bool(v[7]),
                 int(v[8]))


def verify_candidates(a: ImageSplitData, b: ImageSplitData, ia, ib, opts, progress=False,
                      stop_at: float | None = None, verified: VerifiedPairs | None = None,
                      evidence: dict | None = None) -> list[Match]:
    """Verify candidate pairs: a vectorised same-framing pass, then full alignment for the rest.

    ``stop_at``: once an evaluation image has a pair scoring at least this, its other candidates
    are not aligned (only its best pair is reported); their scores stay the same-framing ones.
    ``verified``: where the costly verifications of earlier audits are kept (:class:`VerifiedPairs`).
    ``evidence``: :func:`cheap_evidence` of all the pairs, when already computed (the gate's input).
    """
    from tqdm.auto import tqdm

    whole = whole_frame_scores(a.z, b.z, ia, ib)
    best_d = whole.argmax(axis=1)
    best_r = whole[np.arange(len(ia)), best_d] if len(ia) else np.zeros(0)
    if len(ia):
        # corrected for the attenuation noise causes, as the keypoint score is (session 6: a noisy
        # copy of a smooth, featureless tile scored 0.80 against 0.91; the null moved by < 0.01)
        best_r = np.minimum(best_r * a.noise[np.asarray(ia)] * b.noise[np.asarray(ib)], np.float32(1.0))
    out: list[Match] = [Match(float(r), int(d)) for r, d in zip(best_r, best_d)]
    todo = np.flatnonzero(best_r < opts["accept"])
    # crops and small rotations of images a few pixels wide cannot be told from look-alikes
    tiny = (a.shape[ia].max(axis=1) <= TINY) | (b.shape[ib].max(axis=1) <= TINY) if len(ia) else np.zeros(0, bool)
    if opts.get("gate") is not None and len(todo):
        # only pairs that look closer than unrelated training neighbours do are aligned (tiny ones all)
        ev = None if evidence is None else {kind: v[todo] for kind, v in evidence.items()}
        todo = todo[tiny[todo] | passes_gate(a, b, np.asarray(ia)[todo], np.asarray(ib)[todo], opts["gate"], ev)]
    if opts.get("keypoints", True) and have_opencv() and len(todo):
        # pairs with a featureless image (< MIN_INLIERS keypoints) keep their same-framing score:
        # the full alignment bank's many hypotheses lift unrelated smooth pictures (retina edges,
        # skies) above what keypoint-verified pairs reach, and one threshold serves both. Since
        # session 7 a pair keypoints could not explain whose cheap evidence reaches the calibrated
        # align levels (gate["align"]) gets a restricted alignment (_restricted_alignment): small
        # rotations on the 128 px thumbnails, the 32 px bank for smooth pictures
        gate = opts.get("gate")
        _verify_by_keypoints(a, b, ia, ib, todo[~tiny[todo]], out, progress, stop_at, best_r, opts["accept"],
                             verified, dihedrals=np.argsort(-whole, axis=1)[:, :2],
                             align_levels=(gate or {}).get("align", ALIGN_FIXED))
        todo = todo[tiny[todo]]
    top = int(opts.get("align_top") or 0)
    if top and len(todo):
        # tiny images align cheaply and are look-alikes: all their candidates stay
        ib_arr = np.asarray(ib)
        order = todo[np.lexsort((-best_r[todo], ib_arr[todo]))]
        grp = ib_arr[order]
        rank = np.arange(len(order)) - np.searchsorted(grp, grp, side="left")
        todo = np.sort(order[(rank < top) | tiny[order]])
    done: set[int] = set()
    if stop_at is not None and len(ia):
        done = {int(j) for j in np.asarray(ib)[best_r >= stop_at]}
        # the likeliest candidate of each evaluation image first, so the others can be skipped
        todo = todo[np.lexsort((-best_r[todo], np.asarray(ib)[todo]))]
    keys = {}
    if verified is not None and len(todo):
        # the tiny path's dihedrals come from the pair's own whole-frame scores: a function of the pair
        keys = {int(k): verified.key(a.digest[ia[k]], b.digest[ib[k]], b"t" if tiny[k] else b"b") for k in todo}
        verified.prefetch(keys.values())
    for k in tqdm(todo, desc="aligning image pairs", unit="pair", disable=not progress or len(todo) < 200,
                  leave=False):
        # tiny images: the 2 best dihedral transforms of the same-framing pass, no search over them
        # (the identity always among them: a shift can make a flip look closer in whole frame)
        if int(ib[k]) in done:
            continue
        hit, m = verified.get(keys[int(k)]) if verified is not None else (False, None)
        if not hit:
            kw = ({"crops": False, "angles": (0.0,), "dihedrals": [0, *np.argsort(-whole[k])[:2]]}
                  if tiny[k] else {})
            m = verify_pair(a.prepared[ia[k]], b.prepared[ib[k]], prepared=True, accept=opts["accept"],
                            reject_below=opts["min_score"] - 0.2, **kw)
            if verified is not None:
                verified.put(keys[int(k)], m)
        if m.score > out[k].score:
            out[k] = m
        if stop_at is not None and out[k].score >= stop_at:
            done.add(int(ib[k]))
    return out


def _keypoint_match(a, b, i: int, j: int, accept: float):
    """The keypoint verification of pair (a[i], b[j]): a Match, None, or ``_FEATURELESS``.

    A first look at 64 px (:func:`coarse_matches`, a quarter of a 128 px SIFT detection): a pair
    with fewer than ``COARSE_MATCHES`` ratio-test matches there gets no keypoint hypothesis (None),
    without any 128 px detection -- most unrelated pairs that pass the cheap gate end here (on
    distinct pictures 134 of 144; every copy of the similarity bench, seeds 0-2, passes).
    """
    if coarse_matches(a.coarse_keypoints(i), b.coarse_keypoints(j)) < COARSE_MATCHES:
        return None
    ka = a.keypoints(i)
    if len(ka) < MIN_INLIERS:  # the other picture's keypoints are not needed (nor computed: SIFT is the cost)
        return _FEATURELESS
    kb = b.keypoints(j)
    if len(kb) < MIN_INLIERS:
        return _FEATURELESS
    # ECC (the costly refinement of a rough fit) runs on at most ECC_PER_PAIR hypotheses: the best
    # sharp one, then the best one the blurred detections add
    hyps = keypoint_hypotheses(ka, kb)
    m = best_hypothesis(ka.pixels, kb.pixels, hyps, refine_top=1)
    if m is None or m.score < accept:
        # a blurred copy keeps few of the sharp picture's fine keypoints: match it against the
        # keypoints the sharper picture shows once blurred as much. Only when one picture is much
        # blurrier than the other (a blurred copy is; most unrelated pairs are not, and each
        # blurred detection is one more SIFT pass), or when one is smooth (few keypoints: the
        # blurred detection finds steadier structure there; measured on a retina crop+jitter copy)
        detail_a, detail_b = fine_detail(ka.pixels), fine_detail(kb.pixels)
        sides = ()
        if min(detail_a, detail_b) < BLUR_MISMATCH * max(detail_a, detail_b):
            sides = ("a",) if detail_a > detail_b else ("b",)
        elif min(len(ka), len(kb)) < SMOOTH_KEYPOINTS:
            sides = ("a", "b")
        for side in sides:
            hyps += (keypoint_hypotheses(a.keypoints(i, blurred=True), kb) if side == "a"
                     else keypoint_hypotheses(ka, b.keypoints(j, blurred=True)))
        m = best_hypothesis(ka.pixels, kb.pixels, hyps, refine_top=ECC_PER_PAIR - 1)
    return m


SMOOTH_COARSE = 8  # fewer 64 px SIFT keypoints than this in either picture: smooth (a sky, a colour gradient)


def reaches_levels(evidence: dict, levels: dict) -> np.ndarray:
    """(P,) codes of which align levels each pair's cheap evidence reaches: bit 1 = a whole-frame or
    crop-window one (``r16``, ``rwin``), bit 2 = the rotated-disc one (``rdisc``); 0 = none."""
    n = len(next(iter(evidence.values())))
    frame, disc = np.zeros(n, bool), np.zeros(n, bool)
    for kind, level in levels.items():
        if kind in evidence:
            hit = np.asarray(evidence[kind]) >= float(level)
            if kind == "rdisc":
                disc |= hit
            else:
                frame |= hit
    return frame.astype(np.int64) + 2 * disc.astype(np.int64)


def _keypoint_thumb(data, pos: int) -> np.ndarray:
    """The 128 px keypoint thumbnail of the image at ``pos`` (of a split, or of a calibration subset)."""
    parent = getattr(data, "_parent", None)
    if parent is not None:
        return parent.thumb_kp[int(data._rows[int(pos)])]
    return data.thumb_kp[int(pos)]


def _restricted_alignment(a, b, i: int, j: int, dihedrals, accept: float, reach: int = 1):
    """An alignment for pair (a[i], b[j]), which keypoints could not explain (no hypothesis), by what
    its cheap evidence reaches of the align levels (``reach``, :func:`reaches_levels`; the levels are
    the calibration's ``gate["align"]``: unusual for the data, and copy-like); None when none runs:

    - the rotated-disc level: :func:`~leakguard.similarity.image_align.rotation_match`, small
      rotations about the centre on the 128 px keypoint thumbnails (a blurred rotated copy keeps
      too few keypoints to match at 64 px; a rotated colour gradient has none), the filled corners
      left out;
    - the whole-frame or crop-window level, a smooth picture (fewer than ``SMOOTH_COARSE`` 64 px
      keypoints in either): the 32 px alignment bank (crops, small rotations, shifts) over the
      identity and the pair's ``dihedrals`` (its 2 best whole-frame transforms). The bank over every
      transform lifted unrelated smooth pictures; with shifts and crops on pictures with texture it
      lifts look-alike textures (a tile of a periodic wall against another, 0.98: bench seed 0).
      The disc level alone does not send a pair there (rotations are tried already; the bank is
      the costly part: ~20 ms a pair).

    The best of those that ran. The calibration runs the same path, so the threshold accounts for
    what it lifts."""
    found = []
    if reach & 2:
        m = rotation_match(_keypoint_thumb(a, i), _keypoint_thumb(b, j))
        if m is not None:
            found.append(m)
    if reach & 1 and min(len(a.coarse_keypoints(i)), len(b.coarse_keypoints(j))) < SMOOTH_COARSE:
        found.append(verify_pair(a.prepared[i], b.prepared[j], dihedrals=[0, *(int(d) for d in dihedrals)],
                                 prepared=True, accept=accept))
    return max(found, key=lambda m: m.score) if found else None


def _verify_by_keypoints(a, b, ia, ib, todo, out: list, progress, stop_at, best_r, accept: float = 0.97,
                         verified: VerifiedPairs | None = None, dihedrals=None, align_levels: dict = ALIGN_FIXED) -> int:
    """Keypoint verification (OpenCV SIFT + RANSAC affine + post-warp correlation) of pairs ``todo``;
    improves ``out`` in place. Returns how many pairs it could not judge (an image with fewer than
    ``MIN_INLIERS`` keypoints: flat content). Pairs in ``verified`` are read back, not verified
    (their keypoints are then never computed). ``dihedrals``: (P, 2) the 2 best whole-frame
    dihedral transforms of each pair; given, pairs keypoints cannot explain are aligned by
    :func:`_restricted_alignment` where their evidence reaches ``align_levels``."""
    from tqdm.auto import tqdm

    ib_arr = np.asarray(ib)
    done = {int(j) for j in ib_arr[best_r >= stop_at]} if stop_at is not None else set()
    # the likeliest candidate of each evaluation image first, so the others can be skipped
    todo = todo[np.lexsort((-best_r[todo], ib_arr[todo]))]
    # pairs whose evidence reaches the align levels get the restricted bank when keypoints fail: a
    # different verification, kept under its own path key (b"k" + code), so a cached one is a function of
    # the pair alone whatever levels the next audit's calibration sets
    reach = np.zeros(len(ib_arr), np.int64)
    if dihedrals is not None and align_levels and len(todo):
        ia_arr = np.asarray(ia)
        reach[todo] = reaches_levels(cheap_evidence(a, b, ia_arr[todo], ib_arr[todo]), align_levels)
    keys = {}
    if verified is not None and len(todo):
        keys = {int(k): verified.key(a.digest[ia[k]], b.digest[ib[k]], b"k" + bytes([int(reach[k])])) for k in todo}
        verified.prefetch(keys.values())
    left = 0
    if len(todo):
        _prefetch_thumbs(a, np.asarray(ia)[todo])
        _prefetch_thumbs(b, ib_arr[todo])
    for k in tqdm(todo, desc="verifying image pairs", unit="pair", disable=not progress or len(todo) < 200,
                  leave=False):
        if int(ib[k]) in done:
            continue
        hit, m = verified.get(keys[int(k)]) if verified is not None else (False, None)
        if not hit:
            m = _keypoint_match(a, b, int(ia[k]), int(ib[k]), accept)
            if (m is None or isinstance(m, str)) and reach[k]:
                m = _restricted_alignment(a, b, int(ia[k]), int(ib[k]), dihedrals[k], accept, int(reach[k])) or m
            if verified is not None:
                verified.put(keys[int(k)], m)
        if isinstance(m, str):  # _FEATURELESS
            left += 1
            continue
        if m is not None and m.score > out[k].score:
            out[k] = m
        if stop_at is not None and out[k].score >= stop_at:
            done.add(int(ib[k]))
    return left


def stable_sample(digests: list, size: int, random_state=None) -> np.ndarray:
    """Sorted positions of ``size`` samples chosen by the rank of a salted hash of their content.

    Unlike a random choice by position, adding samples to a split changes the choice only where a
    new sample ranks among the chosen ones (about ``size / n`` of them), so a re-audit of a grown
    training split calibrates on nearly the same images and reads their verifications back from the
    cache. Samples without a digest rank by position.
    """
    import hashlib

    n = len(digests)
    if size >= n:
        return np.arange(n)
    salt = str(random_state).encode()
    ranks = np.array([int.from_bytes(hashlib.blake2b(bytes(d) if d is not None else str(i).encode(), key=salt[:64],
                                                     digest_size=8).digest(), "little")
                      for i, d in enumerate(digests)], dtype=np.uint64)
    return np.sort(np.argsort(ranks, kind="stable")[:size])


def _verified_pairs(ctx, opts) -> VerifiedPairs | None:
    cache = getattr(ctx.signatures, "cache", None)
    if cache is None:
        return None
    if "image_verified" not in ctx.shared:
        # only the options that change a verification's result are part of its key
        ctx.shared["image_verified"] = VerifiedPairs(cache, {"accept": float(opts["accept"]),
                                                             "min_score": float(opts["min_score"])})
    return ctx.shared["image_verified"]


def calibrate(ctx, train: ImageSplitData, opts, progress=False) -> dict:
    """Threshold from verification scores of training images against their nearest other ones.

    The training images it samples are chosen by content (:func:`stable_sample`), so a grown
    training split keeps nearly the same sample, and their verifications come from the cache.
    """
    n = len(train)
    if n < 3:
        return {"threshold": max(opts["min_score"], 0.9), "null": [], "source": "default (training split too small)"}
    rows = stable_sample(train.digest, min(n, int(opts["null_samples"])), ctx.config.random_state)
    sub = _Subset(train, rows)
    # each sampled image would find itself first by every candidate source and take every
    # source's "best match first" slot: its own position is left out before the ranking, so the
    # null ranks unrelated candidates as an evaluation image does (with itself in, the null's best
    # 16 px correlations had median 0.30 against 0.50 for evaluation images of the same data)
    ia, ib = candidate_pairs(train, sub, opts["radius"], opts["k"], opts["max_candidates"], progress=False,
                             self_index=rows)
    ia_full = ia
    keep = ia_full != rows[ib]
    # exact copies inside the training split are not "unrelated" pairs
    keep &= np.array([train.digest[i] != train.digest[rows[j]] for i, j in zip(ia_full, ib)], dtype=bool)
    ia, ib = ia[keep], ib[keep]
    share = opts.get("gate_share")
    gate = ev = None
    if share and len(rows) >= 20:
        levels = COPY_LEVELS if opts.get("copy_levels") == "default" else opts.get("copy_levels")
        ev = cheap_evidence(train, sub, ia, ib)
        gate = null_gate(train, sub, ia, ib, len(rows), float(share), opts["accept"], levels, evidence=ev,
                         contaminated_share=float(opts.get("gate_share_contaminated") or share),
                         align_share=opts.get("align_share"))
    matches = verify_candidates(train, sub, ia, ib, {**opts, "gate": gate}, progress,
                                verified=_verified_pairs(ctx, opts), evidence=ev)
    scores = np.array([m.score for m in matches], dtype=np.float64)
    ranked = [np.sort(scores[ib == j])[::-1] for j in range(len(rows))]
    rank = opts["null_rank"]
    contaminated = float(np.mean([len(s) and s[0] >= opts["accept"] for s in ranked])) if ranked else 0.0
    if rank == "auto":
        # a training split where many images have a near-copy of their own (augmented before
        # splitting) would put those copies in the null; score against the second best instead
        rank = 2 if contaminated > CONTAMINATED else 1
    rank = int(rank)
    # a training image whose best match is itself a near-copy (>= accept) is skipped past it, as
    # exact copies are: near-copies inside the training split are not unrelated pairs
    # (with rank 2 already chosen for the whole split, the second best stands as it is)
    null = []
    for s in ranked:
        skip = rank - 1 if rank > 1 or not len(s) or s[0] < opts["accept"] else 1
        if len(s) > skip:
            null.append(s[skip])
    null = np.asarray(null, dtype=np.float64)
    fpr = float(opts.get("fpr", ctx.config.fpr))
    # a normal tail fitted on a few dozen scores guards small training splits; from 100 on, the
    # empirical maximum is the better estimate (the fitted tail overshoots near r = 1)
    t = (calibrated_threshold(null, fpr, default=0.9, extrapolate="fisher" if len(null) < 100 else None)
         if len(null) else 0.9)
    return {"threshold": float(min(max(t, opts["min_score"]), 1.0)), "null": null, "gate": gate,
            "source": (f"calibrated on {len(null)} training images (rank-{rank} neighbour; {contaminated:.0%} "
                       f"of them have a near-copy inside the training split), fpr {fpr:g}")}


class _Subset:
    """Rows of an ImageSplitData (views for the calibration)."""

    def __init__(self, data: ImageSplitData, rows: np.ndarray):
        self.phash = data.phash[rows]
        self.windows = data.windows[rows]
        # the split's arrays where it made them already; otherwise made for these rows only, on first
        # use (row by row the same values: prepare / halving / standardise treat each image alone)
        self._thumbs = data._thumbs[rows]
        self._prepared, self._z, self._small, self._z16 = (
            None if v is None else v[rows] for v in (data._prepared, data._z, data._small, data._z16))
        self.digest = [data.digest[i] for i in rows]
        self.shape = data.shape[rows]
        self._spectra = {d: v[rows] for d, v in data._spectra.items()}
        self.index = data.index[rows]
        self._parent, self._rows = data, rows
        self._discs = None if data._discs is None else data._discs[rows]
        self._noise = None if data._noise is None else data._noise[rows]

    prepared, z, small, z16 = ImageSplitData.prepared, ImageSplitData.z, ImageSplitData.small, ImageSplitData.z16

    spectra = ImageSplitData.spectra

    discs = ImageSplitData.discs

    noise = ImageSplitData.noise

    def keypoints(self, pos: int, blurred: bool = False):
        return self._parent.keypoints(int(self._rows[int(pos)]), blurred)

    def coarse_keypoints(self, pos: int):
        return self._parent.coarse_keypoints(int(self._rows[int(pos)]))

    def __len__(self) -> int:
        return len(self.index)


def _exact_pairs(ctx) -> set[tuple[str, int, str, int]]:
    links = ctx.all_links()
    ex = links[links["check"] == "exact_duplicate"]
    return set(zip(ex["split_a"], ex["index_a"].astype(int), ex["split_b"], ex["index_b"].astype(int)))


def _progress(ctx) -> bool:
    """Bars when asked for, or by default on a terminal (as the signature pass does)."""
    import sys

    if ctx.config.progress is None:
        return sys.stderr.isatty()
    return bool(ctx.config.progress)


SMALL_SEARCH = 4_000_000  # training x evaluation images below which the searches run on one thread


@register_backend("augmented_duplicate", "image", needs=AUGMENTED_NEEDS)
def augmented_duplicates(ctx, check) -> list:
    """Evaluation images that are augmented copies (flips, rotations, crops, photometric) of others."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    n_train = len(ctx.splits[ctx.splits.train])
    n_eval = sum(len(ctx.splits[name]) for name in ctx.splits.eval_names)
    # the candidate search is ~45 small kNN searches per split pair: waking FAISS's / BLAS's
    # threads for each costs more than it saves (measured 17.6 vs 2.8 ms a search of 268 x 89
    # thumbnails, 2 cores, load 3.6); large searches keep their threads
    with threadpool_limits(1) if n_train * max(n_eval, n_train) < SMALL_SEARCH else nullcontext():
        return _augmented_duplicates(ctx, check)


def _augmented_duplicates(ctx, check) -> list:
    opts = _options(ctx, check.name)
    progress = _progress(ctx)
    splits = ctx.splits
    keypoint_memo: dict = {}  # SIFT once per image content, whichever split holds it
    data = {n: ImageSplitData(ctx, n, keypoint_memo) for n in splits}
    thresholds = opts.get("threshold") or ctx.config.thresholds.get(check.name)
    calib = ctx.shared.get("image_calibration")
    if thresholds is None and calib is None:
        calib = kept_calibration(ctx, data[splits.train], opts,
                                 lambda: calibrate(ctx, data[splits.train], opts, progress))
        ctx.shared["image_calibration"] = calib
    threshold = float(thresholds) if thresholds is not None else calib["threshold"]
    # the calibration's cheap-evidence gate, so audit pairs are screened as the null's were
    opts["gate"] = calib.get("gate") if calib is not None and thresholds is None else None
    # the align levels decide verifications too: part of the options the cached matches are keyed by
    # (image_memo leaves the gate out of its key by candidates and re-checks only gate decisions)
    opts["align_levels"] = (opts["gate"] or {}).get("align")
    exact = _exact_pairs(ctx)
    findings = []
    order = [splits.train] + splits.eval_names
    for a_pos, a_name in enumerate(order):
        for b_name in order[a_pos + 1:]:
            A, B = data[a_name], data[b_name]

            def search(B, A=A):
                ia, ib = candidate_pairs(A, B, opts["radius"], opts["k"], opts["max_candidates"], progress=progress)
                if len(ia):
                    same = np.array([A.digest[i] == B.digest[j] for i, j in zip(ia, ib)], dtype=bool)
                    ia, ib = ia[~same], ib[~same]
                return ia, ib

            def verify(B, ia, ib, A=A):
                return verify_candidates(A, B, ia, ib, opts, progress, stop_at=threshold,
                                         verified=_verified_pairs(ctx, opts))

            # evaluation images seen before (with this training split, or with the same candidates)
            # are read back from the cache (similarity/image_memo.py); without cache: search + verify
            ia, ib, matches = kept_pairs(ctx, A, B, opts, threshold, search, verify)
            scores = np.array([m.score for m in matches])
            hit = np.flatnonzero(scores >= threshold) if len(scores) else np.zeros(0, np.int64)
            # one pair per evaluation image: its best explanation; equal scores go to the lowest
            # training position, so the pair does not depend on the order the search listed them in
            best: dict[int, int] = {}
            for k in hit:
                if (ib[k] not in best or scores[k] > scores[best[ib[k]]]
                        or (scores[k] == scores[best[ib[k]]] and ia[k] < ia[best[ib[k]]])):
                    best[ib[k]] = k
            ks = np.array(sorted(best.values(), key=lambda k: (ib[k], ia[k])), dtype=np.int64)
            ks = np.array([k for k in ks if (a_name, int(A.index[ia[k]]), b_name, int(B.index[ib[k]])) not in exact],
                          dtype=np.int64)
            if not len(ks):
                continue
            idx_a, idx_b = A.index[ia[ks]], B.index[ib[ks]]
            pairs = make_pairs(a_name, idx_a, b_name, idx_b, check.name, scores[ks])
            ctx.links.append(pairs)
            findings.append(augmented_image_finding(
                ctx, check.name, a_name, b_name, pairs, [matches[k].describe() for k in ks], threshold,
                calib if thresholds is None else None))
    return findings


def augmented_image_finding(ctx, check_name: str, a_name: str, b_name: str, pairs, transforms: list[str],
                            threshold: float, calib):
    """The augmented-duplicate finding for image pairs (the local and the Spark engine both build it).

    ``transforms``: each pair's explanation (``Match.describe()``); ``calib``: the calibration
    dict, or None when the user set the threshold.
    """
    count = len(np.unique(pairs["index_b"].to_numpy()))
    n_b = len(ctx.splits[b_name])
    involves_train = a_name == ctx.splits.train
    kinds = _summarise(transforms)
    return Finding(
        check=check_name,
        severity=ctx.severity(check_name, "critical" if involves_train else "warning"),
        title=f"{count} of {n_b} {b_name!r} images are augmented copies of {a_name!r} images",
        detail=(f"{count} images in {b_name!r} ({count / max(n_b, 1):.1%}) are {a_name!r} images "
                f"after flips, rotations, crops or photometric changes ({kinds}); each pair aligns "
                f"with correlation >= {threshold:.3f} ({calib['source'] if calib else 'threshold set by the user'})."
                + (" A model scored on them has seen them in training." if involves_train else "")),
        remedy=("Augment after splitting, never before; re-split with lg.resplit() so that every "
                "copy of an image stays in one split."),
        splits=(a_name, b_name), count=count, pairs=pairs,
        extra={"threshold": threshold, "transforms": transforms,
               "calibration": None if calib is None else {
                   "source": calib["source"], "null_quantiles": _quantiles(calib["null"])}})


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


# ---- semantic duplicates: embeddings + nearest neighbours ---------------------------------

def _embeddings(ctx, split: str, valid: np.ndarray) -> np.ndarray:
    from ..embedders import embed_split, get_embedder

    spec = ctx.config.embedder
    if spec is None or spec == "pyramid":
        if not valid.any():  # an empty (or wholly unreadable) split: no vectors, nothing to compare
            return np.zeros((0, 0), dtype=np.float32)
        vecs = ctx.signatures.get(split, "embed_pyramid")
        return np.array([vecs[i] for i in np.flatnonzero(valid)], dtype=np.float32).reshape(int(valid.sum()), -1)
    cache = ctx.shared.setdefault("image_embedder", {})
    if "fn" not in cache:
        cache["fn"] = get_embedder(spec)
    return embed_split(ctx.splits[split], cache["fn"], valid, progress=ctx.config.progress)


def _linked_eval(ctx, a_name: str, b_name: str) -> set[int]:
    links = ctx.all_links()
    sel = (links["split_a"] == a_name) & (links["split_b"] == b_name)
    return set(links.loc[sel, "index_b"].astype(int))


@register_backend("semantic_duplicate", "image", needs={"embed_pyramid", "digest"})
def semantic_duplicates(ctx, check) -> list:
    """Evaluation images whose embedding is closer to a training image's than unrelated images ever are.

    The threshold is calibrated on nearest-neighbour similarities inside the training split (exact
    copies left out; rank 2 when the training split holds many near-copies of itself, as
    measured by the augmented-duplicate calibration). Images already linked by exact or augmented
    duplicates are not reported again.
    """
    from .calibration import null_scores

    splits = ctx.splits
    opts = {"null_samples": 5000, **ctx.config.options(check.name)}
    fixed = opts.get("threshold") or ctx.config.thresholds.get(check.name)
    emb = {n: _embeddings(ctx, n, ctx.valid(n)) for n in splits}
    index = {n: np.flatnonzero(ctx.valid(n)) for n in splits}
    train = splits.train

    def null_for_rank(rank: int) -> np.ndarray:
        digests = [ctx.signatures.get(train, "digest")[i] for i in index[train]]
        return null_scores(emb[train], metric="cosine", exact_keys=digests, neighbor_rank=rank,
                           max_samples=int(opts["null_samples"]), random_state=ctx.config.random_state)

    threshold, null, source = semantic_threshold(ctx, opts, fixed, null_for_rank)
    findings = []
    order = [train] + splits.eval_names
    for a_pos, a_name in enumerate(order):
        for b_name in order[a_pos + 1:]:
            if not len(emb[a_name]) or not len(emb[b_name]):
                continue
            sims, idx = nearest(emb[a_name], emb[b_name], k=1, metric="cosine")
            hit = np.flatnonzero(sims[:, 0] >= threshold)
            already = _linked_eval(ctx, a_name, b_name)
            ib = index[b_name][hit]
            ia = index[a_name][idx[hit, 0]]
            keep = np.array([int(j) not in already for j in ib], dtype=bool)
            ia, ib, score = ia[keep], ib[keep], sims[hit, 0][keep]
            if not len(ib):
                continue
            pairs = make_pairs(a_name, ia, b_name, ib, check.name, score)
            ctx.links.append(pairs)
            findings.append(semantic_image_finding(ctx, check.name, a_name, b_name, pairs, ib, threshold,
                                                   source, null))
    return findings


def semantic_image_finding(ctx, check_name: str, a_name: str, b_name: str, pairs, ib, threshold: float,
                           source: str, null) -> Finding:
    """The image ``semantic_duplicate`` finding for the evaluation images ``ib`` of ``b_name`` linked
    to ``a_name`` (``pairs``): one builder for the local and the Spark engine."""
    count = len(np.unique(ib))
    n_b = len(ctx.splits[b_name])
    involves_train = a_name == ctx.splits.train
    return Finding(
        check=check_name,
        severity=ctx.severity(check_name, "warning"),
        title=f"{count} of {n_b} {b_name!r} images are near-identical to {a_name!r} images",
        detail=(f"{count} images in {b_name!r} ({count / max(n_b, 1):.1%}) have a {a_name!r} image "
                f"with embedding similarity >= {threshold:.3f} ({source}) that no flip, rotation, "
                "crop or photometric change explains: the same scene or object seen again."
                + (" Scores on them overstate how the model does on new scenes." if involves_train else "")),
        remedy=("Split by scene, session or source (groups=), or re-split with lg.resplit(); "
                "inspect the pairs in the report."),
        splits=(a_name, b_name), count=count, pairs=pairs,
        extra={"threshold": float(threshold), "embedder": getattr(ctx.config.embedder, "__name__",
                                                                   ctx.config.embedder or "pyramid"),
               "calibration": {"source": source, "null_quantiles": _quantiles(null)}})


def semantic_threshold(ctx, opts: dict, fixed, null_for_rank) -> tuple[float, np.ndarray, str]:
    """The image ``semantic_duplicate`` threshold, its null and where it came from: ``fixed`` when
    set, else calibrated on ``null_for_rank(rank)`` (the training images' rank-1 neighbour
    similarities, rank 2 when the augmented calibration found the training split full of
    near-copies); one rule for the local and the Spark engine."""
    if fixed is not None:
        return float(fixed), np.zeros(0), "threshold set by the user"
    aug = ctx.shared.get("image_calibration") or {}
    rank = int(opts.get("null_rank", 2 if "rank-2" in aug.get("source", "") else 1))
    null = null_for_rank(rank)
    threshold = calibrated_threshold(null, float(opts.get("fpr", ctx.config.fpr)), default=0.99,
                                     extrapolate="fisher")
    return threshold, null, f"calibrated on {len(null)} training images (rank-{rank} neighbour), fpr {ctx.config.fpr:g}"
