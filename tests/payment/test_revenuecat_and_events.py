"""RevenueCat webhooks, the cross-platform tier, and the events Payment consumes."""

from __future__ import annotations

import time
import uuid

from sandbox import stripe_events as se
from shared.events import make_event
from tests.payment.conftest import PRICE_PRO, post_revenuecat, post_stripe

PRO = se.price_object(PRICE_PRO, "prod_SandboxPro0001", 999)


def rc_event(
    user: str, type_: str, entitlements: list[str], *, expires_in: int = 30 * 86400, at: float | None = None, **extra
) -> dict:
    now_ms = int((at or time.time()) * 1000)
    return {
        "id": str(uuid.uuid4()).upper(),
        "type": type_,
        "app_user_id": user,
        "original_app_user_id": user,
        "aliases": [user],
        "entitlement_ids": entitlements,
        "product_id": "scenextras_max_monthly",
        "period_type": "NORMAL",
        "purchased_at_ms": now_ms,
        "expiration_at_ms": now_ms + expires_in * 1000,
        "event_timestamp_ms": now_ms,
        "environment": "SANDBOX",
        "store": "APP_STORE",
        "currency": "USD",
        "price": 19.99,
        "transaction_id": str(uuid.uuid4().int)[:15],
        **extra,
    }


async def tier_of(db, user) -> int:
    return await db.fetchval("SELECT effective_tier($1::uuid)", uuid.UUID(user))


async def test_wrong_or_missing_secret_is_401_and_changes_nothing(client, db, users):
    user, _ = users.new()
    before = await db.fetchval("SELECT count(*) FROM webhook_events")
    for auth in ("Bearer wrong", None, ""):
        r = await post_revenuecat(client, rc_event(user, "INITIAL_PURCHASE", ["max"]), auth=auth)
        assert r.status_code == 401 and r.json()["detail"]["code"] == "INVALID_WEBHOOK_AUTH"
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == before
    assert await tier_of(db, user) == 0
    r = await client.post(
        "/webhooks/revenuecat",
        content=b"{nope",
        headers={"Authorization": client.app.state.settings.revenuecat_webhook_auth},
    )
    assert r.status_code == 400


async def test_purchase_renewal_cancellation_expiration(client, db, users, event_spy):
    user, headers = users.new()
    t = time.time() - 100
    async with event_spy(["subscription.*", "payment.*"]) as spy:
        purchase = rc_event(user, "INITIAL_PURCHASE", ["max"], at=t)
        r = await post_revenuecat(client, purchase)
        assert r.status_code == 200 and r.json()["ignored"] is False
        assert (await post_revenuecat(client, purchase)).json()["duplicate"] is True
        created = await spy.wait_for("subscription.created", user_id=user)
        assert created[0].data["source"] == "revenuecat" and created[0].data["tier"] == 2
        paid = await spy.wait_for("payment.succeeded", user_id=user)
        assert paid[0].data["amount"] == 1999
        assert await tier_of(db, user) == 2
        assert await client.app.state.redis.get(client.app.state.keys("tier", user)) == "2"
        await post_revenuecat(client, rc_event(user, "CANCELLATION", ["max"], at=t + 1))
        await spy.wait_for("subscription.cancelled", user_id=user)
        assert await tier_of(db, user) == 2  # until the period ends
        await post_revenuecat(client, rc_event(user, "UNCANCELLATION", ["max"], at=t + 2))
        await spy.wait_for("subscription.resumed", user_id=user)
        await post_revenuecat(client, rc_event(user, "BILLING_ISSUE", ["max"], at=t + 3))
        await spy.wait_for("payment.failed", user_id=user)
        assert await tier_of(db, user) == 2  # grace period
        await post_revenuecat(client, rc_event(user, "EXPIRATION", ["max"], expires_in=0, at=t + 4))
        cancelled = await spy.wait_for("subscription.cancelled", count=2, user_id=user)
        assert cancelled[-1].data["tier"] == 0
    assert await tier_of(db, user) == 0
    assert (await client.get("/subscription", headers=headers)).json()["tier"] == 0
    txns = await db.fetch("SELECT source, amount_cents FROM payment_transactions WHERE user_id = $1", uuid.UUID(user))
    assert [(r["source"], r["amount_cents"]) for r in txns] == [("revenuecat", 1999)]


async def test_older_revenuecat_event_cannot_undo_newer(client, db, users):
    user, _ = users.new()
    t = time.time() - 100
    await post_revenuecat(client, rc_event(user, "EXPIRATION", ["pro"], expires_in=0, at=t + 10))
    await post_revenuecat(client, rc_event(user, "RENEWAL", ["pro"], at=t))  # older, arrives late
    assert await tier_of(db, user) == 0


async def test_cross_platform_tier_is_the_highest_active(client, db, users, event_spy):
    user, _ = users.new()
    customer, sub_id = se.new_id("cus_", 14), se.new_id("sub_1", 23)
    t = int(time.time()) - 100
    # Pro on the web.
    await post_stripe(
        client,
        se.customer_subscription_created(
            se.subscription_object(id=sub_id, customer=customer, price=PRO, metadata={"user_id": user}), event_created=t
        ),
    )
    assert await tier_of(db, user) == 1
    async with event_spy(["subscription.*"]) as spy:
        # Max on the phone: upgraded, whatever the web says.
        await post_revenuecat(client, rc_event(user, "INITIAL_PURCHASE", ["max"], at=t + 1))
        up = await spy.wait_for("subscription.upgraded", user_id=user)
        assert up[0].data["tier"] == 2 and up[0].data["previous_tier"] == 1
        # A web renewal does not take Max away.
        await post_stripe(
            client,
            se.customer_subscription_updated(
                se.subscription_object(id=sub_id, customer=customer, price=PRO, metadata={"user_id": user}),
                event_created=t + 2,
            ),
        )
        assert await tier_of(db, user) == 2
        # The phone subscription expires: back to the web's Pro, not to free.
        await post_revenuecat(client, rc_event(user, "EXPIRATION", ["max"], expires_in=0, at=t + 3))
        down = await spy.wait_for("subscription.cancelled", user_id=user)
        assert down[0].data["tier"] == 1
    assert await tier_of(db, user) == 1
    q = await db.fetchrow("SELECT tier, quota_premium_model FROM user_quotas WHERE user_id = $1", uuid.UUID(user))
    assert (q["tier"], q["quota_premium_model"]) == (1, 100)


async def test_unknown_user_and_unknown_type_are_acknowledged(client, db):
    r = await post_revenuecat(
        client,
        rc_event(
            "$RCAnonymousID:abc",
            "INITIAL_PURCHASE",
            ["max"],
            aliases=["$RCAnonymousID:abc"],
            original_app_user_id="$RCAnonymousID:abc",
        ),
    )
    assert r.status_code == 200 and r.json()["ignored"] is True
    r = await post_revenuecat(client, rc_event(str(uuid.uuid4()), "TEST", []))
    assert r.status_code == 200 and r.json()["ignored"] is True


async def test_user_created_referral_and_user_deleted_through_the_bus(client, db, users, eventually, sandbox_required):
    """Events published on the bus reach Payment's consumer: free row, bonus credits, erasure."""
    from shared.bus import emit

    referrer, _ = users.new()
    referred, headers = users.new()
    publisher = client.app.state.publisher
    for uid in (referrer, referred):
        await publisher.publish(make_event("user.created", uid, {"email": f"{uid[:8]}@example.com"}))
    await eventually(
        lambda: db.fetchval(
            "SELECT count(*) = 2 FROM user_quotas WHERE user_id = ANY($1::uuid[])",
            [uuid.UUID(referrer), uuid.UUID(referred)],
        )
    )
    referral = make_event("referral.completed", referrer, {"referrer_id": referrer, "referred_id": referred})
    await publisher.publish(referral)
    await publisher.publish(referral)  # delivered twice: applied once
    await eventually(
        lambda: db.fetchval("SELECT bonus_quota = 10 FROM user_quotas WHERE user_id = $1", uuid.UUID(referrer))
    )
    await eventually(
        lambda: db.fetchval("SELECT bonus_quota = 5 FROM user_quotas WHERE user_id = $1", uuid.UUID(referred))
    )
    quota = (await client.get("/quota", headers=headers)).json()
    assert quota["quotas"]["regular"]["remaining"] == 10  # 5 daily + 5 bonus
    # The referred user subscribes, then deletes their account.
    sandbox = sandbox_required
    r = await client.post("/create-checkout-session", json={"tier": "pro"}, headers=headers)
    done = sandbox.control.stripe_complete_checkout(r.json()["session_id"], deliver=False)
    from tests.payment.test_checkout import deliver, last_request_id

    await deliver(client, sandbox, [e["id"] for e in done["events"]])
    customer = await db.fetchval("SELECT customer_id FROM stripe_customers WHERE user_id = $1", uuid.UUID(referred))
    assert customer and await tier_of(db, referred) == 1
    since = last_request_id(sandbox)
    async with db.acquire() as conn:
        async with conn.transaction():
            await emit(conn, make_event("user.deleted", referred, {}))
    await eventually(
        lambda: db.fetchval("SELECT count(*) = 0 FROM subscriptions WHERE user_id = $1", uuid.UUID(referred))
    )
    assert await db.fetchval("SELECT count(*) FROM user_quotas WHERE user_id = $1", uuid.UUID(referred)) == 0
    assert await db.fetchval("SELECT count(*) FROM stripe_customers WHERE user_id = $1", uuid.UUID(referred)) == 0
    # Accounting keeps the payment, without the user.
    kept = await db.fetch(
        "SELECT user_id, amount_cents FROM payment_transactions WHERE stripe_customer_id = $1", customer
    )
    assert kept and all(r["user_id"] is None for r in kept)
    deletes = [
        r
        for r in sandbox.control.requests(provider="stripe", method="DELETE", since=since)
        if r["path"] == f"/v1/customers/{customer}"
    ]
    assert len(deletes) == 1
    assert await tier_of(db, referred) == 0


async def test_user_updated_email_goes_to_the_stripe_customer_once_and_never_backwards(
    client, db, users, eventually, sandbox_required
):
    """An email change (Auth's user.updated) reaches the user's Stripe customer, where receipts
    go; redelivered it is applied once; an older change delivered late does not undo it."""
    import httpx

    from tests.payment.test_checkout import last_request_id

    sandbox = sandbox_required
    user, headers = users.new()
    r = await client.post("/create-checkout-session", json={"tier": "pro"}, headers=headers)
    assert r.status_code == 200, r.text
    customer = await db.fetchval("SELECT customer_id FROM stripe_customers WHERE user_id = $1", uuid.UUID(user))
    assert customer
    publisher = client.app.state.publisher
    since = last_request_id(sandbox)
    changed = make_event("user.updated", user, {"changed": ["email"], "email": "new@example.com"})
    older = make_event("user.updated", user, {"changed": ["email"], "email": "older@example.com"})
    older.timestamp = changed.timestamp.replace(year=changed.timestamp.year - 1)
    password = make_event("user.updated", user, {"changed": ["password"]})
    for event in (changed, changed, password):
        await publisher.publish(event)
    await eventually(
        lambda: db.fetchval("SELECT email_as_of IS NOT NULL FROM stripe_customers WHERE user_id = $1", uuid.UUID(user))
    )
    await publisher.publish(older)
    # A marker after the others (a user without a customer): once handled, everything before it was.
    nobody = str(uuid.uuid4())
    marker = make_event("user.updated", nobody, {"changed": ["email"], "email": "nobody@example.com"})
    await publisher.publish(marker)
    await eventually(
        lambda: db.fetchval("SELECT count(*) = 1 FROM processed_events WHERE event_id = $1", uuid.UUID(marker.event_id))
    )
    updates = [
        r
        for r in sandbox.control.requests(provider="stripe", method="POST", since=since)
        if r["path"] == f"/v1/customers/{customer}"
    ]
    assert len(updates) == 1
    async with httpx.AsyncClient(
        base_url=sandbox.env()["STRIPE_API_BASE"], headers={"Authorization": "Bearer sk_test_sandbox_0000000000000000"}
    ) as http:
        assert (await http.get(f"/v1/customers/{customer}")).json()["email"] == "new@example.com"
