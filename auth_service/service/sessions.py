"""Sessions: refresh tokens (stored hashed, rotated by family) and the access token minted with
each pair; the user as the API shows them."""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from auth_service import errors
from auth_service.repositories import identities as identities_repo
from auth_service.repositories import tokens as tokens_repo
from auth_service.repositories import users as users_repo
from auth_service.service.base import AuthBase, hash_refresh_token
from shared.auth import mint_access_token
from shared.tiers import tier_name

log = logging.getLogger("auth_service.tokens")
BEARER = {"WWW-Authenticate": "Bearer"}


class Sessions(AuthBase):
    def refresh_expiry(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=self.settings.refresh_token_ttl_days)

    async def issue_pair(
        self, conn: asyncpg.Connection, user: asyncpg.Record, *, family_id: Any = None, provider: str = "email"
    ) -> dict:
        refresh = secrets.token_urlsafe(48)
        family = str(family_id or uuid.uuid4())
        await tokens_repo.insert(
            conn,
            user_id=user["id"],
            family_id=family,
            token_hash=hash_refresh_token(refresh),
            expires_at=self.refresh_expiry(),
        )
        return self.pair(user, refresh, family, provider)

    def pair(self, user, refresh: str, family: Any, provider: str = "email") -> dict:
        """The answer for a user whose refresh token is already stored: mints the access token."""
        family = str(family)
        is_guest = bool(user["temporary_account"]) and not user["confirmed"]
        access = mint_access_token(
            self.settings.supabase_jwt_secret,
            user_id=str(user["id"]),
            email=user["email"],
            tier=int(user["premium"]),
            expires_in=self.settings.access_token_ttl_seconds,
            issuer=self.settings.jwt_issuer,
            session_id=family,
            is_anonymous=is_guest,
            extra_claims={
                "app_metadata": {"provider": "anonymous" if is_guest else provider, "tier": int(user["premium"])}
            },
        )
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": self.settings.access_token_ttl_seconds,
        }

    async def user_out(self, conn: asyncpg.Connection, user: asyncpg.Record, *, with_profile: bool = True) -> dict:
        profile = await users_repo.get_profile(conn, user["id"]) if with_profile else None
        providers = await identities_repo.providers_for(conn, user["id"])
        return self.user_view(user, dict(profile) if profile is not None else None, providers)

    def user_view(self, user, profile: dict | None, providers: list[str]) -> dict:
        return {
            "id": str(user["id"]),
            "email": user["email"],
            "confirmed": user["confirmed"],
            "is_guest": bool(user["temporary_account"]) and not user["confirmed"],
            "tier": int(user["premium"]),
            "tier_name": tier_name(int(user["premium"])),
            "referral_code": user["referral_code"],
            "referred_by": str(user["referred_by"]) if user["referred_by"] and user["confirmed"] else None,
            "has_password": user["password_hash"] is not None,
            "providers": providers,
            "created_at": user["created_at"],
            "last_login": user["last_login"],
            "profile": profile,
        }

    async def auth_result(
        self, conn: asyncpg.Connection, user: asyncpg.Record, *, provider: str = "email", family_id: Any = None
    ) -> dict:
        pair = await self.issue_pair(conn, user, provider=provider, family_id=family_id)
        return {**pair, "user": await self.user_out(conn, user)}

    async def refresh(self, refresh_token: str) -> dict:
        """Trades a refresh token for a new pair. The old token is spent; presenting a spent token
        again means it leaked (or a client retried), so its whole family is revoked."""
        token_hash = hash_refresh_token(refresh_token)
        new_refresh = secrets.token_urlsafe(48)
        reused = None
        async with self.pool.acquire() as conn:
            # Happy path: one statement (spend, add the successor, read the user's current tier).
            user = await tokens_repo.rotate(
                conn, token_hash=token_hash, new_hash=hash_refresh_token(new_refresh), expires_at=self.refresh_expiry()
            )
            if user is not None:
                return self.pair(user, new_refresh, user["family_id"])
            # Otherwise find out why, under the row lock, and revoke the family on reuse.
            async with conn.transaction():
                row = await tokens_repo.get_for_update(conn, token_hash)
                if row is None:
                    raise errors.INVALID_REFRESH_TOKEN(headers=BEARER)
                if row["rotated_at"] is not None or row["revoked_at"] is not None:
                    revoked = await tokens_repo.revoke_family(conn, row["family_id"])
                    reused = (str(row["user_id"]), revoked)
                elif row["expired"]:
                    raise errors.REFRESH_TOKEN_EXPIRED(headers=BEARER)
                else:
                    user = await users_repo.get(conn, row["user_id"])
                    await tokens_repo.mark_rotated(conn, row["id"])
                    pair = await self.issue_pair(conn, user, family_id=row["family_id"])
        if reused is not None:
            log.warning(
                "refresh token reuse: session revoked", extra={"user_id": reused[0], "tokens_revoked": reused[1]}
            )
            raise errors.REFRESH_TOKEN_REUSED(headers=BEARER)
        return pair

    async def logout(self, refresh_token: str) -> None:
        """Ends the session the refresh token belongs to (its whole family); nothing for an unknown
        or already revoked token."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                row = await tokens_repo.get_for_update(conn, hash_refresh_token(refresh_token))
                if row is not None:
                    await tokens_repo.revoke_family(conn, row["family_id"])
