"""Reports and the audit of moderators' actions."""

from __future__ import annotations

# What can be reported and moderated, and its table (each has a `status`: 'active' or 'removed',
# stories also 'draft' and 'published').
TABLES = {
    "story": "stories",
    "scenario": "scenarios",
    "character": "characters",
    "room": "rooms",
    "post": "room_posts",
}
# A room's or post's row also says whether the user is a member of its room (who may see it).
_ROOM_TARGET = (
    "SELECT t.*, EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = t.id AND m.user_id = $2) AS is_member"
    " FROM rooms t WHERE t.id = $1"
)
_POST_TARGET = (
    "SELECT t.*, r.status AS room_status, EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = t.room_id"
    " AND m.user_id = $2) AS is_member FROM room_posts t JOIN rooms r ON r.id = t.room_id WHERE t.id = $1"
)


async def target(conn, target_type: str, target_id, user_id: str):
    """The reported or moderated row (any status), None when there is none; rooms and posts with
    `is_member` for `user_id`, posts with their room's status."""
    if target_type == "room":
        return await conn.fetchrow(_ROOM_TARGET, target_id, user_id)
    if target_type == "post":
        return await conn.fetchrow(_POST_TARGET, target_id, user_id)
    return await conn.fetchrow(f"SELECT * FROM {TABLES[target_type]} WHERE id = $1", target_id)


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
    table = TABLES[target_type]
    updated = await conn.fetchval(f"UPDATE {table} SET status = $2 WHERE id = $1 RETURNING true", target_id, status)
    return updated is not None


async def delete_by_reporter(conn, reporter_id: str) -> int:
    """A deleted user's reports (their reasons are their words); resolved ones too."""
    return await conn.fetchval(
        "WITH d AS (DELETE FROM reports WHERE reporter_id = $1 RETURNING 1) SELECT count(*) FROM d", reporter_id
    )


async def delete_for_targets(conn, target_type: str, target_ids: list) -> None:
    """The reports on deleted targets (reports.target_id has no foreign key: it names rows of several tables)."""
    await conn.execute(
        "DELETE FROM reports WHERE target_type = $1 AND target_id = ANY($2::uuid[])", target_type, target_ids
    )
