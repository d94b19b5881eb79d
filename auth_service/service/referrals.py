"""Referrals: a code's owner, the referral recorded (`referral.completed`, the bonus granted by
Payment), the referrer's email after commit, and applying a code after sign-up."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import asyncpg

from auth_service import errors
from auth_service.emails import EmailDeliveryError
from auth_service.repositories import referrals as referrals_repo
from auth_service.repositories import users as users_repo
from auth_service.service.base import AuthBase
from shared.bus import emit
from shared.events import EventType, make_event
from shared.tiers import REFERRAL_BONUS_REFERRED, REFERRAL_BONUS_REFERRER

log = logging.getLogger("auth_service")


class Referrals(AuthBase):
    async def complete_referral(
        self, conn: asyncpg.Connection, referrer: asyncpg.Record, referred: asyncpg.Record
    ) -> tuple[bool, dict | None]:
        """Records the referral and emits referral.completed; (False, None) when this user was
        already referred. The dict is the referrer's email notice, to send after commit."""
        bonus = REFERRAL_BONUS_REFERRER
        if not await referrals_repo.insert(
            conn,
            referrer_id=referrer["id"],
            referred_id=referred["id"],
            code=referrer["referral_code"],
            bonus_credits=bonus,
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
        return True, {
            "to": referrer["email"],
            "code": referrer["referral_code"],
            "bonus_credits": bonus,
            "referral_count": stats["count"],
        }

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
            raise errors.INVALID_REFERRAL_CODE()
        if user_id is not None and str(referrer["id"]) == str(user_id):
            raise errors.SELF_REFERRAL()
        return referrer

    async def referral_info(self, conn: asyncpg.Connection, user: asyncpg.Record) -> dict:
        stats = await referrals_repo.stats(conn, user["id"])
        mine = await referrals_repo.for_referred(conn, user["id"])
        deadline = user["created_at"] + timedelta(days=self.settings.referral_window_days)
        return {
            "code": user["referral_code"],
            "referral_count": stats["count"],
            "bonus_earned": stats["bonus"],
            "bonus_per_referral": REFERRAL_BONUS_REFERRER,
            "referred_by": str(mine["referrer_id"]) if mine and mine["referrer_id"] else None,
            "referral_bonus_received": REFERRAL_BONUS_REFERRED if mine else 0,
            "can_apply": mine is None and user["confirmed"],
            "apply_deadline": deadline if mine is None else None,
        }

    async def apply_referral(self, conn: asyncpg.Connection, user_id: Any, code: str) -> tuple[dict, dict | None]:
        """Retroactive referral, in the caller's transaction: once per user, by a verified account,
        within REFERRAL_WINDOW_DAYS of sign-up, never your own code. Returns the user's referral
        info and the referrer's email notice to send after commit."""
        user = await users_repo.get(conn, user_id, for_update=True)
        if user is None:
            raise errors.USER_NOT_FOUND()
        if not user["confirmed"]:
            raise errors.ACCOUNT_REQUIRED()
        referrer = await self.referrer_for_code(conn, code, user_id=user["id"])
        if await referrals_repo.for_referred(conn, user["id"]) is not None:
            raise errors.REFERRAL_ALREADY_APPLIED()
        window_days = self.settings.referral_window_days
        if await conn.fetchval("SELECT now() > $1::timestamptz", user["created_at"] + timedelta(days=window_days)):
            raise errors.REFERRAL_WINDOW_CLOSED(f"Referral codes can be applied within {window_days} days of sign-up.")
        applied, notice = await self.complete_referral(conn, referrer, user)
        if not applied:
            raise errors.REFERRAL_ALREADY_APPLIED()
        user = await users_repo.get(conn, user["id"])
        return await self.referral_info(conn, user), notice
