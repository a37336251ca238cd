"""Planted image leakage with known truth, from pictures that ship with scikit-image and scikit-learn.

Used by the tests and ``benchmarks/bench_image_similarity.py``; useful to anyone who wants to see
what the image checks catch on their own pictures (``augment(img, "crop", rng)``).

>>> import numpy as np
>>> from leakguard.similarity.image_planting import augment, base_tiles
>>> tiles = base_tiles(size=96, max_per_photo=2)
>>> out = augment(tiles[0], "hflip+jpeg", np.random.default_rng(0))
>>> out.shape
(96, 96, 3)
"""
from __future__ import annotations

import io

import numpy as np

#: single augmentations, each keeps the picture recognisably the same
FAMILIES = ("hflip", "vflip", "rot90", "rot180", "rot270", "rotate", "crop", "resize", "jitter",
            "grayscale", "blur", "noise", "jpeg")

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field",
          "immunohistochemistry", "moon", "brick", "grass", "gravel", "coins", "clock",
          "retina", "cell", "colorwheel", "page", "text")


def _rgb(arr) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3].astype(np.uint8))


def photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as (H, W, 3) uint8."""
    import skimage.data

    return _rgb(getattr(skimage.data, name)())


def base_tiles(size: int = 128, max_per_photo: int = 12, photos=PHOTOS, seed: int = 0) -> list[np.ndarray]:
    """Non-overlapping ``size`` x ``size`` tiles of the scikit-image photos.

    Tiles of one photo (the brick wall, grass, gravel, the retina) look alike: they are the hard
    negatives of the benchmark.
    """
    rng = np.random.default_rng(seed)
    out = []
    for name in photos:
        img = photo(name)
        h, w = img.shape[:2]
        cells = [(y, x) for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]
        take = rng.permutation(len(cells))[:max_per_photo]
        out += [img[cells[t][0]:cells[t][0] + size, cells[t][1]:cells[t][1] + size].copy() for t in take]
    return out


def _pil(arr):
    from PIL import Image

    return Image.fromarray(arr)


def augment(img: np.ndarray, family: str, rng: np.random.Generator) -> np.ndarray:
    """``img`` (H, W, 3 uint8) under one augmentation family, or two joined by ``+``."""
    from PIL import Image, ImageEnhance, ImageFilter

    if "+" in family:
        for part in family.split("+"):
            img = augment(img, part, rng)
        return img
    h, w = img.shape[:2]
    if family == "hflip":
        return img[:, ::-1].copy()
    if family == "vflip":
        return img[::-1].copy()
    if family in ("rot90", "rot180", "rot270"):
        return np.rot90(img, {"rot90": 1, "rot180": 2, "rot270": 3}[family]).copy()
    if family == "rotate":  # small rotation, black corners as torchvision's RandomRotation
        angle = float(rng.uniform(5, 15) * rng.choice([-1, 1]))
        return np.asarray(_pil(img).rotate(angle, resample=Image.BILINEAR))
    if family == "crop":  # keeps 70-95 % of the area, any aspect, resized back (RandomResizedCrop)
        area = rng.uniform(0.70, 0.95)
        aspect = np.exp(rng.uniform(np.log(0.85), np.log(1 / 0.85)))
        cw = int(round(min(1.0, np.sqrt(area * aspect)) * w))
        ch = int(round(min(1.0, area / (cw / w)) * h))
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        return np.asarray(_pil(img[y:y + ch, x:x + cw]).resize((w, h), Image.BILINEAR))
    if family == "resize":
        f = float(rng.choice([rng.uniform(0.4, 0.8), rng.uniform(1.2, 1.6)]))
        return np.asarray(_pil(img).resize((max(8, int(w * f)), max(8, int(h * f))), Image.BILINEAR))
    if family == "jitter":
        p = _pil(img)
        p = ImageEnhance.Brightness(p).enhance(rng.uniform(0.7, 1.3))
        p = ImageEnhance.Contrast(p).enhance(rng.uniform(0.7, 1.3))
        p = ImageEnhance.Color(p).enhance(rng.uniform(0.6, 1.4))
        hsv = np.asarray(p.convert("HSV")).copy()
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + int(rng.integers(-15, 16))) % 256
        return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    if family == "grayscale":
        return np.asarray(_pil(img).convert("L").convert("RGB"))
    if family == "blur":
        return np.asarray(_pil(img).filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.0))))
    if family == "noise":
        noisy = img.astype(np.float64) + rng.normal(0, rng.uniform(8, 20), img.shape)
        return np.clip(noisy, 0, 255).round().astype(np.uint8)
    if family == "jpeg":
        buf = io.BytesIO()
        _pil(img).save(buf, format="JPEG", quality=int(rng.integers(30, 61)))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    raise ValueError(f"unknown augmentation family {family!r}; families are {FAMILIES}")


def overlapping_tiles(img: np.ndarray, size: int, rng: np.random.Generator, min_share: float = 0.3,
                      max_share: float = 0.7) -> tuple[np.ndarray, np.ndarray, float]:
    """Two ``size`` tiles of ``img`` that overlap by a share of their area within the bounds.

    Returns (tile_a, tile_b, overlap share of the tile area).
    """
    h, w = img.shape[:2]
    for _ in range(1000):
        share = rng.uniform(min_share, max_share)
        # split the overlap between the two axes
        fy = rng.uniform(share, 1.0)
        fx = share / fy
        dy, dx = int(round((1 - fy) * size)), int(round((1 - fx) * size))
        if rng.random() < 0.5:
            dy = -dy
        if rng.random() < 0.5:
            dx = -dx
        y0 = int(rng.integers(max(0, -dy), h - size - max(0, dy) + 1)) if h - size - abs(dy) >= 0 else None
        x0 = int(rng.integers(max(0, -dx), w - size - max(0, dx) + 1)) if w - size - abs(dx) >= 0 else None
        if y0 is None or x0 is None:
            continue
        a = img[y0:y0 + size, x0:x0 + size].copy()
        b = img[y0 + dy:y0 + dy + size, x0 + dx:x0 + dx + size].copy()
        real = (size - abs(dy)) * (size - abs(dx)) / size ** 2
        return a, b, real
    raise ValueError(f"image of shape {img.shape} too small for overlapping {size} px tiles")


def stereo_views(size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """The same scene from two slightly different viewpoints (scikit-image's stereo motorcycle)."""
    from PIL import Image

    left, right, _ = __import__("skimage.data", fromlist=["stereo_motorcycle"]).stereo_motorcycle()
    return tuple(np.asarray(Image.fromarray(_rgb(v)).resize((size, size * v.shape[0] // v.shape[1]),
                                                               Image.BILINEAR)) for v in (left, right))
