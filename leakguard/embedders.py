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

    def _resized(self, img: np.ndarray) -> np.ndarray:
        """The image as float32 (size, size, 3) RGB on a 0-255 scale."""
        from PIL import Image

        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        arr = arr[:, :, :3].astype(np.float32)
        if arr.size and arr.max() > 0 and (np.asarray(img).dtype.kind == "f"):
            arr = arr / arr.max() * 255.0
        if arr.shape[:2] == (self.size, self.size):
            return arr  # Pillow returns a same-size resize unchanged: skip it
        return np.stack([np.asarray(Image.fromarray(arr[:, :, c]).resize((self.size, self.size), Image.BILINEAR))
                         for c in range(3)], axis=2)

    def _describe(self, rgb: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) float32 RGB -> (N, d) unit descriptors, vectorised over the images."""
        n, o, size = len(rgb), self.orientations, self.size
        grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        gy, gx = np.gradient(grey, axis=(1, 2))
        mag = np.sqrt(gx * gx + gy * gy)
        ang = np.arctan2(gy, gx)
        ang += np.float32(np.pi) * (ang < 0)  # unsigned orientation ...
        ang *= np.float32(o / np.pi)          # ... in bins
        floor = np.floor(ang)
        frac = ang - floor
        b0 = floor.astype(np.int32)
        b0 = np.where(b0 == o, 0, b0)  # an angle of exactly pi lands in bin 0, as 0 does
        b1 = b0 + 1
        w_lo, w_hi = (mag * (1 - frac)).reshape(n, -1), (mag * frac).reshape(n, -1)
        b_lo, b_hi = b0.reshape(n, -1), np.where(b1 == o, 0, b1).reshape(n, -1)
        rows, cols = np.indices((size, size))
        image = np.arange(n)[:, None]
        parts = []
        if size % 4 == 0:
            # the 4 x 4 cells nest in the 2 x 2 and 1 x 1 ones: two bincounts for the finest level,
            # the coarser histograms are sums of its cells
            step = size // 4
            cell = ((rows // step) * 4 + cols // step).ravel()
            base = image * (16 * o) + (cell * o)[None, :]
            h4 = (np.bincount((base + b_lo).ravel(), weights=w_lo.ravel(), minlength=n * 16 * o)
                  + np.bincount((base + b_hi).ravel(), weights=w_hi.ravel(), minlength=n * 16 * o))
            h4 = h4.reshape(n, 4, 4, o)
            levels = [(1, h4.sum(axis=(1, 2)).reshape(n, 1, o)),
                      (2, h4.reshape(n, 2, 2, 2, 2, o).sum(axis=(2, 4)).reshape(n, 4, o)),
                      (4, h4.reshape(n, 16, o))]
            for cells, h in levels:
                parts.append((h / (np.linalg.norm(h, axis=2, keepdims=True) + 1e-6) / cells).reshape(n, -1))
        else:
            for cells in (1, 2, 4):
                # one histogram per (image, cell) in two bincounts; cells in row-major order
                step = size // cells
                cy, cx = (rows // step).ravel(), (cols // step).ravel()
                width = cells * cells * o
                base = image * width + ((cy * cells + cx) * o)[None, :]
                lo_i, hi_i, lo_w, hi_w = base + b_lo, base + b_hi, w_lo, w_hi
                inside = (cy < cells) & (cx < cells)
                if not inside.all():  # a size that the cells do not divide: the remainder is left out
                    lo_i, hi_i, lo_w, hi_w = lo_i[:, inside], hi_i[:, inside], lo_w[:, inside], hi_w[:, inside]
                h = (np.bincount(lo_i.ravel(), weights=lo_w.ravel(), minlength=n * width)
                     + np.bincount(hi_i.ravel(), weights=hi_w.ravel(), minlength=n * width))
                h = h.reshape(n, cells * cells, o)
                parts.append((h / (np.linalg.norm(h, axis=2, keepdims=True) + 1e-6) / cells).reshape(n, -1))
        bins = self.colour_bins
        q = np.clip((rgb * np.float32(bins / 256.0)).astype(np.int32), 0, bins - 1)
        code = ((q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]).reshape(n, -1) + (image * bins ** 3).astype(np.int32)
        colour = np.bincount(code.ravel(), minlength=n * bins ** 3).astype(np.float64).reshape(n, -1)
        parts.append(np.sqrt(colour / np.maximum(colour.sum(axis=1, keepdims=True), 1)) * 0.5)
        v = np.concatenate(parts, axis=1)
        return (v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-9)).astype(np.float32)

    def _one(self, img: np.ndarray) -> np.ndarray:
        return self._describe(self._resized(img)[None])[0]

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if not len(images):
            return np.zeros((0, 232), np.float32)
        out = []
        for start in range(0, len(images), 256):  # bounded memory, vectorised within a chunk
            out.append(self._describe(np.stack([self._resized(im) for im in images[start:start + 256]])))
        return np.concatenate(out)


class TorchEmbedder:
    """A torch model's penultimate features as the embedding (batched, no gradients, CPU or CUDA).

    Build with :func:`get_embedder` (``"torchvision:resnet18"``, ``"timm:..."``, ``"open_clip:..."``:
    on the GPU when there is one) or give any ``torch.nn.Module`` that maps (N, 3, H, W) floats to
    (N, d) features (also straight as ``AuditConfig(embedder=module)``). A module you give runs
    where it is, in its own precision (half and bfloat16 too); ``device=`` moves it there. It is
    switched to eval mode while it embeds and given back in the mode it was in.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    >>> TorchEmbedder(net, size=32)([np.zeros((40, 40, 3), np.uint8)]).shape
    (1, 4)
    """

    def __init__(self, model, size: int = 224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                 batch_size: int = 64, device: str | None = None, name: str = "torch"):
        import torch

        self.model = model
        self.size = size
        self.mean = np.asarray(mean, np.float32)[:, None, None]
        self.std = np.asarray(std, np.float32)[:, None, None]
        self.batch_size = batch_size
        tensors = _tensors_of(model)
        if device is not None or not tensors:
            # moved only when asked to (or when it has no weights to say where it lives)
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self.model.to(self.device)
        else:
            self.device = tensors[0].device
        self.name = name

    def _input_dtype(self):
        import torch

        dtype = next((t.dtype for t in _tensors_of(self.model) if t.is_floating_point()), torch.float32)
        return dtype

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
        was_training = bool(getattr(self.model, "training", False))
        dtype = self._input_dtype()
        self.model.eval()
        try:
            with torch.inference_mode():
                for lo in range(0, len(images), self.batch_size):
                    batch = np.stack([self._tensor(im) for im in images[lo:lo + self.batch_size]])
                    feats = self.model(torch.from_numpy(batch).to(device=self.device, dtype=dtype))
                    out.append(feats.reshape(len(batch), -1).float().cpu().numpy())
        finally:
            if was_training:
                self.model.train()
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _tensors_of(model) -> list:
    """The parameters and buffers of a torch module (none for a wrapper without them)."""
    params = getattr(model, "parameters", None)
    buffers = getattr(model, "buffers", None)
    return (list(params()) if callable(params) else []) + (list(buffers()) if callable(buffers) else [])


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _is_torch_module(obj) -> bool:
    import sys

    torch = sys.modules.get("torch")  # a torch module can only exist when torch is imported
    return torch is not None and isinstance(obj, torch.nn.Module)


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
    if _is_torch_module(spec):
        return TorchEmbedder(spec, **kw)  # images in, features out: not called on a list of arrays
    if callable(spec):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise InputError(f"embedder must be a callable, None, 'pyramid', 'torchvision:<arch>', "
                         f"'timm:<name>' or 'open_clip:<name>'; got {spec!r}")
    family, name = spec.split(":", 1)
    if family == "torchvision":
        return TorchEmbedder(_torchvision(name, weights_path), name=spec, **{"device": _auto_device(), **kw})
    if family == "timm":
        import timm

        if weights_path is None:
            raise InputError("timm embedders need weights_path= (a local weights file); leakguard does not download")
        model = timm.create_model(name, pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay={"file": str(weights_path)})
        cfg = model.pretrained_cfg
        return TorchEmbedder(model, size=cfg.get("input_size", (3, 224, 224))[-1], mean=cfg.get("mean"),
                             std=cfg.get("std"), name=spec, **{"device": _auto_device(), **kw})
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

            def train(self, mode=True):
                self.m.train(mode)
                return self

            @property
            def training(self):
                return self.m.training

            def parameters(self):
                return self.m.parameters()

            def buffers(self):
                return self.m.buffers()

            def __call__(self, x):
                return self.m.encode_image(x)

        return TorchEmbedder(_Visual(model), size=224, mean=(0.4815, 0.4578, 0.4082),
                             std=(0.2686, 0.2613, 0.2758), name=spec, **{"device": _auto_device(), **kw})
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
