"""The in-process LRU for hot queries (the first tier of the multi-tier cache; Redis holds
resource details in the service). Keys are normalized, so "Dark Knight" and "dark  knight"
share an entry. One cache belongs to one index: a rebuilt index gets a fresh cache."""

from __future__ import annotations

from collections import OrderedDict

from content_service.engine.index import Hit, SearchIndex
from content_service.engine.normalize import normalize_key


class CachedSearch:
    def __init__(self, index: SearchIndex, maxsize: int = 50_000):
        self.index = index
        self.maxsize = maxsize
        self._lru: OrderedDict[tuple, list[Hit]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def search(
        self, query: str, mode: str = "auto", limit: int = 10, types: tuple[str, ...] | list[str] | None = None
    ) -> list[Hit]:
        key = (normalize_key(query)[0], mode, limit, tuple(sorted(types)) if types else ())
        lru = self._lru
        found = lru.get(key)
        if found is not None:
            lru.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        found = self.index.search(query, mode, limit, types)
        lru[key] = found
        if len(lru) > self.maxsize:
            lru.popitem(last=False)
        return found

    def stats(self) -> dict:
        return {"size": len(self._lru), "maxsize": self.maxsize, "hits": self.hits, "misses": self.misses}
