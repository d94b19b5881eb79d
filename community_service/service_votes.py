"""Votes, reports and moderation in community: one vote per user and target with the counters moved
in the vote's transaction, the reports queue, moderator actions with their audit rows. Characters,
universes, favourites and scenarios are in service.py; stories in service_stories.py."""

from __future__ import annotations

from community_service import errors
from community_service.models import counts, iso
from community_service.repositories import moderation as mod_repo
from community_service.repositories import votes as vote_repo
from community_service.service import STORY_VOTED, hot, parse_id
from shared.auth import CurrentUser
from shared.bus.outbox import emit
from shared.events import make_event


def _visible_target(row, target_type: str, user: CurrentUser) -> bool:
    if row is None:
        return False
    if target_type == "story":
        return row["status"] == "published"
    return row["status"] == "active" and (row["visibility"] == "public" or row["owner_id"] == user.user_id)


async def vote(pool, user: CurrentUser, target_type: str, target_id: str, value: int) -> dict:
    """Set (value ±1) or remove (value 0) the caller's vote. Exact under concurrency: the vote row
    is the per-user lock (first insert, or SELECT ... FOR UPDATE), and the target's counters move by
    relative increments under its row lock in the same transaction."""
    tid = parse_id(target_id, errors.TARGET_NOT_FOUND)
    async with pool.acquire() as conn, conn.transaction():
        row = await vote_repo.target(conn, target_type, tid)
        if not _visible_target(row, target_type, user):
            raise errors.TARGET_NOT_FOUND()
        if value and await vote_repo.insert_new(conn, target_type, tid, user.user_id, value):
            previous = 0
        else:
            previous = await vote_repo.previous_value(conn, target_type, tid, user.user_id)
            if value == previous:
                return {"target_type": target_type, "target_id": str(tid), **counts(row, value)}
            if value:
                await vote_repo.change(conn, target_type, tid, user.user_id, value)
            else:
                await vote_repo.delete(conn, target_type, tid, user.user_id)
        d_up = (value == 1) - (previous == 1)
        d_down = (value == -1) - (previous == -1)
        moved = await vote_repo.move_counts(conn, target_type, tid, d_up, d_down)
        if target_type == "story":
            await vote_repo.set_hot(conn, "story", tid, hot(moved["score"], row["published_at"]))
            await emit(
                conn,
                make_event(
                    STORY_VOTED,
                    user.user_id,
                    {
                        "story_id": str(tid),
                        "author_id": row["author_id"],
                        "value": value,
                        "previous": previous,
                        "score": moved["score"],
                        "up": moved["up"],
                        "down": moved["down"],
                    },
                ),
            )
        elif target_type == "scenario":
            await vote_repo.set_hot(conn, "scenario", tid, hot(moved["score"], row["created_at"]))
    return {"target_type": target_type, "target_id": str(tid), **counts(moved, value)}


# Reports and moderation ---------------------------------------------------------------------


async def report(pool, user: CurrentUser, target_type: str, target_id: str, reason: str) -> dict:
    tid = parse_id(target_id, errors.TARGET_NOT_FOUND)
    async with pool.acquire() as conn:
        row = await vote_repo.target(conn, target_type, tid)
        if not _visible_target(row, target_type, user):
            raise errors.TARGET_NOT_FOUND()
        created = await mod_repo.report(conn, target_type, tid, user.user_id, reason)
    if created is None:
        raise errors.ALREADY_REPORTED()
    return {"id": str(created["id"]), "target_type": target_type, "target_id": str(tid), "status": "open"}


async def moderation_queue(pool, limit: int) -> list[dict]:
    async with pool.acquire() as conn:
        rows = await mod_repo.queue(conn, limit)
    return [
        {
            "target_type": r["target_type"],
            "target_id": str(r["target_id"]),
            "reports": r["reports"],
            "reasons": list(r["reasons"]),
            "first_reported_at": iso(r["first_reported_at"]),
        }
        for r in rows
    ]


async def moderate(pool, actor: CurrentUser, target_type: str, target_id: str, action: str, note: str | None) -> dict:
    """approve: the reports are closed, the content stays; remove: the content is hidden from feeds,
    lists and share links (status 'removed'). Either way one audit row."""
    tid = parse_id(target_id, errors.TARGET_NOT_FOUND)
    async with pool.acquire() as conn, conn.transaction():
        if await vote_repo.target(conn, target_type, tid) is None:
            raise errors.TARGET_NOT_FOUND()
        if action == "remove":
            await mod_repo.set_status(conn, target_type, tid, "removed")
        await mod_repo.resolve(conn, target_type, tid, "approved" if action == "approve" else "removed")
        audit = await mod_repo.audit(
            conn, target_type, tid, action, actor.user_id, "service" if actor.is_service else "moderator", note
        )
    return {
        "target_type": target_type,
        "target_id": str(tid),
        "action": action,
        "audit_id": audit["id"],
        "at": iso(audit["created_at"]),
    }


# Erasure ------------------------------------------------------------------------------------
