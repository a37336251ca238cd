"""Pluggable image embedders for semantic duplicates: a callable ``(list of images) -> (n, d) array``.

``AuditConfig(embedder=...)`` takes any such callable (it receives canonical images: (H, W, 3)
or (H, W, 4) arrays, uint8 or float), or one of these names:

- ``None`` / ``"pyramid"``: :class:`PyramidEmbedder`, the default. No download, no torch. It
  describes an image by gradient-orientation and colour histograms over a spatial pyramid
  (whole image, 2 x 2 and 4 x 4 cells). **It catches** the same scene seen again: a slightly
  moved or zoomed camera, another frame of the same shot, a re-exposure, a crop, a re-encode.
  **It does not catch** meaning: two different photos of the same kind of object, a scene
  from a clearly different angle, a drawing of a photo. For that, give a learned model.
- ``"torchvision:<arch>"`` (e.g. ``"torchvision:resnet50"``): a torchvision classification
  model with its final layer removed. Weights come from ``weights_path`` or torch's cache of
  the default weights (``~/.cache/torch/hub/checkpoints``); leakguard never downloads them.
- ``"timm:<name>"`` and ``"open_clip:<name>"``: the same through timm / open_clip, with the
  weights file given by ``weights_path``.

>>> import numpy as np
>>> emb = get_embedder(None)
>>> vecs = emb([np.zeros((32, 32, 3), np.uint8), np.full((20, 40, 3), 200, np.uint8)])
>>> vecs.shape[0], vecs.dtype
(2, dtype('float32'))
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import InputError


class PyramidEmbedder:
    """Hand-made descriptor: orientation + colour histograms on a 1/2x2/4x4 spatial pyramid.

    Parameters
    ----------
    size : side the image is resized to before description.
    orientations : gradient orientation bins (unsigned, 0-180 degrees).
    colour_bins : bins per channel of the coarse colour histogram (whole image).

    >>> import numpy as np
    >>> PyramidEmbedder()(np.zeros((2, 16, 16, 3), np.uint8)).shape
    (2, 232)
    """

    name = "pyramid"

    def __init__(self, size: int = 64, orientations: int = 8, colour_bins: int = 4):
        self.size = size
        self.orientations = orientations
        self.colour_bins = colour_bins

    def _one(self, img: np.ndarray) -> np.ndarray:
        from PIL import Image

        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        arr = arr[:, :, :3].astype(np.float32)
        if arr.size and arr.max() > 0 and (np.asarray(img).dtype.kind == "f"):
            arr = arr / arr.max() * 255.0
        rgb = np.stack([np.asarray(Image.fromarray(arr[:, :, c]).resize((self.size, self.size), Image.BILINEAR))
                        for c in range(3)], axis=2)
        grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        gy, gx = np.gradient(grey)
        mag = np.hypot(gx, gy)
        ang = np.mod(np.arctan2(gy, gx), np.pi) / np.pi * self.orientations
        b0 = np.floor(ang).astype(int) % self.orientations
        frac = ang - np.floor(ang)
        parts = []
        for cells in (1, 2, 4):
            step = self.size // cells
            for cy in range(cells):
                for cx in range(cells):
                    sl = (slice(cy * step, (cy + 1) * step), slice(cx * step, (cx + 1) * step))
                    h = np.bincount(b0[sl].ravel(), weights=(mag[sl] * (1 - frac[sl])).ravel(),
                                    minlength=self.orientations)
                    h += np.bincount(((b0[sl] + 1) % self.orientations).ravel(),
                                     weights=(mag[sl] * frac[sl]).ravel(), minlength=self.orientations)
                    parts.append(h / (np.linalg.norm(h) + 1e-6) / cells)
        q = np.clip(rgb / 256.0 * self.colour_bins, 0, self.colour_bins - 1).astype(int)
        code = (q[:, :, 0] * self.colour_bins + q[:, :, 1]) * self.colour_bins + q[:, :, 2]
        colour = np.bincount(code.ravel(), minlength=self.colour_bins ** 3).astype(np.float64)
        parts.append(np.sqrt(colour / max(colour.sum(), 1)) * 0.5)
        v = np.concatenate(parts)
        return (v / (np.linalg.norm(v) + 1e-9)).astype(np.float32)

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([self._one(im) for im in images]) if len(images) else np.zeros((0, 232), np.float32)


class TorchEmbedder:
    """A torch model's penultimate features as the embedding (batched, no gradients, CPU or CUDA).

    Build with :func:`get_embedder` (``"torchvision:resnet18"``, ``"timm:..."``, ``"open_clip:..."``)
    or give any ``torch.nn.Module`` that maps (N, 3, H, W) floats to (N, d) features.
    """

    def __init__(self, model, size: int = 224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                 batch_size: int = 64, device: str | None = None, name: str = "torch"):
        import torch

        self.model = model.eval()
        self.size = size
        self.mean = np.asarray(mean, np.float32)[:, None, None]
        self.std = np.asarray(std, np.float32)[:, None, None]
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.name = name

    def _tensor(self, img: np.ndarray) -> np.ndarray:
        from PIL import Image

        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            a = arr.astype(np.float64)
            a = (a - a.min()) / (np.ptp(a) or 1.0) * 255.0
            arr = a.round().astype(np.uint8)
        pil = Image.fromarray(arr[:, :, :3] if arr.ndim == 3 else arr).convert("RGB")
        x = np.asarray(pil.resize((self.size, self.size), Image.BILINEAR), np.float32) / 255.0
        return (x.transpose(2, 0, 1) - self.mean) / self.std

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for lo in range(0, len(images), self.batch_size):
                batch = np.stack([self._tensor(im) for im in images[lo:lo + self.batch_size]])
                feats = self.model(torch.from_numpy(batch).to(self.device))
                out.append(feats.reshape(len(batch), -1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _torchvision(arch: str, weights_path: str | Path | None):
    import torch
    import torchvision

    model = torchvision.models.get_model(arch, weights=None)
    if weights_path is None:
        # the default weights, only when torch already has them on disk (no download)
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cached.exists():
            raise InputError(f"no weights for torchvision {arch!r}: give weights_path=, or put "
                             f"{Path(weights.url).name} in {cached.parent} (leakguard does not download)")
        weights_path = cached
    state = torch.load(Path(weights_path), map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    # drop the classifier: penultimate features are the embedding
    for attr in ("fc", "classifier", "head", "heads"):
        if hasattr(model, attr):
            setattr(model, attr, torch.nn.Identity())
            break
    return model


def get_embedder(spec=None, weights_path: str | Path | None = None, **kw) -> Callable:
    """The embedder named by ``spec`` (see the module docstring); callables are returned as they are."""
    if spec is None or spec == "pyramid":
        return PyramidEmbedder(**kw)
    if callable(spec):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise InputError(f"embedder must be a callable, None, 'pyramid', 'torchvision:<arch>', "
                         f"'timm:<name>' or 'open_clip:<name>'; got {spec!r}")
    family, name = spec.split(":", 1)
    if family == "torchvision":
        return TorchEmbedder(_torchvision(name, weights_path), name=spec, **kw)
    if family == "timm":
        import timm

        if weights_path is None:
            raise InputError("timm embedders need weights_path= (a local weights file); leakguard does not download")
        model = timm.create_model(name, pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay={"file": str(weights_path)})
        cfg = model.pretrained_cfg
        return TorchEmbedder(model, size=cfg.get("input_size", (3, 224, 224))[-1], mean=cfg.get("mean"),
                             std=cfg.get("std"), name=spec, **kw)
    if family == "open_clip":
        import open_clip

        if weights_path is None:
            raise InputError("open_clip embedders need weights_path= (a local checkpoint); leakguard does not download")
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(weights_path))

        class _Visual:
            def __init__(self, m):
                self.m = m

            def eval(self):
                self.m.eval()
                return self

            def to(self, device):
                self.m.to(device)
                return self

            def __call__(self, x):
                return self.m.encode_image(x)

        return TorchEmbedder(_Visual(model), size=224, mean=(0.4815, 0.4578, 0.4082),
                             std=(0.2686, 0.2613, 0.2758), name=spec, **kw)
    raise InputError(f"unknown embedder family {family!r} in {spec!r}")


def embed_split(split, embedder: Callable, valid: np.ndarray, batch_size: int = 256,
                progress: bool | None = None) -> np.ndarray:
    """Embeddings (n_valid, d) of the readable images of one split, read in batches."""
    from tqdm.auto import tqdm

    from .sources import canonical_item

    idx = np.flatnonzero(valid)
    out = []
    disable = progress is False or (progress is None and len(idx) < 500)
    for lo in tqdm(range(0, len(idx), batch_size), desc=f"embedding {split.name}", unit="batch",
                   disable=disable, leave=False):
        items = [canonical_item(split.source.load(int(i)), "image") for i in idx[lo:lo + batch_size]]
        vecs = np.asarray(embedder(items), dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != len(items):
            raise InputError(f"the embedder returned shape {vecs.shape} for {len(items)} images of split "
                             f"{split.name!r}; it must return one row per image")
        out.append(vecs)
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)
