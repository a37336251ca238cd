"""PNG pictures of the worst pairs of each finding, for MLflow's artifact view and for people.

The pictures are built from the previews an audit already keeps (``report.samples``: small
thumbnails of the samples behind the best-scoring pairs), so they can be drawn again from a
saved ``report.json`` without the data.

>>> from leakguard.report.pictures import pair_pictures
>>> pictures = pair_pictures(report)               # doctest: +SKIP
>>> pictures["pairs_exact_duplicate_val"].save("worst.png")   # doctest: +SKIP
"""
from __future__ import annotations

import base64
import io
import re

CELL = 96          # thumbnail cell, pixels
CAPTION = 30       # caption height under each pair, pixels
GAP = 8
MAX_PAIRS = 12     # pairs per picture
COLUMNS = 3        # pairs per picture row


def decode_data_uri(uri: str):
    """A PIL image from a ``data:image/png;base64,...`` URI (as the report's previews hold)."""
    from PIL import Image

    if not uri or not uri.startswith("data:image/") or "," not in uri:
        raise ValueError(f"not an image data URI: {uri[:40]!r}")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


def _font(size: int):
    from PIL import ImageFont

    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default()


def _fit(img, size: int):
    """The image scaled to fit a ``size`` square; small pictures are enlarged without smoothing."""
    from PIL import Image

    scale = size / max(img.size)
    new = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
    return img.resize(new, Image.NEAREST if scale > 1 else Image.LANCZOS)


def safe_name(text: str) -> str:
    """A file-name-safe form of a check or split name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


TEXT_CELL = (220, 110)  # text snippets and table rows get wider cells


def text_picture(text: str, size: tuple[int, int] = TEXT_CELL):
    """A text snippet (or a table row as ``key=value`` lines) drawn into a small picture."""
    import textwrap

    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (250, 250, 250))
    draw = ImageDraw.Draw(img)
    font = _font(10)
    lines = []
    for para in str(text).splitlines() or [""]:
        lines += textwrap.wrap(para, width=max(8, size[0] // 6)) or [""]
    max_lines = max(1, (size[1] - 6) // 12)
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [lines[max_lines - 1][:-1] + "…"]
    for i, line in enumerate(lines):
        draw.text((4, 3 + 12 * i), line, fill=(40, 40, 40), font=font)
    return img


def sample_picture(preview: dict):
    """The picture of one sample's preview: its thumbnail, else its text or row drawn; None if neither."""
    if preview.get("thumb"):
        return decode_data_uri(preview["thumb"])
    if preview.get("text"):
        return text_picture(preview["text"])
    if preview.get("row"):
        return text_picture("\n".join(f"{k}={v}" for k, v in preview["row"].items()))
    return None


def finding_picture(report, finding, max_pairs: int = MAX_PAIRS, columns: int = COLUMNS):
    """A grid of ``finding``'s best-scoring pairs (training side left), or None without previews."""
    from PIL import Image, ImageDraw

    if finding.pairs is None or not len(finding.pairs):
        return None
    top = finding.pairs.sort_values("score", ascending=False, kind="stable")
    cells = []
    for r in top.itertuples(index=False):
        a = report.samples.get(f"{r.split_a}:{int(r.index_a)}", {})
        b = report.samples.get(f"{r.split_b}:{int(r.index_b)}", {})
        try:
            pa, pb = sample_picture(a), sample_picture(b)
        except (ValueError, OSError):
            continue  # a damaged preview costs one pair in the picture, not the picture
        if pa is None or pb is None:
            continue
        cells.append((pa, pb, r))
        if len(cells) >= max_pairs:
            break
    if not cells:
        return None
    textual = not any(report.samples.get(f"{r.split_a}:{int(r.index_a)}", {}).get("thumb") for _, _, r in cells)
    cell_w, cell_h = TEXT_CELL if textual else (CELL, CELL)
    columns = max(1, min(columns if not textual else 2, len(cells)))
    rows = -(-len(cells) // columns)
    pair_w, pair_h = 2 * cell_w + GAP, cell_h + CAPTION
    header = 28
    width = columns * pair_w + (columns + 1) * 2 * GAP
    height = header + rows * (pair_h + 2 * GAP) + GAP
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    title_font, small = _font(14), _font(11)
    splits = " → ".join(dict.fromkeys(finding.splits))
    draw.text((2 * GAP, 6), f"{finding.check}: {splits}  ({finding.count} affected, best {len(cells)} pairs)",
              fill=(30, 30, 30), font=title_font)
    for k, (img_a, img_b, r) in enumerate(cells):
        x0 = 2 * GAP + (k % columns) * (pair_w + 2 * GAP)
        y0 = header + (k // columns) * (pair_h + 2 * GAP)
        for j, img in enumerate((img_a, img_b)):
            thumb = img if textual else _fit(img, CELL)
            cx = x0 + j * (cell_w + GAP) + (cell_w - thumb.size[0]) // 2
            cy = y0 + (cell_h - thumb.size[1]) // 2
            canvas.paste(thumb, (cx, cy))
            draw.rectangle([cx - 1, cy - 1, cx + thumb.size[0], cy + thumb.size[1]], outline=(190, 190, 190))
        draw.text((x0, y0 + cell_h + 3), f"{r.split_a} #{int(r.index_a)} ↔ {r.split_b} #{int(r.index_b)}",
                  fill=(60, 60, 60), font=small)
        draw.text((x0, y0 + cell_h + 16), f"score {float(r.score):.3f}", fill=(120, 120, 120), font=small)
    return canvas


def pair_pictures(report, max_pairs: int = MAX_PAIRS) -> dict:
    """``{"pairs_<check>_<split>": PIL.Image}`` for every finding whose pairs have thumbnails."""
    out = {}
    for f in report.findings:
        pic = finding_picture(report, f, max_pairs=max_pairs)
        if pic is None:
            continue
        evaluated = [s for s in dict.fromkeys(f.splits) if s != report.train] or list(f.splits)
        name = "pairs_" + safe_name(f.check) + "_" + safe_name("-".join(evaluated))
        base, k = name, 2
        while name in out:
            name, k = f"{base}_{k}", k + 1
        out[name] = pic
    return out
