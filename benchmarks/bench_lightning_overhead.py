"""What LeakGuardCallback costs a Lightning fit, measured side by side with its peers.

1. Fit start: the callback's audit (every check that applies, as by default) against one pass of
   the same train / val dataloaders without augmentation (decode + ToTensor + collate, with the
   loaders' ``--workers`` worker processes, 0: in this process, as the user's training reads; with
   workers, the faster of that and a pass in this process is the reference).
   The audit reads the same files itself (ImageFolder lists them): the engine's reader threads
   decode them (``AuditConfig.workers``, by default a few; at least the loader's num_workers),
   then it runs the checks. Target: audit / loader pass <= 1.0. Printed beside it: the audit with
   the exact-duplicate check only (reading, digests, the callback's own work and its report),
   and the audit of a later fit on the same data (a re-run), which reads the signatures and the
   verified pairs back from the callback's cache beside lightning_logs. Each first fit gets a
   fresh default_root_dir, so its audit is cold.
2. Training step: the median time of a training step in a fit with the callback against the same
   fit without it (same seed, same data, alternated). Target: ratio within noise of 1.0 (the
   callback has no per-batch hook).

The data are distinct JPEG images (random colour fields with discs) read through torchvision's
ImageFolder, with copies of some training images in the validation folder. Torch runs on one
thread (a small CNN; on a shared machine more threads only add noise to the step times).

    .venv/bin/python benchmarks/bench_lightning_overhead.py [--n 2000] [--size 96] [--steps 60] [--workers 2]
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


def make_image_folders(root: Path, n: int, size: int, leak: float = 0.05, seed: int = 0):
    """train/ and val/ ImageFolders of distinct JPEG images (10 classes); ``leak`` of val copied from train.

    Each image is its own smooth random colour field with a few random discs: distinct content,
    like a real photo collection (crops of a handful of photos would overlap each other and make
    every pair a partial duplicate).
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
                distinct_image(rng, size).save(path, quality=90)
            made[split].append(path)
    return root / "train", root / "val"


def loaders(train_dir, val_dir, augment: bool, batch_size: int = 64, workers: int = 0):
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    plain = transforms.ToTensor()
    train_tf = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.ColorJitter(0.2, 0.2),
                                   transforms.ToTensor()]) if augment else plain
    train = datasets.ImageFolder(str(train_dir), transform=train_tf)
    val = datasets.ImageFolder(str(val_dir), transform=plain)
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


def timers():
    """(mark before, mark after, step timer): the marks sit around the LeakGuardCallback and time its
    on_fit_start; the step timer times each training step (one instance, so each step is timed once)."""
    import lightning.pytorch as L

    class FitStartMark(L.Callback):
        def __init__(self):
            self.t = None

        def on_fit_start(self, trainer, pl_module):
            self.t = time.perf_counter()

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
            root=None):
    """(seconds of the callback's on_fit_start, training step times, the callback or None).

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
    train, val = loaders(train_dir, val_dir, augment=True, workers=workers)
    root = root or tempfile.mkdtemp(prefix="bench-lightning-root-")
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, callbacks=callbacks,
                        default_root_dir=root,
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(make_model(size), train, val)
    audit_s = after.t - before.t if with_callback else 0.0
    return audit_s, steps_timer.steps, guard


def _config():
    import leakguard as lg

    return lg.AuditConfig(progress=False)


def loader_pass(train_dir, val_dir, workers: int = 0) -> float:
    train, val = loaders(train_dir, val_dir, augment=False, workers=workers)
    started = time.perf_counter()
    for loader in (train, val):
        for _ in loader:
            pass
    return time.perf_counter() - started


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="images in train + val")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=60, help="training steps per timed fit")
    ap.add_argument("--repeats", type=int, default=2, help="fits with and without the callback, alternated")
    ap.add_argument("--workers", type=int, default=0, help="num_workers of the user's DataLoaders")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import logging

    import torch

    torch.set_num_threads(1)

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, val_dir = make_image_folders(Path(tmp), args.n, args.size)
        # warm-up: imports, the page cache, the first fit's one-off costs, for both contenders
        w = args.workers
        loader_pass(train_dir, val_dir, w)
        run_fit(train_dir, val_dir, args.size, 2, with_callback=True, checks=["exact_duplicate"], workers=w,
                root=Path(tmp) / "warm-up")

        t_pass_workers = min(loader_pass(train_dir, val_dir, w) for _ in range(2))
        # the peer at its best: with few images, starting worker processes costs more than they save
        t_pass_in_process = min(loader_pass(train_dir, val_dir, 0) for _ in range(2)) if w else t_pass_workers
        t_pass = min(t_pass_workers, t_pass_in_process)
        audit_times, engine_times, warm_times, with_steps, without_steps = [], [], [], [], []
        for k in range(args.repeats):
            root = Path(tmp) / f"root{k}"
            a, s, guard = run_fit(train_dir, val_dir, args.size, args.steps, with_callback=True, workers=w,
                                  root=root)
            audit_times.append(a)
            engine_times.append(guard.report.meta["duration_s"])
            # a later fit on the same data (a re-run, another model): the cache beside lightning_logs
            warm_times.append(run_fit(train_dir, val_dir, args.size, 1, with_callback=True, workers=w,
                                      root=root)[0])
            with_steps += s[2:]   # the first steps include loader start-up
            _, s, _ = run_fit(train_dir, val_dir, args.size, args.steps, with_callback=False, workers=w,
                              root=Path(tmp) / f"plain{k}")
            without_steps += s[2:]
        t_audit = min(audit_times)
        t_engine = engine_times[audit_times.index(t_audit)]
        t_warm = min(warm_times)
        # the same callback with the exact-duplicate check only: reading the data + the callback's own work
        t_exact, _, _ = run_fit(train_dir, val_dir, args.size, 1, with_callback=True, checks=["exact_duplicate"],
                                workers=w, root=Path(tmp) / "exact")
        step_with, step_without = statistics.median(with_steps), statistics.median(without_steps)
        print(f"data: {args.n} JPEG {args.size}x{args.size} images (ImageFolder train/val, 5% of val copied "
              f"from train); DataLoader num_workers={w}")
        print("1. fit start")
        print(f"   dataloader pass, no augmentation (train+val):    {t_pass:7.2f} s"
              + (f" (the faster of num_workers={w}: {t_pass_workers:.2f} s and 0: {t_pass_in_process:.2f} s)"
                 if w else ""))
        print(f"   LeakGuardCallback audit at fit start          :   {t_audit:7.2f} s "
              f"(lg.audit {t_engine:.2f} s, the rest: finding the loaders, logging the report)")
        print(f"   ratio audit / loader pass: {t_audit / t_pass:.2f} (target <= {TARGET_AUDIT}): a first fit, cold")
        print(f"   a later fit on the same data (signature cache): {t_warm:7.2f} s (ratio {t_warm / t_pass:.2f})")
        print(f"   same callback, checks=['exact_duplicate'] : {t_exact:7.2f} s "
              f"(ratio {t_exact / t_pass:.2f}: reading + the callback's own work)")
        print("2. training step (median over "
              f"{len(with_steps)} / {len(without_steps)} steps)")
        print(f"   without the callback: {step_without * 1e3:7.2f} ms")
        print(f"   with the callback   : {step_with * 1e3:7.2f} ms")
        print(f"   ratio with / without: {step_with / step_without:.3f} (target: 1.0 within noise)")
        return {"workers": w, "loader_pass_in_process_s": t_pass_in_process, "loader_pass_workers_s": t_pass_workers, "audit_s": t_audit, "audit_engine_s": t_engine, "audit_later_fit_s": t_warm, "later_fit_ratio": t_warm / t_pass, "audit_exact_only_s": t_exact, "loader_pass_s": t_pass, "audit_ratio": t_audit / t_pass,
                "step_ms_with": step_with * 1e3, "step_ms_without": step_without * 1e3,
                "step_ratio": step_with / step_without}


if __name__ == "__main__":
    main()
