"""Notifications end to end: Community as a real uvicorn process (the live stream needs real HTTP
streaming) on the run's PostgreSQL, Redis and RabbitMQ; events published on the bus as their
services publish them; email through the SendGrid sandbox and push through the Expo sandbox with
the official SDK. Delivery intervals are shortened (back-off from 0.2 s, receipts after 0.5 s):
the same code paths as production's minutes, without the wait."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio

from shared.bus.publisher import EventPublisher
from shared.events import Event, make_event
from shared.testing.processes import ServiceProcess

FAST_DELIVERY = {
    "EMAIL_BACKEND": "sendgrid",
    "FRONTEND_URL": "https://scenextras.test",
    "NOTIFICATION_DELIVERY_POLL_SECONDS": "0.1",
    "NOTIFICATION_RETRY_BASE_SECONDS": "0.2",
    "NOTIFICATION_RETRY_MAX_SECONDS": "1",
    "NOTIFICATION_RECEIPT_DELAY_SECONDS": "0.5",
    "NOTIFICATION_LEASE_SECONDS": "5",
    "NOTIFICATION_STREAM_HEARTBEAT_SECONDS": "1",
    "EXPO_PUSH_TIMEOUT_SECONDS": "3",
}


@pytest.fixture(scope="module")
def community(service_env, sandbox, tmp_path_factory):
    env = {**service_env, **sandbox.env(keys=True), **FAST_DELIVERY}
    proc = ServiceProcess("community", env, log_dir=tmp_path_factory.mktemp("notif-logs"))
    proc.start(timeout=120)
    try:
        yield proc
    finally:
        proc.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def db(service_env):
    pool = await asyncpg.create_pool(service_env["COMMUNITY_DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bus(service_env, community, db):
    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events", name="notif-tests")
    # The consumer binds its queue at start-up, after the process answers: publish until it sees one.
    probe = str(uuid.uuid4())
    for _ in range(300):
        await publisher.publish(make_event("user.created", probe, {"email": "probe@example.com"}))
        await asyncio.sleep(0.1)
        if await db.fetchval("SELECT count(*) FROM notification_recipients WHERE user_id = $1", probe):
            break
    else:
        raise AssertionError("the notifications consumer never started")
    yield publisher
    await publisher.close()


@pytest_asyncio.fixture(loop_scope="session")
async def http(community):
    async with httpx.AsyncClient(base_url=community.url, timeout=30) as client:
        yield client


@pytest.fixture
def expo(sandbox):
    yield sandbox.control
    sandbox.control.expo(down=False, unregistered=[], unregistered_on_receipt=[])


class Person:
    def __init__(self, tokens):
        self.id = str(uuid.uuid4())
        self.email = f"n-{self.id[:8]}@example.com"
        self.headers = tokens.headers(tokens.user(self.id, email=self.email))
        self.device = f"ExponentPushToken[{uuid.uuid4().hex[:22]}]"


@pytest.fixture
def person(tokens):
    return lambda: Person(tokens)


async def joined(bus, http, p: Person, device: bool = True) -> Person:
    """The user as Auth announces them, with an Expo device registered."""
    await bus.publish(make_event("user.created", p.id, {"email": p.email, "is_guest": False}))
    if device:
        r = await http.post(
            "/notifications/devices", json={"expo_push_token": p.device, "platform": "ios"}, headers=p.headers
        )
        assert r.status_code == 201, r.text
    return p


def source_events(p: Person, other: Person) -> dict[str, Event]:
    """One event of each source type, shaped as their services emit them, all telling `p`."""
    room = str(uuid.uuid4())
    return {
        "subscription": make_event(
            "subscription.upgraded", p.id, {"tier": 1, "tier_name": "pro", "previous_tier": 0, "status": "active"}
        ),
        "payment_failed": make_event(
            "payment.failed", p.id, {"source": "stripe", "amount": 999, "grace_until": "2026-12-10T00:00:00+00:00"}
        ),
        "referral": make_event(
            "referral.completed", other.id, {"referrer_id": p.id, "referred_id": other.id, "bonus_credits": 50}
        ),
        "room_joined": make_event(
            "room.joined", other.id, {"room_id": room, "owner_id": p.id, "user_id": other.id, "room_name": "Hogwarts"}
        ),
        "story_milestone": make_event(
            "story.voted", other.id, {"story_id": str(uuid.uuid4()), "author_id": p.id, "value": 1, "up": 1}
        ),
        "achievement": make_event("achievement.unlocked", p.id, {"code": "first_chat", "name": "First chat"}),
        "streak": make_event("streak.milestone", p.id, {"milestone": 7}),
    }


async def notifications_of(http, p: Person, **params) -> list[dict]:
    r = await http.get("/notifications", params={"limit": 100, **params}, headers=p.headers)
    assert r.status_code == 200, r.text
    return r.json()["notifications"]


async def test_every_source_event_notifies_on_the_channels_its_preferences_allow(
    bus, http, person, sandbox, eventually
):
    p, other = await joined(bus, http, person()), await joined(bus, http, person())
    events = source_events(p, other)
    for event in events.values():
        await bus.publish(event)

    async def all_in():
        return len(await notifications_of(http, p)) == len(events)

    await eventually(all_in, timeout=20)
    got = await notifications_of(http, p)
    assert sorted(n["kind"] for n in got) == sorted(events)
    assert [n["seq"] for n in got] == sorted((n["seq"] for n in got), reverse=True)  # newest first
    assert all(not n["read"] for n in got)
    room = next(n for n in got if n["kind"] == "room_joined")
    assert room["data"]["room_id"] == events["room_joined"].data["room_id"] and "Hogwarts" in room["body"]
    assert (await http.get("/notifications/unread-count", headers=p.headers)).json() == {"unread": len(events)}
    # Nobody else is told: the joiner, the voter and the referred user got nothing.
    assert await notifications_of(http, other) == []

    # Defaults: email only for money matters; push for every kind.
    await eventually(lambda: len(sandbox.control.expo_messages(p.device)) == len(events), timeout=20)
    pushes = sandbox.control.expo_messages(p.device)
    assert sorted(m["data"]["kind"] for m in pushes) == sorted(events)
    await eventually(lambda: len(sandbox.control.emails(p.email)) == 2, timeout=20)
    emails = sandbox.control.emails(p.email)
    assert sorted(e["subject"] for e in emails) == ["Welcome to Pro", "Your payment failed"]
    assert all("scenextras.test/settings/notifications" in e["text"] for e in emails)
    await asyncio.sleep(0.5)
    assert len(sandbox.control.emails(p.email)) == 2 and len(sandbox.control.expo_messages(p.device)) == len(events)


async def test_preferences_choose_the_channels(bus, http, person, sandbox, db, eventually):
    p, other = await joined(bus, http, person()), await joined(bus, http, person())
    r = await http.get("/notifications/preferences", headers=p.headers)
    assert r.status_code == 200
    assert r.json()["email"]["marketing"] is False and r.json()["push"]["marketing"] is False  # quiet defaults
    assert r.json()["email"]["referral"] is False and r.json()["email"]["subscription"] is True
    r = await http.put(
        "/notifications/preferences",
        json={"email": {"referral": True, "subscription": False}, "push": {"referral": False}},
        headers=p.headers,
    )
    assert r.status_code == 200, r.text
    prefs = r.json()
    assert prefs["email"]["referral"] is True and prefs["email"]["subscription"] is False
    assert prefs["push"]["referral"] is False and prefs["push"]["subscription"] is True  # unnamed kept
    events = source_events(p, other)
    await bus.publish(events["subscription"])
    await bus.publish(events["referral"])
    await eventually(lambda: len(sandbox.control.emails(p.email)) == 1, timeout=20)
    await eventually(lambda: len(sandbox.control.expo_messages(p.device)) == 1, timeout=20)
    assert sandbox.control.emails(p.email)[0]["subject"] == "Your referral just joined"
    assert sandbox.control.expo_messages(p.device)[0]["data"]["kind"] == "subscription"
    assert len(await notifications_of(http, p)) == 2  # in-app always
    # All deliveries settled: nothing left pending.
    unsettled = "SELECT count(*) = 0 FROM notification_deliveries WHERE user_id = $1 AND status IN ('pending', 'sent')"
    await eventually(lambda: db.fetchval(unsettled, p.id), timeout=10)


async def test_one_event_one_notification_under_redelivery_and_concurrent_milestones(
    bus, http, person, sandbox, eventually
):
    p, other = await joined(bus, http, person()), await joined(bus, http, person())
    event = source_events(p, other)["achievement"]
    for _ in range(5):
        await bus.publish(event)  # the same event id, redelivered
    story = str(uuid.uuid4())

    def vote(up: int) -> Event:
        data = {"story_id": story, "author_id": p.id, "value": 1, "up": up}
        return make_event("story.voted", str(uuid.uuid4()), data)

    # Votes racing in any order, a milestone reached again after a withdrawal, and redeliveries.
    votes = [vote(up) for up in (1, 2, 3, 1, 10, 9, 11, 10, 12, 100, 99, 100, 101)]
    await asyncio.gather(*(bus.publish(v) for v in votes + votes[:4]))
    await bus.publish(make_event("story.voted", other.id, {"story_id": story, "author_id": p.id, "value": -1, "up": 5}))

    async def settled():
        got = await notifications_of(http, p)
        return len(got) == 4 and got

    await eventually(settled, timeout=20)
    await asyncio.sleep(1.0)  # anything late would show now
    got = await notifications_of(http, p)
    assert sorted((n["kind"], n["data"].get("votes")) for n in got) == [
        ("achievement", None),
        ("story_milestone", 1),
        ("story_milestone", 10),
        ("story_milestone", 100),
    ]
    await eventually(lambda: len(sandbox.control.expo_messages(p.device)) == 4, timeout=20)
    await asyncio.sleep(0.5)
    assert len(sandbox.control.expo_messages(p.device)) == 4


async def _frames(lines, count: int, timeout: float = 15.0) -> list[tuple[int, dict]]:
    """The next `count` notification frames (id, data) of an open stream's lines."""
    frames: list[tuple[int, dict]] = []
    event_id = data = None

    async def read():
        nonlocal event_id, data
        while True:
            line = await lines.__anext__()
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = orjson.loads(line[6:])
            elif line == "" and data is not None:
                frames.append((event_id, data))
                event_id = data = None
                if len(frames) == count:
                    return

    await asyncio.wait_for(read(), timeout)
    return frames


@contextlib.asynccontextmanager
async def opened(http, p: Person, last_event_id: int | None = None):
    headers = {**p.headers, **({"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {})}
    async with http.stream("GET", "/notifications/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield response.aiter_lines()


async def test_live_stream_and_reconnect_with_last_event_id(bus, http, person, community):
    p, other = await joined(bus, http, person(), device=False), await joined(bus, http, person(), device=False)
    await bus.publish(make_event("streak.milestone", p.id, {"milestone": 3}))  # before any stream: not live
    await asyncio.sleep(1.0)
    async with opened(http, p) as live:
        # The first block fixes where the stream starts (an id-only event): what is created once the
        # client has it is sent, however soon.
        assert [await live.__anext__() for _ in range(3)] == ["retry: 3000", "id: 1", ""]
        for days in (7, 14, 30):
            await bus.publish(make_event("streak.milestone", p.id, {"milestone": days}))
            await bus.publish(make_event("streak.milestone", other.id, {"milestone": days}))  # not p's
        first = await _frames(live, 3)
    assert [d["data"]["milestone"] for _, d in first] == [7, 14, 30]
    assert [i for i, _ in first] == [d["seq"] for _, d in first] == [2, 3, 4]  # the stream's ids are p's sequence
    # Disconnected: two more arrive meanwhile.
    for days in (100, 365):
        await bus.publish(make_event("streak.milestone", p.id, {"milestone": days}))
    await asyncio.sleep(1.0)
    async with opened(http, p, last_event_id=first[-1][0]) as again:
        missed = await _frames(again, 2)
        assert [(i, d["data"]["milestone"]) for i, d in missed] == [(5, 100), (6, 365)]
        await bus.publish(make_event("streak.milestone", p.id, {"milestone": 1000}))
        live_again = await _frames(again, 1)
    assert [(i, d["data"]["milestone"]) for i, d in live_again] == [(7, 1000)]
    # An id it never gave (beyond the newest) does not hide what comes next.
    async with opened(http, p, last_event_id=10**12) as ahead:
        assert [await ahead.__anext__() for _ in range(3)] == ["retry: 3000", "id: 7", ""]
        await bus.publish(make_event("streak.milestone", p.id, {"milestone": 2000}))
        assert [(i, d["data"]["milestone"]) for i, d in await _frames(ahead, 1)] == [(8, 2000)]
    # From the start: everything, in order, once.
    async with opened(http, p, last_event_id=0) as replay:
        everything = await _frames(replay, 8)
    assert [i for i, _ in everything] == list(range(1, 9))


async def test_push_outage_delays_never_loses(bus, http, person, expo, db, eventually):
    """The push server down (503 to every request) for a while, then up: every push arrives once;
    in-app notifications were not held up meanwhile."""
    p, other = await joined(bus, http, person()), await joined(bus, http, person())
    expo.expo(down=True)
    for days in range(1, 11):
        await bus.publish(make_event("streak.milestone", p.id, {"milestone": days}))
    await bus.publish(source_events(p, other)["subscription"])
    await eventually(async_len(http, p, 11), timeout=10)  # in-app at once

    async def retried():
        return await db.fetchval(
            "SELECT min(attempts) >= 3 FROM notification_deliveries WHERE user_id = $1 AND channel = 'push'", p.id
        )

    await eventually(retried, timeout=20)  # several failed attempts, spaced by the back-off
    assert expo.expo_messages(p.device) == []
    rows = await db.fetch("SELECT status, last_error FROM notification_deliveries WHERE user_id = $1", p.id)
    assert {r["status"] for r in rows if r["last_error"] and "push" in r["last_error"]} == {"pending"}
    expo.expo(down=False)
    await eventually(lambda: len(expo.expo_messages(p.device)) == 11, timeout=20)
    # Each accepted push is settled by its receipt, never queued to go out again.
    settled = (
        "SELECT count(*) = 0 FROM notification_deliveries"
        " WHERE user_id = $1 AND channel = 'push' AND status IN ('pending', 'sent')"
    )
    await eventually(lambda: db.fetchval(settled, p.id), timeout=20)
    await asyncio.sleep(1.5)  # retries still scheduled would show up as duplicates now
    messages = expo.expo_messages(p.device)
    assert len(messages) == 11 and len({m["data"]["notification_id"] for m in messages}) == 11


async def test_device_not_registered_tokens_are_dropped(bus, http, person, expo, db, eventually):
    p = await joined(bus, http, person())
    gone_at_send = p.device
    gone_at_receipt = f"ExponentPushToken[{uuid.uuid4().hex[:22]}]"
    r = await http.post(
        "/notifications/devices", json={"expo_push_token": gone_at_receipt, "platform": "android"}, headers=p.headers
    )
    assert r.status_code == 201
    expo.expo(unregistered=[gone_at_send], unregistered_on_receipt=[gone_at_receipt])
    await bus.publish(make_event("streak.milestone", p.id, {"milestone": 7}))

    async def both_dropped():
        return await db.fetchval("SELECT count(*) = 0 FROM notification_devices WHERE user_id = $1", p.id)

    await eventually(both_dropped, timeout=20)
    statuses = await db.fetch(
        "SELECT device_token, status, last_error FROM notification_deliveries WHERE user_id = $1", p.id
    )
    assert {(r["device_token"], r["status"]) for r in statuses} == {
        (gone_at_send, "dropped"),
        (gone_at_receipt, "dropped"),
    }
    assert len(expo.expo_messages(gone_at_receipt)) == 1 and expo.expo_messages(gone_at_send) == []


async def test_user_deleted_erases_what_notifications_keep(bus, http, person, db, eventually):
    p, other = await joined(bus, http, person()), await joined(bus, http, person())
    await http.put("/notifications/preferences", json={"push": {"streak": False}}, headers=p.headers)
    await bus.publish(source_events(p, other)["subscription"])
    await eventually(lambda: notifications_of(http, p), timeout=10)
    await bus.publish(make_event("user.deleted", p.id, {}))

    async def erased():
        total = 0
        for table in (
            "notifications",
            "notification_deliveries",
            "notification_counters",
            "notification_preferences",
            "notification_devices",
            "notification_recipients",
        ):
            total += await db.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", p.id)
        return total == 0

    await eventually(erased, timeout=15)


async def test_mark_read(bus, http, person, eventually):
    p, other = await joined(bus, http, person(), device=False), await joined(bus, http, person(), device=False)
    for days in (3, 7, 14):
        await bus.publish(make_event("streak.milestone", p.id, {"milestone": days}))
        await bus.publish(make_event("streak.milestone", other.id, {"milestone": days}))
    await eventually(lambda: notifications_of(http, p), timeout=10)
    await eventually(lambda: notifications_of(http, other), timeout=10)
    await eventually(async_len(http, p, 3), timeout=10)
    await eventually(async_len(http, other, 3), timeout=10)
    mine, theirs = await notifications_of(http, p), await notifications_of(http, other)
    # Another user's ids change nothing (and are not told apart from unknown ones).
    r = await http.post("/notifications/read", json={"ids": [theirs[0]["id"], mine[0]["id"]]}, headers=p.headers)
    assert r.status_code == 200 and r.json() == {"marked": 1, "unread": 2}
    assert (await http.get("/notifications/unread-count", headers=other.headers)).json() == {"unread": 3}
    assert [n["id"] for n in await notifications_of(http, p, unread="true")] == [mine[1]["id"], mine[2]["id"]]
    # Pages: newest first, the cursor continues.
    r = await http.get("/notifications", params={"limit": 2}, headers=p.headers)
    page1 = r.json()
    assert [n["id"] for n in page1["notifications"]] == [mine[0]["id"], mine[1]["id"]] and page1["next_cursor"]
    r = await http.get("/notifications", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=p.headers)
    assert [n["id"] for n in r.json()["notifications"]] == [mine[2]["id"]] and r.json()["next_cursor"] is None
    r = await http.post("/notifications/read", json={"all": True}, headers=p.headers)
    assert r.json() == {"marked": 2, "unread": 0}
    assert (await http.get("/notifications/unread-count", headers=other.headers)).json() == {"unread": 3}


def async_len(http, p, n):
    async def check():
        return len(await notifications_of(http, p)) == n

    return check


async def test_hostile_requests(bus, http, person, tokens, db):
    p, other = await joined(bus, http, person()), await joined(bus, http, person())
    routes = [
        ("GET", "/notifications", None),
        ("GET", "/notifications/unread-count", None),
        ("POST", "/notifications/read", {"all": True}),
        ("GET", "/notifications/stream", None),
        ("GET", "/notifications/preferences", None),
        ("PUT", "/notifications/preferences", {"email": {}}),
        ("POST", "/notifications/devices", {"expo_push_token": p.device, "platform": "ios"}),
        ("DELETE", f"/notifications/devices/{p.device}", None),
        ("GET", "/api/notifications", None),  # the legacy prefix
    ]
    for method, path, body in routes:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, tokens.headers(tokens.user(p.id) + "x")):
            r = await http.request(method, path, json=body, headers=headers)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["detail"]["code"]
    bad = [
        ("POST", "/notifications/read", {}),
        ("POST", "/notifications/read", {"ids": [str(uuid.uuid4())], "all": True}),
        ("POST", "/notifications/read", {"all": False}),
        ("POST", "/notifications/read", {"ids": []}),
        ("POST", "/notifications/read", {"ids": ["not-a-uuid"]}),
        ("POST", "/notifications/read", {"ids": [str(uuid.uuid4()) for _ in range(501)]}),
        ("POST", "/notifications/read", [1, 2]),
        ("PUT", "/notifications/preferences", {"email": {"no_such_kind": True}}),
        ("PUT", "/notifications/preferences", {"sms": {"streak": True}}),
        ("PUT", "/notifications/preferences", {"push": {"streak": "yes please"}}),
        ("POST", "/notifications/devices", {"expo_push_token": "not-a-token", "platform": "ios"}),
        ("POST", "/notifications/devices", {"expo_push_token": p.device, "platform": "windows"}),
        ("POST", "/notifications/devices", {"expo_push_token": "ExponentPushToken[" + "a" * 5000 + "]"}),
        ("GET", "/notifications?cursor=abc", None),
        ("GET", "/notifications?limit=0", None),
        ("GET", "/notifications?unread=maybe", None),
    ]
    for method, path, body in bad:
        r = await http.request(method, path, json=body, headers=p.headers)
        assert r.status_code == 422, (method, path, body, r.status_code, r.text)
        assert r.json()["detail"]["code"], r.text
    r = await http.get("/notifications/stream", headers={**p.headers, "Last-Event-ID": "x1"})
    assert r.status_code == 422 and r.json()["detail"]["code"]
    malformed = {**p.headers, "content-type": "application/json"}
    r = await http.post("/notifications/read", content=b"{" * 10, headers=malformed)
    assert r.status_code == 400 and r.json()["detail"]["code"]  # not JSON at all
    r = await http.post(
        "/notifications/read", content=b" " * 3_000_000, headers={**p.headers, "content-type": "application/json"}
    )
    assert r.status_code == 413
    # Another user's device: 404, and it stays theirs.
    r = await http.delete(f"/notifications/devices/{other.device}", headers=p.headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "DEVICE_NOT_FOUND"
    assert await db.fetchval("SELECT user_id FROM notification_devices WHERE token = $1", other.device) == other.id
    r = await http.delete(f"/notifications/devices/{p.device}", headers=p.headers)
    assert r.status_code == 204
    r = await http.delete(f"/notifications/devices/{p.device}", headers=p.headers)
    assert r.status_code == 404
    # The legacy prefix serves the same routes.
    r = await http.get("/api/notifications/unread-count", headers=p.headers)
    assert r.status_code == 200 and r.json() == {"unread": 0}


async def test_email_outage_delays_never_loses(bus, http, person, sandbox, db, eventually):
    """SendGrid answering 500 (each attempt of the backend and its one quick retry) for the first
    two rounds: the email arrives once, on a later round."""
    p, other = await joined(bus, http, person(), device=False), await joined(bus, http, person(), device=False)
    sandbox.control.fault("sendgrid", status=500, count=4)
    try:
        await bus.publish(source_events(p, other)["payment_failed"])
        await eventually(lambda: sandbox.control.emails(p.email), timeout=20)
        await asyncio.sleep(1.0)
        assert [e["subject"] for e in sandbox.control.emails(p.email)] == ["Your payment failed"]
        row = await db.fetchrow(
            "SELECT status, attempts FROM notification_deliveries WHERE user_id = $1 AND channel = 'email'", p.id
        )
        assert row["status"] == "delivered" and row["attempts"] == 3
    finally:
        sandbox.control.clear_faults()


async def test_stream_survives_the_listener_losing_its_connection(bus, http, person, db, service_env):
    """The worker's LISTEN connection killed: it reconnects, and open streams read what was made
    meanwhile from the table (nothing missed, nothing twice)."""
    p = await joined(bus, http, person(), device=False)
    async with opened(http, p) as live:
        assert [await live.__anext__() for _ in range(3)] == ["retry: 3000", "id: 0", ""]
        killed = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
        )
        assert killed >= 1
        for days in (3, 7):
            await bus.publish(make_event("streak.milestone", p.id, {"milestone": days}))
        got = await _frames(live, 2, timeout=20)
    assert [(i, d["data"]["milestone"]) for i, d in got] == [(1, 3), (2, 7)]


async def test_a_real_room_join_tells_the_owner(bus, http, person, sandbox, eventually):
    """From the rooms routes to the owner's notification and push: the event as rooms emits it
    (through its outbox), the room's name read from the rooms table."""
    owner, joiner = await joined(bus, http, person()), await joined(bus, http, person(), device=False)
    r = await http.post("/rooms", json={"name": "Rivendell readers", "visibility": "public"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    r = await http.post("/rooms/join", json={"room_id": r.json()["id"]}, headers=joiner.headers)
    assert r.status_code == 200, r.text
    got = await eventually(lambda: notifications_of(http, owner), timeout=20)
    assert [(n["kind"], n["body"]) for n in got] == [("room_joined", "Someone joined your room Rivendell readers.")]
    assert joiner.id not in str(got[0])  # no other user's id is kept in the owner's notification
    await eventually(lambda: sandbox.control.expo_messages(owner.device), timeout=20)
    assert await notifications_of(http, joiner) == []  # the joiner is not told
