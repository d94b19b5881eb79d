"""What Payment consumes: user.created (the free quota row), referral.completed (bonus credits for
both users), user.deleted (erase payment data; cancel the Stripe customer's subscriptions).

Handlers run inside the consumer's idempotency transaction (event id recorded with the effect)."""
from __future__ import annotations

import logging

from payment_service.repositories import billing as repo
from payment_service.repositories.billing import as_uuid
from shared.bus import EventHandlers
from shared.events import Event, EventType
from shared.tiers import REFERRAL_BONUS_REFERRED, REFERRAL_BONUS_REFERRER

log = logging.getLogger("payment.events")


def build_handlers(get_app) -> EventHandlers:
    """`get_app()` returns the running app (settings, Stripe gateway) once it has started."""
    handlers = EventHandlers()

    @handlers.on(EventType.USER_CREATED)
    async def user_created(conn, event: Event) -> None:
        user_id = as_uuid(event.user_id or event.data.get("user_id"))
        if user_id is None:
            log.warning("user.created without a user id ignored", extra={"event_id": event.event_id})
            return
        await repo.ensure_quota_row(conn, str(user_id))

    @handlers.on(EventType.REFERRAL_COMPLETED)
    async def referral_completed(conn, event: Event) -> None:
        for key, amount in (("referrer_id", REFERRAL_BONUS_REFERRER), ("referred_id", REFERRAL_BONUS_REFERRED)):
            user_id = as_uuid(event.data.get(key))
            if user_id is None or amount <= 0:
                continue
            await repo.add_bonus(conn, str(user_id), amount, "referral")
        app = get_app()
        ids = [str(as_uuid(event.data.get(k))) for k in ("referrer_id", "referred_id") if as_uuid(event.data.get(k))]
        # Dropping a cache entry before commit is safe: a concurrent read may re-cache the old value
        # for at most the cache TTL; drop again after commit is not available inside the consumer.
        quota = getattr(app.state, "quota", None)
        if quota is not None:
            await quota.drop_cache(*ids)

    @handlers.on(EventType.USER_DELETED)
    async def user_deleted(conn, event: Event) -> None:
        user_id = as_uuid(event.user_id or event.data.get("user_id"))
        if user_id is None:
            return
        app = get_app()
        customer = await repo.customer_for_user(conn, str(user_id))
        gateway = app.state.gateway
        if customer and gateway.configured:
            # Deleting the Stripe customer cancels its subscriptions at once: no more charges.
            # Stripe keeps the invoices it must keep. A failure raises: the consumer retries.
            import stripe

            try:
                await gateway.client.v1.customers.delete_async(customer)
            except stripe.InvalidRequestError as exc:
                if getattr(exc, "code", None) != "resource_missing":
                    raise
        elif customer:
            log.error("user deleted but Stripe is not configured: their Stripe customer was not deleted",
                      extra={"customer": customer})
        counts = await repo.erase_user(conn, str(user_id))
        log.info("payment data erased", extra={"counts": counts})
        from shared.tiers import drop_cached_tier

        await drop_cached_tier(app.state.redis, app.state.keys, str(user_id))
        await app.state.quota.drop_cache(str(user_id))

    return handlers
