"""refresh_tokens: opaque tokens stored as SHA-256 digests, grouped in families."""
from __future__ import annotations

from datetime import datetime

import asyncpg


async def insert(conn: asyncpg.Connection, *, user_id: str, family_id: str, token_hash: bytes, expires_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
        user_id,
        family_id,
        token_hash,
        expires_at,
    )


async def get_for_update(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, user_id, family_id, expires_at, rotated_at, revoked_at, expires_at <= now() AS expired"
        " FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )


async def mark_rotated(conn: asyncpg.Connection, token_id: str) -> None:
    await conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1", token_id)


async def revoke_family(conn: asyncpg.Connection, family_id: str) -> int:
    status = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", family_id
    )
    return int(status.split()[-1])


async def revoke_user(conn: asyncpg.Connection, user_id: str) -> int:
    status = await conn.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", user_id)
    return int(status.split()[-1])

