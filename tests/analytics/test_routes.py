"""The routes a user calls: their own figures only, check-in once per local day, milestones
giving exactly one ticket under concurrency, achievements and levels with their events, and
every hostile input answered 4xx without changing anything."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from analytics_service import rules
from tests.analytics.conftest import event, histograms_match_the_users, rewrite_progress

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROUTES = [
    ("GET", "/analytics/me"),
    ("POST", "/analytics/checkin"),
    ("GET", "/analytics/achievements"),
    ("GET", "/analytics/flip-tickets"),
    ("GET", "/conversation-stats/me"),
    ("GET", "/conversation-stats/characters"),
]


async def test_me_counts_the_callers_events_and_nobody_elses(analytics, bus, new_user):
    alice, bob = new_user(), new_user()
    now = datetime.now(UTC)
    conv = str(uuid.uuid4())
    await bus.send(
        event("conversation.created", alice.id, {"conversation_id": conv, "character": "Frodo"}, at=now),
        *[event("message.sent", alice.id, {"conversation_id": conv, "sender": "Frodo"}, at=now) for _ in range(3)],
        event("message.sent", alice.id, {"conversation_id": conv, "sender": "Sam"}, at=now),
        event("image.generated", alice.id, {}, at=now),
        *[event("message.sent", bob.id, {"sender": "Gollum"}, at=now) for _ in range(7)],
    )
    await bus.settled()
    me = (await analytics.get("/analytics/me", headers=alice.headers)).json()
    assert (me["messages"], me["conversations"], me["characters"], me["images"], me["active_days"]) == (4, 1, 2, 1, 1)
    assert me["streak"]["current"] == 1 and me["streak"]["next_milestone"] == 3
    # XP: 4 messages x2, a conversation 5, an image 5, then first_chat (20) and first_image (20).
    assert me["xp"] == 4 * 2 + 5 + 5 + 20 + 20
    assert me["level"] == 1 and me["level_progress"] == 0.58
    assert me["achievements"]["unlocked"] == 2
    assert me["engagement_tier"] == "new"
    # The monolith's path, as the strangler proxy forwards it.
    legacy = await analytics.get("/api/analytics/me", headers=alice.headers)
    assert legacy.status_code == 200 and legacy.json() == me
    theirs = (await analytics.get("/analytics/me", headers=bob.headers)).json()
    assert theirs["messages"] == 7 and theirs["characters"] == 1 and theirs["images"] == 0


async def test_achievements_unlock_once_with_progress_and_events(analytics, bus, new_user, event_spy):
    user = new_user()
    async with event_spy(["achievement.#", "level.#"]) as spy:
        now = datetime.now(UTC)
        await bus.send(*[event("message.sent", user.id, {"sender": f"Character {i}"}, at=now) for i in range(10)])
        await bus.send(*[event("message.sent", user.id, {"sender": f"Character {i}"}, at=now) for i in range(10)])
        await spy.wait_for("achievement.unlocked", 2, user_id=user.id)
        await bus.settled()
        body = (await analytics.get("/analytics/achievements", headers=user.headers)).json()
        by_code = {a["code"]: a for a in body["achievements"]}
        assert by_code["first_chat"]["unlocked"] and by_code["ten_characters"]["unlocked"]
        assert by_code["chatterbox"] == {**by_code["chatterbox"], "progress": 20, "threshold": 100, "unlocked": False}
        assert by_code["streak_7"]["progress"] == 1 and not by_code["streak_7"]["unlocked"]
        unlocked = spy.of_type("achievement.unlocked", user_id=user.id)
        assert sorted(e.data["code"] for e in unlocked) == ["first_chat", "ten_characters"]
        # 20 messages x2 + 20 + 100 = 160 XP: level 2, announced once.
        await spy.wait_for("level.up", 1, user_id=user.id)
        await asyncio.sleep(0.3)
        assert [e.data["level"] for e in spy.of_type("level.up", user_id=user.id)] == [2]


async def test_an_upgrade_alone_unlocks_first_upgrade(analytics, bus, new_user):
    user = new_user()
    await bus.send(event("subscription.created", user.id, {"tier": 1, "previous_tier": 0}))
    await bus.settled()
    body = (await analytics.get("/analytics/achievements", headers=user.headers)).json()
    unlocked = [a["code"] for a in body["achievements"] if a["unlocked"]]
    assert unlocked == ["first_upgrade"]
    me = (await analytics.get("/analytics/me", headers=user.headers)).json()
    assert me["xp"] == 100 and me["streak"]["current"] == 0 and me["active_days"] == 0


async def test_checkin_once_per_local_day(analytics, new_user, event_spy, analytics_db):
    user = new_user()
    async with event_spy(["user.engagement"]) as spy:
        first = await analytics.post(
            "/analytics/checkin", json={"timezone": "Pacific/Kiritimati"}, headers=user.headers
        )
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["checked_in"] and body["streak"]["current"] == 1 and body["xp"] == rules.CHECKIN_XP
        assert body["timezone"] == "Pacific/Kiritimati" and body["reward"] is None
        again = await analytics.post("/analytics/checkin", headers=user.headers)
        assert again.status_code == 200
        assert not again.json()["checked_in"] and again.json()["xp"] == rules.CHECKIN_XP
        assert again.json()["streak"] == body["streak"]
        await spy.wait_for("user.engagement", 1, user_id=user.id)
        await asyncio.sleep(0.3)
        assert len(spy.of_type("user.engagement", user_id=user.id)) == 1
    row = await analytics_db.fetchrow(
        "SELECT last_checkin_day, timezone FROM user_progress WHERE user_id = $1", user.id
    )
    assert row["last_checkin_day"] == rules.local_day(datetime.now(UTC), "Pacific/Kiritimati")


async def test_a_milestone_gives_exactly_one_ticket_under_concurrent_checkins(
    analytics, new_user, analytics_db, event_spy
):
    user = new_user()
    tz = "Asia/Tokyo"
    today = rules.local_day(datetime.now(UTC), tz)
    # Two days in a row already; today's check-in is the third: milestone 3. (The row comes from
    # a real check-in, then is moved back a day.)
    assert (await analytics.post("/analytics/checkin", json={"timezone": tz}, headers=user.headers)).status_code == 200
    await rewrite_progress(
        analytics_db,
        user.id,
        "UPDATE user_progress SET streak_current = 2, streak_longest = 2, streak_started_on = $2,"
        " last_active_day = $3, last_checkin_day = $3 WHERE user_id = $1",
        today - timedelta(days=2),
        today - timedelta(days=1),
    )
    async with event_spy(["streak.milestone"]) as spy:
        answers = await asyncio.gather(
            *[analytics.post("/analytics/checkin", json={"timezone": tz}, headers=user.headers) for _ in range(12)]
        )
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        rewarded = [a.json() for a in answers if a.json()["reward"]]
        assert len(rewarded) == 1 and sum(a.json()["checked_in"] for a in answers) == 1
        ticket = rewarded[0]["reward"]["flip_ticket"]
        assert ticket["reason"] == "streak_3" and not ticket["flipped"]
        assert all(a.json()["streak"]["current"] == 3 for a in answers)
        assert await analytics_db.fetchval("SELECT count(*) FROM flip_tickets WHERE user_id = $1", user.id) == 1
        await spy.wait_for("streak.milestone", 1, user_id=user.id)
        await asyncio.sleep(0.3)
        assert [e.data["flip_ticket_id"] for e in spy.of_type("streak.milestone", user_id=user.id)] == [ticket["id"]]
    listing = (await analytics.get("/analytics/flip-tickets", headers=user.headers)).json()
    assert [t["id"] for t in listing["flip_tickets"]] == [ticket["id"]] and listing["next_cursor"] is None


async def test_a_streak_from_messages_counts_the_users_local_days_across_dst(analytics, bus, new_user, analytics_db):
    """New York's spring change (8 March 2026): 23:30 on the 7th, 23:30 on the 8th, 00:30 on the
    9th are three local days (three UTC instants on two UTC days): milestone 3, one ticket. A
    Tokyo user with the same instants has two days."""
    ny, tokyo = new_user(), new_user()
    for u, tz in ((ny, "America/New_York"), (tokyo, "Asia/Tokyo")):
        r = await analytics.post("/analytics/checkin", json={"timezone": tz}, headers=u.headers)
        assert r.status_code == 200
        # The check-in made today active; this test is about March, so start from a clean streak.
        await rewrite_progress(
            analytics_db,
            u.id,
            "UPDATE user_progress SET streak_current = 0, streak_longest = 0, streak_started_on = NULL,"
            " last_active_day = NULL WHERE user_id = $1",
        )
    times = [
        datetime(2026, 3, 8, 4, 30, tzinfo=UTC),
        datetime(2026, 3, 9, 3, 30, tzinfo=UTC),
        datetime(2026, 3, 9, 4, 30, tzinfo=UTC),
    ]
    await bus.send(*[event("message.sent", u.id, {"sender": "Frodo"}, at=t) for t in times for u in (ny, tokyo)])
    row = await analytics_db.fetchrow("SELECT * FROM user_progress WHERE user_id = $1", ny.id)
    assert (row["streak_current"], row["streak_longest"], str(row["last_active_day"])) == (3, 3, "2026-03-09")
    assert await analytics_db.fetchval("SELECT count(*) FROM flip_tickets WHERE user_id = $1", ny.id) == 1
    row = await analytics_db.fetchrow("SELECT * FROM user_progress WHERE user_id = $1", tokyo.id)
    assert (row["streak_current"], str(row["last_active_day"])) == (2, "2026-03-09")
    assert await analytics_db.fetchval("SELECT count(*) FROM flip_tickets WHERE user_id = $1", tokyo.id) == 0


async def test_flip_tickets_page_with_a_cursor_and_only_the_callers(analytics, new_user, analytics_db):
    owner, other = new_user(), new_user()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        await analytics_db.execute(
            "INSERT INTO flip_tickets (user_id, reason, grant_key, granted_at) VALUES ($1, 'streak_3', $2, $3)",
            owner.id,
            f"test:{i}",
            base + timedelta(days=i),
        )
    seen, cursor = [], None
    while True:
        r = await analytics.get(
            "/analytics/flip-tickets",
            params={"limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=owner.headers,
        )
        assert r.status_code == 200
        seen += [t["granted_at"] for t in r.json()["flip_tickets"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 5
    assert (await analytics.get("/analytics/flip-tickets", headers=other.headers)).json() == {
        "flip_tickets": [],
        "next_cursor": None,
    }


@pytest.mark.parametrize("method,path", ROUTES)
async def test_routes_refuse_missing_bad_and_service_tokens(analytics, tokens, method, path):
    for headers, status, code in [
        ({}, 401, "NOT_AUTHENTICATED"),
        ({"Authorization": "Bearer not-a-jwt"}, 401, "INVALID_TOKEN"),
        ({"Authorization": "Basic abc"}, 401, "MALFORMED_AUTHORIZATION"),
        (tokens.headers(tokens.user(str(uuid.uuid4()), expires_in=-10)), 401, "INVALID_TOKEN"),
        (tokens.headers(tokens.service("payment")), 403, "USER_TOKEN_REQUIRED"),
        (tokens.headers(tokens.user("not-a-uuid")), 401, "INVALID_TOKEN"),
    ]:
        r = await analytics.request(method, path, headers=headers)
        assert r.status_code == status, (headers, r.text)
        assert r.json()["detail"]["code"] == code


async def test_bad_checkin_bodies_are_refused_and_change_nothing(analytics, new_user, analytics_db):
    user = new_user()
    for body, status, code in [
        ({"timezone": "Mars/Olympus"}, 422, "INVALID_TIMEZONE"),
        ({"timezone": "../../etc/passwd"}, 422, "INVALID_TIMEZONE"),
        ({"timezone": ""}, 422, "VALIDATION_ERROR"),
        ({"timezone": "x" * 500}, 422, "VALIDATION_ERROR"),
        ({"timezone": 5}, 422, "VALIDATION_ERROR"),
        ({"timezone": "UTC", "xp": 1_000_000}, 422, "VALIDATION_ERROR"),
        ([1, 2], 422, "VALIDATION_ERROR"),
    ]:
        r = await analytics.post("/analytics/checkin", json=body, headers=user.headers)
        assert (r.status_code, r.json()["detail"]["code"]) == (status, code), (body, r.text)
    r = await analytics.post(
        "/analytics/checkin", content=b"{not json", headers={**user.headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["detail"]["code"] == "INVALID_JSON"
    assert await analytics_db.fetchval("SELECT count(*) FROM user_progress WHERE user_id = $1", user.id) == 0


async def test_bad_cursors_and_limits_are_refused(analytics, new_user):
    user = new_user()
    for params in (
        {"cursor": "!!!"},
        {"cursor": "bm90IGEgY3Vyc29y"},
        {"limit": 0},
        {"limit": 1000},
        {"cursor": "x" * 300},
    ):
        r = await analytics.get("/analytics/flip-tickets", params=params, headers=user.headers)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"]["code"] in ("INVALID_CURSOR", "VALIDATION_ERROR")


async def test_percentiles_equal_a_brute_force_count(analytics, bus, new_user, analytics_db):
    users = [new_user() for _ in range(6)]
    now = datetime.now(UTC)
    # 1, 2, 2, 5 and 40 messages; the sixth user only checks in.
    counts = [1, 2, 2, 5, 40]
    await bus.send(
        *[
            event("message.sent", u.id, {"sender": "Frodo"}, at=now)
            for u, n in zip(users, counts, strict=False)
            for _ in range(n)
        ]
    )
    assert (await analytics.post("/analytics/checkin", headers=users[5].headers)).status_code == 200
    await bus.settled()
    await histograms_match_the_users(analytics_db)
    for u in users:
        me = (await analytics.get("/analytics/me", headers=u.headers)).json()
        for metric, table, column in (("messages", "user_analytics", "messages"), ("xp", "user_progress", "xp")):
            mine = await analytics_db.fetchval(f"SELECT {column} FROM {table} WHERE user_id = $1", u.id)
            if mine is None:
                assert me["percentiles"][metric] is None
                continue
            above = await analytics_db.fetchval(f"SELECT count(*) FROM {table} WHERE {column} > $1", mine)
            total = await analytics_db.fetchval(f"SELECT count(*) FROM {table}")
            expected = {"rank": above + 1, "of": total, "top_percent": round(100 * (above + 1) / total, 1)}
            assert me["percentiles"][metric] == expected, (metric, mine)
    tied = [
        (await analytics.get("/analytics/me", headers=u.headers)).json()["percentiles"]["messages"] for u in users[1:3]
    ]
    assert tied[0] == tied[1]
    assert (await analytics.get("/analytics/me", headers=users[5].headers)).json()["percentiles"][
        "messages"
    ] is not None
