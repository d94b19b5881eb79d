"""User-made universes."""

from __future__ import annotations

import asyncpg


async def insert(conn, owner_id: str, name: str, description: str, visibility: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO universes (owner_id, name, description, visibility) VALUES ($1, $2, $3, $4) RETURNING *",
        owner_id,
        name,
        description,
        visibility,
    )


async def get(conn, universe_id) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM universes WHERE id = $1", universe_id)


async def list_visible(conn, user_id: str, *, scope: str, after: tuple | None, limit: int) -> list[asyncpg.Record]:
    """scope 'mine': the caller's; 'public': everyone's public ones."""
    return await conn.fetch(
        "SELECT * FROM universes WHERE"
        " (CASE WHEN $1 = 'mine' THEN owner_id = $2 ELSE visibility = 'public' END)"
        " AND ($3::boolean IS FALSE OR (created_at, id) < ($4::timestamptz, $5::uuid))"
        " ORDER BY created_at DESC, id DESC LIMIT $6",
        scope,
        user_id,
        after is not None,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def delete_owned_by(conn, owner_id: str) -> None:
    await conn.execute("DELETE FROM universes WHERE owner_id = $1", owner_id)
