"""SQL of the daily task: engagement tiers, the platform's daily actives, pruning, and the record
of which day each task last ran. Set-based statements: their cost is one pass over the tables,
not one round trip per user."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg
import orjson

# Taken with pg_try_advisory_xact_lock: a second worker finds it held and skips the run.
DAILY_LOCK = 0x5CE7DA11


async def try_lock(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", DAILY_LOCK)


async def last_run_on(conn: asyncpg.Connection, task: str) -> date | None:
    return await conn.fetchval("SELECT last_run_on FROM analytics_daily_runs WHERE task = $1", task)


async def record_run(conn: asyncpg.Connection, task: str, day: date, now: datetime, summary: dict) -> None:
    await conn.execute(
        """
        INSERT INTO analytics_daily_runs (task, last_run_on, finished_at, summary) VALUES ($1, $2, $3, $4::jsonb)
        ON CONFLICT (task) DO UPDATE SET last_run_on = EXCLUDED.last_run_on, finished_at = EXCLUDED.finished_at,
                                         summary = EXCLUDED.summary
        """,
        task,
        day,
        now,
        orjson.dumps(summary).decode(),
    )


async def store_tiers(
    conn: asyncpg.Connection,
    now: datetime,
    *,
    new_days: int,
    at_risk_days: int,
    window_days: int,
    power_days: int,
    regular_days: int,
) -> int:
    """Every user's tier (rules.engagement_tier, in SQL: the same thresholds, passed in), one
    statement. Only rows whose tier changed are written. Returns the rows written."""
    status = await conn.execute(
        """
        INSERT INTO user_engagement AS e (user_id, tier, computed_at)
        SELECT ua.user_id,
               CASE WHEN ua.first_seen_at IS NULL OR $1 - ua.first_seen_at < make_interval(days => $2) THEN 'new'
                    WHEN ua.last_active_at IS NULL OR $1 - ua.last_active_at >= make_interval(days => $3)
                         THEN 'at_risk'
                    WHEN COALESCE(d.days, 0) >= $5 THEN 'power'
                    WHEN COALESCE(d.days, 0) >= $6 THEN 'regular'
                    ELSE 'casual' END,
               $1
          FROM user_analytics ua
          LEFT JOIN (SELECT user_id, count(*) AS days FROM user_active_days
                      WHERE day >= ($1 AT TIME ZONE 'UTC')::date - ($4 - 1) GROUP BY user_id) d USING (user_id)
        ON CONFLICT (user_id) DO UPDATE SET tier = EXCLUDED.tier, computed_at = EXCLUDED.computed_at
         WHERE e.tier IS DISTINCT FROM EXCLUDED.tier
        """,
        now,
        new_days,
        at_risk_days,
        window_days,
        power_days,
        regular_days,
    )
    # Users gone from user_analytics (erased, or before a replay put them back) keep no tier.
    await conn.execute(
        "DELETE FROM user_engagement e WHERE NOT EXISTS (SELECT 1 FROM user_analytics ua WHERE ua.user_id = e.user_id)"
    )
    return int(status.split()[-1])


async def tier_counts(conn) -> dict[str, int]:
    rows = await conn.fetch("SELECT tier, count(*) AS n FROM user_engagement GROUP BY tier")
    return {r["tier"]: int(r["n"]) for r in rows}


async def store_daily_actives(conn: asyncpg.Connection, days: list[date], now: datetime) -> int:
    """DAU, WAU, MAU of each UTC day in `days`: distinct users over the day rows of
    activity_buckets (1, 7, 30 days ending with the day), computed once and stored; and the users
    of the 6 and 29 days ending with it (the next day's WAU/MAU before its own users are added)."""
    status = await conn.execute(
        """
        INSERT INTO platform_daily_actives AS p (day, dau, wau, mau, wau_trailing, mau_trailing, computed_at)
        SELECT d,
               (SELECT count(DISTINCT user_id) FROM activity_buckets
                 WHERE granularity = 'day' AND bucket = (d::timestamp AT TIME ZONE 'UTC')),
               (SELECT count(DISTINCT user_id) FROM activity_buckets
                 WHERE granularity = 'day' AND bucket > ((d - 7)::timestamp AT TIME ZONE 'UTC')
                   AND bucket <= (d::timestamp AT TIME ZONE 'UTC')),
               (SELECT count(DISTINCT user_id) FROM activity_buckets
                 WHERE granularity = 'day' AND bucket > ((d - 30)::timestamp AT TIME ZONE 'UTC')
                   AND bucket <= (d::timestamp AT TIME ZONE 'UTC')),
               (SELECT count(DISTINCT user_id) FROM activity_buckets
                 WHERE granularity = 'day' AND bucket > ((d - 6)::timestamp AT TIME ZONE 'UTC')
                   AND bucket <= (d::timestamp AT TIME ZONE 'UTC')),
               (SELECT count(DISTINCT user_id) FROM activity_buckets
                 WHERE granularity = 'day' AND bucket > ((d - 29)::timestamp AT TIME ZONE 'UTC')
                   AND bucket <= (d::timestamp AT TIME ZONE 'UTC')),
               $2
          FROM unnest($1::date[]) AS d
        ON CONFLICT (day) DO UPDATE SET dau = EXCLUDED.dau, wau = EXCLUDED.wau, mau = EXCLUDED.mau,
                                        wau_trailing = EXCLUDED.wau_trailing, mau_trailing = EXCLUDED.mau_trailing,
                                        computed_at = EXCLUDED.computed_at
        """,
        days,
        now,
    )
    return int(status.split()[-1])


async def stored_actives(conn, day: date) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT dau, wau, mau, wau_trailing, mau_trailing, computed_at FROM platform_daily_actives WHERE day = $1", day
    )


async def last_stored_day(conn) -> date | None:
    return await conn.fetchval("SELECT max(day) FROM platform_daily_actives")


async def prune_processed(conn: asyncpg.Connection, consumer: str, before: datetime) -> int:
    status = await conn.execute(
        "DELETE FROM processed_events WHERE consumer = $1 AND processed_at < $2", consumer, before
    )
    return int(status.split()[-1])


async def prune_hourly_activity(conn: asyncpg.Connection, before: datetime) -> int:
    status = await conn.execute("DELETE FROM activity_buckets WHERE granularity = 'hour' AND bucket < $1", before)
    return int(status.split()[-1])


async def raw_partitions_before(conn: asyncpg.Connection, first_kept: date) -> list[str]:
    """The month partitions of analytics_events (analytics_events_YYYY_MM) for months before
    `first_kept`, oldest first."""
    rows = await conn.fetch(
        """
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'analytics_events'::regclass AND c.relname ~ '^analytics_events_[0-9]{4}_[0-9]{2}$'
           AND to_date(right(c.relname, 7), 'YYYY_MM') < $1
         ORDER BY c.relname
        """,
        first_kept,
    )
    return [r[0] for r in rows]


async def drop_raw_partitions(conn: asyncpg.Connection, names: list[str], lock_timeout: str) -> None:
    """Detach and drop them (the parent's exclusive lock, held until the caller's commit), after
    waiting at most `lock_timeout` for it (LockNotAvailableError then). Names come from
    raw_partitions_before (catalogue names of our own pattern), quoted all the same."""
    await conn.execute("SELECT set_config('lock_timeout', $1, true)", lock_timeout)
    for name in names:
        quoted = await conn.fetchval("SELECT quote_ident($1)", name)
        await conn.execute(f"ALTER TABLE analytics_events DETACH PARTITION {quoted}")
        await conn.execute(f"DROP TABLE {quoted}")
    await conn.execute("SELECT set_config('lock_timeout', '0', true)")
