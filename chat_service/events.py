"""What the chat service consumes (queue `chat_service.events`).

- `subscription.*`: the user's tier changed; the cached tier is set from the event (`data.tier`)
  or dropped so the next request reads it from the core database, and the cached quota is dropped.
- `quota.*`: the cached quota is dropped.
- `character.updated` (Community): the custom character's cached definition is dropped.
- `user.deleted`: every conversation, message and reaction of the user is erased, in the
  consumer's idempotency transaction.

Handlers take (conn, event, state): `state` is the running app's state (redis, keys, quota).
"""

from __future__ import annotations

import logging

import asyncpg

from chat_service.repositories import conversations as conv_repo
from shared import erasure
from shared.bus import EventHandlers
from shared.events import Event, EventType
from shared.tiers import clamp_tier, drop_cached_tier, set_cached_tier

log = logging.getLogger("chat_service.events")

SUBSCRIPTION_EVENTS = (
    EventType.SUBSCRIPTION_CREATED,
    EventType.SUBSCRIPTION_UPGRADED,
    EventType.SUBSCRIPTION_DOWNGRADED,
    EventType.SUBSCRIPTION_CANCELLED,
    EventType.SUBSCRIPTION_PAUSED,
    EventType.SUBSCRIPTION_RESUMED,
)
QUOTA_EVENTS = (EventType.QUOTA_UPDATED, EventType.QUOTA_DEPLETED, EventType.QUOTA_RESET)


handlers = EventHandlers()


@handlers.on(*SUBSCRIPTION_EVENTS)
async def on_subscription(conn: asyncpg.Connection, event: Event, state) -> None:
    user_id = event.user_id or event.data.get("user_id")
    if not user_id:
        log.warning("subscription event without a user", extra={"event_id": event.event_id})
        return
    if "tier" in event.data and event.data["tier"] is not None:
        await set_cached_tier(state.redis, state.keys, user_id, clamp_tier(event.data["tier"]))
    else:
        await drop_cached_tier(state.redis, state.keys, user_id)
    await state.quota.drop_cache(user_id)


@handlers.on(*QUOTA_EVENTS)
async def on_quota(conn: asyncpg.Connection, event: Event, state) -> None:
    user_id = event.user_id or event.data.get("user_id")
    if user_id:
        await state.quota.drop_cache(user_id)


@handlers.on(EventType.USER_DELETED)
async def on_user_deleted(conn: asyncpg.Connection, event: Event, state) -> None:
    user_id = event.user_id or event.data.get("user_id")
    if not user_id:
        log.warning("user.deleted without a user", extra={"event_id": event.event_id})
        return
    await erase_user(conn, user_id, state)
    await erasure.schedule(conn, user_id, state)


async def erase_user(conn: asyncpg.Connection, user_id: str, state) -> None:
    """Every conversation, message and reaction of the user (also the second pass, shared/erasure.py)."""
    erased = await conv_repo.erase_user(conn, user_id)
    log.info("user erased", extra={"user_id": user_id, **erased})


@handlers.on("character.updated")
async def on_character_updated(conn: asyncpg.Connection, event: Event, state) -> None:
    """A custom character changed in Community: its cached definition is dropped, so the next turn
    reads the new one (custom_characters.py; dropped rather than replaced, so a redelivered older
    event cannot bring back an older definition)."""
    character_id = (event.data.get("character") or {}).get("id")
    if character_id and getattr(state, "custom_characters", None) is not None:
        await state.custom_characters.forget(str(character_id))
