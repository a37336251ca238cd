"""Compute the signatures the checks need, in one pass over each split, through the cache."""
from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import SampleError
from ..sources import FileSource, SequenceSource, TabularSource, canonical_item
from .cache import SignatureCache
from .registry import get_signature


def to_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return b"B" + value
    arr = np.ascontiguousarray(value)
    # 1-byte dtypes spell themselves "|u1": drop the byte-order "|" so it cannot clash with ours
    dtype = arr.dtype.str.lstrip("|")
    return b"A" + f"{dtype}|{','.join(map(str, arr.shape))}|".encode() + arr.tobytes()


def from_bytes(blob: bytes):
    if blob[:1] == b"B":
        return blob[1:]
    # a re-audit reads tens of thousands of these: the header's parse is kept per header, and the
    # array is read in place (offset), not from a copy of the data's bytes
    end = blob.index(b"|", blob.index(b"|", 1) + 1)
    head = blob[1:end]
    parsed = _HEADERS.get(head)
    if parsed is None:
        dtype_s, shape_s = head.decode().split("|")
        parsed = (np.dtype(dtype_s), tuple(int(x) for x in shape_s.split(",") if x))
        if len(_HEADERS) < 4096:
            _HEADERS[head] = parsed
    return np.frombuffer(blob, dtype=parsed[0], offset=end + 1).reshape(parsed[1])


_HEADERS: dict[bytes, tuple] = {}  # from_bytes: header -> (dtype, shape)


class SignatureStore:
    """Per-sample signatures of every split, computed once and shared by all checks.

    ``store.get(split, kind)`` is a list with one signature per sample (None for samples that
    could not be read; those are listed in ``store.skipped[split]``).
    """

    def __init__(self, splits, cache: SignatureCache | None = None, progress: bool | None = None,
                 workers: int | None = None):
        self.splits = splits
        self.workers = workers or min(4, (os.cpu_count() or 1) + 1)
        self.cache = cache
        self.progress = progress
        self.values: dict[tuple[str, str], list] = {}
        self.skipped: dict[str, list[dict]] = {n: [] for n in splits}
        self._bad: dict[str, set[int]] = {n: set() for n in splits}
        for name, split in splits.items():
            for s in getattr(split.source, "pre_skipped", []):
                self.skipped[name].append({**s, "split": name})

    def valid(self, split: str) -> np.ndarray:
        """Boolean mask of the samples of ``split`` that could be read."""
        mask = np.ones(len(self.splits[split]), dtype=bool)
        if self._bad[split]:
            mask[list(self._bad[split])] = False
        return mask

    def get(self, split: str, kind: str) -> list:
        if (split, kind) not in self.values:
            self.ensure({kind})
        return self.values[(split, kind)]

    def lazy(self, split: str, kind: str) -> "LazySignatures":
        """The ``kind`` signatures of ``split``, computed only for the samples asked for.

        For costly kinds that a check needs for a few samples only (the keypoint thumbnail of the
        images that reach verification): ``lazy(split, kind)[i]`` computes sample ``i`` on first
        use (reading it again unless the cache has it) and keeps it; ``.fetch(indices)`` computes
        many in one pass (reading threads). Values equal ``get(split, kind)[i]``; a sample that
        cannot be read gives None and is listed in ``skipped`` as with ``get``. When the whole
        split was computed already (``ensure``), those values are used.

        >>> store.lazy("train", "thumb_kp").fetch([3, 17])     # doctest: +SKIP
        """
        return LazySignatures(self, split, kind)

    def ensure(self, kinds: set[str]) -> None:
        """Compute the missing ``kinds`` for every split, loading each sample at most once."""
        for name, split in self.splits.items():
            if isinstance(split.source, TabularSource):
                continue
            todo = [k for k in sorted(kinds) if (name, k) not in self.values]
            if todo:
                self._compute(name, split, todo)

    def _compute(self, name: str, split, kinds: list[str], indices=None) -> dict | None:
        """Compute ``kinds`` for every sample (kept in ``values``), or for ``indices`` only
        (returned as {kind: list with None elsewhere})."""
        from tqdm.auto import tqdm

        src = split.source
        n = len(src)
        specs = {k: get_signature(src.modality, k) for k in kinds}
        out = {k: [None] * n for k in kinds}
        wanted = range(n) if indices is None else sorted({int(i) for i in indices})
        # in-memory texts: whole chunks of them read back in one row per kind (_TextChunks); the rest as below
        chunks = _TextChunks(self, src, specs) if indices is None and _TextChunks.applies(self.cache, src) else None
        if chunks is not None:
            covered = chunks.read(out, self._bad[name])
            if covered.any():
                wanted = [i for i in wanted if not covered[i]]
        keys = [None] * n
        if self.cache is not None:
            for i in wanted:
                keys[i] = src.content_key(i)
            if src.modality == "text" and isinstance(src, SequenceSource) and src.convert is None:
                # in-memory texts have no key before loading, and loading one is free: key them here so
                # the batched look-up below answers them (not one sqlite query per text and kind; a
                # re-audit of 6 000 texts: 24 000 queries). A text that fails is read in work() again.
                for i in wanted:
                    if keys[i] is None and i not in self._bad[name]:
                        try:
                            keys[i] = _item_key(canonical_item(src.load(i), src.modality))
                        except Exception:  # noqa: BLE001 - work() reads it again and reports it
                            keys[i] = None
        cached: dict[str, dict[bytes, bytes]] = {}
        if self.cache is not None:
            present = [k for k in keys if k is not None]
            for k, spec in specs.items():
                cached[k] = self.cache.get_many(f"{src.modality}/{k}/{spec.version}", present)

        def work(i: int):
            """(i, content key, {kind: value or prepared}, error, kinds computed); runs in worker threads.

            Batched kinds come back prepared (small renderings); the main thread runs them in batches.
            """
            key = keys[i]
            values, missing = {}, []
            for k in kinds:
                blob = cached.get(k, {}).get(key) if key is not None else None
                try:
                    values[k] = from_bytes(blob) if blob is not None else None
                except (ValueError, TypeError):  # an unreadable cache entry is a miss
                    values[k] = None
                if values[k] is None:
                    del values[k]
                    missing.append(k)
            if not missing:
                return i, key, values, None, frozenset()
            try:
                item = canonical_item(src.load(i), src.modality)
                if self.cache is not None and key is None:
                    key = _item_key(item)
                    if threading.current_thread() is threading.main_thread():
                        # in-memory samples have no key before loading: look them up now (sqlite
                        # answers only on the thread that opened it; such sources are read inline)
                        for k in list(missing):
                            blob = self.cache.get_many(f"{src.modality}/{k}/{specs[k].version}", [key]).get(key)
                            try:
                                value = from_bytes(blob) if blob is not None else None
                            except (ValueError, TypeError):
                                value = None
                            if value is not None:
                                values[k] = value
                                missing.remove(k)
                prepared = {}  # kinds sharing one prepare function share its result
                for k in missing:
                    spec = specs[k]
                    if spec.batch is None:
                        values[k] = spec.fn(item)
                    else:
                        if spec.prepare not in prepared:
                            prepared[spec.prepare] = spec.prepare(item)
                        values[k] = _Prepared(prepared[spec.prepare])
            except SampleError as err:
                return i, key, {}, err.reason, frozenset()
            except (ValueError, TypeError, MemoryError) as err:
                return i, key, {}, f"{type(err).__name__}: {err}", frozenset()
            return i, key, values, None, frozenset(missing)

        pending: dict[str, list[tuple[int, bytes | None, object]]] = {k: [] for k in kinds if specs[k].batch}

        def store(k: str, i: int, key, value, computed: bool) -> None:
            out[k][i] = value
            if computed and self.cache is not None and key is not None and cached.get(k, {}).get(key) is None:
                self.cache.put(f"{src.modality}/{k}/{specs[k].version}", key, to_bytes(value))

        def run_batches(final: bool) -> None:
            for k, rows in pending.items():
                if rows and (final or len(rows) >= BATCH):
                    for (i, key, _), value in zip(rows, specs[k].batch([small for _, _, small in rows])):
                        store(k, i, key, value, True)
                    rows.clear()

        todo = [i for i in wanted if i not in self._bad[name]]
        if self.cache is not None and kinds:
            # samples with every kind in the cache are decoded here, as work() would, without its
            # per-sample call, thread hand-off and bar update (a re-audit of 6 000 texts: most of them)
            rest = []
            for i in todo:
                key = keys[i]
                blobs = [cached[k].get(key) for k in kinds] if key is not None else [None]
                try:
                    values = [from_bytes(b) for b in blobs] if all(b is not None for b in blobs) else None
                except (ValueError, TypeError):  # an unreadable cache entry: work() treats it as a miss
                    values = None
                if values is None or any(v is None for v in values):
                    rest.append(i)
                    continue
                for k, v in zip(kinds, values):
                    out[k][i] = v
            todo = rest
        # decoding files releases the GIL (Pillow, soundfile, hashlib): read them on a few threads
        threads = self.workers if isinstance(src, FileSource) and len(todo) > 64 else 1
        bar = tqdm(total=len(todo), desc=f"reading {name}", unit="sample", disable=self._disabled(len(todo)), leave=False)
        with ThreadPoolExecutor(threads) if threads > 1 else _Inline() as pool:
            for i, key, values, error, computed in pool.map(work, todo) if threads > 1 else map(work, todo):
                bar.update(1)
                if error is not None:
                    self._skip(name, i, src.name(i), error)
                    continue
                for k, value in values.items():
                    if isinstance(value, _Prepared):
                        pending[k].append((i, key, value.small))
                    else:
                        store(k, i, key, value, k in computed)
                run_batches(final=False)
        run_batches(final=True)
        bar.close()
        if chunks is not None:
            chunks.write(out, self._bad[name])
        if self.cache is not None:
            self.cache.flush()
        if indices is not None:
            return out
        for k in kinds:
            self.values[(name, k)] = out[k]
        return None

    def _skip(self, split: str, i: int, file: str | None, reason: str) -> None:
        if i not in self._bad[split]:
            self._bad[split].add(i)
            self.skipped[split].append({"split": split, "index": int(i), "file": file, "reason": reason})

    def _disabled(self, n: int):
        if self.progress is False:
            return True
        if self.progress is True:
            return False
        return None if n >= 500 else True  # tqdm decides by the terminal; tiny splits get no bar


class LazySignatures:
    """One kind of signature of one split, computed per sample on first use (see ``SignatureStore.lazy``)."""

    def __init__(self, store: SignatureStore, split: str, kind: str):
        self.store, self.split, self.kind = store, split, kind
        self._values: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.store.splits[self.split])

    def fetch(self, indices) -> None:
        """Compute the signatures of ``indices`` not computed yet, in one pass."""
        full = self.store.values.get((self.split, self.kind))
        if full is not None:
            return
        todo = [int(i) for i in indices if int(i) not in self._values]
        if not todo:
            return
        split = self.store.splits[self.split]
        if isinstance(split.source, TabularSource):
            raise KeyError(f"split {self.split!r} holds a table: no per-sample {self.kind!r} signatures")
        out = self.store._compute(self.split, split, [self.kind], indices=todo)[self.kind]
        for i in todo:
            self._values[i] = out[i]

    def __getitem__(self, i: int):
        full = self.store.values.get((self.split, self.kind))
        if full is not None:
            return full[i]
        i = int(i)
        if i < 0:
            i += len(self)
        if i not in self._values:
            self.fetch([i])
        return self._values[i]


BATCH = 256  # samples per call of a batched signature: vectorised, and the prepared renderings stay small


class _Prepared:
    """A batched kind's prepared input for one sample, on its way from a reading thread to the batch."""

    __slots__ = ("small",)

    def __init__(self, small):
        self.small = small


class _TextChunks:
    """The signatures of in-memory texts kept per chunk of ``CHUNK`` consecutive texts as well: one cache row
    per chunk and kind, keyed by the chunk's raw texts (equal raw texts have equal canonical forms and
    signatures). A re-audit of 6 000 texts read 24 000 rows (one per text and kind), after working out
    each text's key (canonical form, hash); whole chunks now come back in ~25 rows per kind, with no
    per-text key. Texts outside an unchanged chunk (a changed chunk, the split's tail, added texts) take
    the per-text rows as before, which are still written. Values equal ``from_bytes(to_bytes(v))``."""

    CHUNK = 256

    def __init__(self, store, src, specs: dict):
        self.cache, self.src, self.specs = store.cache, src, specs
        self.spans = []  # (lo, hi, key) of each whole chunk of plain strings
        for lo in range(0, len(src) - self.CHUNK + 1, self.CHUNK):
            texts = src.items[lo:lo + self.CHUNK]
            if all(type(t) is str for t in texts):
                h = hashlib.blake2b(digest_size=16)
                for t in texts:
                    b = t.encode("utf-8", "surrogatepass")
                    h.update(len(b).to_bytes(8, "little") + b)
                self.spans.append((lo, lo + self.CHUNK, h.digest()))
        self.missing: dict[str, list[int]] = {k: list(range(len(self.spans))) for k in specs}

    @staticmethod
    def applies(cache, src) -> bool:
        return (cache is not None and isinstance(src, SequenceSource) and src.convert is None
                and src.modality == "text" and len(src) >= _TextChunks.CHUNK)

    def _kind(self, k: str) -> str:
        return f"chunk/{self.src.modality}/{k}/{self.specs[k].version}"

    def read(self, out: dict, bad: set) -> np.ndarray:
        """Fill ``out[kind][i]`` for the texts of every chunk found for all kinds; which texts those are."""
        covered = np.zeros(len(self.src), bool)
        if not self.spans:
            return covered
        found = {}
        for k in self.specs:
            blobs = self.cache.get_many(self._kind(k), [key for *_, key in self.spans])
            found[k] = {c: _decode_chunk(blobs.get(key), hi - lo) for c, (lo, hi, key) in enumerate(self.spans)}
            self.missing[k] = [c for c, v in found[k].items() if v is None]
        for c, (lo, hi, _) in enumerate(self.spans):
            if all(found[k][c] is not None for k in self.specs) and not any(i in bad for i in range(lo, hi)):
                for k in self.specs:
                    out[k][lo:hi] = found[k][c]
                covered[lo:hi] = True
                # a chunk row stands for its texts' signatures: counted as those hits
                self.cache.hits += (hi - lo - 1) * len(self.specs)
        return covered

    def write(self, out: dict, bad: set) -> None:
        """Keep each chunk not found, once all its texts have a value of that kind."""
        for k, chunks in self.missing.items():
            for c in chunks:
                lo, hi, key = self.spans[c]
                values = out[k][lo:hi]
                if any(v is None for v in values) or any(i in bad for i in range(lo, hi)):
                    continue
                self.cache.put(self._kind(k), key, _encode_chunk(values))


def _encode_chunk(values: list) -> bytes:
    """Values as ``to_bytes`` writes each, in one blob: count, header and data offsets, headers, data."""
    heads, datas = [], []
    for v in values:
        blob = to_bytes(v)
        end = 1 if blob[:1] == b"B" else blob.index(b"|", blob.index(b"|", 1) + 1) + 1
        heads.append(blob[:end])
        datas.append(blob[end:])
    offsets = np.zeros((2, len(values) + 1), np.int64)
    offsets[0, 1:] = np.cumsum([len(h) for h in heads])
    offsets[1, 1:] = np.cumsum([len(d) for d in datas])
    return len(values).to_bytes(8, "little") + offsets.tobytes() + b"".join(heads) + b"".join(datas)


def _decode_chunk(blob, n: int) -> list | None:
    """The values of :func:`_encode_chunk` (as ``from_bytes`` gives each), or None (absent, unreadable)."""
    if not blob or len(blob) < 8 or int.from_bytes(blob[:8], "little") != n:
        return None
    try:
        offsets = np.frombuffer(blob, np.int64, count=2 * (n + 1), offset=8).reshape(2, n + 1)
        head_at = 8 + offsets.nbytes
        data_at = head_at + int(offsets[0, -1])
        if data_at + int(offsets[1, -1]) != len(blob):
            return None
        h_off, d_off = offsets[0].tolist(), offsets[1].tolist()
        out = []
        for i in range(n):
            head = blob[head_at + h_off[i]:head_at + h_off[i + 1]]
            lo, hi = data_at + d_off[i], data_at + d_off[i + 1]
            if head == b"B":
                out.append(blob[lo:hi])
                continue
            parsed = _HEADERS.get(head[1:-1])
            if parsed is None:
                dtype_s, shape_s = head[1:-1].decode().split("|")
                parsed = (np.dtype(dtype_s), tuple(int(x) for x in shape_s.split(",") if x))
                if len(_HEADERS) < 4096:
                    _HEADERS[head[1:-1]] = parsed
            dtype, shape = parsed
            out.append(np.frombuffer(blob, dtype=dtype, count=(hi - lo) // dtype.itemsize, offset=lo).reshape(shape))
        return out
    except (ValueError, TypeError, UnicodeDecodeError):
        return None


class _Inline:
    """Stands in for a thread pool when one thread is enough."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _item_key(item) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    if isinstance(item, str):
        h.update(b"t" + item.encode("utf-8", "surrogatepass"))
    elif isinstance(item, tuple):
        h.update(f"a{item[1]}".encode() + np.ascontiguousarray(item[0]).tobytes())
    else:
        arr = np.ascontiguousarray(item)
        h.update(f"{arr.shape}{arr.dtype.str}".encode() + arr.tobytes())
    return h.digest()
