"""The daily task: engagement tiers, the platform's stored DAU/WAU/MAU, and housekeeping (old
idempotency records, old hourly activity rows, raw-event partitions past their retention).

Scheduling: every worker of the service runs `run_periodically`, which wakes every
ANALYTICS_DAILY_CHECK_SECONDS (default 900) and calls `run_daily`. `run_daily` works in one
transaction that first takes a transaction-level advisory lock with pg_try_advisory_xact_lock
(a second worker finds it held and skips) and then reads the day the task last ran
(`analytics_daily_runs`): it runs at most once per UTC day, whichever worker wakes first after
midnight, and a restart does not run it again."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from analytics_service import rules
from analytics_service.events import QUEUE
from analytics_service.repositories import daily as daily_repo
from shared.tasks import cancel_and_wait

log = logging.getLogger("analytics_service.daily")

TASK = "daily"
# Idempotency records are kept far longer than any redelivery: the broker redelivers within
# seconds (unacked on a lost channel) and the retry queues within minutes; 30 days also covers
# a dead-lettered message re-published by hand weeks later.
PROCESSED_RETENTION = timedelta(days=30)
# Hourly "who was active" rows only tell a late event whether its user already counts in that
# hour; 35 days is beyond any redelivery too (and beyond the platform route's 31-day hourly range).
HOURLY_ACTIVITY_RETENTION = timedelta(days=35)
# Stored DAU/WAU/MAU: the days not stored yet, at most this many back (the first run, or after downtime).
ACTIVES_BACKFILL_DAYS = 60
# Waiting this long at most for the raw table's exclusive lock (detaching a partition): the
# consumer's inserts queue behind the request meanwhile; a run that cannot get it drops the
# partitions the next day.
PARTITION_LOCK_TIMEOUT = "5s"


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def run_daily(
    pool: asyncpg.Pool, now: datetime | None = None, *, force: bool = False, raw_retention_months: int = 0
) -> dict[str, Any] | None:
    """Run today's task unless it already ran today (or runs now in another worker): None then.
    `force` runs it again the same day (tests, an operator). `raw_retention_months`
    (ANALYTICS_RAW_RETENTION_MONTHS; 0 keeps everything): raw partitions of months before that many
    complete months are dropped."""
    now = now or _utcnow()
    today = now.astimezone(UTC).date()
    async with pool.acquire() as conn, conn.transaction():
        if not await daily_repo.try_lock(conn):
            return None
        last = await daily_repo.last_run_on(conn, TASK)
        if last is not None and last >= today and not force:
            return None
        summary = await _work(conn, now, today)
        # Last, so the raw table's exclusive lock is held only from here to the commit.
        summary["raw_partitions_dropped"] = await _drop_old_partitions(conn, today, raw_retention_months)
        await daily_repo.record_run(conn, TASK, today, now, summary)
    log.info("daily task done", extra=summary)
    return summary


async def _work(conn: asyncpg.Connection, now: datetime, today: date) -> dict[str, Any]:
    tiers_changed = await daily_repo.store_tiers(
        conn,
        now,
        new_days=rules.TIER_NEW_DAYS,
        at_risk_days=rules.TIER_AT_RISK_DAYS,
        window_days=rules.TIER_WINDOW_DAYS,
        power_days=rules.TIER_POWER_DAYS,
        regular_days=rules.TIER_REGULAR_DAYS,
    )
    # Complete days only (up to yesterday), and yesterday again: late events of yesterday are
    # still arriving when the task runs just after midnight, so it is recomputed the next day.
    last_stored = await daily_repo.last_stored_day(conn)
    first = today - timedelta(days=ACTIVES_BACKFILL_DAYS)
    if last_stored is not None:
        first = max(first, last_stored - timedelta(days=1))
    days = [first + timedelta(days=i) for i in range((today - first).days)]
    actives = await daily_repo.store_daily_actives(conn, days, now) if days else 0
    return {
        "day": today.isoformat(),
        "tiers_changed": tiers_changed,
        "tiers": await daily_repo.tier_counts(conn),
        "daily_actives_stored": actives,
        "processed_events_pruned": await daily_repo.prune_processed(conn, QUEUE, now - PROCESSED_RETENTION),
        "hourly_activity_pruned": await daily_repo.prune_hourly_activity(conn, now - HOURLY_ACTIVITY_RETENTION),
    }


def retention_cutoff(today: date, months: int) -> date:
    """The first month kept: `months` complete months before today's UTC month (which is kept too)."""
    index = today.year * 12 + today.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


async def _drop_old_partitions(conn: asyncpg.Connection, today: date, months: int) -> list[str]:
    """Detach and drop the raw partitions of months before the retention. Their rollups are final:
    a month goes at least two complete months after it ended, beyond the idempotency records'
    30 days (a redelivery later than that would count again anyway). A replay afterwards rebuilds
    only from the raw events kept. An event arriving later for a dropped month is still counted
    (its partition is made again, and dropped by the next run). In a savepoint: if the lock is not
    had within PARTITION_LOCK_TIMEOUT, the rest of the run still commits."""
    if months <= 0:
        return []
    names = await daily_repo.raw_partitions_before(conn, retention_cutoff(today, months))
    if not names:
        return []
    try:
        async with conn.transaction():
            await daily_repo.drop_raw_partitions(conn, names, PARTITION_LOCK_TIMEOUT)
    except asyncpg.LockNotAvailableError:
        log.warning("raw partitions not dropped: the table was busy", extra={"partitions": names})
        return []
    return names


async def run_periodically(pool: asyncpg.Pool, interval_seconds: float, *, raw_retention_months: int = 0) -> None:
    """The loop each worker runs (main.startup): try the daily task now, then every interval."""
    while True:
        try:
            await run_daily(pool, raw_retention_months=raw_retention_months)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A failed run rolls back and is tried again at the next wake-up.
            log.exception("daily task failed")
        await asyncio.sleep(interval_seconds)


async def stop(task: asyncio.Task | None) -> None:
    await cancel_and_wait(task)
