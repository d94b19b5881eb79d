"""refresh_tokens: opaque tokens stored as SHA-256 digests, grouped in families."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from auth_service.repositories.users import U_COLUMNS


async def insert(
    conn: asyncpg.Connection, *, user_id: str, family_id: str, token_hash: bytes, expires_at: datetime
) -> None:
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
    status = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )
    return int(status.split()[-1])


async def revoke_user_except(conn: asyncpg.Connection, user_id: str, keep_family_id: str) -> int:
    """Every session of the user but one (the family of the request's own token)."""
    status = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND family_id <> $2 AND revoked_at IS NULL",
        user_id,
        keep_family_id,
    )
    return int(status.split()[-1])


_ROTATE = (
    "WITH old AS ("
    "  UPDATE refresh_tokens SET rotated_at = now()"
    "  WHERE token_hash = $1 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > now()"
    "  RETURNING user_id, family_id"
    "), new AS ("
    "  INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)"
    "  SELECT user_id, family_id, $2, $3 FROM old RETURNING user_id, family_id"
    f") SELECT {U_COLUMNS}, new.family_id FROM new JOIN users u ON u.id = new.user_id"
)


async def rotate(
    conn: asyncpg.Connection, *, token_hash: bytes, new_hash: bytes, expires_at: datetime
) -> asyncpg.Record | None:
    """The happy path of a refresh in one statement: spend a live token, add its successor to the
    same family, return the user. None when the token is unknown, spent, revoked or expired (the
    caller then finds out which). The UPDATE's row lock makes two concurrent rotations of one
    token serialise; the second sees it spent and gets None."""
    return await conn.fetchrow(_ROTATE, token_hash, new_hash, expires_at)
