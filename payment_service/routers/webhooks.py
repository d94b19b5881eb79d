"""Provider webhooks: Stripe (`POST /webhook`) and RevenueCat (`POST /webhooks/revenuecat`).

Not behind the per-client rate limit (providers deliver bursts from few addresses); each event is
authenticated (Stripe signature with a 5-minute tolerance, RevenueCat's Authorization value) and
applied once: its id is recorded in the same transaction as its effect.
"""
from __future__ import annotations

import hmac
import logging
import time
from datetime import datetime, timezone

import orjson
import stripe
from fastapi import APIRouter, Request

from payment_service import errors
from payment_service.models import WebhookAck
from payment_service.repositories import billing as repo
from payment_service.repositories.billing import as_uuid
from payment_service.service import SUBSCRIPTION_EVENTS
from payment_service.webhook_effects import after_commit
from shared.errors import documented

log = logging.getLogger("payment.webhooks")
router = APIRouter(tags=["webhooks"])


@router.post("/webhook", response_model=WebhookAck,
             responses=documented(errors.INVALID_SIGNATURE, errors.INVALID_PAYLOAD, errors.WEBHOOK_NOT_CONFIGURED))
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
    when = datetime.fromtimestamp(created, timezone.utc)
    handler = state.billing.stripe_handler(event["type"])
    if handler is not None and obj.get("id") is None:
        raise errors.INVALID_PAYLOAD("The event's object has no id.")
    applied = []
    try:
        async with state.core_db.acquire() as conn:
            async with conn.transaction():
                outcome = "ignored" if handler is None else "applied"
                if handler is not None and event["type"] in SUBSCRIPTION_EVENTS:
                    recorded, prev = await repo.record_subscription_event(
                        conn, "stripe", event["id"], event["type"], when, outcome, "stripe", str(obj["id"]))
                    if not recorded:
                        return WebhookAck(duplicate=True)
                    applied = await handler(conn, obj, when, event["id"], prev)
                else:
                    if not await repo.record_webhook_event(conn, "stripe", event["id"], event["type"], when, outcome):
                        return WebhookAck(duplicate=True)
                    if handler is None:
                        return WebhookAck(ignored=True)
                    applied = await handler(conn, obj, when, event["id"])
                if not applied:  # e.g. a customer that is not ours: recorded as such, acknowledged
                    await repo.set_webhook_outcome(conn, "stripe", event["id"], "ignored")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # The event is signed but not shaped as its type should be: nothing was changed.
        log.warning("malformed stripe event", extra={"event_id": event["id"], "type": event["type"], "error": repr(exc)})
        raise errors.INVALID_PAYLOAD(f"The {event['type']} event is malformed: {exc}") from None
    await after_commit(state, applied)
    return WebhookAck()


def _revenuecat_user(event: dict) -> str | None:
    for candidate in [event.get("app_user_id"), event.get("original_app_user_id"), *(event.get("aliases") or [])]:
        uid = as_uuid(candidate)
        if uid is not None:
            return str(uid)
    return None


@router.post("/webhooks/revenuecat", response_model=WebhookAck,
             responses=documented(errors.INVALID_WEBHOOK_AUTH, errors.INVALID_PAYLOAD, errors.WEBHOOK_NOT_CONFIGURED))
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
        raise errors.INVALID_PAYLOAD("The body is not a RevenueCat event ({\"event\": {id, type, ...}}).")
    stamp = event.get("event_timestamp_ms")
    when = datetime.fromtimestamp((int(stamp) / 1000) if isinstance(stamp, (int, float)) else time.time(), timezone.utc)
    user_id = _revenuecat_user(event)
    applied = []
    try:
        async with state.core_db.acquire() as conn:
            async with conn.transaction():
                if not await repo.record_webhook_event(conn, "revenuecat", event["id"], event["type"], when):
                    return WebhookAck(duplicate=True)
                if user_id is None:
                    log.warning("revenuecat event for a user we cannot identify", extra={"event_id": event["id"]})
                    await repo.set_webhook_outcome(conn, "revenuecat", event["id"], "unknown_user")
                    return WebhookAck(ignored=True)
                applied = await state.billing.on_revenuecat(conn, event, user_id, when)
                await repo.set_webhook_outcome(conn, "revenuecat", event["id"], "applied" if applied else "ignored")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("malformed revenuecat event", extra={"event_id": event["id"], "error": repr(exc)})
        raise errors.INVALID_PAYLOAD(f"The {event['type']} event is malformed: {exc}") from None
    await after_commit(state, applied)
    return WebhookAck(ignored=not applied)
