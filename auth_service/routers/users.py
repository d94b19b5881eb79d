"""The signed-in user's own account: read, edit the profile, delete. Every route acts on the
token's subject only; there is no route that takes another user's id."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from auth_service import errors
from auth_service.models import (
    EmailChange,
    EmailChangeAccepted,
    EmailChangeCode,
    PasswordChange,
    Profile,
    ProfileUpdate,
    UserOut,
)
from auth_service.repositories import users as users_repo
from auth_service.routers.deps import auth_of, current_account, limited
from shared.auth import CurrentUser
from shared.errors import RATE_LIMITED, USER_TOKEN_REQUIRED, documented

router = APIRouter(tags=["users"], responses=documented(USER_TOKEN_REQUIRED))
ACCOUNT = Depends(current_account)


@router.get("/users/me", response_model=UserOut, responses=documented(errors.USER_NOT_FOUND))
async def me(request: Request, caller: CurrentUser = ACCOUNT):
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        row = await users_repo.get_me(conn, caller.user_id)
    if row is None:
        raise errors.USER_NOT_FOUND()
    profile = (
        {
            "name": row["name"],
            "avatar_url": row["avatar_url"],
            "phone": row["phone"],
            "country": row["country"],
            "language": row["language"],
            "preferences": row["preferences"],
            "onboarding_status": row["onboarding_status"],
            "created_at": row["profile_created_at"],
            "updated_at": row["profile_updated_at"],
        }
        if row["has_profile"]
        else None
    )
    return auth.user_view(row, profile, list(row["providers"]))


@router.put(
    "/users/me/details",
    response_model=Profile,
    responses=documented(errors.USER_NOT_FOUND, errors.PREFERENCES_TOO_LARGE),
)
async def update_details(body: ProfileUpdate, request: Request, caller: CurrentUser = ACCOUNT):
    return await auth_of(request).update_profile(caller.user_id, body.model_dump(exclude_unset=True))


@router.delete("/users/me", status_code=204, responses=documented(errors.USER_NOT_FOUND))
async def delete_me(request: Request, caller: CurrentUser = ACCOUNT):
    """Deletes the account, its profile, codes, identities and refresh tokens (so no token can be
    refreshed), and publishes user.deleted so every service erases its data. Access tokens
    already issued are refused from then on: here at once, by every other service as soon as it
    has heard the event (401 `USER_DELETED`)."""
    await auth_of(request).delete_account(caller.user_id)
    return Response(status_code=204)


@router.post(
    "/users/me/email",
    status_code=202,
    response_model=EmailChangeAccepted,
    dependencies=[limited("email-change", "rate_limit_otp_resend_per_minute")],
    responses=documented(
        errors.EMAIL_TAKEN, errors.EMAIL_UNCHANGED, errors.ACCOUNT_REQUIRED, errors.EMAIL_DELIVERY_FAILED, RATE_LIMITED
    ),
)
async def request_email_change(body: EmailChange, request: Request, caller: CurrentUser = ACCOUNT):
    """Emails a 6-digit code to the new address; the email changes when the code is confirmed
    (POST /users/me/email/verify). 409 `EMAIL_TAKEN` if another account has the address."""
    await auth_of(request).request_email_change(caller.user_id, body.new_email)
    return {"status": "pending_verification", "new_email": body.new_email}


@router.post(
    "/users/me/email/verify",
    response_model=UserOut,
    dependencies=[limited("email-change-verify", "rate_limit_otp_verify_per_minute")],
    responses=documented(
        errors.INVALID_CODE,
        errors.CODE_EXPIRED,
        errors.CODE_LOCKED,
        errors.NO_PENDING_EMAIL_CHANGE,
        errors.EMAIL_TAKEN,
        errors.ACCOUNT_REQUIRED,
    ),
)
async def confirm_email_change(body: EmailChangeCode, request: Request, caller: CurrentUser = ACCOUNT):
    """The code from the new address: the account's email becomes it (`user.updated`), and the old
    address gets a notice. Tokens minted from now on (the next refresh) carry the new email."""
    return await auth_of(request).confirm_email_change(caller.user_id, body.code)


@router.post(
    "/users/me/password",
    status_code=204,
    dependencies=[limited("password-change", "rate_limit_password_per_minute")],
    responses=documented(errors.WRONG_PASSWORD, errors.PASSWORD_NOT_SET),
)
async def change_password(body: PasswordChange, request: Request, caller: CurrentUser = ACCOUNT):
    """A new password, the current one required. Every other session is signed out (its refresh
    tokens revoked); this one (the token's `session_id`) stays."""
    await auth_of(request).change_password(
        caller.user_id, caller.claims.get("session_id"), body.current_password, body.new_password
    )
    return Response(status_code=204)
