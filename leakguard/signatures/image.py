"""Image signatures: dihedral perceptual codes, window codes, verification thumbnails, patch codes.

All of them are computed from the canonical pixels (``leakguard.sources.readers.canonical_image``)
in one pass and cached by content:

- ``phash``: 64-bit DCT perceptual hashes of the image under the 8 dihedral transforms
  (identity, flips, 90-degree rotations), as ``uint64[8]``. Code ``d`` of an image equals code 0
  of the image transformed by ``dihedral(img, d)``, so a flipped or rotated copy is one exact
  code match away, and the matching ``d`` names the transform.
- ``phash_windows``: codes of sub-windows (crops keeping 55-85 % of the area at several places),
  so a crop of a training image is a code match too.
- ``thumb``: a 64 x 64 grey thumbnail (uint8, contrast-stretched) that the verification aligns.
- ``patches``: translation-equivariant local codes (a binary code of the patch around each
  corner-like keypoint, with its position), for overlapping tiles of one large image.

>>> import numpy as np
>>> from leakguard.signatures.image import phash_codes, dihedral
>>> img = np.random.default_rng(0).normal(size=(40, 60)).cumsum(0).cumsum(1)  # a smooth picture
>>> codes = phash_codes(img)
>>> bin(int(phash_codes(dihedral(img, 1))[0] ^ codes[1])).count("1") <= 2   # a flipped copy's code
True
"""
from __future__ import annotations

import numpy as np

from .registry import register_signature

HASH_SIZE = 8          # 8 x 8 low DCT frequencies -> 64 bits
DCT_SIZE = 32          # the grey image is resized to 32 x 32 before the DCT
THUMB = 64             # verification thumbnail side
DIHEDRAL_NAMES = ("identity", "hflip", "vflip", "rot180", "transpose", "rot90", "rot270", "transverse")

# sub-windows (y0, x0, y1, x1) in unit coordinates whose codes catch crops; crops keeping >= 70 %
# of the area are within half a grid step of one of them
_WINDOWS = tuple(
    [(y, x, y + s, x + s) for s in (0.92,) for y in (0.0, 0.08) for x in (0.0, 0.08)]
    + [(y, x, y + s, x + s) for s in (0.84,) for y in (0.0, 0.08, 0.16) for x in (0.0, 0.08, 0.16)]
    + [(0.0, 0.0, 1.0, 0.84), (0.0, 0.16, 1.0, 1.0), (0.0, 0.0, 0.84, 1.0), (0.16, 0.0, 1.0, 1.0)]
    + [(0.12, 0.12, 0.88, 0.88)]
)
WINDOWS = np.array(_WINDOWS, dtype=np.float64)


def dihedral(arr: np.ndarray, d: int) -> np.ndarray:
    """The ``d``-th of the 8 dihedral transforms of an image (H, W[, C]).

    Bit 0 flips left-right, bit 1 flips top-bottom, bit 2 then transposes (swaps H and W);
    names in ``DIHEDRAL_NAMES``.
    """
    out = arr
    if d & 1:
        out = out[:, ::-1]
    if d & 2:
        out = out[::-1]
    if d & 4:
        out = np.swapaxes(out, 0, 1)
    return out


#: index of the inverse transform of each dihedral transform
DIHEDRAL_INVERSE = (0, 1, 2, 3, 4, 6, 5, 7)


def grey(img: np.ndarray) -> np.ndarray:
    """Luminance as float32 (any value range; alpha ignored)."""
    a = np.asarray(img)
    if a.ndim == 3:
        a = a[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    a = np.asarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    return a


def resize_grey(g: np.ndarray, h: int, w: int | None = None) -> np.ndarray:
    """Area-averaged (shrinking) or bilinear (growing) resize of a float image."""
    from PIL import Image

    w = h if w is None else w
    src = Image.fromarray(np.ascontiguousarray(g, dtype=np.float32))
    shrink = g.shape[0] >= h and g.shape[1] >= w
    return np.asarray(src.resize((w, h), Image.BOX if shrink else Image.BILINEAR), dtype=np.float32)


def _dct_block(g32: np.ndarray) -> np.ndarray:
    from scipy.fft import dctn

    return dctn(g32.astype(np.float64), type=2, norm="ortho")[:HASH_SIZE, :HASH_SIZE]


_SIGN = (-1.0) ** np.arange(HASH_SIZE)


def _dihedral_blocks(block: np.ndarray) -> np.ndarray:
    """DCT blocks of the 8 dihedral transforms, from the identity block (flip = sign pattern)."""
    out = np.empty((8, HASH_SIZE, HASH_SIZE))
    for d in range(8):
        b = block
        if d & 1:
            b = b * _SIGN[None, :]
        if d & 2:
            b = b * _SIGN[:, None]
        if d & 4:
            b = b.T
        out[d] = b
    return out


def _bits_to_codes(blocks: np.ndarray) -> np.ndarray:
    """(n, 8, 8) DCT blocks -> n uint64 codes: bit set where the coefficient exceeds the median."""
    flat = blocks.reshape(len(blocks), -1)
    med = np.median(flat[:, 1:], axis=1, keepdims=True)  # the DC term would skew the median
    bits = flat > med
    return np.packbits(bits, axis=1).view(">u8").astype(np.uint64).ravel()


def phash_codes(img: np.ndarray) -> np.ndarray:
    """uint64[8]: the DCT perceptual hash of ``dihedral(img, d)`` for d = 0..7."""
    g = resize_grey(grey(img), DCT_SIZE)
    return _bits_to_codes(_dihedral_blocks(_dct_block(g)))


WINDOW_BASE = 64


def _interp_rows(lo: float, hi: float, n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix resampling [lo, hi) (unit coords) to n_out samples."""
    pos = lo * n_in + (np.arange(n_out) + 0.5) * (hi - lo) * n_in / n_out - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    i0 = np.minimum(np.floor(pos).astype(int), n_in - 2)
    f = pos - i0
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), i0] = 1 - f
    m[np.arange(n_out), i0 + 1] += f
    return m


_WINDOW_OPS: dict = {}


def _window_ops():
    """(W, 8, 64) row and column operators: window crop + resize to 32 + low 8 DCT rows, in one."""
    if "ops" not in _WINDOW_OPS:
        from scipy.fft import dct

        dct_rows = dct(np.eye(DCT_SIZE), type=2, norm="ortho", axis=0)[:HASH_SIZE]  # (8, 32)
        ly = np.stack([dct_rows @ _interp_rows(y0, y1, DCT_SIZE, WINDOW_BASE) for y0, _, y1, _ in WINDOWS])
        lx = np.stack([dct_rows @ _interp_rows(x0, x1, DCT_SIZE, WINDOW_BASE) for _, x0, _, x1 in WINDOWS])
        _WINDOW_OPS["ops"] = (ly, lx)
    return _WINDOW_OPS["ops"]


def window_codes(img: np.ndarray) -> np.ndarray:
    """uint64[len(WINDOWS)]: perceptual hashes of the sub-windows, identity orientation."""
    base = resize_grey(grey(img), WINDOW_BASE).astype(np.float64)
    ly, lx = _window_ops()
    blocks = np.matmul(ly @ base, lx.transpose(0, 2, 1))
    return _bits_to_codes(blocks)


def thumbnail(img: np.ndarray, size: int = THUMB) -> np.ndarray:
    """``size`` x ``size`` grey thumbnail as uint8, contrast stretched (1st-99th percentile)."""
    t = resize_grey(grey(img), size)
    lo, hi = np.percentile(t, [1, 99])
    if hi <= lo:
        lo, hi = float(t.min()), float(t.max())
    t = (t - lo) / (hi - lo) if hi > lo else np.zeros_like(t)
    return (np.clip(t, 0, 1) * 255).round().astype(np.uint8)


@register_signature("image", "phash", version="1")
def image_phash(img: np.ndarray) -> np.ndarray:
    return phash_codes(img)


@register_signature("image", "phash_windows", version="2")
def image_phash_windows(img: np.ndarray) -> np.ndarray:
    return window_codes(img)


@register_signature("image", "shape", version="1")
def image_shape(img: np.ndarray) -> np.ndarray:
    """(height, width) in pixels: tiny images get a verification suited to them."""
    return np.array(img.shape[:2], dtype=np.int32)


@register_signature("image", "thumb", version="2")
def image_thumb(img: np.ndarray) -> np.ndarray:
    return thumbnail(img)


@register_signature("image", "embed_pyramid", version="1")
def image_embed_pyramid(img: np.ndarray) -> np.ndarray:
    """The default embedder's vector (``leakguard.embedders.PyramidEmbedder``), cached like any signature."""
    from ..embedders import PyramidEmbedder

    return PyramidEmbedder()([img])[0]


PATCH_MAX_SIDE = 512   # larger images are shrunk first (tiles of one photo shrink alike)
PATCH_KEYPOINTS = 96


@register_signature("image", "patches", version="1")
def image_patches(img: np.ndarray) -> np.ndarray:
    """(k, 3) int64 rows [code, y, x]: 64-bit codes of the 16 x 16 patches around corner-like points.

    Keypoints are local maxima of a band-pass response, so they sit on the same content wherever a
    tile of a larger picture was cut; a patch code is the sign pattern of the patch around its
    mean, identical for identical pixels. Overlapping tiles share codes at one consistent offset.
    """
    from scipy.ndimage import gaussian_filter, maximum_filter

    g = grey(img).astype(np.float64)
    h, w = g.shape
    scale = 1.0
    if max(h, w) > PATCH_MAX_SIDE:
        scale = PATCH_MAX_SIDE / max(h, w)
        g = resize_grey(g, max(8, int(round(h * scale))), max(8, int(round(w * scale)))).astype(np.float64)
        h, w = g.shape
    if min(h, w) < 24:
        return np.zeros((0, 3), dtype=np.int64)
    smooth = gaussian_filter(g, 1.0)
    response = np.abs(smooth - gaussian_filter(g, 3.0))
    peaks = (response == maximum_filter(response, size=9)) & (response > 1e-6 * (np.ptp(g) + 1e-12))
    peaks[:8] = peaks[-8:] = False
    peaks[:, :8] = peaks[:, -8:] = False
    ys, xs = np.nonzero(peaks)
    if not len(ys):
        return np.zeros((0, 3), dtype=np.int64)
    top = np.argsort(-response[ys, xs], kind="stable")[:PATCH_KEYPOINTS]
    ys, xs = ys[top], xs[top]
    offs = np.arange(-7, 9, 2)  # 8 x 8 samples, stride 2, over 16 x 16 pixels
    patch = smooth[ys[:, None, None] + offs[None, :, None], xs[:, None, None] + offs[None, None, :]]
    flat = patch.reshape(len(ys), 64)
    spread = flat.std(axis=1)
    keep = spread > 0.02 * (np.ptp(g) + 1e-12)  # flat patches carry no code
    bits = flat[keep] > flat[keep].mean(axis=1, keepdims=True)
    codes = np.packbits(bits, axis=1).view(">u8").astype(np.uint64).ravel().view(np.int64)
    return np.stack([codes, (ys[keep] / scale).round(), (xs[keep] / scale).round()], axis=1).astype(np.int64)
