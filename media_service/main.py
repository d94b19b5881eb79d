"""uvicorn media_service.main:app"""
from fastapi import FastAPI

from media_service.settings import Settings
from shared import fleet
from shared.app import create_app, lazy_app
from shared.settings import load_settings

SERVICE = fleet.get("media")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)
    return create_app(
        service=SERVICE.name,
        settings=settings,
        routers=[],  # one APIRouter per domain, from routers/<domain>.py
        legacy_prefixes=SERVICE.legacy_prefixes,
        own_database_url=settings.media_database_url,
    )


__getattr__ = lazy_app(build_app)
