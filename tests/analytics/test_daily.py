"""The daily task: engagement tiers stored by the rule (checked against rules.engagement_tier for
every user), /analytics/me reading the stored tier, DAU/WAU/MAU stored per day (checked against
distinct counts), pruning of old idempotency records and hourly activity rows, and one run per
day even with two workers."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from analytics_service import daily, platform, rules
from analytics_service.events import QUEUE
from analytics_service.repositories import daily as daily_repo
from analytics_service.repositories import rollups as rollups_repo
from tests.analytics.conftest import event

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_tiers_are_stored_by_the_rule_and_me_reads_them(analytics, bus, new_user, analytics_db):
    now = datetime.now(UTC)
    users = {tier: new_user() for tier in rules.ENGAGEMENT_TIERS}

    def active(user, days_ago: list[int]):
        return [event("message.sent", user.id, {"sender": "Frodo"}, at=now - timedelta(days=d)) for d in days_ago]

    await bus.send(
        *active(users["new"], [0, 1]),
        *active(users["at_risk"], [40, 20]),  # nothing for 20 days
        *active(users["power"], list(range(0, 25))),  # 25 of the last 30 days
        *active(users["regular"], [*range(0, 9), 35]),  # 9 of the last 30 days
        *active(users["casual"], [1, 12]),  # 2 of the last 30 days
    )
    await bus.settled()
    summary = await daily.run_daily(analytics_db, force=True)
    assert summary is not None and summary["tiers_changed"] >= len(users)

    stored = {str(r["user_id"]): r["tier"] for r in await analytics_db.fetch("SELECT * FROM user_engagement")}
    for tier, user in users.items():
        assert stored[user.id] == tier, tier
    # Every user, against the rule itself (brute force per user).
    rows = await analytics_db.fetch(
        """
        SELECT ua.user_id, ua.first_seen_at, ua.last_active_at,
               (SELECT count(*) FROM user_active_days d WHERE d.user_id = ua.user_id AND d.day >= $1) AS days
          FROM user_analytics ua
        """,
        (now - timedelta(days=rules.TIER_WINDOW_DAYS - 1)).date(),
    )
    assert len(rows) == len(stored)
    for r in rows:
        expected = rules.engagement_tier(
            first_seen=r["first_seen_at"], last_active=r["last_active_at"], active_days_30=r["days"], now=now
        )
        assert stored[str(r["user_id"])] == expected

    for tier, user in users.items():
        me = (await analytics.get("/analytics/me", headers=user.headers)).json()
        assert me["engagement_tier"] == tier
    # /me reads the stored tier (not a computation on read): change it behind the service's back.
    await analytics_db.execute("UPDATE user_engagement SET tier = 'power' WHERE user_id = $1", users["casual"].id)
    me = (await analytics.get("/analytics/me", headers=users["casual"].headers)).json()
    assert me["engagement_tier"] == "power"
    # A run puts the rule's tier back; an unchanged tier is not rewritten.
    again = await daily.run_daily(analytics_db, force=True)
    assert again["tiers_changed"] == 1
    assert await analytics_db.fetchval("SELECT tier FROM user_engagement WHERE user_id = $1", users["casual"].id) == (
        "casual"
    )

    # An erased user's tier goes with the rest.
    await bus.send(event("user.deleted", users["power"].id))
    gone = await analytics_db.fetchval("SELECT count(*) FROM user_engagement WHERE user_id = $1", users["power"].id)
    assert gone == 0


async def test_daily_actives_are_stored_per_complete_day(analytics, bus, new_user, analytics_db):
    now = datetime.now(UTC)
    a, b, c = new_user(), new_user(), new_user()
    await bus.send(
        event("message.sent", a.id, {"sender": "Sam"}, at=now - timedelta(days=1)),
        event("message.sent", b.id, {"sender": "Sam"}, at=now - timedelta(days=3)),
        event("message.sent", c.id, {"sender": "Sam"}, at=now - timedelta(days=20)),
    )
    await bus.settled()
    # Stored days are not recomputed for events arriving days late (only yesterday is, once):
    # start from none stored, so this run computes the whole backfill window.
    await analytics_db.execute("DELETE FROM platform_daily_actives")
    summary = await daily.run_daily(analytics_db, force=True)
    assert summary["daily_actives_stored"] == daily.ACTIVES_BACKFILL_DAYS
    today = now.date()
    rows = await analytics_db.fetch("SELECT * FROM platform_daily_actives ORDER BY day")
    assert rows and rows[-1]["day"] == today - timedelta(days=1)  # complete days only
    for r in rows:
        day = datetime(r["day"].year, r["day"].month, r["day"].day, tzinfo=UTC)
        for column, days in (("dau", 1), ("wau", 7), ("mau", 30), ("wau_trailing", 6), ("mau_trailing", 29)):
            counted = await analytics_db.fetchval(
                "SELECT count(DISTINCT user_id) FROM activity_buckets WHERE granularity = 'day'"
                " AND bucket > $1 AND bucket <= $2",
                day - timedelta(days=days),
                day,
            )
            assert r[column] == counted, (r["day"], column)
    # The platform figures answer the stored WAU/MAU for a range ending on a stored day.
    yesterday = rows[-1]
    await analytics_db.execute("UPDATE platform_daily_actives SET mau = mau + 1000 WHERE day = $1", yesterday["day"])
    start = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=3)
    answer = await platform.platform(analytics_db, start, start + timedelta(days=3), "day")
    assert (answer["wau"], answer["mau"]) == (yesterday["wau"], yesterday["mau"] + 1000)
    await analytics_db.execute("UPDATE platform_daily_actives SET mau = mau - 1000 WHERE day = $1", yesterday["day"])

    # A range ending today: yesterday's trailing figures plus today's newcomers, equal to distinct
    # counts over the day rows. Today's users: one back after 3 days (in both), one after 20 days
    # (new this week), one first seen today (new in both).
    d = new_user()
    await bus.send(
        event("message.sent", b.id, {"sender": "Sam"}, at=now),
        event("message.sent", c.id, {"sender": "Sam"}, at=now),
        event("message.sent", d.id, {"sender": "Sam"}, at=now),
    )
    await bus.settled()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
    answer = await platform.platform(analytics_db, midnight - timedelta(days=6), midnight + timedelta(days=1), "day")
    counted = [
        await rollups_repo.distinct_active(
            analytics_db, midnight - timedelta(days=days - 1), midnight + timedelta(days=1)
        )
        for days in (7, 30)
    ]
    assert (answer["wau"], answer["mau"]) == tuple(counted)
    assert await rollups_repo.newcomers(analytics_db, midnight) >= (2, 1)


async def test_pruning_keeps_recent_rows_and_other_consumers(analytics, analytics_db):
    now = datetime.now(UTC)
    old, recent, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await analytics_db.execute(
        "INSERT INTO processed_events (consumer, event_id, event_type, processed_at) VALUES"
        " ($1, $2, 'message.sent', $5), ($1, $3, 'message.sent', $6), ('someone_else', $4, 'message.sent', $5)",
        QUEUE,
        old,
        recent,
        other,
        now - daily.PROCESSED_RETENTION - timedelta(days=1),
        now - daily.PROCESSED_RETENTION + timedelta(days=1),
    )
    user = uuid.uuid4()
    stale_hour = (now - daily.HOURLY_ACTIVITY_RETENTION - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    fresh_hour = (now - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    stale_day = stale_hour.replace(hour=0)
    await analytics_db.execute(
        "INSERT INTO activity_buckets (granularity, bucket, user_id) VALUES ('hour', $1, $4), ('hour', $2, $4),"
        " ('day', $3, $4)",
        stale_hour,
        fresh_hour,
        stale_day,
        user,
    )
    summary = await daily.run_daily(analytics_db, force=True)
    assert summary["processed_events_pruned"] >= 1 and summary["hourly_activity_pruned"] >= 1
    kept = {
        r["event_id"]
        for r in await analytics_db.fetch(
            "SELECT event_id FROM processed_events WHERE event_id = ANY($1::uuid[])", [old, recent, other]
        )
    }
    assert kept == {recent, other}
    buckets = await analytics_db.fetch(
        "SELECT granularity, bucket FROM activity_buckets WHERE user_id = $1 ORDER BY 1, 2", user
    )
    assert [(r["granularity"], r["bucket"]) for r in buckets] == [("day", stale_day), ("hour", fresh_hour)]
    await analytics_db.execute("DELETE FROM activity_buckets WHERE user_id = $1", user)


async def test_the_task_runs_once_a_day_and_one_worker_at_a_time(analytics, analytics_db):
    await daily.run_daily(analytics_db, force=True)
    # Already run today: every worker's next wake-up skips it.
    assert await daily.run_daily(analytics_db) is None
    assert await analytics_db.fetchval("SELECT last_run_on FROM analytics_daily_runs WHERE task = 'daily'") == (
        datetime.now(UTC).date()
    )
    # Another worker holds the lock (running it now): even a forced run skips.
    async with analytics_db.acquire() as conn, conn.transaction():
        assert await daily_repo.try_lock(conn)
        assert await daily.run_daily(analytics_db, force=True) is None
    # Two workers at once, the day after the last run: exactly one runs it.
    await analytics_db.execute("UPDATE analytics_daily_runs SET last_run_on = last_run_on - 1 WHERE task = 'daily'")
    results = await asyncio.gather(*[daily.run_daily(analytics_db) for _ in range(4)])
    assert sum(r is not None for r in results) == 1
