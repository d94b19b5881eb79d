"""uvicorn media_service.main:app"""

from fastapi import FastAPI

from media_service.events import handlers
from media_service.routers import audio, images
from media_service.service import MediaService
from media_service.settings import Settings
from media_service.storage import BlobStore
from shared import fleet
from shared.app import create_app, lazy_app
from shared.settings import load_settings

SERVICE = fleet.get("media")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)

    async def startup(app: FastAPI) -> None:
        store = BlobStore(
            settings.azure_storage_connection_string,
            settings.azure_storage_container,
            sas_ttl_seconds=settings.media_sas_ttl_seconds,
        )
        app.state.blobs = store
        await store.ensure_container()
        app.state.media = MediaService(settings, app.state.db, store)
        app.state.media.start()

    async def shutdown(app: FastAPI) -> None:
        if getattr(app.state, "media", None) is not None:
            await app.state.media.close()
        if getattr(app.state, "blobs", None) is not None:
            await app.state.blobs.close()

    return create_app(
        service=SERVICE.name,
        settings=settings,
        routers=[images.router, audio.router],
        legacy_prefixes=SERVICE.legacy_prefixes,
        own_database_url=settings.media_database_url,
        consumer=handlers,
        on_startup=[startup],
        on_shutdown=[shutdown],
    )


__getattr__ = lazy_app(build_app)
