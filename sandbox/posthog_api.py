"""PostHog capture (``POST /posthog/batch/``), the legacy endpoint the official Python SDK (posthog
7.x, default capture mode) posts to: ``{"api_key", "batch": [{event, distinct_id, properties,
timestamp, uuid, type}], "sent_at"}``. A body without ``api_key`` is 401 (as PostHog answers a
missing project key); a body whose ``batch`` is not a list of objects is 400. As PostHog documents
(posthog.com/docs/api/capture, "Invalid events"), an event without a name or a ``distinct_id``
(top level, or in ``properties`` as its batch example does) is dropped with 200, not refused.
Accepted requests answer 200 ``{"status": 1}`` (the SDK retries anything else); kept events (with
``distinct_id`` at the top level) are listed by ``GET /_sandbox/posthog?distinct_id=&event=``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from .core import JSON, SandboxState, register_error_renderer, sandbox_scope


@register_error_renderer("posthog")
def render_error(status: int, message: str | None = None, error_type: str | None = None, **_: Any) -> Response:
    return JSON({"type": error_type or "validation_error", "detail": message or f"Error {status}"}, status_code=status)


def build(state: SandboxState) -> Router:
    async def batch(request: Request) -> Response:
        body = sandbox_scope(request)["parsed"]
        if not isinstance(body, dict) or not body.get("api_key"):
            return JSON(
                {
                    "type": "authentication_error",
                    "code": "invalid_api_key",
                    "detail": "Project API key invalid. You can find your project API key in PostHog project settings.",
                },
                status_code=401,
            )
        events = body.get("batch")
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return JSON(
                {"type": "validation_error", "code": "invalid_payload", "detail": "batch must be a list of events."},
                status_code=400,
            )
        for e in events:
            properties = e.get("properties") if isinstance(e.get("properties"), dict) else {}
            distinct_id = e.get("distinct_id") or properties.get("distinct_id")
            if not (isinstance(e.get("event"), str) and e["event"] and distinct_id):
                continue  # PostHog answers 200 and does not ingest it
            state.posthog_events.append(
                {**e, "distinct_id": distinct_id, "api_key": body["api_key"], "received_at": time.time()}
            )
        return JSON({"status": 1})

    return Router(routes=[Route("/batch/", batch, methods=["POST"])])
