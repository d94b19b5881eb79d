"""Referral codes: your own code and stats, and applying someone's code after sign-up."""
from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request

from auth_service.service import auth_of, current_account, limited, not_found
from auth_service.models import ReferralApply, ReferralInfo
from auth_service.repositories import referrals as referrals_repo
from auth_service.repositories import users as users_repo
from shared.auth import CurrentUser
from shared.errors import APIError
from shared.tiers import REFERRAL_BONUS_REFERRED, REFERRAL_BONUS_REFERRER

router = APIRouter(tags=["referrals"])


async def _info(auth, conn, user) -> dict:
    stats = await referrals_repo.stats(conn, user["id"])
    mine = await referrals_repo.for_referred(conn, user["id"])
    deadline = user["created_at"] + timedelta(days=auth.settings.referral_window_days)
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


@router.get("/referrals/me", response_model=ReferralInfo)
async def my_referrals(request: Request, caller: CurrentUser = Depends(current_account)):
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        user = await users_repo.get(conn, caller.user_id)
        if user is None:
            raise not_found()
        return await _info(auth, conn, user)


@router.post("/referrals/apply", response_model=ReferralInfo, dependencies=[limited("referral", "rate_limit_signup_per_minute")])
async def apply_referral(body: ReferralApply, request: Request, caller: CurrentUser = Depends(current_account)):
    """Retroactive referral: once per user, within REFERRAL_WINDOW_DAYS of sign-up, never your own
    code; both sides get the bonus (referral.completed, granted by Payment)."""
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            user = await users_repo.get(conn, caller.user_id, for_update=True)
            if user is None:
                raise not_found()
            if not user["confirmed"]:
                raise APIError(403, "ACCOUNT_REQUIRED", "Create an account (and verify its email) to use a referral code.")
            referrer = await auth.referrer_for_code(conn, body.code, user_id=user["id"])
            if await referrals_repo.for_referred(conn, user["id"]) is not None:
                raise APIError(409, "REFERRAL_ALREADY_APPLIED", "You have already used a referral code.")
            window = timedelta(days=auth.settings.referral_window_days)
            if await conn.fetchval("SELECT now() > $1::timestamptz", user["created_at"] + window):
                raise APIError(
                    409, "REFERRAL_WINDOW_CLOSED", f"Referral codes can be applied within {auth.settings.referral_window_days} days of sign-up."
                )
            applied, notice = await auth.complete_referral(conn, referrer, user)
            if not applied:
                raise APIError(409, "REFERRAL_ALREADY_APPLIED", "You have already used a referral code.")
            user = await users_repo.get(conn, user["id"])
            info = await _info(auth, conn, user)
    await auth.send_referral_notices([notice] if notice else [])
    return info
