"""Favourites: custom characters and TMDB titles."""

from __future__ import annotations

import asyncpg


async def put(conn, user_id: str, kind: str, target_id: str) -> None:
    await conn.execute(
        "INSERT INTO favorites (user_id, kind, target_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        user_id,
        kind,
        target_id,
    )


async def delete(conn, user_id: str, kind: str, target_id: str) -> bool:
    return (
        await conn.fetchval(
            "DELETE FROM favorites WHERE user_id = $1 AND kind = $2 AND target_id = $3 RETURNING true",
            user_id,
            kind,
            target_id,
        )
        is not None
    )


async def list_for(conn, user_id: str, kind: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT kind, target_id, created_at FROM favorites WHERE user_id = $1 AND ($2::text IS NULL OR kind = $2)"
        " ORDER BY created_at DESC, target_id",
        user_id,
        kind,
    )


async def delete_for_user(conn, user_id: str) -> None:
    await conn.execute("DELETE FROM favorites WHERE user_id = $1", user_id)


async def delete_target(conn, kind: str, target_id: str) -> None:
    await conn.execute("DELETE FROM favorites WHERE kind = $1 AND target_id = $2", kind, target_id)
