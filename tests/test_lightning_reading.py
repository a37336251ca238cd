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
