"""What Payment consumes: user.created (the free quota row), user.updated (a new email goes to the
Stripe customer), referral.completed (bonus credits for
both users), reward.granted (a flip-ticket reward's bonus credits, once per reward), user.deleted
(erase payment data; cancel the Stripe customer's subscriptions).

Handlers take (conn, event, state) and run inside the consumer's idempotency transaction (event id
recorded with the effect); `state` is the app's state (Stripe gateway, Redis, quota client)."""

from __future__ import annotations

import logging

import stripe

from payment_service.repositories import billing as repo
from payment_service.repositories.billing import as_uuid
from payment_service.service.account import update_customer_email
from shared import erasure
from shared.bus import EventHandlers
from shared.events import Event, EventType
from shared.quota import REWARD_QUOTA_TYPES
from shared.tiers import REFERRAL_BONUS_REFERRED, REFERRAL_BONUS_REFERRER, drop_cached_tier

log = logging.getLogger("payment.events")


handlers = EventHandlers()


@handlers.on(EventType.USER_CREATED)
async def on_user_created(conn, event: Event, state) -> None:
    user_id = as_uuid(event.user_id or event.data.get("user_id"))
    if user_id is None:
        log.warning("user.created without a user id ignored", extra={"event_id": event.event_id})
        return
    await repo.ensure_quota_row(conn, str(user_id))


@handlers.on(EventType.USER_UPDATED)
async def on_user_updated(conn, event: Event, state) -> None:
    data = event.data if isinstance(event.data, dict) else {}
    email = data.get("email")
    user_id = as_uuid(event.user_id)
    if user_id is None or "email" not in (data.get("changed") or []) or not isinstance(email, str) or not email:
        return  # not an email change (a password, the profile)
    await update_customer_email(conn, state, str(user_id), email, event.timestamp, event.event_id)


@handlers.on(EventType.REFERRAL_COMPLETED)
async def on_referral_completed(conn, event: Event, state) -> None:
    user_ids = []
    for key, amount in (("referrer_id", REFERRAL_BONUS_REFERRER), ("referred_id", REFERRAL_BONUS_REFERRED)):
        user_id = as_uuid(event.data.get(key))
        if user_id is None:
            continue
        user_ids.append(str(user_id))
        if amount > 0:
            await repo.add_bonus(conn, str(user_id), amount, "referral")
    # Dropping a cache entry before commit is safe: a concurrent read may re-cache the old value
    # for at most the cache TTL; drop again after commit is not available inside the consumer.
    await state.quota.drop_cache(*user_ids)


@handlers.on(EventType.REWARD_GRANTED)
async def on_reward_granted(conn, event: Event, state) -> None:
    """A flip-ticket reward from Analytics: its credits join the user's bonus balance for that quota
    type, once per reward id (quota_grant_reward) even if Analytics were to announce it twice under
    different event ids; the event id itself is recorded by the consumer as for every event."""
    data = event.data if isinstance(event.data, dict) else {}
    user_id = as_uuid(event.user_id or data.get("user_id"))
    reward_id = as_uuid(data.get("reward_id"))
    quota_type = REWARD_QUOTA_TYPES.get(data.get("kind"))
    amount = data.get("amount")
    if user_id is None or reward_id is None or quota_type is None or not isinstance(amount, int) or amount <= 0:
        # Not a quota credit (an XP reward is Analytics' own) or malformed: nothing to add.
        log.info("reward.granted without a quota credit ignored", extra={"event_id": event.event_id})
        return
    if await repo.grant_reward(conn, reward_id, user_id, quota_type, amount, f"reward:{data.get('kind')}"):
        await state.quota.drop_cache(str(user_id))


@handlers.on(EventType.USER_DELETED)
async def on_user_deleted(conn, event: Event, state) -> None:
    user_id = as_uuid(event.user_id or event.data.get("user_id"))
    if user_id is None:
        return
    await erase_user(conn, str(user_id), state)
    await erasure.schedule(conn, str(user_id), state)


async def erase_user(conn, user_id: str, state) -> None:
    """The user's payment data and Stripe customer (also the second pass, shared/erasure.py)."""
    customer = await repo.customer_for_user(conn, str(user_id))
    gateway = state.gateway
    if customer and gateway.configured:
        # Deleting the Stripe customer cancels its subscriptions at once: no more charges.
        # Stripe keeps the invoices it must keep. A failure raises: the consumer retries.
        try:
            await gateway.client.v1.customers.delete_async(customer)
        except stripe.InvalidRequestError as exc:
            if getattr(exc, "code", None) != "resource_missing":
                raise
    elif customer:
        log.error(
            "user deleted but Stripe is not configured: their Stripe customer was not deleted",
            extra={"customer": customer},
        )
    counts = await repo.erase_user(conn, str(user_id))
    log.info("payment data erased", extra={"counts": counts})
    await drop_cached_tier(state.redis, state.keys, str(user_id))
    await state.quota.drop_cache(str(user_id))
