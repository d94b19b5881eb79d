"""Email accounts: sign-up with a 6-digit code, login, guests, password reset (the flows are in
auth_service.service.accounts)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from auth_service import errors
from auth_service.models import AuthResult, CreateAccount, EmailBody, Login, PasswordReset, SignupAccepted, VerifyOtp
from auth_service.routers.deps import auth_of, limited
from shared.auth import CurrentUser, get_optional_user
from shared.errors import RATE_LIMITED, documented

router = APIRouter(tags=["accounts"])

CODE_ERRORS = documented(errors.INVALID_CODE, errors.CODE_EXPIRED, errors.CODE_LOCKED)


@router.post(
    "/create-account",
    status_code=201,
    response_model=SignupAccepted,
    dependencies=[limited("signup", "rate_limit_signup_per_minute")],
    responses=documented(
        errors.EMAIL_TAKEN,
        errors.INVALID_REFERRAL_CODE,
        errors.SELF_REFERRAL,
        errors.EMAIL_DELIVERY_FAILED,
        RATE_LIMITED,
    ),
)
async def create_account(
    body: CreateAccount, request: Request, guest_claims: CurrentUser | None = Depends(get_optional_user)
):
    """Starts a sign-up: emails a 6-digit code. Called with a guest's token, the guest becomes
    this account (same user id, its data kept) once the code is verified."""
    user = await auth_of(request).start_signup(body.email, body.password, body.referral_code, guest_claims)
    return {"user_id": str(user["id"]), "status": "pending_verification"}


@router.post(
    "/verify-otp",
    response_model=AuthResult,
    dependencies=[limited("otp-verify", "rate_limit_otp_verify_per_minute")],
    responses=CODE_ERRORS,
)
async def verify_otp(body: VerifyOtp, request: Request):
    return await auth_of(request).verify_signup(body.email, body.code)


@router.post(
    "/resend-otp",
    status_code=202,
    dependencies=[limited("otp-resend", "rate_limit_otp_resend_per_minute")],
    responses=documented(RATE_LIMITED),
)
async def resend_otp(body: EmailBody, request: Request):
    """202 whether or not the address has a pending sign-up; the email goes out in the background
    so the timing does not tell either."""
    await auth_of(request).resend_signup_code(body.email)
    return {"status": "accepted", "message": "If this address is waiting for verification, a new code is on its way."}


@router.post(
    "/login",
    response_model=AuthResult,
    dependencies=[limited("login", "rate_limit_login_per_minute")],
    responses=documented(errors.INVALID_CREDENTIALS, errors.EMAIL_NOT_VERIFIED),
)
async def login(body: Login, request: Request):
    return await auth_of(request).login(body.email, body.password)


@router.post(
    "/guest", status_code=201, response_model=AuthResult, dependencies=[limited("guest", "rate_limit_guest_per_minute")]
)
async def create_guest(request: Request):
    """A temporary account to try the app (the plan's `temporary_account`); POST /create-account
    or an OAuth sign-in with its token later turns it into a real account with the same id."""
    return await auth_of(request).create_guest()


@router.post(
    "/password/forgot",
    status_code=202,
    dependencies=[limited("password", "rate_limit_password_per_minute")],
    responses=documented(RATE_LIMITED),
)
async def forgot_password(body: EmailBody, request: Request):
    """202 whether or not the address has an account; the email goes out in the background."""
    await auth_of(request).forgot_password(body.email)
    return {"status": "accepted", "message": "If this address has an account, a reset code is on its way."}


@router.post(
    "/password/reset",
    status_code=204,
    dependencies=[limited("password-reset", "rate_limit_otp_verify_per_minute")],
    responses=CODE_ERRORS,
)
async def reset_password(body: PasswordReset, request: Request):
    """Sets a new password with the emailed code and signs out every session (refresh tokens revoked)."""
    await auth_of(request).reset_password(body.email, body.code, body.new_password)
    return Response(status_code=204)
