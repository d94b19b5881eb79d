"""Issue 18's remaining flows across all seven running services, over HTTP only:

- flow 3 completed: after an upgrade (sandbox Stripe checkout, its webhooks to Payment) the
  confirmation email (sandbox SendGrid) and push (sandbox Expo) arrive; a free user's streak
  milestone gives a flip ticket whose bonus-messages reward Chat lets them spend, once;
- image recognition against Pro's monthly `image_recognition` allowance, then Max unlimited;
- a guest who signs up keeps what they made as a guest in every service, and the guest-expiry
  housekeeping leaves them alone.
"""

from __future__ import annotations

import asyncio
import functools
import io
import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import asyncpg
import pytest

from analytics_service import rules as analytics_rules
from shared import fleet as fleet_manifest
from shared.bus.publisher import EventPublisher
from shared.events import Event, make_event
from shared.testing import poll
from shared.testing.env import queue_info
from shared.tiers import TIER_QUOTAS
from tests.analytics.conftest import rewrite_progress
from tests.e2e import test_lifecycle
from tests.e2e.fans import Fan, claims, new_email, quota, talk
from tests.e2e.fleets import running_fleet
from tests.e2e.test_flows import checkout

SERVICES = tuple(s.name for s in fleet_manifest.SERVICES)
pools = test_lifecycle.pools  # the fixture: every service database, direct
MATRIX_GREEN = (0, 200, 70)  # sandbox/llm.py RECOGNISABLE: The Matrix, Neo (both in Content's seed)


@pytest.fixture(scope="module")
def fleet(e2e_env, sandbox_handle, infra, tmp_path_factory):
    """All seven services; Stripe's webhooks to this Payment; Community mails through the
    sandbox's SendGrid (Auth keeps the file outbox the sign-ups read their codes from)."""
    env = {**e2e_env, **sandbox_handle.env(keys=True)}
    community = {"EMAIL_BACKEND": "sendgrid", "NOTIFICATION_DELIVERY_POLL_SECONDS": "0.2"}
    with running_fleet(
        env,
        sandbox_handle,
        infra,
        tmp_path_factory.mktemp("fleet-rest"),
        services=SERVICES,
        service_env={"community": community},
        extra_queues=("community_service.notifications",),
        stripe_webhooks=True,
    ) as f:
        yield f


eventually = functools.partial(poll.eventually, timeout=20.0, interval=0.1)


async def sign_up(http, outbox, *, headers: dict | None = None) -> Fan:
    """create-account (with a guest's token when `headers` carries one), the emailed code, verify."""
    fan = Fan(new_email())
    r = await http.auth.post("/create-account", json={"email": fan.email, "password": fan.password}, headers=headers)
    assert r.status_code == 201, r.text
    fan.user_id = r.json()["user_id"]
    r = await http.auth.post("/verify-otp", json={"email": fan.email, "code": await outbox.code(fan.email)})
    assert r.status_code == 200, r.text
    fan.take(r.json())
    return fan


async def pay(http, fleet, fan: Fan, tier: str = "pro") -> None:
    session = await checkout(http, fleet, fan, tier)
    done = fleet.sandbox.control.stripe_complete_checkout(session["session_id"])
    assert all(d["status"] == 200 for d in done["deliveries"]), done["deliveries"]


# ---------------------------------------------------------------------------------------------- flow 3


async def test_flow3_upgrade_confirmation_email_and_push(fleet, http, outbox):
    sandbox = fleet.sandbox.control
    fan = await sign_up(http, outbox)
    device = f"ExponentPushToken[flow3-{fan.user_id[:8]}]"
    r = await http.community.post(
        "/notifications/devices", json={"expo_push_token": device, "platform": "android"}, headers=fan.headers
    )
    assert r.status_code == 201, r.text
    # Nothing is said before the payment (the sign-up is not a notification).
    assert sandbox.emails(fan.email) == [] and sandbox.expo_messages(device) == []

    await pay(http, fleet, fan)

    # The defaults: a subscription change is emailed (it confirms money) and pushed. The first
    # upgrade also unlocks an achievement (Analytics), pushed but not emailed.
    await eventually(lambda: sandbox.emails(fan.email), what="the confirmation email")
    await eventually(lambda: len(sandbox.expo_messages(device)) >= 2, what="the pushes")
    await asyncio.sleep(1.0)  # a duplicate would land now
    emails, pushes = sandbox.emails(fan.email), sandbox.expo_messages(device)
    assert [e["subject"] for e in emails] == ["Welcome to Pro"], emails
    assert "Your plan is now Pro" in emails[0]["text"]
    assert sorted((p["data"]["kind"], p["title"]) for p in pushes) == [
        ("achievement", "Achievement unlocked"),
        ("subscription", "Welcome to Pro"),
    ], pushes
    r = await http.community.get("/notifications", headers=fan.headers)
    assert r.status_code == 200, r.text
    [told] = [n for n in r.json()["notifications"] if n["kind"] == "subscription"]
    assert told["data"]["change"] == "created" and told["data"]["tier"] == 1
    [achieved] = [n for n in r.json()["notifications"] if n["kind"] == "achievement"]
    assert achieved["data"]["code"] == "first_upgrade", achieved


async def _reward_events(analytics_db, ticket_id: str) -> list[Event]:
    bodies = await analytics_db.fetch("SELECT body FROM outbox_events WHERE event_type = 'reward.granted'")
    events = [Event.from_bytes(r["body"] if isinstance(r["body"], bytes) else r["body"].encode()) for r in bodies]
    return [e for e in events if e.data.get("reward_id") == ticket_id]


async def test_flow3_flip_ticket_bonus_messages_spent_by_a_free_user(
    fleet, http, outbox, analytics_db, core_db, e2e_env, infra
):
    fan = await sign_up(http, outbox)
    allowance = TIER_QUOTAS[0]["regular"]
    assert (await quota(http, fan))["quotas"]["regular"]["remaining"] == allowance

    # A 3-day streak by check-ins. Days cannot pass in a test: as Analytics' own milestone test
    # does, a real check-in makes the row, which is then moved back (two days in a row, the last
    # yesterday); today's check-in is the third day.
    tz = "Europe/London"
    r = await http.analytics.post("/analytics/checkin", json={"timezone": tz}, headers=fan.headers)
    assert r.status_code == 200 and r.json()["checked_in"] and r.json()["reward"] is None, r.text
    today = analytics_rules.local_day(datetime.now(UTC), tz)
    await rewrite_progress(
        analytics_db,
        fan.user_id,
        "UPDATE user_progress SET streak_current = 2, streak_longest = 2, streak_started_on = $2,"
        " last_active_day = $3, last_checkin_day = $3 WHERE user_id = $1",
        today - timedelta(days=2),
        today - timedelta(days=1),
    )
    r = await http.analytics.post("/analytics/checkin", json={"timezone": tz}, headers=fan.headers)
    assert r.status_code == 200, r.text
    assert r.json()["streak"]["current"] == 3 and r.json()["reward"], r.text
    ticket = r.json()["reward"]["flip_ticket"]
    assert ticket["reason"] == "streak_3" and not ticket["flipped"]

    # The draw is weighted and server-side; the reward table is data: only the 5 bonus messages
    # can be drawn for this flip (as Analytics' flip tests restrict it), restored after.
    saved = await analytics_db.fetch("SELECT code, active FROM flip_rewards")
    await analytics_db.execute("UPDATE flip_rewards SET active = (code = 'messages_5')")
    try:
        r = await http.analytics.post(f"/analytics/flip-tickets/{ticket['id']}/flip", headers=fan.headers)
    finally:
        for row in saved:
            await analytics_db.execute(
                "UPDATE flip_rewards SET active = $2 WHERE code = $1", row["code"], row["active"]
            )
    assert r.status_code == 200, r.text
    assert r.json()["flipped_now"] and r.json()["flip_ticket"]["reward"] == {"kind": "bonus_messages", "amount": 5}
    bonus = 5

    # Payment credits the bonus (reward.granted through Analytics' outbox and the bus).
    async def credited():
        return (await quota(http, fan))["quotas"]["regular"]["remaining"] == allowance + bonus

    await eventually(credited, what="the bonus in Payment's /quota")

    # Exactly once: flipping again draws nothing; the same reward.granted redelivered (same event
    # id) and announced again (a new event id, as a relay retry after a lost confirm cannot, but a
    # replay could) adds nothing.
    r = await http.analytics.post(f"/analytics/flip-tickets/{ticket['id']}/flip", headers=fan.headers)
    assert r.status_code == 200 and not r.json()["flipped_now"], r.text
    [granted] = await _reward_events(analytics_db, ticket["id"])
    again = make_event("reward.granted", fan.user_id, dict(granted.data), source="analytics_service")
    publisher = EventPublisher(e2e_env["RABBITMQ_URL"], "scenextras.events", name="flow3-redelivery")
    try:
        await publisher.publish(granted)
        await publisher.publish(again)
    finally:
        await publisher.close()

    async def again_processed():
        return await core_db.fetchval(
            "SELECT count(*) = 1 FROM processed_events WHERE consumer = 'payment_service.events' AND event_id = $1",
            uuid.UUID(again.event_id),
        )

    await eventually(again_processed, what="Payment consuming the second announcement")
    vhost = e2e_env["REDIS_PREFIX"]

    def drained():
        info = queue_info(infra, vhost, "payment_service.events") or {}
        return info.get("messages", 1) == 0

    await eventually(drained, what="Payment's queue drained")
    row = await core_db.fetchrow("SELECT bonus_quota FROM user_quotas WHERE user_id = $1", uuid.UUID(fan.user_id))
    assert row["bonus_quota"] == bonus
    assert (await quota(http, fan))["quotas"]["regular"]["remaining"] == allowance + bonus

    # Chat: a free user's new conversation costs one regular unit: the allowance, then the bonus,
    # then 402, exactly after allowance + bonus.
    for i in range(allowance + bonus):
        r = await talk(http, fan, f"Question number {i}", character="Hermione Granger", series="Harry Potter")
        assert r.status_code == 200, (i, r.text)
        assert r.json()["remaining_quota"] == allowance + bonus - 1 - i, (i, r.json()["remaining_quota"])
    r = await talk(http, fan, "One more please", character="Hermione Granger", series="Harry Potter")
    assert r.status_code == 402, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "INSUFFICIENT_QUOTA" and detail["quota_type"] == "regular" and detail["remaining"] == 0
    row = await core_db.fetchrow(
        "SELECT quota, bonus_quota FROM user_quotas WHERE user_id = $1", uuid.UUID(fan.user_id)
    )
    assert (row["quota"], row["bonus_quota"]) == (0, 0)


# ---------------------------------------------------------------------------------------- recognition


def photo(color, size=(640, 480)) -> bytes:
    from PIL import Image

    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 40):
        image.paste(tuple(min(255, c + 25) for c in color), (x, 0, x + 4, size[1]))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


async def test_image_recognition_until_the_quota_is_spent_then_max(fleet, http, outbox):
    """Content down during a recognition (200, `matches_available: false`, charged) is
    tests/media/test_recognition.py::test_content_down_answers_without_matches."""
    sent = itertools.count()

    async def recognize(fan: Fan):
        # A different file each time: the same bytes again would be answered from the stored
        # result, uncharged (docs/media.md "Recognition", stored results).
        picture = photo(MATRIX_GREEN, size=(800 + next(sent), 600))
        return await http.media.post(
            "/images/recognize", files={"file": ("m.jpg", picture, "image/jpeg")}, headers=fan.headers
        )

    free = await sign_up(http, outbox)
    r = await recognize(free)
    assert r.status_code == 402 and r.json()["detail"]["code"] == "INSUFFICIENT_QUOTA", r.text
    assert r.json()["detail"]["quota_type"] == "image_recognition" and r.json()["detail"]["remaining"] == 0

    fan = await sign_up(http, outbox)
    await pay(http, fleet, fan, "pro")
    limit = TIER_QUOTAS[1]["image_recognition"]
    assert limit == 10  # docs/media.md: Pro 10 a period

    async def pro_allowance():
        return (await quota(http, fan))["quotas"]["image_recognition"]["remaining"] == limit

    await eventually(pro_allowance, what="Pro's recognition allowance")
    for i in range(limit):
        r = await recognize(fan)
        assert r.status_code == 200, (i, r.text)
        body = r.json()
        assert body["matches_available"] is True, body
        assert {(m["type"], m["name"]) for m in body["matches"]} >= {("character", "Neo")}, body["matches"]
        assert (await quota(http, fan))["quotas"]["image_recognition"]["remaining"] == limit - 1 - i
    r = await recognize(fan)
    assert r.status_code == 402, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "INSUFFICIENT_QUOTA" and detail["quota_type"] == "image_recognition", detail
    assert detail["remaining"] == 0

    # Max (the subscription changed at the Stripe sandbox; its webhook reaches Payment): unlimited.
    r = await http.payment.post("/subscription/change", json={"tier": "max"}, headers=fan.headers)
    assert r.status_code == 200 and r.json()["tier"] == 2, r.text
    deadline = time.monotonic() + 10
    while (r := await recognize(fan)).status_code == 402:  # Media may see the tier a moment later
        assert time.monotonic() < deadline, r.text
    for _ in range(3):
        assert r.status_code == 200, r.text
        r = await recognize(fan)
    assert r.status_code == 200, r.text
    assert (await quota(http, fan))["quotas"]["image_recognition"]["remaining"] == -1


# -------------------------------------------------------------------------------------- guest sign-up


def _png(rgb: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), rgb).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_guest_who_signs_up_keeps_everything_and_expiry_leaves_them_alone(
    fleet, http, outbox, event_spy, pools, e2e_env
):
    async with event_spy(["user.*"]) as spy:
        r = await http.auth.post("/guest")
        assert r.status_code == 201, r.text
        guest_pair = r.json()
        guest_id = guest_pair["user"]["id"]
        guest = {"Authorization": f"Bearer {guest_pair['access_token']}"}
        assert claims(guest_pair["access_token"])["is_anonymous"] is True
        await spy.wait_for("user.created", user_id=guest_id)

        # What a guest makes, in four services.
        as_guest = Fan("guest", user_id=guest_id, access_token=guest_pair["access_token"])
        r = await talk(http, as_guest, "Hello Luke, I am just trying the app.")
        assert r.status_code == 200, r.text
        conversation = r.json()["conversation_id"]
        r = await http.community.post("/stories", json={"from_conversation_id": conversation}, headers=guest)
        assert r.status_code == 201, r.text
        story = r.json()["id"]
        r = await http.media.post(
            "/images/upload", files={"file": ("me.png", _png((10, 120, 200)), "image/png")}, headers=guest
        )
        assert r.status_code == 201, r.text
        image = r.json()["id"]
        r = await http.analytics.post("/analytics/checkin", json={"timezone": "Europe/Paris"}, headers=guest)
        assert r.status_code == 200 and r.json()["checked_in"], r.text

        async def counted():
            me = (await http.analytics.get("/analytics/me", headers=guest)).json()
            # (`images` counts generated images, not uploads: docs/analytics.md.)
            return me if me["conversations"] >= 1 and me["messages"] >= 1 and me["stories"] >= 1 else None

        before = await eventually(counted, timeout=30, what="the guest's analytics")
        regular_before = (await quota(http, as_guest))["quotas"]["regular"]["remaining"]
        # Every row of every service database naming the guest (test_lifecycle's catalogue rule).
        rows_before = await test_lifecycle._settled(pools, guest_id)
        assert {key.split(".")[0] for key in rows_before} == set(pools), rows_before

        # The guest signs up with their token: the same account, now a real one.
        fan = await sign_up(http, outbox, headers=guest)
        assert fan.user_id == guest_id
        assert claims(fan.access_token)["sub"] == guest_id and not claims(fan.access_token).get("is_anonymous")
        await spy.wait_for("user.updated", user_id=guest_id)

        # Nothing erased: every table holds at least the rows it held for the guest.
        rows_after = await test_lifecycle._settled(pools, guest_id)
        assert {k: n for k, n in rows_before.items() if rows_after.get(k, 0) < n} == {}, (rows_before, rows_after)
        # Everything is still there, reachable with the new tokens.
        r = await http.chat.get(f"/conversations/{conversation}", headers=fan.headers)
        assert r.status_code == 200 and r.json()["conversation"]["message_count"] >= 2, r.text
        r = await http.community.get(f"/stories/{story}", headers=fan.headers)
        assert r.status_code == 200 and r.json()["source"]["conversation_id"] == conversation, r.text
        r = await http.media.get(f"/images/{image}", headers=fan.headers)
        assert r.status_code == 200, r.text
        assert [i["id"] for i in (await http.media.get("/images", headers=fan.headers)).json()["images"]] == [image]
        after = (await http.analytics.get("/analytics/me", headers=fan.headers)).json()
        for key in ("conversations", "messages", "stories", "images", "active_days", "xp"):
            assert after[key] >= before[key], (key, before, after)
        # The guest's streak is kept as it was (1, or 2 when the chat fell on the previous UTC day and the
        # check-in on the next Paris day: the test ran near midnight).
        assert after["streak"]["current"] == before["streak"]["current"] >= 1 and after["timezone"] == "Europe/Paris"
        assert (await quota(http, fan))["quotas"]["regular"]["remaining"] == regular_before

        # Housekeeping with no retention at all: a guest that never signed up is removed (the
        # test has teeth), the one that did is not.
        from auth_service.maintenance import cleanup_once

        r = await http.auth.post("/guest")
        assert r.status_code == 201, r.text
        abandoned = r.json()["user"]["id"]
        await spy.wait_for("user.created", user_id=abandoned)
        housekeeping = SimpleNamespace(
            guest_retention_days=0, refresh_token_grace_days=7, access_token_ttl_seconds=3600
        )
        auth_var = next(s.database_var for s in fleet_manifest.SERVICES if s.name == "auth")
        auth_db = await asyncpg.create_pool(e2e_env[auth_var], min_size=1, max_size=1)
        try:
            # Retention 0 takes every guest of this fleet's database: here, only this test's.
            done = await cleanup_once(auth_db, housekeeping)
        finally:
            await auth_db.close()
        assert done["guests"] >= 1
        await spy.wait_for("user.deleted", user_id=abandoned)
        await asyncio.sleep(1.0)  # a user.deleted for the signed-up guest would be on the bus by now
        assert spy.of_type("user.deleted", user_id=guest_id) == []

    # The account, and what it made, are all still there.
    assert (await http.auth.get("/users/me", headers=fan.headers)).status_code == 200
    assert (await http.chat.get(f"/conversations/{conversation}", headers=fan.headers)).status_code == 200
    assert (await http.community.get(f"/stories/{story}", headers=fan.headers)).status_code == 200
    assert (await http.media.get(f"/images/{image}", headers=fan.headers)).status_code == 200
    assert (await http.analytics.get("/analytics/me", headers=fan.headers)).json()["conversations"] >= 1
