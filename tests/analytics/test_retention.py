"""Raw-event retention: the daily task detaches and drops the month partitions older than
ANALYTICS_RAW_RETENTION_MONTHS; the rollups made from them stay; a late event for a dropped month
is still counted; a busy table makes the run skip the drop, not fail."""

import asyncio
import uuid
from datetime import UTC, date, datetime

import pytest

from analytics_service import daily
from tests.analytics.conftest import event

pytestmark = pytest.mark.asyncio(loop_scope="session")

OLD = (datetime(2019, 3, 14, 12, tzinfo=UTC), datetime(2019, 5, 2, 8, tzinfo=UTC))
OLD_PARTITIONS = ["analytics_events_2019_03", "analytics_events_2019_05"]
RETENTION = 60  # months: keeps everything the other tests send (2024 and later)


async def partitions(db) -> set[str]:
    rows = await db.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'analytics_events'::regclass"
    )
    return {r[0] for r in rows}


async def messages_on(db, day: datetime) -> int:
    return await db.fetchval(
        "SELECT COALESCE(sum(value), 0) FROM platform_metrics WHERE granularity = 'day' AND metric = 'messages'"
        " AND bucket = $1",
        day.replace(hour=0),
    )


async def test_the_cutoff_keeps_the_current_month_and_that_many_complete_months():
    assert daily.retention_cutoff(date(2026, 12, 4), 13) == date(2025, 11, 1)
    assert daily.retention_cutoff(date(2026, 1, 31), 2) == date(2025, 11, 1)
    assert daily.retention_cutoff(date(2026, 12, 4), 60) == date(2021, 12, 1)


async def test_old_partitions_are_dropped_and_their_rollups_kept(bus, analytics_db, new_user, monkeypatch):
    user = new_user()
    now = datetime.now(UTC)
    await bus.send(
        *[event("message.sent", user.id, {"sender": "Frodo"}, at=at) for at in OLD for _ in range(3)],
        event("message.sent", user.id, {"sender": "Frodo"}, at=now),
    )
    await bus.settled()
    assert set(OLD_PARTITIONS) <= await partitions(analytics_db)
    uid = uuid.UUID(user.id)
    before = await analytics_db.fetchrow("SELECT messages, first_seen_at FROM user_analytics WHERE user_id = $1", uid)
    assert before["messages"] == 7 and await messages_on(analytics_db, OLD[0]) >= 3

    # A reader holding the table: the drop waits at most the timeout, the run still commits.
    monkeypatch.setattr(daily, "PARTITION_LOCK_TIMEOUT", "200ms")
    async with analytics_db.acquire() as reader, reader.transaction():
        await reader.fetchval("SELECT count(*) FROM analytics_events WHERE user_id = $1", uid)
        summary = await daily.run_daily(analytics_db, force=True, raw_retention_months=RETENTION)
    assert summary is not None and summary["raw_partitions_dropped"] == []
    assert set(OLD_PARTITIONS) <= await partitions(analytics_db)

    summary = await daily.run_daily(analytics_db, force=True, raw_retention_months=RETENTION)
    cutoff = daily.retention_cutoff(now.date(), RETENTION)
    assert set(OLD_PARTITIONS) <= set(summary["raw_partitions_dropped"])
    left = await partitions(analytics_db)
    assert not set(OLD_PARTITIONS) & left
    assert all(name[-7:].replace("_", "-") + "-01" >= cutoff.isoformat() for name in left)
    # Only the kept month's raw events are left; the rollups still count the dropped ones.
    kept = "SELECT count(*) FROM analytics_events WHERE user_id = $1 AND event_type = 'message.sent'"
    assert await analytics_db.fetchval(kept, uid) == 1
    after = await analytics_db.fetchrow("SELECT messages, first_seen_at FROM user_analytics WHERE user_id = $1", uid)
    assert tuple(after) == tuple(before)
    old_day = await messages_on(analytics_db, OLD[0])
    assert old_day >= 3

    # An event arriving later for a dropped month is counted (the consumer makes its partition again).
    late = event("message.sent", user.id, {"sender": "Frodo"}, at=OLD[0])
    await bus.send(late)
    await asyncio.wait_for(bus.settled(), 30)
    assert await messages_on(analytics_db, OLD[0]) == old_day + 1
    assert "analytics_events_2019_03" in await partitions(analytics_db)
    assert await analytics_db.fetchval("SELECT count(*) FROM analytics_events WHERE event_id = $1", late.event_id) == 1


@pytest.mark.parametrize("months, accepted", [(0, True), (1, False), (-3, False), (2, True), (13, True)])
async def test_the_retention_setting_is_0_or_at_least_2_months(service_env, months, accepted):
    from analytics_service.settings import Settings
    from shared.settings import SettingsError, load_settings
    from shared.testing.env import patched_environ

    with patched_environ({**service_env, "ANALYTICS_RAW_RETENTION_MONTHS": str(months)}):
        if accepted:
            assert load_settings(Settings).analytics_raw_retention_months == months
        else:
            with pytest.raises(SettingsError, match="ANALYTICS_RAW_RETENTION_MONTHS"):
                load_settings(Settings)
