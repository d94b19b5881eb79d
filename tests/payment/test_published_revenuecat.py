"""RevenueCat webhooks: every sample RevenueCat publishes in its documentation (RevenueCat/docs
`code_blocks/integrations/webhooks/`, see tests/fixtures/providers/README.md), posted to the service.

As published, their users are RevenueCat ids (`1234567890`, `$RCAnonymousID:…`), not ours: each is
acknowledged and recorded as `unknown_user`. Then each again for one of our users: `app_user_id`
replaced by the user's id, a fresh event `id` and `transaction_id` (the samples share them, real
events do not) - nothing else changed.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest

from tests.payment.conftest import post_revenuecat

SAMPLES_DIR = Path(__file__).parents[1] / "fixtures/providers/revenuecat"
SAMPLES = {p.name: json.loads(p.read_text()) for p in sorted(SAMPLES_DIR.glob("*.json"))}
HANDLED = {
    "INITIAL_PURCHASE",
    "RENEWAL",
    "UNCANCELLATION",
    "NON_RENEWING_PURCHASE",
    "SUBSCRIPTION_EXTENDED",
    "PRODUCT_CHANGE",
    "CANCELLATION",
    "EXPIRATION",
    "BILLING_ISSUE",
    "SUBSCRIPTION_PAUSED",
}
# payment_env: {"pro": 1, "max": 2}
ENTITLEMENT_TIERS = {"pro": 1, "max": 2}


def test_every_documented_event_type_is_in_the_samples():
    types = {s["event"]["type"] for s in SAMPLES.values()}
    # The event types of RevenueCat's "Event Types and Fields" page that have a published sample.
    assert types >= HANDLED
    unhandled = {
        "TRANSFER",
        "REFUND_REVERSED",
        "TEMPORARY_ENTITLEMENT_GRANT",
        "INVOICE_ISSUANCE",
        "EXPERIMENT_ENROLLMENT",
        "VIRTUAL_CURRENCY_TRANSACTION",
    }
    assert types >= unhandled


async def outcome(db, event_id: str):
    return await db.fetchval(
        "SELECT outcome FROM webhook_events WHERE provider = 'revenuecat' AND event_id = $1", event_id
    )


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_sample_as_published_is_acknowledged(client, db, name):
    event = SAMPLES[name]["event"]
    r = await client.post(
        "/webhooks/revenuecat",
        content=json.dumps(SAMPLES[name]),
        headers={"Authorization": "Bearer rc-test-secret-0123456789", "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    # Several samples share one event id: the first is recorded, the others are duplicates.
    assert body["duplicate"] or body["ignored"]
    if not body["duplicate"]:
        assert await outcome(db, event["id"]) == "unknown_user"


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_sample_for_our_user_is_applied_as_its_type_says(client, db, users, name):
    user, _ = users.new()
    event = copy.deepcopy(SAMPLES[name]["event"])
    event["id"] = str(uuid.uuid4())
    if event.get("transaction_id"):
        event["transaction_id"] = uuid.uuid4().hex
    if "app_user_id" in event:
        event["app_user_id"] = user
    else:  # TRANSFER names no app_user_id: it moves purchases between the listed ids
        event["transferred_to"] = [user]
    r = await post_revenuecat(client, event)
    assert r.status_code == 200, r.text
    row = await db.fetchrow("SELECT * FROM subscriptions WHERE source = 'revenuecat' AND external_id = $1", user)
    if event["type"] not in HANDLED:
        assert r.json()["ignored"] is True and row is None
        assert await outcome(db, event["id"]) in ("ignored", "unknown_user")
        return
    assert r.json()["ignored"] is False and await outcome(db, event["id"]) == "applied"
    entitlements = event.get("entitlement_ids") or [event.get("entitlement_id")]
    tier = max(ENTITLEMENT_TIERS.get(e, 0) for e in entitlements)
    expected_status = {"EXPIRATION": "expired", "BILLING_ISSUE": "past_due", "SUBSCRIPTION_PAUSED": "paused"}
    assert row["status"] == expected_status.get(event["type"], "active")
    assert row["tier"] == tier
    if event.get("expiration_at_ms") and event["type"] not in ("BILLING_ISSUE", "SUBSCRIPTION_PAUSED"):
        assert int(row["current_period_end"].timestamp()) == event["expiration_at_ms"] // 1000
    assert row["cancel_at_period_end"] is (event["type"] == "CANCELLATION")
    # Money: a paid purchase is recorded once, in cents; a trial or a zero price is not.
    tx = await db.fetch("SELECT * FROM payment_transactions WHERE user_id = $1", uuid.UUID(user))
    paid = (
        event["type"] in ("INITIAL_PURCHASE", "RENEWAL", "NON_RENEWING_PURCHASE", "PRODUCT_CHANGE")
        and event.get("price")
        and event.get("period_type") != "TRIAL"
    )
    if paid:
        assert [t["amount_cents"] for t in tx] == [round(event["price"] * 100)]
    else:
        assert tx == []
    # Every sample's period ended years ago: none leaves a paid tier today, except a non-renewing
    # purchase without an expiration (RevenueCat: a lifetime entitlement).
    lifetime = event["type"] == "NON_RENEWING_PURCHASE" and not event.get("expiration_at_ms")
    assert await db.fetchval("SELECT effective_tier($1::uuid)", uuid.UUID(user)) == (tier if lifetime else 0)
