"""Outgoing email, one copy for every service: SendGrid's v3 API over httpx, or the `file` /
`console` backends (EMAIL_BACKEND). Auth sends its codes through it, Community its notifications.

With EMAIL_BACKEND=file each email is one JSON file in EMAIL_OUTBOX_DIR with keys to, subject,
text, template, context (written atomically: a reader never sees half a file).
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
from typing import Any, Literal

import httpx
import orjson
from pydantic import model_validator
from pydantic_settings import BaseSettings

log = logging.getLogger("shared.email")


class EmailDeliveryError(Exception):
    pass


@dataclass
class Email:
    to: str
    subject: str
    text: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)


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
            # custom_args on the personalization: SendGrid's document types the top-level one as a string.
            "personalizations": [{"to": [{"email": email.to}], "custom_args": {"template": email.template}}],
            "from": self.sender,
            "subject": email.subject,
            "content": [{"type": "text/plain", "value": email.text}],
            "categories": [email.template],
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


class EmailSettings(BaseSettings):
    """The email settings a sending service reads (mixed into its Settings)."""

    # sendgrid (production), file (one JSON file per email, tests / local), console (logs)
    email_backend: Literal["sendgrid", "file", "console"] = "console"
    email_outbox_dir: str | None = None
    sendgrid_api_key: str | None = None
    sendgrid_base_url: str = "https://api.sendgrid.com"
    email_from: str = "no-reply@scenextras.com"
    email_from_name: str = "SceneXtras"
    email_timeout_seconds: float = 10.0

    @model_validator(mode="after")
    def _email_backend_complete(self):
        if self.email_backend == "sendgrid" and not self.sendgrid_api_key:
            raise ValueError("EMAIL_BACKEND=sendgrid needs SENDGRID_API_KEY")
        if self.email_backend == "file" and not self.email_outbox_dir:
            raise ValueError("EMAIL_BACKEND=file needs EMAIL_OUTBOX_DIR")
        if self.email_backend == "console" and getattr(self, "environment", None) == "production":
            raise ValueError("EMAIL_BACKEND=console logs emails instead of sending them; use sendgrid in production")
        return self


def build_email_backend(settings: EmailSettings) -> EmailBackend:
    if settings.email_backend == "sendgrid":
        return SendGridBackend(
            api_key=settings.sendgrid_api_key,
            base_url=settings.sendgrid_base_url,
            sender=settings.email_from,
            sender_name=settings.email_from_name,
            timeout=settings.email_timeout_seconds,
        )
    if settings.email_backend == "file":
        return FileBackend(settings.email_outbox_dir)
    return ConsoleBackend()
