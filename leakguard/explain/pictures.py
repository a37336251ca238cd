"""Pictures a person reviews in bulk: the SHAP summary plot and one picture per explanation cluster.

Drawn with matplotlib's Agg backend (switched to for the drawing and switched back after, so a
notebook's or a GUI's backend is left as it was) and returned as PIL images, ready for
``leakguard.tracking.log_report(..., pictures=...)``.

>>> pics = tl.pictures()                 # doctest: +SKIP
>>> pics["shap_summary"].save("summary.png")   # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import io

import numpy as np

from .clustering import attribution_maps

CELL = 96


@contextlib.contextmanager
def agg_backend():
    """pyplot on the Agg backend for the duration (shap's plots draw through pyplot)."""
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    switch = before.lower() != "agg"
    if switch:
        plt.switch_backend("Agg")
    try:
        yield plt
    finally:
        if switch:
            with contextlib.suppress(Exception):
                plt.switch_backend(before)


def figure_to_image(fig):
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def shap_summary_picture(att, max_display: int = 15):
    """The SHAP beeswarm summary (rows) or the mean attribution map per predicted class (images)."""
    with agg_backend() as plt:
        if att.modality == "tabular":
            import shap

            import inspect

            # shap >= 0.50 takes an explicit generator (and warns about the global one without it)
            seeded = {"rng": np.random.default_rng(0)} if "rng" in inspect.signature(shap.summary_plot).parameters else {}
            shap.summary_plot(att.values, att.data.astype(np.float64), feature_names=att.feature_names,
                              max_display=max_display, show=False,
                              plot_size=(8, 0.4 * min(max_display, len(att.feature_names)) + 1.5), **seeded)
            fig = plt.gcf()
            fig.suptitle("attribution toward the predicted output (SHAP, per sample)", fontsize=10)
        else:
            maps = attribution_maps(att.values)
            classes = np.unique(att.predicted)[:10]
            cols = len(classes) + 1
            fig, axes = plt.subplots(1, cols, figsize=(2.0 * cols, 2.4))
            axes = np.atleast_1d(axes)
            _heat(axes[0], maps.mean(0), "all samples")
            for ax, c in zip(axes[1:], classes):
                _heat(ax, maps[att.predicted == c].mean(0), f"predicted {c}")
            fig.suptitle("mean |attribution| (where the model looks)", fontsize=10)
        image = figure_to_image(fig)
        plt.close(fig)
    return image


def _heat(ax, m, title):
    ax.imshow(m, cmap="magma")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def cluster_picture(att, cluster: dict, y=None, max_exemplars: int = 12, columns: int = 6):
    """Images: a grid of exemplars, each with its attribution overlaid in red. Rows: a bar chart
    of the cluster's mean attribution by feature."""
    title = (f"cluster {cluster['id']}: {cluster['size']} samples, "
             f"{cluster['label_purity']:.0%} label {cluster['majority_label']}"
             + ("  [SUSPICIOUS]" if cluster.get("suspicious") else ""))
    if att.modality == "image":
        return _exemplar_grid(att, cluster, title, y, max_exemplars, columns)
    with agg_backend() as plt:
        mean = np.asarray(cluster["mean_attribution"], dtype=np.float64)
        order = np.argsort(-np.abs(mean))[:10][::-1]
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.2))
        ax.barh([att.feature_names[i] for i in order], mean[order],
                color=["#c0392b" if mean[i] > 0 else "#2e86c1" for i in order])
        ax.set_xlabel("mean attribution toward the predicted output")
        ax.set_title(title, fontsize=9)
        image = figure_to_image(fig)
        plt.close(fig)
    return image


def overlay(image_chw: np.ndarray, attribution_chw: np.ndarray, size: int = CELL):
    """One image (C, H, W) in grey with its |attribution| in red on top, enlarged to ``size``."""
    from PIL import Image

    img = np.asarray(image_chw, dtype=np.float64)
    grey = img.mean(0) if img.ndim == 3 else img
    lo, hi = np.nanmin(grey), np.nanmax(grey)
    grey = (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
    heat = attribution_maps(np.asarray(attribution_chw)[None])[0]
    top = np.quantile(heat, 0.995) if heat.max() > 0 else 1.0
    heat = np.clip(heat / (top or 1.0), 0, 1)
    rgb = np.stack([grey, grey, grey], -1) * (1 - 0.7 * heat[..., None])
    rgb[..., 0] += 0.9 * heat
    pic = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    scale = size / max(pic.size)
    new = (max(1, round(pic.size[0] * scale)), max(1, round(pic.size[1] * scale)))
    return pic.resize(new, Image.NEAREST if scale > 1 else Image.LANCZOS)


def _exemplar_grid(att, cluster, title, y, max_exemplars, columns):
    from PIL import Image, ImageDraw

    from ..report.pictures import _font

    where = {int(i): k for k, i in enumerate(att.indices)}
    picks = [where[i] for i in cluster["exemplars"][:max_exemplars] if i in where]
    columns = max(1, min(columns, len(picks)))
    rows = max(1, -(-len(picks) // columns))
    caption, head, gap = 16, 22, 4
    W = columns * (CELL + gap) + gap
    H = head + rows * (CELL + caption + gap) + gap
    canvas = Image.new("RGB", (max(W, 360), H), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(11)
    draw.text((gap, 4), title, fill=(0, 0, 0), font=font)
    for k, pos in enumerate(picks):
        r, c = divmod(k, columns)
        x0, y0 = gap + c * (CELL + gap), head + r * (CELL + caption + gap)
        canvas.paste(overlay(att.data[pos], att.values[pos]), (x0, y0))
        label = f"#{int(att.indices[pos])} p={att.predicted[pos]}"
        if y is not None:
            label += f" y={np.asarray(y)[int(att.indices[pos])]}"
        draw.text((x0, y0 + CELL + 1), label, fill=(60, 60, 60), font=_font(10))
    return canvas
