"""uvicorn content_service.main:app

Search and resources over the embedded store: start-up opens the store (CONTENT_DATA_DIR) and
loads the index snapshot without calling TMDB; an empty store is seeded (CONTENT_SEED). The TMDB
sync runs on POST /admin/sync and every SYNC_INTERVAL_SECONDS when TMDB_API_KEY is set.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from fastapi import FastAPI

from content_service.routers import admin, resources, search
from content_service.service import ContentCatalog
from content_service.settings import Settings
from content_service.sync.runner import SyncRunner, refresh_loop, schedule_loop
from content_service.sync.tmdb import TMDBClient
from content_service.sync.tvdb import TVDBClient
from shared.app import create_app, lazy_app
from shared.settings import load_settings
from shared.tasks import cancel_and_wait

log = logging.getLogger("content_service")


async def close_catalog(catalog: ContentCatalog, timeout: float = 10.0) -> None:
    """Close the store off the event loop, bounded: LMDB's close blocks while anything in the
    process still holds the environment (seen once in a test that ran two lifespans of one app
    over one data directory), and a shutdown must not hang on it. A daemon thread, so a close that
    never returns cannot hold the process at exit either; the OS releases the map and its lock."""
    done = threading.Event()

    def run() -> None:
        try:
            catalog.close()
        finally:
            done.set()

    threading.Thread(target=run, name="content-store-close", daemon=True).start()
    if not await asyncio.to_thread(done.wait, timeout):
        log.error("content store did not close within %.0f s; leaving it to process exit", timeout)


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)

    async def startup(app: FastAPI) -> None:
        catalog = ContentCatalog(settings.content_data_dir, map_size_gb=settings.content_store_map_size_gb)
        what = await asyncio.to_thread(catalog.open, settings.content_seed)
        app.state.catalog = catalog
        log.info(
            "content store open",
            extra={"index": what, "names": len(catalog.index), "entities": catalog.store.count_entities()},
        )
        app.state.tmdb_factory = None
        app.state.sync_runner = None
        app.state.sync_schedule = None
        app.state.index_refresh = None
        if settings.index_refresh_seconds > 0:
            app.state.index_refresh = asyncio.create_task(
                refresh_loop(catalog, settings.index_refresh_seconds), name="content-index-refresh"
            )
        if settings.tmdb_api_key:

            def tmdb_factory() -> TMDBClient:
                return TMDBClient(
                    settings.tmdb_base_url,
                    settings.tmdb_api_key,
                    timeout=settings.tmdb_timeout_seconds,
                    max_retries=settings.tmdb_max_retries,
                    store=catalog.store,
                )

            tvdb_factory = None
            if settings.tvdb_api_key:

                def tvdb_factory() -> TVDBClient:
                    return TVDBClient(
                        settings.tvdb_base_url,
                        settings.tvdb_api_key,
                        settings.tvdb_pin,
                        timeout=settings.tmdb_timeout_seconds,
                    )

            runner = SyncRunner(
                catalog,
                tmdb_factory,
                popular_pages=settings.sync_popular_pages,
                trending=settings.sync_trending,
                people_per_title=settings.sync_people_per_title,
                max_age_seconds=settings.sync_details_max_age_seconds,
                tvdb_factory=tvdb_factory,
            )
            app.state.tmdb_factory = tmdb_factory
            app.state.sync_runner = runner
            if settings.sync_on_start or runner.store.get_meta("sync:checkpoint"):
                runner.start("startup")  # a fresh start, or resume an interrupted run
            if settings.sync_interval_seconds > 0:
                app.state.sync_schedule = asyncio.create_task(
                    schedule_loop(runner, settings.sync_interval_seconds), name="content-sync-schedule"
                )
        else:
            log.warning("TMDB_API_KEY not set: no TMDB sync; serving the store as it is")

    async def shutdown(app: FastAPI) -> None:
        for name in ("sync_schedule", "index_refresh"):
            task = getattr(app.state, name, None)
            await cancel_and_wait(task)
        runner = getattr(app.state, "sync_runner", None)
        if runner is not None and runner.running:
            await cancel_and_wait(runner.task)  # the checkpoint lets the next start resume it
        catalog = getattr(app.state, "catalog", None)
        if catalog is not None:
            await close_catalog(catalog)

    legacy = ["/api/search", "/api"]
    return create_app(
        service="content",
        settings=settings,
        routers=[search.router, resources.router, admin.router],
        # the hot search routes first, lean (see routers/search.py); the shared middleware still wraps them
        first_routes=search.lean_routes(["", *legacy]),
        legacy_prefixes=legacy,
        use_database=False,
        outbox=False,
        on_startup=[startup],
        on_shutdown=[shutdown],
    )


__getattr__ = lazy_app(build_app)
