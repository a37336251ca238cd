"""Hamming-radius search on 64-bit codes by multi-index hashing (Norouzi, Punjani & Fleet, 2012).

Each code is cut into ``m`` substrings. Two codes within Hamming distance ``r`` agree within
``r // m`` bits on at least one substring (pigeonhole), so probing every substring's buckets at
that small radius finds every true neighbour, and only those candidates get a full popcount.
Buckets are direct-address tables (a counting sort), so a probe is an array lookup. Work grows
with the number of codes and candidates, never with all pairs.

>>> import numpy as np
>>> train = np.array([0b1011, 0xFFFF, 0], dtype=np.uint64)
>>> query = np.array([0b1010, 0xFFFE], dtype=np.uint64)
>>> hamming_search(train, query, radius=1)
(array([0, 1]), array([0, 1]), array([1, 1], dtype=uint8))
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

BITS = 64


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64."""
    return np.bitwise_count(np.asarray(x, dtype=np.uint64)).astype(np.uint8)


def hamming_distance(a, b) -> np.ndarray:
    """Elementwise Hamming distance of two uint64 arrays (broadcasting)."""
    return popcount64(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


def _flip_masks(width: int, radius: int) -> np.ndarray:
    """All ``width``-bit masks with at most ``radius`` bits set (the probes of one substring)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << b for b in c) for c in combinations(range(width), r)]
    return np.array(masks, dtype=np.int64)


def best_substrings(n_codes: int, radius: int, max_width: int = 23) -> int:
    """The number of substrings that minimises probes x expected bucket size for ``radius``.

    Cost model: each query probes ``m * sum_{j<=r//m} C(w, j)`` buckets holding ``n / 2**w``
    codes each (uniform codes). Tables stay at most ``2**max_width`` entries.
    """
    from math import comb

    best, best_cost = None, np.inf
    for m in range(1, BITS + 1):
        width = int(np.ceil(BITS / m))
        if width > max_width:
            continue
        sub_r = radius // m
        n_probes = sum(comb(width, j) for j in range(min(sub_r, width) + 1))
        cost = m * n_probes * (1.0 + n_codes / 2.0 ** width)
        if cost < best_cost:
            best, best_cost = m, cost
    return int(best)


class MultiIndexHash:
    """An index of uint64 codes for radius queries.

    Parameters
    ----------
    codes : uint64 array of the indexed codes.
    n_substrings : how many pieces each code is cut into; None picks the cheapest for ``radius``
        (:func:`best_substrings`).
    radius : the radius the index will mostly be queried at (only used to pick ``n_substrings``).

    >>> import numpy as np
    >>> index = MultiIndexHash(np.array([1, 2, 3], dtype=np.uint64))
    >>> index.query(np.array([3], dtype=np.uint64), radius=1)[1]
    array([0, 1, 2])
    """

    def __init__(self, codes, n_substrings: int | None = None, radius: int = 8):
        self.codes = np.ascontiguousarray(np.asarray(codes, dtype=np.uint64).ravel())
        if n_substrings is None:
            n_substrings = best_substrings(len(self.codes), radius)
        self.m = int(n_substrings)
        if not 1 <= self.m <= BITS:
            raise ValueError(f"n_substrings must be between 1 and 64, got {n_substrings}")
        bounds = np.linspace(0, BITS, self.m + 1).round().astype(int)
        self.spans = [(int(a), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:])]
        self.tables = []
        for start, width in self.spans:
            keys = self._sub(self.codes, start, width)
            order = np.argsort(keys, kind="stable").astype(np.int64)
            counts = np.bincount(keys, minlength=1 << width)
            starts = np.zeros((1 << width) + 1, dtype=np.int64)
            np.cumsum(counts, out=starts[1:])
            self.tables.append((starts, order))

    @staticmethod
    def _sub(codes: np.ndarray, start: int, width: int) -> np.ndarray:
        return ((codes >> np.uint64(start)) & np.uint64((1 << width) - 1)).astype(np.int64)

    def query(self, queries, radius: int, chunk: int = 4096, progress: bool = False
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (query, indexed code) pair within ``radius`` bits.

        Returns ``(query_idx, index_idx, distance)`` sorted by query then index; each pair once.
        """
        from tqdm.auto import tqdm

        q = np.ascontiguousarray(np.asarray(queries, dtype=np.uint64).ravel())
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8))
        if len(q) == 0 or len(self.codes) == 0:
            return empty
        sub_r = radius // self.m
        probes = [_flip_masks(w, min(sub_r, w)) for _, w in self.spans]
        out_q, out_i, out_d = [], [], []
        steps = range(0, len(q), chunk)
        for lo in tqdm(steps, desc="hamming search", unit="chunk", disable=not progress, leave=False):
            qc = q[lo:lo + chunk]
            found_q, found_i = [], []
            for (start, width), (starts, order), masks in zip(self.spans, self.tables, probes):
                keys = (self._sub(qc, start, width)[:, None] ^ masks[None, :]).ravel()
                b_lo, b_hi = starts[keys], starts[keys + 1]
                sizes = b_hi - b_lo
                total = int(sizes.sum())
                if total == 0:
                    continue
                owner = np.repeat(np.repeat(np.arange(len(qc)), len(masks)), sizes)
                # position inside each bucket: running index minus the bucket's offset in the output
                offs = np.repeat(np.cumsum(sizes) - sizes, sizes)
                pos = np.repeat(b_lo, sizes) + (np.arange(total) - offs)
                found_q.append(owner)
                found_i.append(order[pos])
            if not found_q:
                continue
            fq = np.concatenate(found_q)
            fi = np.concatenate(found_i)
            d = hamming_distance(qc[fq], self.codes[fi])
            keep = d <= radius
            fq, fi, d = fq[keep], fi[keep], d[keep]
            # a pair found through several substrings is kept once
            key = fq.astype(np.int64) * len(self.codes) + fi
            key, first = np.unique(key, return_index=True)
            out_q.append(fq[first] + lo)
            out_i.append(fi[first])
            out_d.append(d[first])
        if not out_q:
            return empty
        return (np.concatenate(out_q).astype(np.int64), np.concatenate(out_i).astype(np.int64),
                np.concatenate(out_d).astype(np.uint8))


def hamming_search(index_codes, query_codes, radius: int, n_substrings: int | None = None,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of (query, index) uint64 codes within ``radius`` bits: ``(query_idx, index_idx, distance)``.

    Multi-index hashing: sub-quadratic; exact (every pair within the radius is returned).
    """
    return MultiIndexHash(index_codes, n_substrings, radius).query(query_codes, radius, progress=progress)


def hamming_search_bruteforce(index_codes, query_codes, radius: int, block: int = 1024):
    """All-pairs reference of :func:`hamming_search` (for tests and benchmarks): O(n * m)."""
    a = np.asarray(index_codes, dtype=np.uint64)
    q = np.asarray(query_codes, dtype=np.uint64)
    out_q, out_i, out_d = [], [], []
    for lo in range(0, len(q), block):
        d = hamming_distance(q[lo:lo + block, None], a[None, :])
        qi, ii = np.nonzero(d <= radius)
        out_q.append(qi + lo)
        out_i.append(ii)
        out_d.append(d[qi, ii])
    if not out_q:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
    return (np.concatenate(out_q).astype(np.int64), np.concatenate(out_i).astype(np.int64),
            np.concatenate(out_d).astype(np.uint8))
