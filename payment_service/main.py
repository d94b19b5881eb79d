"""uvicorn payment_service.main:app"""

from fastapi import FastAPI

from payment_service.events import erase_user, handlers
from payment_service.routers import account, webhooks
from payment_service.service import Billing
from payment_service.settings import Settings
from payment_service.stripe_gateway import StripeGateway
from payment_service.sweeper import Sweeper
from shared.app import create_app, lazy_app
from shared.engagement import Engagement
from shared.quota import QuotaClient
from shared.settings import load_settings
from shared.tiers import TierResolver

LEGACY_PREFIX = "/api/payments"
WEBHOOK_PATHS = ("/webhook", "/webhooks/", LEGACY_PREFIX + "/webhook")


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(Settings)

    async def startup(app: FastAPI) -> None:
        state = app.state
        state.gateway = StripeGateway(
            settings.stripe_api_key,
            settings.stripe_api_base,
            timeout=settings.stripe_timeout_seconds,
            max_network_retries=settings.stripe_max_network_retries,
        )
        state.billing = Billing(settings, state.gateway)
        state.quota = QuotaClient(
            state.core_db, state.redis, state.keys, cache_ttl_seconds=settings.quota_cache_ttl_seconds
        )
        state.tier_resolver = TierResolver(state.redis, state.keys, state.core_db)
        state.engagement = Engagement.from_settings(settings)  # upgrades to PostHog (webhook_effects)
        state.sweeper = Sweeper(app, settings.sweep_interval_seconds)
        state.sweeper.start()

    async def shutdown(app: FastAPI) -> None:
        await app.state.sweeper.stop()
        await app.state.gateway.close()
        await app.state.engagement.close()

    return create_app(
        service="payment",
        settings=settings,
        routers=[account.router, webhooks.router],
        legacy_prefixes=[LEGACY_PREFIX],
        consumer=handlers,
        erase_user=erase_user,
        on_startup=[startup],
        on_shutdown=[shutdown],
        # Provider webhooks: authenticated per event, delivered in bursts from a few addresses.
        rate_limit_exempt=WEBHOOK_PATHS,
    )


__getattr__ = lazy_app(build_app)
