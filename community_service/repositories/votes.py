"""Votes: one per user and target; the target's counters move in the same transaction."""

from __future__ import annotations

# The votable tables and what their row must satisfy to be voted on.
TABLES = {
    "story": ("stories", "status = 'published'"),
    "scenario": ("scenarios", "status = 'active'"),
    "character": ("characters", "status = 'active'"),
}


# Who may vote on a row of each table (stories: published ones; the others: active, public or the
# voter's own), and the stored hot value a vote moves, if any.
_VISIBLE = {
    "story": "status = 'published'",
    "scenario": "status = 'active' AND (visibility = 'public' OR owner_id = $2)",
    "character": "status = 'active' AND (visibility = 'public' OR owner_id = $2)",
}
_HOT_FROM = {"story": "published_at", "scenario": "created_at", "character": None}

# Set (±1): the upsert inserts (previous 0), or flips the other value (previous -value), or, when
# the vote is already this value, locks the row and returns nothing (no change). Remove (0): the
# delete returns the value it removed. ON CONFLICT and DELETE both wait for a concurrent vote of
# the same user and act on the row it committed, so the delta is always the right one.
_SET = """
    INSERT INTO votes (target_type, target_id, user_id, value)
    SELECT $4, id, $2, $3 FROM target
    ON CONFLICT (target_type, target_id, user_id)
        DO UPDATE SET value = EXCLUDED.value, updated_at = now() WHERE votes.value <> EXCLUDED.value
    RETURNING CASE WHEN xmax = 0 THEN 0 ELSE -value END AS previous"""
_REMOVE = """
    DELETE FROM votes WHERE target_type = $4 AND target_id = (SELECT id FROM target) AND user_id = $2
    RETURNING value AS previous"""


def _cast_sql(target_type: str, removing: bool, with_event: bool) -> str:
    table, _ = TABLES[target_type]
    hot_from = _HOT_FROM[target_type]
    new_score = "t.score + d.d_up - d.d_down"
    hot = f", hot = community_hot({new_score}, t.{hot_from})" if hot_from else ""
    # $5/$6: the event's id and its JSON without the counters, which only this statement knows.
    event = (
        """, event AS (
    INSERT INTO outbox_events (event_id, event_type, body)
    SELECT $5::uuid, $6::text::jsonb ->> 'event_type', convert_to(($6::text::jsonb || jsonb_build_object('data',
        ($6::text::jsonb -> 'data') || jsonb_build_object('author_id', target.author_id, 'previous', moved.previous,
                                                    'score', moved.score, 'up', moved.up, 'down', moved.down))
    )::text, 'UTF8') FROM moved, target
)"""
        if with_event
        else ""
    )
    return f"""
WITH target AS (
    SELECT * FROM {table} WHERE id = $1 AND {_VISIBLE[target_type]}
), vote AS ({_REMOVE if removing else _SET}
), moved AS (
    UPDATE {table} t SET up = t.up + d.d_up, down = t.down + d.d_down, score = {new_score}{hot}
      FROM (SELECT previous, ($3 = 1)::int - (previous = 1)::int AS d_up,
                   ($3 = -1)::int - (previous = -1)::int AS d_down FROM vote) d
     WHERE t.id = $1
    RETURNING t.up, t.down, t.score, d.previous
){event}
SELECT target.up, target.down, target.score,
       moved.previous, moved.up AS new_up, moved.down AS new_down, moved.score AS new_score
  FROM target LEFT JOIN moved ON true"""


async def cast(conn, target_type: str, target_id, user_id: str, value: int, event=None):
    """The caller's vote (value ±1, or 0 to remove it), the target's counters and stored hot moved
    by the delta, and `event` (its data completed with previous/score/up/down) in the outbox: one
    statement, so one round trip holding the target's row lock only for itself. None when the
    target is not visible to the voter; `previous` is None when nothing changed."""
    sql = _cast_sql(target_type, removing=value == 0, with_event=event is not None)
    args = [target_id, user_id, value, target_type]
    if event is not None:
        args += [event.event_id, event.to_bytes().decode()]
    return await conn.fetchrow(sql, *args)


async def previous_value(conn, target_type: str, target_id, user_id: str) -> int:
    """The user's current vote (0 for none), locked until the transaction ends."""
    return (
        await conn.fetchval(
            "SELECT value FROM votes WHERE target_type = $1 AND target_id = $2 AND user_id = $3 FOR UPDATE",
            target_type,
            target_id,
            user_id,
        )
        or 0
    )


async def insert_new(conn, target_type: str, target_id, user_id: str, value: int) -> bool:
    """True when this is the user's first vote on the target; a concurrent first vote by the same
    user makes this wait for it and then answer False."""
    return (
        await conn.fetchval(
            "INSERT INTO votes (target_type, target_id, user_id, value) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING true",
            target_type,
            target_id,
            user_id,
            value,
        )
        is not None
    )


async def change(conn, target_type: str, target_id, user_id: str, value: int) -> None:
    await conn.execute(
        "UPDATE votes SET value = $4, updated_at = now() WHERE target_type = $1 AND target_id = $2 AND user_id = $3",
        target_type,
        target_id,
        user_id,
        value,
    )


async def delete(conn, target_type: str, target_id, user_id: str) -> None:
    await conn.execute(
        "DELETE FROM votes WHERE target_type = $1 AND target_id = $2 AND user_id = $3",
        target_type,
        target_id,
        user_id,
    )


async def move_counts(conn, target_type: str, target_id, d_up: int, d_down: int):
    """Relative increments: exact whatever else commits meanwhile. Returns the new counters."""
    table, _ = TABLES[target_type]
    return await conn.fetchrow(
        f"UPDATE {table} SET up = up + $2, down = down + $3, score = score + $2 - $3 WHERE id = $1"
        " RETURNING id, up, down, score",
        target_id,
        d_up,
        d_down,
    )


async def set_hot(conn, target_type: str, target_id, hot: float) -> None:
    table, _ = TABLES[target_type]
    await conn.execute(f"UPDATE {table} SET hot = $2 WHERE id = $1", target_id, hot)


async def target(conn, target_type: str, target_id):
    table, _ = TABLES[target_type]
    return await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1", target_id)


async def mine(conn, user_id: str, target_type: str, ids: list) -> dict:
    rows = await conn.fetch(
        "SELECT target_id, value FROM votes WHERE user_id = $1 AND target_type = $2 AND target_id = ANY($3::uuid[])",
        user_id,
        target_type,
        ids,
    )
    return {r["target_id"]: r["value"] for r in rows}


async def delete_by_user(conn, user_id: str) -> list:
    """A deleted user's votes, returned so their targets' counters can be moved back."""
    return await conn.fetch("DELETE FROM votes WHERE user_id = $1 RETURNING target_type, target_id, value", user_id)


async def delete_for_target(conn, target_type: str, target_id) -> None:
    await conn.execute("DELETE FROM votes WHERE target_type = $1 AND target_id = $2", target_type, target_id)
