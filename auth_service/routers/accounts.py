"""Email accounts: sign-up with a 6-digit code, login, guests, password reset."""
from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response

from auth_service.service import Auth, auth_of, limited
from auth_service.service import new_code
from auth_service.emails import EmailDeliveryError
from auth_service.models import AuthResult, CreateAccount, EmailBody, Login, PasswordReset, SignupAccepted, VerifyOtp
from auth_service.repositories import otp as otp_repo
from auth_service.repositories import tokens as tokens_repo
from auth_service.repositories import users as users_repo
from shared.auth import get_optional_user
from shared.errors import APIError

log = logging.getLogger("auth_service.accounts")
router = APIRouter(tags=["accounts"])

OK, INVALID, EXPIRED, LOCKED, WRONG = "ok", "invalid", "expired", "locked", "wrong"


async def _check_code(auth: Auth, conn, user, purpose: str, code: str) -> tuple[str, int]:
    """Checks a code inside the caller's transaction; a wrong guess is counted there."""
    if user is None:
        return INVALID, 0
    row = await otp_repo.get_for_update(conn, user["id"], purpose)
    if row is None:
        return INVALID, 0
    if row["attempts"] >= auth.settings.otp_max_attempts:
        return LOCKED, 0
    if row["expired"]:
        return EXPIRED, 0
    if auth.code_matches(row["code_hash"], user["id"], purpose, code):
        await otp_repo.delete(conn, user["id"], purpose)
        return OK, 0
    attempts = await otp_repo.add_attempt(conn, user["id"], purpose)
    remaining = auth.settings.otp_max_attempts - attempts
    return (WRONG, remaining) if remaining > 0 else (LOCKED, 0)


def _code_error(outcome: str, remaining: int, resend_hint: str) -> APIError:
    if outcome == LOCKED:
        return APIError(
            429, "CODE_LOCKED", f"Too many wrong codes; this code is locked. Ask for a new one ({resend_hint}).", attempts_remaining=0
        )
    if outcome == EXPIRED:
        return APIError(400, "CODE_EXPIRED", f"This code has expired. Ask for a new one ({resend_hint}).")
    if outcome == WRONG:
        return APIError(400, "INVALID_CODE", "That code is not right.", attempts_remaining=remaining)
    return APIError(400, "INVALID_CODE", "That code is not right.")


async def _guest_row(request: Request, conn):
    """The guest account behind the request's bearer token, if it carries one."""
    user = await get_optional_user(request)
    if user is None or user.is_service or not user.is_guest:
        return None
    row = await users_repo.get(conn, user.user_id, for_update=True)
    if row is None or row["confirmed"] or not row["temporary_account"]:
        return None
    return row


@router.post("/create-account", status_code=201, response_model=SignupAccepted, dependencies=[limited("signup", "rate_limit_signup_per_minute")])
async def create_account(body: CreateAccount, request: Request):
    """Starts a sign-up: emails a 6-digit code. Called with a guest's token, the guest becomes
    this account (same user id, its data kept) once the code is verified."""
    auth = auth_of(request)
    await auth.cooldown("verify", body.email)
    try:
        password_hash = await auth.passwords.hash(body.password)
        code = new_code()
        async with auth.pool.acquire() as conn:
            async with conn.transaction():
                existing = await users_repo.get_by_email(conn, body.email, for_update=True)
                guest = await _guest_row(request, conn)
                if existing is not None and existing["confirmed"]:
                    raise APIError(409, "EMAIL_TAKEN", "An account with this email already exists; log in instead.")
                if existing is not None and existing["temporary_account"] and (guest is None or existing["id"] != guest["id"]):
                    # Another guest is waiting to verify this address: an address belongs to whoever
                    # proves it, so the guest loses the claim (and keeps its data, as a guest).
                    await users_repo.release_pending_email(conn, existing["id"])
                    existing = None
                if guest is not None and existing is not None and existing["id"] != guest["id"]:
                    # A sign-up that was never verified has never had a token: nothing to keep.
                    await users_repo.delete_pending(conn, existing["id"])
                    existing = None
                target = guest or existing
                referrer_id = None
                if body.referral_code:
                    referrer = await auth.referrer_for_code(conn, body.referral_code, user_id=target["id"] if target else None)
                    referrer_id = referrer["id"]
                if target is None:
                    user = await users_repo.insert(
                        conn, email=body.email, password_hash=password_hash, confirmed=False, temporary=False, referred_by=referrer_id
                    )
                else:
                    # Latest sign-up wins: an unverified account cannot be pre-claimed with someone else's password.
                    user = await users_repo.set_signup(
                        conn, target["id"], email=body.email, password_hash=password_hash, referred_by=referrer_id
                    )
                await otp_repo.put(conn, user_id=user["id"], purpose="verify", code_hash=auth.code_hash(user["id"], "verify", code), ttl_seconds=auth.settings.otp_ttl_seconds)
    except APIError:
        await auth.release_cooldown("verify", body.email)
        raise
    await auth.send_code("otp_verify", body.email, code, cooldown_scope="verify", user_id=user["id"])
    return {"user_id": str(user["id"]), "status": "pending_verification"}


@router.post("/verify-otp", response_model=AuthResult, dependencies=[limited("otp-verify", "rate_limit_otp_verify_per_minute")])
async def verify_otp(body: VerifyOtp, request: Request):
    auth = auth_of(request)
    notices: list[dict] = []
    result = None
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            user = await users_repo.get_by_email(conn, body.email, for_update=True)
            if user is not None and user["confirmed"]:
                user = None  # nothing to verify
            outcome, remaining = await _check_code(auth, conn, user, "verify", body.code)
            if outcome == OK:
                user, notices = await auth.confirm(conn, user)
                await users_repo.touch_login(conn, user["id"])
                result = await auth.auth_result(conn, user)
    if result is None:
        raise _code_error(outcome, remaining, "POST /resend-otp")
    await auth.send_referral_notices(notices)
    return result


def _background(auth: Auth, coro) -> None:
    tasks: set = auth.app.state.background_tasks
    task = asyncio.get_running_loop().create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _send_later(auth: Auth, template: str, email: str, code: str, scope: str) -> None:
    try:
        await auth.mailer.send(template, email, code=code)
    except EmailDeliveryError:
        # Let the person ask again at once instead of waiting out the cooldown.
        await auth.release_cooldown(scope, email)


@router.post("/resend-otp", status_code=202, dependencies=[limited("otp-resend", "rate_limit_otp_resend_per_minute")])
async def resend_otp(body: EmailBody, request: Request):
    """202 whether or not the address has a pending sign-up; the email goes out in the background
    so the timing does not tell either."""
    auth = auth_of(request)
    await auth.cooldown("verify", body.email)
    code = new_code()
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            user = await users_repo.get_by_email(conn, body.email, for_update=True)
            pending = user is not None and not user["confirmed"]
            if pending:
                await otp_repo.put(conn, user_id=user["id"], purpose="verify", code_hash=auth.code_hash(user["id"], "verify", code), ttl_seconds=auth.settings.otp_ttl_seconds)
    if pending:
        _background(auth, _send_later(auth, "otp_verify", body.email, code, "verify"))
    return {"status": "accepted", "message": "If this address is waiting for verification, a new code is on its way."}


@router.post("/login", response_model=AuthResult, dependencies=[limited("login", "rate_limit_login_per_minute")])
async def login(body: Login, request: Request):
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        user = await users_repo.get_by_email(conn, body.email)
    if not await auth.passwords.verify(user["password_hash"] if user is not None else None, body.password):
        raise APIError(401, "INVALID_CREDENTIALS", "Wrong email or password.")
    if not user["confirmed"]:
        raise APIError(403, "EMAIL_NOT_VERIFIED", "Verify your email first: enter the code we sent you (POST /verify-otp).")
    new_hash = await auth.passwords.hash(body.password) if auth.passwords.needs_rehash(user["password_hash"]) else None
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            if new_hash:
                await users_repo.set_password(conn, user["id"], new_hash)
            await users_repo.touch_login(conn, user["id"])
            user = await users_repo.get(conn, user["id"])
            return await auth.auth_result(conn, user)


@router.post("/guest", status_code=201, response_model=AuthResult, dependencies=[limited("guest", "rate_limit_guest_per_minute")])
async def create_guest(request: Request):
    """A temporary account to try the app (the plan's `temporary_account`); POST /create-account
    or an OAuth sign-in with its token later turns it into a real account with the same id."""
    auth = auth_of(request)
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            user = await users_repo.insert(conn, email=None, password_hash=None, confirmed=False, temporary=True)
            await auth.emit_created(conn, user, is_guest=True)
            return await auth.auth_result(conn, user, provider="anonymous")


@router.post("/password/forgot", status_code=202, dependencies=[limited("password", "rate_limit_password_per_minute")])
async def forgot_password(body: EmailBody, request: Request):
    """202 whether or not the address has an account; the email goes out in the background."""
    auth = auth_of(request)
    await auth.cooldown("reset", body.email)
    code = new_code()
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            user = await users_repo.get_by_email(conn, body.email, for_update=True)
            known = user is not None and user["confirmed"]
            if known:
                await otp_repo.put(conn, user_id=user["id"], purpose="reset", code_hash=auth.code_hash(user["id"], "reset", code), ttl_seconds=auth.settings.otp_ttl_seconds)
    if known:
        _background(auth, _send_later(auth, "password_reset", body.email, code, "reset"))
    return {"status": "accepted", "message": "If this address has an account, a reset code is on its way."}


@router.post("/password/reset", status_code=204, dependencies=[limited("password-reset", "rate_limit_otp_verify_per_minute")])
async def reset_password(body: PasswordReset, request: Request):
    """Sets a new password with the emailed code and signs out every session (refresh tokens revoked)."""
    auth = auth_of(request)
    password_hash = await auth.passwords.hash(body.new_password)
    done = False
    async with auth.pool.acquire() as conn:
        async with conn.transaction():
            user = await users_repo.get_by_email(conn, body.email, for_update=True)
            if user is not None and not user["confirmed"]:
                user = None
            outcome, remaining = await _check_code(auth, conn, user, "reset", body.code)
            if outcome == OK:
                await users_repo.set_password(conn, user["id"], password_hash)
                await tokens_repo.revoke_user(conn, user["id"])
                await auth.emit_updated(conn, user["id"], ["password"])
                done = True
    if not done:
        raise _code_error(outcome, remaining, "POST /password/forgot")
    return Response(status_code=204)
