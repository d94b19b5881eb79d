"""SendGrid v3 Mail Send (``POST /sendgrid/v3/mail/send``).

Checks what SendGrid checks before accepting a message: ``Authorization: Bearer <key>`` (401 with
``{"errors": [{"message", "field"}]}``), then the body: ``personalizations`` (1..1000, each
with a non-empty ``to`` of ``{"email"}``), ``from.email``, a ``subject`` (top level or per
personalization, unless a ``template_id`` is given), ``content`` (non-empty ``value``s,
``text/plain`` before ``text/html``) unless ``template_id``. All problems are reported together
(400). Accepted mail answers 202 with an empty body and an ``X-Message-Id`` header, and is kept for
``GET /_sandbox/emails?to=...`` (one entry per message: ``to``, ``subject``, ``text``, ``html``,
``template_id``, ``dynamic_template_data``, ``from``, the raw body, ``message_id``).
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from .core import JSON, SandboxState, bearer_token, register_error_renderer, sandbox_scope

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _err(message: str, field: str | None = None) -> dict[str, Any]:
    # No `help`: SendGrid's OpenAPI document types it as an object, and nothing of ours reads it.
    return {"message": message, "field": field}


@register_error_renderer("sendgrid")
def render_error(status: int, message: str | None = None, error_type: str | None = None, **_: Any) -> Response:
    return JSON({"errors": [_err(message or f"Error {status}")]}, status_code=status)


def validate(body: Any) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if not isinstance(body, dict):
        return [_err("Bad Request")]
    pers = body.get("personalizations")
    template = body.get("template_id")
    if not isinstance(pers, list) or not pers:
        errors.append(
            _err(
                "The personalizations field is required and must have at least one personalization.",
                "personalizations",
            )
        )
        pers = []
    if len(pers) > 1000:
        errors.append(
            _err("The personalizations field cannot have more than 1000 personalizations.", "personalizations")
        )
    for i, p in enumerate(pers):
        to = p.get("to") if isinstance(p, dict) else None
        if not isinstance(to, list) or not to:
            errors.append(
                _err(
                    "The to array is required for all personalization objects, and must have at least "
                    "one email object with a valid email address.",
                    f"personalizations.{i}.to",
                )
            )
            continue
        for j, addr in enumerate(to):
            email = addr.get("email") if isinstance(addr, dict) else None
            if not email or not _EMAIL_RE.match(str(email)):
                errors.append(_err("Does not contain a valid address.", f"personalizations.{i}.to.{j}.email"))
    sender = body.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        errors.append(
            _err(
                "The from object must be provided for every email send. It is an object that requires "
                "the email parameter, but may also contain a name parameter.",
                "from.email",
            )
        )
    elif not _EMAIL_RE.match(str(sender["email"])):
        errors.append(_err("The from email does not contain a valid address.", "from.email"))
    if not template and not body.get("subject"):
        if not pers or not all(isinstance(p, dict) and p.get("subject") for p in pers):
            errors.append(
                _err(
                    "The subject is required. You can get around this requirement if you use a template "
                    "with a subject defined or if every personalization has a subject defined.",
                    "subject",
                )
            )
    content = body.get("content")
    if not template:
        if not isinstance(content, list) or not content:
            errors.append(
                _err(
                    "Unless a valid template_id is provided, the content parameter is required. There must "
                    "be at least one defined content block. We typically suggest both text/plain and "
                    "text/html blocks are included, but only one block is required.",
                    "content",
                )
            )
        else:
            for k, c in enumerate(content):
                if not isinstance(c, dict) or not c.get("type"):
                    errors.append(_err("The content type cannot be blank.", f"content.{k}.type"))
                if not isinstance(c, dict) or not c.get("value"):
                    errors.append(
                        _err(
                            "The content value must be a string at least one character in length.", f"content.{k}.value"
                        )
                    )
            types = [c.get("type") for c in content if isinstance(c, dict)]
            if "text/plain" in types and types.index("text/plain") != 0:
                errors.append(
                    _err(
                        "If present, text/plain content must be first, followed by any other content.", "content.0.type"
                    )
                )
    return errors


def build(state: SandboxState) -> Router:
    async def send(request: Request) -> Response:
        if bearer_token(request) is None:
            return JSON(
                {"errors": [_err("The provided authorization grant is invalid, expired, or revoked")]},
                status_code=401,
            )
        body = sandbox_scope(request)["parsed"]
        errors = validate(body)
        if errors:
            return JSON({"errors": errors}, status_code=400)
        message_id = state.rand(22)
        content = {c["type"]: c["value"] for c in body.get("content") or []}
        for p in body["personalizations"]:
            state.emails.append(
                {
                    "message_id": message_id,
                    "to": [a["email"] for a in p["to"]],
                    "cc": [a["email"] for a in p.get("cc") or []],
                    "bcc": [a["email"] for a in p.get("bcc") or []],
                    "from": body["from"],
                    "subject": p.get("subject") or body.get("subject"),
                    "text": content.get("text/plain"),
                    "html": content.get("text/html"),
                    "template_id": body.get("template_id"),
                    "dynamic_template_data": p.get("dynamic_template_data"),
                    "categories": body.get("categories"),
                    "time": time.time(),
                    "body": body,
                }
            )
        return Response(status_code=202, headers={"x-message-id": message_id})

    return Router(routes=[Route("/v3/mail/send", send, methods=["POST"])])
