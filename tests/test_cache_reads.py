"""How the signature cache reads many rows at once (leakguard/signatures/cache.py): the values are the
ones written, whatever else the cache holds, and a re-audit's large requests cost few sqlite reads."""
from __future__ import annotations

import numpy as np

from leakguard.signatures.cache import SCAN_ROWS_PER_KEY, SignatureCache


def _statements(cache: SignatureCache) -> list[str]:
    seen: list[str] = []
    cache._db.set_trace_callback(seen.append)
    return seen


def _rows(rng, n: int, tag: bytes) -> dict[bytes, bytes]:
    return {rng.bytes(16): tag + rng.bytes(int(rng.integers(0, 64))) for _ in range(n)}


def test_a_large_request_reads_the_kinds_rows_in_one_pass_and_gets_each_value(tmp_path):
    rng = np.random.default_rng(0)
    cache = SignatureCache(tmp_path)
    mine, other_kind = _rows(rng, 2000, b"m"), _rows(rng, 3000, b"o")
    for k, v in mine.items():
        cache.put("text/minhash/1", k, v)
    for k, v in other_kind.items():
        cache.put("text/shingles/1", k, v)
    cache.close()
    cache = SignatureCache(tmp_path)
    asked = list(mine)[::-1] + [rng.bytes(16) for _ in range(5)]  # and 5 keys never written
    statements = _statements(cache)
    got = cache.get_many("text/minhash/1", asked)
    assert got == mine
    assert (cache.hits, cache.misses) == (2000, 5)
    # one pass over the kind's rows; key look-ups took 4 queries of 500 keys
    assert len([s for s in statements if s.startswith("SELECT")]) == 1


def test_a_request_among_many_other_rows_of_its_kind_stops_reading_and_looks_the_rest_up(tmp_path):
    rng = np.random.default_rng(1)
    cache = SignatureCache(tmp_path)
    others = _rows(rng, 5000, b"o")  # another dataset's signatures of the same kind
    mine = _rows(rng, 100, b"m")
    for k, v in {**others, **mine}.items():
        cache.put("image/phash/1", k, v)
    cache.flush()
    statements = _statements(cache)
    asked = list(mine) + [rng.bytes(16)]
    assert cache.get_many("image/phash/1", asked) == mine
    selects = [s for s in statements if s.startswith("SELECT")]
    assert len(selects) == 2  # the bounded pass, then the keys it did not reach
    assert "IN (" in selects[1] and "IN (" not in selects[0]
    # and a request that is a small share of its kind is not worth a pass: looked up directly
    statements.clear()
    few = list(mine)[:10]
    assert cache.get_many("image/phash/1", few) == {k: mine[k] for k in few}
    assert len([s for s in statements if s.startswith("SELECT")]) == 1
    assert SCAN_ROWS_PER_KEY * 101 < 5100  # the bound the first request ran into


def test_unflushed_writes_and_stored_rows_are_read_together(tmp_path):
    rng = np.random.default_rng(2)
    cache = SignatureCache(tmp_path)
    stored, pending = _rows(rng, 300, b"s"), _rows(rng, 50, b"p")
    for k, v in stored.items():
        cache.put("text/digest/2", k, v)
    cache.flush()
    for k, v in pending.items():
        cache.put("text/digest/2", k, v)
    assert cache.get_many("text/digest/2", list(stored) + list(pending)) == {**stored, **pending}
