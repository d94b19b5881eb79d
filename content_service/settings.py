"""The content service's settings: everything ServiceSettings reads, plus its own."""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "content"
    port: int = 8003
    # Content keeps no SQL database (its data is the embedded store below); the shared core
    # database URL is accepted like everywhere else but not required.
    database_url: str = ""
    # Autocomplete fires on every keystroke: a higher default than the fleet's 100/min.
    rate_limit_per_minute: int = 1200

    # The embedded store (LMDB): a Dokku storage mount in production.
    content_data_dir: str = ".data/content"
    content_store_map_size_gb: int = 32
    # What an empty store starts with: "real" (the hand-made real set), "synthetic:N"
    # (the generator, N names), or "none" (wait for a sync).
    content_seed: str = "real"

    # TMDB / TVDB through httpx; the base URLs point at the sandbox in tests and the keyless run.
    tmdb_base_url: str = "https://api.themoviedb.org/3"
    tmdb_api_key: str | None = None
    tmdb_timeout_seconds: float = 10.0
    tmdb_max_retries: int = 5
    tvdb_base_url: str = "https://api4.thetvdb.com/v4"
    tvdb_api_key: str | None = None
    tvdb_pin: str | None = None

    # Sync: what a run fetches, and the schedule (0 = no scheduled runs).
    sync_popular_pages: int = 5
    sync_trending: bool = True
    sync_people_per_title: int = 5
    sync_interval_seconds: int = 6 * 3600
    sync_on_start: bool = False
    sync_details_max_age_seconds: int = 7 * 24 * 3600  # incremental: fresher details are kept

    # Caches: the in-process LRU for hot queries, Redis for resource details.
    search_cache_size: int = 50_000
    resource_cache_ttl_seconds: int = 3600

    # Result counts for /autocomplete and /search: the default when `limit` is not given, and the
    # largest accepted (more is a 422).
    autocomplete_default_limit: int = Field(default=10, ge=1)
    search_default_limit: int = Field(default=20, ge=1)
    search_max_limit: int = Field(default=50, ge=1)
    # Every worker/instance on one store picks up a snapshot another one built (0 = never).
    index_refresh_seconds: float = 15.0

    @model_validator(mode="after")
    def _defaults_within_the_maximum(self):
        for name in ("autocomplete_default_limit", "search_default_limit"):
            if getattr(self, name) > self.search_max_limit:
                raise ValueError(
                    f"{name.upper()} ({getattr(self, name)}) is above SEARCH_MAX_LIMIT ({self.search_max_limit})"
                )
        return self
