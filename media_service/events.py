"""What the media service consumes (queue `media_service.events`).

- `user.deleted`: every image and audio row of the user is erased in the consumer's idempotency
  transaction (with an `image.deleted` event per image); the blobs, then unreferenced, are
  deleted by the sweep, which is woken for it; so are the user's generation jobs.
"""

from __future__ import annotations

import logging

import asyncpg

from shared import erasure
from shared.bus import EventHandlers
from shared.events import Event, EventType

log = logging.getLogger("media_service.events")

handlers = EventHandlers()


@handlers.on(EventType.USER_DELETED)
async def on_user_deleted(conn: asyncpg.Connection, event: Event, state) -> None:
    user_id = event.user_id or event.data.get("user_id")
    if not user_id:
        log.warning("user.deleted without a user", extra={"event_id": event.event_id})
        return
    await erase_user(conn, user_id, state)
    await erasure.schedule(conn, user_id, state)


async def erase_user(conn: asyncpg.Connection, user_id: str, state) -> None:
    """Every image and audio row of the user (also the second pass, shared/erasure.py)."""
    erased = await state.media.delete_user(conn, user_id)
    await state.generation.delete_user(conn, user_id)
    log.info("user erased", extra={"user_id": user_id, "media": erased})
