"""Small previews of the samples behind the worst pairs: thumbnails, snippets, waveforms, rows."""
from __future__ import annotations

import base64
import io

import numpy as np

THUMB = 96
SNIPPET = 400


def png_data_uri(img) -> str:
    buf = io.BytesIO()
    # fast zlib level: 96 px previews come out ~15 % larger, 5x cheaper than optimize=True (which
    # cost 17 % of an exact-only audit of 1000 JPEGs)
    img.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_thumbnail(arr: np.ndarray, size: int = THUMB):
    """A PIL thumbnail of a canonical image array; tiny images are enlarged without smoothing."""
    from PIL import Image

    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        finite = np.isfinite(a)
        lo, hi = (a[finite].min(), a[finite].max()) if finite.any() else (0.0, 1.0)
        a = np.where(finite, (a - lo) / (hi - lo if hi > lo else 1.0), 0.0)
        arr = (a * 255).round().astype(np.uint8)
    img = Image.fromarray(arr if arr.ndim == 2 or arr.shape[2] in (3, 4) else arr[:, :, 0])
    scale = size / max(img.size)
    new = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
    return img.resize(new, Image.NEAREST if scale > 1 else Image.LANCZOS)


def waveform_picture(wave: np.ndarray, width: int = 160, height: int = 48):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    if len(wave):
        cols = np.array_split(np.abs(np.asarray(wave, dtype=np.float32)), width)
        peak = max(float(np.max(np.abs(wave))), 1e-9)
        for x, c in enumerate(cols):
            h = (float(c.max()) / peak if len(c) else 0.0) * (height / 2 - 1)
            draw.line([(x, height / 2 - h), (x, height / 2 + h)], fill=(40, 90, 160))
    return img


def sample_preview(split, index: int) -> dict:
    """JSON-ready preview of one sample: name, and a thumbnail, text snippet or row values."""
    from ..errors import SampleError
    from ..sources import TabularSource

    src = split.source
    out: dict = {"name": src.name(index)}
    try:
        if isinstance(src, TabularSource):
            row = src.frame.iloc[int(index)]
            out["row"] = {str(k): _short(v) for k, v in list(row.items())[:16]}
            return out
        item = src.load(int(index))
        mod = src.modality
        if mod == "image":
            from ..sources.readers import canonical_image

            out["thumb"] = png_data_uri(image_thumbnail(canonical_image(item)))
        elif mod == "text":
            out["text"] = item[:SNIPPET] + ("…" if len(item) > SNIPPET else "")
        elif mod == "audio":
            wave, rate = item if isinstance(item, tuple) else (item, 0)
            out["thumb"] = png_data_uri(waveform_picture(wave))
            out["info"] = f"{len(wave) / rate:.2f} s at {rate} Hz" if rate else f"{len(wave)} samples"
        elif mod == "series":
            out["thumb"] = png_data_uri(waveform_picture(np.asarray(item) - np.nanmean(item)))
    except (SampleError, OSError, ValueError) as err:
        out["error"] = str(err)
    return out


def _short(v):
    if isinstance(v, float):
        return None if not np.isfinite(v) else round(v, 6)
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return _short(v.item())
    s = str(v)
    return s[:80] + ("…" if len(s) > 80 else "")


PREVIEW_VERSION = "1"  # bump when image thumbnails are drawn differently (kept ones are keyed by it)


def build_previews(findings, splits, max_examples: int, cache_dir=None, digests: dict | None = None
                   ) -> dict[str, dict]:
    """Previews keyed "split:index" for the best-scoring ``max_examples`` pairs of each finding.

    ``cache_dir`` and ``digests`` (``{split: content digest per sample}``): image thumbnails are kept
    in the signature cache by content and read back by the next audit (reading and encoding a PNG
    costs ~10-20 ms a sample, a good part of a re-audit that reads everything else back).
    """
    wanted: list[tuple[str, int]] = []
    for f in findings:
        if f.pairs is None or not len(f.pairs):
            continue
        top = f.pairs.sort_values("score", ascending=False, kind="stable").head(max_examples)
        for row in top.itertuples(index=False):
            wanted += [(row.split_a, int(row.index_a)), (row.split_b, int(row.index_b))]
    wanted = [(split, index) for split, index in dict.fromkeys(wanted) if split in splits]
    kept = _KeptThumbnails(cache_dir, splits, digests, wanted) if cache_dir and digests else None
    out = {}
    for split, index in wanted:
        thumb = kept.get(split, index) if kept is not None else None
        if thumb is not None:
            out[f"{split}:{index}"] = {"name": splits[split].source.name(index), "thumb": thumb}
            continue
        out[f"{split}:{index}"] = preview = sample_preview(splits[split], index)
        if kept is not None and "thumb" in preview and "error" not in preview:
            kept.put(split, index, preview["thumb"])
    if kept is not None:
        kept.close()
    return out


class _KeptThumbnails:
    """Image previews in the signature cache, keyed by the sample's content digest and the code that
    draws them (report/previews.py, sources/readers.py, Pillow / numpy versions)."""

    def __init__(self, cache_dir, splits, digests: dict, wanted: list):
        from ..signatures.cache import SignatureCache
        from ..similarity.memo import code_fingerprint

        self.keys: dict[tuple[str, int], bytes] = {}
        for split, index in wanted:
            ds = digests.get(split)
            if splits[split].source.modality == "image" and ds is not None and index < len(ds) \
                    and ds[index] is not None:
                self.keys[(split, index)] = bytes(ds[index]) + THUMB.to_bytes(4, "little")
        self.cache = SignatureCache(cache_dir) if self.keys else None
        self.kind = (f"preview/image/{PREVIEW_VERSION}/"
                     f"{code_fingerprint(('leakguard.report.previews', 'leakguard.sources.readers')).hex()}")
        self.found = self.cache.get_many(self.kind, list(set(self.keys.values()))) if self.cache else {}

    def get(self, split: str, index: int) -> str | None:
        blob = self.found.get(self.keys.get((split, index)))
        return blob.decode("ascii") if blob is not None else None

    def put(self, split: str, index: int, thumb: str) -> None:
        key = self.keys.get((split, index))
        if key is not None and self.cache is not None:
            self.cache.put(self.kind, key, thumb.encode("ascii"))

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
