"""SQL for ranks: per-metric histograms of users by value, with 1,024-value blocks on top
(migration 002). A rank costs two bounded range scans, never a sort of the users."""

from __future__ import annotations

import uuid
from collections import Counter

import asyncpg

BLOCK_BITS = 10


async def shift(conn: asyncpg.Connection, metric: str, changes: Counter) -> None:
    """Apply `changes` (value -> users gained, negative for users who left that value), values in
    ascending order (two writers lock the rows they share in the same order)."""
    values = sorted(v for v, d in changes.items() if d)
    if not values:
        return
    await conn.execute(
        """
        WITH v AS (SELECT * FROM unnest($2::bigint[], $3::bigint[]) AS t(value, d)),
        fine AS (
            INSERT INTO metric_histogram AS h (metric, value, users)
            SELECT $1, value, d FROM v ORDER BY value
            ON CONFLICT (metric, value) DO UPDATE SET users = h.users + EXCLUDED.users
        )
        INSERT INTO metric_histogram_blocks AS b (metric, block, users)
        SELECT $1, value >> 10, sum(d) FROM v GROUP BY 2 ORDER BY 2
        ON CONFLICT (metric, block) DO UPDATE SET users = b.users + EXCLUDED.users
        """,
        metric,
        values,
        [changes[v] for v in values],
    )


async def shift_many(conn: asyncpg.Connection, changes: dict[str, Counter]) -> None:
    """`shift` for several metrics (the per-period boards) in one statement, keys in order."""
    keys = sorted((m, v) for m, c in changes.items() for v, d in c.items() if d)
    if not keys:
        return
    await conn.execute(
        """
        WITH v AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS t(metric, value, d)),
        fine AS (
            INSERT INTO metric_histogram AS h (metric, value, users)
            SELECT metric, value, d FROM v ORDER BY metric, value
            ON CONFLICT (metric, value) DO UPDATE SET users = h.users + EXCLUDED.users
        )
        INSERT INTO metric_histogram_blocks AS b (metric, block, users)
        SELECT metric, value >> 10, sum(d) FROM v GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (metric, block) DO UPDATE SET users = b.users + EXCLUDED.users
        """,
        [m for m, _ in keys],
        [v for _, v in keys],
        [changes[m][v] for m, v in keys],
    )


async def add_scores(conn: asyncpg.Connection, gains: dict[tuple[str, uuid.UUID], int]) -> None:
    """Add (board, user) -> gain to leaderboard_scores and move the boards' histograms (a new
    row enters at its value, a row that moved leaves the old value)."""
    keys = sorted((k for k, g in gains.items() if g), key=lambda k: (k[0], k[1].int))
    if not keys:
        return
    rows = await conn.fetch(
        """
        INSERT INTO leaderboard_scores AS s (board, user_id, value)
        SELECT * FROM unnest($1::text[], $2::uuid[], $3::bigint[])
        ON CONFLICT (board, user_id) DO UPDATE SET value = s.value + EXCLUDED.value
        RETURNING board, user_id, value, (xmax = 0) AS inserted
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [gains[k] for k in keys],
    )
    moved: dict[str, Counter] = {}
    for r in rows:
        c = moved.setdefault(r["board"], Counter())
        if not r["inserted"]:
            c[r["value"] - gains[(r["board"], r["user_id"])]] -= 1
        c[r["value"]] += 1
    await shift_many(conn, moved)


async def erase_scores(conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
    rows = await conn.fetch("DELETE FROM leaderboard_scores WHERE user_id = $1 RETURNING board, value", user_id)
    moved: dict[str, Counter] = {}
    for r in rows:
        moved.setdefault(r["board"], Counter())[r["value"]] -= 1
    await shift_many(conn, moved)
    return len(rows)


async def top(conn, metric: str, board: str | None, limit: int) -> list[asyncpg.Record]:
    """(user_id, value) of the top `limit` users with a value above 0: an index range scan."""
    if board is not None:
        return await conn.fetch(
            "SELECT user_id, value FROM leaderboard_scores WHERE board = $1 AND value > 0"
            " ORDER BY value DESC, user_id LIMIT $2",
            board,
            limit,
        )
    table, column = ALL_TIME[metric]
    return await conn.fetch(
        f"SELECT user_id, {column} AS value FROM {table} WHERE {column} > 0 ORDER BY {column} DESC, user_id LIMIT $1",
        limit,
    )


async def value_of(conn, metric: str, board: str | None, user_id: uuid.UUID) -> int | None:
    if board is not None:
        return await conn.fetchval(
            "SELECT value FROM leaderboard_scores WHERE board = $1 AND user_id = $2", board, user_id
        )
    table, column = ALL_TIME[metric]
    return await conn.fetchval(f"SELECT {column} FROM {table} WHERE user_id = $1", user_id)


# All-time boards: where the value lives (its histogram is named after the metric).
ALL_TIME = {
    "messages": ("user_analytics", "messages"),
    "xp": ("user_progress", "xp"),
    "streak": ("user_progress", "streak_longest"),
}


async def rebuild(conn: asyncpg.Connection, metric: str, source_sql: str) -> None:
    """Replace a histogram by `source_sql`'s (value, users) rows (a replay)."""
    await conn.execute("DELETE FROM metric_histogram WHERE metric = $1", metric)
    await conn.execute("DELETE FROM metric_histogram_blocks WHERE metric = $1", metric)
    await conn.execute(
        f"INSERT INTO metric_histogram (metric, value, users) SELECT $1, v, n FROM ({source_sql}) AS s(v, n)", metric
    )
    await conn.execute(
        "INSERT INTO metric_histogram_blocks (metric, block, users)"
        " SELECT metric, value >> 10, sum(users) FROM metric_histogram WHERE metric = $1 GROUP BY 1, 2",
        metric,
    )


def rank_sql(metric: str, value: str) -> tuple[str, str]:
    """SQL expressions of (users with a value above `value`, users in all) for SQL expressions
    `metric` and `value`: the blocks above the value's block plus the values above it inside its
    block, two short index range scans. progress.profile_row puts them in its statement."""
    above = f"""((SELECT COALESCE(sum(users), 0) FROM metric_histogram_blocks
                  WHERE metric = {metric} AND block > ({value} >> 10))
               + (SELECT COALESCE(sum(users), 0) FROM metric_histogram
                  WHERE metric = {metric} AND value > {value} AND value < ((({value} >> 10) + 1) << 10)))"""
    total = f"(SELECT COALESCE(sum(users), 0) FROM metric_histogram_blocks WHERE metric = {metric})"
    return above, total


async def rank(conn, metric: str, value: int) -> tuple[int, int]:
    """(users with a higher value, users in all)."""
    above, total = rank_sql("$1", "$2::bigint")
    row = await conn.fetchrow(f"SELECT {above} AS above, {total} AS total", metric, value)
    return int(row["above"]), int(row["total"])
