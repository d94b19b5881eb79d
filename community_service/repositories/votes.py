"""Votes: one per user and target; the target's counters move in the same transaction."""

from __future__ import annotations

# The votable tables and what their row must satisfy to be voted on.
TABLES = {
    "story": ("stories", "status = 'published'"),
    "scenario": ("scenarios", "status = 'active'"),
    "character": ("characters", "status = 'active'"),
}


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
