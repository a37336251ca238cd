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


def test_text_chunk_rows_give_back_what_each_texts_row_gives():
    from leakguard.signatures.compute import _decode_chunk, _encode_chunk, from_bytes, to_bytes

    values = [np.arange(12, dtype=np.uint8).reshape(3, 4), np.array(5, np.uint64), np.array(True),
              np.zeros(0, np.float32), np.arange(3, dtype=">i4"), np.array([b"ab", b"cd"], dtype="S8"),
              b"raw|bytes", b"", np.arange(7, dtype=np.uint64)]
    got = _decode_chunk(_encode_chunk(values), len(values))
    for value, back in zip(values, got):
        ref = from_bytes(to_bytes(value))
        assert type(back) is type(ref)
        if isinstance(ref, bytes):
            assert back == ref
        else:
            assert (back.dtype, back.shape, back.flags.writeable) == (ref.dtype, ref.shape, ref.flags.writeable)
            assert np.array_equal(back, ref)
    assert _decode_chunk(_encode_chunk(values), len(values) + 1) is None  # another chunk size: a miss
    assert _decode_chunk(_encode_chunk(values)[:-1], len(values)) is None


def test_a_text_reaudit_reads_whole_chunks_and_keys_only_the_other_texts(tmp_path, monkeypatch):
    """In-memory texts: a re-audit reads unchanged chunks of 256 texts in one row per kind, without
    keying each text; texts outside them (the tail, added ones) are keyed and read per text. The values
    equal a computation without cache."""
    import leakguard.signatures.text  # noqa: F401  (registers the text signatures)
    from leakguard.signatures import compute
    from leakguard.signatures.compute import SignatureStore
    from leakguard.splits import build_splits

    rng = np.random.default_rng(3)
    words = ["leak", "guard", "train", "test", "split", "copy", "text", "model", "data", "word"]
    texts = [" ".join(rng.choice(words, size=12)) + f" {i}" for i in range(700)]
    kinds = {"minhash", "digest"}

    def signatures(train, cache_dir):
        sp = build_splits({"train": train, "val": texts[:20]}, modality="text")
        cache = SignatureCache(cache_dir) if cache_dir else None
        store = SignatureStore(sp, cache, False)
        store.ensure(kinds)
        if cache is not None:
            cache.close()
        return {k: store.get("train", k) for k in kinds}

    keyed = []
    real_key = compute._item_key
    monkeypatch.setattr(compute, "_item_key", lambda item: keyed.append(item) or real_key(item))
    first = signatures(texts[:600], tmp_path)
    assert len(keyed) == 600 + 20
    for name, train, n_keyed in (("same", texts[:600], 600 - 512 + 20), ("grown", texts + ["an added text"], 701 - 512 + 20)):
        keyed.clear()
        got = signatures(train, tmp_path)
        assert len(keyed) == n_keyed, name  # fails without the chunk rows: every text keyed
        want = signatures(train, None)
        for k in kinds:
            assert len(got[k]) == len(want[k]) == len(train)
            assert all(np.array_equal(g, w) if not isinstance(w, bytes) else g == w for g, w in zip(got[k], want[k]))
    assert all(np.array_equal(g, w) for g, w in zip(first["minhash"], got["minhash"][:600]))


def test_a_large_value_is_kept_in_a_file_of_its_own_and_read_back_whole(tmp_path):
    import sqlite3

    from leakguard.signatures.cache import FILE_MIN_BYTES

    rng = np.random.default_rng(5)
    big, small = rng.bytes(FILE_MIN_BYTES + 3), rng.bytes(100)
    cache = SignatureCache(tmp_path)
    cache.put("text/semantic-matrix/1", b"k" * 16, big)
    cache.put("text/semantic-matrix/1", b"s" * 16, small)
    assert cache.get_many("text/semantic-matrix/1", [b"k" * 16]) == {b"k" * 16: big}  # before the flush too
    cache.close()
    with sqlite3.connect(tmp_path / "signatures.sqlite") as db:
        sizes = dict(db.execute("SELECT key, length(value) FROM sig").fetchall())
    assert sizes[b"s" * 16] == 100 and sizes[b"k" * 16] < 100  # fails without: the row held the value
    assert [f.stat().st_size for f in (tmp_path / "blobs").iterdir()] == [len(big)]
    cache = SignatureCache(tmp_path)
    assert cache.get_many("text/semantic-matrix/1", [b"k" * 16, b"s" * 16]) == {b"k" * 16: big, b"s" * 16: small}
    assert cache.get_many("text/semantic-matrix/1", [b"k" * 16]) == {b"k" * 16: big}
    # its file gone (a user cleaning up): a miss, not an error
    for f in (tmp_path / "blobs").iterdir():
        f.unlink()
    assert cache.get_many("text/semantic-matrix/1", [b"k" * 16]) == {}
    assert cache.misses == 1
