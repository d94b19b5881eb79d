"""The content service's domain layer: the catalogue of titles, people and characters (the embedded
store, the search index built from it) and the queries the routes need. All calls here are
synchronous and short (LMDB reads are memory-mapped B-tree lookups, microseconds); index
(re)builds run in a worker thread and swap in atomically.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from pathlib import Path

from content_service.corpus import generate, names_of
from content_service.corpus.real import real_records
from content_service.engine import EntityNames, SearchIndex, Store

log = logging.getLogger("content_service.catalog")

TITLE_TYPES = ("movie", "tv")
BRIEF_CACHE = 50_000


def entity_names(records) -> list[EntityNames]:
    return [EntityNames(r["key"], r["type"], float(r.get("popularity") or 0.0), names_of(r)) for r in records]


class ContentCatalog:
    def __init__(self, data_dir: str | Path, *, map_size_gb: int = 32):
        self.store = Store(Path(data_dir) / "store", map_size=map_size_gb * 2**30)
        self.index = SearchIndex.build([])
        self.index_version = -1
        self.index_built_at: float | None = None
        self.last_build_seconds: float | None = None
        self._build_lock = threading.Lock()
        self._briefs: dict[str, dict] = {}

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ lifecycle
    def open(self, seed: str = "real") -> str:
        """Load the index: the snapshot when it matches the entities, else rebuild. An empty
        store is seeded first. Returns what happened ("snapshot", "rebuilt", "seeded", "empty")."""
        what = "snapshot"
        self.store.ensure_briefs()
        if self.store.count_entities() == 0:
            if seed == "none":
                return "empty"
            self.store.put_entities(self._seed_records(seed))
            what = "seeded"
        loaded = self.store.load_index()
        if loaded is not None and loaded[1] == self.store.entity_version():
            blobs, version = loaded
            self._swap(SearchIndex.from_snapshot(blobs), version)
            return what
        self.rebuild()
        return "rebuilt" if what == "snapshot" else what

    @staticmethod
    def _seed_records(seed: str):
        if seed == "real":
            return real_records()
        if seed.startswith("synthetic:"):
            return generate(int(seed.split(":", 1)[1]))
        raise ValueError(f"unknown CONTENT_SEED {seed!r}: real, synthetic:N or none")

    def rebuild(self) -> None:
        """Build the index from every entity in the store, save the snapshot, swap it in."""
        with self._build_lock:
            started = time.perf_counter()
            version = self.store.entity_version()
            index = SearchIndex.build(entity_names(self.store.iter_entities()))
            self.store.save_index(index.to_snapshot(), version)
            self._swap(index, version)
            self.last_build_seconds = time.perf_counter() - started
            log.info("search index built", extra={"names": len(index), "seconds": round(self.last_build_seconds, 2)})

    def refresh(self) -> bool:
        """Load a newer snapshot written by another process (another worker or instance on
        the same store, after its sync); True if one was loaded."""
        stored = self.store.index_version()
        if stored is None or stored <= self.index_version or self._build_lock.locked():
            return False
        with self._build_lock:
            loaded = self.store.load_index()
            if loaded is None or loaded[1] <= self.index_version:
                return False
            self._swap(SearchIndex.from_snapshot(loaded[0]), loaded[1])
        log.info("search index reloaded", extra={"version": self.index_version})
        return True

    def _swap(self, index: SearchIndex, version: int) -> None:
        self._briefs = {}
        self.index = index
        self.index_version = version
        self.index_built_at = time.time()
        _warm_up(index)
        gc.collect()
        gc.freeze()  # the index's objects never need scanning: keeps GC pauses out of p99

    @property
    def stale(self) -> bool:
        return self.index_version != self.store.entity_version()

    # ------------------------------------------------------------------ reads
    def entity(self, key: str) -> dict | None:
        return self.store.get_entity(key)

    def entities(self, keys) -> dict[str, dict]:
        return self.store.get_entities(keys)

    def briefs(self, keys) -> dict[str, dict]:
        """Result context by entity key, through a small in-process cache (popular entities
        come back in many different queries); cleared with every index swap."""
        cache = self._briefs
        out = {}
        missing = []
        for k in keys:
            b = cache.get(k)
            if b is None:
                missing.append(k)
            else:
                out[k] = b
        if missing:
            found = self.store.get_briefs(missing)
            if len(cache) + len(found) > BRIEF_CACHE:
                cache.clear()
            cache.update(found)
            out.update(found)
        return out

    def title(self, kind: str, tmdb_id: int) -> dict | None:
        """A movie or series with its cast resolved (people and characters)."""
        rec = self.store.get_entity(f"{kind}:{tmdb_id}")
        if rec is None:
            return None
        cast = rec.get("cast") or []
        linked = self.store.get_entities(
            [c["person"] for c in cast if c.get("person")] + [c["character"] for c in cast if c.get("character")]
        )
        out_cast = []
        for c in sorted(cast, key=lambda c: c.get("order", 0)):
            person = linked.get(c.get("person") or "")
            char = linked.get(c.get("character") or "")
            out_cast.append(
                {
                    "order": c.get("order", 0),
                    "credit": c.get("credit"),
                    "character": _brief(char) if char else None,
                    "person": _brief(person)
                    if person
                    else ({"id": c["person"], "name": c.get("person_name")} if c.get("person") else None),
                }
            )
        body = {k: v for k, v in rec.items() if k != "cast"}
        body["cast"] = out_cast
        body["characters"] = [x["character"] for x in out_cast if x["character"]]
        return body

    def filmography(self, person_id: int) -> dict | None:
        person = self.store.get_entity(f"person:{person_id}")
        if person is None:
            return None
        credits = person.get("credits") or []
        titles = self.store.get_entities({c["title"] for c in credits if c.get("title")})
        chars = self.store.get_entities([c["character"] for c in credits if c.get("character")])
        rows = []
        for c in credits:
            t = titles.get(c.get("title") or "")
            rows.append(
                {
                    "title": _brief(t) if t else {"id": c.get("title"), "name": c.get("title_name")},
                    "credit": c.get("credit"),
                    "character": _brief(chars[c["character"]]) if c.get("character") in chars else None,
                    "year": (t or {}).get("year") or c.get("year"),
                }
            )
        rows.sort(key=lambda r: (-(r["year"] or 0), r["title"].get("name") or ""))
        return {"person": {k: v for k, v in person.items() if k != "credits"}, "filmography": rows}

    def characters_of(self, title_key: str) -> list[dict] | None:
        rec = self.store.get_entity(title_key)
        if rec is None:
            return None
        cast = sorted(rec.get("cast") or [], key=lambda c: c.get("order", 0))
        found = self.store.get_entities([c["character"] for c in cast if c.get("character")])
        return [found[c["character"]] for c in cast if c.get("character") in found]

    def popular(self, types: list[str] | None, limit: int, flags: str | None = None) -> list[dict]:
        """Most popular entities; flags "anime"/"cartoon" filter series."""
        want = limit * 8 if flags else limit
        rows = self.index.popular(types, want)
        recs = self.store.get_briefs([k for k, _, _ in rows])
        out = []
        for key, _, _ in rows:
            r = recs.get(key)
            if r is None:
                continue
            if flags == "anime" and not r.get("is_anime"):
                continue
            if flags == "cartoon" and not r.get("is_cartoon"):
                continue
            out.append(r)
            if len(out) >= limit:
                break
        return out


def _warm_up(index: SearchIndex) -> None:
    """First calls pay one-time costs (code paths, first touches of the arrays): pay them here,
    not in a user's request."""
    for q in ("the", "dark knigth", "a b", "zzqx", "mister gam", "queen alvar", "ght"):
        for mode in ("auto", "fuzzy", "substring", "exact", "prefix"):
            try:
                index.search(q, mode, 10)
            except Exception:  # an empty index, say: warming up must never stop a start
                pass


def _brief(rec: dict) -> dict:
    """The few fields a linked entity shows inside another one."""
    out = {"id": rec["key"], "type": rec["type"], "name": rec.get("name")}
    for f in (
        "year",
        "popularity",
        "is_anime",
        "is_cartoon",
        "poster_path",
        "profile_path",
        "title",
        "title_name",
        "person",
        "actor",
    ):
        if rec.get(f) is not None:
            out[f] = rec[f]
    return out
