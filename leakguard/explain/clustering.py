"""Cluster per-sample explanations with HDBSCAN and summarise each cluster.

Samples the model explains the same way land together: a cluster of samples all explained by
one feature, or by attribution piled into one small image region, is what a person should look
at first. Rows are clustered on their attributions scaled to unit L1 norm (the *shape* of the
explanation, not its size); images on their attribution magnitude pooled to a coarse grid.

>>> from leakguard.explain.clustering import cluster_explanations
>>> clusters, labels = cluster_explanations(att, y)    # doctest: +SKIP
>>> clusters[0]["size"], clusters[0]["top_features"]     # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np


def explanation_vectors(values: np.ndarray, modality: str, grid: int = 8) -> np.ndarray:
    """What HDBSCAN sees: unit-L1 signed rows, or unit-mass pooled |attribution| maps for images."""
    values = np.asarray(values, dtype=np.float64)
    if modality == "tabular":
        norm = np.abs(values).sum(1, keepdims=True)
        return values / np.where(norm > 0, norm, 1.0)
    maps = pooled_maps(values, grid)
    return maps.reshape(len(maps), -1)


def attribution_maps(values: np.ndarray) -> np.ndarray:
    """(n, H, W) attribution magnitude of (n, C, H, W) image attributions, summed over channels."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 4:
        return np.abs(values).sum(1)
    return np.abs(values)


def pooled_maps(values: np.ndarray, grid: int = 8) -> np.ndarray:
    """(n, g, g) attribution mass per cell of a coarse grid, each map summing to 1."""
    maps = attribution_maps(values)
    n, h, w = maps.shape
    gh, gw = min(grid, h), min(grid, w)
    rows = np.array_split(np.arange(h), gh)
    cols = np.array_split(np.arange(w), gw)
    pooled = np.zeros((n, gh, gw))
    for i, r in enumerate(rows):
        band = maps[:, r, :]
        for j, c in enumerate(cols):
            pooled[:, i, j] = band[:, :, c].sum((1, 2))
    total = pooled.sum((1, 2), keepdims=True)
    return pooled / np.where(total > 0, total, 1.0)


def cluster_explanations(vectors: np.ndarray, min_cluster_size: int | None = None,
                         random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN labels (-1 = noise) and membership strengths of explanation ``vectors``.

    More than 16 dimensions are first reduced with PCA: density-based clustering needs a
    space where distances still mean something.
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA

    n = len(vectors)
    if n < 4:
        return np.full(n, -1), np.zeros(n)
    X = np.asarray(vectors, dtype=np.float64)
    if X.shape[1] > 16 and n > 16:
        X = PCA(n_components=16, random_state=random_state).fit_transform(X)
    mcs = min_cluster_size or max(5, int(round(0.03 * n)))
    mcs = max(2, min(mcs, n // 2))
    model = HDBSCAN(min_cluster_size=mcs, min_samples=min(5, mcs), copy=True)
    labels = model.fit_predict(X)
    return labels, getattr(model, "probabilities_", np.ones(n))


def summarise_clusters(att, labels: np.ndarray, strength: np.ndarray, y=None, grid: int = 8,
                       n_exemplars: int = 12, top_k: int = 5) -> list[dict]:
    """One dict per cluster: id, members (indices into X), size, top_features, label_purity,
    majority_label, mean_attribution (shaped like one sample), exemplars, feature_shares."""
    out = []
    label_source = np.asarray(y)[att.indices] if y is not None else np.asarray(att.predicted)
    image = att.modality == "image"
    pooled = pooled_maps(att.values, grid) if image else None
    for cid in sorted(set(labels.tolist()) - {-1}):
        pos = np.flatnonzero(labels == cid)
        vals = att.values[pos]
        mean_attr = vals.mean(0)
        labs = label_source[pos]
        uniq, counts = np.unique(labs.astype(str) if labs.dtype.kind in "OUS" else labs, return_counts=True)
        majority = uniq[np.argmax(counts)]
        order = pos[np.argsort(-strength[pos], kind="stable")]
        entry = {
            "id": int(cid), "members": att.indices[pos].astype(int).tolist(), "size": int(len(pos)),
            "label_purity": float(counts.max() / len(pos)),
            "majority_label": majority.item() if isinstance(majority, np.generic) else majority,
            "mean_attribution": mean_attr,
            "exemplars": att.indices[order[:n_exemplars]].astype(int).tolist(),
            "_positions": pos, "suspicious": False, "reason": "",
        }
        if image:
            cell = pooled[pos].mean(0)
            flat = np.argsort(-cell, axis=None)[:top_k]
            gh, gw = cell.shape
            entry["top_features"] = [region_name(int(k) // gw, int(k) % gw, gh, gw) for k in flat]
            entry["feature_shares"] = [float(cell.flat[k]) for k in flat]
        else:
            mag = np.abs(vals).mean(0)
            share = mag / mag.sum() if mag.sum() > 0 else mag
            top = np.argsort(-share)[:top_k]
            entry["top_features"] = [att.feature_names[i] for i in top]
            entry["feature_shares"] = [float(share[i]) for i in top]
        out.append(entry)
    out.sort(key=lambda c: -c["size"])
    return out


def region_name(i: int, j: int, gh: int, gw: int) -> str:
    """A grid cell as a person says it: 'top-left', 'centre', 'row 2, col 5 of 8x8'."""
    vert = "top" if i == 0 else "bottom" if i == gh - 1 else None
    horiz = "left" if j == 0 else "right" if j == gw - 1 else None
    where = "-".join(p for p in (vert, horiz) if p) or None
    cell = f"cell r{i}c{j} of {gh}x{gw}"
    return f"{cell} ({where} edge)" if where and "-" not in where else f"{cell} ({where} corner)" if where else cell


def window_scan(mass: np.ndarray, max_area: float = 1 / 16, steps: int = 12) -> list[tuple[float, float, tuple[slice, slice]]]:
    """For square windows from 2 pixels wide up to ``max_area`` of the image: the position holding the
    most mass. Returns [(mass share, area share, (row slice, col slice))], smallest window first."""
    h, w = mass.shape
    total = float(mass.sum()) or 1.0
    integral = np.pad(mass, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    biggest = max(1, int(np.sqrt(max_area * h * w)))
    sizes = sorted({int(round(k)) for k in np.geomspace(min(2, biggest), biggest, steps)} | {biggest})
    out = []
    for k in sizes:
        a, b = min(k, h), min(k, w)
        sums = integral[a:, b:] - integral[:-a, b:] - integral[a:, :-b] + integral[:-a, :-b]
        r, c = divmod(int(np.argmax(sums)), sums.shape[1])
        out.append((float(sums[r, c]) / total, a * b / (h * w), (slice(r, r + a), slice(c, c + b))))
    return out


def best_window(mass: np.ndarray, max_area: float = 1 / 16) -> tuple[float, tuple[slice, slice]]:
    """The axis-aligned window covering at most ``max_area`` of a (H, W) mass map that holds the most mass.

    Returns (share of total mass inside, (row slice, col slice)); windows of a few shapes are tried.
    """
    h, w = mass.shape
    total = float(mass.sum()) or 1.0
    best, where = 0.0, (slice(0, 1), slice(0, 1))
    integral = np.pad(mass, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    limit = max(1, int(max_area * h * w))
    shapes = {(a, b) for a in range(1, h + 1) for b in range(1, w + 1)
              if a * b <= limit and 0.5 <= a / b <= 2 and (a * b) * 2 > limit}
    for a, b in shapes or {(1, 1)}:
        sums = integral[a:, b:] - integral[:-a, b:] - integral[a:, :-b] + integral[:-a, :-b]
        k = int(np.argmax(sums))
        r, c = divmod(k, sums.shape[1])
        if sums.flat[k] > best:
            best, where = float(sums.flat[k]), (slice(r, r + a), slice(c, c + b))
    return best / total, where
