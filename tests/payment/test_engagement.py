"""Upgrades to PostHog (shared/engagement.py, official SDK) against the sandbox's capture endpoint:
a subscription that raises the tier (created on a paid plan, or upgraded) is captured after its
webhook commits, as the same event as on the bus (its id is PostHog's uuid), the user as distinct
id; a downgrade is not an engagement event."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest_asyncio

from sandbox import stripe_events as se
from tests.payment.conftest import payment_env, post_stripe
from tests.payment.test_stripe_webhooks import MAX, PRO, new_ids, outbox_of, sub

KEY = "phc_payment_test"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tracked(make_client, sandbox_required):
    async with make_client("payment", **payment_env(sandbox_required), POSTHOG_API_KEY=KEY) as c:
        yield c


async def test_upgrades_reach_posthog_downgrades_do_not(tracked, db, users):
    user, _ = users.new()
    _, customer, sub_id = new_ids()
    t0 = int(time.time()) - 100
    for price, at in ((PRO, t0), (MAX, t0 + 10), (PRO, t0 + 20)):
        event = (
            se.customer_subscription_created(sub(user, customer, sub_id, price=price), event_created=at)
            if price is PRO and at == t0
            else se.customer_subscription_updated(
                sub(user, customer, sub_id, price=price), previous_attributes={"items": {}}, event_created=at
            )
        )
        r = await post_stripe(tracked, event)
        assert r.status_code == 200, r.text
    created = await outbox_of(db, "subscription.created", user)
    upgraded = await outbox_of(db, "subscription.upgraded", user)
    downgraded = await outbox_of(db, "subscription.downgraded", user)
    assert len(created) == len(upgraded) == len(downgraded) == 1
    wanted = {created[0]["event_id"], upgraded[0]["event_id"]}
    control = tracked.app.state.settings.posthog_host.removesuffix("/posthog") + "/_sandbox/posthog"
    deadline = asyncio.get_running_loop().time() + 25  # the SDK flushes every few seconds
    async with httpx.AsyncClient() as http:
        while True:
            mine = [e for e in (await http.get(control, params={"distinct_id": user})).json()["data"]]
            if {e["uuid"] for e in mine} >= wanted or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)  # anything else (the downgrade) would have come with them
        mine = (await http.get(control, params={"distinct_id": user})).json()["data"]
    assert sorted(e["uuid"] for e in mine) == sorted(wanted)
    by_type = {e["event"]: e for e in mine}
    assert by_type["subscription.upgraded"]["properties"]["tier"] == 2
    assert by_type["subscription.upgraded"]["properties"]["previous_tier"] == 1
    assert by_type["subscription.created"]["properties"]["tier"] == 1
    assert "subscription_id" not in by_type["subscription.upgraded"]["properties"]
    assert all(e["api_key"] == KEY and e["properties"]["source"] == "payment_service" for e in mine)
