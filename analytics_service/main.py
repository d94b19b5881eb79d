"""uvicorn analytics_service.main:app"""
from fastapi import FastAPI

from analytics_service.settings import Settings
from shared.app import create_app, lazy_app
from shared.settings import load_settings


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)
    return create_app(
        service="analytics",
        settings=settings,
        routers=[],
        legacy_prefixes=['/api/analytics', '/api/conversation-stats'],
        own_database_url=settings.analytics_database_url,
    )


__getattr__ = lazy_app(build_app)
