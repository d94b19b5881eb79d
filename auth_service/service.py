"""The auth service's flows shared by its routers: token pairs, codes, account confirmation,
referrals. Routers validate input and shape answers; repositories hold the SQL; this module holds
the rules (and runs inside the callers' transactions)."""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
from fastapi import Depends, Request

from auth_service.emails import EmailDeliveryError, Mailer
from auth_service.oauth import OAuthProviders
from auth_service.passwords import Passwords
from auth_service.repositories import identities as identities_repo
from auth_service.repositories import referrals as referrals_repo
from auth_service.repositories import tokens as tokens_repo
from auth_service.repositories import users as users_repo
from auth_service.settings import Settings
from shared.auth import TIER_NAMES, CurrentUser, get_current_user, mint_access_token
from shared.bus import emit
from shared.errors import APIError
from shared.tiers import REFERRAL_BONUS_REFERRED, REFERRAL_BONUS_REFERRER
from shared.events import EventType, make_event
from shared.ratelimit import RateLimit

log = logging.getLogger("auth_service")


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


class Auth:
    """Per-app state (app.state.auth): settings, pools and clients the flows need."""

    def __init__(self, app, settings: Settings, passwords: Passwords, mailer: Mailer, oauth: OAuthProviders):
        self.app = app
        self.settings = settings
        self.passwords = passwords
        self.mailer = mailer
        self.oauth = oauth

    @property
    def pool(self) -> asyncpg.Pool:
        return self.app.state.db

    # -- codes -------------------------------------------------------------------------------
    def code_hash(self, user_id: Any, purpose: str, code: str) -> str:
        message = f"{user_id}:{purpose}:{code}".encode()
        return hmac.new(self.settings.otp_key, message, hashlib.sha256).hexdigest()

    def code_matches(self, stored: str, user_id: Any, purpose: str, code: str) -> bool:
        return hmac.compare_digest(stored, self.code_hash(user_id, purpose, code))

    async def cooldown(self, scope: str, email: str) -> None:
        """One code per address per OTP_RESEND_COOLDOWN_SECONDS, whether or not the address has an
        account (so the answer reveals nothing). Redis down: no cooldown (the per-client limit holds)."""
        seconds = self.settings.otp_resend_cooldown_seconds
        if seconds <= 0:
            return
        state = self.app.state
        digest = hashlib.sha256(email.encode()).hexdigest()[:32]
        key = state.keys("auth", "cooldown", scope, digest)
        try:
            fresh = await state.redis.set(key, "1", nx=True, ex=seconds)
            if fresh:
                return
            ttl = await state.redis.ttl(key)
        except Exception as exc:  # redis down: let it through
            log.warning("code cooldown skipped: redis unavailable", extra={"error": repr(exc)})
            return
        retry = max(1, int(ttl) if ttl and ttl > 0 else seconds)
        raise APIError(
            429,
            "RATE_LIMITED",
            f"A code was sent to this address moments ago; wait {retry} s before asking for another.",
            headers={"Retry-After": str(retry)},
            retry_after=retry,
        )

    async def release_cooldown(self, scope: str, email: str) -> None:
        state = self.app.state
        digest = hashlib.sha256(email.encode()).hexdigest()[:32]
        try:
            await state.redis.delete(state.keys("auth", "cooldown", scope, digest))
        except Exception:
            pass

    async def send_code(self, template: str, email: str, code: str, *, cooldown_scope: str, user_id: Any = None) -> None:
        try:
            await self.mailer.send(template, email, code=code)
        except EmailDeliveryError:
            await self.release_cooldown(cooldown_scope, email)
            extra = {"user_id": str(user_id)} if user_id else {}
            raise APIError(
                503,
                "EMAIL_DELIVERY_FAILED",
                "We could not send the email right now; nothing was lost, ask for a new code in a moment.",
                headers={"Retry-After": "5"},
                **extra,
            ) from None

    # -- tokens ------------------------------------------------------------------------------
    def refresh_expiry(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(days=self.settings.refresh_token_ttl_days)

    async def issue_pair(self, conn: asyncpg.Connection, user: asyncpg.Record, *, family_id: Any = None, provider: str = "email") -> dict:
        refresh = secrets.token_urlsafe(48)
        family = str(family_id or uuid.uuid4())
        await tokens_repo.insert(
            conn, user_id=user["id"], family_id=family, token_hash=hash_refresh_token(refresh), expires_at=self.refresh_expiry()
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
            extra_claims={"app_metadata": {"provider": "anonymous" if is_guest else provider, "tier": int(user["premium"])}},
        )
        return {"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": self.settings.access_token_ttl_seconds}

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
            "tier_name": TIER_NAMES.get(int(user["premium"]), "free"),
            "referral_code": user["referral_code"],
            "referred_by": str(user["referred_by"]) if user["referred_by"] and user["confirmed"] else None,
            "has_password": user["password_hash"] is not None,
            "providers": providers,
            "created_at": user["created_at"],
            "last_login": user["last_login"],
            "profile": profile,
        }

    async def auth_result(self, conn: asyncpg.Connection, user: asyncpg.Record, *, provider: str = "email", family_id: Any = None) -> dict:
        pair = await self.issue_pair(conn, user, provider=provider, family_id=family_id)
        return {**pair, "user": await self.user_out(conn, user)}

    # -- accounts ----------------------------------------------------------------------------
    async def emit_created(self, conn: asyncpg.Connection, user: asyncpg.Record, *, is_guest: bool) -> None:
        await emit(
            conn,
            make_event(
                EventType.USER_CREATED,
                str(user["id"]),
                {
                    "email": user["email"],
                    "referral_code": user["referral_code"],
                    "referred_by": str(user["referred_by"]) if user["referred_by"] else None,
                    "is_guest": is_guest,
                },
                source="auth_service",
            ),
        )

    async def emit_updated(self, conn: asyncpg.Connection, user_id: Any, changed: list[str], **data: Any) -> None:
        await emit(conn, make_event(EventType.USER_UPDATED, str(user_id), {"changed": changed, **data}, source="auth_service"))

    async def confirm(
        self, conn: asyncpg.Connection, user: asyncpg.Record, *, email: str | None = None, clear_password: bool = False
    ) -> tuple[asyncpg.Record, list[dict]]:
        """Marks an account confirmed (email verified or proven by an OAuth provider).

        A pending sign-up becomes a user now: `user.created` (with its referral) is emitted and a
        referral chosen at sign-up completes. A guest becoming an account keeps its id; it was
        announced as a guest already, so it gets `user.updated`. Returns the updated user and the
        referral emails to send after commit.
        """
        was_guest = bool(user["temporary_account"])
        updated = await users_repo.confirm(conn, user["id"], email=email, clear_password=clear_password)
        notices: list[dict] = []
        referrer = None
        if updated["referred_by"]:
            referrer = await users_repo.get(conn, updated["referred_by"])
            if referrer is None or not referrer["confirmed"]:
                await users_repo.set_referred_by(conn, updated["id"], None)
                updated = await users_repo.get(conn, updated["id"])
                referrer = None
        if was_guest:
            await self.emit_updated(
                conn, updated["id"], ["email", "confirmed", "is_guest"], email=updated["email"], is_guest=False,
                referred_by=str(referrer["id"]) if referrer else None,
            )
        else:
            await self.emit_created(conn, updated, is_guest=False)
        if referrer is not None:
            _, notice = await self.complete_referral(conn, referrer, updated)
            if notice:
                notices.append(notice)
        return updated, notices

    # -- referrals ---------------------------------------------------------------------------
    async def complete_referral(
        self, conn: asyncpg.Connection, referrer: asyncpg.Record, referred: asyncpg.Record
    ) -> tuple[bool, dict | None]:
        """Records the referral and emits referral.completed; (False, None) when this user was
        already referred. The dict is the referrer's email notice, to send after commit."""
        bonus = REFERRAL_BONUS_REFERRER
        if not await referrals_repo.insert(
            conn, referrer_id=referrer["id"], referred_id=referred["id"], code=referrer["referral_code"], bonus_credits=bonus
        ):
            return False, None
        await users_repo.set_referred_by(conn, referred["id"], referrer["id"])
        await emit(
            conn,
            make_event(
                EventType.REFERRAL_COMPLETED,
                str(referred["id"]),
                {
                    "referrer_id": str(referrer["id"]),
                    "referred_id": str(referred["id"]),
                    "code": referrer["referral_code"],
                    "bonus_credits": bonus,
                    "bonus_referred": REFERRAL_BONUS_REFERRED,
                },
                source="auth_service",
            ),
        )
        if not referrer["email"]:
            return True, None
        stats = await referrals_repo.stats(conn, referrer["id"])
        return True, {"to": referrer["email"], "code": referrer["referral_code"], "bonus_credits": bonus, "referral_count": stats["count"]}

    async def send_referral_notices(self, notices: list[dict]) -> None:
        """After commit, best effort: the referral stands whether or not the email goes out."""
        for notice in notices:
            to = notice.pop("to")
            try:
                await self.mailer.send("referral_completed", to, **notice)
            except EmailDeliveryError:
                log.warning("referral email not delivered")

    async def referrer_for_code(self, conn: asyncpg.Connection, code: str, *, user_id: Any = None) -> asyncpg.Record:
        referrer = await users_repo.get_by_referral_code(conn, code)
        if referrer is None or not referrer["confirmed"]:
            raise APIError(400, "INVALID_REFERRAL_CODE", "That referral code does not exist.")
        if user_id is not None and str(referrer["id"]) == str(user_id):
            raise APIError(400, "SELF_REFERRAL", "You cannot use your own referral code.")
        return referrer


def auth_of(request: Request) -> Auth:
    return request.app.state.auth


def limited(scope: str, setting: str):
    """A per-route Redis rate limit whose size comes from the service's settings."""

    async def dependency(request: Request) -> None:
        limit = getattr(request.app.state.settings, setting)
        if limit > 0:
            await RateLimit(limit, 60, scope=f"auth:{scope}")(request)

    return Depends(dependency)


async def current_account(user: CurrentUser = Depends(get_current_user)) -> CurrentUser:
    """A user token (not a service token) whose subject is a user id."""
    if user.is_service:
        raise APIError(403, "USER_TOKEN_REQUIRED", "This route needs a user's token.")
    try:
        uuid.UUID(user.user_id)
    except ValueError:
        raise APIError(401, "INVALID_TOKEN", "The token's subject is not a user.", headers={"WWW-Authenticate": "Bearer"}) from None
    return user


def not_found() -> APIError:
    return APIError(404, "USER_NOT_FOUND", "This account no longer exists.")
