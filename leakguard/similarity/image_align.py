"""Precise verification of candidate image pairs: align, then correlate.

With OpenCV installed (the ``image`` extra) the audit verifies pairs by keypoints
(:func:`verify_keypoints`): SIFT on a 128 px grey thumbnail (the ``thumb_kp`` signature, keypoints
found once per image), Lowe's ratio test against the training image's descriptors and their mirror
image, one RANSAC affine fit each (flips, 90-degree and small rotations, scale, crop and aspect in
one step), ECC refinement when the fit is rough (blurred copies), then the photometric check: the
band-passed Pearson r of b against a warped onto it, over their overlap. Unrelated look-alikes
rarely get 8 agreeing keypoints; hypotheses with 5-7 count with a small discount. The evidence
names the transform ("hflip, rotate +10 deg, crop 84% of the training image").

Without OpenCV, and for tiny images (digits), the numpy bank below does the alignment.
A candidate pair (a, b) is explained by a geometric hypothesis "b is a window of a, after a
dihedral transform (flip / 90-degree rotation) and a small rotation" -- or the same with a and b
swapped -- and a photometric change that a correlation coefficient ignores (brightness, contrast,
grey, mild blur, noise, JPEG). The hypotheses form a fixed bank (angles every 5 degrees up to 15,
window sides from 70 % to 100 % in each axis, every offset on the thumbnail grid, plus small
translations); the score is the best masked normalised cross-correlation (Pearson r, -1..1) on
64 x 64 grey thumbnails, band-passed so that half-step misalignment costs little. The best
hypothesis is kept as evidence ("hflip, rotate 10, window 84% x 92%").

>>> import numpy as np
>>> from leakguard.signatures.image import thumbnail, dihedral
>>> rng = np.random.default_rng(0)
>>> img = rng.normal(size=(64, 64)).cumsum(0).cumsum(1)          # a smooth random picture
>>> match = verify_pair(thumbnail(img), thumbnail(dihedral(img, 1)[8:60, 4:64]))
>>> round(match.score, 2) > 0.9, match.dihedral
(True, 1)
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..signatures.image import DIHEDRAL_INVERSE, DIHEDRAL_NAMES, THUMB, dihedral, thumbnail
from ..signatures.registry import register_signature

ANGLES = (0.0, -5.0, 5.0, -10.0, 10.0, -15.0, 15.0)
SIDES = (1.0, 0.92, 0.84, 0.77, 0.70)
MIN_WINDOW_AREA = 0.6
SHIFT_WINDOW = 0.75      # translation hypotheses: the central 75 % of one image slides over the other
BLUR_SIGMA = 0.8
COARSE_SIGMA = 4.0
MIN_VALID = 0.6          # share of the template that must land on valid pixels


@dataclass
class Match:
    """The best hypothesis for a pair: score (Pearson r) and the transform that explains it."""

    score: float
    dihedral: int = 0
    angle: float = 0.0
    window: tuple[float, float] = (1.0, 1.0)
    swapped: bool = False      # True: a is the window of b (b was cropped into a)
    shift: bool = False        # True: a translation, not a crop, explains it
    inliers: int = 0           # keypoint matches consistent with the transform (0: not keypoint-verified)

    def describe(self) -> str:
        parts = []
        if self.dihedral:
            parts.append(DIHEDRAL_NAMES[self.dihedral])
        if self.angle:
            parts.append(f"rotate {-self.angle:+.0f} deg")  # counter-clockwise positive, as PIL
        if self.shift:
            parts.append("shift")
        elif self.window != (1.0, 1.0):
            share = self.window[0] * self.window[1]
            parts.append(f"crop {share:.0%} of the {'evaluation' if self.swapped else 'training'} image")
        return ", ".join(parts) if parts else "same framing (photometric change only)"


def _windows():
    return [(sy, sx) for sy in SIDES for sx in SIDES if sy * sx >= MIN_WINDOW_AREA - 1e-9]


def prepare(thumb: np.ndarray) -> np.ndarray:
    """A uint8 thumbnail (h, w), or a stack of them (N, h, w), as band-passed float32 for correlation.

    The light blur forgives half-step misalignment; removing the coarse blur keeps smooth
    gradients (sky, skin, vignetting), which correlate with any other smooth picture, from
    deciding the score. A stack is filtered in one call (no blur across images).
    """
    t = np.asarray(thumb, dtype=np.float32)
    h, w = t.shape[-2:]
    # each filter is a separable linear operator: two small matrix products per filter for the whole
    # stack (2.5x less CPU than scipy's gaussian_filter, same kernels and borders; within 1e-6 relative)
    fine_h, fine_w = _gaussian_operator(h, BLUR_SIGMA), _gaussian_operator(w, BLUR_SIGMA)
    coarse_h, coarse_w = _gaussian_operator(h, COARSE_SIGMA), _gaussian_operator(w, COARSE_SIGMA)
    return (fine_h @ t @ fine_w.T - coarse_h @ t @ coarse_w.T).astype(np.float32, copy=False)


@lru_cache(maxsize=16)
def _gaussian_operator(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix of scipy's 1-d Gaussian filter with ``mode="nearest"`` (replicated borders)."""
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.eye(n), sigma, axis=0, mode="nearest").astype(np.float32)


@lru_cache(maxsize=None)
def _rotation_grid(n: int, angle: float):
    """Source coordinates (y, x) of every pixel of an n x n image rotated by ``angle`` degrees."""
    t = np.deg2rad(angle)
    c = (n - 1) / 2.0
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    ys = c + (yy - c) * np.cos(t) - (xx - c) * np.sin(t)
    xs = c + (yy - c) * np.sin(t) + (xx - c) * np.cos(t)
    return ys, xs


def _bilinear(img: np.ndarray, ys: np.ndarray, xs: np.ndarray):
    """Bilinear samples of ``img`` (n, n) at (ys, xs) and the mask of samples inside it."""
    n0, n1 = img.shape
    inside = (ys >= -0.5) & (ys <= n0 - 0.5) & (xs >= -0.5) & (xs <= n1 - 0.5)
    y = np.clip(ys, 0, n0 - 1)
    x = np.clip(xs, 0, n1 - 1)
    y0 = np.minimum(np.floor(y).astype(np.int64), n0 - 2)
    x0 = np.minimum(np.floor(x).astype(np.int64), n1 - 2)
    fy, fx = y - y0, x - x0
    v = (img[y0, x0] * (1 - fy) * (1 - fx) + img[y0 + 1, x0] * fy * (1 - fx)
         + img[y0, x0 + 1] * (1 - fy) * fx + img[y0 + 1, x0 + 1] * fy * fx)
    return v.astype(np.float32), inside


def _search_stack(img: np.ndarray, dihedrals, angles):
    """The image under each (dihedral, angle) hypothesis, with validity masks: (K, n, n) each."""
    n = img.shape[0]
    stack, masks, labels = [], [], []
    for d in dihedrals:
        base = np.ascontiguousarray(dihedral(img, d))
        for a in angles:
            if a == 0:
                stack.append(base)
                masks.append(np.ones_like(base))
            else:
                ys, xs = _rotation_grid(n, a)
                v, inside = _bilinear(base, ys, xs)
                stack.append(v * inside)
                # rotated copies have filled corners, and the band-pass smears their edge inward:
                # pixels near the edge of the valid region do not count
                masks.append(_erode(inside, max(1, n // 10)).astype(np.float32))
            labels.append((d, a))
    return np.stack(stack), np.stack(masks), labels


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return binary_erosion(mask, iterations=px, border_value=1)


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    if img.shape == (h, w):
        return img
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR), dtype=np.float32)


def _box_sums(X: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Sums of every th x tw window of each image in X (K, n, n), by integral images."""
    c = np.zeros((X.shape[0], X.shape[1] + 1, X.shape[2] + 1), dtype=np.float64)
    c[:, 1:, 1:] = X.cumsum(axis=1).cumsum(axis=2)
    return c[:, th:, tw:] - c[:, :-th, tw:] - c[:, th:, :-tw] + c[:, :-th, :-tw]


def _masked_ncc(S, M, T):
    """Best masked Pearson r of template T (th, tw) over every offset of S (K, n, n) with mask M.

    Returns (best r, flat index into (K, Oy, Ox), (Oy, Ox)).
    """
    from numpy.lib.stride_tricks import sliding_window_view as windows

    th, tw = T.shape
    SM = S * M
    n_valid = _box_sums(M, th, tw)
    s1 = _box_sums(SM, th, tw)
    s2 = _box_sums(SM * S, th, tw)
    wM = windows(M, (th, tw), axis=(1, 2))
    wSM = windows(SM, (th, tw), axis=(1, 2))
    if M.min() == 1.0:  # nothing masked: the template's own sums are constants
        t1 = np.full(n_valid.shape, T.sum())
        t2 = np.full(n_valid.shape, (T * T).sum())
    else:
        t1 = np.tensordot(wM, T, axes=2)
        t2 = np.tensordot(wM, T * T, axes=2)
    st = np.tensordot(wSM, T, axes=2)
    n_safe = np.maximum(n_valid, 1.0)
    cov = st - s1 * t1 / n_safe
    var_s = s2 - s1 * s1 / n_safe
    var_t = t2 - t1 * t1 / n_safe
    denom = np.sqrt(np.maximum(var_s, 0) * np.maximum(var_t, 0))
    # flat regions have no texture to correlate; they never count as a match
    ok = (n_valid >= MIN_VALID * th * tw) & (var_s > 1e-3 * n_safe) & (var_t > 1e-3 * n_safe)
    r = np.where(ok & (denom > 0), cov / np.where(denom > 0, denom, 1.0), -1.0)
    flat = int(np.argmax(r))
    return float(r.ravel()[flat]), flat, r.shape


def _one_direction(search: np.ndarray, template_src: np.ndarray, dihedrals, angles, windows,
                   top: int = 1, shifts: bool = True) -> list[Match]:
    """The ``top`` best hypotheses "template_src is a window of transform(search)"."""
    n = search.shape[0]
    S, M, labels = _search_stack(search, dihedrals, angles)
    found: list[Match] = []
    for sy, sx in windows:
        th, tw = max(4, int(round(sy * n))), max(4, int(round(sx * n)))
        T = _resize(template_src, th, tw)
        r, flat, shape = _masked_ncc(S, M, T)
        k = flat // (shape[1] * shape[2])
        d, a = labels[k]
        found.append(Match(r, d, a, (sy, sx)))
    # translations: the centre of template_src slides over the un-rotated search images
    c = int(round(n * (1 - SHIFT_WINDOW) / 2))
    T = template_src[c:n - c, c:n - c]
    keep = [i for i, (_, a) in enumerate(labels) if a == 0]
    if shifts and keep:
        r, flat, shape = _masked_ncc(S[keep], M[keep], T)
        d, _ = labels[keep[flat // (shape[1] * shape[2])]]
        found.append(Match(r, d, 0.0, (1.0, 1.0), shift=True))
    found.sort(key=lambda m: -m.score)
    return found[:top]


def _halve(img: np.ndarray) -> np.ndarray:
    n = img.shape[0] // 2 * 2
    return img[:n, :n].reshape(n // 2, 2, n // 2, 2).mean(axis=(1, 3))


def _refine(search: np.ndarray, template_src: np.ndarray, m: Match) -> Match:
    """Score one coarse hypothesis at full resolution (every offset, that transform only)."""
    if m.shift:
        return _one_direction(search, template_src, (m.dihedral,), (0.0,), [])[0]
    # the coarse angle grid is 5 degrees; half steps either side at full resolution
    angles = (m.angle - 2.5, m.angle, m.angle + 2.5) if m.angle or search.shape[0] > 16 else (0.0,)
    return _one_direction(search, template_src, (m.dihedral,), angles, [m.window], shifts=False)[0]


def verify_pair(thumb_a: np.ndarray, thumb_b: np.ndarray, dihedrals=None, angles=ANGLES,
                crops: bool = True, accept: float = 0.97, prepared: bool = False,
                reject_below: float = -1.0) -> Match:
    """Best alignment of thumbnails a (training) and b (evaluation); ``Match.score`` in [-1, 1].

    Coarse to fine: every hypothesis is scored on half-size images, the best few are re-scored at
    full size (32 / 64 for the default 64 x 64 thumbnails). ``dihedrals``: the dihedral
    transforms d to try ("b looks like dihedral(a, d)");
    None picks the 2 most likely of the 8 from a whole-frame comparison. ``crops=False`` tries
    whole frames and small shifts only. A whole-frame match scoring ``accept`` or more ends the
    search early (nothing else can explain the pair better in a way that matters).
    ``prepared=True``: the thumbnails already went through :func:`prepare`. ``reject_below``: a
    pair whose best coarse whole-frame score (every transform and angle) stays under it is not
    searched further (unrelated pairs are the bulk of the candidates).
    """
    a = thumb_a if prepared else prepare(thumb_a)
    b = thumb_b if prepared else prepare(thumb_b)
    a16, b16 = _halve(a), _halve(b)
    if dihedrals is None:
        # whole frames at every angle are cheap on 16 x 16 images and rank the 8 transforms well
        whole = _one_direction(a16, b16, tuple(range(8)), angles, [(1.0, 1.0), (0.84, 0.84)], top=99)
        whole += _one_direction(b16, a16, tuple(range(8)), angles, [(0.84, 0.84)], top=99)
        whole.sort(key=lambda m: -m.score)
        ds = tuple(dict.fromkeys(m.dihedral for m in whole))[:2]
        if whole[0].score < reject_below:
            return whole[0]
    else:
        ds = tuple(dict.fromkeys(int(d) for d in dihedrals))
    # fast path: same framing under one of the dihedral transforms
    best = max((_one_direction(a, b, (d,), (0.0,), [(1.0, 1.0)], shifts=False)[0] for d in ds),
               key=lambda m: m.score)
    if best.score >= accept:
        return best
    if not crops and tuple(angles) == (0.0,):
        # whole frames and shifts only, at full resolution (tiny images: nothing else applies)
        for search, tmpl, dd, swapped in ((a, b, ds, False), (b, a, tuple(DIHEDRAL_INVERSE[d] for d in ds), True)):
            r = _one_direction(search, tmpl, dd, (0.0,), [])[0]
            if r.score > best.score:
                if swapped:
                    r.dihedral, r.swapped = DIHEDRAL_INVERSE[r.dihedral], True
                best = r
        return best
    wins = _windows() if crops else [(1.0, 1.0)]
    inv = tuple(DIHEDRAL_INVERSE[d] for d in ds)
    for m in _one_direction(a16, b16, ds, angles, wins, top=2):
        r = _refine(a, b, m)
        if r.score > best.score:
            best = r
    for m in _one_direction(b16, a16, inv, angles, wins, top=2):
        r = _refine(b, a, m)
        if r.score > best.score:
            r.dihedral = DIHEDRAL_INVERSE[r.dihedral]
            r.angle = -r.angle
            r.swapped = True
            best = r
    return best


@lru_cache(maxsize=4)
def _dihedral_perms(n: int) -> np.ndarray:
    """(8, n*n) flat-index permutations: ``img.ravel()[perm[d]] == dihedral(img, d).ravel()``."""
    idx = np.arange(n * n).reshape(n, n)
    return np.stack([np.ascontiguousarray(dihedral(idx, d)).ravel() for d in range(8)])


def standardise(prepared: np.ndarray) -> np.ndarray:
    """(N, n, n) prepared thumbnails -> (N, n*n) rows of zero mean and unit norm (flat rows: 0)."""
    z = prepared.reshape(len(prepared), -1).astype(np.float32)
    z = z - z.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(norm > 1e-3 * np.sqrt(z.shape[1]), norm, np.inf)


def whole_frame_scores(z_a: np.ndarray, z_b: np.ndarray, ia, ib, chunk: int = 512) -> np.ndarray:
    """(P, 8) Pearson r of b against dihedral(a, d) for every pair, same framing; vectorised.

    ``z_a``, ``z_b``: :func:`standardise` rows of square thumbnails.
    """
    n = int(round(np.sqrt(z_a.shape[1])))
    out = np.empty((len(ia), 8), dtype=np.float32)
    for lo in range(0, len(ia), chunk):
        a = z_a[np.asarray(ia[lo:lo + chunk])].reshape(-1, n, n)
        b = z_b[np.asarray(ib[lo:lo + chunk])].reshape(-1, n, n)
        # flips are strided views (no gathered copies); d + 4 adds the transpose, which moves to b:
        # <transpose(x), b> = <x, transpose(b)>
        for d in range(4):
            ad = a[:, :, ::-1] if d & 1 else a
            ad = ad[:, ::-1] if d & 2 else ad
            out[lo:lo + len(a), d] = np.einsum("pij,pij->p", ad, b)
            out[lo:lo + len(a), d + 4] = np.einsum("pij,pji->p", ad, b)
    return out


def verify_pairs(thumbs_a, thumbs_b, ia, ib, dihedrals=None, progress: bool = False, **kw) -> list[Match]:
    """:func:`verify_pair` for each candidate (ia[k], ib[k]); ``dihedrals[k]`` optional per pair."""
    from tqdm.auto import tqdm

    out = []
    for k in tqdm(range(len(ia)), desc="verifying image pairs", unit="pair", disable=not progress,
                  leave=False):
        ds = None if dihedrals is None or dihedrals[k] is None else dihedrals[k]
        out.append(verify_pair(thumbs_a[ia[k]], thumbs_b[ib[k]], ds, **kw))
    return out




# ---- candidates for small rotations and crops: rotated central discs ----------------------------

DISC_ANGLES = (0.0, -7.0, 7.0, -14.0, 14.0)   # residual rotation after the nearest one: <= 3.5 degrees
DISC_SIDE = 16


@lru_cache(maxsize=1)
def _disc_mask(n: int = DISC_SIDE) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2.0
    return (yy - c) ** 2 + (xx - c) ** 2 <= (0.41 * n) ** 2


@lru_cache(maxsize=16)
def _disc_operator(n: int, angle: float):
    """(D, n * n) sparse matrix: an n x n image (flattened) -> its central disc rotated by ``angle``
    at ``DISC_SIDE`` px. The bilinear rotation, the 2 x 2 mean pooling down to ``DISC_SIDE`` and the
    disc mask are all linear, so one sparse product does them for every image at once (~64
    pixels per output: 60x less work than the dense per-image resampling)."""
    from scipy import sparse

    if angle:
        ys, xs = _rotation_grid(n, float(angle))
        y = np.clip(ys, 0, n - 1)
        x = np.clip(xs, 0, n - 1)
        y0 = np.minimum(np.floor(y).astype(np.int64), n - 2)
        x0 = np.minimum(np.floor(x).astype(np.int64), n - 2)
        fy, fx = y - y0, x - x0
        rows = np.tile(np.arange(n * n), 4)
        cols = np.concatenate([(y0 * n + x0).ravel(), ((y0 + 1) * n + x0).ravel(),
                               (y0 * n + x0 + 1).ravel(), ((y0 + 1) * n + x0 + 1).ravel()])
        vals = np.concatenate([((1 - fy) * (1 - fx)).ravel(), (fy * (1 - fx)).ravel(),
                               ((1 - fy) * fx).ravel(), (fy * fx).ravel()])
        op = sparse.csr_matrix((vals, (rows, cols)), shape=(n * n, n * n))
    else:
        op = sparse.identity(n * n, format="csr")
    side = n
    while side > DISC_SIDE:  # the 2 x 2 mean pooling (an odd last row / column is dropped)
        half = side // 2
        oy, ox = np.mgrid[0:half, 0:half]
        rows = np.repeat((oy * half + ox).ravel(), 4)
        src = [((2 * oy + dy) * side + 2 * ox + dx).ravel() for dy in (0, 1) for dx in (0, 1)]
        cols = np.stack(src, axis=1).ravel()
        pool = sparse.csr_matrix((np.full(len(rows), 0.25), (rows, cols)), shape=(half * half, side * side))
        op = pool @ op
        side = half
    return op[np.flatnonzero(_disc_mask(side).ravel())].astype(np.float32).tocsr()


def disc_descriptors(prepared: np.ndarray, angles=(0.0,)) -> np.ndarray:
    """(N, len(angles), D) unit rows: the central disc of each prepared thumbnail, rotated by each
    angle, at 16 x 16. The corners -- where a rotated copy has its black fill and a crop loses the
    most -- are left out, so a copy rotated by about one of ``angles`` or cropped to >= 70 % has a
    near neighbour among the training images' unrotated discs; the candidates of small rotations.
    One matrix product per angle (:func:`_disc_operator`).
    """
    prepared = np.asarray(prepared, dtype=np.float32)
    n_img, n = len(prepared), prepared.shape[-1] if len(prepared) else THUMB
    mask = _disc_mask()
    out = np.zeros((n_img, len(angles), int(mask.sum())), np.float32)
    if not n_img:
        return out
    pixels = np.ascontiguousarray(prepared.reshape(n_img, -1).T)  # (n * n, N): the sparse product's fast layout
    for h, angle in enumerate(angles):
        z = np.asarray(_disc_operator(n, float(angle)) @ pixels).T
        z = z - z.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(z, axis=1, keepdims=True)
        out[:, h] = z / np.where(norm > 1e-6, norm, np.inf)
    return out


# ---- keypoint verification (OpenCV): rotation, scale, crop and flips in one step ------------------

KEYPOINT_SIDE = 128      # keypoints are found on this square grey thumbnail (the ``thumb_kp`` signature)
MIN_INLIERS = 8          # consistent keypoint matches that make a transform evidence on its own
WEAK_INLIERS = 5         # 5-7 (blurred copies, low texture): weak evidence, the score is discounted
WEAK_PENALTY = 0.03      # by this much (unrelated look-alikes reach r ~0.97 with 6 inliers after ECC)
RATIO = 0.8              # Lowe's ratio test
RANSAC_PX = 3.0          # inlier tolerance, pixels of the 128 px thumbnail
MIN_OVERLAP = 0.5        # the aligned overlap must cover this share of both images
FINE_SIGMA, COARSE_SIGMA_KP = 1.0, 6.0   # band-pass of the post-warp correlation (128 px frame)
BLUR_HYPOTHESES = (1.0, 2.0)             # one side blurred by this much (a blurred copy), both ways
MAX_KEYPOINTS = 150      # as separable as 300 on the benchmark (best unrelated 0.506 vs copies >= 0.95), 4x less matching
LOW_CONTRAST_RETRY = 16  # fewer keypoints than this at CONTRAST: the LOW_CONTRAST ones are kept
CONTRAST, LOW_CONTRAST = 0.02, 0.002  # SIFT contrast thresholds (OpenCV's default is 0.04)
SIFT_LAYERS = 3          # OpenCV's default nOctaveLayers (the contrast test divides by it)
BLURRED_DETECTION = 1.5  # second chance: one side's keypoints detected after this blur (blurred copies)
ECC_BELOW = 0.98         # post-warp r under this: refine the keypoint affine with ECC on the pixels
NOISE_SHARE_MAX = 0.5    # the noise correction of the post-warp r: noise explains at most this share of a side's band
WEAK_BESIDE = 4          # ... unless another hypothesis of the pair has this many times its inliers

# SIFT descriptor of the mirror image: 4 x 4 cells x 8 orientation bins, rows reversed and
# orientations mirrored (checked against descriptors computed on flipped pixels in the tests)
_IDX = np.arange(128).reshape(4, 4, 8)
MIRROR_PERM = _IDX[::-1][:, :, (8 - np.arange(8)) % 8].ravel()


def have_opencv() -> bool:
    """True when ``cv2`` (opencv-python-headless) imports; the keypoint verification needs it."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Keypoints:
    """SIFT keypoints of one 128 px thumbnail: positions, descriptors, mirrored descriptors, pixels."""

    points: np.ndarray        # (n, 2) float32, x y in the thumbnail
    descriptors: np.ndarray   # (n, 128) float32
    mirrored: np.ndarray      # (n, 128) the descriptors the mirror image would have at the same points
    pixels: np.ndarray        # (S, S) float32 grey thumbnail

    def __len__(self) -> int:
        return len(self.points)


_SIFT: dict = {}


@register_signature("image", "thumb_kp", version="3")
def image_thumb_kp(img: np.ndarray) -> np.ndarray:
    """The keypoint thumbnail: ``KEYPOINT_SIDE`` px square grey uint8, contrast-stretched."""
    return thumbnail(img, KEYPOINT_SIDE)


def keypoint_features(thumb: np.ndarray, blur: float = 0.0, single: bool = False) -> Keypoints:
    """SIFT keypoints of a square uint8 grey thumbnail (``thumbnail(img, KEYPOINT_SIDE)``).

    ``blur``: detect on the thumbnail blurred by this sigma (the pixels kept for the photometric
    check stay sharp): the keypoints a blurred copy of the picture would have.

    Keypoints at contrast ``CONTRAST`` (thumbnails are small and contrast-stretched: below
    OpenCV's default), or at ``LOW_CONTRAST`` when fewer than ``LOW_CONTRAST_RETRY`` clear it.
    One detection at the low threshold gives both: OpenCV keeps a keypoint when
    ``response * nOctaveLayers >= contrastThreshold``, so the usual set is the low set filtered by
    response (the same keypoints as two detections on 1022 of 1022 thumbnails, blurred ones
    included, of the similarity bench and distinct pictures; on distinct pictures 99.5 % needed
    the second detection, so this halves the SIFT cost there). Keypoints come ordered by response
    (strongest first), a canonical order whatever OpenCV's internal one.
    """
    import cv2

    if "sift" not in _SIFT:
        _SIFT["sift"] = cv2.SIFT_create(nfeatures=MAX_KEYPOINTS, nOctaveLayers=SIFT_LAYERS,
                                        contrastThreshold=LOW_CONTRAST)
    sharp = np.ascontiguousarray(thumb, dtype=np.uint8)
    img = cv2.GaussianBlur(sharp, (0, 0), blur) if blur else sharp
    if not single:
        # the verification's keypoints: detected at CONTRAST, again at LOW_CONTRAST when fewer
        # than LOW_CONTRAST_RETRY clear it, in OpenCV's order. The single detection below gives
        # the same sets but in another order, and RANSAC's hypotheses depend on the order: on a
        # brick texture two disjoint crops then verified at 0.83 (a hard negative linked)
        if "sift_hi" not in _SIFT:
            _SIFT["sift_hi"] = cv2.SIFT_create(nfeatures=MAX_KEYPOINTS, nOctaveLayers=SIFT_LAYERS,
                                               contrastThreshold=CONTRAST)
        kps, des = _SIFT["sift_hi"].detectAndCompute(img, None)
        if len(kps) < LOW_CONTRAST_RETRY:
            low = _SIFT["sift"].detectAndCompute(img, None)
            if len(low[0]) > len(kps):
                kps, des = low
        pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
        des = np.zeros((0, 128), np.float32) if des is None else des.astype(np.float32)
        return Keypoints(pts, des, np.ascontiguousarray(des[:, MIRROR_PERM]), sharp.astype(np.float32))
    kps, des = _SIFT["sift"].detectAndCompute(img, None)
    response = np.array([k.response for k in kps], dtype=np.float64)
    order = np.argsort(-response, kind="stable")
    strong = order[response[order] * SIFT_LAYERS >= CONTRAST]
    # smooth pictures (a retina's vessels, skies) only have faint structure: they keep the
    # low-contrast keypoints rather than stay unverifiable
    keep = strong if len(strong) >= LOW_CONTRAST_RETRY else order
    pts = np.array([kps[i].pt for i in keep], dtype=np.float32).reshape(-1, 2)
    des = np.zeros((0, 128), np.float32) if des is None or not len(keep) else des[keep].astype(np.float32)
    return Keypoints(pts, des, np.ascontiguousarray(des[:, MIRROR_PERM]), sharp.astype(np.float32))


COARSE_SIDE = 64         # the prefilter's keypoints are found on the keypoint thumbnail halved
COARSE_MATCHES = 3       # fewer ratio-test matches than this at COARSE_SIDE: no keypoint hypothesis is tried


def coarse_keypoints(thumb: np.ndarray) -> Keypoints:
    """SIFT keypoints of the keypoint thumbnail reduced to ``COARSE_SIDE`` px, positions in the
    thumbnail's own frame: the cheap first look of :func:`coarse_matches` (a detection at 64 px
    costs a quarter of one at 128 px)."""
    import cv2

    side = int(np.asarray(thumb).shape[0])
    small = cv2.resize(np.ascontiguousarray(thumb, dtype=np.uint8), (COARSE_SIDE, COARSE_SIDE),
                       interpolation=cv2.INTER_AREA)
    k = keypoint_features(small, single=True)  # only counts matches: the order does not matter
    return Keypoints(k.points * (side / COARSE_SIDE), k.descriptors, k.mirrored, k.pixels)


def coarse_matches(ka: Keypoints, kb: Keypoints) -> int:
    """Ratio-test matches between two :func:`coarse_keypoints` sets, the better of a as it is and
    mirrored. The prefilter of the keypoint verification: augmented copies of the similarity bench
    (seeds 0-2, every pair the 128 px verification accepted) keep >= 3; unrelated distinct pictures
    that reach verification have 0-2 in 134 of 144 pairs."""
    import cv2

    if len(ka) < 2 or len(kb) < 2:
        return 0
    matcher = _SIFT.setdefault("matcher", cv2.BFMatcher(cv2.NORM_L2))
    best = 0
    for desc_a in (ka.descriptors, ka.mirrored):
        pairs = matcher.knnMatch(kb.descriptors, desc_a, k=2)
        best = max(best, sum(1 for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance))
    return best


BLUR_MISMATCH = 0.6  # one picture keeps less than this share of the other's fine detail: maybe a blurred copy


def fine_detail(pixels: np.ndarray) -> float:
    """Share of a grey thumbnail's variance that a blur of ``BLURRED_DETECTION`` removes: how sharp
    it is. Blurred copies of the benchmark keep <= 0.5 of their source's (rotate+blur <= 0.41);
    1/3 to 2/3 of unrelated candidate pairs differ that much."""
    import cv2

    x = np.asarray(pixels, dtype=np.float32)
    high = x - cv2.GaussianBlur(x, (0, 0), BLURRED_DETECTION)
    return float((high * high).mean() / max(float(x.var()), 1e-6))


def _band(img: np.ndarray, mask: np.ndarray, blur: float = 0.0) -> np.ndarray:
    """Band-pass inside ``mask`` only (normalised convolution), so borders and black corners of a
    rotated copy add no edges of their own."""
    import cv2

    fine = max(FINE_SIGMA, blur)
    den_f = cv2.GaussianBlur(mask, (0, 0), fine)
    den_c = cv2.GaussianBlur(mask, (0, 0), COARSE_SIGMA_KP)
    im = img * mask
    return (cv2.GaussianBlur(im, (0, 0), fine) / np.maximum(den_f, 1e-3)
            - cv2.GaussianBlur(im, (0, 0), COARSE_SIGMA_KP) / np.maximum(den_c, 1e-3))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 1e-6 * len(x) else -1.0


def noise_sigma(pixels: np.ndarray) -> float:
    """Standard deviation of white noise in a grey picture, by Immerkaer's estimator (the mean
    absolute response of a 3 x 3 kernel that cancels locally planar content). Smooth pictures give
    their true noise; textures read as some noise too (an overestimate; see :func:`warped_correlation`).
    """
    return float(_noise_sigmas(np.asarray(pixels, dtype=np.float32)[None])[0])


def _noise_sigmas(stack: np.ndarray) -> np.ndarray:
    """:func:`noise_sigma` of each picture of an (N, h, w) float32 stack (each picture alone)."""
    t = stack
    if t.shape[1] < 3 or t.shape[2] < 3:
        return np.zeros(len(t))
    # the kernel [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] is the outer product of [1, -2, 1] with itself
    rows = t[:, :-2] - 2 * t[:, 1:-1] + t[:, 2:]
    resp = rows[:, :, :-2] - 2 * rows[:, :, 1:-1] + rows[:, :, 2:]
    return np.sqrt(np.pi / 2) * np.abs(resp).mean(axis=(1, 2), dtype=np.float64) / 6.0


@lru_cache(maxsize=8)
def _prepare_noise_gain(n: int) -> float:
    """Variance that :func:`prepare` keeps of unit white noise on an n x n thumbnail (centre tap)."""
    delta = np.zeros((n, n), np.float32)
    delta[n // 2, n // 2] = 1.0
    return float((prepare(delta).astype(np.float64) ** 2).sum())


def noise_factors(thumbs: np.ndarray, prepared: np.ndarray) -> np.ndarray:
    """(N,) factors that correct a same-framing correlation of :func:`prepare` d thumbnails for
    the attenuation noise causes: 1 / sqrt(1 - share), share = the thumbnail's white-noise variance
    (:func:`noise_sigma`) kept by the band-pass over the band-passed picture's variance, at most
    ``NOISE_SHARE_MAX``. The corrected r of a pair is r times both factors, clipped at 1 (Spearman's
    correction, as :func:`warped_correlation`'s). Each picture's factor depends on itself alone."""
    t = np.asarray(thumbs, dtype=np.float32)
    if not len(t):
        return np.ones(0, np.float32)
    noise = _noise_sigmas(t) ** 2 * _prepare_noise_gain(int(t.shape[-1]))
    var = np.asarray(prepared, dtype=np.float32).reshape(len(t), -1).var(axis=1, dtype=np.float64)
    share = np.minimum(NOISE_SHARE_MAX, noise / np.maximum(var, 1e-12))
    return (1.0 / np.sqrt(1.0 - share)).astype(np.float32)


@lru_cache(maxsize=16)
def band_noise_gain(fine: float, coarse: float) -> float:
    """Variance that the band-pass (blur ``fine`` minus blur ``coarse``, OpenCV's kernels) keeps of
    unit white noise: the sum of the squared taps of its 2-d kernel."""
    import cv2

    n = int(6 * coarse) * 2 + 1
    delta = np.zeros((n, n), np.float32)
    delta[n // 2, n // 2] = 1.0
    kernel = cv2.GaussianBlur(delta, (0, 0), fine) - cv2.GaussianBlur(delta, (0, 0), coarse)
    return float((kernel.astype(np.float64) ** 2).sum())


def _noise_corrected_pearson(x: np.ndarray, y: np.ndarray, noise_x: float, noise_y: float) -> float:
    """Pearson r of x and y corrected for attenuation by their noise variances (Spearman's
    correction): cov / sqrt((var x - noise x) (var y - noise y)), each variance lowered by at most
    ``NOISE_SHARE_MAX`` of itself, clipped at 1. With no noise, :func:`_pearson`."""
    x = x - x.mean()
    y = y - y.mean()
    vx, vy = float((x * x).mean()), float((y * y).mean())
    if np.sqrt(vx * vy) <= 1e-6:
        return -1.0
    cov = float((x * y).mean())
    vx = max(vx - noise_x, vx * (1.0 - NOISE_SHARE_MAX))
    vy = max(vy - noise_y, vy * (1.0 - NOISE_SHARE_MAX))
    return float(min(1.0, cov / np.sqrt(vx * vy)))


def warped_correlation(pix_a: np.ndarray, pix_b: np.ndarray, affine: np.ndarray) -> tuple[float, float]:
    """(Pearson r, overlap share) of b against a warped into b's frame by ``affine`` (2 x 3).

    r is taken over the overlap of the two frames, band-passed; a blur of either side by up to
    ``max(BLUR_HYPOTHESES)`` pixels is forgiven (the best of the blur hypotheses counts).
    Overlap share: the smaller of the shares of a and of b the overlap covers.

    r is corrected for the attenuation that noise causes (:func:`_noise_corrected_pearson`): each
    picture's white-noise variance (:func:`noise_sigma`, on its whole thumbnail) times what the band
    keeps of it (:func:`band_noise_gain`) is taken out of its band variance. A noisy copy of a
    smooth picture (sky, a retina's background: little band-passed signal) scored 0.85-0.89
    against thresholds of 0.91-0.94; the training pairs of the null, clean on both sides, move by
    about 1e-4 (session 6, bench seeds 0-4).
    """
    import cv2

    h, w = pix_b.shape
    warped = cv2.warpAffine(pix_a, affine, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    inside = cv2.warpAffine(np.ones_like(pix_a), affine, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.erode((inside > 0.999).astype(np.float32), np.ones((3, 3), np.uint8))
    sel = mask > 0.5
    area = float(sel.sum())
    det = abs(float(np.linalg.det(affine[:, :2]))) or 1e-9
    share = min(area / (h * w), area / det / pix_a.size)
    if share < MIN_OVERLAP * 0.5 or area < 64:
        return -1.0, share
    # a blurred copy (either side): compare both at the blurrier scales too; the best counts. The
    # coarse half of the band-pass is the same for every scale, and a scale at or under FINE_SIGMA
    # is the plain band-pass: each distinct blur is computed once (9 Gaussian blurs, was 24; same values)
    den_c = cv2.GaussianBlur(mask, (0, 0), COARSE_SIGMA_KP)
    im_w, im_b = warped * mask, pix_b * mask
    coarse_w = cv2.GaussianBlur(im_w, (0, 0), COARSE_SIGMA_KP) / np.maximum(den_c, 1e-3)
    coarse_b = cv2.GaussianBlur(im_b, (0, 0), COARSE_SIGMA_KP) / np.maximum(den_c, 1e-3)
    noise_a, noise_b = noise_sigma(pix_a) ** 2, noise_sigma(pix_b) ** 2
    r = -np.inf
    for fine in dict.fromkeys(max(FINE_SIGMA, s) for s in (0.0, *BLUR_HYPOTHESES)):
        den_f = np.maximum(cv2.GaussianBlur(mask, (0, 0), fine), 1e-3)
        band_w = cv2.GaussianBlur(im_w, (0, 0), fine) / den_f - coarse_w
        band_b = cv2.GaussianBlur(im_b, (0, 0), fine) / den_f - coarse_b
        gain = band_noise_gain(fine, COARSE_SIGMA_KP)
        r = max(r, _noise_corrected_pearson(band_w[sel], band_b[sel], noise_a * gain, noise_b * gain))
    return r, share


# linear maps (x, y) of the dihedral transforms of ``dihedral(img, d)`` about the image centre
def _dihedral_linear(d: int) -> np.ndarray:
    m = np.eye(2)
    if d & 1:
        m = np.diag([-1.0, 1.0]) @ m
    if d & 2:
        m = np.diag([1.0, -1.0]) @ m
    if d & 4:
        m = np.array([[0.0, 1.0], [1.0, 0.0]]) @ m
    return m


_DIHEDRAL_LINEAR = [_dihedral_linear(d) for d in range(8)]


def describe_affine(affine: np.ndarray, score: float, inliers: int) -> Match:
    """A :class:`Match` naming the transform of ``affine`` (a's thumbnail -> b's thumbnail):
    the dihedral transform and small rotation closest to it, and the crop share from its scale."""
    A = np.asarray(affine, dtype=np.float64)[:, :2]
    best = (np.inf, 0, 0.0)
    for d, L in enumerate(_DIHEDRAL_LINEAR):
        R = A @ np.linalg.inv(L)            # what is left after the dihedral transform
        if np.linalg.det(R) <= 0:
            continue
        angle = float(np.degrees(np.arctan2(R[1, 0] - R[0, 1], R[0, 0] + R[1, 1])))
        if abs(angle) < best[0]:
            best = (abs(angle), d, angle)
    _, d, angle = best
    det = abs(float(np.linalg.det(A)))
    sx, sy = np.linalg.norm(A[:, 0]), np.linalg.norm(A[:, 1])
    swapped = det < 1.0                      # a shrinks into b: a is the crop (of b)
    if abs(det - 1.0) < 0.04:
        window = (1.0, 1.0)
    elif swapped:
        window = (float(min(1.0, sy)), float(min(1.0, sx)))
    else:
        window = (float(min(1.0, 1 / sy)), float(min(1.0, 1 / sx)))
    t = np.asarray(affine, dtype=np.float64)[:, 2]
    centre = (KEYPOINT_SIDE - 1) / 2.0
    moved = A @ np.array([centre, centre]) + t - centre
    shift = window == (1.0, 1.0) and float(np.hypot(*moved)) > 0.04 * KEYPOINT_SIDE
    # round the residual rotation to whole degrees; under 2 degrees it is alignment noise
    angle = float(round(angle)) if abs(angle) >= 2 else 0.0
    # angle is clockwise-positive on screen (y axis down); Match.describe() prints -angle, so the
    # evidence reads counter-clockwise positive, as PIL's and torchvision's rotate
    return Match(float(score), d, angle, window, swapped=bool(swapped), shift=bool(shift), inliers=int(inliers))


def _refine_ecc(pix_a: np.ndarray, pix_b: np.ndarray, affine: np.ndarray) -> np.ndarray | None:
    """The affine a -> b refined by OpenCV's ECC from ``affine``; None when it does not converge."""
    import cv2

    try:
        _, warp = cv2.findTransformECC(pix_a, pix_b, np.asarray(affine, np.float32).copy(), cv2.MOTION_AFFINE,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5), None, 5)
    except cv2.error:
        return None
    det = abs(float(np.linalg.det(warp[:, :2])))
    return warp.astype(np.float64) if np.isfinite(warp).all() and 0.25 < det < 4.0 else None


def keypoint_hypotheses(ka: Keypoints, kb: Keypoints, min_inliers: int = WEAK_INLIERS) -> list:
    """The RANSAC affine fits of a pair before any refinement: a list of [post-warp r, overlap
    share, affine a -> b, inliers, refined (False)], one per orientation of a (as it is, mirrored)
    that ``min_inliers`` ratio-test matches agree on with a moderate scale."""
    import cv2

    if len(ka) < min_inliers or len(kb) < min_inliers:
        return []
    matcher = _SIFT.setdefault("matcher", cv2.BFMatcher(cv2.NORM_L2))
    found = []
    for desc_a in (ka.descriptors, ka.mirrored):
        pairs = matcher.knnMatch(kb.descriptors, desc_a, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
        if len(good) < min_inliers:
            continue
        src = ka.points[[g.trainIdx for g in good]]
        dst = kb.points[[g.queryIdx for g in good]]
        affine, inl = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX,
                                           maxIters=1000, confidence=0.995)
        if affine is None or int(inl.sum()) < min_inliers:
            continue
        # crops keep >= ~50 % of the area, resizing is undone by the thumbnails: scale stays moderate
        det = abs(float(np.linalg.det(affine[:, :2])))
        if not 0.25 < det < 4.0:
            continue
        r, share = warped_correlation(ka.pixels, kb.pixels, affine)
        found.append([r, share, affine, int(inl.sum()), False])
    return found


def best_hypothesis(pix_a: np.ndarray, pix_b: np.ndarray, hypotheses: list, refine_top: int | None = None):
    """The best of :func:`keypoint_hypotheses` as a :class:`Match`, or None (no hypothesis covers
    ``MIN_OVERLAP``). A rough fit (r under ``ECC_BELOW``) is refined by ECC first, in place (a
    hypothesis is refined once); ``refine_top``: only the ``refine_top`` best of those not refined
    yet, by unrefined r (ECC is the costly part when a pair has several hypotheses: a picture and
    its mirror, sharp and blurred detections); None: all."""
    # a fit with under a quarter of the best fit's inliers beside it is not refined (a mirror-image
    # fit of a few chance matches beside the true one: on video frames ECC turned those into the
    # true fit's transform, never into a better score; on bench seeds 0-2 it never lifted one by 0.03)
    most = max((h[3] for h in hypotheses), default=0)
    todo = [h for h in hypotheses if not h[4] and WEAK_BESIDE * h[3] >= most]
    if refine_top is not None:
        todo = sorted(todo, key=lambda h: -h[0])[:refine_top]
    for h in todo:
        h[4] = True
        if h[0] < ECC_BELOW:
            # keypoints on blurred or low-texture copies locate the transform only roughly;
            # ECC polishes it on the pixels (maximises the correlation the score measures)
            refined = _refine_ecc(pix_a, pix_b, h[2])
            if refined is not None:
                r2, share2 = warped_correlation(pix_a, pix_b, refined)
                if r2 > h[0] and share2 >= MIN_OVERLAP:
                    h[0], h[1], h[2] = r2, share2, refined
    best: Match | None = None
    for r, share, affine, n_inl, _ in hypotheses:
        if share < MIN_OVERLAP:
            continue
        if n_inl < MIN_INLIERS:
            r -= WEAK_PENALTY
        # both hypotheses can align a symmetric picture; on a near tie the one more keypoints
        # agree with names the transform
        if best is None or r > best.score + 0.005 or (r > best.score - 0.005 and n_inl > best.inliers):
            best = describe_affine(affine, r, n_inl)
    return best


def rotation_match(pix_a: np.ndarray, pix_b: np.ndarray, angles=(-15.0, -10.0, -5.0, 5.0, 10.0, 15.0)) -> Match | None:
    """b is a small rotation of a about the frame centre, same framing (torchvision's RandomRotation):
    the best of ``angles`` by :func:`warped_correlation` on the keypoint thumbnails, refined by a
    Euclidean ECC (rotation and shift only); None when no angle keeps ``MIN_OVERLAP``.

    For pairs whose rotated-disc evidence says "rotated" but whose keypoints give no hypothesis: a
    smooth picture (a colour gradient: nothing to match) or a blurred copy. Unlike the 32 px bank,
    the rotated copy's filled corners are outside the compared region (the warp's own mask), and
    the band-pass is taken inside it, so the corners' edges cannot decide a smooth picture's score.
    """
    import cv2

    pix_a = np.asarray(pix_a, np.float32)
    pix_b = np.asarray(pix_b, np.float32)
    centre = ((pix_a.shape[1] - 1) / 2.0, (pix_a.shape[0] - 1) / 2.0)
    best = None
    for angle in angles:
        affine = cv2.getRotationMatrix2D(centre, float(angle), 1.0)
        r, share = warped_correlation(pix_a, pix_b, affine)
        if share >= MIN_OVERLAP and (best is None or r > best[0]):
            best = (r, affine)
    if best is None:
        return None
    try:
        _, warp = cv2.findTransformECC(pix_a, pix_b, best[1].astype(np.float32), cv2.MOTION_EUCLIDEAN,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5), None, 5)
        if np.isfinite(warp).all():
            r2, share2 = warped_correlation(pix_a, pix_b, warp.astype(np.float64))
            if r2 > best[0] and share2 >= MIN_OVERLAP:
                best = (r2, warp.astype(np.float64))
    except cv2.error:
        pass
    return describe_affine(best[1], best[0], 0)


def verify_keypoints(ka: Keypoints, kb: Keypoints, min_inliers: int = WEAK_INLIERS) -> Match | None:
    """Geometric verification of a candidate pair: b is a (flipped, rotated, scaled, cropped) copy of a?

    SIFT matches with the ratio test, one RANSAC affine fit for a as it is and one for its mirror
    image, then the photometric check: band-passed correlation of b with a warped onto it. Returns
    the best hypothesis as a :class:`Match` (score = post-warp Pearson r, ``inliers``), or None when
    no hypothesis has ``min_inliers`` consistent matches over an overlap of ``MIN_OVERLAP``. A
    hypothesis with fewer than ``MIN_INLIERS`` inliers scores ``r - WEAK_PENALTY``.
    """
    return best_hypothesis(ka.pixels, kb.pixels, keypoint_hypotheses(ka, kb, min_inliers))


__all__ = ["Match", "verify_pair", "verify_pairs", "prepare", "ANGLES", "SIDES", "THUMB",
           "Keypoints", "keypoint_features", "verify_keypoints", "warped_correlation", "have_opencv",
           "KEYPOINT_SIDE", "MIN_INLIERS", "BLURRED_DETECTION", "coarse_keypoints", "coarse_matches",
           "keypoint_hypotheses", "best_hypothesis"]
