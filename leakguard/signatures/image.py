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

import math
import threading

import numpy as np

from .registry import register_batched_signature, register_signature

HASH_SIZE = 8          # 8 x 8 low DCT frequencies -> 64 bits
DCT_SIZE = 32          # the grey image is resized to 32 x 32 before the DCT
THUMB = 64             # verification thumbnail side
WINDOW_BASE = 64       # side of the grey picture the window hashes are cut from
RENDER_TOP = 128       # renderings smaller than this are shrunk from the RENDER_TOP square (ImageViews)
PATCH_MAX_SIDE = 512   # larger images are shrunk first for patch codes (tiles of one photo shrink alike)
PATCH_KEYPOINTS = 96
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
    """``size`` x ``size`` grey thumbnail as uint8, contrast stretched (1st-99th percentile).

    Made from the image's shared :class:`ImageViews` (one grey rendering per size and image).
    """
    views = image_views(img)
    return _stretch(views.grey_square(size), views.grey_u8(size))


def _stretch(t: np.ndarray, proxy: np.ndarray | None = None) -> np.ndarray:
    """Contrast stretch (1st-99th percentile) of a float picture to uint8.

    ``proxy``: the picture rounded to uint8 (Pillow's grey of the same rendering); its percentiles,
    read off a 256-bin histogram, stand in for the float ones (within half a grey level) at a
    fraction of the cost. The float picture itself is stretched: rounding it first would put
    steps into smooth gradients that the keypoint detector sees.
    """
    if proxy is not None:
        lo, hi = _percentile_pair(np.bincount(proxy.ravel(), minlength=256))
        if hi > lo:
            # (t - lo) / (hi - lo), clipped to [0, 1], times 255, rounded: in float64, as numpy
            # promotes the float32 picture against the float64 percentiles, in one buffer
            x = np.subtract(t, np.float64(lo), dtype=np.float64)
            x /= np.float64(hi) - np.float64(lo)
            np.clip(x, 0.0, 1.0, out=x)
            x *= 255
            np.rint(x, out=x)
            return x.astype(np.uint8)
    else:
        lo, hi = np.percentile(t, [1, 99])
    if hi <= lo:
        lo, hi = float(t.min()), float(t.max())
    t = (t - lo) / (hi - lo) if hi > lo else np.zeros_like(t)
    return (np.clip(t, 0, 1) * 255).round().astype(np.uint8)


def _percentiles_of_counts(counts: np.ndarray, qs=(1, 99)) -> np.ndarray:
    """``np.percentile`` (linear method) of integer values given by their counts, bit for bit.

    The order statistics of integer data are read off the cumulative counts, so the percentiles of
    a uint8 picture cost a 256-bin histogram instead of a partition of every pixel.
    """
    n = int(counts.sum())
    v = (n - 1) * np.true_divide(np.asarray(qs, dtype=np.float64), 100)
    i0 = np.floor(v)
    g = v - i0
    i0 = i0.astype(np.intp)
    cdf = np.cumsum(counts)
    a = np.searchsorted(cdf, i0, side="right").astype(np.float32)
    b = np.searchsorted(cdf, np.minimum(i0 + 1, n - 1), side="right").astype(np.float32)
    d = b - a
    return np.where(g >= 0.5, b - d * (1 - g), a + d * g)  # numpy's own lerp, both halves


def _percentile_pair(counts: np.ndarray) -> tuple[float, float]:
    """The 1st and 99th percentiles of :func:`_percentiles_of_counts`, in scalar arithmetic.

    The same float64 operations on the same values (order statistics are small integers, exact
    in float32 and float64 alike), without the per-call cost of a dozen tiny numpy arrays.
    """
    cdf = np.cumsum(counts)
    n = int(cdf[-1])
    picks = []
    for q in (0.01, 0.99):  # np.true_divide(1, 100), np.true_divide(99, 100)
        v = (n - 1) * q
        i0 = math.floor(v)
        picks += [i0, min(i0 + 1, n - 1)]
    order = np.searchsorted(cdf, picks, side="right").tolist()
    out = []
    for k, q in enumerate((0.01, 0.99)):
        v = (n - 1) * q
        g = v - math.floor(v)
        a, b = float(order[2 * k]), float(order[2 * k + 1])
        d = b - a
        out.append(b - d * (1 - g) if g >= 0.5 else a + d * g)
    return out[0], out[1]


class ImageViews:
    """Small renderings of one image, each computed once on first use and shared by every signature.

    The signatures need a 64 x 64 grey picture (hashes, thumbnail), a 64 x 64 colour one (the
    default embedder), a 128 x 128 grey one (keypoint thumbnail) and a grey one of at most
    ``PATCH_MAX_SIDE`` a side (patch codes); all are derived from the decoded pixels in Pillow's
    C code (one conversion to a Pillow image, grey conversion, box-filter shrinking), so an image
    costs little more than its decode.

    Squares of ``RENDER_TOP`` px and more are box-averaged from the pixels (integer reduction
    first, ``reducing_gap=1``: a 256 px image is halved exactly); smaller squares of an image at
    least ``RENDER_TOP`` px a side are shrunk from the ``RENDER_TOP`` square, so the 64 px
    rendering of a 256 px image costs a 2 x 2 average of the 128 px one. The rule depends only on
    the image, never on which rendering was asked for first.
    """

    def __init__(self, img: np.ndarray):
        self.img = img
        self._pil = False                      # not converted yet (None: not 8-bit RGB)
        self._u8 = False                       # not looked at yet (None: not 8-bit RGB)
        self._square: dict[int, np.ndarray | None] = {}   # side -> uint8 RGB rendering (None for non-8-bit)
        self._grey_u8: dict[int, np.ndarray | None] = {}
        self._grey: dict[int, np.ndarray] = {}
        self._grey_patch = None

    def _rgb_u8(self) -> np.ndarray | None:
        """The pixels as contiguous uint8 (H, W, 3) (alpha dropped), None when they are not 8-bit."""
        if self._u8 is False:
            a = self.img
            if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
                self._u8 = None
            else:
                self._u8 = np.ascontiguousarray(a[:, :, :3]) if a.shape[2] == 4 else a
        return self._u8

    def _pil_rgb(self):
        """The image as a Pillow RGB image (made once), or None when its pixels are not 8-bit."""
        if self._pil is False:
            from PIL import Image

            a = self._rgb_u8()
            self._pil = None if a is None else Image.fromarray(a, "RGB")
        return self._pil

    def rgb_square(self, side: int) -> np.ndarray | None:
        """uint8 (side, side, 3) colour thumbnail (aspect not kept), None for non-8-bit pixels.

        Box averages when shrinking (see the class docstring); small images (digits) grow
        bilinear, as :func:`resize_grey` does.
        """
        if side not in self._square:
            from PIL import Image

            a = self._rgb_u8()
            h, w = self.img.shape[:2]
            if a is None:
                out = None
            elif h < side or w < side:
                out = np.asarray(self._pil_rgb().resize((side, side), Image.BILINEAR))
            elif side < RENDER_TOP and h >= RENDER_TOP and w >= RENDER_TOP:
                out = _box_shrink(self.rgb_square(RENDER_TOP), side, None)
            else:
                out = _box_shrink(a, side, self._pil_rgb)
            self._square[side] = out
        return self._square[side]

    def grey_u8(self, side: int) -> np.ndarray | None:
        """uint8 (side, side) luminance (Pillow's ITU-R 601-2 "L" conversion of the colour
        rendering), None for non-8-bit pixels."""
        if side not in self._grey_u8:
            rgb = self.rgb_square(side)
            self._grey_u8[side] = None if rgb is None else pillow_luminance(rgb).astype(np.uint8)
        return self._grey_u8[side]

    def grey_square(self, side: int) -> np.ndarray:
        """float32 (side, side) luminance (aspect not kept)."""
        if side not in self._grey:
            rgb = self.rgb_square(side)
            self._grey[side] = grey(rgb) if rgb is not None else resize_grey(grey(self.img), side)
        return self._grey[side]

    @property
    def rgb64(self) -> np.ndarray | None:
        return self.rgb_square(WINDOW_BASE)

    @property
    def grey64(self) -> np.ndarray:
        return self.grey_square(WINDOW_BASE)

    @property
    def grey_patch(self) -> tuple[np.ndarray, float]:
        """(float32 grey of at most PATCH_MAX_SIDE a side, scale from original pixels to it)."""
        if self._grey_patch is None:
            from PIL import Image

            h, w = self.img.shape[:2]
            scale = min(1.0, PATCH_MAX_SIDE / max(h, w, 1))
            size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
            a = self._rgb_u8()
            if a is not None and scale == 1.0:
                g = pillow_luminance(a)
            elif a is not None:
                g = np.asarray(self._pil_rgb().convert("L").resize(size, Image.BOX), dtype=np.float32)
            else:
                g = grey(self.img)
                if scale < 1.0:
                    g = resize_grey(g, size[1], size[0])
            self._grey_patch = (g, scale)
        return self._grey_patch


_LUMA = np.array([[19595, 38470, 7471]], dtype=np.float32)  # Pillow's "L" weights, in 1/65536


def pillow_luminance(rgb: np.ndarray) -> np.ndarray:
    """float32 (H, W): Pillow's ``convert("L")`` of uint8 RGB pixels, value for value.

    Pillow computes ``(19595 R + 38470 G + 7471 B + 32768) >> 16`` in integers. Every partial sum
    is an integer below 2**24, which float32 holds exactly in any summation order, so OpenCV's
    channel transform (or numpy) gives the same integers without a round trip through Pillow.
    """
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        s = cv2.transform(rgb.astype(np.float32), _LUMA)
    else:
        s = rgb.reshape(-1, 3).astype(np.float32) @ _LUMA[0]
    out = np.floor((s + np.float32(32768)) * np.float32(1 / 65536))
    return out.reshape(rgb.shape[:2])


def _box_shrink(rgb: np.ndarray, side: int, pil) -> np.ndarray:
    """Pillow's ``resize((side, side), BOX, reducing_gap=1.0)`` of uint8 RGB pixels.

    An exact 2 x 2 reduction is OpenCV's area resize, equal to Pillow's pixel for pixel (both
    round the 4-pixel mean half up) at a third of the cost; other factors go through Pillow
    (its N x N reductions round differently). ``pil``: a callable giving the Pillow image of
    ``rgb`` (made from the array when None).
    """
    from PIL import Image

    h, w = rgb.shape[:2]
    if h == side and w == side:
        return rgb
    if h == 2 * side and w == 2 * side:
        try:
            import cv2
        except ImportError:
            cv2 = None
        if cv2 is not None:
            return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
    img = pil() if pil is not None else Image.fromarray(rgb, "RGB")
    return np.asarray(img.resize((side, side), Image.BOX, reducing_gap=1.0))


_VIEWS = threading.local()


def image_views(img: np.ndarray) -> ImageViews:
    """The :class:`ImageViews` of ``img``; the signatures of one image share them.

    The signature pass calls every signature function on the same array in a row, in one thread;
    one memo per thread (holding the array, so its identity cannot be reused) is enough.
    """
    memo = getattr(_VIEWS, "views", None)
    if memo is None or memo.img is not img:
        memo = ImageViews(img)
        _VIEWS.views = memo
    return memo


class SmallImage:
    """What the batched signatures of one image start from: 64 x 64 grey (float32) and colour
    (uint8, None for non-8-bit pixels) renderings, plus the embedding of images without colour thumbnail."""

    __slots__ = ("grey64", "rgb64", "embed", "grey64_u8")

    def __init__(self, grey64, rgb64, embed=None, grey64_u8=None):
        self.grey64, self.rgb64, self.embed, self.grey64_u8 = grey64, rgb64, embed, grey64_u8


def small_image(img: np.ndarray) -> SmallImage:
    """The shared ``prepare`` step of the batched image signatures (runs on the reading threads)."""
    views = image_views(img)
    rgb = views.rgb64
    embed = None
    if rgb is None:  # floats / 16-bit: the embedder reads the full pixels
        from ..embedders import PyramidEmbedder

        embed = PyramidEmbedder()([img])[0]
    return SmallImage(views.grey64, rgb, embed, views.grey_u8(WINDOW_BASE))


_DCT8: dict = {}


def _dct_rows() -> np.ndarray:
    """(8, 32) rows of the orthonormal DCT-II matrix: ``D @ g @ D.T`` is the low 8 x 8 block of dctn(g)."""
    if "rows" not in _DCT8:
        from scipy.fft import dct

        _DCT8["rows"] = dct(np.eye(DCT_SIZE), type=2, norm="ortho", axis=0)[:HASH_SIZE]
    return _DCT8["rows"]


def _grey_stack(small: list[SmallImage]) -> np.ndarray:
    return np.stack([s.grey64 for s in small]).astype(np.float64) if small else np.zeros((0, WINDOW_BASE, WINDOW_BASE))


@register_batched_signature("image", "phash", prepare=small_image, version="4")
def image_phash(small: list[SmallImage]) -> list[np.ndarray]:
    """uint64[8] per image: the dihedral perceptual hashes (see :func:`phash_codes`), vectorised."""
    g = _grey_stack(small)
    n = len(g)
    g32 = g.reshape(n, DCT_SIZE, 2, DCT_SIZE, 2).mean(axis=(2, 4))  # box 64 -> 32, as resize_grey would
    d = _dct_rows()
    blocks = d @ g32 @ d.T                                          # (n, 8, 8)
    out = np.empty((n, 8, HASH_SIZE, HASH_SIZE))
    for k in range(8):  # the 8 dihedral transforms of each block (flip = sign pattern, see _dihedral_blocks)
        b = blocks
        if k & 1:
            b = b * _SIGN[None, None, :]
        if k & 2:
            b = b * _SIGN[None, :, None]
        if k & 4:
            b = np.swapaxes(b, 1, 2)
        out[:, k] = b
    return list(_bits_to_codes(out.reshape(n * 8, HASH_SIZE, HASH_SIZE)).reshape(n, 8))


@register_batched_signature("image", "phash_windows", prepare=small_image, version="5")
def image_phash_windows(small: list[SmallImage]) -> list[np.ndarray]:
    """uint64[len(WINDOWS)] per image: hashes of the sub-windows (see :func:`window_codes`), vectorised."""
    ly, lx = _window_ops()
    g = _grey_stack(small)
    blocks = np.matmul(np.matmul(ly[None], g[:, None]), lx.transpose(0, 2, 1)[None])  # (n, W, 8, 8)
    return list(_bits_to_codes(blocks.reshape(-1, HASH_SIZE, HASH_SIZE)).reshape(len(g), len(WINDOWS)))


@register_signature("image", "shape", version="1")
def image_shape(img: np.ndarray) -> np.ndarray:
    """(height, width) in pixels: tiny images get a verification suited to them."""
    return np.array(img.shape[:2], dtype=np.int32)


@register_batched_signature("image", "thumb", prepare=small_image, version="5")
def image_thumb(small: list[SmallImage]) -> list[np.ndarray]:
    """uint8 (64, 64) grey thumbnail per image, contrast stretched (see :func:`thumbnail`).

    One image at a time: with the 256-bin histogram percentiles of 8-bit pictures a per-image
    stretch is cheaper than a vectorised ``np.percentile`` over the batch.
    """
    return [_stretch(s.grey64, s.grey64_u8) for s in small]


@register_batched_signature("image", "embed_pyramid", prepare=small_image, version="3")
def image_embed_pyramid(small: list[SmallImage]) -> list[np.ndarray]:
    """The default embedder's vector (``leakguard.embedders.PyramidEmbedder``), cached like any signature.

    Computed on the 64 x 64 colour thumbnail: the embedder shrinks every image to 64 x 64 first.
    """
    from ..embedders import PyramidEmbedder

    out: list = [s.embed for s in small]
    todo = [i for i, s in enumerate(small) if s.embed is None]
    if todo:
        for i, v in zip(todo, PyramidEmbedder(size=WINDOW_BASE)([small[i].rgb64 for i in todo])):
            out[i] = v
    return out


class PatchSamples:
    """What the batched patch codes of one image start from (made on the reading threads): the
    8 x 8 samples of the smoothed picture around each keypoint, strongest first, and their positions."""

    __slots__ = ("samples", "ys", "xs", "span", "scale")

    def __init__(self, samples, ys, xs, span, scale):
        self.samples, self.ys, self.xs, self.span, self.scale = samples, ys, xs, span, scale


_PATCH_OFFSETS = np.arange(-7, 9, 2)  # 8 x 8 samples, stride 2, over the 16 x 16 pixels around a keypoint
_PATCH_INDEX: dict = {}               # picture width -> flat offsets of the 64 samples
_DILATE_9 = np.ones((9, 9), np.uint8)


def _patch_grey(img: np.ndarray) -> tuple[np.ndarray, float]:
    """The grey picture the patch codes are cut from, and its scale (see ``ImageViews.grey_patch``).

    8-bit colour images of at most ``PATCH_MAX_SIDE`` a side take OpenCV's luminance as uint8 (one
    pass, within one grey level of Pillow's "L", which the codes do not need exactly); the rest, or
    without OpenCV, the shared float rendering.
    """
    a = np.asarray(img)
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] in (3, 4) and max(a.shape[:2]) <= PATCH_MAX_SIDE:
        try:
            import cv2
        except ImportError:
            cv2 = None
        if cv2 is not None:
            code = cv2.COLOR_RGB2GRAY if a.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
            return cv2.cvtColor(np.ascontiguousarray(a), code), 1.0  # uint8: the blur reads it as is
    return image_views(img).grey_patch


def patch_samples(img: np.ndarray) -> PatchSamples:
    """The ``prepare`` step of the ``patches`` signature: keypoints and their patch samples.

    Keypoints are local maxima (9 x 9) of a band-pass response (:func:`_band_pass`) at least 8 px
    from every side, so the 16 x 16 patch around them fits; the ``PATCH_KEYPOINTS`` strongest are
    kept (ties in raster order). Everything here is a handful of calls per image; the arithmetic
    on the samples runs over a whole batch (:func:`image_patches`).
    """
    g, scale = _patch_grey(img)
    h, w = g.shape
    empty = PatchSamples(np.zeros((0, 64), np.float32), np.zeros(0, np.intp), np.zeros(0, np.intp), 0.0, scale)
    if min(h, w) < 24:
        return empty
    if g.dtype != np.uint8:
        g = np.ascontiguousarray(g, dtype=np.float32)
    smooth, response, local_max = _band_pass(g)
    lo, hi = _min_max(g)
    span = float(hi) - float(lo)
    # keypoints only where the patch around them fits (8 px from every side): look for peaks
    # inside that frame only, in raster order (the ranking below breaks ties by it)
    inner = response[8:h - 8, 8:w - 8]
    peaks = inner == local_max[8:h - 8, 8:w - 8]
    peaks &= inner > 1e-6 * (span + 1e-12)  # flat regions are their own 9 x 9 maxima: not keypoints
    ys, xs = np.divmod(np.flatnonzero(peaks), w - 16)  # (1-D nonzero: several times faster than 2-D)
    ys += 8
    xs += 8
    top = np.argsort(-response[ys, xs], kind="stable")[:PATCH_KEYPOINTS]
    ys, xs = ys[top], xs[top]
    rel = _PATCH_INDEX.get(w)
    if rel is None:
        rel = _PATCH_INDEX[w] = (_PATCH_OFFSETS[:, None] * w + _PATCH_OFFSETS[None, :]).ravel()
    samples = smooth.ravel()[(ys * w + xs)[:, None] + rel[None, :]]
    return PatchSamples(samples, ys, xs, span, scale)


@register_batched_signature("image", "patches", prepare=patch_samples, version="5")
def image_patches(prepared: list[PatchSamples]) -> list[np.ndarray]:
    """(k, 3) int64 rows [code, y, x] per image: 64-bit codes of the 16 x 16 patches around corner-like points.

    Keypoints are local maxima of a band-pass response, so they sit on the same content wherever a
    tile of a larger picture was cut; a patch code is the sign pattern of the patch around its
    mean, identical for identical pixels. Overlapping tiles share codes at one consistent offset.
    Vectorised over the batch: the per-image work is in :func:`patch_samples`.
    """
    n = len(prepared)
    counts = np.array([len(p.ys) for p in prepared], dtype=np.intp)
    if not counts.sum():
        return [np.zeros((0, 3), dtype=np.int64) for _ in range(n)]
    flat = np.concatenate([p.samples for p in prepared]).astype(np.float64)
    ys = np.concatenate([p.ys for p in prepared])
    xs = np.concatenate([p.xs for p in prepared])
    span = np.repeat(np.array([p.span for p in prepared], dtype=np.float64), counts)
    scale = np.repeat(np.array([p.scale for p in prepared], dtype=np.float64), counts)
    owner = np.repeat(np.arange(n), counts)
    mean = flat.mean(axis=1, keepdims=True)
    dev = flat - mean
    np.multiply(dev, dev, out=dev)
    spread = np.sqrt(dev.mean(axis=1))
    keep = spread > 0.02 * (span + 1e-12)  # flat patches carry no code
    bits = flat[keep] > mean[keep]
    codes = np.packbits(bits, axis=1).view(">u8").astype(np.uint64).ravel().view(np.int64)
    rows = np.stack([codes, (ys[keep] / scale[keep]).round(), (xs[keep] / scale[keep]).round()],
                    axis=1).astype(np.int64)
    ends = np.cumsum(np.bincount(owner[keep], minlength=n))[:-1]
    return np.split(rows, ends)


def _min_max(g: np.ndarray) -> tuple[float, float]:
    """The smallest and largest value of a uint8 or float32 picture (one OpenCV pass when installed)."""
    try:
        import cv2
    except ImportError:
        return float(g.min()), float(g.max())
    return cv2.minMaxLoc(g)[:2]


_KERNELS: dict = {}


def _gaussian_kernel_9() -> np.ndarray:
    """OpenCV's 9-tap sigma-1 Gaussian (float32 column), the kernel of ``GaussianBlur((9, 9), 1.0)``."""
    if "9" not in _KERNELS:
        import cv2

        _KERNELS["9"] = cv2.getGaussianKernel(9, 1.0, ktype=cv2.CV_32F)
    return _KERNELS["9"]


def _band_pass(g: np.ndarray):
    """(smoothed picture, |band-pass| response, its 9 x 9 local maximum), float32.

    The smoothed picture is a Gaussian blur (sigma 1, radius 4); the response is its difference
    from a 7 x 7 Gaussian blur (sigma 2) of itself: a difference of Gaussians of about sigma 1 and
    2.2, at a third of the cost of the sigma-3 blur of the picture used before, and with a smaller
    support, so fewer keypoints near a tile's edge depend on pixels outside it. OpenCV's filters
    when it is installed, else scipy's; both use the same kernels and mirror the borders
    ("reflect"), so the codes agree up to float rounding. ``g``: uint8 or float32; a uint8
    picture is filtered straight into float32 (OpenCV: no float copy of it first).
    """
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        border = cv2.BORDER_REFLECT
        if g.dtype == np.uint8:
            kernel = _gaussian_kernel_9()
            smooth = cv2.sepFilter2D(g, cv2.CV_32F, kernel, kernel, borderType=border)
        else:
            smooth = cv2.GaussianBlur(np.ascontiguousarray(g, dtype=np.float32), (9, 9), 1.0, borderType=border)
        response = cv2.absdiff(smooth, cv2.GaussianBlur(smooth, (7, 7), 2.0, borderType=border))  # |a - b|
        local_max = cv2.dilate(response, _DILATE_9, borderType=border)
        return smooth, response, local_max
    from scipy.ndimage import gaussian_filter, maximum_filter

    smooth = gaussian_filter(np.asarray(g, dtype=np.float32), 1.0)
    response = np.abs(smooth - gaussian_filter(smooth, 2.0, truncate=1.5))  # radius 3: 7 taps
    return smooth, response, maximum_filter(response, size=9)
