"""Decoders for files and in-memory objects, into canonical items (see ``base``)."""
from __future__ import annotations

import io
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
    if not arr.shape[0] or not arr.shape[1]:
        # no pixel to compare; the similarity signatures (OpenCV) cannot take it either
        raise SampleError(f"empty image: array of shape {arr.shape}")
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
    """Canonical pixels of an image file (see :func:`canonical_image`).

    Baseline and progressive 8-bit JPEGs (YCbCr or grey) and plain 8-bit RGB / grey PNGs are
    decoded by OpenCV when its decoders give Pillow's pixels bit for bit (checked once per
    process, :func:`_cv2_matches_pillow`): about 40 % (JPEG) and 30 % (PNG) cheaper. Everything
    else -- other formats, CMYK / Adobe / 12-bit / arithmetic-coded JPEGs, multi-picture files,
    PNGs with a palette, transparency, alpha, 16-bit samples, interlacing or colour-space chunks,
    images over Pillow's size limit, files OpenCV cannot decode (truncated, corrupt) -- is read by
    Pillow, so the pixels, the exact digest and the errors are Pillow's. One known exception:
    a JPEG whose entropy-coded data is damaged just before its end marker can be refused by
    Pillow ("broken data stream") and decoded by OpenCV with libjpeg's usual zero fill (1 of
    600 randomly damaged JPEGs in a fuzz test; no undamaged file differs).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SampleError("no such file", file=str(path)) from None
    except OSError as err:
        raise SampleError(f"cannot read file: {err}", file=str(path)) from None
    if _jpeg_opencv_can_decode(data) or _png_opencv_can_decode(data):
        import cv2

        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
        if pixels is not None:
            return canonical_image(pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _pil_open()(io.BytesIO(data)) as img:
                img.load()
                return pil_to_array(img)
    except (UnidentifiedImageError, ImportError):
        raise SampleError("not an image Pillow can read (unknown format or corrupt header)",
                          file=str(path)) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        # skipped and counted like any unreadable file (it used to stop the whole audit)
        raise SampleError(f"image too large (Pillow's decompression-bomb limit): {err}", file=str(path)) from None
    except OSError as err:  # truncated, corrupt data
        raise SampleError(f"corrupt or truncated image: {err}", file=str(path)) from None


_FAST_JPEG: dict = {}


def _jpeg_opencv_can_decode(data: bytes) -> bool:
    """True when ``data`` is a JPEG that OpenCV decodes to exactly Pillow's pixels.

    Reads the markers up to the first scan: a baseline, extended or progressive Huffman frame
    (SOF0-2) of 8-bit samples with 1 or 3 components, no Adobe marker (CMYK / YCCK / RGB
    transforms: Pillow and OpenCV convert those differently), no multi-picture index (MPO), and
    no more pixels than Pillow accepts without a decompression-bomb warning.
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return False
    frame = None
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the header is complete
            break
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        body = data[pos + 4:pos + 2 + length]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header
            if marker not in (0xC0, 0xC1, 0xC2) or frame is not None or len(body) < 6:
                return False
            frame = (body[0], (body[1] << 8) | body[2], (body[3] << 8) | body[4], body[5])
        elif marker == 0xEE and body[:5] == b"Adobe":
            return False
        elif marker == 0xE2 and body[:4] == b"MPF\0":
            return False
        pos += 2 + length
    else:
        return False
    if frame is None:
        return False
    precision, height, width, components = frame
    if precision != 8 or components not in (1, 3) or not height or not width:
        return False
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and height * width > Image.MAX_IMAGE_PIXELS:
        return False
    return _cv2_matches_pillow()


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PLAIN_CHUNKS = {b"IHDR", b"IDAT", b"IEND", b"tEXt", b"zTXt", b"iTXt", b"pHYs", b"tIME"}


def _png_opencv_can_decode(data: bytes) -> bool:
    """True when ``data`` is a plain 8-bit RGB or grey PNG, which OpenCV decodes to Pillow's pixels.

    Reads the chunks before the image data: bit depth 8, colour type 0 (grey) or 2 (RGB), not
    interlaced, and
    only chunks neither decoder turns into pixels (text, resolution, time). Palettes,
    transparency, alpha, 16-bit samples and colour-space chunks (gamma, ICC, sRGB, sBIT) go
    through Pillow, as do images over Pillow's pixel limit.
    """
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return False
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour, interlace = data[24], data[25], data[28]
    if depth != 8 or colour not in (0, 2) or interlace or not width or not height:
        return False
    pos, end = 8, len(data)
    while pos + 8 <= end:
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind not in _PNG_PLAIN_CHUNKS:
            return False
        if kind == b"IDAT":
            break
        pos += 12 + length
    else:
        return False
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and height * width > Image.MAX_IMAGE_PIXELS:
        return False
    return _cv2_matches_pillow()


def _cv2_matches_pillow() -> bool:
    """Whether OpenCV's JPEG and PNG decoders give Pillow's pixels here (once per process).

    Both usually wrap libjpeg-turbo, but builds differ (libjpeg 9 upsamples differently): a few
    JPEGs Pillow writes -- 4:4:4, 4:2:2, 4:2:0, progressive, grey, odd sizes -- are decoded both
    ways, and OpenCV is used only when every pixel agrees.
    """
    if "ok" not in _FAST_JPEG:
        _FAST_JPEG["ok"] = _check_cv2_jpeg()
    return _FAST_JPEG["ok"]


def _check_cv2_jpeg() -> bool:
    try:
        import cv2
        from PIL import Image

        flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    except (ImportError, AttributeError):  # no OpenCV, or one too old to decode to RGB
        return False
    y, x = np.mgrid[0:37, 0:53]
    picture = np.stack([(x * 5 + y * 3) % 256, (x * y) % 256, ((x - 26) ** 2 + (y - 18) ** 2) % 256], axis=2)
    picture = Image.fromarray(picture.astype(np.uint8))
    cases = [(mode, "JPEG", dict(quality=75, subsampling=subsampling, progressive=progressive))
             for mode, subsampling, progressive in (("RGB", 0, False), ("RGB", 1, False), ("RGB", 2, False),
                                                    ("RGB", 2, True), ("L", 0, False))]
    cases += [(mode, "PNG", {}) for mode in ("RGB", "L")]
    for mode, fmt, params in cases:
        buf = io.BytesIO()
        picture.convert(mode).save(buf, fmt, **params)
        data = buf.getvalue()
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                expected = pil_to_array(img)
            got = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        except Exception:  # noqa: BLE001 - any failure means: keep Pillow
            return False
        if got is None or got.shape != expected.shape or not np.array_equal(got, expected):
            return False
    return True


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
