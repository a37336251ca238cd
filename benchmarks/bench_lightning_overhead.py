"""What LeakGuardCallback costs a Lightning fit, measured side by side with its peers.

1. Fit start: the callback's audit (every check that applies, as by default) against one pass of
   the same train / val dataloaders without augmentation (with the loaders' ``--workers`` worker
   processes, 0: in this process, as the user's training reads; with workers, the faster of that
   and a pass in this process is the reference). Target: audit / loader pass <= 1.0. Printed
   beside it: the audit of a later fit on the same data (a re-run), which reads the signatures and
   the verified pairs back from the callback's cache beside lightning_logs, and the audit with the
   exact-duplicate check only (reading, digests, the callback's own work and its report). Each
   first fit gets a fresh default_root_dir, so its audit is cold. Wall and CPU seconds are both
   printed (CPU: this process's threads, plus the loader's worker processes); on a shared machine
   the CPU ratio is the steadier one. Under the cold audit, its parts in CPU seconds (the signature
   pass, each check, the augmented check's calibration, group inference's scene links, the
   previews: :class:`AuditParts`), so a gap can be traced to the part of the engine it comes from.

   Two datasets, two rows (``--case``):
   - ``small``: distinct 96 px JPEGs, ``ToTensor`` only: a loader pass that costs almost nothing
     per image (the hardest peer; the row of sessions 2-3);
   - ``photos``: photo-sized JPEGs (500 x 375, textured, ~0.3 bytes a pixel like real photos)
     read with the usual evaluation transform (``Resize(256)``, ``CenterCrop(224)``,
     ``ToTensor``, ``Normalize``): what an image-classification loader pass costs in practice.
   The audit reads the ImageFolders' files itself (the engine's reader threads decode them), so
   the user's transform does not change its work.
2. Training step (``small`` case): the median time of a training step in a fit with the callback
   against the same fit without it (same seed, same data, alternated). Target: ratio within noise
   of 1.0 (the callback has no per-batch hook).

Both cases have copies of 5 % of the validation images in the training folder. Before timing,
one small audit with every check runs on a few images (imports: paid once per process, and a
training process has imported torch and torchvision before the callback runs); its time is
printed. Torch runs on one thread (a small CNN; on a shared machine more threads only add noise).

    .venv/bin/python benchmarks/bench_lightning_overhead.py [--case both|small|photos] [--n 2000]
        [--photo-n N] [--size 96] [--steps 60] [--repeats 2] [--workers 2]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

TARGET_AUDIT = 1.0
PHOTO_SIZE = (500, 375)  # width, height: about the mean size of ImageNet's photos
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def photo_image(rng: np.random.Generator, width: int, height: int):
    """A distinct photo-like picture: smooth colour field, a few discs, fine texture and grain.

    The texture gives the JPEG about the entropy of a real photo (0.3 bytes a pixel at quality 90,
    as skimage's astronaut, coffee, chelsea), which sets what decoding it costs."""
    from PIL import Image, ImageDraw

    field = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(field).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(height // 12, height // 4))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.integers(0, 256, 3).tolist()))
    noise = (rng.normal(0, 40, (height // 2, width // 2)) + 128).clip(0, 255).astype(np.uint8)
    texture = np.asarray(Image.fromarray(noise).resize((width, height), Image.BICUBIC), np.float32) - 128
    pixels = np.asarray(im, np.float32) + 0.4 * texture[..., None] + rng.normal(0, 2, (height, width, 1))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def make_image_folders(root: Path, n: int, size: int, leak: float = 0.05, seed: int = 0, photo=None):
    """train/ and val/ ImageFolders of distinct JPEG images (10 classes); ``leak`` of val copied from train.

    Each image is its own content (``size`` px squares of :func:`bench_exact_images.distinct_image`,
    or with ``photo=(width, height)`` textured photo-sized pictures, :func:`photo_image`): distinct
    content, like a real photo collection (crops of a handful of photos would overlap each other
    and make every pair a partial duplicate).
    """
    from bench_exact_images import distinct_image  # the same distinct content as the JPEG benchmark

    rng = np.random.default_rng(seed)
    n_val = n // 5
    made = {"train": [], "val": []}
    for split, count in (("train", n - n_val), ("val", n_val)):
        for i in range(count):
            cls = int(rng.integers(0, 10))
            if split == "val" and i < int(leak * n_val):
                src = made["train"][int(rng.integers(0, len(made["train"])))]
                path = root / split / src.parent.name / f"val_copy_{i:05d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(src.read_bytes())
            else:
                path = root / split / f"c{cls}" / f"{split}_{i:05d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                image = photo_image(rng, *photo) if photo else distinct_image(rng, size)
                image.save(path, quality=90)
            made[split].append(path)
    return root / "train", root / "val"


def transforms_for(case: str, augment: bool):
    """The user's transforms: ``small``: ToTensor (+ flip and jitter to train); ``photos``: the
    usual ImageNet-style evaluation transform (training: random resized crops and flips)."""
    from torchvision import transforms as T

    if case == "photos":
        if augment:
            return T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
        return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    if augment:
        return T.Compose([T.RandomHorizontalFlip(), T.ColorJitter(0.2, 0.2), T.ToTensor()])
    return T.ToTensor()


def loaders(train_dir, val_dir, augment: bool, batch_size: int = 64, workers: int = 0, case: str = "small"):
    from torch.utils.data import DataLoader
    from torchvision import datasets

    train = datasets.ImageFolder(str(train_dir), transform=transforms_for(case, augment))
    val = datasets.ImageFolder(str(val_dir), transform=transforms_for(case, False))
    return (DataLoader(train, batch_size=batch_size, shuffle=augment, num_workers=workers),
            DataLoader(val, batch_size=batch_size, num_workers=workers))


def make_model(size: int):
    import lightning.pytorch as L
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SmallCNN(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_acc", (self(x).argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    return SmallCNN()


class AuditParts:
    """Wall and CPU seconds of each part of the audits run while it is active (a context manager).

    Parts: ``signatures`` (the signature pass: reading, decoding, every signature the checks need),
    each check by name, ``augmented calibration`` (inside augmented_duplicate: the null of training
    images against their neighbours, fixed by ``null_samples``), ``group scene links`` (inside
    group_overlap), ``previews``. CPU is this process's (every thread's): the parts run one after
    another, so each CPU figure is that part's work. The engine's functions are wrapped for the
    duration only; the figures say which part of the engine a gap belongs to.

    >>> with AuditParts() as parts:                       # doctest: +SKIP
    ...     lg.audit(...)
    >>> parts.totals()["signatures"]                      # doctest: +SKIP
    (2.1, 1.9)
    """

    def __init__(self):
        self.rows: list[tuple[str, float, float]] = []
        self._undo: list[tuple[object, str, object]] = []
        self._depth = 0

    def _wrap(self, owner, attr: str, name, outermost: bool = False):
        original = getattr(owner, attr, None)
        if original is None:  # renamed in the engine: that part is not shown, the figures still are
            return

        def timed(*args, **kwargs):
            if outermost and self._depth:  # signatures a check asks for on demand count as the check's
                return original(*args, **kwargs)
            wall, cpu = time.perf_counter(), time.process_time()
            self._depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                self._depth -= 1
                label = name(*args) if callable(name) else name
                self.rows.append((label, time.perf_counter() - wall, time.process_time() - cpu))

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def __enter__(self):
        import leakguard.auditing as auditing
        import leakguard.checks.groups as groups
        import leakguard.similarity.image as image
        from leakguard.signatures.compute import SignatureStore

        self._wrap(auditing, "_run_check", lambda check, ctx: check.name)
        self._wrap(auditing, "build_previews", "previews")
        self._wrap(SignatureStore, "ensure", "signatures", outermost=True)
        self._wrap(image, "calibrate", "augmented calibration")
        self._wrap(groups, "scene_links", "group scene links")
        return self

    def __exit__(self, *exc):
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()
        return False

    def totals(self) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for label, wall, cpu in self.rows:
            w, c = out.get(label, (0.0, 0.0))
            out[label] = (w + wall, c + cpu)
        return out

    def line(self) -> str:
        """``part CPU s`` for every part, largest first (sub-parts in brackets after their check)."""
        totals = self.totals()
        inner = {"augmented_duplicate": "augmented calibration", "group_overlap": "group scene links"}
        top = sorted((k for k in totals if k not in inner.values()), key=lambda k: -totals[k][1])
        parts = []
        for k in top:
            text = f"{k} {totals[k][1]:.2f}"
            if inner.get(k) in totals:
                text += f" ({inner[k].split(' ', 1)[1]} {totals[inner[k]][1]:.2f})"
            parts.append(text)
        return ", ".join(parts)


def cpu_seconds() -> float:
    """CPU seconds of this process (all its threads) and of its finished child processes (loader workers)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timers():
    """(mark before, mark after, step timer): the marks sit around the LeakGuardCallback and time its
    on_fit_start (wall and CPU); the step timer times each training step (one instance, so each step is timed once)."""
    import lightning.pytorch as L

    class FitStartMark(L.Callback):
        def __init__(self):
            self.t = self.cpu = None

        def on_fit_start(self, trainer, pl_module):
            self.t, self.cpu = time.perf_counter(), time.process_time()

    class StepTimer(L.Callback):
        def __init__(self):
            self.steps = []
            self._start = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.steps.append(time.perf_counter() - self._start)

    return FitStartMark(), FitStartMark(), StepTimer()


def run_fit(train_dir, val_dir, size, steps, with_callback: bool, seed: int = 0, checks=None, workers: int = 0,
            root=None, case: str = "small"):
    """((wall, CPU) seconds of the callback's on_fit_start, training step times, the callback or None).

    ``root``: the trainer's default_root_dir, where the callback keeps its signature cache; a fresh
    folder (the default) makes a first, cold audit."""
    import lightning.pytorch as L

    from leakguard.integrations.lightning import LeakGuardCallback

    L.seed_everything(seed, verbose=False)
    before, after, steps_timer = timers()
    callbacks = [steps_timer]
    guard = None
    if with_callback:
        guard = LeakGuardCallback(explain=False, evaluate_leak_effect=False, checks=checks, config=_config())
        callbacks += [before, guard, after]
    train, val = loaders(train_dir, val_dir, augment=True, workers=workers, case=case)
    root = root or tempfile.mkdtemp(prefix="bench-lightning-root-")
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, callbacks=callbacks,
                        default_root_dir=root,
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(make_model(size), train, val)
    audit = (after.t - before.t, after.cpu - before.cpu) if with_callback else (0.0, 0.0)
    return audit, steps_timer.steps, guard


def _config():
    import leakguard as lg

    return lg.AuditConfig(progress=False)


def loader_pass(train_dir, val_dir, workers: int = 0, case: str = "small") -> tuple[float, float]:
    """(wall, CPU) seconds of one pass over the train and val loaders without augmentation."""
    train, val = loaders(train_dir, val_dir, augment=False, workers=workers, case=case)
    started, cpu = time.perf_counter(), cpu_seconds()
    for loader in (train, val):
        for _ in loader:
            pass
    return time.perf_counter() - started, cpu_seconds() - cpu


def warm_up(train_dir, val_dir) -> float:
    """Seconds of one audit with every check on a few images of each split, with a cache as the
    callback keeps one: the imports a first audit pays once per process (numpy FFTs, scipy, OpenCV,
    FAISS, the checks' modules, and what the cache's code fingerprint imports: scikit-learn)."""
    import dataclasses

    import leakguard as lg
    from torch.utils.data import Subset
    from torchvision import datasets

    train, val = datasets.ImageFolder(str(train_dir)), datasets.ImageFolder(str(val_dir))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        lg.audit({"train": Subset(train, range(min(40, len(train)))), "val": Subset(val, range(min(10, len(val))))},
                 config=dataclasses.replace(_config(), cache_dir=cache))
    return time.perf_counter() - started


def measure_case(case: str, root: Path, n: int, size: int, steps: int, repeats: int, workers: int,
                 time_steps: bool) -> dict:
    """One dataset's row: loader pass, cold / later-fit / exact-only audits (and step times)."""
    photo = PHOTO_SIZE if case == "photos" else None
    train_dir, val_dir = make_image_folders(root / case, n, size, photo=photo)
    w = workers
    # warm-up: the page cache, the first fit's one-off costs, for both contenders
    loader_pass(train_dir, val_dir, w, case)
    run_fit(train_dir, val_dir, size, 2, with_callback=True, checks=["exact_duplicate"], workers=w,
            root=root / case / "warm-up", case=case)
    pass_workers = min(loader_pass(train_dir, val_dir, w, case) for _ in range(2))
    # the peer at its best: with few images, starting worker processes costs more than they save
    pass_in_process = min(loader_pass(train_dir, val_dir, 0, case) for _ in range(2)) if w else pass_workers
    peer = min(pass_workers, pass_in_process)
    audits, engine, later, with_steps, without_steps, breakdown, later_breakdown = [], [], [], [], [], [], []
    for k in range(repeats):
        fit_root = root / case / f"root{k}"
        with AuditParts() as parts:
            a, s, guard = run_fit(train_dir, val_dir, size, steps if time_steps else 1, with_callback=True, workers=w,
                                  root=fit_root, case=case)
        audits.append(a)
        breakdown.append(parts.line())
        engine.append(guard.report.meta["duration_s"])
        # a later fit on the same data (a re-run, another model): the cache beside lightning_logs
        with AuditParts() as later_parts:
            later.append(run_fit(train_dir, val_dir, size, 1, with_callback=True, workers=w, root=fit_root,
                                 case=case)[0])
        later_breakdown.append(later_parts.line())
        if time_steps:
            with_steps += s[2:]   # the first steps include loader start-up
            _, s, _ = run_fit(train_dir, val_dir, size, steps, with_callback=False, workers=w,
                              root=root / case / f"plain{k}", case=case)
            without_steps += s[2:]
    best = min(range(repeats), key=lambda k: audits[k][0])
    exact, _, _ = run_fit(train_dir, val_dir, size, 1, with_callback=True, checks=["exact_duplicate"],
                          workers=w, root=root / case / "exact", case=case)
    return {"case": case, "n": n, "peer": peer, "pass_workers": pass_workers, "pass_in_process": pass_in_process,
            "audit": audits[best], "engine_s": engine[best], "parts": breakdown[best], "later": min(later),
            "later_parts": later_breakdown[min(range(repeats), key=lambda k: later[k][0])], "exact": exact,
            "with_steps": with_steps, "without_steps": without_steps}


def describe(case: str, n: int, size: int) -> str:
    if case == "photos":
        return (f"{n} JPEG {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} photo-like images, loader transform "
                "Resize(256) CenterCrop(224) ToTensor Normalize")
    return f"{n} JPEG {size}x{size} images, loader transform ToTensor"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", choices=["both", "small", "photos"], default="both")
    ap.add_argument("--n", type=int, default=2000, help="images in train + val")
    ap.add_argument("--photo-n", type=int, default=None, help="images in the photos case (default: --n)")
    ap.add_argument("--size", type=int, default=96, help="side of the small case's images")
    ap.add_argument("--steps", type=int, default=60, help="training steps per timed fit")
    ap.add_argument("--repeats", type=int, default=2, help="fits with and without the callback, alternated")
    ap.add_argument("--workers", type=int, default=0, help="num_workers of the user's DataLoaders")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import logging
    import os

    import torch

    torch.set_num_threads(1)

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cases = ["small", "photos"] if args.case == "both" else [args.case]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        warm = None
        for case in cases:
            n = args.photo_n if case == "photos" and args.photo_n else args.n
            if warm is None:
                sizes = PHOTO_SIZE if case == "photos" else None
                warm = warm_up(*make_image_folders(tmp / "imports", 60, args.size, photo=sizes))
            rows.append(measure_case(case, tmp, n, args.size, args.steps, args.repeats, args.workers,
                                     time_steps=case == "small"))
    w = args.workers
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; DataLoader num_workers={w}; "
          f"5% of val copied from train; first audit's imports (one-off, not in the figures): {warm:.2f} s")
    print("1. fit start (wall s / CPU s; ratios to the loader pass: wall, CPU; target <= "
          f"{TARGET_AUDIT})")
    result = {"workers": w, "imports_s": warm}
    for r in rows:
        pw, pc = r["peer"]
        aw, ac = r["audit"]
        lw, lc = r["later"]
        ew, ec = r["exact"]
        print(f" [{r['case']}] {describe(r['case'], r['n'], args.size)}")
        print(f"   dataloader pass, no augmentation (train+val): {pw:7.2f} s / {pc:7.2f} s CPU"
              + (f" (the faster of num_workers={w}: {r['pass_workers'][0]:.2f} s and 0: "
                 f"{r['pass_in_process'][0]:.2f} s)" if w else ""))
        print(f"   LeakGuardCallback audit at fit start, cold  : {aw:7.2f} s / {ac:7.2f} s CPU"
              f"  ratio {aw / pw:6.2f} wall, {ac / pc:6.2f} CPU  (lg.audit {r['engine_s']:.2f} s; "
              "the rest: finding the loaders, logging the report)")
        print(f"     its parts, CPU s: {r['parts']}")
        print(f"   a later fit on the same data (cache)        : {lw:7.2f} s / {lc:7.2f} s CPU"
              f"  ratio {lw / pw:6.2f} wall, {lc / pc:6.2f} CPU")
        print(f"     its parts, CPU s: {r['later_parts']}")
        print(f"   same callback, checks=['exact_duplicate']   : {ew:7.2f} s / {ec:7.2f} s CPU"
              f"  ratio {ew / pw:6.2f} wall, {ec / pc:6.2f} CPU  (reading + the callback's own work)")
        result[r["case"]] = {"n": r["n"], "loader_pass_s": pw, "loader_pass_cpu_s": pc,
                             "loader_pass_workers_s": r["pass_workers"][0],
                             "loader_pass_in_process_s": r["pass_in_process"][0],
                             "audit_s": aw, "audit_cpu_s": ac, "audit_engine_s": r["engine_s"],
                             "audit_ratio": aw / pw, "audit_cpu_ratio": ac / pc, "audit_parts": r["parts"],
                             "later_fit_s": lw, "later_fit_cpu_s": lc, "later_fit_ratio": lw / pw,
                             "later_fit_cpu_ratio": lc / pc, "later_fit_parts": r["later_parts"],
                             "exact_only_s": ew, "exact_only_cpu_s": ec,
                             "exact_only_ratio": ew / pw}
        if r["with_steps"]:
            step_with, step_without = statistics.median(r["with_steps"]), statistics.median(r["without_steps"])
            print(f"2. training step (median over {len(r['with_steps'])} / {len(r['without_steps'])} steps)")
            print(f"   without the callback: {step_without * 1e3:7.2f} ms")
            print(f"   with the callback   : {step_with * 1e3:7.2f} ms")
            print(f"   ratio with / without: {step_with / step_without:.3f} (target: 1.0 within noise)")
            result.update(step_ms_with=step_with * 1e3, step_ms_without=step_without * 1e3,
                          step_ratio=step_with / step_without)
    return result


if __name__ == "__main__":
    main()
