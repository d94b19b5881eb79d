"""Stories: the wizard as a resumable draft (universe, characters, scenario, then text), versions
with optimistic concurrency, publication through moderation, feeds, sharing and export."""

from __future__ import annotations

import asyncio
import re
import secrets
import urllib.parse

from community_service import cursors, errors, feed_cache
from community_service import export as story_export
from community_service.models import counts, iso
from community_service.moderation import Moderator
from community_service.repositories import scenarios as scen_repo
from community_service.repositories import stories as story_repo
from community_service.repositories import universes as uni_repo
from community_service.repositories import votes as vote_repo
from community_service.service import ENGAGEMENT_KEYS, hot, parse_id, visible_character
from community_service.upstream import Upstreams
from shared.auth import CurrentUser
from shared.bus.outbox import emit
from shared.engagement import Engagement
from shared.events import EventType, make_event

STEPS = ("universe", "characters", "scenario", "generation", "edit")
MAX_CHARACTERS = 5


def story_out(row, my_vote: int | None = None, *, for_author: bool = False) -> dict:
    out = {
        "id": str(row["id"]),
        "title": row["title"],
        "body": row["body"],
        "version": row["version"],
        "step": row["step"],
        "status": row["status"],
        "visibility": row["visibility"],
        "universe": row["universe"],
        "characters": row["characters"] or [],
        "scenario": row["scenario"],
        **counts(row, my_vote),
        "author_id": row["author_id"],
        "published_at": iso(row["published_at"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
    if for_author:
        source = row["source"]
        out["source"] = (
            {
                "conversation_id": source["conversation_id"],
                "character": source.get("character"),
                "series": source.get("series"),
                "message_count": len(source["messages"]),
            }
            if source
            else None
        )
    return out


def _later_step(current: str, reached: str) -> str:
    return max(current, reached, key=STEPS.index)


# If-Match names a story version ("3", 3, W/"3"): the routers document this pattern and length.
IF_MATCH_PATTERN = r'^(?:W/)?"?([0-9]{1,9})"?$'
IF_MATCH_MAX_LENGTH = 40
_ETAG = re.compile(IF_MATCH_PATTERN)


def parse_if_match(header: str | None, *, required: bool) -> int | None:
    if header is None:
        if required:
            raise errors.PRECONDITION_REQUIRED()
        return None
    m = _ETAG.match(header) if len(header) <= IF_MATCH_MAX_LENGTH else None
    if not m:
        raise errors.INVALID_IF_MATCH()
    return int(m.group(1))


# Reading ------------------------------------------------------------------------------------


def _readable(row, user: CurrentUser | None) -> bool:
    if row is None or row["status"] == "removed":
        return False
    if user is not None and row["author_id"] == user.user_id:
        return True
    return row["status"] == "published"


async def _readable_story(conn, user: CurrentUser | None, story_id: str):
    row = await story_repo.get(conn, parse_id(story_id, errors.STORY_NOT_FOUND))
    if not _readable(row, user):
        raise errors.STORY_NOT_FOUND()
    return row


async def _own_story_locked(conn, user: CurrentUser, story_id: str, if_match: int | None):
    """The caller's story, row-locked; 404 for anyone else's (a draft's existence is private too);
    412 when `if_match` names another version."""
    row = await story_repo.get_for_update(conn, parse_id(story_id, errors.STORY_NOT_FOUND))
    if row is None or row["status"] == "removed" or row["author_id"] != user.user_id:
        raise errors.STORY_NOT_FOUND()
    if if_match is not None and if_match != row["version"]:
        raise errors.VERSION_CONFLICT(current_version=row["version"])
    return row


async def get_story(pool, user: CurrentUser, story_id: str) -> dict:
    async with pool.acquire() as conn:
        row = await _readable_story(conn, user, story_id)
        mine = await vote_repo.mine(conn, user.user_id, "story", [row["id"]])
    return story_out(row, mine.get(row["id"]), for_author=row["author_id"] == user.user_id)


async def versions(pool, user: CurrentUser, story_id: str) -> list[dict]:
    async with pool.acquire() as conn:
        row = await story_repo.get(conn, parse_id(story_id, errors.STORY_NOT_FOUND))
        if row is None or row["status"] == "removed" or row["author_id"] != user.user_id:
            raise errors.STORY_NOT_FOUND()
        rows = await story_repo.versions(conn, row["id"])
    return [
        {
            "version": r["version"],
            "title": r["title"],
            "body": r["body"],
            "step": r["step"],
            "change": r["change"],
            "editor_id": r["editor_id"],
            "created_at": iso(r["created_at"]),
        }
        for r in rows
    ]


_FEED_KEYS = {"hot": ("hot", "f"), "new": ("published_at", "t"), "top": ("score", "i")}


async def list_stories(
    pool, user: CurrentUser, *, scope: str, sort: str, q: str | None, cursor: str | None, limit: int
):
    key, kind = _FEED_KEYS[sort] if scope == "public" else ("updated_at", "t")
    after = cursors.decode(cursor, kind)
    async with pool.acquire() as conn:
        if scope == "public":
            rows = await story_repo.feed(conn, sort=sort, q=q, after=after, limit=limit + 1, voter_id=user.user_id)
            rows, next_cursor = cursors.page(rows, limit, key)
            return [story_out(r, r["my_vote"]) for r in rows], next_cursor
        rows = await story_repo.list_authored(conn, user.user_id, q=q, after=after, limit=limit + 1)
        rows, next_cursor = cursors.page(rows, limit, key)
        mine = await vote_repo.mine(conn, user.user_id, "story", [r["id"] for r in rows])
    return [story_out(r, mine.get(r["id"])) for r in rows], next_cursor


async def public_first_page(pool, pages: feed_cache.FeedPages, user: CurrentUser, sort: str, limit: int) -> bytes:
    """The first page of a public feed as JSON bytes: its stories from `pages` (read again, once for
    all waiting requests, when missing or expired; feed_cache.py says for how long and why), the
    caller's votes read now."""
    page = pages.get(sort, limit)
    if page is None:
        async with pages.refilling(sort, limit):
            page = pages.get(sort, limit)
            if page is None:
                async with pool.acquire() as conn:
                    rows = await story_repo.feed(
                        conn, sort=sort, q=None, after=None, limit=limit + 1, voter_id=user.user_id
                    )
                rows, next_cursor = cursors.page(rows, limit, _FEED_KEYS[sort][0])
                items = [story_out(r) for r in rows]
                for item in items:
                    del item["my_vote"]
                page = pages.put(sort, limit, [r["id"] for r in rows], items, next_cursor)
    async with pool.acquire() as conn:
        mine = await vote_repo.mine(conn, user.user_id, "story", page.ids)
    return feed_cache.render(page, mine)


# The wizard ---------------------------------------------------------------------------------


async def create_draft(
    pool,
    upstreams: Upstreams,
    user: CurrentUser,
    token: str | None,
    from_conversation_id: str | None,
    max_messages: int,
) -> dict:
    source = None
    if from_conversation_id is not None:
        parse_id(from_conversation_id, errors.CONVERSATION_NOT_FOUND)
        # Read from Chat with the caller's own token: Chat answers 404 for anyone else's conversation.
        page = await upstreams.conversation_messages(from_conversation_id, token, max_messages)
        conv = page.get("conversation") or {}
        source = {
            "conversation_id": from_conversation_id,
            "character": conv.get("character"),
            "series": conv.get("series"),
            "messages": [
                {"role": m.get("role"), "sender": m.get("sender"), "content": m.get("content") or ""}
                for m in page.get("messages") or []
            ],
        }
    async with pool.acquire() as conn, conn.transaction():
        row = await story_repo.insert_draft(conn, user.user_id, source)
        await emit(
            conn,
            make_event(
                EventType.STORY_CREATED,
                user.user_id,
                {
                    "story_id": str(row["id"]),
                    "from_conversation_id": from_conversation_id,
                },
            ),
        )
    return story_out(row, for_author=True)


async def _step(
    pool, user: CurrentUser, story_id: str, if_match: int | None, values: dict, change: str, reached: str
) -> dict:
    async with pool.acquire() as conn, conn.transaction():
        row = await _own_story_locked(conn, user, story_id, if_match)
        if row["status"] != "draft":
            raise errors.NOT_A_DRAFT()
        values = {**values, "step": _later_step(row["step"], reached)}
        row = await story_repo.new_version(conn, row["id"], values, change, user.user_id)
    return story_out(row, for_author=True)


async def set_universe(
    pool, upstreams: Upstreams, user: CurrentUser, story_id: str, if_match: int | None, step: dict
) -> dict:
    # The body holds exactly one of the three (models.UniverseStep); the others are None.
    if step.get("tmdb") is not None:
        async with pool.acquire() as conn, conn.transaction():
            await _own_story_locked(conn, user, story_id, if_match)  # 404 or 412 before asking Content
        ref = step["tmdb"]
        title = await upstreams.title(ref["type"], ref["id"])
        universe = {
            "kind": "tmdb",
            "type": ref["type"],
            "id": ref["id"],
            "name": title.get("title") or title.get("name") or "",
            "description": title.get("overview") or "",
        }
    elif step.get("universe_id") is not None:
        async with pool.acquire() as conn:
            row = await uni_repo.get(conn, parse_id(step["universe_id"], errors.UNIVERSE_NOT_FOUND))
        if row is None or (row["visibility"] != "public" and row["owner_id"] != user.user_id):
            raise errors.UNIVERSE_NOT_FOUND()
        universe = {"kind": "universe", "id": str(row["id"]), "name": row["name"], "description": row["description"]}
    else:
        universe = {"kind": "custom", **step["custom"]}
    return await _step(pool, user, story_id, if_match, {"universe": universe}, "universe", "characters")


async def set_characters(pool, user: CurrentUser, story_id: str, if_match: int | None, characters: list[dict]) -> dict:
    if not 1 <= len(characters) <= MAX_CHARACTERS:
        raise errors.TOO_MANY_CHARACTERS(count=len(characters), minimum=1, maximum=MAX_CHARACTERS)
    resolved = []
    async with pool.acquire() as conn:
        for c in characters:
            if c.get("character_id") is not None:
                row = await visible_character(conn, user, c["character_id"])
                resolved.append(
                    {
                        "character_id": str(row["id"]),
                        "name": row["name"],
                        "series": row["series"],
                        "description": row["description"],
                        "personality": row["personality"],
                    }
                )
            else:
                resolved.append({"name": c["name"], "series": c.get("series")})
    return await _step(pool, user, story_id, if_match, {"characters": resolved}, "characters", "scenario")


async def set_scenario(pool, user: CurrentUser, story_id: str, if_match: int | None, step: dict) -> dict:
    scenario = {"setting": step["setting"], "tone": step["tone"], "themes": step.get("themes") or []}
    if step.get("scenario_id") is not None:
        async with pool.acquire() as conn:
            row = await scen_repo.get(conn, parse_id(step["scenario_id"], errors.SCENARIO_NOT_FOUND))
        if row is None or not (
            row["owner_id"] == user.user_id or (row["visibility"] == "public" and row["status"] == "active")
        ):
            raise errors.SCENARIO_NOT_FOUND()
        scenario |= {"scenario_id": str(row["id"]), "title": row["title"], "opening_line": row["opening_line"]}
    return await _step(pool, user, story_id, if_match, {"scenario": scenario}, "scenario", "generation")


# Editing, publishing ------------------------------------------------------------------------


async def edit(pool, moderator: Moderator, user: CurrentUser, story_id: str, if_match: int, changes: dict) -> dict:
    async with pool.acquire() as conn:
        current = await _readable_story(conn, user, story_id)
    if current["author_id"] != user.user_id:
        raise errors.STORY_NOT_FOUND()
    if current["status"] == "published":
        # What readers see changes: the new text passes moderation like the first publication.
        await moderator.require_clean(changes.get("title", current["title"]), changes.get("body", current["body"]))
    async with pool.acquire() as conn, conn.transaction():
        row = await _own_story_locked(conn, user, story_id, if_match)
        values = {**changes, "step": _later_step(row["step"], "edit")}
        row = await story_repo.new_version(conn, row["id"], values, "edit", user.user_id)
        if row["status"] == "published":
            await vote_repo.set_hot(conn, "story", row["id"], hot(row["score"], row["published_at"]))
    return story_out(row, for_author=True)


async def publish(
    pool, moderator: Moderator, user: CurrentUser, story_id: str, visibility: str, engagement: Engagement | None = None
) -> dict:
    async with pool.acquire() as conn:
        current = await _readable_story(conn, user, story_id)
    if current["author_id"] != user.user_id:
        raise errors.STORY_NOT_FOUND()
    if not current["body"].strip():
        raise errors.STORY_INCOMPLETE()
    await moderator.require_clean(current["title"], current["body"])
    async with pool.acquire() as conn, conn.transaction():
        row = await _own_story_locked(conn, user, story_id, None)
        if row["version"] != current["version"]:
            # Edited while moderation ran: what was checked is not what would be published.
            raise errors.VERSION_CONFLICT(
                "The story changed while it was being checked; publish again.", current_version=row["version"]
            )
        first = row["status"] == "draft"
        published_at = row["published_at"]
        row = await story_repo.publish(conn, row["id"], visibility, 0.0)
        published_at = row["published_at"] if published_at is None else published_at
        await vote_repo.set_hot(conn, "story", row["id"], hot(row["score"], published_at))
        row = await story_repo.get(conn, row["id"])
        published = None
        if first:
            published = make_event(
                EventType.STORY_PUBLISHED,
                user.user_id,
                {
                    "story_id": str(row["id"]),
                    "title": row["title"],
                    "visibility": visibility,
                    "version": row["version"],
                },
                source="community_service",
            )
            await emit(conn, published)
    if published is not None and engagement is not None:
        engagement.capture(published, ENGAGEMENT_KEYS)  # after the commit: what PostHog sees happened
    return story_out(row, for_author=True)


async def delete(pool, user: CurrentUser, story_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        row = await _own_story_locked(conn, user, story_id, None)
        await story_repo.delete(conn, row["id"])
        await vote_repo.delete_for_target(conn, "story", row["id"])


# Sharing and export -------------------------------------------------------------------------


async def share(pool, user: CurrentUser, story_id: str, public_base_url: str) -> dict:
    async with pool.acquire() as conn, conn.transaction():
        row = await _own_story_locked(conn, user, story_id, None)
        token = await story_repo.set_share_token(conn, row["id"], secrets.token_urlsafe(16))
    url = f"{public_base_url.rstrip('/')}/shared/stories/{token}"
    text = row["title"].strip() or "A story on SceneXtras"
    q = urllib.parse.quote
    return {
        "url": url,
        "token": token,
        "social": {
            "twitter": f"https://twitter.com/intent/tweet?url={q(url, safe='')}&text={q(text, safe='')}",
            "facebook": f"https://www.facebook.com/sharer/sharer.php?u={q(url, safe='')}",
            "reddit": f"https://www.reddit.com/submit?url={q(url, safe='')}&title={q(text, safe='')}",
        },
    }


async def read_shared(pool, token: str) -> dict:
    async with pool.acquire() as conn:
        row = await story_repo.get_by_share_token(conn, token)
    if row is None or row["status"] == "removed":
        raise errors.SHARE_NOT_FOUND()
    out = story_out(row)
    out.pop("my_vote")
    return out


async def export(pool, user: CurrentUser, story_id: str, fmt: str) -> tuple[bytes, str, str]:
    async with pool.acquire() as conn:
        row = await _readable_story(conn, user, story_id)
    story = story_out(row)
    # fpdf2 lays out pages in Python: off the event loop.
    content = await asyncio.to_thread(story_export.RENDER[fmt], story)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", story_export.title(story)).strip("-")[:60] or "story"
    return content, story_export.FORMATS[fmt], f"{slug}.{fmt}"
