"""Decoders for files and in-memory objects, into canonical items (see ``base``)."""
from __future__ import annotations

import unicodedata
import warnings
from pathlib import Path

import numpy as np

from ..errors import SampleError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3"}
TEXT_EXTENSIONS = {".txt", ".md", ".text"}
TABLE_EXTENSIONS = {".csv", ".parquet", ".pq", ".tsv", ".feather"}

MAX_TEXT_CHARS = 5_000_000  # larger texts are cut, and the cut is counted as information


def modality_of_path(path: Path) -> str | None:
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in TEXT_EXTENSIONS:
        return "text"
    return None


def canonical_image(arr: np.ndarray) -> np.ndarray:
    """Pixels in one layout: (H, W, 3) for grey or opaque images, (H, W, 4) only with real alpha."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 2:  # grey + alpha
        arr = np.concatenate([np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:]], axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise SampleError(f"not an image: array of shape {arr.shape}")
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3]
        opaque = 255 if arr.dtype == np.uint8 else (alpha.max() if alpha.size else 1)
        if np.all(alpha == opaque):
            arr = arr[:, :, :3]
    if arr.dtype.kind == "f":
        arr = canonical_floats(arr)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    return np.ascontiguousarray(arr)


def canonical_floats(arr: np.ndarray) -> np.ndarray:
    """float64 with -0.0 folded into 0.0 and every NaN the same NaN, so equal values hash equally."""
    arr = np.asarray(arr, dtype=np.float64) + 0.0  # -0.0 + 0.0 == +0.0
    nan = np.isnan(arr)
    if nan.any():
        arr = np.where(nan, np.nan, arr)
    return arr


def pil_to_array(img) -> np.ndarray:
    """A PIL image as a canonical pixel array."""
    from PIL import Image

    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode in ("I;16", "I;16B", "I;16L"):
        img = img.convert("I")
    arr = np.asarray(img)
    return canonical_image(arr)


def _pil_open():
    """Pillow's own ``Image.open``.

    Ultralytics replaces ``PIL.Image.open`` on import with a version that, on an unreadable file,
    tries to install and import ``pi-heif``: a corrupt image would then raise ImportError (or
    start a pip install). leakguard reads with the original it keeps.
    """
    import sys

    from PIL import Image

    opener = Image.open
    module = sys.modules.get(getattr(opener, "__module__", None) or "")
    if module is not None and module.__name__.startswith("ultralytics"):
        return getattr(module, "_image_open", opener)
    return opener


def read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _pil_open()(path) as img:
                img.load()
                return pil_to_array(img)
    except (UnidentifiedImageError, ImportError):
        raise SampleError("not an image Pillow can read (unknown format or corrupt header)",
                          file=str(path)) from None
    except FileNotFoundError:
        raise SampleError("no such file", file=str(path)) from None
    except OSError as err:  # truncated, corrupt data
        raise SampleError(f"corrupt or truncated image: {err}", file=str(path)) from None


def canonical_text(text: str) -> str:
    """Unicode NFC with runs of whitespace folded into one space, ends stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SampleError("text file is not valid UTF-8", file=str(path)) from None
    return text[:MAX_TEXT_CHARS]


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 waveform and sample rate (soundfile when installed, else the wave module)."""
    try:
        import soundfile as sf
    except ImportError:  # pragma: no cover - soundfile is in the audio extra
        sf = None
    if sf is not None:
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as err:  # noqa: BLE001
            raise SampleError(f"cannot decode audio: {err}", file=str(path)) from None
        return np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)), int(rate)
    import wave

    with wave.open(str(path), "rb") as w:
        frames = w.readframes(w.getnframes())
        width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
    if width != 2:
        raise SampleError(f"{8 * width}-bit WAV needs the soundfile package", file=str(path))
    data = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return data.reshape(-1, channels).mean(axis=1).astype(np.float32), rate


def canonical_audio(item) -> tuple[np.ndarray, int]:
    wave_, rate = item
    wave_ = np.asarray(wave_)
    if wave_.dtype.kind in "iu":
        scale = float(np.iinfo(wave_.dtype).max) + 1.0
        wave_ = wave_.astype(np.float32) / scale
    wave_ = np.asarray(wave_, dtype=np.float32)
    if wave_.ndim == 2:  # (channels, samples) or (samples, channels): average the short axis
        wave_ = wave_.mean(axis=int(np.argmin(wave_.shape)))
    wave_ = wave_.reshape(-1) + np.float32(0.0)
    if not np.all(np.isfinite(wave_)):
        raise SampleError("audio holds NaN or inf samples")
    return np.ascontiguousarray(wave_), int(rate)


READERS = {"image": read_image, "text": read_text, "audio": read_audio}
