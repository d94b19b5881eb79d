"""Stripe webhooks built from Stripe's own canonical objects (stripe/openapi `fixtures3.json`, see
tests/fixtures/providers/README.md), not from our sandbox's builders.

Events are Stripe's fixture `event` envelope with `type`, `data.object` (a fixture resource),
a fresh `id` and `created` = now. The objects are Stripe's as published; where a test changes one
(a fresh subscription id so tests do not share a row, our user in `metadata`, the customer id of
a customer the sandbox holds) it says so. The service's Stripe API is the sandbox, reached through
the official SDK; the sandbox is told to fail (sandbox/control.py) for the transient cases.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import uuid
from pathlib import Path

import pytest
import pytest_asyncio
import stripe

from sandbox import stripe_events as se
from tests.payment.conftest import payment_env, post_stripe

FIXTURES = json.loads((Path(__file__).parents[1] / "fixtures/providers/stripe/fixtures3.json").read_text())
RESOURCES = FIXTURES["resources"]
FIXTURE_SUB = RESOURCES["subscription"]
FIXTURE_PRICE = FIXTURE_SUB["items"]["data"][0]["price"]["id"]
FIXTURE_CUSTOMER = FIXTURE_SUB["customer"]

# The event types the service handles, and which fixture resource each carries.
HANDLED = {
    "checkout.session.completed": "checkout.session",
    "customer.subscription.created": "subscription",
    "customer.subscription.updated": "subscription",
    "customer.subscription.deleted": "subscription",
    "customer.subscription.paused": "subscription",
    "customer.subscription.resumed": "subscription",
    "invoice.paid": "invoice",
    "invoice.payment_failed": "invoice",
    "charge.refunded": "charge",
}
# A sample of those it does not handle: acknowledged as ignored.
NOT_HANDLED = {
    "customer.created": "customer",
    "customer.updated": "customer",
    "customer.deleted": "deleted_customer",
    "invoice.payment_succeeded": "invoice",
    "invoice.finalized": "invoice",
    "payment_intent.succeeded": "payment_intent",
    "charge.succeeded": "charge",
    "checkout.session.expired": "checkout.session",
    "price.updated": "price",
    "product.updated": "product",
    "customer.subscription.trial_will_end": "subscription",
}


def fixture(name: str, **changes) -> dict:
    obj = copy.deepcopy(RESOURCES[name])
    obj.update(changes)
    return obj


def event_of(event_type: str, obj: dict, created: int | None = None) -> dict:
    """Stripe's fixture event envelope carrying `obj`."""
    evt = copy.deepcopy(RESOURCES["event"])
    evt.update(id=se.new_id("evt_", 24), type=event_type, created=created or int(time.time()), data={"object": obj})
    return evt


def fresh_sub_id() -> str:
    return se.new_id("sub_1", 23)


async def webhook_row(db, event_id: str):
    return await db.fetchrow("SELECT * FROM webhook_events WHERE provider = 'stripe' AND event_id = $1", event_id)


async def tier_of(db, user) -> int:
    return await db.fetchval("SELECT effective_tier($1::uuid)", uuid.UUID(user))


def customer_lookups(sandbox, customer: str) -> int:
    return len(sandbox.control.requests(provider="stripe", path=f"/v1/customers/{customer}", method="GET"))


def stack_traces(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def published(make_client, sandbox_required):
    """The payment service with Stripe's fixture price as its Pro price."""
    env = {**payment_env(sandbox_required), "stripe_price_pro": FIXTURE_PRICE}
    async with make_client("payment", **env) as c:
        yield c


@pytest.fixture
def pdb(published):
    return published.app.state.core_db


@pytest.mark.parametrize("event_type", sorted(HANDLED) + sorted(NOT_HANDLED))
async def test_every_event_type_built_from_stripe_fixtures_as_published_is_acknowledged(
    published, pdb, sandbox_required, caplog, event_type
):
    """Stripe's objects as they are: a customer we never saw, no metadata, a fixture price. Stripe
    (the sandbox) answers 404 `resource_missing` for that customer: a definitive answer, recorded and
    acknowledged (200), asked once, no stack trace; never a 5xx."""
    resource = HANDLED.get(event_type) or NOT_HANDLED[event_type]
    obj = fixture(resource)
    if resource == "subscription":
        obj["id"] = fresh_sub_id()  # each test its own row
    event = event_of(event_type, obj)
    before = customer_lookups(sandbox_required, FIXTURE_CUSTOMER)
    caplog.set_level(logging.INFO)
    r = await post_stripe(published, event)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["received"] is True and body["duplicate"] is False
    assert body["ignored"] is (event_type in NOT_HANDLED)
    row = await webhook_row(pdb, event["id"])
    assert row is not None and row["event_type"] == event_type
    assert row["outcome"] == "ignored"  # nothing of ours changed
    if resource == "subscription":
        assert await pdb.fetchval("SELECT count(*) FROM subscriptions WHERE external_id = $1", obj["id"]) == 0
    asked = customer_lookups(sandbox_required, FIXTURE_CUSTOMER) - before
    # Only subscription and invoice events need to know whose customer it is; they ask Stripe once.
    assert asked == (1 if event_type in HANDLED and resource in ("subscription", "invoice") else 0)
    assert stack_traces(caplog) == []
    # Stripe delivers it again: a duplicate, and Stripe is not asked again.
    again = await post_stripe(published, event)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert customer_lookups(sandbox_required, FIXTURE_CUSTOMER) - before == asked


async def test_stripe_plan_created_event_fixture_unchanged_is_ignored(published, pdb):
    event = copy.deepcopy(RESOURCES["event"])  # Stripe's own event, as published (plan.created)
    event["created"] = int(time.time())
    r = await post_stripe(published, event)
    assert r.status_code == 200 and r.json()["ignored"] is True
    assert (await webhook_row(pdb, event["id"]))["outcome"] == "ignored"


async def test_fixture_subscription_with_our_user_upgrades_and_its_deletion_downgrades(published, pdb, users):
    user, headers = users.new()
    sub = fixture("subscription", id=fresh_sub_id(), metadata={"user_id": user})
    t = int(time.time()) - 30
    r = await post_stripe(published, event_of("customer.subscription.created", sub, created=t))
    assert r.status_code == 200 and r.json()["ignored"] is False
    assert await tier_of(pdb, user) == 1
    row = await pdb.fetchrow("SELECT * FROM subscriptions WHERE source = 'stripe' AND external_id = $1", sub["id"])
    assert (row["price_id"], row["status"], row["tier"]) == (FIXTURE_PRICE, "active", 1)
    assert row["stripe_customer_id"] == FIXTURE_CUSTOMER and row["cancel_at_period_end"] is True
    # Stripe's fixture period end (2000-12-08) is taken as published.
    assert int(row["current_period_end"].timestamp()) == sub["items"]["data"][0]["current_period_end"]
    state = (await published.get("/subscription", headers=headers)).json()
    assert state["tier"] == 1 and state["source"] == "stripe"
    r = await post_stripe(published, event_of("customer.subscription.deleted", sub, created=t + 10))
    assert r.status_code == 200
    assert await tier_of(pdb, user) == 0
    assert (await pdb.fetchval("SELECT status FROM subscriptions WHERE external_id = $1", sub["id"])) == "canceled"


async def test_fixture_invoice_paid_for_our_subscription_is_recorded(published, pdb, users):
    """Stripe's invoice fixture, its parent pointing at our subscription: the payment is recorded."""
    user, _ = users.new()
    # A customer id of its own: Stripe's fixture customer is already another test user's (first link wins).
    customer = se.new_id("cus_", 14)
    sub = fixture("subscription", id=fresh_sub_id(), customer=customer, metadata={"user_id": user})
    await post_stripe(published, event_of("customer.subscription.created", sub, created=int(time.time()) - 20))
    invoice = fixture("invoice", id=se.new_id("in_1", 23), customer=customer, amount_paid=1000, status="paid")
    invoice["parent"] = {
        **invoice["parent"],
        "type": "subscription_details",
        "subscription_details": {"metadata": {}, "subscription": sub["id"]},
    }
    r = await post_stripe(published, event_of("invoice.paid", invoice))
    assert r.status_code == 200, r.text
    tx = await pdb.fetchrow("SELECT * FROM payment_transactions WHERE external_id = $1", invoice["id"])
    assert tx["user_id"] == uuid.UUID(user) and tx["amount_cents"] == 1000 and tx["subscription_ref"] == sub["id"]
    assert await tier_of(pdb, user) == 1


async def sandbox_customer(published, user: str | None) -> str:
    """A customer created at the sandbox through the official SDK (what Checkout creates)."""
    client = published.app.state.billing.gateway.client
    metadata = {"user_id": user} if user else {}
    cus = await client.v1.customers.create_async(
        params={"email": f"{uuid.uuid4().hex[:8]}@example.test", "metadata": metadata}
    )
    return cus.id


async def test_unknown_customer_is_identified_through_stripe(published, pdb, users, sandbox_required):
    """Stripe's subscription without metadata, for a customer Stripe knows as ours: the service asks
    Stripe (the real SDK against the sandbox) and links the customer."""
    user, _ = users.new()
    customer = await sandbox_customer(published, user)
    sub = fixture("subscription", id=fresh_sub_id(), customer=customer)
    r = await post_stripe(published, event_of("customer.subscription.created", sub))
    assert r.status_code == 200
    assert await tier_of(pdb, user) == 1
    linked = await pdb.fetchval("SELECT user_id FROM stripe_customers WHERE customer_id = $1", customer)
    assert linked == uuid.UUID(user)
    assert customer_lookups(sandbox_required, customer) == 1


@pytest.mark.parametrize(
    "fault, retry_after",
    [
        ({"status": 500}, "30"),
        ({"status": 503}, "30"),
        ({"status": 429, "retry_after": 7}, "7"),
        ({"drop_connection": True}, "30"),
    ],
)
async def test_transient_stripe_failure_answers_503_with_retry_after_and_the_retry_applies(
    published, pdb, users, sandbox_required, caplog, fault, retry_after
):
    user, _ = users.new()
    customer = await sandbox_customer(published, user)
    sub = fixture("subscription", id=fresh_sub_id(), customer=customer)
    event = event_of("customer.subscription.created", sub)
    sandbox_required.control.fault(
        "stripe", path=f"/v1/customers/{customer}", method="GET", **{"status": None, **fault}
    )
    caplog.set_level(logging.INFO)
    r = await post_stripe(published, event)
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "STRIPE_UNAVAILABLE" and detail["retry_after"] == int(retry_after)
    assert r.headers["retry-after"] == retry_after
    # Nothing recorded: Stripe's retry is processed as new.
    assert await webhook_row(pdb, event["id"]) is None
    assert await pdb.fetchval("SELECT count(*) FROM subscriptions WHERE external_id = $1", sub["id"]) == 0
    assert stack_traces(caplog) == []
    again = await post_stripe(published, event)
    assert again.status_code == 200 and again.json()["duplicate"] is False
    assert await tier_of(pdb, user) == 1
    assert (await webhook_row(pdb, event["id"]))["outcome"] == "applied"


@pytest.mark.parametrize("case", ["invalid_request", "not_found", "deleted_customer"])
async def test_definitive_stripe_answer_is_recorded_and_acknowledged_once(
    published, pdb, users, sandbox_required, caplog, case
):
    user, _ = users.new()
    customer = await sandbox_customer(published, user)
    if case == "deleted_customer":
        await published.app.state.billing.gateway.client.v1.customers.delete_async(customer)
    else:
        status = 400 if case == "invalid_request" else 404
        sandbox_required.control.fault(
            "stripe", status, path=f"/v1/customers/{customer}", method="GET", message=f"No such customer: '{customer}'"
        )
    sub = fixture("subscription", id=fresh_sub_id(), customer=customer)
    event = event_of("customer.subscription.deleted", sub)
    caplog.set_level(logging.INFO)
    before = customer_lookups(sandbox_required, customer)
    r = await post_stripe(published, event)
    assert r.status_code == 200, r.text
    assert (await webhook_row(pdb, event["id"]))["outcome"] == "ignored"
    assert await tier_of(pdb, user) == 0
    assert stack_traces(caplog) == []
    definitive = [rec for rec in caplog.records if "definitive" in rec.getMessage()]
    assert len(definitive) == (0 if case == "deleted_customer" else 1)
    again = await post_stripe(published, event)
    assert again.json()["duplicate"] is True
    assert customer_lookups(sandbox_required, customer) - before == 1


def test_classification_of_the_sdk_exceptions():
    from payment_service.stripe_errors import is_definitive, retry_after

    assert is_definitive(stripe.InvalidRequestError("No such customer", "id", code="resource_missing", http_status=404))
    assert is_definitive(stripe.InvalidRequestError("bad", "x", http_status=400))
    assert is_definitive(stripe.IdempotencyError("reused", http_status=400))
    assert not is_definitive(stripe.APIConnectionError("reset"))
    assert not is_definitive(stripe.RateLimitError("slow down", http_status=429, headers={"retry-after": "12"}))
    assert not is_definitive(stripe.APIError("boom", http_status=500))
    assert not is_definitive(stripe.APIError("lock_timeout", http_status=409))
    assert not is_definitive(stripe.AuthenticationError("bad key", http_status=401))
    assert not is_definitive(stripe.PermissionError("restricted key", http_status=403))
    assert retry_after(stripe.RateLimitError("slow down", http_status=429, headers={"retry-after": "12"})) == 12
    assert retry_after(stripe.APIError("boom", http_status=500)) == 30
