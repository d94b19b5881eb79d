"""The daily cap on action XP: enforced by the statement that adds XP, per user and local day,
under concurrent writers; achievements and rewards are not capped; the SQL level function
matches rules.level_for_xp."""

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from analytics_service import rules
from analytics_service.repositories import progress as progress_repo
from tests.analytics.conftest import event

pytestmark = pytest.mark.asyncio(loop_scope="session")

CAP = rules.DAILY_ACTION_XP_CAP


async def achievement_xp(db, user_id: str) -> int:
    return await db.fetchval(
        "SELECT COALESCE(sum(d.xp_reward), 0) FROM user_achievements a"
        " JOIN achievement_definitions d USING (code) WHERE a.user_id = $1",
        uuid.UUID(user_id),
    )


async def test_messages_beyond_the_cap_earn_nothing_that_day(analytics, analytics_db, bus, new_user):
    user = new_user()
    now = datetime.now(UTC)
    # 300 messages = 600 action XP: only CAP of it counts; achievements (first chat, 100 messages) on top.
    await bus.send(*[event("message.sent", user.id, {"sender": "Frodo"}, at=now) for _ in range(300)])
    await bus.settled()
    me = (await analytics.get("/analytics/me", headers=user.headers)).json()
    assert me["messages"] == 300
    bonus = await achievement_xp(analytics_db, user.id)
    assert bonus > 0
    assert me["xp"] == CAP + bonus
    assert me["level"] == rules.level_for_xp(CAP + bonus)
    row = await analytics_db.fetchrow(
        "SELECT xp_today, xp_day, timezone FROM user_progress WHERE user_id = $1", uuid.UUID(user.id)
    )
    assert row["xp_today"] == CAP and row["xp_day"] == rules.local_day(datetime.now(UTC), row["timezone"])

    # The check-in still counts the day (streak), but its XP is over the cap too.
    answer = (await analytics.post("/analytics/checkin", json={}, headers=user.headers)).json()
    assert answer["checked_in"] is True and answer["xp"] == CAP + bonus

    # The next local day has a fresh allowance.
    await analytics_db.execute("UPDATE user_progress SET xp_day = xp_day - 1 WHERE user_id = $1", uuid.UUID(user.id))
    await bus.send(*[event("message.sent", user.id, {"sender": "Frodo"}, at=datetime.now(UTC)) for _ in range(5)])
    await bus.settled()
    me = (await analytics.get("/analytics/me", headers=user.headers)).json()
    assert me["xp"] == CAP + 10 + await achievement_xp(analytics_db, user.id)


async def test_the_cap_holds_under_concurrent_writers(analytics_db):
    """Twelve transactions add 100 action XP each to one user on the same day, without locking the
    row first: the statement itself must not let the day's allowance be spent twice."""
    user_id = uuid.uuid4()
    await analytics_db.execute("INSERT INTO user_progress (user_id) VALUES ($1)", user_id)
    day = date(2026, 12, 4)
    row = {
        "user_id": user_id,
        "timezone": "UTC",
        "streak_current": 0,
        "streak_longest": 0,
        "streak_started_on": None,
        "last_active_day": None,
        "last_checkin_day": None,
        "action_xp": 100,
        "reward_xp": 0,
        "xp_day": day,
    }

    async def add() -> tuple[int, int]:
        async with analytics_db.acquire() as conn, conn.transaction():
            saved = await progress_repo.save(conn, [row])
            await asyncio.sleep(0.02)  # hold the row while the others queue on it
            return saved[user_id]

    results = await asyncio.gather(*[add() for _ in range(12)])
    final = await analytics_db.fetchrow("SELECT xp, xp_today, level FROM user_progress WHERE user_id = $1", user_id)
    assert (final["xp"], final["xp_today"]) == (CAP, CAP)
    assert final["level"] == rules.level_for_xp(CAP)
    assert sorted(xp for xp, _ in results) == [min(CAP, 100 * i) for i in range(1, 13)]

    # Rewards are not capped; an earlier local day (a move west) spends the same allowance.
    earlier = {**row, "xp_day": day - timedelta(days=1), "reward_xp": 50}
    async with analytics_db.acquire() as conn, conn.transaction():
        assert (await progress_repo.save(conn, [earlier]))[user_id][0] == CAP + 50
    final = await analytics_db.fetchrow("SELECT xp, xp_today, xp_day FROM user_progress WHERE user_id = $1", user_id)
    assert (final["xp"], final["xp_today"], final["xp_day"]) == (CAP + 50, CAP, day)


async def test_the_sql_level_function_matches_the_rule(analytics_db):
    values = [*range(0, 5001), *[rules.xp_for_level(level) + d for level in range(1, 2000) for d in (-1, 0, 1)]]
    values = sorted({v for v in values if v >= 0} | {10**12, 10**15})
    rows = await analytics_db.fetch("SELECT x, analytics_level_for_xp(x) FROM unnest($1::bigint[]) AS x", values)
    assert {r[0]: r[1] for r in rows} == {v: rules.level_for_xp(v) for v in values}
