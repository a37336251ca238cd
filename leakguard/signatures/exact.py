"""Exact-content digests on canonical content (decoded pixels, normalised floats, NFC text)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..sources.readers import canonical_floats
from .registry import register_signature

import xxhash

DIGEST_SIZE = 16  # xxh3-128: not cryptographic, but a collision needs ~2^64 samples, and it hashes
# pixels at memory speed, so the audit runs at the speed of decoding (blake2b took 40 % of it)


def _hasher():
    return xxhash.xxh3_128()


def array_digest(arr: np.ndarray) -> bytes:
    """Digest of an array's shape, kind and values (floats as canonical float64)."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        arr = canonical_floats(arr)
    elif arr.dtype.kind in "iub":
        arr = arr.astype(np.int64) if arr.dtype.kind != "u" or arr.dtype.itemsize < 8 else arr
    h = _hasher()
    h.update(f"{arr.shape}|{arr.dtype.kind}".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.digest()


@register_signature("image", "digest", version="2")
def image_digest(img: np.ndarray) -> bytes:
    # integer pixels are hashed as uint8/uint16 values, floats as float64: the same pixels in any
    # lossless container give the same digest
    h = _hasher()
    h.update(f"{img.shape}|{img.dtype.kind}{img.dtype.itemsize if img.dtype.kind != 'f' else 8}".encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.digest()


@register_signature("text", "digest", version="2")
def text_digest(text: str) -> bytes:
    return xxhash.xxh3_128(text.encode("utf-8", "surrogatepass")).digest()


@register_signature("audio", "digest", version="2")
def audio_digest(item) -> bytes:
    wave, rate = item
    h = _hasher()
    h.update(f"{rate}|".encode())
    h.update(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
    return h.digest()


@register_signature("series", "digest", version="2")
def series_digest(values: np.ndarray) -> bytes:
    return array_digest(values)


def canonical_columns(frame: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    """Each column as a canonical array: numbers as float64 with -0.0 and NaN folded, text NFC.

    In columns of mixed types, strings stay themselves and other values get a type prefix starting
    with a NUL character, so ``1`` and ``"1"`` stay different while ``1`` and ``1.0`` are equal.
    """
    return {col: _canonical_column(frame[col]) for col in columns}


def _canonical_column(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return canonical_floats(s.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_datetime64_any_dtype(s):
        # nanoseconds since the epoch whatever unit pandas stores (pandas 3 may keep microseconds)
        return pd.to_datetime(s, utc=True).dt.as_unit("ns").astype("int64").to_numpy()
    return _canonical_objects(s)


def canonical_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The canonical columns (see :func:`canonical_columns`) as a DataFrame in the given order."""
    return pd.DataFrame(canonical_columns(frame, columns), index=pd.RangeIndex(len(frame)))


def _canonical_objects(s: pd.Series) -> np.ndarray:
    import unicodedata

    values = s.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        if "".join(values).isascii():  # NFC leaves ASCII unchanged: skip the per-value work
            return values
        return np.array([unicodedata.normalize("NFC", v) for v in values], dtype=object)

    def canon(v):
        if isinstance(v, str):
            return unicodedata.normalize("NFC", v)
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
            return "\0nan"
        if isinstance(v, (bool, np.bool_)):
            return "\0n" + repr(float(v))
        if isinstance(v, (int, float, np.number)):
            return "\0n" + repr(float(v) + 0.0)
        return "\0" + type(v).__name__ + repr(v)

    return np.array([canon(v) for v in values], dtype=object)


_MIX = np.uint64(0x100000001B3)
_SEED = 0xCBF29CE484222325
_BLOCK = 1 << 15  # rows per block: a block of every buffer stays in the CPU cache across columns
_NULL_TEXT = "\0nan"  # what a missing value in a text or mixed column canonicalises to


def row_hashes(frame) -> np.ndarray:
    """uint64 hash per row of canonical columns (a DataFrame or a dict of arrays), vectorised.

    Collisions are possible (64 bits); callers verify matches value by value.
    :func:`frame_row_hashes` gives the same hashes straight from a raw DataFrame, faster.
    """
    cols = frame if isinstance(frame, dict) else {c: frame[c].to_numpy() for c in frame.columns}
    n = len(next(iter(cols.values()))) if cols else 0
    parts = []
    for values in cols.values():
        values = np.asarray(values)
        if values.dtype.itemsize == 8 and values.dtype.kind in "fiu":
            parts.append(("bits", values.view(np.uint64)))
        else:
            parts.append(("hash", _object_hashes(values)))
    return _combine(parts, n)


def frame_row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """``row_hashes(canonical_columns(frame, columns))`` without building the canonical columns.

    Numbers are canonicalised and hashed block by block in place (no float64 copy of the frame);
    text is hashed vectorised from its Arrow buffers (dictionary-encoded first when a column has
    few distinct values, so each is hashed once), NFC-normalising only the non-ASCII values.
    Mixed-type columns take the per-value canonical path.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    >>> bool((frame_row_hashes(f, ["a", "b"]) == row_hashes(canonical_columns(f, ["a", "b"]))).all())
    True
    """
    parts = [_column_part(frame[col]) for col in columns]
    return _combine(parts, len(frame))


def _column_part(s: pd.Series):
    """(how to hash, array) for one raw column, with the canonicalisation of ``_canonical_column``."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "biuf":
            return ("number", s.to_numpy())  # canonicalised to float64 block by block in _combine
        return ("number", s.to_numpy(dtype=np.float64, na_value=np.nan))
    if pd.api.types.is_datetime64_any_dtype(s):
        return ("bits", _canonical_column(s).view(np.uint64))
    if isinstance(s.dtype, pd.StringDtype) or (s.dtype == object and pd.api.types.infer_dtype(
            s.to_numpy(), skipna=False) == "string"):
        return ("hash", _text_hashes(s))
    return ("hash", _object_hashes(_canonical_objects(s)))


def _text_hashes(values) -> np.ndarray:
    """Hash of each value of a text column (a missing value hashes as the canonical ``"\\0nan"``).

    The UTF-8 bytes are hashed vectorised straight from Arrow's buffers (pandas' ``str`` dtype
    holds them already; other text is converted once); only values that NFC normalisation changes
    are hashed again, normalised. Equal canonical text gives equal hashes whatever the storage.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pd.Series):
        values = values.array
    try:
        arr = pa.array(values, type=pa.large_string()) if not isinstance(values, pa.Array) else values
    except (pa.ArrowException, UnicodeError):  # lone surrogates: Arrow holds valid UTF-8 only
        return _text_value_hashes([_NULL_TEXT if v is None or v is pd.NA or (isinstance(v, float) and v != v)
                                   else _nfc(v) for v in np.asarray(values, dtype=object)])
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    hashes = _utf8_hashes(arr)
    if arr.null_count:
        missing = arr.is_null().to_numpy(zero_copy_only=False)
        hashes[missing] = _text_value_hashes([_NULL_TEXT])[0]
    if not _buffer_is_ascii(arr):  # NFC leaves ASCII unchanged: only other values are looked at
        rows = np.flatnonzero(~pc.string_is_ascii(arr).fill_null(True).to_numpy(zero_copy_only=False))
        texts = arr.take(pa.array(rows)).to_pylist()
        normal = [_nfc(t) for t in texts]
        changed = [k for k in range(len(texts)) if normal[k] != texts[k]]
        if changed:
            hashes[rows[changed]] = _text_value_hashes([normal[k] for k in changed])
    return hashes


def _nfc(text: str) -> str:
    import unicodedata

    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _buffer_is_ascii(arr) -> bool:
    data = arr.buffers()[2]
    return data is None or not len(data) or int(np.frombuffer(data, dtype=np.uint8).max()) < 0x80


def _text_value_hashes(texts: list) -> np.ndarray:
    """Hashes of canonical texts (see :func:`_utf8_hashes`); texts Arrow cannot hold as UTF-8 too."""
    import pyarrow as pa

    raw = [t.encode("utf-8", "surrogatepass") for t in texts]
    return _utf8_hashes(pa.array(raw, type=pa.large_binary()))


_K_WORD = np.uint64(0x9E3779B97F4A7C15)
_ALL_BITS = np.uint64(0xFFFFFFFFFFFFFFFF)


def _utf8_hashes(arr) -> np.ndarray:
    """uint64 hash of each value of an Arrow string / binary array, from its buffers, vectorised.

    Each value is read as little-endian 64-bit words (the last one masked to the value's length)
    and folded in with a multiply-xorshift step, seeded with the length; splitmix64 finishes it.
    Word j of every value is processed at once, so the cost is about one pass per 8 bytes of the
    longer values, with no Python loop and no per-value object. Columns with few distinct values
    are dictionary-encoded first, so each distinct value is hashed once.
    """
    import pyarrow as pa

    n = len(arr)
    if n > 4 * _DICTIONARY_SAMPLE and (pa.types.is_large_string(arr.type) or pa.types.is_string(arr.type)):
        sample = arr.slice(0, _DICTIONARY_SAMPLE).dictionary_encode()
        if 0 < len(sample.dictionary) and len(sample.dictionary) * 2 < _DICTIONARY_SAMPLE:  # few distinct values: hash each once
            encoded = arr.dictionary_encode()
            codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
            return _utf8_word_hashes(encoded.dictionary)[codes]
    return _utf8_word_hashes(arr)


_DICTIONARY_SAMPLE = 4096


def _utf8_word_hashes(arr) -> np.ndarray:
    import pyarrow as pa

    n = len(arr)
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64 if large else np.int32)[arr.offset:arr.offset + n + 1]
    lengths = np.diff(offsets).astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    # the bytes as aligned uint64 words, with zero words after them so every read stays inside;
    # an unaligned word is assembled from the two aligned words it straddles (a gather from an
    # unaligned strided view was ten times slower)
    data = np.zeros(((last - first + 7) >> 3) + 2, dtype=np.uint64)
    if bufs[2] is not None and last > first:
        data.view(np.uint8)[:last - first] = np.frombuffer(bufs[2], dtype=np.uint8, count=last)[first:]
    start = offsets[:-1].astype(np.int64) - first
    out = np.empty(n, dtype=np.uint64)
    for b0 in range(0, n, _BLOCK):  # blocks of rows: every temporary stays in the CPU cache
        b1 = min(n, b0 + _BLOCK)
        out[b0:b1] = _word_hash_block(data, start[b0:b1], lengths[b0:b1])
    return out


def _word_hash_block(data: np.ndarray, start: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    n = len(start)
    n_words = (lengths + 7) >> 3
    # the last word of a value keeps only the value's bytes (the next value's follow in the buffer)
    tail_mask = _ALL_BITS >> ((-lengths) % 8 * 8).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = lengths.astype(np.uint64) * _K_WORD
        fewest, most = int(n_words.min()), int(n_words.max())
        word_at = start >> 3  # aligned word holding a value's next 8 bytes
        right = ((start & 7) * 8).astype(np.uint64)  # bits to drop from the low word
        left = np.uint64(63) - right  # (high << 1) << left == high << (64 - right), also for right == 0
        low = data[word_at]
        high = np.empty(n, dtype=np.uint64)
        w = np.empty(n, dtype=np.uint64)
        tmp = np.empty(n, dtype=np.uint64)
        for j in range(most):
            if j >= fewest and np.count_nonzero(n_words > j) * 4 < n:
                break  # the few longer values: below, on their own
            word_at += 1
            np.take(data, word_at, out=high, mode="clip")  # clip: values already ended read past the end
            np.right_shift(low, right, out=w)
            np.left_shift(high, np.uint64(1), out=tmp)
            tmp <<= left
            w |= tmp
            if j >= fewest - 1:  # some values end here
                w &= np.where(n_words == j + 1, tail_mask, _ALL_BITS)
            mixed = h ^ w
            mixed *= _K_WORD
            np.right_shift(mixed, np.uint64(29), out=tmp)
            mixed ^= tmp
            if j >= fewest:  # values already ended keep their hash
                np.copyto(h, mixed, where=n_words > j)
            else:
                h = mixed
            low, high = high, low
        else:
            j = most
        for j in range(j, most):  # the longer values only
            rows = np.flatnonzero(n_words > j)
            at = (start[rows] >> 3) + j
            wj = (data[at] >> right[rows]) | ((data[at + 1] << np.uint64(1)) << left[rows])
            wj &= np.where(n_words[rows] == j + 1, tail_mask[rows], _ALL_BITS)
            hj = h[rows]
            hj ^= wj
            hj *= _K_WORD
            hj ^= hj >> np.uint64(29)
            h[rows] = hj
        _splitmix64_inplace(h, tmp)
    return h


def _object_hashes(values: np.ndarray) -> np.ndarray:
    """Hash of each value of a canonical object column (text; other objects by pandas' hash)."""
    values = np.asarray(values, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        return _text_hashes(values)
    return pd.util.hash_array(values, categorize=True)


def _combine(parts, n: int) -> np.ndarray:
    """Row hashes from column parts: h = h * MIX ^ column_hash, column after column.

    "number": any numeric array, canonicalised (float64, -0.0 and NaN folded) then splitmix64'd;
    "bits": 64-bit words, splitmix64'd; "hash": finished uint64 hashes. Works on blocks of rows
    in reused buffers: the column-at-a-time version spent its time allocating temporaries.
    """
    h = np.full(n, _SEED, dtype=np.uint64)
    block = np.empty(min(n, _BLOCK), dtype=np.float64)
    scratch = np.empty(min(n, _BLOCK), dtype=np.uint64)
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n, _BLOCK):
            stop = min(n, start + _BLOCK)
            hb = h[start:stop]
            m = stop - start
            for kind, values in parts:
                chunk = values[start:stop]
                if kind == "hash":
                    hb *= _MIX
                    hb ^= chunk
                    continue
                x = block[:m]
                if kind == "number":
                    np.add(chunk, 0.0, out=x, casting="unsafe")  # float64; -0.0 + 0.0 == +0.0
                    if x.dtype.kind == "f" and chunk.dtype.kind == "f" and np.isnan(np.add.reduce(x)):
                        x[np.isnan(x)] = np.nan  # one NaN bit pattern (the sum is NaN for inf - inf too)
                    words = x.view(np.uint64)
                else:
                    words = x.view(np.uint64)
                    words[...] = chunk
                _splitmix64_inplace(words, scratch[:m])
                hb *= _MIX
                hb ^= words
    return h


def _splitmix64_inplace(x: np.ndarray, tmp: np.ndarray) -> None:
    """splitmix64's finaliser on 64-bit words, in place (``tmp`` is scratch of the same size)."""
    np.right_shift(x, np.uint64(30), out=tmp)
    x ^= tmp
    x *= np.uint64(0xBF58476D1CE4E5B9)
    np.right_shift(x, np.uint64(27), out=tmp)
    x ^= tmp
    x *= np.uint64(0x94D049BB133111EB)
    np.right_shift(x, np.uint64(31), out=tmp)
    x ^= tmp
