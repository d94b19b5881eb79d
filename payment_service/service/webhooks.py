"""A provider's webhook event, once authenticated and parsed by the route: recorded once and
applied in one transaction, then the caches every service reads updated after commit.

Each returns the outcome: "applied", "ignored" (a type we do not act on, or nothing changed) or
"duplicate" (already recorded: nothing done again). A signed event not shaped as its type should
be is refused (INVALID_PAYLOAD) with nothing changed."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from payment_service import errors
from payment_service.repositories import billing as repo
from payment_service.repositories.billing import as_uuid
from payment_service.service.stripe_events import SUBSCRIPTION_EVENTS
from payment_service.webhook_effects import after_commit

log = logging.getLogger("payment.webhooks")


@contextmanager
def _malformed_is_refused(provider: str, event_id: str, event_type: str):
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning(f"malformed {provider} event", extra={"event_id": event_id, "type": event_type, "error": repr(exc)})
        raise errors.INVALID_PAYLOAD(f"The {event_type} event is malformed: {exc}") from None


async def apply_stripe_event(state, event_id: str, event_type: str, obj: dict[str, Any], when: datetime) -> str:
    handler = state.billing.stripe_handler(event_type)
    if handler is not None and obj.get("id") is None:
        raise errors.INVALID_PAYLOAD("The event's object has no id.")
    with _malformed_is_refused("stripe", event_id, event_type):
        async with state.core_db.acquire() as conn:
            async with conn.transaction():
                outcome = "ignored" if handler is None else "applied"
                if handler is not None and event_type in SUBSCRIPTION_EVENTS:
                    # The subscription's row is locked and read with the event's record.
                    recorded, prev = await repo.record_subscription_event(
                        conn, "stripe", event_id, event_type, when, outcome, "stripe", str(obj["id"])
                    )
                    if not recorded:
                        return "duplicate"
                    applied = await handler(conn, obj, when, event_id, prev)
                else:
                    if not await repo.record_webhook_event(conn, "stripe", event_id, event_type, when, outcome):
                        return "duplicate"
                    if handler is None:
                        return "ignored"
                    applied = await handler(conn, obj, when, event_id)
                if not applied:  # e.g. a customer that is not ours: recorded as such, acknowledged
                    await repo.set_webhook_outcome(conn, "stripe", event_id, "ignored")
    await after_commit(state, applied)
    return "applied"


def revenuecat_user(event: dict[str, Any]) -> str | None:
    """Our user id among the app user ids RevenueCat knows the purchaser by."""
    for candidate in [event.get("app_user_id"), event.get("original_app_user_id"), *(event.get("aliases") or [])]:
        uid = as_uuid(candidate)
        if uid is not None:
            return str(uid)
    return None


async def apply_revenuecat_event(state, event: dict[str, Any], when: datetime) -> str:
    user_id = revenuecat_user(event)
    with _malformed_is_refused("revenuecat", event["id"], event["type"]):
        async with state.core_db.acquire() as conn:
            async with conn.transaction():
                if not await repo.record_webhook_event(conn, "revenuecat", event["id"], event["type"], when):
                    return "duplicate"
                if user_id is None:
                    log.warning("revenuecat event for a user we cannot identify", extra={"event_id": event["id"]})
                    await repo.set_webhook_outcome(conn, "revenuecat", event["id"], "unknown_user")
                    return "ignored"
                applied = await state.billing.on_revenuecat(conn, event, user_id, when)
                await repo.set_webhook_outcome(conn, "revenuecat", event["id"], "applied" if applied else "ignored")
    await after_commit(state, applied)
    return "applied" if applied else "ignored"
