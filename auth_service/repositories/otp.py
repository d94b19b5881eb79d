"""otp_codes: one live code per user and purpose, stored as an HMAC, with an attempt counter."""

from __future__ import annotations

import asyncpg


async def put(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    purpose: str,
    code_hash: str,
    ttl_seconds: int,
    new_email: str | None = None,
) -> None:
    """A new code replaces the previous one and resets its attempts (`new_email`: the address an
    email change waits to confirm)."""
    await conn.execute(
        "INSERT INTO otp_codes (user_id, purpose, code_hash, attempts, created_at, expires_at, new_email)"
        " VALUES ($1, $2, $3, 0, now(), now() + make_interval(secs => $4), $5)"
        " ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = EXCLUDED.code_hash, attempts = 0,"
        " created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, new_email = EXCLUDED.new_email",
        user_id,
        purpose,
        code_hash,
        float(ttl_seconds),
        new_email,
    )


async def get_for_update(conn: asyncpg.Connection, user_id: str, purpose: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT code_hash, attempts, expires_at, new_email, expires_at <= now() AS expired FROM otp_codes"
        " WHERE user_id = $1 AND purpose = $2 FOR UPDATE",
        user_id,
        purpose,
    )


async def add_attempt(conn: asyncpg.Connection, user_id: str, purpose: str) -> int:
    return await conn.fetchval(
        "UPDATE otp_codes SET attempts = attempts + 1 WHERE user_id = $1 AND purpose = $2 RETURNING attempts",
        user_id,
        purpose,
    )


async def delete(conn: asyncpg.Connection, user_id: str, purpose: str) -> None:
    await conn.execute("DELETE FROM otp_codes WHERE user_id = $1 AND purpose = $2", user_id, purpose)
