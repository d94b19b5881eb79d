"""A signed-in user changing their email (a code to the new address, then the change; the old
address is told) or their password (the current one required; every other session signed out)."""

from __future__ import annotations

import logging
import uuid

from auth_service import errors
from auth_service.emails import EmailDeliveryError
from auth_service.repositories import otp as otp_repo
from auth_service.repositories import tokens as tokens_repo
from auth_service.repositories import users as users_repo
from auth_service.service.base import new_code
from auth_service.service.codes import OK, Codes
from auth_service.service.sessions import Sessions
from auth_service.service.users import Users
from shared.errors import APIError

log = logging.getLogger("auth_service.account_changes")


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return value is not None


EMAIL_CHANGE = "email_change"


class AccountChanges(Users, Sessions, Codes):
    async def _signed_in_account(self, conn, user_id: str):
        user = await users_repo.get(conn, user_id, for_update=True)
        if user is None:
            raise errors.USER_NOT_FOUND(headers={"WWW-Authenticate": "Bearer"})
        if not user["confirmed"]:
            # Guests get an address by signing up (POST /create-account with their token).
            raise errors.ACCOUNT_REQUIRED("Create an account (and verify its email) first.")
        return user

    async def request_email_change(self, user_id: str, new_email: str) -> None:
        """Emails a code to `new_email`; the address changes when the code comes back. An address
        with a confirmed account is refused (409); a pending, never-verified claim on it is not
        (an address belongs to whoever proves it)."""
        await self.cooldown(EMAIL_CHANGE, new_email)
        code = new_code()
        try:
            async with self.pool.acquire() as conn:
                async with conn.transaction():
                    user = await self._signed_in_account(conn, user_id)
                    if user["email"] == new_email:
                        raise errors.EMAIL_UNCHANGED()
                    holder = await users_repo.get_by_email(conn, new_email)
                    if holder is not None and holder["confirmed"]:
                        raise errors.EMAIL_TAKEN("An account with this email already exists.")
                    await self.put_code(conn, user_id, EMAIL_CHANGE, code, new_email=new_email)
        except APIError:
            await self.release_cooldown(EMAIL_CHANGE, new_email)
            raise
        await self.send_code("email_change", new_email, code, cooldown_scope=EMAIL_CHANGE)

    async def confirm_email_change(self, user_id: str, code: str) -> dict:
        """The code from the new address: the account's email becomes it (user.updated), the old
        address is told. Whoever claimed the address meanwhile without verifying it loses the claim."""
        changed = None
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                user = await self._signed_in_account(conn, user_id)
                pending = await otp_repo.get_for_update(conn, user_id, EMAIL_CHANGE)
                if pending is None:
                    raise errors.NO_PENDING_EMAIL_CHANGE()
                outcome, remaining = await self.check_code(conn, user, EMAIL_CHANGE, code)
                if outcome == OK:
                    new_email = pending["new_email"]
                    holder = await users_repo.get_by_email(conn, new_email, for_update=True)
                    if holder is not None and holder["confirmed"]:
                        # Someone verified this address after the code was sent (nothing changes).
                        raise errors.EMAIL_TAKEN("An account with this email already exists.")
                    if holder is not None and holder["temporary_account"]:
                        await users_repo.release_pending_email(conn, holder["id"])
                    elif holder is not None:
                        await users_repo.delete_pending(conn, holder["id"])
                    changed = await users_repo.set_email(conn, user_id, new_email)
                    await self.emit_updated(conn, user_id, ["email"], email=new_email)
                    result = await self.user_out(conn, changed)
        if changed is None:
            raise self.code_error(outcome, remaining, "POST /users/me/email")
        if user["email"]:
            try:
                await self.mailer.send("email_changed", user["email"], new_email=changed["email"])
            except EmailDeliveryError:  # the change is made; the notice is best effort
                log.warning("old address not told of the email change", extra={"user_id": user_id})
        return result

    async def change_password(
        self, user_id: str, session_id: str | None, current_password: str, new_password: str
    ) -> int:
        """A new password, the current one required; every other session's refresh tokens are
        revoked (this one, `session_id`, stays). Returns the number of tokens revoked."""
        async with self.pool.acquire() as conn:
            user = await users_repo.get(conn, user_id)
        if user is None:
            raise errors.USER_NOT_FOUND(headers={"WWW-Authenticate": "Bearer"})
        if user["password_hash"] is None:
            raise errors.PASSWORD_NOT_SET()
        if not await self.passwords.verify(user["password_hash"], current_password):
            raise errors.WRONG_PASSWORD()
        password_hash = await self.passwords.hash(new_password)
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                current = await users_repo.get(conn, user_id, for_update=True)
                if current is None:
                    raise errors.USER_NOT_FOUND(headers={"WWW-Authenticate": "Bearer"})
                if current["password_hash"] != user["password_hash"]:
                    # Changed by a parallel request after our check: check again against the new one.
                    raise errors.WRONG_PASSWORD()
                await users_repo.set_password(conn, user_id, password_hash)
                if _is_uuid(session_id):
                    revoked = await tokens_repo.revoke_user_except(conn, user_id, session_id)
                else:
                    revoked = await tokens_repo.revoke_user(conn, user_id)
                await self.emit_updated(conn, user_id, ["password"])
        return revoked
