"""Small synthetic YOLO datasets: frames of short videos of moving shapes.

Used by the tests, the example and the benchmark of the Ultralytics integration, and handy to
see the video-frame leak without downloading anything:

>>> from leakguard.sources.yolo_synthetic import make_video_frames
>>> yaml_path = make_video_frames("frames", n_videos=6, frames_per_video=8, split="random")  # doctest: +SKIP

``split="random"`` assigns frames to train / val at random (the leak: neighbouring frames of one
video on both sides); ``split="by_video"`` keeps each video in one split (clean). ``task`` picks
the label format: detect boxes, segment polygons, pose keypoints (``kpt_shape`` in data.yaml),
OBB 4-corner boxes, or classification folders.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")
TASKS = ("detect", "segment", "pose", "obb", "classify")
# pose: two keypoints per object, (x, y, visibility): the shape's centre and its top point; both
# stay where they are under a horizontal flip, hence flip_idx [0, 1]
KPT_SHAPE = [2, 3]
FLIP_IDX = [0, 1]
CIRCLE_POINTS = 16


def _outline(shape: int, cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    """The shape's outline in pixels, as drawn by ``_frame`` (a polygon: the segmentation label)."""
    if shape == 0:
        angles = np.linspace(0, 2 * np.pi, CIRCLE_POINTS, endpoint=False)
        return [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles]
    if shape == 1:
        return [(cx - radius, cy - radius), (cx + radius, cy - radius), (cx + radius, cy + radius),
                (cx - radius, cy + radius)]
    return [(cx, cy - radius), (cx + radius, cy + radius), (cx - radius, cy + radius)]


def label_row(task: str, cls: int, shape: int, cx: float, cy: float, radius: float, size: int) -> str:
    """One YOLO label line for an object drawn at (cx, cy) with ``radius`` in a ``size`` frame.

    detect: ``cls x y w h``; segment: ``cls x1 y1 ... xn yn`` (the outline); pose: the box then
    ``KPT_SHAPE[0]`` keypoints ``x y v``; obb: ``cls x1 y1 x2 y2 x3 y3 x4 y4`` (the box corners,
    clockwise). Coordinates are normalised to [0, 1].
    """
    def xy(points):
        return " ".join(f"{min(max(x / size, 0.0), 1.0):.6f} {min(max(y / size, 0.0), 1.0):.6f}" for x, y in points)

    box = f"{cx / size:.6f} {cy / size:.6f} {2 * radius / size:.6f} {2 * radius / size:.6f}"
    if task == "detect":
        return f"{cls} {box}"
    if task == "segment":
        return f"{cls} {xy(_outline(shape, cx, cy, radius))}"
    if task == "pose":
        centre, top = xy([(cx, cy)]), xy([(cx, cy - radius)])
        return f"{cls} {box} {centre} 2 {top} 2"
    if task == "obb":
        return f"{cls} {xy(_outline(1, cx, cy, radius))}"
    raise ValueError(f"no label rows for task {task!r}")


def _frame(size: int, background: np.ndarray, texture: np.ndarray, shape: int, cx: float, cy: float,
           radius: float, colour: np.ndarray, noise: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = background[None, None, :] * texture[:, :, None]
    if shape == 0:
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2
    elif shape == 1:
        mask = (np.abs(xx - cx) <= radius) & (np.abs(yy - cy) <= radius)
    else:
        mask = (yy >= cy - radius) & (yy <= cy + radius) & (np.abs(xx - cx) <= (yy - (cy - radius)) / 2)
    img[mask] = colour
    img += noise  # sensor noise: neighbouring frames are near, never exact, copies
    return np.clip(img, 0, 255).astype(np.uint8)


def make_video_frames(root, n_videos: int = 6, frames_per_video: int = 8, size: int = 64,
                      split: str = "random", val_share: float = 0.34, task: str = "detect",
                      exact_copies: int = 0, conflicting_copies: int = 0, test_videos: int = 0,
                      clean_val_videos: int = 0, image_format: str = "png", random_state: int = 0) -> Path:
    """Write a dataset of video frames and return its ``data.yaml`` (detect) or folder (classify).

    Parameters
    ----------
    root : output folder (replaced if it exists).
    n_videos, frames_per_video, size : how many videos, frames each, and the frame side in pixels.
        Each video shows one shape (the class: circle, square, triangle) moving across a textured
        background of the video's own colour. Files are named ``vid{v}_{frame}.png``.
    split : "random" (frames split at random: the leak) or "by_video" (each video in one split).
    val_share : the share of frames (random) or videos (by_video) in val.
    task : "detect", "segment", "pose", "obb" (``images/``, ``labels/``, ``data.yaml``; see
        :func:`label_row` for each label format) or "classify" (``train/<class>/``...).
    exact_copies : training frames also copied into val under their own name (same label).
    conflicting_copies : training frames copied into val with another class (a label conflict).
    test_videos : extra videos written to a test split.
    clean_val_videos : extra videos written whole to val (a clean part next to a leaky one).
    image_format : "png" (lossless) or "jpg" (quality 90, as most real datasets are stored).
    random_state : seed.
    """
    if split not in ("random", "by_video"):
        raise ValueError(f"split must be 'random' or 'by_video', got {split!r}")
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    rng = np.random.default_rng(random_state)
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    total_videos = n_videos + test_videos + clean_val_videos
    val_videos = set(rng.choice(n_videos, size=max(1, round(n_videos * val_share)), replace=False).tolist())
    records = []  # (split, video, frame, shape, pixels, box)
    for v in range(total_videos):
        shape = v % len(SHAPES)
        background = rng.uniform(40, 220, size=3).astype(np.float32)
        texture = (0.75 + 0.5 * rng.random((size // 8, size // 8))).astype(np.float32)
        texture = np.kron(texture, np.ones((8, 8), dtype=np.float32))[:size, :size]
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        radius = size * rng.uniform(0.12, 0.2)
        # start and end inside the frame, so every frame differs from the next (no clipping at edges)
        (x0, y0), (x1, y1) = rng.uniform(radius + 1, size - radius - 1, size=(2, 2))
        for f in range(frames_per_video):
            step = f / max(frames_per_video - 1, 1)
            cx, cy = float(x0 + (x1 - x0) * step), float(y0 + (y1 - y0) * step)
            if v >= n_videos + test_videos:
                where = "val"
            elif v >= n_videos:
                where = "test"
            elif split == "by_video":
                where = "val" if v in val_videos else "train"
            else:
                where = "val" if rng.random() < val_share else "train"
            box = (cx, cy, radius)
            records.append([where, v, f, shape, _frame(size, background, texture, shape, cx, cy, radius, colour,
                                                             rng.normal(0, 2.0, (size, size, 1)).astype(np.float32)), box])
    if not any(r[0] == "val" for r in records):  # tiny random splits: keep val non-empty
        records[1][0] = "val"
    train_records = [r for r in records if r[0] == "train"]
    picks = rng.choice(len(train_records), size=min(len(train_records), exact_copies + conflicting_copies),
                       replace=False)
    copies = []
    for k, i in enumerate(picks):
        r = train_records[int(i)]
        shape = r[3] if k < exact_copies else (r[3] + 1) % len(SHAPES)
        copies.append(["val", r[1], r[2], shape, r[4], r[5]])
    from PIL import Image

    for where, v, f, shape, pixels, (cx, cy, radius) in records + copies:
        stem = f"vid{v:02d}_{f:04d}"
        if task == "classify":
            out = root / where / SHAPES[shape] / f"{stem}.{image_format}"
        else:
            out = root / "images" / where / f"{stem}.{image_format}"
            label = root / "labels" / where / f"{stem}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            # the outline is the video's own shape; the class of a relabelled copy is another one
            label.write_text(label_row(task, shape, v % len(SHAPES), cx, cy, radius, size) + "\n")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(out, **({"quality": 90} if image_format == "jpg" else {}))
    if task == "classify":
        for where in ("train", "val", *(["test"] if test_videos else [])):
            for name in SHAPES:
                (root / where / name).mkdir(parents=True, exist_ok=True)
        return root
    lines = ["train: images/train", "val: images/val"]
    if test_videos:
        lines.append("test: images/test")
    if task == "pose":
        lines += [f"kpt_shape: {KPT_SHAPE}", f"flip_idx: {FLIP_IDX}"]
    lines.append("names:")
    lines += [f"  {i}: {n}" for i, n in enumerate(SHAPES)]
    yaml_path = root / "data.yaml"
    yaml_path.write_text("\n".join(lines) + "\n")
    return yaml_path
