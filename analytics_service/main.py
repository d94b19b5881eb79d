"""uvicorn analytics_service.main:app"""

import asyncio

from fastapi import FastAPI

from analytics_service import daily, service
from analytics_service.events import build_consumer
from analytics_service.posthog_forward import PostHogForwarder
from analytics_service.routers import conversations, platform, progress
from analytics_service.settings import Settings
from shared import fleet
from shared.app import create_app, lazy_app
from shared.settings import load_settings

SERVICE = fleet.get("analytics")


async def startup(app: FastAPI) -> None:
    await service.ensure_partitions_ahead(app.state.db)
    settings = app.state.settings
    app.state.posthog = (
        PostHogForwarder(settings.posthog_api_key, settings.posthog_host) if settings.posthog_api_key else None
    )
    # The consumer of every event batches its work, so it is not create_app's one-event Consumer.
    app.state.event_consumer = build_consumer(app)
    app.state.event_consumer.start()
    app.state.daily_task = None
    if settings.analytics_daily_check_seconds > 0:
        app.state.daily_task = asyncio.create_task(
            daily.run_periodically(
                app.state.db,
                settings.analytics_daily_check_seconds,
                raw_retention_months=settings.analytics_raw_retention_months,
            ),
            name="analytics-daily",
        )


async def shutdown(app: FastAPI) -> None:
    await daily.stop(getattr(app.state, "daily_task", None))
    consumer = getattr(app.state, "event_consumer", None)
    if consumer is not None:
        await consumer.stop()
    if getattr(app.state, "posthog", None) is not None:
        await app.state.posthog.close()


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)
    return create_app(
        service=SERVICE.name,
        settings=settings,
        routers=[progress.router, platform.router, conversations.router],
        # The manifest's prefixes (what the strangler proxy sends here), and "/api": the routes
        # already start with /analytics, so under "/api" they are the monolith's own paths
        # (/api/analytics/me), which the proxy forwards unchanged.
        legacy_prefixes=[*SERVICE.legacy_prefixes, "/api"],
        own_database_url=settings.analytics_database_url,
        on_startup=[startup],
        on_shutdown=[shutdown],
        erase_user=service.erase_user_again,
    )


__getattr__ = lazy_app(build_app)
