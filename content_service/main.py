"""uvicorn content_service.main:app"""
from fastapi import FastAPI

from content_service.settings import Settings
from shared.app import create_app, lazy_app
from shared.settings import load_settings


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)
    return create_app(
        service="content",
        settings=settings,
        routers=[],
        legacy_prefixes=['/api/search'],
        use_database=False,
    )


__getattr__ = lazy_app(build_app)
