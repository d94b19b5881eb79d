"""uvicorn community_service.main:app"""

from fastapi import FastAPI

from community_service.events import handlers
from community_service.moderation import Moderator
from community_service.routers import characters, scenarios, stories, votes
from community_service.settings import Settings
from community_service.upstream import Upstreams
from shared import fleet
from shared.app import create_app, lazy_app
from shared.llm import LLMRouter
from shared.quota import QuotaClient
from shared.settings import load_settings

SERVICE = fleet.get("community")


async def startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.upstreams = Upstreams(
        settings.chat_service_url, settings.content_service_url, settings.upstream_timeout_seconds
    )
    app.state.llm = LLMRouter(settings)
    app.state.quota = QuotaClient(app.state.core_db, app.state.redis, app.state.keys)
    app.state.moderator = Moderator(app.state.llm)


async def shutdown(app: FastAPI) -> None:
    for name in ("upstreams", "llm"):
        client = getattr(app.state, name, None)
        if client is not None:
            await client.close()


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)
    return create_app(
        service=SERVICE.name,
        settings=settings,
        routers=[characters.router, scenarios.router, stories.router, votes.router],
        legacy_prefixes=SERVICE.legacy_prefixes,
        own_database_url=settings.community_database_url,
        consumer=handlers,
        on_startup=[startup],
        on_shutdown=[shutdown],
    )


__getattr__ = lazy_app(build_app)
