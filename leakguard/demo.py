"""The demo: the classic mistake of augmenting before splitting, found in one minute.

scikit-learn's handwritten digits are augmented the way many pipelines do it (copies flipped,
shifted, brightened or left as they are), the originals and copies are pooled, and the pool is
split at random. Half of the "validation" images then have a sibling in the training split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def make_leaky_digits(seed: int = 0, copies_per_image: int = 1):
    """Digits plus augmented copies, pooled and split at random (80/20). Returns a dict of arrays.

    Keys: X_train, y_train, X_val, y_val (images as (N, 8, 8) float arrays, values 0-16), and
    source_train / source_val: the index of the original digit each sample comes from, which is
    the truth about which validation samples leak.
    """
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    images, labels = digits.images, digits.target
    aug, aug_y, aug_src, aug_kind = [], [], [], []
    for i, img in enumerate(images):
        for _ in range(copies_per_image):
            kind = rng.choice(["identical", "shift", "brightness", "noise"])
            if kind == "identical":   # a pipeline that keeps the copy when no transform fires
                out = img.copy()
            elif kind == "shift":
                out = np.roll(img, shift=int(rng.choice([-1, 1])), axis=int(rng.integers(0, 2)))
            elif kind == "brightness":
                out = np.clip(img * rng.uniform(0.8, 1.2), 0, 16)
            else:
                out = np.clip(img + rng.normal(0, 0.8, img.shape), 0, 16)
            aug.append(out)
            aug_y.append(labels[i])
            aug_src.append(i)
            aug_kind.append(kind)
    X = np.concatenate([images, np.stack(aug)])
    y = np.concatenate([labels, aug_y])
    src = np.concatenate([np.arange(len(images)), aug_src])
    kinds = np.concatenate([np.array(["original"] * len(images)), aug_kind])
    order = rng.permutation(len(X))
    cut = int(0.8 * len(X))
    tr, va = order[:cut], order[cut:]
    return {"X_train": X[tr], "y_train": y[tr], "X_val": X[va], "y_val": y[va],
            "source_train": src[tr], "source_val": src[va], "kind_train": kinds[tr], "kind_val": kinds[va]}


def run_demo(out: Path = Path("demo-output")) -> "object":
    """Audit the leaky digits split, print the story, write the reports. Returns the Report."""
    from rich.console import Console

    import leakguard as lg

    from .cli import print_report

    console = Console()
    data = make_leaky_digits()
    truth = np.isin(data["source_val"], data["source_train"])
    console.rule("leakguard demo: augmenting before splitting")
    console.print(f"{len(data['X_train']) + len(data['X_val'])} digit images (1797 originals from scikit-learn "
                  "and one augmented copy of each) split at random 80/20.")
    console.print(f"By construction, {truth.sum()} of the {len(truth)} validation images come from a digit "
                  "that is also in the training split.\n")
    report = lg.audit({"train": data["X_train"], "val": data["X_val"]},
                      labels={"train": data["y_train"], "val": data["y_val"]}, modality="image")
    print_report(report, console)
    found = report.leaked("val")
    hit = truth[found].sum() if len(found) else 0
    console.print(f"\nleakguard linked [bold]{len(found)}[/] validation images to the training split; "
                  f"{hit} of them truly leak (precision {hit / max(len(found), 1):.2f}, "
                  f"recall {hit / max(truth.sum(), 1):.2f}).")
    for check in sorted({f.check for f in report.findings}):
        console.print(f"  {check}: {len(report.leaked('val', check))} validation images")
    paths = report.save(Path(out))
    console.print(f"\nHTML report: [link=file://{paths['html'].resolve()}]{paths['html']}[/link]")
    console.print(f"JSON report: {paths['json']}")
    return report
