"""Email accounts: sign-up with a 6-digit code (a guest's token turns the guest into the account),
verification, login, guests, password reset. Each flow runs its own transaction; a refused code is
answered after commit, so the wrong guess stays counted."""

from __future__ import annotations

import asyncpg

from auth_service import errors
from auth_service.repositories import tokens as tokens_repo
from auth_service.repositories import users as users_repo
from auth_service.service.base import new_code
from auth_service.service.codes import OK, Codes
from auth_service.service.sessions import Sessions
from auth_service.service.users import Users
from shared.auth import CurrentUser
from shared.errors import APIError


class Accounts(Users, Sessions, Codes):
    async def guest_of(self, conn: asyncpg.Connection, claims: CurrentUser | None) -> asyncpg.Record | None:
        """The guest account behind a request's token (locked), if the token is a guest's and the
        account is still a guest."""
        if claims is None or claims.is_service or not claims.is_guest:
            return None
        row = await users_repo.get(conn, claims.user_id, for_update=True)
        if row is None or row["confirmed"] or not row["temporary_account"]:
            return None
        return row

    async def claim_address(
        self, conn: asyncpg.Connection, email: str, guest_claims: CurrentUser | None
    ) -> asyncpg.Record | None:
        """Who a sign-up for `email` becomes, under the row locks (the address's row first, then
        the guest's): the guest making it (same id, its data kept), else the address's own pending
        sign-up (latest sign-up wins), else None (a new account). An address belongs to whoever
        proves it, so a verified account refuses (EMAIL_TAKEN) and an earlier claim by someone else
        is dropped."""
        existing = await users_repo.get_by_email(conn, email, for_update=True)
        guest = await self.guest_of(conn, guest_claims)
        if existing is not None and existing["confirmed"]:
            raise errors.EMAIL_TAKEN()
        if existing is not None and existing["temporary_account"] and (guest is None or existing["id"] != guest["id"]):
            # Another guest is waiting to verify this address: it loses the claim (and keeps its data, as a guest).
            await users_repo.release_pending_email(conn, existing["id"])
            existing = None
        if guest is not None and existing is not None and existing["id"] != guest["id"]:
            # A sign-up that was never verified has never had a token: nothing to keep.
            await users_repo.delete_pending(conn, existing["id"])
            existing = None
        return guest or existing

    async def start_signup(
        self, email: str, password: str, referral_code: str | None, guest_claims: CurrentUser | None
    ) -> asyncpg.Record:
        """Records a pending sign-up and emails its code. Called with a guest's token, the guest
        becomes this account (same user id, its data kept) once the code is verified."""
        await self.cooldown("verify", email)
        try:
            password_hash = await self.passwords.hash(password)
            code = new_code()
            async with self.pool.acquire() as conn:
                async with conn.transaction():
                    target = await self.claim_address(conn, email, guest_claims)
                    referrer_id = None
                    if referral_code:
                        referrer = await self.referrer_for_code(
                            conn, referral_code, user_id=target["id"] if target else None
                        )
                        referrer_id = referrer["id"]
                    if target is None:
                        user = await users_repo.insert(
                            conn,
                            email=email,
                            password_hash=password_hash,
                            confirmed=False,
                            temporary=False,
                            referred_by=referrer_id,
                        )
                    else:
                        # Latest sign-up wins: an unverified account cannot be pre-claimed with someone else's password.
                        user = await users_repo.set_signup(
                            conn, target["id"], email=email, password_hash=password_hash, referred_by=referrer_id
                        )
                    await self.put_code(conn, user["id"], "verify", code)
        except APIError:
            await self.release_cooldown("verify", email)
            raise
        await self.send_code("otp_verify", email, code, cooldown_scope="verify", user_id=user["id"])
        return user

    async def verify_signup(self, email: str, code: str) -> dict:
        """The emailed code confirms the pending sign-up: the account exists from now on (signed in)."""
        notices: list[dict] = []
        result = None
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                user = await users_repo.get_by_email(conn, email, for_update=True)
                if user is not None and user["confirmed"]:
                    user = None  # nothing to verify
                outcome, remaining = await self.check_code(conn, user, "verify", code)
                if outcome == OK:
                    user, notices = await self.confirm(conn, user)
                    await users_repo.touch_login(conn, user["id"])
                    result = await self.auth_result(conn, user)
        if result is None:
            raise self.code_error(outcome, remaining, "POST /resend-otp")
        await self.send_referral_notices(notices)
        return result

    async def resend_signup_code(self, email: str) -> None:
        """A new code if the address has a pending sign-up; the same answer (and timing) otherwise."""
        await self._code_in_background(email, "verify", "otp_verify", lambda user: not user["confirmed"])

    async def login(self, email: str, password: str) -> dict:
        async with self.pool.acquire() as conn:
            user = await users_repo.get_by_email(conn, email)
        if not await self.passwords.verify(user["password_hash"] if user is not None else None, password):
            raise errors.INVALID_CREDENTIALS()
        if not user["confirmed"]:
            raise errors.EMAIL_NOT_VERIFIED()
        new_hash = await self.passwords.hash(password) if self.passwords.needs_rehash(user["password_hash"]) else None
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                if new_hash:
                    await users_repo.set_password(conn, user["id"], new_hash)
                await users_repo.touch_login(conn, user["id"])
                user = await users_repo.get(conn, user["id"])
                return await self.auth_result(conn, user)

    async def create_guest(self) -> dict:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                user = await users_repo.insert(conn, email=None, password_hash=None, confirmed=False, temporary=True)
                await self.emit_created(conn, user, is_guest=True)
                return await self.auth_result(conn, user, provider="anonymous")

    async def forgot_password(self, email: str) -> None:
        """A reset code if the address has an account; the same answer (and timing) otherwise."""
        await self._code_in_background(email, "reset", "password_reset", lambda user: user["confirmed"])

    async def _code_in_background(self, email: str, purpose: str, template: str, eligible) -> None:
        """A new code (the old one void) for the address's account if `eligible(user)`; the email
        goes out in the background so neither the answer nor its timing tells whether it exists."""
        await self.cooldown(purpose, email)
        code = new_code()
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                user = await users_repo.get_by_email(conn, email, for_update=True)
                send = user is not None and eligible(user)
                if send:
                    await self.put_code(conn, user["id"], purpose, code)
        if send:
            self.send_code_later(template, email, code, cooldown_scope=purpose)

    async def reset_password(self, email: str, code: str, new_password: str) -> None:
        """A new password with the emailed code; every session ends (refresh tokens revoked)."""
        password_hash = await self.passwords.hash(new_password)
        done = False
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                user = await users_repo.get_by_email(conn, email, for_update=True)
                if user is not None and not user["confirmed"]:
                    user = None
                outcome, remaining = await self.check_code(conn, user, "reset", code)
                if outcome == OK:
                    await users_repo.set_password(conn, user["id"], password_hash)
                    await tokens_repo.revoke_user(conn, user["id"])
                    await self.emit_updated(conn, user["id"], ["password"])
                    done = True
        if not done:
            raise self.code_error(outcome, remaining, "POST /password/forgot")
