"""Housekeeping SQL: spent refresh tokens and codes, abandoned guest accounts."""

from __future__ import annotations

import asyncpg


async def delete_dead_refresh_tokens(conn: asyncpg.Connection, grace_days: int) -> int:
    """Tokens expired more than `grace_days` ago (kept that long so a replay is still recognised)."""
    status = await conn.execute(
        "DELETE FROM refresh_tokens WHERE expires_at < now() - make_interval(days => $1)", grace_days
    )
    return int(status.split()[-1])


async def delete_dead_codes(conn: asyncpg.Connection) -> int:
    status = await conn.execute("DELETE FROM otp_codes WHERE expires_at < now() - interval '1 day'")
    return int(status.split()[-1])


async def delete_abandoned_guests(conn: asyncpg.Connection, retention_days: int, limit: int) -> list[str]:
    """Guests that never became accounts and have not signed in (no refresh token issued) for
    `retention_days`; returns their ids (the caller publishes user.deleted for each)."""
    rows = await conn.fetch(
        "DELETE FROM users WHERE id IN ("
        "  SELECT u.id FROM users u"
        "  WHERE u.temporary_account AND NOT u.confirmed AND u.created_at < now() - make_interval(days => $1)"
        "    AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.user_id = u.id "
        "AND t.created_at > now() - make_interval(days => $1))"
        "  ORDER BY u.created_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        ") RETURNING id::text",
        retention_days,
        limit,
    )
    return [r["id"] for r in rows]
