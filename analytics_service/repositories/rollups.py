"""SQL for the rollups: one statement per table applies a RollupDelta (sums, sets, min/max), so
a batch of any size costs the same dozen round trips. Keys go in sorted order, so two consumers
updating the same rows lock them in the same order (no deadlock)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

import asyncpg

from analytics_service.repositories import ranks as ranks_repo
from analytics_service.rules import USER_COUNTERS, RollupDelta, uuid_order

# Rebuilt from the raw events by a replay (progression tables are not: see the migration).
ROLLUP_TABLES = (
    "user_analytics",
    "user_active_days",
    "user_characters",
    "conversation_stats",
    "character_stats",
    "character_daily",
    "activity_buckets",
    "platform_metrics",
)

# Consumers hold it shared for each batch (taken with the raw insert, events.insert_raw); a replay
# holds it exclusively while it rebuilds.
ROLLUP_LOCK = 0x5CE7A7A1

# The counts of a user without any (read only): one shared Counter, not one made per lookup.
_NONE: Counter = Counter()


async def lock_shared(conn: asyncpg.Connection) -> None:
    """What a batch takes (insert_raw): a replay (lock_exclusive) waits for it, and it for a replay."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", ROLLUP_LOCK)


async def lock_exclusive(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", ROLLUP_LOCK)


async def truncate(conn: asyncpg.Connection) -> None:
    await conn.execute(f"TRUNCATE {', '.join(ROLLUP_TABLES)}")
    # The per-period message boards are rollups too (the xp boards are progression: kept).
    await conn.execute("DELETE FROM leaderboard_scores WHERE board LIKE 'messages:%'")
    await conn.execute("DELETE FROM metric_histogram WHERE metric LIKE 'messages:%'")
    await conn.execute("DELETE FROM metric_histogram_blocks WHERE metric LIKE 'messages:%'")


async def apply(conn: asyncpg.Connection, d: RollupDelta, *, write_boards: bool = True) -> None:
    """`write_boards=False`: the caller writes `d.board_messages` itself (the consumer, in one
    statement with the XP boards)."""
    user_counts = {u: Counter(c) for u, c in d.users.items()}

    # Sets first: a new row there is what a distinct count counts.
    if d.user_days:
        days = sorted(d.user_days, key=lambda k: (k[0].int, k[1]))
        rows = await conn.fetch(
            """
            INSERT INTO user_active_days (user_id, day) SELECT * FROM unnest($1::uuid[], $2::date[])
            ON CONFLICT DO NOTHING RETURNING user_id
            """,
            [u for u, _ in days],
            [day for _, day in days],
        )
        for r in rows:
            user_counts.setdefault(r["user_id"], Counter())["active_days"] += 1

    new_character_users: Counter = Counter()
    if d.user_characters:
        keys = sorted(d.user_characters, key=lambda k: (k[0].int, k[1]))
        rows = await conn.fetch(
            """
            INSERT INTO user_characters AS uc (user_id, character, messages)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[])
            ON CONFLICT (user_id, character) DO UPDATE SET messages = uc.messages + EXCLUDED.messages
            RETURNING user_id, character, (xmax = 0) AS inserted
            """,
            [u for u, _ in keys],
            [c for _, c in keys],
            [d.user_characters[k] for k in keys],
        )
        for r in rows:
            if r["inserted"]:
                new_character_users[r["character"]] += 1
                if r["user_id"] in d.users:  # an erased user's row counts for the character only
                    user_counts.setdefault(r["user_id"], Counter())["characters"] += 1

    platform = Counter(d.platform)
    if d.activity:
        keys = sorted(d.activity, key=lambda k: (k[0], k[1], k[2].int))
        rows = await conn.fetch(
            """
            INSERT INTO activity_buckets (granularity, bucket, user_id)
            SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::uuid[])
            ON CONFLICT DO NOTHING RETURNING granularity, bucket
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
        )
        for r in rows:
            platform[(r["granularity"], r["bucket"], "active_users")] += 1

    if platform:
        keys = sorted(platform)
        await conn.execute(
            """
            INSERT INTO platform_metrics AS p (granularity, bucket, metric, value)
            SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bigint[])
            ON CONFLICT (granularity, metric, bucket) DO UPDATE SET value = p.value + EXCLUDED.value
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [platform[k] for k in keys],
        )

    if user_counts or d.user_first:
        users = sorted(set(user_counts) | set(d.user_first), key=uuid_order)
        columns = (*USER_COUNTERS, "characters", "active_days")
        arrays = [[user_counts.get(u, _NONE)[c] for u in users] for c in columns]
        rows = await conn.fetch(
            """
            INSERT INTO user_analytics AS ua (user_id, events, messages, conversations, stories, images, upgrades,
                                              characters, active_days, first_seen_at, last_active_at)
            SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                                 $7::bigint[], $8::bigint[], $9::bigint[], $10::timestamptz[], $11::timestamptz[])
            ON CONFLICT (user_id) DO UPDATE SET
                events = ua.events + EXCLUDED.events,
                messages = ua.messages + EXCLUDED.messages,
                conversations = ua.conversations + EXCLUDED.conversations,
                stories = ua.stories + EXCLUDED.stories,
                images = ua.images + EXCLUDED.images,
                upgrades = ua.upgrades + EXCLUDED.upgrades,
                characters = ua.characters + EXCLUDED.characters,
                active_days = ua.active_days + EXCLUDED.active_days,
                first_seen_at = LEAST(ua.first_seen_at, EXCLUDED.first_seen_at),
                last_active_at = GREATEST(ua.last_active_at, EXCLUDED.last_active_at)
            RETURNING user_id, messages, (xmax = 0) AS inserted
            """,
            users,
            *arrays,
            [d.user_first.get(u) for u in users],
            [d.user_last.get(u) for u in users],
        )
        # The messages histogram (ranks) follows: a new user enters at their count, a user
        # whose count moved leaves the old value for the new one.
        moved: Counter = Counter()
        for r in rows:
            gained = user_counts.get(r["user_id"], _NONE)["messages"]
            if r["inserted"]:
                moved[r["messages"]] += 1
            elif gained:
                moved[r["messages"] - gained] -= 1
                moved[r["messages"]] += 1
        await ranks_repo.shift(conn, "messages", moved)

    if write_boards:
        await ranks_repo.add_scores(conn, d.board_messages)

    if d.conversations:
        ids = sorted(d.conversations, key=uuid_order)
        rows = [d.conversations[i] for i in ids]
        await conn.execute(
            """
            INSERT INTO conversation_stats AS cs (conversation_id, user_id, character, messages, first_message_at,
                                                  last_message_at)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[])
            ON CONFLICT (conversation_id) DO UPDATE SET
                user_id = COALESCE(cs.user_id, EXCLUDED.user_id),
                character = LEAST(cs.character, EXCLUDED.character),
                messages = cs.messages + EXCLUDED.messages,
                first_message_at = LEAST(cs.first_message_at, EXCLUDED.first_message_at),
                last_message_at = GREATEST(cs.last_message_at, EXCLUDED.last_message_at)
            """,
            ids,
            [r["user_id"] for r in rows],
            [r["character"] for r in rows],
            [r["messages"] for r in rows],
            [r["first"] for r in rows],
            [r["last"] for r in rows],
        )

    characters = sorted(set(d.character_messages) | set(d.character_conversations) | set(new_character_users))
    if characters:
        await conn.execute(
            """
            INSERT INTO character_stats AS c (character, messages, conversations, users)
            SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
            ON CONFLICT (character) DO UPDATE SET
                messages = c.messages + EXCLUDED.messages,
                conversations = c.conversations + EXCLUDED.conversations,
                users = c.users + EXCLUDED.users
            """,
            characters,
            [d.character_messages[c] for c in characters],
            [d.character_conversations[c] for c in characters],
            [new_character_users[c] for c in characters],
        )

    if d.character_daily:
        keys = sorted(d.character_daily)
        await conn.execute(
            """
            INSERT INTO character_daily AS cd (day, character, messages)
            SELECT * FROM unnest($1::date[], $2::text[], $3::bigint[])
            ON CONFLICT (day, character) DO UPDATE SET messages = cd.messages + EXCLUDED.messages
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [d.character_daily[k] for k in keys],
        )


async def erase_user(conn: asyncpg.Connection, user_id: uuid.UUID, pseudonym: uuid.UUID) -> dict[str, int]:
    """Per-user rollups of the user are deleted (and the user leaves the messages histogram);
    rows that also make platform and character totals (who was active when, who talked to which
    character) move to the pseudonym, as the raw events do, so a replay still gives the same
    totals."""
    messages = await conn.fetchval("SELECT messages FROM user_analytics WHERE user_id = $1", user_id)
    if messages is not None:
        await ranks_repo.shift(conn, "messages", Counter({messages: -1}))
    counts = {"leaderboard_scores": await ranks_repo.erase_scores(conn, user_id)}
    for table in ("user_analytics", "user_active_days", "conversation_stats"):
        status = await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
        counts[table] = int(status.split()[-1])
    for table in ("user_characters", "activity_buckets"):
        status = await conn.execute(f"UPDATE {table} SET user_id = $2 WHERE user_id = $1", user_id, pseudonym)
        counts[table] = int(status.split()[-1])
    return counts


async def user_row(conn, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM user_analytics WHERE user_id = $1", user_id)


async def user_rows(conn, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
    rows = await conn.fetch("SELECT * FROM user_analytics WHERE user_id = ANY($1::uuid[])", user_ids)
    return {r["user_id"]: r for r in rows}


# -- platform reads (rollups only: never the raw events) ----------------------------------------------


async def platform_rows(
    conn, granularity: str, metrics: list[str], start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """(metric, bucket, value) of `metrics` in [start, end): one primary-key range per metric."""
    return await conn.fetch(
        "SELECT metric, bucket, value FROM platform_metrics"
        " WHERE granularity = $1 AND metric = ANY($2::text[]) AND bucket >= $3 AND bucket < $4",
        granularity,
        metrics,
        start,
        end,
    )


async def platform_totals_before(conn, metrics: list[str], end: datetime) -> dict[str, int]:
    """Each metric's sum over every day before `end` (a few hundred day rows per metric)."""
    rows = await conn.fetch(
        "SELECT metric, COALESCE(sum(value), 0) AS total FROM platform_metrics"
        " WHERE granularity = 'day' AND metric = ANY($1::text[]) AND bucket < $2 GROUP BY metric",
        metrics,
        end,
    )
    found = {r["metric"]: int(r["total"]) for r in rows}
    return {m: found.get(m, 0) for m in metrics}


async def distinct_active(conn, start: datetime, end: datetime) -> int:
    """Users active on any UTC day in [start, end) (WAU, MAU): the day rows of the window, one
    per active user and day, not the raw events."""
    return await conn.fetchval(
        "SELECT count(DISTINCT user_id) FROM activity_buckets"
        " WHERE granularity = 'day' AND bucket >= $1 AND bucket < $2",
        start,
        end,
    )


async def newcomers(conn, day: datetime) -> tuple[int, int]:
    """Users active on UTC day `day` (its day rows of activity_buckets) who were not active on any
    of the 6 days before it, and on any of the 29 days before it. Per user of that day, one
    backward probe of idx_activity_buckets_user_day for their latest earlier active day: a cost
    of the day's users, not of the month's day rows."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE p.prev IS NULL OR p.prev < $1::timestamptz - interval '6 days') AS week,
               count(*) FILTER (WHERE p.prev IS NULL OR p.prev < $1::timestamptz - interval '29 days') AS month
          FROM activity_buckets t
         CROSS JOIN LATERAL (
              SELECT max(o.bucket) AS prev FROM activity_buckets o
               WHERE o.user_id = t.user_id AND o.granularity = 'day' AND o.bucket < $1::timestamptz
          ) p
         WHERE t.granularity = 'day' AND t.bucket = $1::timestamptz
        """,
        day,
    )
    return int(row["week"]), int(row["month"])
