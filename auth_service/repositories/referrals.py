"""referrals: completed referrals (referred_id unique: once per user)."""

from __future__ import annotations

import asyncpg


async def insert(
    conn: asyncpg.Connection, *, referrer_id: str, referred_id: str, code: str, bonus_credits: int
) -> bool:
    """False when this user was already referred (the unique referred_id decides, even under races)."""
    row = await conn.fetchval(
        "INSERT INTO referrals (referrer_id, referred_id, code, bonus_credits) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (referred_id) DO NOTHING RETURNING true",
        referrer_id,
        referred_id,
        code,
        bonus_credits,
    )
    return bool(row)


async def for_referred(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT referrer_id, code, created_at FROM referrals WHERE referred_id = $1", user_id)


async def stats(conn: asyncpg.Connection, referrer_id: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT count(*)::int AS count, COALESCE(sum(bonus_credits), 0)::int AS bonus "
        "FROM referrals WHERE referrer_id = $1",
        referrer_id,
    )
