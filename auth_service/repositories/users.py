"""users and user_profiles."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import asyncpg

# Referral codes: 8 characters without look-alikes (no 0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8

USER_COLUMNS = (
    "id, email, password_hash, premium, referral_code, referred_by, confirmed, temporary_account,"
    " last_login, created_at, updated_at"
)
PROFILE_FIELDS = ("name", "avatar_url", "phone", "country", "language", "preferences", "onboarding_status")


def new_referral_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


async def get(conn: asyncpg.Connection, user_id: str, *, for_update: bool = False) -> asyncpg.Record | None:
    sql = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"
    return await conn.fetchrow(sql + (" FOR UPDATE" if for_update else ""), user_id)


async def get_by_email(conn: asyncpg.Connection, email: str, *, for_update: bool = False) -> asyncpg.Record | None:
    sql = f"SELECT {USER_COLUMNS} FROM users WHERE email = $1"
    return await conn.fetchrow(sql + (" FOR UPDATE" if for_update else ""), email)


async def get_by_referral_code(conn: asyncpg.Connection, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE referral_code = $1", code)


async def insert(
    conn: asyncpg.Connection,
    *,
    email: str | None,
    password_hash: str | None,
    confirmed: bool,
    temporary: bool,
    referred_by: str | None = None,
) -> asyncpg.Record:
    """A new user with a unique referral code, and its empty profile row (call in a transaction)."""
    for _ in range(5):
        try:
            async with conn.transaction():  # a savepoint: a code collision does not abort the caller's transaction
                row = await conn.fetchrow(
                    "INSERT INTO users (email, password_hash, confirmed, temporary_account, referred_by, referral_code)"
                    f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLUMNS}",
                    email,
                    password_hash,
                    confirmed,
                    temporary,
                    referred_by,
                    new_referral_code(),
                )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "users_referral_code_key":
                continue
            raise
        await conn.execute("INSERT INTO user_profiles (user_id) VALUES ($1)", row["id"])
        return row
    raise RuntimeError("could not draw a unique referral code")


async def set_signup(
    conn: asyncpg.Connection, user_id: str, *, email: str, password_hash: str, referred_by: str | None
) -> asyncpg.Record:
    """A pending (unconfirmed) account or a guest takes an email and password, awaiting verification."""
    return await conn.fetchrow(
        "UPDATE users SET email = $2, password_hash = $3, referred_by = COALESCE($4, referred_by), updated_at = now()"
        f" WHERE id = $1 RETURNING {USER_COLUMNS}",
        user_id,
        email,
        password_hash,
        referred_by,
    )


async def confirm(
    conn: asyncpg.Connection, user_id: str, *, email: str | None = None, clear_password: bool = False
) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE users SET confirmed = true, temporary_account = false, email = COALESCE($2, email),"
        " password_hash = CASE WHEN $3 THEN NULL ELSE password_hash END, updated_at = now()"
        f" WHERE id = $1 RETURNING {USER_COLUMNS}",
        user_id,
        email,
        clear_password,
    )


async def set_password(conn: asyncpg.Connection, user_id: str, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1", user_id, password_hash)


async def set_email(conn: asyncpg.Connection, user_id: str, email: str) -> asyncpg.Record:
    return await conn.fetchrow(
        f"UPDATE users SET email = $2, updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}", user_id, email
    )


async def exists(conn: asyncpg.Connection, user_id: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM users WHERE id = $1", user_id))


async def guest_flag(conn: asyncpg.Connection, user_id: str) -> bool | None:
    """Whether the user is a guest; None when there is no such user (a primary-key read)."""
    return await conn.fetchval("SELECT temporary_account FROM users WHERE id = $1", user_id)


async def set_referred_by(conn: asyncpg.Connection, user_id: str, referrer_id: str | None) -> None:
    await conn.execute("UPDATE users SET referred_by = $2, updated_at = now() WHERE id = $1", user_id, referrer_id)


async def touch_login(conn: asyncpg.Connection, user_id: str) -> None:
    await conn.execute("UPDATE users SET last_login = now() WHERE id = $1", user_id)


async def delete(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    """Deletes the user; profile, refresh tokens, codes and identities go with it (ON DELETE CASCADE)."""
    return await conn.fetchrow("DELETE FROM users WHERE id = $1 RETURNING id, email, temporary_account", user_id)


async def delete_pending(conn: asyncpg.Connection, user_id: str) -> None:
    """Removes a never-verified sign-up (it never had a token, so it holds no data anywhere)."""
    await conn.execute("DELETE FROM users WHERE id = $1 AND confirmed = false AND temporary_account = false", user_id)


async def set_premium(conn: asyncpg.Connection, user_id: str, tier: int, at: datetime) -> bool:
    """Applies a tier from a subscription event unless a later event already set one."""
    status = await conn.execute(
        "UPDATE users SET premium = $2, premium_updated_at = $3, updated_at = now()"
        " WHERE id = $1 AND (premium_updated_at IS NULL OR premium_updated_at <= $3)",
        user_id,
        tier,
        at,
    )
    return status.endswith(" 1")


async def get_profile(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT name, avatar_url, phone, country, language, preferences, onboarding_status, created_at, updated_at"
        " FROM user_profiles WHERE user_id = $1",
        user_id,
    )


async def update_profile(conn: asyncpg.Connection, user_id: str, changes: dict[str, Any]) -> asyncpg.Record:
    """Sets the given profile fields (names from PROFILE_FIELDS only) and returns the profile."""
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"not profile fields: {sorted(unknown)}")
    names = [f for f in PROFILE_FIELDS if f in changes]
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    sets = f"{assignments}, updated_at = now()" if names else "updated_at = now()"
    return await conn.fetchrow(
        f"UPDATE user_profiles SET {sets} WHERE user_id = $1"
        " RETURNING name, avatar_url, phone, country, language, preferences, onboarding_status, created_at, updated_at",
        user_id,
        *[changes[n] for n in names],
    )


U_COLUMNS = ", ".join("u." + c.strip() for c in USER_COLUMNS.split(","))
_GET_ME = (
    f"SELECT {U_COLUMNS},"
    " p.name, p.avatar_url, p.phone, p.country, p.language, p.preferences, p.onboarding_status,"
    " p.created_at AS profile_created_at, p.updated_at AS profile_updated_at, (p.user_id IS NOT NULL) AS has_profile,"
    " ARRAY(SELECT provider FROM oauth_identities i WHERE i.user_id = u.id ORDER BY provider) AS providers"
    " FROM users u LEFT JOIN user_profiles p ON p.user_id = u.id WHERE u.id = $1"
)


async def get_me(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    """The user, its profile and its linked providers in one round trip (GET /users/me)."""
    return await conn.fetchrow(_GET_ME, user_id)


async def release_pending_email(conn: asyncpg.Connection, user_id: str) -> None:
    """A guest's unverified email goes back to nobody (its code with it); the guest stays a guest."""
    await conn.execute(
        "UPDATE users SET email = NULL, password_hash = NULL, referred_by = NULL, updated_at = now()"
        " WHERE id = $1 AND temporary_account AND NOT confirmed",
        user_id,
    )
    await conn.execute("DELETE FROM otp_codes WHERE user_id = $1 AND purpose = 'verify'", user_id)
