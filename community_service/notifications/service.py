"""Notifications' rules: events become notifications (with their deliveries), and what a user reads
and sets (list, unread count, mark read, preferences, devices)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from community_service import errors
from community_service.notifications import kinds
from community_service.repositories import notifications as repo
from shared.auth import CurrentUser
from shared.events import Event, EventType
from shared.pagination import decode_sequence, encode_sequence

log = logging.getLogger("community_service.notifications")


# From events ------------------------------------------------------------------------------------


async def apply_events(conn: asyncpg.Connection, events: list[Event], state: Any = None) -> None:
    """A batch of first-seen events, in the consumer's idempotency transaction: recipients' addresses
    kept current, notifications created, announced (NOTIFY at commit) and queued for email and push;
    erasures last, so a user deleted in the same batch keeps nothing."""
    drafts: dict[tuple[str, str], kinds.Draft] = {}
    erased: list[str] = []
    room_names = await _room_names(conn, events)
    for event in sorted(events, key=lambda e: e.timestamp):  # a batch comes in event id order
        name = room_names.get(str(event.data.get("room_id"))) if event.event_type == EventType.ROOM_JOINED else None
        if name:
            event = event.model_copy(update={"data": {**event.data, "room_name": name}})
        if event.event_type in (EventType.USER_CREATED, EventType.USER_UPDATED):
            if event.user_id and "email" in event.data:
                await repo.set_email(conn, str(event.user_id), event.data.get("email") or None)
        elif event.event_type == EventType.USER_DELETED:
            user_id = event.user_id or event.data.get("user_id")
            if user_id:
                erased.append(str(user_id))
        else:
            for draft in kinds.drafts_for(event):
                drafts.setdefault((draft.user_id, draft.dedup_key), draft)
    if drafts:
        rows = await repo.insert_many(conn, sorted(drafts.values(), key=lambda d: d.user_id))
        await repo.announce(conn, rows)
        await repo.enqueue(conn, await _deliveries(conn, rows))
    for user_id in erased:
        await repo.erase_user(conn, user_id)


async def _room_names(conn: asyncpg.Connection, events: list[Event]) -> dict[str, str]:
    """room.joined carries the room's id, not its name: the rooms table (same database) has it."""
    ids = set()
    for e in events:
        if e.event_type == EventType.ROOM_JOINED:
            try:
                ids.add(str(uuid.UUID(str(e.data.get("room_id")))))
            except ValueError:
                continue
    if not ids:
        return {}
    rows = await conn.fetch("SELECT id::text, name FROM rooms WHERE id = ANY($1::uuid[])", list(ids))
    return {r["id"]: r["name"] for r in rows}


async def _deliveries(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[tuple]:
    """Email and push deliveries the recipients' preferences allow (email only to a known address)."""
    found = await repo.targets(conn, sorted({r["user_id"] for r in rows}))
    emails = {t["user_id"]: t["email"] for t in found if t["email"]}
    devices = {t["user_id"]: t["devices"] for t in found if t["devices"]}
    prefs: dict[str, dict[tuple[str, str], bool]] = {}
    for t in found:
        for entry in t["prefs"] or ():
            channel, kind, enabled = entry.split(":")
            prefs.setdefault(t["user_id"], {})[(channel, kind)] = enabled == "true"
    out = []
    for r in rows:
        user, kind = r["user_id"], r["kind"]
        own = prefs.get(user, {})
        if user in emails and own.get(("email", kind), kinds.DEFAULTS["email"][kind]):
            out.append((r["id"], user, "email", None))
        if own.get(("push", kind), kinds.DEFAULTS["push"][kind]):
            out.extend((r["id"], user, "push", token) for token in devices.get(user, ()))
    return out


# What a user reads and sets ---------------------------------------------------------------------


async def list_notifications(pool, user: CurrentUser, *, cursor: str | None, unread: bool, limit: int) -> dict:
    before = decode_sequence(cursor or "")
    async with pool.acquire() as conn:
        rows = await repo.page(conn, user.user_id, before_seq=before, unread=unread, limit=limit + 1)
    items = [repo.as_dict(r) for r in rows[:limit]]
    next_cursor = encode_sequence(items[-1]["seq"]) if len(rows) > limit else None
    return {"notifications": items, "next_cursor": next_cursor}


async def unread_count(pool, user: CurrentUser) -> dict:
    async with pool.acquire() as conn:
        return {"unread": await repo.unread_count(conn, user.user_id)}


async def mark_read(pool, user: CurrentUser, ids: list[uuid.UUID] | None) -> dict:
    """Another user's ids (or unknown ones) change nothing and are not told apart from read ones."""
    async with pool.acquire() as conn, conn.transaction():
        marked = await repo.mark_read(conn, user.user_id, ids)
        unread = await repo.unread_count(conn, user.user_id)
    return {"marked": marked, "unread": unread}


def _effective(own: dict[tuple[str, str], bool]) -> dict[str, dict[str, bool]]:
    return {ch: {k: own.get((ch, k), kinds.DEFAULTS[ch][k]) for k in kinds.KINDS} for ch in kinds.CHANNELS}


async def _remember_address(conn: asyncpg.Connection, user: CurrentUser) -> None:
    """Fills in the address from the token for a user whose user.created predates this service's
    consumer; the events' address, when there is one, is kept."""
    if user.email and not user.is_service:
        await conn.execute(
            "INSERT INTO notification_recipients (user_id, email) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            user.user_id,
            user.email,
        )


async def get_preferences(pool, user: CurrentUser) -> dict:
    async with pool.acquire() as conn:
        own = (await repo.preferences(conn, [user.user_id])).get(user.user_id, {})
    return _effective(own)


async def put_preferences(pool, user: CurrentUser, changes: dict[str, dict[str, bool]]) -> dict:
    """Merges: kinds not named keep their setting."""
    rows = [(ch, kind, enabled) for ch, by_kind in changes.items() for kind, enabled in by_kind.items()]
    async with pool.acquire() as conn, conn.transaction():
        if rows:
            await repo.set_preferences(conn, user.user_id, rows)
        await _remember_address(conn, user)
        own = (await repo.preferences(conn, [user.user_id])).get(user.user_id, {})
    return _effective(own)


async def add_device(pool, user: CurrentUser, token: str, platform: str) -> dict:
    async with pool.acquire() as conn, conn.transaction():
        row = await repo.add_device(conn, user.user_id, token, platform)
        await _remember_address(conn, user)
    return {"expo_push_token": row["token"], "platform": row["platform"], "created_at": row["created_at"].isoformat()}


async def remove_device(pool, user: CurrentUser, token: str) -> None:
    async with pool.acquire() as conn:
        if not await repo.remove_device(conn, user.user_id, token):
            raise errors.DEVICE_NOT_FOUND()
