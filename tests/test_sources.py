"""Every source DESIGN.md lists, read in canonical form; torch data read in order without augmentation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

import leakguard as lg
from leakguard.sources import to_source

CFG = lg.AuditConfig(progress=False)


def test_modality_inference():
    assert to_source(np.zeros((5, 8, 8)), None, "s")[0].modality == "image"
    assert to_source(np.zeros((5, 3, 16, 16)), None, "s")[0].modality == "image"
    assert to_source(np.zeros((5, 7)), None, "s")[0].modality == "tabular"
    assert to_source(["a", "b"], None, "s")[0].modality == "text"
    assert to_source([np.zeros(3), np.zeros(5)], None, "s")[0].modality == "series"
    assert to_source(pd.DataFrame({"a": [1]}), None, "s")[0].modality == "tabular"


def test_nchw_arrays_equal_nhwc_images(rng):
    imgs = rng.integers(0, 256, size=(6, 12, 12, 3), dtype=np.uint8)
    report = lg.audit({"train": imgs, "val": np.transpose(imgs[[2, 4]], (0, 3, 1, 2))}, config=CFG,
                      checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [0, 1]


def test_pil_images_and_grey_equals_rgb(rng):
    grey = rng.integers(0, 256, size=(10, 10), dtype=np.uint8)
    train = [Image.fromarray(grey), Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8))]
    val = [Image.fromarray(np.stack([grey] * 3, axis=2))]  # the same grey picture stored as RGB
    report = lg.audit({"train": train, "val": val}, config=CFG, checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [0]


def test_list_of_arrays_of_varying_length(rng):
    train = [rng.normal(size=n) for n in (10, 20, 30)]
    val = [rng.normal(size=15), train[1].copy()]
    report = lg.audit({"train": train, "val": val}, config=CFG, checks=["exact_duplicate"])
    assert report.splits["val"]["modality"] == "series"
    assert report.leaked("val").tolist() == [1]


def test_audio_files_same_waveform_in_wav_and_flac(tmp_path, rng):
    wave = (0.3 * np.sin(np.linspace(0, 400, 16000))).astype(np.float32)
    other = rng.uniform(-0.5, 0.5, 16000).astype(np.float32)
    sf.write(tmp_path / "a.wav", wave, 16000, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", other, 16000, subtype="FLOAT")
    sf.write(tmp_path / "a.flac", wave, 16000)  # 16-bit: not bit-identical, so not an exact copy
    sf.write(tmp_path / "a2.wav", wave, 16000, subtype="FLOAT")
    report = lg.audit({"train": [tmp_path / "a.wav", tmp_path / "b.wav"],
                       "val": [tmp_path / "a.flac", tmp_path / "a2.wav"]}, config=CFG, checks=["exact_duplicate"])
    assert report.splits["val"]["modality"] == "audio"
    assert report.leaked("val").tolist() == [1]


def test_text_folder(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    (tmp_path / "train" / "a.txt").write_text("The patient was discharged.\n")
    (tmp_path / "train" / "b.txt").write_text("Another note")
    (tmp_path / "val" / "c.txt").write_text("The  patient was   discharged.")
    (tmp_path / "val" / "d.txt").write_text("Fresh note")
    report = lg.audit({"train": tmp_path / "train", "val": tmp_path / "val"}, config=CFG,
                      checks=["exact_duplicate"])
    assert report.splits["val"]["modality"] == "text"
    assert report.leaked("val").tolist() == [0]


def test_mixed_file_kinds_need_a_modality(tmp_path, rng):
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.txt").write_text("x")
    with pytest.raises(lg.InputError, match="mixes file kinds"):
        lg.audit({"train": [tmp_path / "a.png", tmp_path / "b.txt"], "val": [tmp_path / "a.png"]}, config=CFG)


torch = pytest.importorskip("torch")


class NoisyDataset(torch.utils.data.Dataset):
    """A dataset whose transform adds random noise: the audit must not see the noise."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.transform = lambda t: t + torch.randn_like(t)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.y[i]


def test_torch_dataset_read_without_random_transform(rng):
    x = torch.tensor(rng.normal(size=(20, 6)), dtype=torch.float32)
    y = torch.arange(20) % 3
    train = NoisyDataset(x[:15], y[:15])
    val = NoisyDataset(torch.cat([x[15:], x[[0, 7]]]), torch.cat([y[15:], y[[0, 7]]]))
    report = lg.audit({"train": train, "val": val}, modality="series", config=CFG, checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [5, 6]
    assert train.transform is not None  # the transform is put back after the audit


def test_subset_concat_and_dataloader_are_unwrapped(rng):
    from torch.utils.data import ConcatDataset, DataLoader, Subset, TensorDataset

    x = torch.tensor(rng.normal(size=(30, 1, 8, 8)), dtype=torch.float32)
    y = torch.arange(30) % 2
    base_a, base_b = TensorDataset(x[:20], y[:20]), TensorDataset(x[20:], y[20:])
    full = ConcatDataset([base_a, base_b])
    train = Subset(full, list(range(0, 25)))
    val = DataLoader(Subset(full, [25, 26, 3, 21]), batch_size=2, shuffle=True)  # 3 and 21 are in train
    report = lg.audit({"train": train, "val": val}, modality="image", config=CFG, checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [2, 3]
    assert report.splits["val"]["has_labels"]  # labels come from the dataset's (x, y) items


def test_imagefolder_is_read_from_its_files(tmp_path, rng):
    torchvision = pytest.importorskip("torchvision")
    for split, names in (("train", ["a", "b", "c"]), ("val", ["d"])):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
    pics = {n: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for n in "abcd"}
    for n in "abc":
        Image.fromarray(pics[n]).save(tmp_path / "train" / ("cat" if n != "c" else "dog") / f"{n}.png")
    Image.fromarray(pics["d"]).save(tmp_path / "val" / "cat" / "d.png")
    Image.fromarray(pics["b"]).save(tmp_path / "val" / "dog" / "b_copy.png")
    aug = torchvision.transforms.Compose([torchvision.transforms.RandomHorizontalFlip(1.0),
                                          torchvision.transforms.ToTensor()])
    train = torchvision.datasets.ImageFolder(tmp_path / "train", transform=aug)
    val = torchvision.datasets.ImageFolder(tmp_path / "val", transform=aug)
    report = lg.audit({"train": train, "val": val}, config=CFG, checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [1]
    (f,) = [f for f in report.findings if f.cross_split]
    assert f.extra["label_conflicts"]["count"] == 1  # cat in train, dog in val


def test_audit_transform_callable_for_datasets_without_transform_attribute(rng):
    class Augmenting(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i] * torch.rand(1)  # augmentation baked into __getitem__

        def plain(self, i):
            return self.x[i]

    x = torch.tensor(rng.normal(size=(10, 5)), dtype=torch.float32)
    cfg = lg.AuditConfig(progress=False, audit_transform=lambda ds, i: ds.plain(i))
    report = lg.audit({"train": Augmenting(x[:8]), "val": Augmenting(x[[8, 2]])}, modality="series",
                      config=cfg, checks=["exact_duplicate"])
    assert report.leaked("val").tolist() == [1]
