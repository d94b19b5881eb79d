"""SQL for the raw events: partitions, the batched insert, erasure, reading back for a replay."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import date

import asyncpg
import orjson

RAW_COLUMNS = ("event_id", "event_type", "user_id", "occurred_at", "source", "data")


async def ensure_partitions(conn: asyncpg.Connection, months: Iterable[date], known: set[date]) -> None:
    """Create the monthly partitions `months` need; `known` (the caller's cache) skips a round
    trip for months already seen by this process."""
    missing = sorted({m for m in months} - known)
    if not missing:
        return
    await conn.execute("SELECT analytics_ensure_partition(m) FROM unnest($1::date[]) AS m", missing)
    known.update(missing)


async def insert_raw(conn: asyncpg.Connection, rows: list[tuple], shared_lock: int) -> None:
    """One multi-row insert for a whole batch (arrays through unnest: one round trip, one plan),
    routed to the month partitions by PostgreSQL. Rows are in RAW_COLUMNS order. The same
    statement first takes `shared_lock` (the rollups' lock, shared) for the transaction: one
    round trip fewer per batch."""
    await conn.execute(
        """
        INSERT INTO analytics_events (event_id, event_type, user_id, occurred_at, source, data)
        SELECT i, t, u, o, s, d::jsonb
          FROM (SELECT pg_advisory_xact_lock_shared($7)) AS lock,
               unnest($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[], $5::text[], $6::text[])
               AS r(i, t, u, o, s, d)
        """,
        *[list(col) for col in zip(*rows, strict=True)],
        shared_lock,
    )


def raw_row(
    event_id: str, event_type: str, user_id: uuid.UUID | None, occurred_at, source: str | None, data: dict
) -> tuple:
    return (event_id, event_type, user_id, occurred_at, source, orjson.dumps(data).decode())


async def erase_user(conn: asyncpg.Connection, user_id: uuid.UUID, pseudonym: uuid.UUID, kept_keys: list[str]) -> int:
    """The user's raw events go under `pseudonym` (a random id that links to nobody), keep only
    the keys platform totals need, and stop feeding per-user rollups."""
    status = await conn.execute(
        """
        UPDATE analytics_events
           SET user_id = $2, erased = true,
               data = COALESCE((SELECT jsonb_object_agg(key, value) FROM jsonb_each(data) WHERE key = ANY($3::text[])),
                               '{}'::jsonb)
         WHERE user_id = $1
        """,
        user_id,
        pseudonym,
        kept_keys,
    )
    return int(status.split()[-1])


async def iterate_raw(conn: asyncpg.Connection, chunk: int = 5000) -> AsyncIterator[list[asyncpg.Record]]:
    """Every raw event, in chunks (a server-side cursor; call inside a transaction). Any order
    will do: the rollups are sums, sets and min/max."""
    cursor = await conn.cursor("SELECT event_type, user_id, occurred_at, data, erased FROM analytics_events")
    while True:
        rows = await cursor.fetch(chunk)
        if not rows:
            return
        yield rows
