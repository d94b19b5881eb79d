"""What the community service consumes (queue `community_service.events`).

- `user.deleted`: the user's content is erased (service.erase_user) in the consumer's idempotency
  transaction: characters, universes, scenarios, favourites and drafts deleted, published stories
  removed (status 'removed', text erased: gone from feeds and share links, not orphaned), votes
  withdrawn from the counters.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from community_service import service
from shared.bus import EventHandlers
from shared.events import Event, EventType

log = logging.getLogger("community_service.events")

handlers = EventHandlers()


@handlers.on(EventType.USER_DELETED)
async def on_user_deleted(conn: asyncpg.Connection, event: Event, state: Any = None) -> None:
    user_id = event.user_id or event.data.get("user_id")
    if not user_id:
        log.warning("user.deleted without a user id", extra={"event_id": event.event_id})
        return
    erased = await service.erase_user(conn, str(user_id))
    log.info("user erased", extra={"user_id": user_id, **erased})
