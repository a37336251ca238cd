"""How the audit reads torch datasets that only ``__getitem__`` can read: as the user's loader does."""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, Dataset  # noqa: E402

import leakguard as lg  # noqa: E402

CFG = lg.AuditConfig(progress=False)


class LoggedNoisyImages(Dataset):
    """(1, 8, 8) images with a random transform; each read appends the reading process's id to a file."""

    def __init__(self, x, y, log, broken=()):
        self.x, self.y, self.log, self.broken = x, y, log, set(broken)
        self.transform = lambda t: t + torch.randn_like(t)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if i in self.broken:
            raise ValueError("truncated record")
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        x = self.x[i]
        return (self.transform(x) if self.transform else x), int(self.y[i])


def _data(rng, tmp_path, broken=()):
    x = torch.tensor(rng.random((60, 1, 8, 8)), dtype=torch.float32)
    y = torch.arange(60) % 4
    train = LoggedNoisyImages(x[:40], y[:40], tmp_path / "train.log")
    # val: 16 unseen images and copies of training images 5 and 9
    val = LoggedNoisyImages(torch.cat([x[40:56], x[[5, 9]]]), torch.cat([y[40:56], y[[5, 9]]]),
                            tmp_path / "val.log", broken=broken)
    return train, val


def _pids(path):
    return set(path.read_text().split()) if path.exists() else set()


def test_workers_read_as_the_users_loader_and_find_the_same_leak(rng, tmp_path):
    train, val = _data(rng, tmp_path)
    in_process = lg.audit({"train": DataLoader(train, batch_size=8), "val": DataLoader(val, batch_size=8)},
                          config=CFG, checks=["exact_duplicate"])
    assert _pids(tmp_path / "val.log") == {str(os.getpid())}
    (tmp_path / "val.log").unlink()
    (tmp_path / "train.log").unlink()

    with_workers = lg.audit({"train": DataLoader(train, batch_size=8, num_workers=2),
                             "val": DataLoader(val, batch_size=8, num_workers=2)},
                            config=CFG, checks=["exact_duplicate"])
    assert with_workers.leaked("val").tolist() == in_process.leaked("val").tolist() == [16, 17]
    assert with_workers.splits["val"]["digest"] == in_process.splits["val"]["digest"]
    assert with_workers.splits["val"]["has_labels"]   # the (x, y) items' labels came back from the workers
    # the training split was read by two worker processes (the first sample, read to tell the
    # modality, in this one)
    workers = _pids(tmp_path / "train.log") - {str(os.getpid())}
    assert len(workers) == 2
    assert train.transform is not None   # put back after the audit


def test_a_sample_failing_in_a_worker_is_skipped_and_named(rng, tmp_path):
    train, val = _data(rng, tmp_path, broken=[3])
    report = lg.audit({"train": DataLoader(train, batch_size=8, num_workers=2),
                       "val": DataLoader(val, batch_size=4, num_workers=2)},
                      config=CFG, checks=["exact_duplicate"])
    (skipped,) = report.splits["val"]["skipped"]
    assert skipped["index"] == 3 and "truncated record" in skipped["reason"]
    assert report.leaked("val").tolist() == [16, 17]


def test_too_few_samples_for_the_workers_are_read_in_process(rng, tmp_path):
    train, val = _data(rng, tmp_path)
    lg.audit({"train": DataLoader(train, batch_size=32, num_workers=2),
              "val": DataLoader(val, batch_size=32, num_workers=2)}, config=CFG, checks=["exact_duplicate"])
    # 18 samples, 2 workers x 32 per batch: starting the workers would cost more than the reads
    assert _pids(tmp_path / "val.log") == {str(os.getpid())}


class _FilesOnly(Dataset):
    """A dataset shaped like torchvision's Flowers102 / Food101 (``_image_files``, ``_labels``) or a
    custom one (``files`` relative to ``root``); reading it through ``__getitem__`` is an error."""

    def __init__(self, attr, files, labels=None, root=None, label_attr="_labels"):
        setattr(self, attr, files)
        if labels is not None:
            setattr(self, label_attr, labels)
        self.root = root
        self.transform = None
        self.n = len(files)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        raise AssertionError("the audit must read the files, not __getitem__")


def _jpegs(rng, folder, n):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img_{i:03d}.jpg"
        Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(p, quality=90)
        paths.append(p)
    return paths


def test_datasets_listing_their_files_in_torchvision_attributes_are_read_from_the_files(rng, tmp_path):
    from leakguard.sources.base import FileSource
    from leakguard.splits import build_splits

    train_files = _jpegs(rng, tmp_path / "train", 12)
    val_files = _jpegs(rng, tmp_path / "val", 5)
    (tmp_path / "val" / "copy.jpg").write_bytes(train_files[3].read_bytes())
    val_files.append(tmp_path / "val" / "copy.jpg")
    train = _FilesOnly("_image_files", train_files, labels=[i % 3 for i in range(12)])
    # names relative to the dataset's root, as a custom dataset joining them in __getitem__ keeps them
    val = _FilesOnly("files", [p.name for p in val_files], labels=[0, 1, 2, 0, 1, 0], root=str(tmp_path / "val"),
                     label_attr="targets")
    sp = build_splits({"train": DataLoader(train, batch_size=4, num_workers=2), "val": val}, train="train")
    assert isinstance(sp["train"].source, FileSource) and isinstance(sp["val"].source, FileSource)
    assert sp["train"].labels.tolist() == [i % 3 for i in range(12)]
    assert sp["val"].labels.tolist() == [0, 1, 2, 0, 1, 0]
    report = lg.audit({"train": DataLoader(train, batch_size=4, num_workers=2), "val": val}, config=CFG,
                      checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [5]

    # Ultralytics-style: ``im_files`` with ``labels`` holding one dict of boxes per image: not classes
    boxes = _FilesOnly("im_files", train_files, labels=[{"cls": np.zeros((1, 1))} for _ in train_files],
                       label_attr="labels")
    assert build_splits({"train": boxes, "val": val}, train="train")["train"].labels is None
    # one file gone (the first): still read from the files, that sample skipped and named
    gone = tmp_path / "gone.jpg"
    one_missing = _FilesOnly("_image_files", [gone, *train_files[1:]], labels=[0] * 12)
    report = lg.audit({"train": one_missing, "val": val}, config=CFG, checks=["exact_duplicate"])
    assert [(s["index"], s["file"], s["reason"]) for s in report.skipped["train"]] == [(0, str(gone), "no such file")]
    # a list of names that are not files here (and no root to join) is not used: the dataset is read
    # through __getitem__ (which this one refuses: each sample is skipped and named), never from wrong paths
    missing = _FilesOnly("_image_files", [tmp_path / "nowhere" / p.name for p in train_files])
    report = lg.audit({"train": missing, "val": val}, config=CFG, checks=["exact_duplicate"], modality="image")
    skipped = report.skipped["train"]
    assert len(skipped) == 12 and all("must read the files" in s["reason"] for s in skipped)


class _PathTable(Dataset):
    """The common custom dataset: a DataFrame of file paths and labels, images opened in ``__getitem__``."""

    def __init__(self, paths, labels):
        import pandas as pd

        self.data = pd.DataFrame({"image_path": [str(p) for p in paths], "label": labels})
        self.transform = None

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        raise AssertionError("the audit must read the files, not __getitem__")


def test_a_dataframe_of_file_paths_is_read_from_the_files_not_as_data(rng, tmp_path):
    from leakguard.sources.base import FileSource
    from leakguard.splits import build_splits

    files = _jpegs(rng, tmp_path / "imgs", 10)
    train, val = _PathTable(files[:8], [0, 1] * 4), _PathTable(files[6:], [0, 1, 1, 0])
    sp = build_splits({"train": train, "val": val}, train="train")
    assert isinstance(sp["train"].source, FileSource) and sp.modality == "image"
    assert sp["train"].labels.tolist() == [0, 1] * 4
    report = lg.audit({"train": DataLoader(train, batch_size=4), "val": val}, config=CFG, checks=["exact_duplicate"])
    # before: the table itself was taken for the samples (strings as a series), every sample skipped, a pass
    assert report.leaked("val").tolist() == [0, 1] and not report.skipped["train"]
