"""Leaderboards: order, shared ranks and the caller's rank checked against brute-force counts
(the raw events for a week's messages, the progress table for XP and streaks), display names only,
hostile parameters refused."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from analytics_service import rules
from tests.analytics.conftest import event, histograms_match_the_users

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _brute_rank(db, sql: str, mine: int) -> tuple[int, int]:
    values = [r[0] for r in await db.fetch(sql)]
    return 1 + sum(1 for v in values if v > mine), len(values)


async def test_weekly_messages_board_against_the_raw_events(analytics, bus, analytics_db, new_user):
    now = datetime.now(UTC)
    users = [new_user() for _ in range(5)]
    counts = [7, 3, 3, 1, 12]
    await bus.send(
        *[
            event("message.sent", u.id, {"sender": "Frodo"}, at=now - timedelta(seconds=i))
            for u, n in zip(users, counts, strict=True)
            for i in range(n)
        ],
        # A regenerated reply and last month's messages are not this week's.
        event("message.sent", users[3].id, {"sender": "Frodo", "regenerated": True}, at=now),
        *[event("message.sent", users[3].id, {"sender": "Frodo"}, at=now - timedelta(days=40)) for _ in range(30)],
    )
    await bus.settled()
    week = rules.period_start("week", now)
    start = datetime(week.year, week.month, week.day, tzinfo=UTC)
    per_user_sql = (
        "SELECT count(*) FROM analytics_events WHERE event_type = 'message.sent' AND NOT erased"
        " AND NOT COALESCE((data->>'regenerated')::boolean, false) AND user_id IS NOT NULL"
        f" AND occurred_at >= '{start.isoformat()}' AND occurred_at < '{(start + timedelta(days=7)).isoformat()}'"
        " GROUP BY user_id"
    )
    for u, n in zip(users, counts, strict=True):
        params = {"metric": "messages", "period": "week", "limit": 100}
        r = await analytics.get("/analytics/leaderboard", params=params, headers=u.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["period_start"] == week.isoformat()
        assert body["me"]["value"] == n
        assert (body["me"]["rank"], body["me"]["of"]) == await _brute_rank(analytics_db, per_user_sql, n)
        values = [e["value"] for e in body["entries"]]
        assert values == sorted(values, reverse=True)
        for e in body["entries"]:
            assert e["rank"] == 1 + sum(1 for v in values if v > e["value"])
        mine = [e for e in body["entries"] if e["is_me"]]
        assert len(mine) == 1 and mine[0]["display_name"] == f"Fan {uuid.UUID(u.id).hex[:8]}"
        # Display names only: no other user's id in the answer.
        assert not any(o.id in r.text for o in users if o is not u)
    await histograms_match_the_users(analytics_db)


async def test_all_time_xp_and_streak_boards_against_the_progress_table(analytics, bus, analytics_db, new_user):
    a, b = new_user(), new_user()
    now = datetime.now(UTC)
    await bus.send(*[event("message.sent", a.id, {"sender": "Sam"}, at=now) for _ in range(5)])
    await analytics.post("/analytics/checkin", json={}, headers=b.headers)
    await bus.settled()
    for metric, column in (("xp", "xp"), ("streak", "streak_longest")):
        for u in (a, b):
            r = await analytics.get("/analytics/leaderboard", params={"metric": metric}, headers=u.headers)
            assert r.status_code == 200, r.text
            me = r.json()["me"]
            mine = await analytics_db.fetchval(
                f"SELECT {column} FROM user_progress WHERE user_id = $1", uuid.UUID(u.id)
            )
            assert me["value"] == mine
            sql = f"SELECT {column} FROM user_progress"
            assert (me["rank"], me["of"]) == await _brute_rank(analytics_db, sql, mine)
            top = r.json()["entries"]
            assert len(top) <= 10 and all(e["value"] > 0 for e in top)
            best = await analytics_db.fetchval(f"SELECT max({column}) FROM user_progress")
            assert top[0]["value"] == best and top[0]["rank"] == 1
    # This month's XP board has what a earned this month (all of it: a is new).
    r = await analytics.get("/analytics/leaderboard", params={"metric": "xp", "period": "month"}, headers=a.headers)
    xp = await analytics_db.fetchval("SELECT xp FROM user_progress WHERE user_id = $1", uuid.UUID(a.id))
    assert r.json()["me"]["value"] == xp
    await histograms_match_the_users(analytics_db)


async def test_leaderboard_refuses_bad_parameters_and_service_tokens(analytics, new_user, tokens):
    u = new_user()
    for params, code in (
        ({"metric": "streak", "period": "week"}, "UNSUPPORTED_PERIOD"),
        ({"metric": "money"}, "VALIDATION_ERROR"),
        ({"period": "year"}, "VALIDATION_ERROR"),
        ({"limit": 0}, "VALIDATION_ERROR"),
        ({"limit": 101}, "VALIDATION_ERROR"),
    ):
        r = await analytics.get("/analytics/leaderboard", params=params, headers=u.headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == code, (params, r.text)
    r = await analytics.get("/analytics/leaderboard", headers=tokens.headers(tokens.service()))
    assert r.status_code == 403
    # A user with no score yet: the board, and no rank.
    r = await analytics.get("/analytics/leaderboard", params={"metric": "messages"}, headers=u.headers)
    assert r.status_code == 200 and r.json()["me"] is None
