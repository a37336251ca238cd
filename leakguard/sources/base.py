"""The Source interface: one split's samples, read one at a time in canonical form.

Canonical items by modality:
- image: ``np.ndarray`` (H, W) or (H, W, C); uint8, or float for arrays given as floats
- text: ``str``
- audio: ``(np.ndarray float32 mono waveform, sample_rate)``
- series: 1-D ``np.ndarray`` float64
- tabular: handled as a whole frame (``TabularSource.frame``), not item by item
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import SampleError

MODALITIES = ("image", "text", "tabular", "audio", "series")


class Source:
    """A split's samples. Subclasses implement ``__len__`` and ``load``."""

    modality: str = ""

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, i: int):
        """The canonical item ``i``; raises :class:`SampleError` when it cannot be read."""
        raise NotImplementedError  # pragma: no cover - abstract

    def name(self, i: int) -> str | None:
        """A human name for sample ``i`` (its file path), or None."""
        return None

    def content_key(self, i: int) -> bytes | None:
        """A cheap key that changes when sample ``i`` changes (for the signature cache).

        None means: derive the key from the loaded item itself.
        """
        return None

    @property
    def names(self) -> list[str | None]:
        return [self.name(i) for i in range(len(self))]


class SequenceSource(Source):
    """In-memory items (arrays, strings, PIL images) already in, or convertible to, canonical form."""

    def __init__(self, items: Sequence, modality: str, convert=None, sample_rate: int | None = None):
        self.items = items
        self.modality = modality
        self.convert = convert
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.items)

    def load(self, i: int):
        item = self.items[i]
        if self.convert is not None:
            item = self.convert(item)
        if self.modality == "audio" and not isinstance(item, tuple):
            item = (np.asarray(item, dtype=np.float32).reshape(-1), int(self.sample_rate or 16000))
        return item


def file_content_key(path: str | os.PathLike) -> bytes:
    """A key from the file's path, size and modification time: unchanged files are not read again."""
    st = os.stat(path)
    return hashlib.blake2b(f"{os.fspath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode(),
                           digest_size=16).digest()


class FileSource(Source):
    """Files of one modality, decoded by ``reader(path) -> canonical item``."""

    def __init__(self, paths: Sequence[Path], modality: str, reader, skipped: list | None = None):
        self.paths = [p if isinstance(p, Path) else Path(p) for p in paths]  # Path(Path) parses again
        self.modality = modality
        self.reader = reader
        # files dropped before reading (unknown extensions), reported as skipped
        self.pre_skipped: list[dict] = list(skipped or [])

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int):
        path = self.paths[i]
        try:
            return self.reader(path)
        except SampleError as err:
            raise SampleError(err.reason, index=i, file=str(path)) from None
        except Exception as err:  # noqa: BLE001 - any decoder failure is a bad sample, named
            raise SampleError(f"cannot read {self.modality} file: {type(err).__name__}: {err}",
                              index=i, file=str(path)) from err

    def name(self, i: int) -> str | None:
        return str(self.paths[i])

    def content_key(self, i: int) -> bytes | None:
        try:
            return file_content_key(self.paths[i])
        except OSError:
            return None


class TabularSource(Source):
    """Rows of a DataFrame; features only (label, group and time columns are taken out)."""

    modality = "tabular"

    def __init__(self, frame):
        self.frame = frame

    def __len__(self) -> int:
        return len(self.frame)

    def load(self, i: int):
        return self.frame.iloc[i].to_numpy()

    def name(self, i: int) -> str | None:
        return None
