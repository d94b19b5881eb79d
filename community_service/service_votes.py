"""Votes, reports and moderation in community: one vote per user and target with the counters moved
in the vote's statement, the reports queue, moderator actions with their audit rows. Characters,
universes, favourites and scenarios are in service.py; stories in service_stories.py."""

from __future__ import annotations

from community_service import errors
from community_service.models import counts, iso
from community_service.repositories import moderation as mod_repo
from community_service.service import ENGAGEMENT_KEYS, STORY_VOTED, parse_id
from community_service.vote_batch import VoteBatcher
from shared.auth import CurrentUser
from shared.engagement import Engagement
from shared.events import make_event


def _visible_target(row, target_type: str, user: CurrentUser) -> bool:
    """Whether the user may see (so report) the row: a published story; an active public (or their
    own) scenario or character; an active room as GET /rooms/{id} shows it (public, or the user is a
    member); an active post in an active room the user is a member of (posts are members only)."""
    if row is None:
        return False
    if target_type == "story":
        return row["status"] == "published"
    if target_type == "room":
        return row["status"] == "active" and (row["visibility"] == "public" or row["is_member"])
    if target_type == "post":
        return row["status"] == "active" and row["room_status"] == "active" and row["is_member"]
    return row["status"] == "active" and (row["visibility"] == "public" or row["owner_id"] == user.user_id)


async def vote(
    votes: VoteBatcher,
    user: CurrentUser,
    target_type: str,
    target_id: str,
    value: int,
    engagement: Engagement | None = None,
) -> dict:
    """Set (value ±1) or remove (value 0) the caller's vote. One statement carries it with the votes
    that arrived meanwhile (vote_batch.py, repositories/votes.cast_many): the vote row's upsert or
    delete is the per-user serialization, the target's counters and hot move by the delta under the
    target's row lock, and story.voted goes to the outbox with them. No lock is held across round
    trips."""
    tid = parse_id(target_id, errors.TARGET_NOT_FOUND)
    event = None
    if target_type == "story":
        # author_id, previous and the counters are filled in by the statement.
        data = {"story_id": str(tid), "value": value}
        event = make_event(STORY_VOTED, user.user_id, data, source="community_service")
    row = await votes.cast(target_type, tid, user.user_id, value, event)
    if not row["visible"]:
        raise errors.TARGET_NOT_FOUND()
    if event is not None and row["previous"] is not None and engagement is not None:
        # The vote committed (and its story.voted, same id, is in the outbox): PostHog gets it too.
        event.data["previous"] = row["previous"]
        engagement.capture(event, ENGAGEMENT_KEYS)
    current = {"score": row["up"] - row["down"], "up": row["up"], "down": row["down"]}
    return {"target_type": target_type, "target_id": str(tid), **counts(current, value)}


# Reports and moderation ---------------------------------------------------------------------


async def report(pool, user: CurrentUser, target_type: str, target_id: str, reason: str) -> dict:
    tid = parse_id(target_id, errors.TARGET_NOT_FOUND)
    async with pool.acquire() as conn:
        row = await mod_repo.target(conn, target_type, tid, user.user_id)
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
    lists and share links (status 'removed'; a room: from the room lists and reads, joining and its
    document; a post: from its room's posts). Either way one audit row."""
    tid = parse_id(target_id, errors.TARGET_NOT_FOUND)
    async with pool.acquire() as conn, conn.transaction():
        if await mod_repo.target(conn, target_type, tid, actor.user_id) is None:
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
