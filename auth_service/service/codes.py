"""One-time codes (sign-up verification, password reset): hashed with the OTP key, a cooldown per
address, attempts counted inside the caller's transaction, emails sent after commit."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from typing import Any

import asyncpg

from auth_service import errors
from auth_service.emails import EmailDeliveryError
from auth_service.repositories import otp as otp_repo
from auth_service.service.base import AuthBase
from shared.errors import RATE_LIMITED, APIError

log = logging.getLogger("auth_service")

OK, INVALID, EXPIRED, LOCKED, WRONG = "ok", "invalid", "expired", "locked", "wrong"


class Codes(AuthBase):
    def code_hash(self, user_id: Any, purpose: str, code: str) -> str:
        message = f"{user_id}:{purpose}:{code}".encode()
        return hmac.new(self.settings.otp_key, message, hashlib.sha256).hexdigest()

    def code_matches(self, stored: str, user_id: Any, purpose: str, code: str) -> bool:
        return hmac.compare_digest(stored, self.code_hash(user_id, purpose, code))

    async def put_code(
        self, conn: asyncpg.Connection, user_id: Any, purpose: str, code: str, *, new_email: str | None = None
    ) -> None:
        await otp_repo.put(
            conn,
            user_id=user_id,
            purpose=purpose,
            code_hash=self.code_hash(user_id, purpose, code),
            ttl_seconds=self.settings.otp_ttl_seconds,
            new_email=new_email,
        )

    async def check_code(self, conn: asyncpg.Connection, user, purpose: str, code: str) -> tuple[str, int]:
        """(outcome, attempts remaining), inside the caller's transaction; a wrong guess is counted
        there and a right one spends the code. `user` None (no such account) is INVALID."""
        if user is None:
            return INVALID, 0
        row = await otp_repo.get_for_update(conn, user["id"], purpose)
        if row is None:
            return INVALID, 0
        if row["attempts"] >= self.settings.otp_max_attempts:
            return LOCKED, 0
        if row["expired"]:
            return EXPIRED, 0
        if self.code_matches(row["code_hash"], user["id"], purpose, code):
            await otp_repo.delete(conn, user["id"], purpose)
            return OK, 0
        attempts = await otp_repo.add_attempt(conn, user["id"], purpose)
        remaining = self.settings.otp_max_attempts - attempts
        return (WRONG, remaining) if remaining > 0 else (LOCKED, 0)

    @staticmethod
    def code_error(outcome: str, remaining: int, resend_hint: str) -> APIError:
        if outcome == LOCKED:
            return errors.CODE_LOCKED(
                f"Too many wrong codes; this code is locked. Ask for a new one ({resend_hint}).", attempts_remaining=0
            )
        if outcome == EXPIRED:
            return errors.CODE_EXPIRED(f"This code has expired. Ask for a new one ({resend_hint}).")
        if outcome == WRONG:
            return errors.INVALID_CODE(attempts_remaining=remaining)
        return errors.INVALID_CODE()

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
        raise RATE_LIMITED(
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

    async def send_code(
        self, template: str, email: str, code: str, *, cooldown_scope: str, user_id: Any = None
    ) -> None:
        """Sends a code now; a failure releases the cooldown and answers 503 EMAIL_DELIVERY_FAILED."""
        try:
            await self.mailer.send(template, email, code=code)
        except EmailDeliveryError:
            await self.release_cooldown(cooldown_scope, email)
            extra = {"user_id": str(user_id)} if user_id else {}
            raise errors.EMAIL_DELIVERY_FAILED(headers={"Retry-After": "5"}, **extra) from None

    def send_code_later(self, template: str, email: str, code: str, *, cooldown_scope: str) -> None:
        """Sends a code in the background (the answer must not wait for, or reveal, the email);
        a failure releases the cooldown so the person can ask again at once."""

        async def send() -> None:
            try:
                await self.mailer.send(template, email, code=code)
            except EmailDeliveryError:
                await self.release_cooldown(cooldown_scope, email)

        tasks: set = self.app.state.background_tasks
        task = asyncio.get_running_loop().create_task(send())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
