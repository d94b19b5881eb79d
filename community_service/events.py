"""What the community service consumes (queue `community_service.events`).

- `user.deleted`: the user's content is erased (service.erase_user) in the consumer's idempotency
  transaction: characters, universes, scenarios, favourites and drafts deleted, published stories
  removed (status 'removed', text erased: gone from feeds and share links, not orphaned), votes
  withdrawn from the counters. Rooms (service_rooms.erase_user): the user's posts and memberships
  are deleted, and so are the rooms they own, with everyone's posts and the document in them.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from community_service import service, service_rooms
from community_service.repositories import notifications as notifications_repo
from shared import erasure
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
    await erase_user(conn, str(user_id), state)
    await erasure.schedule(conn, str(user_id), state)


async def erase_user(conn: asyncpg.Connection, user_id: str, state: Any = None) -> None:
    """The user's content and room memberships (also the second pass, shared/erasure.py, which
    also takes what a request in flight wrote to their notifications; the notifications consumer
    erases those at the first pass)."""
    erased = await service.erase_user(conn, str(user_id))
    await notifications_repo.erase_user(conn, str(user_id))
    rooms_erased = await service_rooms.erase_user(conn, str(user_id))
    log.info("user erased", extra={"user_id": user_id, **erased, "rooms": len(rooms_erased["rooms"])})
    pages = getattr(state, "feed_pages", None)
    if pages is not None:  # their published stories left the feeds
        pages.clear()
    docs = getattr(state, "room_docs", None)
    if docs is not None:  # open documents of deleted rooms are closed (their updates are dropped)
        for room_id in rooms_erased["rooms"]:
            await docs.room_deleted(room_id)
