"""The embedded on-disk key-value store (the BadgerDB role): LMDB through py-lmdb.

Sub-databases:
  entities    entity key ("movie:155") -> JSON record
  index       the serialized search index snapshot (named blobs) and the version it was built at
  tmdb_cache  request key -> {"at": unix time, "body": ...}; entries older than 7 days are misses
  briefs      entity key -> the few fields a search result shows (no cast lists)
  meta        sync checkpoints, schedule state, entity version counter

LMDB is a memory-mapped B+tree: reads are lock-free and cost microseconds, one writer at a time,
crash-safe (copy-on-write pages), one file on the storage mount. A restart reads the entities
and the index snapshot from it without calling TMDB.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import lmdb
import orjson

CACHE_TTL_SECONDS = 7 * 24 * 3600
DEFAULT_MAP_SIZE = 32 * 2**30  # address space only; the file grows as data is written


BRIEF_FIELDS = (
    "key",
    "type",
    "id",
    "name",
    "year",
    "is_anime",
    "is_cartoon",
    "title",
    "title_name",
    "actor",
    "person",
    "known_for_department",
    "popularity",
    "poster_path",
    "profile_path",
)


def brief(rec: dict) -> dict:
    """An entity's summary: what a search result shows next to the matched name."""
    return {f: rec[f] for f in BRIEF_FIELDS if rec.get(f) is not None}


class Store:
    def __init__(self, path: str | Path, map_size: int = DEFAULT_MAP_SIZE, readonly: bool = False):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(
            str(self.path), map_size=map_size, max_dbs=8, readonly=readonly, readahead=False, metasync=False, lock=True
        )
        self._entities = self.env.open_db(b"entities")
        self._index = self.env.open_db(b"index")
        self._cache = self.env.open_db(b"tmdb_cache")
        self._meta = self.env.open_db(b"meta")
        self._briefs = self.env.open_db(b"briefs")

    def close(self) -> None:
        self.env.close()

    # -- entities
    def put_entities(self, records: Iterable[dict], batch: int = 20_000) -> int:
        """Insert or replace records (by their "key"); bumps the entity version."""
        n = 0
        it = iter(records)
        while True:
            chunk = []
            for rec in it:
                chunk.append(rec)
                if len(chunk) >= batch:
                    break
            if not chunk:
                break
            with self.env.begin(write=True, db=self._entities) as txn:
                for rec in chunk:
                    k = rec["key"].encode()
                    txn.put(k, orjson.dumps(rec))
                    txn.put(k, orjson.dumps(brief(rec)), db=self._briefs)
            n += len(chunk)
            if len(chunk) < batch:
                break
        if n:
            self._bump_version()
        return n

    def delete_entities(self, keys: Iterable[str]) -> int:
        n = 0
        with self.env.begin(write=True, db=self._entities) as txn:
            for k in keys:
                n += bool(txn.delete(k.encode()))
                txn.delete(k.encode(), db=self._briefs)
        if n:
            self._bump_version()
        return n

    def get_entity(self, key: str) -> dict | None:
        with self.env.begin(db=self._entities) as txn:
            raw = txn.get(key.encode())
        return orjson.loads(raw) if raw is not None else None

    def get_entities(self, keys: Iterable[str]) -> dict[str, dict]:
        out = {}
        with self.env.begin(db=self._entities) as txn:
            for k in keys:
                raw = txn.get(k.encode())
                if raw is not None:
                    out[k] = orjson.loads(raw)
        return out

    def ensure_briefs(self) -> int:
        """Backfill the briefs of a store written before they existed; returns how many."""
        with self.env.begin(db=self._briefs) as txn:
            if txn.stat(self._briefs)["entries"] or not self.count_entities():
                return 0
        n = 0
        batch = []
        for rec in self.iter_entities():
            batch.append((rec["key"].encode(), orjson.dumps(brief(rec))))
            if len(batch) >= 20_000:
                n += self._put_briefs(batch)
                batch = []
        return n + self._put_briefs(batch)

    def _put_briefs(self, items) -> int:
        with self.env.begin(write=True, db=self._briefs) as txn:
            for k, v in items:
                txn.put(k, v)
        return len(items)

    def get_briefs(self, keys: Iterable[str]) -> dict[str, dict]:
        """The few fields search results show (see brief()), without the cast lists."""
        out = {}
        with self.env.begin(db=self._briefs) as txn:
            for k in keys:
                raw = txn.get(k.encode())
                if raw is not None:
                    out[k] = orjson.loads(raw)
        return out

    def iter_entities(self, prefix: str = "") -> Iterator[dict]:
        p = prefix.encode()
        with self.env.begin(db=self._entities) as txn:
            cur = txn.cursor()
            if p:
                if not cur.set_range(p):
                    return
            else:
                if not cur.first():
                    return
            for k, v in cur:
                if p and not k.startswith(p):
                    break
                yield orjson.loads(v)

    def count_entities(self) -> int:
        with self.env.begin(db=self._entities) as txn:
            return txn.stat(self._entities)["entries"]

    def entity_version(self) -> int:
        return int(self.get_meta("entity_version", 0))

    def _bump_version(self) -> None:
        with self.env.begin(write=True, db=self._meta) as txn:
            raw = txn.get(b"entity_version")
            v = int(orjson.loads(raw)) + 1 if raw else 1
            txn.put(b"entity_version", orjson.dumps(v))

    # -- index snapshot
    def save_index(self, blobs: dict[str, bytes], version: int | None = None) -> None:
        version = self.entity_version() if version is None else version
        with self.env.begin(write=True, db=self._index) as txn:
            txn.drop(self._index, delete=False)
            for name, data in blobs.items():
                txn.put(b"blob:" + name.encode(), data)
            txn.put(b"version", orjson.dumps(version))

    def index_version(self) -> int | None:
        """The entity version the stored snapshot was built at (None: no snapshot)."""
        with self.env.begin(db=self._index) as txn:
            raw = txn.get(b"version")
        return int(orjson.loads(raw)) if raw is not None else None

    def load_index(self) -> tuple[dict[str, bytes], int] | None:
        """(blobs, the entity version they were built at), or None if there is no snapshot."""
        with self.env.begin(db=self._index) as txn:
            raw_v = txn.get(b"version")
            if raw_v is None:
                return None
            blobs = {}
            cur = txn.cursor()
            if cur.set_range(b"blob:"):
                for k, v in cur:
                    if not k.startswith(b"blob:"):
                        break
                    blobs[k[5:].decode()] = bytes(v)
        return blobs, int(orjson.loads(raw_v))

    # -- TMDB cache (7-day TTL)
    def cache_get(self, key: str, now: float | None = None, ttl: float = CACHE_TTL_SECONDS):
        with self.env.begin(db=self._cache) as txn:
            raw = txn.get(key.encode())
        if raw is None:
            return None
        entry = orjson.loads(raw)
        if (now if now is not None else time.time()) - entry["at"] > ttl:
            return None
        return entry["body"]

    def cache_put(self, key: str, body, now: float | None = None) -> None:
        entry = {"at": now if now is not None else time.time(), "body": body}
        with self.env.begin(write=True, db=self._cache) as txn:
            txn.put(key.encode(), orjson.dumps(entry))

    def cache_purge(self, now: float | None = None, ttl: float = CACHE_TTL_SECONDS) -> int:
        """Delete expired cache entries; returns how many."""
        now = now if now is not None else time.time()
        n = 0
        with self.env.begin(write=True, db=self._cache) as txn:
            cur = txn.cursor()
            for k, v in list(cur):
                if now - orjson.loads(v)["at"] > ttl:
                    txn.delete(k)
                    n += 1
        return n

    # -- meta (checkpoints)
    def get_meta(self, key: str, default=None):
        with self.env.begin(db=self._meta) as txn:
            raw = txn.get(key.encode())
        return orjson.loads(raw) if raw is not None else default

    def put_meta(self, key: str, value) -> None:
        with self.env.begin(write=True, db=self._meta) as txn:
            txn.put(key.encode(), orjson.dumps(value))

    def delete_meta(self, key: str) -> None:
        with self.env.begin(write=True, db=self._meta) as txn:
            txn.delete(key.encode())
