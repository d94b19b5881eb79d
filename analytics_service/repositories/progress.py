"""SQL for progression: streak/XP rows, achievements, flip tickets."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, datetime

import asyncpg

from analytics_service.repositories import ranks as ranks_repo
from analytics_service.rules import DAILY_ACTION_XP_CAP, uuid_order


async def lock(conn: asyncpg.Connection, user_ids: list[uuid.UUID]) -> tuple[list[asyncpg.Record], set]:
    """The users' progress rows, created if missing, locked for this transaction in user order
    (so a consumer batch and a check-in never wait on each other in a cycle); and the ids of
    the rows created now. One round trip: existing rows are locked with FOR UPDATE (no new row
    version, unlike a no-op update), missing ones inserted. A row another transaction inserted
    after this statement's snapshot is not returned (the insert skips it): asked for again."""
    wanted = sorted(set(user_ids), key=uuid_order)
    rows: list[asyncpg.Record] = []
    while wanted:
        found = await conn.fetch(
            """
            WITH locked AS (
                SELECT p.*, false AS created FROM user_progress p
                 WHERE p.user_id = ANY($1::uuid[]) ORDER BY p.user_id FOR UPDATE
            ),
            created AS (
                INSERT INTO user_progress AS p (user_id)
                SELECT u FROM unnest($1::uuid[]) AS u WHERE u NOT IN (SELECT user_id FROM locked) ORDER BY u
                ON CONFLICT (user_id) DO NOTHING
                RETURNING p.*, true AS created
            )
            SELECT * FROM locked UNION ALL SELECT * FROM created
            """,
            wanted,
        )
        rows.extend(found)
        seen = {r["user_id"] for r in found}
        wanted = [u for u in wanted if u not in seen]
    return sorted(rows, key=lambda r: r["user_id"].int), {r["user_id"] for r in rows if r["created"]}


async def save(conn: asyncpg.Connection, rows: list[dict]) -> dict[uuid.UUID, tuple[int, int]]:
    """Write the rows' streak and time zone, add their XP and set the level; user -> (xp, level)
    after. Each row has `action_xp` (added up to what is left of DAILY_ACTION_XP_CAP on its
    `xp_day`, the user's local day) and `reward_xp` (added whole). The cap is applied here, on the
    row being updated (an UPDATE re-reads a row another transaction changed before applying it),
    so no two transactions can both spend the same day's allowance."""
    if not rows:
        return {}
    cols = (
        "user_id",
        "timezone",
        "streak_current",
        "streak_longest",
        "streak_started_on",
        "last_active_day",
        "last_checkin_day",
        "action_xp",
        "reward_xp",
        "xp_day",
    )
    saved = await conn.fetch(
        f"""
        UPDATE user_progress p SET timezone = v.timezone,
               xp = p.xp + v.reward_xp + {_GRANTED},
               level = GREATEST(p.level, analytics_level_for_xp(p.xp + v.reward_xp + {_GRANTED})),
               xp_today = CASE WHEN v.action_xp > 0 THEN {_SPENT} + {_GRANTED} ELSE p.xp_today END,
               xp_day = CASE WHEN v.action_xp > 0 THEN GREATEST(p.xp_day, v.xp_day) ELSE p.xp_day END,
               streak_current = v.streak_current, streak_longest = v.streak_longest,
               streak_started_on = v.streak_started_on, last_active_day = v.last_active_day,
               last_checkin_day = v.last_checkin_day, updated_at = now()
          FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::date[], $6::date[], $7::date[],
                      $8::bigint[], $9::bigint[], $10::date[])
               AS v(user_id, timezone, streak_current, streak_longest, streak_started_on, last_active_day,
                    last_checkin_day, action_xp, reward_xp, xp_day)
         WHERE p.user_id = v.user_id
        RETURNING p.user_id, p.xp, p.level
        """,
        *[[r[c] for r in rows] for c in cols],
        DAILY_ACTION_XP_CAP,
    )
    return {r["user_id"]: (r["xp"], r["level"]) for r in saved}


# The action XP already granted on the row's day (0 on a later day; a move west to an earlier day
# spends the same allowance), and what this update grants.
_SPENT = "(CASE WHEN p.xp_day >= v.xp_day THEN p.xp_today ELSE 0 END)"
_GRANTED = f"LEAST(v.action_xp, GREATEST(0, $11::int - {_SPENT}))"


async def get(conn, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM user_progress WHERE user_id = $1", user_id)


# The value of each achievement metric: a per-user rollup, or the longest streak (passed in).
_METRIC_VALUE = """
    CASE d.metric
        WHEN 'messages' THEN COALESCE(ua.messages, 0)
        WHEN 'conversations' THEN COALESCE(ua.conversations, 0)
        WHEN 'characters' THEN COALESCE(ua.characters, 0)
        WHEN 'stories' THEN COALESCE(ua.stories, 0)
        WHEN 'images' THEN COALESCE(ua.images, 0)
        WHEN 'upgrades' THEN COALESCE(ua.upgrades, 0)
        WHEN 'active_days' THEN COALESCE(ua.active_days, 0)
        WHEN 'streak' THEN v.streak
    END
"""


async def unlock_due(conn, user_ids: list[uuid.UUID], longest_streaks: list[int], at: datetime) -> list[asyncpg.Record]:
    """Unlock every active definition whose metric reached its threshold for these users, once
    (primary key user + code); the rows unlocked now with the definition's name and XP. One
    statement: the users' rollups, the definitions and the insert."""
    if not user_ids:
        return []
    return await conn.fetch(
        f"""
        WITH v AS (SELECT * FROM unnest($1::uuid[], $2::bigint[]) AS t(user_id, streak)),
        due AS (
            SELECT v.user_id, d.code
              FROM v
              LEFT JOIN user_analytics ua ON ua.user_id = v.user_id
             CROSS JOIN achievement_definitions d
             WHERE d.active AND {_METRIC_VALUE} >= d.threshold
               AND NOT EXISTS (SELECT 1 FROM user_achievements x WHERE x.user_id = v.user_id AND x.code = d.code)
             ORDER BY v.user_id, d.code
        ),
        ins AS (
            INSERT INTO user_achievements (user_id, code, unlocked_at)
            SELECT user_id, code, $3 FROM due
            ON CONFLICT DO NOTHING RETURNING user_id, code, unlocked_at
        )
        SELECT ins.user_id, ins.code, ins.unlocked_at, d.name, d.xp_reward
          FROM ins JOIN achievement_definitions d ON d.code = ins.code
         ORDER BY ins.user_id, d.sort_order, ins.code
        """,
        user_ids,
        longest_streaks,
        at,
    )


async def insert_tickets(conn, grants: list[tuple[uuid.UUID, str, str]], at: datetime) -> list[asyncpg.Record]:
    """(user, reason, grant_key) -> the tickets actually created (a key already granted is not)."""
    if not grants:
        return []
    grants = sorted(grants, key=lambda g: (g[0].int, *g[1:]))
    return await conn.fetch(
        """
        INSERT INTO flip_tickets (user_id, reason, grant_key, granted_at)
        SELECT u, r, k, $4 FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(u, r, k)
        ON CONFLICT (user_id, grant_key) DO NOTHING
        RETURNING *
        """,
        [g[0] for g in grants],
        [g[1] for g in grants],
        [g[2] for g in grants],
        at,
    )


async def achievements_of(conn, user_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT d.code, d.name, d.description, d.metric, d.threshold, d.xp_reward, ua.unlocked_at
          FROM achievement_definitions d
          LEFT JOIN user_achievements ua ON ua.code = d.code AND ua.user_id = $1
         WHERE d.active OR ua.user_id IS NOT NULL
         ORDER BY d.sort_order, d.code
        """,
        user_id,
    )


async def profile_row(conn, user_id: str, window_start: date) -> asyncpg.Record:
    """Everything /analytics/me shows, in one statement: the user's rollup (has_analytics false
    when none) and progress row (user_id null when none), achievements unlocked of the active
    ones, the stored tier, the active days since `window_start` and both ranks (histograms)."""
    messages_above, messages_total = ranks_repo.rank_sql("'messages'", "ua.messages")
    xp_above, xp_total = ranks_repo.rank_sql("'xp'", "up.xp")
    return await conn.fetchrow(
        f"""
        SELECT ua.user_id IS NOT NULL AS has_analytics, ua.messages, ua.conversations, ua.characters, ua.stories,
               ua.images, ua.active_days, ua.first_seen_at, ua.last_active_at,
               up.user_id, up.timezone, up.xp, up.level, up.streak_current, up.streak_longest, up.streak_started_on,
               up.last_active_day, up.last_checkin_day,
               (SELECT count(*) FROM user_achievements WHERE user_id = $1) AS unlocked,
               (SELECT count(*) FROM achievement_definitions WHERE active) AS achievements_total,
               (SELECT tier FROM user_engagement WHERE user_id = $1) AS tier,
               (SELECT count(*) FROM user_active_days WHERE user_id = $1 AND day >= $2) AS active_days_window,
               {messages_above} AS messages_above, {messages_total} AS messages_total,
               {xp_above} AS xp_above, {xp_total} AS xp_total
          FROM (SELECT $1::uuid AS id) AS me
          LEFT JOIN user_analytics ua ON ua.user_id = me.id
          LEFT JOIN user_progress up ON up.user_id = me.id
        """,
        user_id,
        window_start,
    )


async def list_tickets(
    conn, user_id: str, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[asyncpg.Record]:
    """Newest first; `after` is the (granted_at, id) of the last ticket of the previous page."""
    if after is None:
        return await conn.fetch(
            "SELECT * FROM flip_tickets WHERE user_id = $1 ORDER BY granted_at DESC, id DESC LIMIT $2", user_id, limit
        )
    return await conn.fetch(
        """
        SELECT * FROM flip_tickets WHERE user_id = $1 AND (granted_at, id) < ($3, $4)
         ORDER BY granted_at DESC, id DESC LIMIT $2
        """,
        user_id,
        limit,
        after[0],
        after[1],
    )


async def erase_user(conn, user_id: uuid.UUID) -> dict[str, int]:
    row = await conn.fetchrow("SELECT xp, streak_longest FROM user_progress WHERE user_id = $1", user_id)
    if row is not None:
        await ranks_repo.shift(conn, "xp", Counter({row["xp"]: -1}))
        await ranks_repo.shift(conn, "streak", Counter({row["streak_longest"]: -1}))
    counts = {}
    for table in ("user_progress", "user_achievements", "flip_tickets", "user_engagement"):
        status = await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
        counts[table] = int(status.split()[-1])
    return counts


async def lock_ticket(conn, ticket_id: uuid.UUID, user_id: uuid.UUID) -> asyncpg.Record | None:
    """The user's ticket, locked for this transaction (a concurrent flip of it waits here)."""
    return await conn.fetchrow(
        "SELECT * FROM flip_tickets WHERE id = $1 AND user_id = $2 FOR UPDATE", ticket_id, user_id
    )


async def flip_rewards(conn) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT code, kind, amount, weight FROM flip_rewards WHERE active AND weight > 0 ORDER BY code"
    )


async def reveal(conn, ticket_id: uuid.UUID, kind: str, amount: int, at: datetime) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE flip_tickets SET flipped_at = $2, reward_kind = $3, reward_amount = $4 WHERE id = $1 RETURNING *",
        ticket_id,
        at,
        kind,
        amount,
    )
