"""Stripe delivers one event several times at once (its retries overlap a slow first delivery):
exactly one delivery applies it, the others are told it was a duplicate, and the effects (rows,
events in the outbox, quota resets) exist once. Counted in the database, where the effects and
their events commit together, so nothing here waits for anything to not happen."""

from __future__ import annotations

import asyncio
import time
import uuid

from sandbox import stripe_events as se
from tests.payment.conftest import PRICE_PRO, post_stripe

PRO = se.price_object(PRICE_PRO, "prod_SandboxPro0001", 999)
COPIES = 6


def _sub(user, customer, sub_id):
    return se.subscription_object(id=sub_id, customer=customer, price=PRO, metadata={"user_id": user})


async def _outbox_of(db, user: str, event_type: str) -> list[dict]:
    rows = await db.fetch(
        "SELECT convert_from(body, 'UTF8')::jsonb->'data' AS data FROM outbox_events"
        " WHERE event_type = $1 AND convert_from(body, 'UTF8')::jsonb->>'user_id' = $2 ORDER BY id",
        event_type,
        user,
    )
    return [r["data"] for r in rows]  # the pool decodes jsonb


async def _deliver_at_once(client, event) -> list[dict]:
    answers = await asyncio.gather(*(post_stripe(client, event) for _ in range(COPIES)))
    assert [a.status_code for a in answers] == [200] * COPIES, [a.text for a in answers]
    return [a.json() for a in answers]


async def test_concurrent_copies_of_a_subscription_event_apply_once(client, db, users):
    user, _ = users.new()
    customer, sub_id = se.new_id("cus_", 14), se.new_id("sub_1", 23)
    event = se.customer_subscription_created(_sub(user, customer, sub_id))
    answers = await _deliver_at_once(client, event)
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * (COPIES - 1)
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE event_id = $1", event["id"]) == 1
    assert await db.fetchval("SELECT count(*) FROM subscriptions WHERE external_id = $1", sub_id) == 1
    assert len(await _outbox_of(db, user, "subscription.created")) == 1
    assert [d["reason"] for d in await _outbox_of(db, user, "quota.reset")] == ["created", "upgrade"]
    assert await db.fetchval("SELECT effective_tier($1::uuid)", uuid.UUID(user)) == 1


async def test_concurrent_copies_of_an_invoice_renew_and_record_the_payment_once(client, db, users):
    user, _ = users.new()
    customer, sub_id = se.new_id("cus_", 14), se.new_id("sub_1", 23)
    t = int(time.time()) - 100
    created = se.customer_subscription_created(_sub(user, customer, sub_id), event_created=t)
    assert (await post_stripe(client, created)).status_code == 200
    quota = client.app.state.quota
    spent = await quota.reserve(user, "premium", 40)
    await quota.settle(spent.reservation_id)
    end = int(time.time()) + 30 * 86400
    invoice = se.invoice_paid(
        customer=customer,
        subscription=sub_id,
        price=PRO,
        billing_reason="subscription_cycle",
        line_period_end=end,
        event_created=t + 10,
    )
    answers = await _deliver_at_once(client, invoice)
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * (COPIES - 1)
    invoice_id = invoice["data"]["object"]["id"]
    assert await db.fetchval("SELECT count(*) FROM payment_transactions WHERE external_id = $1", invoice_id) == 1
    assert len(await _outbox_of(db, user, "payment.succeeded")) == 1
    assert [d["reason"] for d in await _outbox_of(db, user, "quota.reset")] == ["created", "upgrade", "renewal"]
    assert await db.fetchval("SELECT quota_premium_model FROM user_quotas WHERE user_id = $1", uuid.UUID(user)) == 100
