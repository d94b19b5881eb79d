"""A user's life cycle as the rest of the fleet sees it: `user.created` / `user.updated`, and an
account confirmed (email verified or proven by an OAuth provider), which completes its referral."""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
import orjson

from auth_service import errors
from auth_service.repositories import users as users_repo
from auth_service.service.referrals import Referrals
from shared import tombstones
from shared.bus import emit, erase_published
from shared.events import EventType, make_event
from shared.tombstones import record_deletion

log = logging.getLogger("auth_service.users")

# Profile values that travel in user.updated (phone and preferences stay here).
PUBLIC_FIELDS = ("name", "avatar_url", "country", "language", "onboarding_status")


class Users(Referrals):
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
        await emit(
            conn, make_event(EventType.USER_UPDATED, str(user_id), {"changed": changed, **data}, source="auth_service")
        )

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
                conn,
                updated["id"],
                ["email", "confirmed", "is_guest"],
                email=updated["email"],
                is_guest=False,
                referred_by=str(referrer["id"]) if referrer else None,
            )
        else:
            await self.emit_created(conn, updated, is_guest=False)
        if referrer is not None:
            _, notice = await self.complete_referral(conn, referrer, updated)
            if notice:
                notices.append(notice)
        return updated, notices

    async def update_profile(self, user_id: str, changes: dict[str, Any]) -> dict:
        """Applies the profile fields given (a null `preferences` empties them) and announces the
        public ones in user.updated."""
        if "preferences" in changes:
            if changes["preferences"] is None:
                changes["preferences"] = {}
            size = len(orjson.dumps(changes["preferences"]))
            limit = self.settings.preferences_max_bytes
            if size > limit:
                raise errors.PREFERENCES_TOO_LARGE(
                    f"preferences is {size} bytes; the limit is {limit}.", max_bytes=limit
                )
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                if await users_repo.get(conn, user_id, for_update=True) is None:
                    raise errors.USER_NOT_FOUND()
                profile = await users_repo.update_profile(conn, user_id, changes)
                if changes:
                    public = {k: changes[k] for k in PUBLIC_FIELDS if k in changes}
                    await self.emit_updated(conn, user_id, sorted(changes), profile=public)
        return dict(profile)

    async def user_existence(self, user_id: str) -> dict[str, Any]:
        """What another service needs to accept a token's subject (shared.known_users): the user
        exists (a guest or not); otherwise 404, saying whether Auth deleted them within the access
        tokens' lifetime (this process's tombstones, then Redis'), or never had them."""
        async with self.pool.acquire() as conn:
            is_guest = await users_repo.guest_flag(conn, user_id)
        if is_guest is not None:
            return {"user_id": user_id, "is_guest": is_guest}
        state = self.app.state
        deleted = user_id in state.tombstones
        if not deleted:
            try:
                deleted = await state.redis.zscore(tombstones.redis_key(state.keys), user_id) is not None
            except Exception:  # Redis down: the user does not exist either way
                deleted = False
        raise errors.NO_SUCH_USER(deleted=deleted)

    async def delete_account(self, user_id: str) -> None:
        """Deletes the account, its profile, codes, identities and refresh tokens (so nothing can
        be refreshed), and publishes user.deleted so every service erases its data and refuses
        the user's access tokens still in circulation (shared.tombstones) until they expire."""
        tokens_valid_until = time.time() + self.settings.access_token_ttl_seconds
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                deleted = await users_repo.delete(conn, user_id)
                if deleted is None:
                    raise errors.USER_NOT_FOUND(headers={"WWW-Authenticate": "Bearer"})
                # The events already published that name the user (user.created's email) go now;
                # the user.deleted below is owed to the bus, and goes with the retention sweep.
                await erase_published(conn, user_id)
                await emit(
                    conn,
                    make_event(
                        EventType.USER_DELETED,
                        user_id,
                        {"was_guest": bool(deleted["temporary_account"]), "tokens_valid_until": tokens_valid_until},
                        source="auth_service",
                    ),
                )
        # After the commit (a deletion rolled back must not lock anyone out): refused by this
        # process at once, by processes starting later from Redis, by the rest from the event.
        state = self.app.state
        state.tombstones.add(user_id, tokens_valid_until)
        try:
            await record_deletion(state.redis, tombstones.redis_key(state.keys), user_id, tokens_valid_until)
        except Exception as exc:  # Redis down: the event still reaches every running process
            log.warning("deleted user not recorded in redis", extra={"user_id": user_id, "error": repr(exc)})
