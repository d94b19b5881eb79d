"""oauth_identities: a provider's subject linked to one of our users."""

from __future__ import annotations

import asyncpg


async def get(conn: asyncpg.Connection, provider: str, subject: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE oauth_identities SET last_used_at = now() WHERE provider = $1 "
        "AND subject = $2 RETURNING user_id, email",
        provider,
        subject,
    )


async def insert(conn: asyncpg.Connection, *, provider: str, subject: str, user_id: str, email: str | None) -> None:
    await conn.execute(
        "INSERT INTO oauth_identities (provider, subject, user_id, email) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (provider, subject) DO NOTHING",
        provider,
        subject,
        user_id,
        email,
    )


async def providers_for(conn: asyncpg.Connection, user_id: str) -> list[str]:
    rows = await conn.fetch("SELECT provider FROM oauth_identities WHERE user_id = $1 ORDER BY provider", user_id)
    return [r["provider"] for r in rows]
