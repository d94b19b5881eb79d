"""Reports and the audit of moderators' actions."""

from __future__ import annotations


async def report(conn, target_type: str, target_id, reporter_id: str, reason: str):
    return await conn.fetchrow(
        "INSERT INTO reports (target_type, target_id, reporter_id, reason) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING *",
        target_type,
        target_id,
        reporter_id,
        reason,
    )


async def queue(conn, limit: int):
    """Open reports grouped by target, oldest first."""
    return await conn.fetch(
        "SELECT target_type, target_id, count(*) AS reports, min(created_at) AS first_reported_at,"
        " array_agg(reason ORDER BY created_at) AS reasons FROM reports WHERE status = 'open'"
        " GROUP BY target_type, target_id ORDER BY min(created_at), target_id LIMIT $1",
        limit,
    )


async def resolve(conn, target_type: str, target_id, status: str) -> None:
    await conn.execute(
        "UPDATE reports SET status = $3, resolved_at = now() WHERE target_type = $1 AND target_id = $2"
        " AND status = 'open'",
        target_type,
        target_id,
        status,
    )


async def audit(conn, target_type: str, target_id, action: str, actor_id: str, actor_role: str, note: str | None):
    return await conn.fetchrow(
        "INSERT INTO moderation_actions (target_type, target_id, action, actor_id, actor_role, note)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        target_type,
        target_id,
        action,
        actor_id,
        actor_role,
        note,
    )


async def set_status(conn, target_type: str, target_id, status: str) -> bool:
    table = {"story": "stories", "scenario": "scenarios", "character": "characters"}[target_type]
    updated = await conn.fetchval(f"UPDATE {table} SET status = $2 WHERE id = $1 RETURNING true", target_id, status)
    return updated is not None
