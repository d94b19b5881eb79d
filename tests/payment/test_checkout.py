"""Checkout, portal, change and cancel against the sandbox's Stripe server (the SDK's real requests),
and the full loop: pay in the sandbox, its signed events posted back to our webhook."""

from __future__ import annotations

import uuid

import httpx

from tests.payment.conftest import PRICE_MAX, PRICE_PRO, post_stripe


def stripe_requests(sandbox, path: str, since: int, method: str = "POST") -> list[dict]:
    return [
        r
        for r in sandbox.control.requests(provider="stripe", path=path, method=method, since=since)
        if r["path"] == path
    ]


def last_request_id(sandbox) -> int:
    reqs = sandbox.control.requests(provider="stripe")
    return reqs[-1]["id"] if reqs else 0


async def deliver(client, sandbox, event_ids: list[str]) -> None:
    """Fetch the events the sandbox produced (GET /v1/events/{id}) and post them, signed, to us."""
    base = sandbox.env()["STRIPE_API_BASE"]
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": "Bearer sk_test_sandbox_0000000000000000"}
    ) as http:
        for event_id in event_ids:
            event = (await http.get(f"/v1/events/{event_id}")).json()
            r = await post_stripe(client, event)
            assert r.status_code == 200, r.text


async def subscribe(client, sandbox, headers, tier="pro", **body):
    r = await client.post("/create-checkout-session", json={"tier": tier, **body}, headers=headers)
    assert r.status_code == 200, r.text
    session_id = r.json()["session_id"]
    done = sandbox.control.stripe_complete_checkout(session_id, deliver=False)
    await deliver(client, sandbox, [e["id"] for e in done["events"]])
    return done


async def test_checkout_sends_stripe_the_right_parameters(client, db, sandbox_required, users):
    sandbox = sandbox_required
    user, headers = users.new()
    since = last_request_id(sandbox)
    r = await client.post("/create-checkout-session", json={"tier": "pro"}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["session_id"].startswith("cs_test_") and body["checkout_url"].startswith("http")
    [customer_req] = stripe_requests(sandbox, "/v1/customers", since)
    assert customer_req["body"]["metadata"] == {"user_id": user}
    assert customer_req["headers"]["idempotency-key"] == f"customer-create-{user}"
    [session_req] = stripe_requests(sandbox, "/v1/checkout/sessions", since)
    p = session_req["body"]
    assert p["mode"] == "subscription" and p["client_reference_id"] == user
    assert p["line_items"] == [{"price": PRICE_PRO, "quantity": "1"}]
    assert p["allow_promotion_codes"] == "true" and "discounts" not in p
    assert p["metadata"] == {"user_id": user, "tier": "pro"}
    assert p["subscription_data"]["metadata"] == {"user_id": user, "tier": "pro"}
    assert "trial_period_days" not in p["subscription_data"]
    assert p["success_url"].startswith("https://app.scenextras.test/") and "{CHECKOUT_SESSION_ID}" in p["success_url"]
    assert session_req["headers"]["idempotency-key"].startswith(f"checkout-{user}-")
    assert session_req["headers"]["stripe-version"]
    customer = await db.fetchval("SELECT customer_id FROM stripe_customers WHERE user_id = $1", uuid.UUID(user))
    assert p["customer"] == customer
    # A second checkout reuses the customer: no second customer is created.
    since = last_request_id(sandbox)
    r = await client.post("/api/payments/create-checkout-session", json={"tier": "max"}, headers=headers)
    assert r.status_code == 200
    assert stripe_requests(sandbox, "/v1/customers", since) == []
    [session_req] = stripe_requests(sandbox, "/v1/checkout/sessions", since)
    assert session_req["body"]["line_items"][0]["price"] == PRICE_MAX and session_req["body"]["customer"] == customer


async def test_promo_code_and_bad_input(client, sandbox_required, users):
    sandbox = sandbox_required
    user, headers = users.new()
    since = last_request_id(sandbox)
    r = await client.post("/create-checkout-session", json={"tier": "max", "promo_code": "WELCOME20"}, headers=headers)
    assert r.status_code == 200, r.text
    [session_req] = stripe_requests(sandbox, "/v1/checkout/sessions", since)
    assert session_req["body"]["discounts"] == [{"promotion_code": "promo_SandboxWelcome20"}]
    assert "allow_promotion_codes" not in session_req["body"]
    since = last_request_id(sandbox)
    r = await client.post("/create-checkout-session", json={"tier": "pro", "promo_code": "NOPE"}, headers=headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "INVALID_PROMO_CODE"
    assert stripe_requests(sandbox, "/v1/checkout/sessions", since) == []
    for bad in (
        {"tier": "gold"},
        {"tier": "pro", "extra": 1},
    ):
        r = await client.post("/create-checkout-session", json=bad, headers=headers)
        assert r.status_code == 422, (bad, r.text)
    r = await client.post(
        "/create-checkout-session", json={"tier": "pro", "success_url": "https://evil.example/phish"}, headers=headers
    )
    assert r.status_code == 403 and r.json()["detail"]["code"] == "INVALID_REDIRECT_URL"
    r = await client.post("/create-checkout-session", json={"tier": "pro"})
    assert r.status_code == 401
    assert stripe_requests(sandbox, "/v1/checkout/sessions", since) == []


async def test_trial_only_for_first_subscription(make_client, sandbox_required, users):
    from tests.payment.conftest import payment_env

    sandbox = sandbox_required
    async with make_client("payment", **{**payment_env(sandbox), "stripe_trial_days": "7"}) as c:
        user, headers = users.new()
        since = last_request_id(sandbox)
        assert (await c.post("/create-checkout-session", json={"tier": "pro"}, headers=headers)).status_code == 200
        [req] = stripe_requests(sandbox, "/v1/checkout/sessions", since)
        assert req["body"]["subscription_data"]["trial_period_days"] == "7"


async def test_full_loop_pay_upgrade_downgrade_cancel(client, db, sandbox_required, users, event_spy):
    from payment_service.sweeper import sweep_once

    sandbox = sandbox_required
    user, headers = users.new()
    async with event_spy(["subscription.*", "payment.*"]) as spy:
        await subscribe(client, sandbox, headers, "pro")
        await spy.wait_for("subscription.created", user_id=user)
        await spy.wait_for("payment.succeeded", user_id=user)
        state = (await client.get("/subscription", headers=headers)).json()
        assert state["tier"] == 1 and state["status"] == "active" and state["current_period_end"]
        sub_id = state["subscriptions"][0]["subscription_id"]
        # Already subscribed: a second checkout is refused.
        r = await client.post("/create-checkout-session", json={"tier": "max"}, headers=headers)
        assert r.status_code == 409 and r.json()["detail"]["code"] == "ALREADY_SUBSCRIBED"

        # Upgrade now: price swap, prorated invoice at once, tier 2 on the next request.
        since = last_request_id(sandbox)
        r = await client.post("/subscription/change", json={"tier": "max"}, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["tier"] == 2
        [upd] = stripe_requests(sandbox, f"/v1/subscriptions/{sub_id}", since)
        assert upd["body"]["proration_behavior"] == "always_invoice"
        assert upd["body"]["items"][0]["price"] == PRICE_MAX and upd["body"]["items"][0]["id"].startswith("si_")
        await spy.wait_for("subscription.upgraded", user_id=user)
        assert await client.app.state.redis.get(client.app.state.keys("tier", user)) == "2"

        # Downgrade at period end: no proration, tier stays 2 until the period ends.
        since = last_request_id(sandbox)
        r = await client.post("/subscription/change", json={"tier": "pro"}, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["tier"] == 2 and r.json()["pending_tier"] == 1
        [upd] = stripe_requests(sandbox, f"/v1/subscriptions/{sub_id}", since)
        assert upd["body"]["proration_behavior"] == "none" and upd["body"]["items"][0]["price"] == PRICE_PRO
        assert await db.fetchval("SELECT effective_tier($1::uuid)", uuid.UUID(user)) == 2
        # The period ends: the sweeper applies the scheduled tier.
        await db.execute(
            "UPDATE subscriptions SET pending_tier_at = now() - interval '1 second' WHERE external_id = $1", sub_id
        )
        await sweep_once(client.app)
        down = await spy.wait_for("subscription.downgraded", user_id=user)
        assert down[0].data["tier"] == 1
        assert (await client.get("/subscription", headers=headers)).json()["tier"] == 1
        # Back to max is an upgrade again (charged now).
        since = last_request_id(sandbox)
        r = await client.post("/subscription/change", json={"tier": "max"}, headers=headers)
        assert r.status_code == 200 and r.json()["tier"] == 2


async def test_cancel_at_period_end_then_now(client, db, sandbox_required, users, event_spy):
    sandbox = sandbox_required
    user, headers = users.new()
    async with event_spy(["subscription.*"]) as spy:
        await subscribe(client, sandbox, headers, "pro")
        await spy.wait_for("subscription.created", user_id=user)
        # Cancel at period end: still pro, flagged, one cancelled event.
        r = await client.post("/subscription/cancel", json={"at_period_end": True}, headers=headers)
        assert r.status_code == 200 and r.json()["cancel_at_period_end"] is True and r.json()["tier"] == 1
        cancelled = await spy.wait_for("subscription.cancelled", user_id=user)
        assert cancelled[0].data["cancel_at_period_end"] is True and cancelled[0].data["tier"] == 1
        # Cancel now: free at once.
        r = await client.post("/subscription/cancel", json={"at_period_end": False}, headers=headers)
        assert r.status_code == 200 and r.json()["tier"] == 0
        await spy.wait_for("subscription.cancelled", count=2, user_id=user)
    r = await client.post("/subscription/change", json={"tier": "max"}, headers=headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "NO_SUBSCRIPTION"
    r = await client.post("/subscription/cancel", json={}, headers=headers)
    assert r.status_code == 404
    q = await db.fetchrow("SELECT tier, quota FROM user_quotas WHERE user_id = $1", uuid.UUID(user))
    assert (q["tier"], q["quota"]) == (0, 5)


async def test_billing_portal(client, sandbox_required, users):
    sandbox = sandbox_required
    user, headers = users.new()
    r = await client.post("/billing-portal", json={}, headers=headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "NO_BILLING_ACCOUNT"
    await subscribe(client, sandbox, headers, "pro")
    since = last_request_id(sandbox)
    r = await client.post(
        "/billing-portal", json={"return_url": "https://app.scenextras.test/settings"}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["url"].startswith("http")
    [req] = stripe_requests(sandbox, "/v1/billing_portal/sessions", since)
    assert req["body"]["return_url"] == "https://app.scenextras.test/settings" and req["body"]["customer"].startswith(
        "cus_"
    )
    r = await client.post("/billing-portal", json={"return_url": "https://elsewhere.example"}, headers=headers)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "INVALID_REDIRECT_URL"


async def test_stripe_down_is_a_clear_error_and_changes_nothing(client, db, sandbox_required, users):
    sandbox = sandbox_required
    user, headers = users.new()
    sandbox.control.fault("stripe", 500, count=1, path="/v1/customers")
    r = await client.post("/create-checkout-session", json={"tier": "pro"}, headers=headers)
    assert r.status_code in (502, 503) and r.json()["detail"]["code"] in ("STRIPE_ERROR", "STRIPE_UNAVAILABLE")
    assert await db.fetchval("SELECT count(*) FROM stripe_customers WHERE user_id = $1", uuid.UUID(user)) == 0
    sandbox.control.fault("stripe", drop_connection=True, count=1, path="/v1/checkout/sessions")
    r = await client.post("/create-checkout-session", json={"tier": "pro"}, headers=headers)
    assert r.status_code == 503 and r.json()["detail"]["code"] == "STRIPE_UNAVAILABLE"
    sandbox.control.clear_faults()
    # It works again once Stripe answers, with the one customer.
    r = await client.post("/create-checkout-session", json={"tier": "pro"}, headers=headers)
    assert r.status_code == 200
    assert await db.fetchval("SELECT count(*) FROM stripe_customers WHERE user_id = $1", uuid.UUID(user)) == 1
