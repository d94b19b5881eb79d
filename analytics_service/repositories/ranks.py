"""SQL for ranks: per-metric histograms of users by value, with 1,024-value blocks on top
(migration 002). A rank costs two bounded range scans, never a sort of the users."""

from __future__ import annotations

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


async def rank(conn, metric: str, value: int) -> tuple[int, int]:
    """(users with a higher value, users in all)."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT COALESCE(sum(users), 0) FROM metric_histogram_blocks
                 WHERE metric = $1 AND block > ($2::bigint >> 10))
             + (SELECT COALESCE(sum(users), 0) FROM metric_histogram
                 WHERE metric = $1 AND value > $2 AND value < ((($2::bigint >> 10) + 1) << 10)) AS above,
               (SELECT COALESCE(sum(users), 0) FROM metric_histogram_blocks WHERE metric = $1) AS total
        """,
        metric,
        value,
    )
    return int(row["above"]), int(row["total"])
