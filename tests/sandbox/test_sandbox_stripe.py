"""stripe-python 16 (sync and async, StripeClient and module-level) against the Stripe sandbox,
and the webhook helpers checked with stripe.Webhook.construct_event."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import stripe
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox import stripe_events
from sandbox.stripe_api import DEFAULT_WEBHOOK_SECRET
from sandbox.stripe_events import sign_stripe_payload

KEY = "sk_test_sandbox_51Abc"


def client(sandbox, **kw) -> stripe.StripeClient:
    kw.setdefault("max_network_retries", 0)
    return stripe.StripeClient(KEY, base_addresses={"api": sandbox.url("/stripe")}, **kw)


def async_client(sandbox, **kw) -> stripe.StripeClient:
    kw.setdefault("max_network_retries", 0)
    return stripe.StripeClient(
        KEY, base_addresses={"api": sandbox.url("/stripe")}, http_client=stripe.HTTPXClient(), **kw
    )


def test_customer_create_with_idempotency_key(sandbox):
    c = client(sandbox)
    params = {"email": "bruce@wayne.example", "name": "Bruce Wayne", "metadata": {"user_id": "u-42"}}
    first = c.v1.customers.create(params, {"idempotency_key": "signup-u-42"})
    again = c.v1.customers.create(params, {"idempotency_key": "signup-u-42"})
    assert first.id == again.id and first.id.startswith("cus_")
    assert first.metadata["user_id"] == "u-42" and first.object == "customer"
    assert again.last_response.headers["idempotent-replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError) as e:
        c.v1.customers.create(dict(params, name="Batman"), {"idempotency_key": "signup-u-42"})
    assert e.value.http_status == 400
    with pytest.raises(stripe.IdempotencyError, match="same endpoint"):
        c.v1.products.create({"name": "x"}, {"idempotency_key": "signup-u-42"})
    recorded = sandbox.control.requests(provider="stripe", path="/v1/customers")
    assert [r["headers"]["idempotency-key"] for r in recorded] == ["signup-u-42"] * 3
    assert recorded[0]["headers"]["stripe-version"] == stripe_events.API_VERSION
    assert recorded[0]["body"] == {
        "email": "bruce@wayne.example",
        "name": "Bruce Wayne",
        "metadata": {"user_id": "u-42"},
    }
    assert len(sandbox.control._call("GET", "/_sandbox/stripe/objects", params={"object": "customer"})["data"]) == 1


def test_search_retrieve_update_delete_customer(sandbox):
    c = client(sandbox)
    a = c.v1.customers.create({"email": "a@x.example", "metadata": {"user_id": "user-a"}})
    c.v1.customers.create({"email": "b@x.example", "metadata": {"user_id": "user-b"}})
    found = c.v1.customers.search({"query": "metadata['user_id']:'user-a'"})
    assert [x.id for x in found.data] == [a.id] and found.object == "search_result"
    assert c.v1.customers.search({"query": "email:'b@x.example'"}).data[0].email == "b@x.example"
    assert c.v1.customers.retrieve(a.id).email == "a@x.example"
    updated = c.v1.customers.update(a.id, {"name": "Alfred", "metadata": {"plan": "pro"}})
    assert updated.name == "Alfred" and updated.metadata.to_dict() == {"user_id": "user-a", "plan": "pro"}
    assert c.v1.customers.delete(a.id).deleted is True
    assert c.v1.customers.retrieve(a.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError) as e:
        c.v1.customers.retrieve("cus_nope")
    assert e.value.code == "resource_missing" and e.value.http_status == 404


def test_auth_and_unknown_parameters(sandbox):
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient(
            "sk_live_realkey123456", base_addresses={"api": sandbox.url("/stripe")}, max_network_retries=0
        ).v1.customers.create({"email": "x@y.example"})
    with pytest.raises(stripe.InvalidRequestError) as e:
        client(sandbox).v1.checkout.sessions.create(
            {
                "mode": "subscription",
                "trial_period_days": 7,
                "line_items": [{"price": "price_sandbox_pro_monthly", "quantity": 1}],
            }
        )
    assert e.value.code == "parameter_unknown" and e.value.param == "trial_period_days"


def test_checkout_session_parameters_and_completion(sandbox):
    c = client(sandbox)
    cus = c.v1.customers.create({"email": "diana@themyscira.example", "metadata": {"user_id": "u-7"}})
    sess = c.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer": cus.id,
            "client_reference_id": "u-7",
            "line_items": [{"price": "price_sandbox_pro_monthly", "quantity": 1}],
            "allow_promotion_codes": True,
            "subscription_data": {"trial_period_days": 7, "metadata": {"user_id": "u-7"}},
            "success_url": "https://app.example/success?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.example/cancel",
            "metadata": {"user_id": "u-7", "tier": "pro"},
        }
    )
    assert sess.id.startswith("cs_test_") and sess.status == "open" and sess.payment_status == "unpaid"
    assert sess.url == sandbox.url(f"/stripe/checkout/pay/{sess.id}")
    assert sess.client_reference_id == "u-7" and sess.customer == cus.id and sess.allow_promotion_codes is True
    assert sess.metadata["tier"] == "pro" and "line_items" not in sess  # includable: only when expanded
    body = sandbox.control.requests(path="/v1/checkout/sessions", method="POST")[0]["body"]
    assert body["line_items"] == [{"price": "price_sandbox_pro_monthly", "quantity": "1"}]
    assert body["subscription_data"] == {"trial_period_days": "7", "metadata": {"user_id": "u-7"}}
    expanded = c.v1.checkout.sessions.retrieve(sess.id, {"expand": ["line_items"]})
    assert expanded.line_items.data[0].price.id == "price_sandbox_pro_monthly"

    done = sandbox.control.stripe_complete_checkout(sess.id)
    assert [e["type"] for e in done["events"]] == [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "checkout.session.completed",
    ]
    paid = c.v1.checkout.sessions.retrieve(sess.id, {"expand": ["subscription"]})
    assert paid.status == "complete" and paid.payment_status == "no_payment_required"  # a trial
    sub = paid.subscription
    assert sub.status == "trialing" and sub.metadata["user_id"] == "u-7"
    item = sub["items"].data[0]
    assert item.price.id == "price_sandbox_pro_monthly"
    assert item.current_period_end == sub.trial_end
    assert "current_period_end" not in sub  # basil: the period lives on the items only
    events = c.v1.events.list({"type": "checkout.session.completed"})
    evt = c.v1.events.retrieve(events.data[0].id)
    assert evt.data.object.id == sess.id and evt.data.object.client_reference_id == "u-7"
    invoice = c.v1.invoices.retrieve(sub.latest_invoice)
    assert invoice.parent.subscription_details.subscription == sub.id and invoice.status == "paid"


def test_checkout_validation(sandbox):
    c = client(sandbox)
    with pytest.raises(stripe.InvalidRequestError) as e:
        c.v1.checkout.sessions.create({"mode": "subscription", "line_items": [{"price": "price_nope", "quantity": 1}]})
    assert e.value.param == "line_items[0][price]" and e.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError, match="only specify one"):
        c.v1.checkout.sessions.create(
            {
                "mode": "subscription",
                "allow_promotion_codes": True,
                "discounts": [{"promotion_code": "promo_SandboxWelcome20"}],
                "line_items": [{"price": "price_sandbox_pro_monthly", "quantity": 1}],
            }
        )
    with pytest.raises(stripe.InvalidRequestError, match="mode"):
        c.v1.checkout.sessions.create({"line_items": [{"price": "price_sandbox_pro_monthly", "quantity": 1}]})


def test_subscription_swap_cancel_and_delete(sandbox):
    c = client(sandbox)
    sess = c.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer_email": "clark@kent.example",
            "line_items": [{"price": "price_sandbox_pro_monthly", "quantity": 1}],
            "success_url": "https://app.example/ok",
        }
    )
    sub_id = sandbox.control.stripe_complete_checkout(sess.id)["subscription"]["id"]
    sub = c.v1.subscriptions.retrieve(sub_id)
    assert sub.status == "active"
    item = sub["items"].data[0]
    swapped = c.v1.subscriptions.update(
        sub_id,
        {"items": [{"id": item.id, "price": "price_sandbox_max_monthly"}], "proration_behavior": "always_invoice"},
    )
    assert swapped["items"].data[0].price.id == "price_sandbox_max_monthly"
    assert swapped.latest_invoice != sub.latest_invoice
    upd = [e for e in c.v1.events.list({"type": "customer.subscription.updated"}).data]
    assert upd[0].data.previous_attributes["items"]["data"][0]["price"]["id"] == "price_sandbox_pro_monthly"
    body = sandbox.control.requests(path=f"/v1/subscriptions/{sub_id}", method="POST")[0]["body"]
    assert body == {
        "items": [{"id": item.id, "price": "price_sandbox_max_monthly"}],
        "proration_behavior": "always_invoice",
    }
    later = c.v1.subscriptions.update(sub_id, {"cancel_at_period_end": True})
    assert later.cancel_at_period_end is True and later.cancel_at == item.current_period_end
    gone = c.v1.subscriptions.cancel(sub_id)
    assert gone.status == "canceled" and gone.ended_at
    assert c.v1.events.list({"type": "customer.subscription.deleted"}).data[0].data.object.id == sub_id
    portal = c.v1.billing_portal.sessions.create({"customer": sub.customer, "return_url": "https://app.example/acct"})
    assert portal.id.startswith("bps_") and portal.url.startswith(sandbox.base_url)
    price = c.v1.prices.retrieve("price_sandbox_max_monthly")
    assert price.unit_amount == 1999 and price.recurring.interval == "month"


async def test_async_http_client(sandbox):
    c = async_client(sandbox)
    cus = await c.v1.customers.create_async(
        {"email": "async@x.example", "metadata": {"user_id": "u-async"}}, {"idempotency_key": "k-async"}
    )
    again = await c.v1.customers.create_async(
        {"email": "async@x.example", "metadata": {"user_id": "u-async"}}, {"idempotency_key": "k-async"}
    )
    assert cus.id == again.id
    sess = await c.v1.checkout.sessions.create_async(
        {
            "mode": "subscription",
            "customer": cus.id,
            "client_reference_id": "u-async",
            "line_items": [{"price": "price_sandbox_max_monthly", "quantity": 1}],
            "success_url": "https://a.example/s",
        }
    )
    sandbox.control.stripe_complete_checkout(sess.id)
    got = await c.v1.checkout.sessions.retrieve_async(sess.id)
    assert got.status == "complete" and got.payment_status == "paid" and got.amount_total == 1999
    sub = await c.v1.subscriptions.retrieve_async(got.subscription, {"expand": ["latest_invoice"]})
    assert sub.latest_invoice.amount_paid == 1999
    found = await c.v1.customers.search_async({"query": "metadata['user_id']:'u-async'"})
    assert found.data[0].id == cus.id
    ua = sandbox.control.requests(provider="stripe")[-1]["headers"]["x-stripe-client-user-agent"]
    assert json.loads(ua)["httplib"] == "httpx"


def test_module_level_api(sandbox, monkeypatch):
    monkeypatch.setattr(stripe, "api_key", KEY)
    monkeypatch.setattr(stripe, "api_base", sandbox.url("/stripe"))
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    cus = stripe.Customer.create(email="module@x.example")
    assert stripe.Customer.retrieve(cus.id).email == "module@x.example"


def test_stripe_fault_and_sdk_retry_with_same_idempotency_key(sandbox):
    sandbox.control.fault("stripe", 500, count=1, path="/v1/customers")
    cus = client(sandbox, max_network_retries=1).v1.customers.create({"email": "retry@x.example"})
    assert cus.email == "retry@x.example"
    recs = sandbox.control.requests(provider="stripe", path="/v1/customers")
    assert [r["status"] for r in recs] == [500, 200]
    assert recs[0]["headers"]["idempotency-key"] == recs[1]["headers"]["idempotency-key"]
    sandbox.control.fault("stripe", 429)
    with pytest.raises(stripe.RateLimitError):
        client(sandbox).v1.customers.create({"email": "x@x.example"})


def test_refund_and_lifecycle_control(sandbox):
    c = client(sandbox)
    sess = c.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer_email": "p@x.example",
            "line_items": [{"price": "price_sandbox_pro_monthly", "quantity": 1}],
        }
    )
    sub_id = sandbox.control.stripe_complete_checkout(sess.id)["subscription"]["id"]
    before = c.v1.subscriptions.retrieve(sub_id)["items"].data[0].current_period_end
    renewed = sandbox.control.stripe_subscription(sub_id, "renew")
    assert "invoice.paid" in [e["type"] for e in renewed["events"]]
    assert renewed["subscription"]["items"]["data"][0]["current_period_start"] == before
    failed = sandbox.control.stripe_subscription(sub_id, "payment_failed")
    assert failed["subscription"]["status"] == "past_due"
    assert [e["type"] for e in failed["events"]][-2:] == ["invoice.payment_failed", "customer.subscription.updated"]
    assert sandbox.control.stripe_subscription(sub_id, "pause")["subscription"]["status"] == "paused"
    assert sandbox.control.stripe_subscription(sub_id, "resume")["subscription"]["status"] == "active"
    refunded = sandbox.control.stripe_subscription(sub_id, "refund")
    assert refunded["events"][0]["type"] == "charge.refunded"
    charge = c.v1.events.retrieve(refunded["events"][0]["id"]).data.object
    assert charge.refunded is True and charge.amount_refunded == charge.amount


# ------------------------------------------------------------------------------------ webhooks


@pytest.mark.parametrize("builder", sorted(stripe_events.BUILDERS))
def test_signed_events_verify_with_construct_event(builder):
    evt = stripe_events.BUILDERS[builder]()
    body = stripe_events.payload(evt)
    header = sign_stripe_payload(body, "whsec_test_secret")
    got = stripe.Webhook.construct_event(body, header, "whsec_test_secret")
    assert got.type == builder and got.id == evt["id"] and got.data.object.id == evt["data"]["object"]["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body + b" ", header, "whsec_test_secret")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            body, sign_stripe_payload(body, "whsec_test_secret", int(time.time()) - 600), "whsec_test_secret"
        )


def test_event_builder_shapes():
    sub = stripe_events.subscription_object(
        customer="cus_1", price=stripe_events.default_price("price_max", 1999), metadata={"user_id": "u1"}
    )
    assert "current_period_end" not in sub and sub["items"]["data"][0]["current_period_end"] > sub["created"]
    paid = stripe_events.invoice_paid(customer="cus_1", subscription=sub["id"], price=sub["items"]["data"][0]["price"])
    inv = paid["data"]["object"]
    assert inv["parent"]["subscription_details"]["subscription"] == sub["id"] and "subscription" not in inv
    assert inv["lines"]["data"][0]["pricing"]["price_details"]["price"] == "price_max"
    done = stripe_events.checkout_session_completed(
        client_reference_id="u1", metadata={"user_id": "u1"}, event_id="evt_fixed"
    )
    assert done["id"] == "evt_fixed" and done["data"]["object"]["client_reference_id"] == "u1"
    upd = stripe_events.customer_subscription_updated(subscription=sub, previous_attributes={"status": "trialing"})
    assert upd["data"]["previous_attributes"] == {"status": "trialing"}


def _receiver():
    got: list[tuple[bytes, str]] = []

    async def hook(request: Request):
        got.append((await request.body(), request.headers.get("stripe-signature", "")))
        return JSONResponse({"received": True})

    app = Starlette(routes=[Route("/webhook", hook, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/webhook", got, server


def test_webhook_delivery_to_registered_endpoint(sandbox):
    url, got, server = _receiver()
    try:
        sandbox.control.stripe_webhook_endpoint(url, enabled_events=["checkout.session.completed", "invoice.paid"])
        c = client(sandbox)
        sess = c.v1.checkout.sessions.create(
            {
                "mode": "subscription",
                "client_reference_id": "u-hook",
                "line_items": [{"price": "price_sandbox_pro_monthly", "quantity": 1}],
            }
        )
        result = sandbox.control.stripe_complete_checkout(sess.id)
        assert [d["status"] for d in result["deliveries"]] == [200, 200]
        types = [stripe.Webhook.construct_event(body, sig, DEFAULT_WEBHOOK_SECRET).type for body, sig in got]
        assert types == ["invoice.paid", "checkout.session.completed"]
        again = sandbox.control.stripe_redeliver(result["events"][-1]["id"])
        assert again["deliveries"][0]["status"] == 200 and len(got) == 3
        # an API call that changes state delivers in the background
        c.v1.subscriptions.cancel(result["subscription"]["id"])
        assert sandbox.control.stripe_deliveries()[-1]["type"] in ("invoice.paid", "checkout.session.completed")
    finally:
        server.should_exit = True


def test_hosted_checkout_page_pays_and_redirects(sandbox):
    c = client(sandbox)
    sess = c.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer_email": "web@x.example",
            "line_items": [{"price": "price_sandbox_pro_monthly", "quantity": 1}],
            "success_url": "https://app.example/ok?id={CHECKOUT_SESSION_ID}",
            "allow_promotion_codes": True,
        }
    )
    page = httpx.get(sess.url)
    assert page.status_code == 200 and "LOCAL SANDBOX" in page.text
    r = httpx.post(sess.url, data={"email": "web@x.example", "promotion_code": "WELCOME20"})
    assert r.status_code == 303 and r.headers["location"] == f"https://app.example/ok?id={sess.id}"
    paid = c.v1.checkout.sessions.retrieve(sess.id)
    assert paid.status == "complete" and paid.amount_total == 799  # 20% off 9.99


def test_pending_if_incomplete_takes_only_pending_update_parameters(sandbox):
    c = client(sandbox)
    sess = c.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "customer_email": "pend@x.example",
            "line_items": [{"price": "price_sandbox_pro_monthly", "quantity": 1}],
        }
    )
    sub_id = sandbox.control.stripe_complete_checkout(sess.id)["subscription"]["id"]
    item = c.v1.subscriptions.retrieve(sub_id)["items"].data[0]
    params = {
        "items": [{"id": item.id, "price": "price_sandbox_max_monthly"}],
        "payment_behavior": "pending_if_incomplete",
        "proration_behavior": "always_invoice",
        "metadata": {"tier": "max"},
    }
    # metadata with a pending update is refused before 2026-05-27.dahlia, accepted from it on
    old = stripe.StripeClient(
        KEY, base_addresses={"api": sandbox.url("/stripe")}, max_network_retries=0, stripe_version="2025-03-31.basil"
    )
    with pytest.raises(stripe.InvalidRequestError) as e:
        old.v1.subscriptions.update(sub_id, params)
    assert e.value.param == "metadata"
    assert c.v1.subscriptions.update(sub_id, params).metadata["tier"] == "max"
