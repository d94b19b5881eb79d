"""Stripe webhooks: signed events shaped like Stripe's current API, applied once, in order."""

from __future__ import annotations

import json
import time
import uuid

from sandbox import stripe_events as se
from tests.payment.conftest import PRICE_MAX, PRICE_PRO, payment_env, post_stripe

PRO = se.price_object(PRICE_PRO, "prod_SandboxPro0001", 999)
MAX = se.price_object(PRICE_MAX, "prod_SandboxMax0001", 1999)


def new_ids():
    return str(uuid.uuid4()), se.new_id("cus_", 14), se.new_id("sub_1", 23)


def sub(user, customer, sub_id, price=PRO, **kw):
    return se.subscription_object(id=sub_id, customer=customer, price=price, metadata={"user_id": user}, **kw)


async def tier_of(db, user) -> int:
    return await db.fetchval("SELECT effective_tier($1::uuid)", uuid.UUID(user))


async def quota_row(db, user):
    return await db.fetchrow("SELECT * FROM user_quotas WHERE user_id = $1", uuid.UUID(user))


async def sub_row(db, sub_id):
    return await db.fetchrow("SELECT * FROM subscriptions WHERE source = 'stripe' AND external_id = $1", sub_id)


async def outbox_of(db, event_type: str, user: str) -> list[dict]:
    """The events of a type the webhook wrote for a user, in order: written in the webhook's own
    transaction, so counting them after the answer needs no waiting."""
    rows = await db.fetch(
        "SELECT convert_from(body, 'UTF8')::jsonb AS e FROM outbox_events"
        " WHERE event_type = $1 AND convert_from(body, 'UTF8')::jsonb->>'user_id' = $2 ORDER BY id",
        event_type,
        user,
    )
    return [json.loads(r["e"]) if isinstance(r["e"], str) else r["e"] for r in rows]


async def snapshot(db):
    return (
        await db.fetchval("SELECT count(*) FROM webhook_events"),
        await db.fetch("SELECT * FROM subscriptions ORDER BY id"),
        await db.fetchval("SELECT count(*) FROM payment_transactions"),
        await db.fetchval("SELECT count(*) FROM outbox_events"),
    )


async def test_subscription_created_grants_pro_quotas_cache_and_one_event(client, db, event_spy, users):
    user, headers = users.new()
    _, customer, sub_id = new_ids()
    keys, redis = client.app.state.keys, client.app.state.redis
    await redis.set(keys("tier", user), 0)
    async with event_spy(["subscription.*", "quota.reset"]) as spy:
        event = se.customer_subscription_created(sub(user, customer, sub_id))
        r = await post_stripe(client, event)
        assert r.status_code == 200 and r.json() == {"received": True, "duplicate": False, "ignored": False}
        # The same event again (Stripe retries): acknowledged, nothing applied twice.
        again = await post_stripe(client, event)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        created = await spy.wait_for("subscription.created", user_id=user)
        await spy.wait_for("quota.reset", user_id=user)
        # Once each, as written (the duplicate delivery wrote nothing): no waiting for stragglers.
        assert len(await outbox_of(db, "subscription.created", user)) == 1
        resets = await outbox_of(db, "quota.reset", user)
        assert [e["data"]["reason"] for e in resets] == ["created", "upgrade"]
    data = created[0].data
    assert (
        data["tier"] == 1 and data["previous_tier"] == 0 and data["status"] == "active" and data["source"] == "stripe"
    )
    assert data["current_period_end"].endswith("Z") and data["quotas"]["premium"] == 100
    assert await tier_of(db, user) == 1
    q = await quota_row(db, user)
    assert (q["tier"], q["quota"], q["quota_premium_model"], q["quota_image_generation"], q["period"]) == (
        1,
        -1,
        100,
        5,
        "billing",
    )
    row = await sub_row(db, sub_id)
    assert q["reset_at"] == row["current_period_end"]
    # Every service sees the upgrade on the next request: the tier cache was overwritten.
    assert await redis.get(keys("tier", user)) == "1"
    assert await db.fetchval("SELECT user_id FROM stripe_customers WHERE customer_id = $1", customer) == uuid.UUID(user)
    subscription = (await client.get("/subscription", headers=headers)).json()
    assert subscription["tier"] == 1 and subscription["status"] == "active" and subscription["source"] == "stripe"
    quota = (await client.get("/quota", headers=headers)).json()
    assert quota["quotas"]["premium"]["remaining"] == 100 and quota["quotas"]["regular"] == {
        "remaining": -1,
        "reset_at": None,
    }


async def test_upgrade_then_downgrade_by_price_change(client, db, event_spy, users):
    user, _ = users.new()
    _, customer, sub_id = new_ids()
    t0 = int(time.time()) - 100
    await post_stripe(client, se.customer_subscription_created(sub(user, customer, sub_id), event_created=t0))
    async with event_spy(["subscription.*"]) as spy:
        r = await post_stripe(
            client,
            se.customer_subscription_updated(
                sub(user, customer, sub_id, price=MAX), previous_attributes={"items": {}}, event_created=t0 + 10
            ),
        )
        assert r.status_code == 200
        up = await spy.wait_for("subscription.upgraded", user_id=user)
        assert up[0].data["tier"] == 2 and up[0].data["previous_tier"] == 1
        assert (await quota_row(db, user))["quota_premium_model"] == -1
        r = await post_stripe(
            client, se.customer_subscription_updated(sub(user, customer, sub_id, price=PRO), event_created=t0 + 20)
        )
        down = await spy.wait_for("subscription.downgraded", user_id=user)
        assert down[0].data["tier"] == 1 and down[0].data["previous_tier"] == 2
    assert (await quota_row(db, user))["quota_premium_model"] == 100
    assert await client.app.state.redis.get(client.app.state.keys("tier", user)) == "1"


async def test_deleted_before_updated_stays_cancelled(client, db, event_spy, users):
    user, _ = users.new()
    _, customer, sub_id = new_ids()
    t = int(time.time()) - 50
    await post_stripe(client, se.customer_subscription_created(sub(user, customer, sub_id), event_created=t))
    async with event_spy(["subscription.*"]) as spy:
        deleted = se.customer_subscription_deleted(
            sub(user, customer, sub_id, status="canceled", canceled_at=t + 5), event_created=t + 5
        )
        updated = se.customer_subscription_updated(
            sub(user, customer, sub_id, cancel_at_period_end=True), event_created=t + 5
        )
        assert (await post_stripe(client, deleted)).status_code == 200
        assert (await post_stripe(client, updated)).status_code == 200  # same second, arrives late
        cancelled = await spy.wait_for("subscription.cancelled", user_id=user)
        assert cancelled[0].data["tier"] == 0 and cancelled[0].data["previous_tier"] == 1
    row = await sub_row(db, sub_id)
    assert row["status"] == "canceled"
    assert await tier_of(db, user) == 0
    q = await quota_row(db, user)
    assert (q["tier"], q["quota"], q["quota_premium_model"], q["period"]) == (0, 5, 0, "daily")


async def test_stale_event_cannot_undo_a_newer_one(client, db, users):
    user, _ = users.new()
    _, customer, sub_id = new_ids()
    t = int(time.time()) - 50
    await post_stripe(
        client, se.customer_subscription_updated(sub(user, customer, sub_id, price=MAX), event_created=t + 20)
    )
    # An older event (pro) delivered after the newer one (max).
    await post_stripe(client, se.customer_subscription_created(sub(user, customer, sub_id, price=PRO), event_created=t))
    assert (await sub_row(db, sub_id))["tier"] == 2
    assert await tier_of(db, user) == 2


async def test_forged_signature_and_expired_timestamp_change_nothing(client, db, users):
    user, _ = users.new()
    _, customer, sub_id = new_ids()
    event = se.customer_subscription_created(sub(user, customer, sub_id))
    before = await snapshot(db)
    forged = await post_stripe(client, event, secret="whsec_attacker_secret")
    assert forged.status_code == 400 and forged.json()["detail"]["code"] == "INVALID_SIGNATURE"
    expired = await post_stripe(client, event, timestamp=int(time.time()) - 301)
    assert expired.status_code == 400 and expired.json()["detail"]["code"] == "INVALID_SIGNATURE"
    body, headers = se.signed_webhook(event, "whsec_x")
    missing = await client.post("/webhook", content=body, headers={"Content-Type": "application/json"})
    assert missing.status_code == 400
    # Signed, but the body was altered after signing.
    body, headers = se.signed_webhook(event, client.app.state.settings.stripe_webhook_secret)
    tampered = await client.post("/webhook", content=body.replace(b"active", b"trialing", 1), headers=headers)
    assert tampered.status_code == 400
    assert await snapshot(db) == before
    assert await tier_of(db, user) == 0


async def test_signed_garbage_is_400_and_unknown_types_are_200(client, db):
    secret = client.app.state.settings.stripe_webhook_secret
    before = await snapshot(db)
    body = b"not json at all"
    r = await client.post("/webhook", content=body, headers={"Stripe-Signature": se.sign_stripe_payload(body, secret)})
    assert r.status_code == 400 and r.json()["detail"]["code"] == "INVALID_PAYLOAD"
    body = b'{"id": "evt_1", "type": "customer.subscription.updated"}'
    r = await client.post("/webhook", content=body, headers={"Stripe-Signature": se.sign_stripe_payload(body, secret)})
    assert r.status_code == 400
    bad_sub = se.event(
        "customer.subscription.updated",
        {
            "id": "sub_x",
            "object": "subscription",
            "customer": "cus_x",
            "metadata": {"user_id": str(uuid.uuid4())},
            "items": "nope",
        },
    )
    r = await post_stripe(client, bad_sub)
    assert r.status_code == 400 and r.json()["detail"]["code"] == "INVALID_PAYLOAD"
    assert await snapshot(db) == before
    unknown = se.event("customer.tax_id.created", {"id": "txi_123", "object": "tax_id"})
    r = await post_stripe(client, unknown)
    assert r.status_code == 200 and r.json()["ignored"] is True
    # The legacy monolith path works too.
    r = await post_stripe(
        client, se.event("product.created", {"id": "prod_1", "object": "product"}), path="/api/payments/webhook"
    )
    assert r.status_code == 200


async def test_payment_failure_grace_then_free_then_recovery(client, db, event_spy, users):
    from payment_service.sweeper import sweep_once

    user, _ = users.new()
    _, customer, sub_id = new_ids()
    t = int(time.time()) - 200
    await post_stripe(client, se.customer_subscription_created(sub(user, customer, sub_id), event_created=t))
    async with event_spy(["payment.*", "subscription.*"]) as spy:
        failed = se.invoice_payment_failed(customer=customer, subscription=sub_id, price=PRO, event_created=t + 10)
        r = await post_stripe(client, failed)
        assert r.status_code == 200
        evt = (await spy.wait_for("payment.failed", user_id=user))[0]
        assert evt.data["amount"] == 999 and evt.data["grace_until"]
        row = await sub_row(db, sub_id)
        assert row["status"] == "past_due" and row["grace_until"] is not None
        assert await tier_of(db, user) == 1  # still pro during the grace period
        txn = await db.fetchrow(
            "SELECT * FROM payment_transactions WHERE subscription_ref = $1 AND kind = 'failed_payment'", sub_id
        )
        assert txn["status"] == "failed" and txn["amount_cents"] == 999
        # The grace period ends: the sweeper settles the user on free.
        await db.execute(
            "UPDATE subscriptions SET grace_until = now() - interval '1 second' WHERE external_id = $1", sub_id
        )
        result = await sweep_once(client.app)
        assert result["reconciled"] >= 1
        down = await spy.wait_for("subscription.downgraded", user_id=user)
        assert down[0].data["tier"] == 0 and down[0].data["reason"] == "period_ended"
        assert (await quota_row(db, user))["tier"] == 0
        assert await client.app.state.redis.get(client.app.state.keys("tier", user)) == "0"
        # The customer pays: recovered, pro again, a transaction and payment.succeeded.
        paid = se.invoice_paid(
            customer=customer, subscription=sub_id, price=PRO, billing_reason="subscription_cycle", event_created=t + 20
        )
        assert (await post_stripe(client, paid)).status_code == 200
        ok = await spy.wait_for("payment.succeeded", user_id=user)
        assert ok[0].data["amount"] == 999
        up = await spy.wait_for("subscription.upgraded", user_id=user)
        assert up[0].data["tier"] == 1
    row = await sub_row(db, sub_id)
    assert row["status"] == "active" and row["grace_until"] is None
    q = await quota_row(db, user)
    assert (q["tier"], q["quota_premium_model"]) == (1, 100)
    txns = await db.fetch(
        "SELECT kind, status, amount_cents FROM payment_transactions WHERE subscription_ref = $1 ORDER BY occurred_at",
        sub_id,
    )
    assert [(t["kind"], t["status"], t["amount_cents"]) for t in txns] == [
        ("failed_payment", "failed", 999),
        ("payment", "succeeded", 999),
    ]


async def test_invoice_paid_renews_paid_quotas_once(client, db, event_spy, users):
    user, _ = users.new()
    _, customer, sub_id = new_ids()
    t = int(time.time()) - 100
    await post_stripe(client, se.customer_subscription_created(sub(user, customer, sub_id), event_created=t))
    quota = client.app.state.quota
    r = await quota.reserve(user, "premium", 40)
    await quota.settle(r.reservation_id)
    assert (await quota_row(db, user))["quota_premium_model"] == 60
    end = int(time.time()) + 30 * 86400
    invoice = se.invoice_paid(
        customer=customer,
        subscription=sub_id,
        price=PRO,
        billing_reason="subscription_cycle",
        line_period_end=end,
        event_created=t + 10,
    )
    async with event_spy(["quota.reset", "payment.succeeded"]) as spy:
        assert (await post_stripe(client, invoice)).status_code == 200
        assert (await post_stripe(client, invoice)).json()["duplicate"] is True
        await spy.wait_for("payment.succeeded", user_id=user)
        resets = await spy.wait_for("quota.reset", user_id=user)
        assert resets[0].data["reason"] == "renewal"
        renewals = [e for e in await outbox_of(db, "quota.reset", user) if e["data"]["reason"] == "renewal"]
        assert len(renewals) == 1
        assert len(await outbox_of(db, "payment.succeeded", user)) == 1
    q = await quota_row(db, user)
    assert q["quota_premium_model"] == 100 and int(q["reset_at"].timestamp()) == end
    assert (
        await db.fetchval(
            "SELECT count(*) FROM payment_transactions WHERE external_id = $1", invoice["data"]["object"]["id"]
        )
        == 1
    )


async def test_checkout_completed_without_reachable_stripe_grants_from_the_session(client, db, users, sandbox_required):
    user, _ = users.new()
    _, customer, sub_id = new_ids()
    # sub_id does not exist at the sandbox: fetching it fails, the session's own data grants the plan.
    event = se.checkout_session_completed(
        customer=customer, subscription=sub_id, client_reference_id=user, metadata={"user_id": user, "tier": "max"}
    )
    r = await post_stripe(client, event)
    assert r.status_code == 200
    assert await tier_of(db, user) == 2
    row = await sub_row(db, sub_id)
    assert row["status"] == "active" and row["stripe_customer_id"] == customer
    # The subscription's own event then fills in price and period (same tier).
    await post_stripe(client, se.customer_subscription_updated(sub(user, customer, sub_id, price=MAX)))
    assert (await sub_row(db, sub_id))["current_period_end"] is not None


async def test_pause_and_resume(client, db, event_spy, users):
    user, _ = users.new()
    _, customer, sub_id = new_ids()
    t = int(time.time()) - 100
    await post_stripe(client, se.customer_subscription_created(sub(user, customer, sub_id), event_created=t))
    async with event_spy(["subscription.*"]) as spy:
        await post_stripe(
            client, se.customer_subscription_paused(sub(user, customer, sub_id, status="paused"), event_created=t + 1)
        )
        paused = await spy.wait_for("subscription.paused", user_id=user)
        assert paused[0].data["tier"] == 0
        assert await tier_of(db, user) == 0
        await post_stripe(client, se.customer_subscription_resumed(sub(user, customer, sub_id), event_created=t + 2))
        resumed = await spy.wait_for("subscription.resumed", user_id=user)
        assert resumed[0].data["tier"] == 1
    assert await tier_of(db, user) == 1


async def test_refund_is_recorded_once_per_amount(client, db, users):
    user, _ = users.new()
    _, customer, sub_id = new_ids()
    await post_stripe(client, se.customer_subscription_created(sub(user, customer, sub_id)))
    charge = se.charge_object(customer=customer, amount=999, amount_refunded=300)
    ev1 = se.charge_refunded(charge)
    assert (await post_stripe(client, ev1)).status_code == 200
    assert (await post_stripe(client, se.charge_refunded(dict(charge)))).status_code == 200  # another event, same state
    charge2 = dict(charge, amount_refunded=999, refunded=True)
    assert (await post_stripe(client, se.charge_refunded(charge2))).status_code == 200
    rows = await db.fetch(
        "SELECT amount_cents, user_id FROM payment_transactions WHERE kind = 'refund' "
        "AND subscription_ref = $1 ORDER BY amount_cents",
        charge["id"],
    )
    assert [r["amount_cents"] for r in rows] == [-699, -300]
    assert all(r["user_id"] == uuid.UUID(user) for r in rows)


async def test_missing_webhook_secret_is_a_clear_503(make_client, sandbox_required, users):
    from tests.payment.conftest import payment_env

    env = payment_env(sandbox_required)
    env["stripe_webhook_secret"] = ""
    env["stripe_api_key"] = ""
    async with make_client("payment", **env) as c:
        r = await post_stripe(c, se.event("product.created", {"id": "prod_1", "object": "product"}))
        assert r.status_code == 503 and r.json()["detail"]["code"] == "WEBHOOK_NOT_CONFIGURED"
        _, headers = users.new()
        r = await c.post("/create-checkout-session", json={"tier": "pro"}, headers=headers)
        assert r.status_code == 503 and r.json()["detail"]["code"] == "STRIPE_NOT_CONFIGURED"
        plans = (await c.get("/plans")).json()["plans"]
        assert [p["available"] for p in plans] == [True, False, False]


async def test_webhooks_are_not_rate_limited_per_address_but_other_routes_are(make_client, sandbox_required):
    async with make_client(
        "payment", **payment_env(sandbox_required), rate_limit_per_minute=100, redis_prefix=f"rl-{se.new_id('', 8)}"
    ) as client:
        events = [
            se.event("customer.tax_id.created", {"id": se.new_id("txi_", 14), "object": "tax_id"}) for _ in range(120)
        ]
        statuses = [(await post_stripe(client, e)).status_code for e in events]
        assert statuses == [200] * 120
        plans = [(await client.get("/plans")).status_code for _ in range(120)]
        assert 429 in plans and plans[0] == 200


async def test_cache_writes_after_commit_survive_a_redis_outage(infra, run_id):
    """The tier cache write and the quota cache drop after a tier change go in one pipeline; when
    Redis is away they are remembered and replayed before the process's next use of the cache."""
    from types import SimpleNamespace

    from payment_service.service import Applied
    from payment_service.webhook_effects import after_commit
    from shared.redis import Keys, create_redis, replay_pending
    from shared.testing.proxy import TcpProxy

    proxy = await TcpProxy("127.0.0.1", 6379).start()
    redis = create_redis(f"redis://127.0.0.1:{proxy.port}/0")
    direct = create_redis(infra.redis_url)
    keys = Keys(f"{run_id}-after-commit")
    state = SimpleNamespace(redis=redis, keys=keys)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        for u in (a, b):
            await direct.set(keys("tier", u), 0)
            await direct.set(keys("quota", u), "{}")
        await after_commit(state, [Applied(a, 1, 0, "created"), None, Applied(b, 2, 0, "created")])
        assert [await direct.get(keys("tier", u)) for u in (a, b)] == ["1", "2"]
        assert [await direct.get(keys("quota", u)) for u in (a, b)] == [None, None]
        assert 0 < await direct.ttl(keys("tier", a)) <= 300
        await direct.set(keys("quota", a), "{}")
        proxy.cut()
        await after_commit(state, [Applied(a, 0, 1, "cancelled")])  # no error: the webhook is still answered
        assert await direct.get(keys("tier", a)) == "1" and await direct.get(keys("quota", a)) == "{}"
        proxy.restore()
        await replay_pending(redis)
        assert await direct.get(keys("tier", a)) == "0" and await direct.get(keys("quota", a)) is None
    finally:
        await redis.aclose()
        await direct.aclose()
        await proxy.close()
