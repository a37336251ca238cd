"""On-disk cache of per-sample signatures, keyed by the sample's content (sqlite, one file)."""
from __future__ import annotations

import sqlite3
from pathlib import Path


class SignatureCache:
    """Signatures by (kind, version, content key). A second audit reads only new samples.

    >>> cache = SignatureCache(".leakguard-cache")   # doctest: +SKIP
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "signatures.sqlite"
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS sig (kind TEXT, key BLOB, value BLOB, "
                         "PRIMARY KEY (kind, key)) WITHOUT ROWID")
        self._pending: list[tuple[str, bytes, bytes]] = []
        self.hits = 0
        self.misses = 0

    def get_many(self, kind: str, keys: list[bytes]) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            q = f"SELECT key, value FROM sig WHERE kind=? AND key IN ({','.join('?' * len(chunk))})"
            out.update(self._db.execute(q, [kind, *chunk]).fetchall())
        self.hits += len(out)
        self.misses += len(keys) - len(out)
        return out

    def put(self, kind: str, key: bytes, value: bytes) -> None:
        self._pending.append((kind, key, value))
        if len(self._pending) >= 2000:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO sig VALUES (?, ?, ?)", self._pending)
            self._pending.clear()

    def close(self) -> None:
        self.flush()
        self._db.close()
