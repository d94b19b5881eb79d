"""The content service's search engine: pure library code (no web framework).

from content_service.engine import SearchIndex, EntityNames, Store
idx = SearchIndex.build([EntityNames("movie:155", "movie", 95.0, ["The Dark Knight"])])
idx.search("dark knigt", mode="auto", limit=10)
"""

from content_service.engine.cache import CachedSearch
from content_service.engine.index import KINDS, MODES, TYPES, EntityNames, Hit, SearchIndex
from content_service.engine.normalize import normalize
from content_service.engine.store import CACHE_TTL_SECONDS, Store

__all__ = [
    "CachedSearch",
    "KINDS",
    "MODES",
    "TYPES",
    "EntityNames",
    "Hit",
    "SearchIndex",
    "normalize",
    "Store",
    "CACHE_TTL_SECONDS",
]
