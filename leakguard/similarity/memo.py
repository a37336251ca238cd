"""What a check worked out from a split, kept between audits in the signature cache (``AuditConfig(cache_dir=...)``).

A calibration (a threshold from the training split's own nearest neighbours, boilerplate levels,
a gate) is a function of the whole training split, of the check's options and of the code that
computes it. :func:`kept_value` keeps it under all three: the content digests of the split's
samples in order, the options (``repr``), and a fingerprint of the *source* of the modules that
compute it plus the versions of numpy / scikit-learn / FAISS / OpenCV -- so an edit of the check
invalidates what was kept without anyone bumping a version, and a re-audit whose training split is
unchanged (the same data again, or new evaluation data only) reads the value back instead of
recomputing it. The value is exactly what the computation returned (JSON: floats round-trip), so
findings are the same with and without the cache. A training split with any change -- one sample
added -- is another key: computed again.

>>> min_run = kept_value(ctx, "text/partial/min_run", digests, {"fpr": 0.01}, ("leakguard.similarity.text",),
...                     lambda: calibrate())                                        # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

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
        h.update(name.encode() + b"\x00" + inspect.getsource(importlib.import_module(name)).encode())
    for lib in ("numpy", "scipy", "sklearn", "faiss", "cv2", "PIL"):
        try:
            h.update(f"{lib}={importlib.import_module(lib).__version__}".encode())
        except ImportError:
            h.update(f"{lib}=absent".encode())
    return h.digest()


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


def kept_value(ctx, name: str, digests, params, modules: tuple[str, ...], compute):
    """``compute()`` -- a JSON-able value -- or what it returned in an earlier audit for the same
    samples (``digests``, in order), ``params`` and code (``modules``). Without a cache, or when a
    sample has no digest, ``compute()`` runs."""
    cache = getattr(ctx.signatures, "cache", None)
    content = split_key(digests) if cache is not None else None
    if content is None:
        return compute()
    key = memo_key(name, code_fingerprint(tuple(modules)), content, params)
    blob = cache.get_many(KIND, [key]).get(key)
    if blob is not None:
        try:
            value = json.loads(blob.decode())
        except ValueError:  # an unreadable entry is a miss
            value = None
        else:
            memo_stats(ctx)[name] = "read back"
            return value
    value = compute()
    memo_stats(ctx)[name] = "computed"
    try:
        cache.put(KIND, key, json.dumps(value).encode())
    except (TypeError, ValueError):  # not JSON (numpy integers, NaN...): not kept, still returned
        pass
    return value
