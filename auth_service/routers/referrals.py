"""Referral codes: your own code and stats, and applying someone's code after sign-up
(auth_service.service.referrals)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from auth_service import errors
from auth_service.models import ReferralApply, ReferralInfo
from auth_service.repositories import users as users_repo
from auth_service.routers.deps import auth_of, current_account, limited
from shared.auth import CurrentUser
from shared.errors import USER_TOKEN_REQUIRED, documented

router = APIRouter(tags=["referrals"], responses=documented(USER_TOKEN_REQUIRED))
ACCOUNT = Depends(current_account)


@router.get("/referrals/me", response_model=ReferralInfo, responses=documented(errors.USER_NOT_FOUND))
async def my_referrals(request: Request, caller: CurrentUser = ACCOUNT):
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        user = await users_repo.get(conn, caller.user_id)
        if user is None:
            raise errors.USER_NOT_FOUND()
        return await auth.referral_info(conn, user)


@router.post(
    "/referrals/apply",
    response_model=ReferralInfo,
    dependencies=[limited("referral", "rate_limit_signup_per_minute")],
    responses=documented(
        errors.USER_NOT_FOUND,
        errors.ACCOUNT_REQUIRED,
        errors.INVALID_REFERRAL_CODE,
        errors.SELF_REFERRAL,
        errors.REFERRAL_ALREADY_APPLIED,
        errors.REFERRAL_WINDOW_CLOSED,
    ),
)
async def apply_referral(body: ReferralApply, request: Request, caller: CurrentUser = ACCOUNT):
    """Retroactive referral: once per user, within REFERRAL_WINDOW_DAYS of sign-up, never your own
    code; both sides get the bonus (referral.completed, granted by Payment)."""
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            info, notice = await auth.apply_referral(conn, caller.user_id, body.code)
    await auth.send_referral_notices([notice] if notice else [])
    return info
