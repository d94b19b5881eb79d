"""Fandom rooms, their members and posts, and the room documents' stored Yjs updates."""

from __future__ import annotations

from datetime import datetime

import asyncpg

_ROOM = (
    "r.id, r.owner_id, r.name, r.description, r.story_id, r.visibility, r.invite_code, r.up, r.down, r.score,"
    " r.doc_story_version, r.status"
)
_MEMBER_COUNT = "(SELECT count(*) FROM room_members m WHERE m.room_id = r.id) AS member_count"


async def insert(conn, owner_id: str, name: str, description: str, story_id, visibility: str, invite_code: str):
    """The room and its owner's membership; None when the invite code is taken (the caller draws another)."""
    row = await conn.fetchrow(
        "INSERT INTO rooms (owner_id, name, description, story_id, visibility, invite_code)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (invite_code) DO NOTHING RETURNING *",
        owner_id,
        name,
        description,
        story_id,
        visibility,
        invite_code,
    )
    if row is not None:
        await add_member(conn, row["id"], owner_id, "owner", None)
    return row


async def get(conn, room_id) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_ROOM}, r.created_at, {_MEMBER_COUNT} FROM rooms r WHERE r.id = $1", room_id)


async def get_by_invite_code(conn, invite_code: str) -> asyncpg.Record | None:
    """An active room only: a removed room's invite code joins nothing."""
    return await conn.fetchrow("SELECT * FROM rooms WHERE invite_code = $1 AND status = 'active'", invite_code)


async def role_of(conn, room_id, user_id: str) -> str | None:
    return await conn.fetchval("SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2", room_id, user_id)


async def roles_in(conn, room_ids: list, user_id: str) -> dict:
    """room id -> the user's role, for the rooms among `room_ids` the user is in."""
    rows = await conn.fetch(
        "SELECT room_id, role FROM room_members WHERE room_id = ANY($1::uuid[]) AND user_id = $2", room_ids, user_id
    )
    return {r["room_id"]: r["role"] for r in rows}


async def members(conn, room_id) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT user_id, role, joined_at FROM room_members WHERE room_id = $1"
        " ORDER BY (role = 'owner') DESC, joined_at, user_id",
        room_id,
    )


async def add_member(conn, room_id, user_id: str, role: str, referred_by: str | None) -> bool:
    """False when the user is already a member (nothing changes)."""
    return (
        await conn.fetchval(
            "INSERT INTO room_members (room_id, user_id, role, referred_by) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING true",
            room_id,
            user_id,
            role,
            referred_by,
        )
        is not None
    )


async def set_role(conn, room_id, user_id: str, role: str) -> bool:
    return (
        await conn.fetchval(
            "UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2 AND role <> 'owner' RETURNING true",
            room_id,
            user_id,
            role,
        )
        is not None
    )


async def remove_member(conn, room_id, user_id: str) -> bool:
    return (
        await conn.fetchval(
            "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 AND role <> 'owner' RETURNING true",
            room_id,
            user_id,
        )
        is not None
    )


async def list_public(conn, after: tuple[datetime, object] | None, limit: int) -> list[asyncpg.Record]:
    """Active public rooms, newest first; a page after a cursor is an index range scan from it."""
    if after is None:
        return await conn.fetch(
            f"SELECT {_ROOM}, r.created_at, {_MEMBER_COUNT} FROM rooms r"
            " WHERE r.visibility = 'public' AND r.status = 'active'"
            " ORDER BY r.created_at DESC, r.id DESC LIMIT $1",
            limit,
        )
    return await conn.fetch(
        f"SELECT {_ROOM}, r.created_at, {_MEMBER_COUNT} FROM rooms r"
        " WHERE r.visibility = 'public' AND r.status = 'active'"
        " AND (r.created_at, r.id) < ($2, $3) ORDER BY r.created_at DESC, r.id DESC LIMIT $1",
        limit,
        *after,
    )


async def list_mine(conn, user_id: str, after: tuple[datetime, object] | None, limit: int) -> list[asyncpg.Record]:
    """The user's active rooms, most recently joined first (the cursor is the join time and room id)."""
    cursor = "" if after is None else " AND (m.joined_at, m.room_id) < ($3, $4)"
    return await conn.fetch(
        f"SELECT {_ROOM}, r.created_at, {_MEMBER_COUNT}, m.role AS my_role, m.joined_at FROM room_members m"
        f" JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1 AND r.status = 'active'{cursor}"
        " ORDER BY m.joined_at DESC, m.room_id DESC LIMIT $2",
        user_id,
        limit,
        *(after or ()),
    )


async def insert_post(conn, room_id, author_id: str, body: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO room_posts (room_id, author_id, body) VALUES ($1, $2, $3) RETURNING *", room_id, author_id, body
    )


async def posts(conn, room_id, after: tuple[datetime, object] | None, limit: int) -> list[asyncpg.Record]:
    """The room's posts a moderator has not removed, newest first."""
    cursor = "" if after is None else " AND (created_at, id) < ($3, $4)"
    return await conn.fetch(
        f"SELECT * FROM room_posts WHERE room_id = $1 AND status = 'active'{cursor}"
        " ORDER BY created_at DESC, id DESC LIMIT $2",
        room_id,
        limit,
        *(after or ()),
    )


async def erase_user(conn, user_id: str) -> dict:
    """The user's posts and memberships, and the rooms they own (with everyone's posts and the
    document in them: a room without its owner has no one to manage it). Returns the counts, the
    deleted rooms' ids and the deleted posts' ids (the user's and those in their rooms)."""
    posts = await conn.fetch(
        "DELETE FROM room_posts WHERE author_id = $1 OR room_id IN (SELECT id FROM rooms WHERE owner_id = $1)"
        " RETURNING id, author_id",
        user_id,
    )
    rooms = await conn.fetch("DELETE FROM rooms WHERE owner_id = $1 RETURNING id", user_id)
    memberships = await conn.fetchval(
        "WITH d AS (DELETE FROM room_members WHERE user_id = $1 RETURNING 1) SELECT count(*) FROM d", user_id
    )
    return {
        "room_posts": sum(p["author_id"] == user_id for p in posts),
        "rooms": [r["id"] for r in rooms],
        "post_ids": [p["id"] for p in posts],
        "room_memberships": memberships,
    }


# The collaborative document: Yjs updates in order ------------------------------------------------


async def append_update(conn, room_id, update: bytes) -> None:
    await conn.execute("INSERT INTO room_doc_updates (room_id, body) VALUES ($1, $2)", room_id, update)


async def updates(conn, room_id) -> list[bytes]:
    rows = await conn.fetch("SELECT body FROM room_doc_updates WHERE room_id = $1 ORDER BY seq", room_id)
    return [r["body"] for r in rows]


async def compact(conn, room_id, up_to_seq: int, state: bytes) -> None:
    """Replaces the updates up to `up_to_seq` with one update holding the same state (the caller's
    transaction; Yjs updates commute, so updates written meanwhile may stay before it). Nothing for
    a room deleted meanwhile."""
    await conn.execute("DELETE FROM room_doc_updates WHERE room_id = $1 AND seq <= $2", room_id, up_to_seq)
    await conn.execute(
        "INSERT INTO room_doc_updates (room_id, body) SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM rooms WHERE id = $1)",
        room_id,
        state,
    )


async def set_doc_story_version(conn, room_id, version: int) -> None:
    await conn.execute("UPDATE rooms SET doc_story_version = $2 WHERE id = $1", room_id, version)


async def last_seq(conn, room_id) -> int | None:
    return await conn.fetchval("SELECT max(seq) FROM room_doc_updates WHERE room_id = $1", room_id)
