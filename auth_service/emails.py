"""Outgoing email: SendGrid's v3 API over httpx, or the `file` / `console` backends (API.md).

Every message has a template name and its variables (`context`); the text body is rendered
here. With EMAIL_BACKEND=file each email is one JSON file in EMAIL_OUTBOX_DIR with keys
to, subject, text, template, context (written atomically: a reader never sees half a file).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

log = logging.getLogger("auth_service.emails")


class EmailDeliveryError(Exception):
    pass


@dataclass
class Email:
    to: str
    subject: str
    text: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)


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


class EmailBackend(abc.ABC):
    @abc.abstractmethod
    async def send(self, email: Email) -> None: ...

    async def close(self) -> None:  # noqa: B027 - optional hook: only backends holding connections override it
        pass


class FileBackend(EmailBackend):
    def __init__(self, directory: str):
        self.directory = Path(directory)

    def _write(self, email: Email) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.directory / f".{name}.tmp"
        body = {
            "to": email.to,
            "subject": email.subject,
            "text": email.text,
            "template": email.template,
            "context": email.context,
        }
        tmp.write_bytes(orjson.dumps(body))
        os.replace(tmp, self.directory / name)

    async def send(self, email: Email) -> None:
        try:
            await asyncio.to_thread(self._write, email)
        except OSError as exc:
            raise EmailDeliveryError(f"could not write the email file: {exc}") from exc


class ConsoleBackend(EmailBackend):
    """Development only: the email goes to the log (so codes show up in `dev.sh` output)."""

    async def send(self, email: Email) -> None:
        log.warning(
            "email (console backend, not sent)",
            extra={"to": email.to, "subject": email.subject, "template": email.template, "text": email.text},
        )


class SendGridBackend(EmailBackend):
    def __init__(self, *, api_key: str, base_url: str, sender: str, sender_name: str, timeout: float):
        self.sender = {"email": sender, "name": sender_name}
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=timeout,
        )

    async def send(self, email: Email) -> None:
        payload = {
            "personalizations": [{"to": [{"email": email.to}]}],
            "from": self.sender,
            "subject": email.subject,
            "content": [{"type": "text/plain", "value": email.text}],
            "categories": [email.template],
            "custom_args": {"template": email.template},
        }
        last: Exception | None = None
        for attempt in range(2):
            try:
                response = await self.client.post("/v3/mail/send", content=orjson.dumps(payload))
            except httpx.HTTPError as exc:
                last = exc
            else:
                if response.status_code in (200, 202):
                    return
                last = EmailDeliveryError(f"SendGrid answered {response.status_code}: {response.text[:300]}")
                if response.status_code < 500 and response.status_code != 429:
                    break  # a 4xx other than 429 will not get better by retrying
            if attempt == 0:
                await asyncio.sleep(0.2)
        raise EmailDeliveryError(str(last)) from last

    async def close(self) -> None:
        await self.client.aclose()


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
    if settings.email_backend == "sendgrid":
        backend: EmailBackend = SendGridBackend(
            api_key=settings.sendgrid_api_key,
            base_url=settings.sendgrid_base_url,
            sender=settings.email_from,
            sender_name=settings.email_from_name,
            timeout=settings.email_timeout_seconds,
        )
    elif settings.email_backend == "file":
        backend = FileBackend(settings.email_outbox_dir)
    else:
        backend = ConsoleBackend()
    return Mailer(backend, frontend_url=settings.frontend_url, otp_minutes=max(1, settings.otp_ttl_seconds // 60))
