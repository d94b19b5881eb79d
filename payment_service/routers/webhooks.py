"""Provider webhooks: Stripe (`POST /webhook`) and RevenueCat (`POST /webhooks/revenuecat`).

Not behind the per-client rate limit (providers deliver bursts from few addresses); each event is
authenticated (Stripe signature with a 5-minute tolerance, RevenueCat's Authorization value) and
parsed here, then applied once by payment_service.service.webhooks (its id recorded in the same
transaction as its effect).
"""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime

import orjson
import stripe
from fastapi import APIRouter, Request

from payment_service import errors
from payment_service.models import WebhookAck
from payment_service.service import webhooks
from shared.errors import documented

router = APIRouter(tags=["webhooks"])


# The body is read raw (the signature covers its exact bytes); the header is declared here.
STRIPE_SIGNATURE = {
    "parameters": [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "description": "`t=<unix time>,v1=<HMAC-SHA256 of the payload>`, as Stripe signs each delivery.",
            "schema": {"type": "string", "minLength": 1},
        }
    ]
}


@router.post(
    "/webhook",
    response_model=WebhookAck,
    openapi_extra=STRIPE_SIGNATURE,
    responses=documented(
        errors.INVALID_SIGNATURE, errors.INVALID_PAYLOAD, errors.WEBHOOK_NOT_CONFIGURED, errors.STRIPE_UNAVAILABLE
    ),
)
async def stripe_webhook(request: Request):
    state = request.app.state
    secret = state.settings.stripe_webhook_secret
    if not secret:
        raise errors.WEBHOOK_NOT_CONFIGURED("STRIPE_WEBHOOK_SECRET is not set; the event was not processed.")
    raw = await request.body()
    signature = request.headers.get("stripe-signature")
    try:
        stripe.WebhookSignature.verify_header(raw, signature, secret, state.settings.stripe_webhook_tolerance_seconds)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
        raise errors.INVALID_SIGNATURE() from None
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.INVALID_PAYLOAD("The webhook body is not JSON.") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise errors.INVALID_PAYLOAD("The webhook body is not a Stripe event.")
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    created = event.get("created")
    if not isinstance(obj, dict) or not isinstance(created, int):
        raise errors.INVALID_PAYLOAD("The Stripe event has no data.object or created time.")
    when = datetime.fromtimestamp(created, UTC)
    return _ack(await webhooks.apply_stripe_event(state, event["id"], event["type"], obj, when))


def _ack(outcome: str) -> WebhookAck:
    return WebhookAck(duplicate=outcome == "duplicate", ignored=outcome == "ignored")


@router.post(
    "/webhooks/revenuecat",
    response_model=WebhookAck,
    responses=documented(errors.INVALID_WEBHOOK_AUTH, errors.INVALID_PAYLOAD, errors.WEBHOOK_NOT_CONFIGURED),
)
async def revenuecat_webhook(request: Request):
    state = request.app.state
    expected = state.settings.revenuecat_webhook_auth
    if not expected:
        raise errors.WEBHOOK_NOT_CONFIGURED("REVENUECAT_WEBHOOK_AUTH is not set; the event was not processed.")
    given = request.headers.get("authorization") or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise errors.INVALID_WEBHOOK_AUTH()
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise errors.INVALID_PAYLOAD("The webhook body is not JSON.") from None
    event = body.get("event") if isinstance(body, dict) else None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise errors.INVALID_PAYLOAD('The body is not a RevenueCat event ({"event": {id, type, ...}}).')
    stamp = event.get("event_timestamp_ms")
    when = datetime.fromtimestamp((int(stamp) / 1000) if isinstance(stamp, (int, float)) else time.time(), UTC)
    return _ack(await webhooks.apply_revenuecat_event(state, event, when))
