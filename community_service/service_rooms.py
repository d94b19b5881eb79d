"""Fandom rooms: creation, joining (invite codes, public rooms, referral codes recorded through
Auth), roles, posts, erasure, and saving a room's co-edited document back to its story.
The live document itself is collab.py's."""

from __future__ import annotations

import secrets

from community_service import errors
from community_service.models import counts, iso
from community_service.moderation import Moderator
from community_service.repositories import moderation as mod_repo
from community_service.repositories import rooms as rooms_repo
from community_service.repositories import stories as story_repo
from community_service.repositories import votes as vote_repo
from community_service.service import is_moderator, parse_id
from community_service.service_stories import _later_step
from community_service.upstream import Upstreams
from shared.auth import CurrentUser
from shared.bus.outbox import emit
from shared.engagement import Engagement
from shared.events import EventType, make_event
from shared.pagination import decode_keyset, encode_keyset

# Invite codes: 10 characters from an alphabet without look-alikes (~50 bits: not guessable).
_INVITE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
_INVITE_LENGTH = 10
EDITOR_ROLES = frozenset({"owner", "editor"})
# What PostHog gets with room.joined: the room and how it was joined (no referrer or owner ids).
ROOM_ENGAGEMENT_KEYS = ("room_id", "role", "via")


def _invite_code() -> str:
    return "".join(secrets.choice(_INVITE_ALPHABET) for _ in range(_INVITE_LENGTH))


def room_out(row, role: str | None, my_vote: int | None = None) -> dict:
    """A room as the caller sees it: the invite code only to members; its votes and the caller's."""
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "description": row["description"],
        "story_id": str(row["story_id"]) if row["story_id"] else None,
        "visibility": row["visibility"],
        "status": row["status"],
        "owner_id": row["owner_id"],
        "member_count": row["member_count"],
        "my_role": role,
        "invite_code": row["invite_code"] if role else None,
        "created_at": iso(row["created_at"]),
        **counts(row, my_vote),
    }


def _member_out(row) -> dict:
    return {"user_id": row["user_id"], "role": row["role"], "joined_at": iso(row["joined_at"])}


def _post_out(row) -> dict:
    return {
        "id": str(row["id"]),
        "room_id": str(row["room_id"]),
        "author_id": row["author_id"],
        "body": row["body"],
        "created_at": iso(row["created_at"]),
    }


async def _visible_room(conn, user: CurrentUser, room_id: str, *, moderating: bool = False):
    """The room and the caller's role (None for a non-member); an invite-only room is a 404 to
    anyone outside it (its existence is private too), a room a moderator removed a 404 to everyone.
    `moderating`: a moderator reviewing reports sees any room, removed or invite-only."""
    row = await rooms_repo.get(conn, parse_id(room_id, errors.ROOM_NOT_FOUND))
    if row is None:
        raise errors.ROOM_NOT_FOUND()
    role = await rooms_repo.role_of(conn, row["id"], user.user_id)
    if not moderating and (row["status"] != "active" or (role is None and row["visibility"] != "public")):
        raise errors.ROOM_NOT_FOUND()
    return row, role


async def create_room(pool, user: CurrentUser, body: dict) -> dict:
    story_id = None
    async with pool.acquire() as conn, conn.transaction():
        if body.get("story_id") is not None:
            story = await story_repo.get(conn, parse_id(body["story_id"], errors.STORY_NOT_FOUND))
            if story is None or story["status"] == "removed" or story["author_id"] != user.user_id:
                raise errors.STORY_NOT_FOUND()
            story_id = story["id"]
        row = None
        while row is None:  # a taken invite code (one in ~10^17 draws) is drawn again
            row = await rooms_repo.insert(
                conn,
                user.user_id,
                body["name"],
                body.get("description") or "",
                story_id,
                body["visibility"],
                _invite_code(),
            )
        await emit(
            conn,
            make_event(
                EventType.ROOM_CREATED,
                user.user_id,
                {
                    "room_id": str(row["id"]),
                    "owner_id": user.user_id,
                    "story_id": str(story_id) if story_id else None,
                    "visibility": row["visibility"],
                },
                source="community_service",
            ),
        )
        row = await rooms_repo.get(conn, row["id"])
    return room_out(row, "owner")


async def join_room(
    pool, upstreams: Upstreams, user: CurrentUser, token: str, body: dict, engagement: Engagement | None = None
) -> dict:
    """Joins as a viewer (the owner promotes). The room is named by its invite code, or by id when
    public. With a referral code, Auth records the referral first, by its own rules (once per user,
    verified accounts, within the window, not your own code): its refusals are answered as they are
    and nothing changes here. Joining a room you are in already changes nothing (and records no
    referral)."""
    async with pool.acquire() as conn:
        if body.get("invite_code") is not None:
            room = await rooms_repo.get_by_invite_code(conn, body["invite_code"])
            if room is None:
                raise errors.INVITE_NOT_FOUND()
        else:
            room = await rooms_repo.get(conn, parse_id(body["room_id"], errors.ROOM_NOT_FOUND))
            if room is None or room["visibility"] != "public" or room["status"] != "active":
                raise errors.ROOM_NOT_FOUND()
        role = await rooms_repo.role_of(conn, room["id"], user.user_id)
    if role is not None:
        return await _joined(pool, user, room["id"], joined=False, referral=None)
    referral = None
    if body.get("referral_code") is not None:
        info = await upstreams.apply_referral(token, body["referral_code"])
        referral = {"recorded": True, "referrer_id": info.get("referred_by")}
    referrer_id = referral["referrer_id"] if referral else None
    event = None
    async with pool.acquire() as conn, conn.transaction():
        joined = await rooms_repo.add_member(conn, room["id"], user.user_id, "viewer", referrer_id)
        if joined:
            via = "referral" if referral else ("invite" if body.get("invite_code") else "public")
            event = make_event(
                EventType.ROOM_JOINED,
                user.user_id,
                {
                    "room_id": str(room["id"]),
                    "user_id": user.user_id,
                    "owner_id": room["owner_id"],
                    "role": "viewer",
                    "via": via,
                    "referrer_id": referrer_id,
                },
                source="community_service",
            )
            await emit(conn, event)
    if event is not None and engagement is not None:
        engagement.capture(event, ROOM_ENGAGEMENT_KEYS)  # after the commit (shared/engagement.py)
    return await _joined(pool, user, room["id"], joined=joined, referral=referral)


async def _joined(pool, user: CurrentUser, room_id, *, joined: bool, referral: dict | None) -> dict:
    async with pool.acquire() as conn:
        row = await rooms_repo.get(conn, room_id)
        role = await rooms_repo.role_of(conn, room_id, user.user_id)
        mine = await vote_repo.mine(conn, user.user_id, "room", [room_id])
    return {"room": room_out(row, role, mine.get(room_id)), "joined": joined, "referral": referral}


async def get_room(pool, user: CurrentUser, room_id: str) -> dict:
    async with pool.acquire() as conn:
        row, role = await _visible_room(conn, user, room_id, moderating=is_moderator(user))
        members = await rooms_repo.members(conn, row["id"])
        mine = await vote_repo.mine(conn, user.user_id, "room", [row["id"]])
    return {**room_out(row, role, mine.get(row["id"])), "members": [_member_out(m) for m in members]}


async def list_rooms(pool, user: CurrentUser, scope: str, cursor: str | None, limit: int) -> dict:
    after = decode_keyset(cursor or "")
    async with pool.acquire() as conn:
        if scope == "mine":
            rows = await rooms_repo.list_mine(conn, user.user_id, after, limit + 1)
            key = "joined_at"
        else:
            rows = await rooms_repo.list_public(conn, after, limit + 1)
            key = "created_at"
        roles = (
            {r["id"]: r["my_role"] for r in rows}
            if scope == "mine"
            else await rooms_repo.roles_in(conn, [r["id"] for r in rows], user.user_id)
        )
        mine = await vote_repo.mine(conn, user.user_id, "room", [r["id"] for r in rows[:limit]])
    next_cursor = encode_keyset(rows[limit - 1][key], rows[limit - 1]["id"]) if len(rows) > limit else None
    return {
        "rooms": [room_out(r, roles.get(r["id"]), mine.get(r["id"])) for r in rows[:limit]],
        "next_cursor": next_cursor,
    }


async def _owned_room(conn, user: CurrentUser, room_id: str):
    row, role = await _visible_room(conn, user, room_id)
    if role != "owner":
        raise errors.ROOM_OWNER_REQUIRED()
    return row


async def set_member_role(pool, user: CurrentUser, room_id: str, member_id: str, role: str) -> dict:
    async with pool.acquire() as conn, conn.transaction():
        row = await _owned_room(conn, user, room_id)
        current = await rooms_repo.role_of(conn, row["id"], member_id)
        if current is None:
            raise errors.MEMBER_NOT_FOUND()
        if current == "owner":
            raise errors.OWNER_ROLE_FIXED()
        await rooms_repo.set_role(conn, row["id"], member_id, role)
    return {"room_id": str(row["id"]), "user_id": member_id, "role": role}


async def remove_member(pool, user: CurrentUser, room_id: str, member_id: str) -> str:
    """The owner removes a member; any member may remove themselves (leave). Returns the room id."""
    async with pool.acquire() as conn, conn.transaction():
        if member_id == user.user_id:
            row, role = await _visible_room(conn, user, room_id)
            if role is None:
                raise errors.MEMBER_NOT_FOUND()
        else:
            row = await _owned_room(conn, user, room_id)
            role = await rooms_repo.role_of(conn, row["id"], member_id)
            if role is None:
                raise errors.MEMBER_NOT_FOUND()
        if role == "owner":
            raise errors.OWNER_ROLE_FIXED()
        await rooms_repo.remove_member(conn, row["id"], member_id)
    return str(row["id"])


async def _member_room(conn, user: CurrentUser, room_id: str):
    row, role = await _visible_room(conn, user, room_id)
    if role is None:
        raise errors.ROOM_MEMBERS_ONLY()
    return row


async def add_post(pool, user: CurrentUser, room_id: str, body: str) -> dict:
    async with pool.acquire() as conn:
        row = await _member_room(conn, user, room_id)
        post = await rooms_repo.insert_post(conn, row["id"], user.user_id, body)
    return _post_out(post)


async def list_posts(pool, user: CurrentUser, room_id: str, cursor: str | None, limit: int) -> dict:
    """Members read the posts; moderators read any room's, to review reported posts."""
    after = decode_keyset(cursor or "")
    async with pool.acquire() as conn:
        if is_moderator(user):
            row, _ = await _visible_room(conn, user, room_id, moderating=True)
        else:
            row = await _member_room(conn, user, room_id)
        rows = await rooms_repo.posts(conn, row["id"], after, limit + 1)
    next_cursor = encode_keyset(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return {"posts": [_post_out(r) for r in rows[:limit]], "next_cursor": next_cursor}


# The co-edited document ---------------------------------------------------------------------------


async def document_access(pool, user: CurrentUser, room_id: str) -> tuple[str, str]:
    """(room id, role) for a WebSocket on the room's document: members only; anyone else, and any
    room that does not exist or that a moderator removed, is ROOM_NOT_FOUND."""
    async with pool.acquire() as conn:
        row = await rooms_repo.get(conn, parse_id(room_id, errors.ROOM_NOT_FOUND))
        active = row is not None and row["status"] == "active"
        role = await rooms_repo.role_of(conn, row["id"], user.user_id) if active else None
    if role is None:
        raise errors.ROOM_NOT_FOUND()
    return str(row["id"]), role


async def document_text_on_open(pool, room_id: str, stored_text: str | None) -> str | None:
    """The text an opening document must be given, None to keep it as stored: the story's text for
    a document never stored, and for one whose story was edited outside the room since the
    document last matched it (the story is the source while the room is closed: every close saves
    to it). A room without a story keeps its document."""
    async with pool.acquire() as conn, conn.transaction():
        room = await rooms_repo.get(conn, parse_id(room_id, errors.ROOM_NOT_FOUND))
        if room is None or room["story_id"] is None:
            return None
        story = await story_repo.get(conn, room["story_id"])
        if story is None or story["status"] == "removed":
            return None
        outside_edit = room["doc_story_version"] != story["version"]
        if stored_text is not None and (not outside_edit or stored_text == story["body"]):
            return None
        await rooms_repo.set_doc_story_version(conn, room["id"], story["version"])
    return story["body"]


async def save_document(pool, moderator: Moderator, room_id: str, text: str, editor_id: str | None) -> int | None:
    """The document's text as the story's next version (`change: collab`), unless it is the story's
    text already; a published story's new text passes moderation first, as any edit does (flagged
    or unavailable: nothing is saved, the caller tries again later). Returns the new version."""
    async with pool.acquire() as conn:
        room = await rooms_repo.get(conn, parse_id(room_id, errors.ROOM_NOT_FOUND))
        if room is None or room["story_id"] is None:
            return None
        story = await story_repo.get(conn, room["story_id"])
    if story is None or story["status"] == "removed":
        return None
    if story["body"] == text:
        async with pool.acquire() as conn:
            await rooms_repo.set_doc_story_version(conn, room["id"], story["version"])
        return None
    if story["status"] == "published":
        await moderator.require_clean(story["title"], text)
    async with pool.acquire() as conn, conn.transaction():
        story = await story_repo.get_for_update(conn, room["story_id"])
        if story is None or story["status"] == "removed" or story["body"] == text:
            return None  # changed meanwhile: the next save compares again
        values = {"body": text, "step": _later_step(story["step"], "edit")}
        row = await story_repo.new_version(conn, story["id"], values, "collab", editor_id or room["owner_id"])
        await rooms_repo.set_doc_story_version(conn, room["id"], row["version"])
    return row["version"]


async def erase_user(conn, user_id: str) -> dict:
    """user.deleted, in the consumer's transaction: the user's posts and memberships go; the rooms
    they own are deleted with their members, posts and document (no one would be left to manage
    them; the story itself is the story erasure's); so do the reports on the deleted rooms and posts
    (the user's own reports are service.erase_user's)."""
    erased = await rooms_repo.erase_user(conn, user_id)
    post_ids = erased.pop("post_ids")
    if erased["rooms"]:  # the deleted rooms' votes (the voters' rows; the counters went with the rooms)
        await vote_repo.delete_for_targets(conn, "room", erased["rooms"])
        await mod_repo.delete_for_targets(conn, "room", erased["rooms"])
    if post_ids:
        await mod_repo.delete_for_targets(conn, "post", post_ids)
    return {**erased, "rooms": [str(r) for r in erased["rooms"]]}
