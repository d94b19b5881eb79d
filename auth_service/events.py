"""Events the auth service consumes: subscription changes keep users.premium current, so the
next token minted (login or refresh) carries the user's tier."""

from __future__ import annotations

import logging

import asyncpg

from auth_service.repositories import users as users_repo
from shared.bus import EventHandlers
from shared.events import Event, EventType
from shared.tiers import parse_tier

log = logging.getLogger("auth_service.events")
handlers = EventHandlers()


def tier_of(event: Event) -> int | None:
    value = event.data.get("tier")
    if value is None:
        # A cancellation without a tier means back to free; other events must say.
        return 0 if event.event_type == EventType.SUBSCRIPTION_CANCELLED.value else None
    return parse_tier(value)


@handlers.on(
    EventType.SUBSCRIPTION_CREATED,
    EventType.SUBSCRIPTION_UPGRADED,
    EventType.SUBSCRIPTION_DOWNGRADED,
    EventType.SUBSCRIPTION_CANCELLED,
    EventType.SUBSCRIPTION_PAUSED,
    EventType.SUBSCRIPTION_RESUMED,
)
async def on_subscription(conn: asyncpg.Connection, event: Event, state) -> None:
    tier = tier_of(event)
    if event.user_id is None or tier is None:
        log.warning(
            "subscription event without a usable user_id or tier; ignored",
            extra={"event_id": event.event_id, "event_type": event.event_type},
        )
        return
    try:
        applied = await users_repo.set_premium(conn, event.user_id, tier, event.timestamp)
    except asyncpg.DataError:
        log.warning("subscription event for a malformed user id; ignored", extra={"event_id": event.event_id})
        return
    if not applied:
        log.info(
            "subscription event not applied (unknown user or older than the current tier)",
            extra={"event_id": event.event_id},
        )
