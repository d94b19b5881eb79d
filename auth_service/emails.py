"""Auth's emails: the templates (codes, password reset, referral notice) rendered here and sent
through the shared backends (shared/email.py: SendGrid, file, console).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.email import (  # noqa: F401 - re-exported: auth's code and tests import them from here
    ConsoleBackend,
    Email,
    EmailBackend,
    EmailDeliveryError,
    FileBackend,
    SendGridBackend,
    build_email_backend,
)

log = logging.getLogger("auth_service.emails")


def render(template: str, context: dict[str, Any], *, frontend_url: str, otp_minutes: int) -> Email:
    to = context["to"]
    if template == "otp_verify":
        code = context["code"]
        return Email(
            to,
            f"{code} is your SceneXtras code",
            f"Welcome to SceneXtras!\n\nYour verification code is {code}.\n"
            f"It expires in {otp_minutes} minutes. If you did not sign up, ignore this email.\n",
            template,
            {"code": code},
        )
    if template == "password_reset":
        code = context["code"]
        return Email(
            to,
            f"{code} is your SceneXtras password reset code",
            f"Someone asked to reset your SceneXtras password.\n\nYour reset code is {code}.\n"
            f"It expires in {otp_minutes} minutes. If it was not you, ignore this email: your password is unchanged.\n",
            template,
            {"code": code},
        )
    if template == "referral_completed":
        count = context["referral_count"]
        bonus = context["bonus_credits"]
        return Email(
            to,
            "Your SceneXtras referral just joined",
            f"Good news: someone joined SceneXtras with your referral code {context['code']}.\n\n"
            f"You both get {bonus} bonus credits. You have referred {count} friend(s) so far.\n"
            f"Invite more: {frontend_url.rstrip('/')}/signup?ref={context['code']}\n",
            template,
            {"code": context["code"], "bonus_credits": bonus, "referral_count": count},
        )
    if template == "email_change":
        code = context["code"]
        return Email(
            to,
            f"{code} is your SceneXtras email change code",
            f"Someone asked to use this address for their SceneXtras account.\n\nYour code is {code}.\n"
            f"It expires in {otp_minutes} minutes. If it was not you, ignore this email: nothing changes.\n",
            template,
            {"code": code},
        )
    if template == "email_changed":
        new_email = context["new_email"]
        return Email(
            to,
            "Your SceneXtras email address was changed",
            f"The email address of your SceneXtras account is now {new_email}; this address no longer"
            " signs in.\n\nIf you did not make this change, reply to this email or contact support at once.\n",
            template,
            {"new_email": new_email},
        )
    raise ValueError(f"unknown email template {template!r}")


class Mailer:
    def __init__(self, backend: EmailBackend, *, frontend_url: str, otp_minutes: int):
        self.backend = backend
        self.frontend_url = frontend_url
        self.otp_minutes = otp_minutes

    async def send(self, template: str, to: str, **context: Any) -> None:
        email = render(template, {"to": to, **context}, frontend_url=self.frontend_url, otp_minutes=self.otp_minutes)
        try:
            await self.backend.send(email)
        except EmailDeliveryError:
            log.warning("email not delivered", extra={"template": template})
            raise
        except Exception as exc:  # any other failure of the backend is a delivery failure too
            log.warning("email not delivered", extra={"template": template, "error": repr(exc)})
            raise EmailDeliveryError(repr(exc)) from exc

    async def close(self) -> None:
        await self.backend.close()


def build_mailer(settings) -> Mailer:
    backend = build_email_backend(settings)
    return Mailer(backend, frontend_url=settings.frontend_url, otp_minutes=max(1, settings.otp_ttl_seconds // 60))
