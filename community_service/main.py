"""uvicorn community_service.main:app"""

import asyncio

from fastapi import FastAPI

from community_service import service_rooms
from community_service.collab import RoomDocs
from community_service.events import erase_user, handlers
from community_service.feed_cache import FeedPages
from community_service.moderation import Moderator
from community_service.notifications import consumer as notifications
from community_service.routers import characters, scenarios, stories, votes
from community_service.routers import notifications as notifications_router
from community_service.routers import rooms as rooms_router
from community_service.settings import Settings
from community_service.upstream import Upstreams
from community_service.vote_batch import VoteBatcher
from shared import fleet
from shared.app import create_app, lazy_app
from shared.engagement import Engagement
from shared.llm import LLMRouter
from shared.quota import QuotaClient
from shared.settings import load_settings

SERVICE = fleet.get("community")


async def startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.upstreams = Upstreams(
        settings.chat_service_url,
        settings.content_service_url,
        settings.upstream_timeout_seconds,
        auth_url=settings.auth_service_url,
    )
    app.state.llm = LLMRouter(settings)
    app.state.quota = QuotaClient(app.state.core_db, app.state.redis, app.state.keys)
    app.state.moderator = Moderator(app.state.llm)
    app.state.votes = VoteBatcher(app.state.db)
    app.state.feed_pages = FeedPages(settings.feed_cache_seconds)
    app.state.engagement = Engagement.from_settings(settings)
    await start_room_docs(app)
    await notifications.start(app)


async def start_room_docs(app: FastAPI) -> None:
    """The live room documents (collab.py), running until shutdown."""
    pool, moderator = app.state.db, app.state.moderator

    async def text_on_open(room_id: str, stored_text: str | None):
        return await service_rooms.document_text_on_open(pool, room_id, stored_text)

    async def save(room_id: str, text: str, editor_id: str | None):
        return await service_rooms.save_document(pool, moderator, room_id, text, editor_id)

    docs = RoomDocs(pool, text_on_open, save, app.state.settings.room_doc_save_seconds)
    app.state.room_docs_task = asyncio.create_task(docs.start())
    await docs.started.wait()
    app.state.room_docs = docs


async def stop_room_docs(app: FastAPI) -> None:
    """Open rooms are saved (story version, compacted updates) before the server stops."""
    docs = getattr(app.state, "room_docs", None)
    if docs is None:
        return
    await docs.close_all(timeout=10)
    await docs.stop()


async def shutdown(app: FastAPI) -> None:
    await notifications.stop(app)
    await stop_room_docs(app)
    if getattr(app.state, "votes", None) is not None:
        await app.state.votes.close()
    if getattr(app.state, "engagement", None) is not None:
        await app.state.engagement.close()
    for name in ("upstreams", "llm"):
        client = getattr(app.state, name, None)
        if client is not None:
            await client.close()


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)
    app = create_app(
        service=SERVICE.name,
        settings=settings,
        # The votes' and feed's routes first: routes are tried in order, and these are the busiest.
        # Votes before stories: PUT /votes then matches at its first candidate instead of after the
        # 14 stories routes, while GET /stories passes only the 5 votes routes (a failed match is a
        # regex test).
        routers=[
            votes.router,
            stories.router,
            characters.router,
            scenarios.router,
            rooms_router.router,
            notifications_router.router,
        ],
        legacy_prefixes=SERVICE.legacy_prefixes,
        first_routes=votes.lean_routes(),  # PUT /votes without FastAPI's machinery (routers/votes.py)
        own_database_url=settings.community_database_url,
        consumer=handlers,
        erase_user=erase_user,
        on_startup=[startup],
        on_shutdown=[shutdown],
    )
    # The monolith served notifications at /api/notifications[/...] itself (the generic legacy
    # prefix gives /api/notifications/notifications): answer there too.
    app.include_router(notifications_router.router, prefix="/api", include_in_schema=False)
    return app


__getattr__ = lazy_app(build_app)
