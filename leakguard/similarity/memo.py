"""What a check worked out from a split, kept between audits in the signature cache (``AuditConfig(cache_dir=...)``).

A calibration (a threshold from the training split's own nearest neighbours, boilerplate levels,
a gate) is a function of the whole training split, of the check's options and of the code that
computes it. :func:`kept_value` keeps it under all three: the content digests of the split's
samples in order, the options (``repr``), and a fingerprint of the *source* of the modules that
compute it plus the versions of numpy / scikit-learn / FAISS / OpenCV -- so an edit of the check
invalidates what was kept without anyone bumping a version, and a re-audit whose training split is
unchanged (the same data again, or new evaluation data only) reads the value back instead of
recomputing it. The value is exactly what the computation returned (JSON: floats round-trip), so
findings are the same with and without the cache.

A training split that only *grew* since an earlier audit -- every sample of the split that audit
calibrated on is still there -- by at most ``AuditConfig.recalibrate_growth`` (5 % by default) of
that split's size keeps that audit's value (:func:`earlier_calibration`): the value is the earlier
one, the report says so (``report.meta["cache"]["calibration"]``, :func:`note_calibration`), and the
growth is always measured from the split that was really calibrated, so kept values cannot drift
further than that bound however many small additions follow. Any removed or changed training
sample, a larger growth, other options or code, or ``recalibrate_growth=0``: computed again.

>>> min_run = kept_value(ctx, "text/partial/min_run", digests, {"fpr": 0.01}, ("leakguard.similarity.text",),
...                     lambda: calibrate())                                        # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np

MEMO_VERSION = "1"  # bump when how values are kept changes
KIND = f"memo/{MEMO_VERSION}"


@lru_cache(maxsize=32)
def code_fingerprint(modules: tuple[str, ...]) -> bytes:
    """16 bytes naming the source of ``modules`` and the versions of the numeric libraries."""
    import importlib
    import inspect

    h = hashlib.blake2b(digest_size=16)
    h.update(MEMO_VERSION.encode())
    for name in modules:
        module = importlib.import_module(name)
        origin = getattr(module, "__file__", None)
        try:  # the file's bytes: a quarter of inspect.getsource's cost (no decoding, no line cache)
            with open(origin, "rb") as f:
                source = f.read()
        except (OSError, TypeError):  # no source file (frozen, zipped): what inspect finds
            source = inspect.getsource(module).encode()
        h.update(name.encode() + b"\x00" + source)
    h.update(_library_versions())
    return h.digest()


@lru_cache(maxsize=1)
def _library_versions() -> bytes:
    """The numeric libraries' versions, once per process (each metadata look-up scans sys.path)."""
    # versions from the installed distributions' metadata: importing scikit-learn only to read
    # its version cost ~1.5 s CPU in every first fit with a cache (the callbacks' default)
    from importlib.metadata import PackageNotFoundError

    out = []
    for lib, dists in NUMERIC_DISTRIBUTIONS:
        found = "absent"
        for dist in dists:
            try:
                found = f"{dist} {_distribution_version(dist)}"
                break
            except PackageNotFoundError:
                continue
        out.append(f"{lib}={found}".encode())
    return b"".join(out)


def _distribution_version(name: str) -> str:
    """``importlib.metadata.version(name)``: the ``Version:`` header of the distribution's metadata,
    read from the header lines alone. ``version()`` parses the whole file (numpy's and scipy's carry
    their long descriptions) with the email parser: 8 of 9.5 ms CPU per process for these six
    libraries, paid by every audit with a cache in a new process (the code fingerprint)."""
    from importlib.metadata import distribution, version

    dist = distribution(name)
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line.strip():  # the end of the header block
            break
        if line.startswith("Version:"):
            return line[len("Version:"):].strip()
    return version(name)


# the numeric libraries whose versions can change a kept value, and the distributions providing them
NUMERIC_DISTRIBUTIONS = (
    ("numpy", ("numpy",)), ("scipy", ("scipy",)), ("sklearn", ("scikit-learn",)),
    ("faiss", ("faiss-cpu", "faiss-gpu", "faiss")),
    ("cv2", ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
             "opencv-contrib-python")),
    ("PIL", ("pillow",)),
)


def split_key(digests) -> bytes | None:
    """Content key of a split's samples in order (None when one has no digest: nothing is kept)."""
    h = hashlib.blake2b(digest_size=16)
    for d in digests:
        if d is None:
            return None
        h.update(bytes(d))
    h.update(len(digests).to_bytes(8, "little"))
    return h.digest()


def memo_key(*parts) -> bytes:
    """16 bytes from ``parts`` (bytes as they are, anything else by ``repr``)."""
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p if isinstance(p, bytes) else repr(p).encode())
        h.update(b"\x00")
    return h.digest()


def memo_stats(ctx) -> dict:
    """``{name: "read back" | "computed"}`` of this audit (report.meta["cache"]["kept"])."""
    return ctx.shared.setdefault("memo", {})


CHECK_OF = {"augmented": "augmented_duplicate", "partial": "partial_duplicate", "semantic": "semantic_duplicate"}


def _check_of(name: str) -> str:
    """The check a kept value belongs to, from its name ("text/partial/min_run" -> partial_duplicate)."""
    parts = name.split("/")
    return CHECK_OF.get(parts[1], name) if len(parts) > 1 else name


def note_calibration(ctx, name: str, state: str, n: int, earlier: dict | None = None) -> None:
    """Say in ``report.meta["cache"]["calibration"]`` how a check got its calibration this audit:
    ``state`` "computed", "read back" (same training split) or "kept" (``earlier``: from
    :func:`earlier_calibration`, an audit of a smaller training split)."""
    entry = {"state": state, "training": int(n)}
    if earlier is not None:
        entry.update(kept_from=int(earlier["n"]), growth=round(float(earlier["growth"]), 6))
    ctx.shared.setdefault("calibration", {})[_check_of(name)] = entry


LINEAGE_KIND = f"memo/lineage/{MEMO_VERSION}"   # per (value name, options, code): the splits calibrated on
SPLIT_KIND = f"memo/split/{MEMO_VERSION}"       # per split content key: its samples' digests (multiset)
LINEAGE_DEPTH = 8                               # earlier calibrated splits remembered per value


def _growth_bound(ctx) -> float:
    return float(getattr(ctx.config, "recalibrate_growth", 0.0) or 0.0)


def _digest_multiset(digests) -> np.ndarray:
    """Sorted 8-byte prefixes of the digests (duplicates kept): what "every sample still there" compares."""
    return np.sort(np.array([int.from_bytes(bytes(d)[:8], "little") for d in digests], dtype=np.uint64))


def contains_all(current: np.ndarray, earlier: np.ndarray) -> bool:
    """Whether the multiset ``current`` holds every element of ``earlier`` (as often): sorted uint64."""
    if len(earlier) > len(current):
        return False
    u_old, c_old = np.unique(earlier, return_counts=True)
    u_cur, c_cur = np.unique(current, return_counts=True)
    pos = np.searchsorted(u_cur, u_old)
    if len(pos) and pos.max() >= len(u_cur):
        return False
    return bool(np.array_equal(u_cur[pos], u_old) and (c_cur[pos] >= c_old).all())


def _lineage_key(name: str, modules: tuple[str, ...], params) -> bytes:
    return memo_key(b"lineage", name, code_fingerprint(tuple(modules)), params)


def earlier_calibration(ctx, name: str, digests, params, modules: tuple[str, ...]) -> dict | None:
    """An earlier audit's calibration this audit may keep (``AuditConfig.recalibrate_growth``), or None.

    Among the training splits an earlier audit calibrated ``name`` on with the same ``params`` and
    code, the largest one whose every sample (digest, counted with repeats) is in ``digests`` and
    which ``digests`` outgrow by at most ``recalibrate_growth`` of its size:
    ``{"key": the key the caller kept its value under, "n": its size, "growth": (n_now - n) / n}``.
    """
    bound = _growth_bound(ctx)
    cache = getattr(ctx.signatures, "cache", None)
    if bound <= 0 or cache is None or split_key(digests) is None:
        return None
    blob = cache.get_many(LINEAGE_KIND, [_lineage_key(name, modules, params)])
    if not blob:
        return None
    try:
        entries = json.loads(next(iter(blob.values())).decode())
    except ValueError:
        return None
    n = len(digests)
    fits = sorted((e for e in entries if 0 < e["n"] <= n and n - e["n"] <= bound * e["n"] + 1e-9),
                  key=lambda e: -e["n"])
    if not fits:
        return None
    sets = cache.get_many(SPLIT_KIND, [bytes.fromhex(e["split"]) for e in fits])
    current = _digest_multiset(digests)
    for e in fits:
        earlier = sets.get(bytes.fromhex(e["split"]))
        if earlier is not None and contains_all(current, np.frombuffer(earlier, np.uint64)):
            return {"key": bytes.fromhex(e["key"]), "n": int(e["n"]), "growth": (n - e["n"]) / e["n"],
                    "split": bytes.fromhex(e["split"])}
    return None


def added_positions(ctx, digests, earlier_split: bytes) -> np.ndarray | None:
    """Positions of ``digests`` beyond the samples of the earlier split ``earlier_split`` (its content
    key, as :func:`earlier_calibration` gives it): with repeats, the occurrences past the earlier
    count. None when that split's digests are not kept."""
    cache = getattr(ctx.signatures, "cache", None)
    blob = cache.get_many(SPLIT_KIND, [earlier_split]).get(earlier_split) if cache is not None else None
    if blob is None:
        return None
    left: dict[int, int] = {}
    for v in np.frombuffer(blob, np.uint64).tolist():
        left[v] = left.get(v, 0) + 1
    out = []
    for pos, d in enumerate(digests):
        v = int.from_bytes(bytes(d)[:8], "little")
        if left.get(v, 0) > 0:
            left[v] -= 1
        else:
            out.append(pos)
    return np.array(out, np.int64)


def remember_calibration(ctx, name: str, digests, params, modules: tuple[str, ...], value_key: bytes) -> None:
    """Record that ``name`` was calibrated on the split ``digests`` and kept under ``value_key``, so a
    later audit of a slightly grown split can find it (:func:`earlier_calibration`)."""
    cache = getattr(ctx.signatures, "cache", None)
    content = split_key(digests) if cache is not None else None
    if content is None:
        return
    cache.put(SPLIT_KIND, content, _digest_multiset(digests).tobytes())
    key = _lineage_key(name, modules, params)
    try:
        entries = json.loads(cache.get_many(LINEAGE_KIND, [key]).get(key, b"[]").decode())
    except ValueError:
        entries = []
    entries = [{"split": content.hex(), "n": len(digests), "key": bytes(value_key).hex()}] + [
        e for e in entries if e.get("split") != content.hex()]
    cache.put(LINEAGE_KIND, key, json.dumps(entries[:LINEAGE_DEPTH]).encode())
    cache.flush()  # a lineage read back later in this audit (another check) sees it


def kept_value(ctx, name: str, digests, params, modules: tuple[str, ...], compute, lineage=None):
    """``compute()`` -- a JSON-able value -- or what it returned in an earlier audit for the same
    samples (``digests``, in order), ``params`` and code (``modules``); or, when the training split
    only grew a little since an earlier audit (:func:`earlier_calibration`), that audit's value.
    ``lineage``: the part of ``params`` a grown split must share with the earlier one (default:
    all of it; leave out what is derived from the split's size). Without a cache, or when a
    sample has no digest, ``compute()`` runs."""
    cache = getattr(ctx.signatures, "cache", None)
    content = split_key(digests) if cache is not None else None
    if content is None:
        return compute()
    lineage = params if lineage is None else lineage
    key = memo_key(name, code_fingerprint(tuple(modules)), content, params)
    value = _read(cache, key)
    if value is not None:
        memo_stats(ctx)[name] = "read back"
        note_calibration(ctx, name, "read back", len(digests))
        return value[0]
    earlier = earlier_calibration(ctx, name, digests, lineage, modules)
    if earlier is not None:
        value = _read(cache, earlier["key"])
        if value is not None:
            memo_stats(ctx)[name] = "kept"
            note_calibration(ctx, name, "kept", len(digests), earlier)
            return value[0]
    value = compute()
    memo_stats(ctx)[name] = "computed"
    note_calibration(ctx, name, "computed", len(digests))
    try:
        cache.put(KIND, key, json.dumps(value).encode())
    except (TypeError, ValueError):  # not JSON (numpy integers, NaN...): not kept, still returned
        return value
    remember_calibration(ctx, name, digests, lineage, modules, key)
    return value


def _read(cache, key: bytes):
    """(value,) kept under ``key``, or None (missing or unreadable: a miss)."""
    blob = cache.get_many(KIND, [key]).get(key)
    if blob is None:
        return None
    try:
        return (json.loads(blob.decode()),)
    except ValueError:
        return None


PAIRS_KIND = f"memo/pairs/{MEMO_VERSION}"


def kept_pair_values(ctx, name: str, modules: tuple[str, ...], params, a_digests, b_digests, ia, ib,
                     width: int, compute, b_salt=None) -> np.ndarray:
    """``compute(ia, ib)`` -- ``(len(ia), width)`` float64, one row per pair of samples ``a[ia[k]]``,
    ``b[ib[k]]`` -- with the rows of pairs seen in an earlier audit read back instead.

    For values that are a function of the two samples' content alone (a Jaccard similarity), or
    of that and something per ``b`` sample given as ``b_salt[j]`` (bytes: e.g. which of its n-grams
    are boilerplate now). Kept per ``b`` sample (its digest, the salt, ``params`` and the code of
    ``modules``): every pair it was computed with, by the ``a`` sample's digest. Values are the
    computed float64 themselves, so results are those without a cache; pairs are independent of
    what else is in either split, so a grown split reads its old pairs back too.
    """
    cache = getattr(ctx.signatures, "cache", None)
    ia, ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
    if (cache is None or not len(ia) or any(a_digests[i] is None for i in np.unique(ia))
            or any(b_digests[j] is None for j in np.unique(ib))):
        return np.asarray(compute(ia, ib), np.float64).reshape(len(ia), width)
    stats = ctx.shared.setdefault("memo_pairs", {}).setdefault(name, {"computed": 0, "read_back": 0})
    prefix = memo_key(b"pairs", name, code_fingerprint(tuple(modules)), params, width)
    rows = np.unique(ib)
    keys = {int(j): memo_key(prefix, bytes(b_digests[j]), b"" if b_salt is None else b_salt[j]) for j in rows}
    found = cache.get_many(PAIRS_KIND, list(dict.fromkeys(keys.values())))
    step = 16 + 8 * width
    # every kept entry (its b sample, the a sample's 16-byte digest, the value's 8 * width bytes) in one
    # array, joined with the pairs asked for on (b sample, full digest) by one sort: a re-audit reads
    # back thousands of pairs (scene links, text Jaccard and passages), one dict look-up each cost more
    blobs = [(j, found.get(key)) for j, key in keys.items()]
    blobs = [(j, blob) for j, blob in blobs if blob is not None and len(blob) % step == 0 and len(blob)]
    if blobs:
        entries = np.frombuffer(b"".join(blob for _, blob in blobs), np.uint8).reshape(-1, step)
        entry_b = np.repeat(np.array([j for j, _ in blobs], np.int64), [len(blob) // step for _, blob in blobs])
    else:
        entries, entry_b = np.zeros((0, step), np.uint8), np.zeros(0, np.int64)
    used_a, inverse = np.unique(ia, return_inverse=True)
    a16 = np.frombuffer(b"".join(bytes(a_digests[i])[:16].ljust(16, b"\0") for i in used_a.tolist()),
                        np.uint8).reshape(len(used_a), 16)
    where = _join_rows(entry_b, entries[:, :16], ib, a16[inverse.reshape(-1)])
    hit = where >= 0
    out = np.empty((len(ia), width), np.float64)
    if hit.any():
        out[hit] = np.ascontiguousarray(entries[where[hit], 16:]).view(np.float64).reshape(-1, width)
    missing = np.flatnonzero(~hit)
    stats["read_back"] += len(ia) - len(missing)
    stats["computed"] += len(missing)
    if len(missing):
        fresh = np.asarray(compute(ia[missing], ib[missing]), np.float64).reshape(len(missing), width)
        out[missing] = fresh
        kept = dict(blobs)
        added: dict[int, dict[bytes, bytes]] = {}
        for k, value in zip(missing.tolist(), fresh):
            added.setdefault(int(ib[k]), {}).setdefault(bytes(a_digests[int(ia[k])]),
                                                          np.ascontiguousarray(value, np.float64).tobytes())
        for j, new_entries in added.items():
            cache.put(PAIRS_KIND, keys[j], (kept.get(j) or b"") + b"".join(d + v for d, v in new_entries.items()))
    return out


def _join_rows(entry_b: np.ndarray, entry_digest: np.ndarray, query_b: np.ndarray, query_digest: np.ndarray):
    """For each query (b sample, 16-byte digest): the row of the entry with the same b sample and the
    same 16 bytes, or -1. Exact (all 16 bytes compared); entries are unique per (b, digest)."""
    e64 = np.ascontiguousarray(entry_digest).view("<u8").reshape(-1, 2)
    q64 = np.ascontiguousarray(query_digest).view("<u8").reshape(-1, 2)
    n_e = len(entry_b)
    b = np.concatenate([np.asarray(entry_b, np.int64), np.asarray(query_b, np.int64)])
    d0 = np.concatenate([e64[:, 0], q64[:, 0]])
    d1 = np.concatenate([e64[:, 1], q64[:, 1]])
    is_query = np.r_[np.zeros(n_e, bool), np.ones(len(query_b), bool)]
    order = np.lexsort((is_query, d1, d0, b))       # an entry sorts just before the queries equal to it
    pos = np.arange(len(order))
    last_entry = np.maximum.accumulate(np.where(~is_query[order], pos, -1))
    out = np.full(len(query_b), -1, np.int64)
    q_at = np.flatnonzero(is_query[order])
    e_at = last_entry[q_at]
    ok = e_at >= 0
    e_row, q_row = order[e_at[ok]], order[q_at[ok]]
    same = (b[e_row] == b[q_row]) & (d0[e_row] == d0[q_row]) & (d1[e_row] == d1[q_row])
    out[q_row[same] - n_e] = e_row[same]
    return out


ARRAYS_KIND = f"memo/arrays/{MEMO_VERSION}"


def kept_arrays(ctx, name: str, digests, params, modules: tuple[str, ...], compute) -> tuple:
    """``compute()`` -- a tuple of 1-D numpy arrays worked out from the samples ``digests`` (in order),
    e.g. an index over them -- or the same arrays an earlier audit computed for the same samples,
    ``params`` and code (raw bytes with their dtypes, no pickle). Exact: a changed split is another key."""
    cache = getattr(ctx.signatures, "cache", None)
    content = split_key(digests) if cache is not None else None
    if content is None:
        return compute()
    key = memo_key(name, code_fingerprint(tuple(modules)), content, params)
    blob = cache.get_many(ARRAYS_KIND, [key]).get(key)
    if blob is not None:
        try:
            size = int.from_bytes(blob[:8], "little")
            header, at, out = json.loads(blob[8:8 + size].decode()), 8 + size, []
            for dtype, n in header:
                width = np.dtype(dtype).itemsize * n
                out.append(np.frombuffer(blob[at:at + width], dtype=dtype).copy())
                at += width
            if at == len(blob):
                ctx.shared.setdefault("memo_arrays", {})[name] = "read back"
                return tuple(out)
        except (ValueError, TypeError):  # unreadable: a miss
            pass
    arrays = tuple(np.ascontiguousarray(a) for a in compute())
    ctx.shared.setdefault("memo_arrays", {})[name] = "computed"
    head = json.dumps([[a.dtype.str, int(a.size)] for a in arrays]).encode()
    cache.put(ARRAYS_KIND, key, len(head).to_bytes(8, "little") + head + b"".join(a.tobytes() for a in arrays))
    return arrays


ROWS_KIND = f"memo/rows/{MEMO_VERSION}"


def kept_rows(ctx, name: str, modules: tuple[str, ...], params, digests, width: int, compute) -> np.ndarray:
    """``compute(rows)`` -- ``(len(rows), width)`` float64, one row per sample ``rows[k]`` -- for every
    sample of ``digests``, with the rows worked out in an earlier audit read back instead.

    For a value that is a function of one sample's content and of ``params`` alone (put there what
    else it depends on, e.g. the content key of the split it was searched against): a re-audit
    computes only the samples it has not seen with these ``params`` and code. Values are the
    computed float64 themselves. Without a cache, or when a sample has no digest, all are computed.

    >>> best = kept_rows(ctx, "text/semantic/nearest", TEXT_CODE, (fit, train_key), digests, 2, search)  # doctest: +SKIP
    """
    cache = getattr(ctx.signatures, "cache", None)
    n = len(digests)
    if cache is None or any(d is None for d in digests):
        return np.asarray(compute(np.arange(n, dtype=np.int64)), np.float64).reshape(n, width)
    # counted with the per-pair values (report.meta["cache"]["pairs"]): one row per sample here
    stats = ctx.shared.setdefault("memo_pairs", {}).setdefault(name, {"computed": 0, "read_back": 0})
    out, have = read_rows(ctx, name, modules, params, digests, width)
    keys = _row_keys(name, modules, params, digests, width)
    missing = np.flatnonzero(~have).tolist()
    stats["read_back"] += n - len(missing)
    stats["computed"] += len(missing)
    if missing:
        rows = np.array(missing, np.int64)
        fresh = np.asarray(compute(rows), np.float64).reshape(len(rows), width)
        out[rows] = fresh
        for j, value in zip(missing, fresh):
            cache.put(ROWS_KIND, keys[j], np.ascontiguousarray(value, np.float64).tobytes())
    return out


def _row_keys(name, modules, params, digests, width) -> list[bytes]:
    prefix = memo_key(b"rows", name, code_fingerprint(tuple(modules)), params, width)
    return [prefix + bytes(d) for d in digests]


def read_rows(ctx, name: str, modules: tuple[str, ...], params, digests, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows :func:`kept_rows` kept for ``digests`` under ``params``, without computing any:
    ``(values (n, width) float64, found (n,) bool)``; rows not found are NaN."""
    cache = getattr(ctx.signatures, "cache", None)
    out = np.full((len(digests), width), np.nan)
    have = np.zeros(len(digests), bool)
    if cache is None or any(d is None for d in digests):
        return out, have
    keys = _row_keys(name, modules, params, digests, width)
    found = cache.get_many(ROWS_KIND, list(dict.fromkeys(keys)))
    for j, key in enumerate(keys):
        blob = found.get(key)
        if blob is not None and len(blob) == 8 * width:
            out[j] = np.frombuffer(blob, np.float64)
            have[j] = True
    return out, have
