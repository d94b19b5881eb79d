"""Contract: what the sandbox's Stripe answers, for every call SceneXtras makes and every event it
delivers, validates against Stripe's published shapes - so the fake cannot drift from Stripe.

The schemas come from the official SDK's generated types (tests/sandbox/stripe_sdk_schema.py: the
OpenAPI document they are generated from is too large to fetch here whole); the same schemas are
first checked against Stripe's own fixture objects (fixtures3.json), so they are Stripe's, not ours.
Calls go through the official SDK with the parameters the payment service sends
(payment_service/routers/account.py), and the raw JSON on the wire is what is validated.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema_rs
import pytest
import stripe

from sandbox.testing import DUMMY_KEYS
from tests.sandbox.stripe_sdk_schema import OBJECTS, schema_for

FIXTURES = json.loads((Path(__file__).parents[1] / "fixtures/providers/stripe/fixtures3.json").read_text())["resources"]
PRO, MAX = DUMMY_KEYS["STRIPE_PRICE_PRO"], DUMMY_KEYS["STRIPE_PRICE_MAX"]

# Where Stripe's two publications disagree with each other, the fixture is the odd one out.
# fixtures3 (2026-07) still lists invoice.subscription; the SDK's API version does not.
FIXTURE_ONLY_FIELDS = {"invoice": {"subscription"}}


@cache
def validator(name: str):
    return jsonschema_rs.validator_for(schema_for(OBJECTS[name]))


def errors(name: str, obj: dict) -> list[str]:
    return [
        f"{'/'.join(map(str, e.instance_path)) or '(top)'}: {e.message[:300]}" for e in validator(name).iter_errors(obj)
    ]


def object_name(obj: dict) -> str:
    return obj["object"]


@pytest.mark.parametrize("name", sorted(n for n in OBJECTS if n != "deleted_customer"))
def test_the_schemas_accept_stripes_own_fixture_objects(name):
    obj = {k: v for k, v in FIXTURES[name].items() if k not in FIXTURE_ONLY_FIELDS.get(name, set())}
    assert errors(name, obj) == []


def test_the_schemas_refuse_what_stripe_would_not_send():
    sub = json.loads(json.dumps(FIXTURES["subscription"]))
    sub["current_period_end"] = 1  # moved to the items in 2025 (basil): an invented field is drift
    del sub["items"]
    sub["status"] = "live"
    found = errors("subscription", sub)
    assert any("current_period_end" in e for e in found)
    assert any("items" in e for e in found)
    assert any("live" in e for e in found)


@pytest.fixture
def client(sandbox):
    base = sandbox.env()["STRIPE_API_BASE"]
    return stripe.StripeClient(DUMMY_KEYS["STRIPE_SECRET_KEY"], base_addresses={"api": base}, max_network_retries=0)


def wire(obj) -> dict:
    """The JSON body Stripe (the sandbox) answered, not the SDK's reading of it."""
    return json.loads(obj.last_response.body)


def test_every_answer_and_event_of_a_subscription_lifetime_matches_stripe(sandbox, client):
    seen: dict[str, list[str]] = {}
    drift: list[str] = []

    def check(name: str, body: dict, where: str) -> None:
        drift.extend(f"{where} ({name}) {e}" for e in errors(name, body))
        seen.setdefault(name, []).append(where)

    user = "0b6f3d4c-1f1e-4d8f-9a44-6c8f1f3b1a10"
    customer = client.v1.customers.create(
        {"email": "fan@example.test", "metadata": {"user_id": user}}, {"idempotency_key": f"customer-create-{user}"}
    )
    check("customer", wire(customer), "POST /v1/customers")
    check("customer", wire(client.v1.customers.retrieve(customer.id)), "GET /v1/customers/{id}")

    promos = client.v1.promotion_codes.list({"code": "WELCOME20", "active": True, "limit": 1})
    listed = wire(promos)
    assert listed["object"] == "list" and listed["data"]
    for promo in listed["data"]:
        check("promotion_code", promo, "GET /v1/promotion_codes")

    session = client.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer": customer.id,
            "client_reference_id": user,
            "line_items": [{"price": PRO, "quantity": 1}],
            "success_url": "https://app.scenextras.test/payment-success?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.scenextras.test/payment-cancelled",
            "metadata": {"user_id": user, "tier": "pro"},
            "subscription_data": {"metadata": {"user_id": user, "tier": "pro"}},
            "discounts": [{"promotion_code": listed["data"][0]["id"]}],
        }
    )
    check("checkout.session", wire(session), "POST /v1/checkout/sessions")
    sandbox.control.stripe_complete_checkout(session.id)
    completed = client.v1.checkout.sessions.retrieve(session.id)
    check("checkout.session", wire(completed), "GET /v1/checkout/sessions/{id} (complete)")
    sub_id = completed.subscription

    sub = client.v1.subscriptions.retrieve(sub_id)
    check("subscription", wire(sub), "GET /v1/subscriptions/{id}")
    item = sub["items"]["data"][0]
    portal = client.v1.billing_portal.sessions.create(
        {"customer": customer.id, "return_url": "https://app.scenextras.test/account"}
    )
    check("billing_portal.session", wire(portal), "POST /v1/billing_portal/sessions")

    upgraded = client.v1.subscriptions.update(
        sub_id,
        {
            "items": [{"id": item.id, "price": MAX}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        },
    )
    check("subscription", wire(upgraded), "POST /v1/subscriptions/{id} (upgrade)")
    downgraded = client.v1.subscriptions.update(
        sub_id,
        {
            "items": [{"id": item.id, "price": PRO}],
            "proration_behavior": "none",
            "metadata": {"tier": "pro", "scenextras_paid_tier": "2", "scenextras_paid_tier_until": "1900000000"},
        },
    )
    check("subscription", wire(downgraded), "POST /v1/subscriptions/{id} (downgrade)")
    # Time passes at Stripe: renewal, a failed payment, a refund; then the end.
    for action in ("renew", "payment_failed", "renew", "refund"):
        sandbox.control.stripe_subscription(sub_id, action)
    at_end = client.v1.subscriptions.update(sub_id, {"cancel_at_period_end": True})
    check("subscription", wire(at_end), "POST /v1/subscriptions/{id} (cancel at period end)")
    for invoice in wire(client.v1.invoices.list({"customer": customer.id}))["data"]:
        check("invoice", invoice, "GET /v1/invoices")
    cancelled = client.v1.subscriptions.cancel(sub_id)
    check("subscription", wire(cancelled), "DELETE /v1/subscriptions/{id}")

    # Every event the sandbox produced (what it POSTs to the webhook), envelope and object.
    events = wire(client.v1.events.list({"limit": 100}))["data"]
    assert len(events) >= 8
    for event in events:
        envelope = {**event, "data": {**event["data"], "object": {}}}
        check("event", envelope, f"event {event['type']}")
        obj = event["data"]["object"]
        check(
            object_name(obj) if object_name(obj) in OBJECTS else pytest.fail(f"unexpected {obj['object']}"),
            obj,
            f"event {event['type']} data.object",
        )
    types = {e["type"] for e in events}
    assert {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
        "charge.refunded",
    } <= types

    deleted = client.v1.customers.delete(customer.id)
    body = wire(deleted)
    published = FIXTURES["deleted_customer"]
    assert set(body) == set(published) and body["deleted"] is True and body["object"] == published["object"]
    assert set(seen) >= {
        "customer",
        "subscription",
        "checkout.session",
        "billing_portal.session",
        "invoice",
        "event",
        "promotion_code",
        "charge",
    }
    assert drift == [], "the sandbox drifts from Stripe:\n" + "\n".join(sorted(set(drift)))


def test_error_answers_have_stripes_error_shape(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.retrieve("cus_missing000000")
    err = caught.value
    assert err.http_status == 404 and err.code == "resource_missing" and err.param == "id"
    body = json.loads(err.http_body)["error"]
    # Stripe's `error` schema: type is one of four, message/code/param/doc_url strings.
    assert body["type"] in ("api_error", "card_error", "idempotency_error", "invalid_request_error")
    assert set(body) <= {
        "advice_code",
        "charge",
        "code",
        "decline_code",
        "doc_url",
        "message",
        "network_advice_code",
        "network_decline_code",
        "param",
        "payment_intent",
        "payment_method",
        "payment_method_type",
        "request_log_url",
        "setup_intent",
        "source",
        "type",
    }
