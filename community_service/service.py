"""The community service's domain layer (characters, universes, favourites, scenarios, votes,
reports and moderation, erasure); stories are in service_stories.py. Rules live here; SQL in
repositories/; every change and its events commit together (outbox)."""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from datetime import UTC, datetime

import asyncpg

from community_service import cursors, errors
from community_service.models import counts, iso
from community_service.moderation import Moderator
from community_service.repositories import characters as char_repo
from community_service.repositories import favorites as fav_repo
from community_service.repositories import moderation as mod_repo
from community_service.repositories import scenarios as scen_repo
from community_service.repositories import stories as story_repo
from community_service.repositories import universes as uni_repo
from community_service.repositories import votes as vote_repo
from shared.auth import CurrentUser
from shared.bus.outbox import emit
from shared.errors import FORBIDDEN
from shared.events import make_event

# Event types this service adds to shared.events.EventType's (consumers accept unknown types).
CHARACTER_CREATED = "character.created"
CHARACTER_UPDATED = "character.updated"
STORY_VOTED = "story.voted"
# The event data PostHog gets with story.published and story.voted (shared/engagement.py): ids and
# what was done, never text a user wrote.
ENGAGEMENT_KEYS = ("story_id", "visibility", "version", "value", "previous")

# Reddit's "hot": log10 of the net score plus the age term, so 10 votes weigh as much as 12.5 hours
# of recency. The value depends only on score and publication time, so it is stored and indexed
# (stories_feed_hot) and changes only when a vote does: the feed is one index range scan. Wilson's
# lower bound ranks quality but not freshness; a gravity formula (Hacker News) decays with the
# clock and would need every row re-scored continuously. See docs/community.md.
HOT_EPOCH = 1_700_000_000  # 2023-11-14, keeps the age term small
HOT_SECONDS_PER_DECADE = 45_000


def hot(score: int, published_at: datetime) -> float:
    order = math.log10(max(abs(score), 1))
    sign = (score > 0) - (score < 0)
    return round(sign * order + (published_at.timestamp() - HOT_EPOCH) / HOT_SECONDS_PER_DECADE, 7)


def parse_id(value: str, not_found) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise not_found() from None


def is_moderator(user: CurrentUser) -> bool:
    roles = (user.claims.get("app_metadata") or {}).get("roles") or []
    return user.is_service or "moderator" in roles or "admin" in roles


# Characters ---------------------------------------------------------------------------------


def character_out(row, my_vote: int | None = None) -> dict:
    return {
        "id": str(row["id"]),
        "owner_id": row["owner_id"],
        "name": row["name"],
        "series": row["series"],
        "universe_id": str(row["universe_id"]) if row["universe_id"] else None,
        "description": row["description"],
        "personality": row["personality"],
        "greeting": row["greeting"],
        "example_dialogue": row["example_dialogue"],
        "avatar_image_id": row["avatar_image_id"],
        "visibility": row["visibility"],
        "status": row["status"],
        **counts(row, my_vote),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def _character_text(values: dict) -> list[str | None]:
    return [values.get(k) for k in ("name", "description", "personality", "greeting", "example_dialogue")]


async def _check_universe(conn, user: CurrentUser, universe_id: str | None) -> uuid.UUID | None:
    if universe_id is None:
        return None
    uid = parse_id(universe_id, errors.UNIVERSE_NOT_FOUND)
    row = await uni_repo.get(conn, uid)
    if row is None or (row["visibility"] != "public" and row["owner_id"] != user.user_id):
        raise errors.UNIVERSE_NOT_FOUND()
    return uid


async def create_character(pool, moderator: Moderator, user: CurrentUser, values: dict) -> dict:
    if values["visibility"] == "public":
        await moderator.require_clean(*_character_text(values))
    async with pool.acquire() as conn, conn.transaction():
        values = {**values, "universe_id": await _check_universe(conn, user, values.get("universe_id"))}
        row = await char_repo.insert(conn, user.user_id, values)
        out = character_out(row)
        await emit(conn, make_event(CHARACTER_CREATED, user.user_id, {"character": out}))
    return out


async def visible_character(conn, user: CurrentUser | None, character_id: str):
    row = await char_repo.get(conn, parse_id(character_id, errors.CHARACTER_NOT_FOUND))
    mine = row is not None and user is not None and row["owner_id"] == user.user_id
    if row is None or not (mine or (row["visibility"] == "public" and row["status"] == "active")):
        raise errors.CHARACTER_NOT_FOUND()
    return row


async def get_character(pool, user: CurrentUser, character_id: str) -> dict:
    async with pool.acquire() as conn:
        row = await visible_character(conn, user, character_id)
        mine = await vote_repo.mine(conn, user.user_id, "character", [row["id"]])
    return character_out(row, mine.get(row["id"]))


async def _owned_character(conn, user: CurrentUser, character_id: str):
    row = await visible_character(conn, user, character_id)
    if row["owner_id"] != user.user_id:
        raise FORBIDDEN("Only the character's creator may change it.")
    return row


async def update_character(pool, moderator: Moderator, user: CurrentUser, character_id: str, changes: dict) -> dict:
    async with pool.acquire() as conn:
        current = await _owned_character(conn, user, character_id)
    merged = {**dict(current), **changes}
    if merged["visibility"] == "public":
        await moderator.require_clean(*_character_text(merged))
    async with pool.acquire() as conn, conn.transaction():
        current = await _owned_character(conn, user, character_id)
        if "universe_id" in changes:
            changes = {**changes, "universe_id": await _check_universe(conn, user, changes["universe_id"])}
        row = await char_repo.update(conn, current["id"], changes)
        out = character_out(row)
        await emit(conn, make_event(CHARACTER_UPDATED, user.user_id, {"character": out}))
    return out


async def delete_character(pool, user: CurrentUser, character_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        row = await _owned_character(conn, user, character_id)
        await char_repo.delete(conn, row["id"])
        await vote_repo.delete_for_target(conn, "character", row["id"])
        await fav_repo.delete_target(conn, "character", str(row["id"]))


async def list_characters(
    pool, user: CurrentUser, *, scope: str, q: str | None, sort: str, cursor: str | None, limit: int
) -> tuple[list[dict], str | None]:
    key = "score" if scope == "public" and sort == "top" else "created_at"
    after = cursors.decode(cursor, "i" if key == "score" else "t")
    async with pool.acquire() as conn:
        if scope == "mine":
            rows = await char_repo.list_owned(conn, user.user_id, q=q, after=after, limit=limit + 1)
        else:
            rows = await char_repo.list_public(conn, sort=sort, q=q, after=after, limit=limit + 1)
        rows, next_cursor = cursors.page(rows, limit, key)
        mine = await vote_repo.mine(conn, user.user_id, "character", [r["id"] for r in rows])
    return [character_out(r, mine.get(r["id"])) for r in rows], next_cursor


# Universes ----------------------------------------------------------------------------------


def universe_out(row) -> dict:
    return {
        "id": str(row["id"]),
        "owner_id": row["owner_id"],
        "name": row["name"],
        "description": row["description"],
        "visibility": row["visibility"],
        "created_at": iso(row["created_at"]),
    }


async def create_universe(
    pool, moderator: Moderator, user: CurrentUser, name: str, description: str, visibility: str
) -> dict:
    if visibility == "public":
        await moderator.require_clean(name, description)
    async with pool.acquire() as conn:
        return universe_out(await uni_repo.insert(conn, user.user_id, name, description, visibility))


async def get_universe(pool, user: CurrentUser, universe_id: str) -> dict:
    async with pool.acquire() as conn:
        row = await uni_repo.get(conn, parse_id(universe_id, errors.UNIVERSE_NOT_FOUND))
    if row is None or (row["visibility"] != "public" and row["owner_id"] != user.user_id):
        raise errors.UNIVERSE_NOT_FOUND()
    return universe_out(row)


async def list_universes(pool, user: CurrentUser, scope: str, cursor: str | None, limit: int):
    after = cursors.decode(cursor, "t")
    async with pool.acquire() as conn:
        rows = await uni_repo.list_visible(conn, user.user_id, scope=scope, after=after, limit=limit + 1)
    rows, next_cursor = cursors.page(rows, limit, "created_at")
    return [universe_out(r) for r in rows], next_cursor


# Favourites ---------------------------------------------------------------------------------


# A Content character favourited by its key: "character:<id>", the id a number or TMDB's credit id.
CONTENT_CHARACTER = re.compile(r"character:([A-Za-z0-9]{1,54})")


async def put_favorite(pool, upstreams, user: CurrentUser, kind: str, target_id: str) -> None:
    """kind 'character': a custom character the caller can see, or a Content character
    ("character:<id>", checked against Content); kind 'title': "movie:<tmdb id>" or "tv:<tmdb id>",
    checked against Content."""
    if kind == "character" and target_id.startswith("character:"):
        m = CONTENT_CHARACTER.fullmatch(target_id)
        if m is None or await upstreams.content_character(m.group(1)) is None:
            raise errors.CHARACTER_NOT_FOUND()
        async with pool.acquire() as conn:
            await fav_repo.put(conn, user.user_id, kind, target_id)
        return
    async with pool.acquire() as conn:
        if kind == "character":
            row = await visible_character(conn, user, target_id)
            target_id = str(row["id"])
        else:
            media, _, number = target_id.partition(":")
            if media not in ("movie", "tv") or not number.isdigit() or not 0 < int(number) < 2**31:
                raise errors.TITLE_NOT_FOUND('A title is "movie:<tmdb id>" or "tv:<tmdb id>".')
            await upstreams.title(media, int(number))
            target_id = f"{media}:{int(number)}"
        await fav_repo.put(conn, user.user_id, kind, target_id)


async def delete_favorite(pool, user: CurrentUser, kind: str, target_id: str) -> None:
    async with pool.acquire() as conn:
        if not await fav_repo.delete(conn, user.user_id, kind, target_id):
            raise errors.FAVORITE_NOT_FOUND()


async def list_favorites(pool, upstreams, user: CurrentUser, kind: str | None) -> list[dict]:
    """The caller's favourites, newest first; a character carries what a client shows (a custom
    character as it is now, a Content character's name, title and actor from Content)."""
    async with pool.acquire() as conn:
        rows = await fav_repo.list_for(conn, user.user_id, kind)
        char_ids = [
            uuid.UUID(r["target_id"])
            for r in rows
            if r["kind"] == "character" and not r["target_id"].startswith("character:")
        ]
        chars = await char_repo.get_many(conn, char_ids) if char_ids else {}
    content_keys = [
        r["target_id"] for r in rows if r["kind"] == "character" and r["target_id"].startswith("character:")
    ]
    found = await asyncio.gather(*(upstreams.content_character(k.split(":", 1)[1]) for k in content_keys))
    content = dict(zip(content_keys, found, strict=True))
    out = []
    for r in rows:
        item = {"kind": r["kind"], "id": r["target_id"], "created_at": iso(r["created_at"])}
        if r["kind"] == "character" and r["target_id"] in content:
            rec = content[r["target_id"]]
            if rec is None:
                continue  # gone from Content (a sync removed it)
            item["source"] = "content"
            item["character"] = {
                "id": rec["key"],
                "name": rec.get("name"),
                "series": rec.get("title_name"),
                "actor": rec.get("actor"),
            }
        elif r["kind"] == "character":
            item["source"] = "community"
            c = chars.get(uuid.UUID(r["target_id"]))
            visible = c is not None and (
                c["owner_id"] == user.user_id or (c["visibility"] == "public" and c["status"] == "active")
            )
            if not visible:
                continue  # made private or removed since: not the caller's to see any more
            item["character"] = character_out(c)
        out.append(item)
    return out


# Scenarios ----------------------------------------------------------------------------------


def scenario_out(row, my_vote: int | None = None) -> dict:
    return {
        "id": str(row["id"]),
        "owner_id": row["owner_id"],
        "title": row["title"],
        "setting": row["setting"],
        "tone": row["tone"],
        "themes": list(row["themes"]),
        "characters": row["characters"],
        "opening_line": row["opening_line"],
        "visibility": row["visibility"],
        "status": row["status"],
        **counts(row, my_vote),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def _scenario_text(values: dict) -> list[str | None]:
    themes = " ".join(values.get("themes") or [])
    return [values.get("title"), values.get("setting"), values.get("opening_line"), themes]


async def _check_characters(conn, user: CurrentUser, characters: list[dict]) -> list[dict]:
    """Character references as stored: {name, series} as given, {character_id} resolved to a
    character the caller can see (its name and series copied)."""
    out = []
    for c in characters:
        if c.get("character_id"):
            row = await visible_character(conn, user, c["character_id"])
            out.append({"character_id": str(row["id"]), "name": row["name"], "series": row["series"]})
        else:
            out.append({"name": c["name"], "series": c.get("series")})
    return out


async def create_scenario(pool, moderator: Moderator, user: CurrentUser, values: dict) -> dict:
    if values["visibility"] == "public":
        await moderator.require_clean(*_scenario_text(values))
    async with pool.acquire() as conn:
        values = {**values, "characters": await _check_characters(conn, user, values["characters"])}
        row = await scen_repo.insert(conn, user.user_id, values, hot(0, datetime.now(UTC)))
    return scenario_out(row)


async def visible_scenario(conn, user: CurrentUser, scenario_id: str):
    row = await scen_repo.get(conn, parse_id(scenario_id, errors.SCENARIO_NOT_FOUND))
    visible = row is not None and (
        row["owner_id"] == user.user_id or (row["visibility"] == "public" and row["status"] == "active")
    )
    if not visible:
        raise errors.SCENARIO_NOT_FOUND()
    return row


async def get_scenario(pool, user: CurrentUser, scenario_id: str) -> dict:
    async with pool.acquire() as conn:
        row = await visible_scenario(conn, user, scenario_id)
        mine = await vote_repo.mine(conn, user.user_id, "scenario", [row["id"]])
    return scenario_out(row, mine.get(row["id"]))


async def update_scenario(pool, moderator: Moderator, user: CurrentUser, scenario_id: str, changes: dict) -> dict:
    async with pool.acquire() as conn:
        current = await visible_scenario(conn, user, scenario_id)
        if current["owner_id"] != user.user_id:
            raise FORBIDDEN("Only the scenario's creator may change it.")
        merged = {**dict(current), **changes}
        if merged["visibility"] == "public":
            await moderator.require_clean(*_scenario_text(merged))
        if "characters" in changes:
            changes = {**changes, "characters": await _check_characters(conn, user, changes["characters"])}
        row = await scen_repo.update(conn, current["id"], changes)
    return scenario_out(row)


async def delete_scenario(pool, user: CurrentUser, scenario_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        row = await visible_scenario(conn, user, scenario_id)
        if row["owner_id"] != user.user_id:
            raise FORBIDDEN("Only the scenario's creator may delete it.")
        await scen_repo.delete(conn, row["id"])
        await vote_repo.delete_for_target(conn, "scenario", row["id"])


async def list_scenarios(
    pool, user: CurrentUser, *, scope: str, sort: str, q: str | None, cursor: str | None, limit: int
):
    key, kind = {"new": ("created_at", "t"), "top": ("score", "i"), "hot": ("hot", "f")}[sort]
    after = cursors.decode(cursor, kind)
    async with pool.acquire() as conn:
        rows = await scen_repo.list_page(conn, user.user_id, scope=scope, sort=sort, q=q, after=after, limit=limit + 1)
        rows, next_cursor = cursors.page(rows, limit, key)
        mine = await vote_repo.mine(conn, user.user_id, "scenario", [r["id"] for r in rows])
    return [scenario_out(r, mine.get(r["id"])) for r in rows], next_cursor


def opening_message(row) -> str:
    """The first user message of a conversation started from a scenario."""
    lines = [f"Let's play a scenario: {row['title']}.", f"Setting: {row['setting']}", f"Tone: {row['tone']}"]
    if row["themes"]:
        lines.append("Themes: " + ", ".join(row["themes"]))
    if row["opening_line"]:
        lines.append(row["opening_line"])
    return "\n".join(lines)


async def start_scenario(pool, upstreams, user: CurrentUser, token: str, scenario_id: str) -> dict:
    """Opens a chat conversation with the scenario's first character, through Chat with the caller's
    token (the caller's quota pays for the first reply)."""
    async with pool.acquire() as conn:
        row = await visible_scenario(conn, user, scenario_id)
    if not row["characters"]:
        raise errors.SCENARIO_WITHOUT_CHARACTERS()
    lead = row["characters"][0]
    reply = await upstreams.open_conversation(token, opening_message(row), lead["name"], lead.get("series"))
    return {
        "scenario_id": str(row["id"]),
        "conversation_id": reply.get("conversation_id"),
        "character": lead["name"],
        "response": reply.get("response"),
        "message_id": reply.get("message_id"),
    }


# Votes --------------------------------------------------------------------------------------


async def erase_user(conn: asyncpg.Connection, user_id: str) -> dict:
    """user.deleted: the user's characters, universes, scenarios, favourites, drafts are deleted;
    their published stories removed (not orphaned); their votes withdrawn from the counters; their
    reports deleted, and the reports on their deleted characters and scenarios."""
    for v in await vote_repo.delete_by_user(conn, user_id):
        d_up, d_down = -(v["value"] == 1), -(v["value"] == -1)
        moved = await vote_repo.move_counts(conn, v["target_type"], v["target_id"], d_up, d_down)
        if moved is not None and v["target_type"] == "story":
            story = await story_repo.get(conn, v["target_id"])
            if story["published_at"] is not None:
                await vote_repo.set_hot(conn, "story", v["target_id"], hot(moved["score"], story["published_at"]))
    removed = await story_repo.remove_authored_by(conn, user_id)
    for character_id in await char_repo.delete_owned_by(conn, user_id):
        await vote_repo.delete_for_target(conn, "character", character_id)
        await mod_repo.delete_for_targets(conn, "character", [character_id])
        await fav_repo.delete_target(conn, "character", str(character_id))
    for scenario_id in await scen_repo.delete_owned_by(conn, user_id):
        await vote_repo.delete_for_target(conn, "scenario", scenario_id)
        await mod_repo.delete_for_targets(conn, "scenario", [scenario_id])
    await uni_repo.delete_owned_by(conn, user_id)
    await fav_repo.delete_for_user(conn, user_id)
    reports = await mod_repo.delete_by_reporter(conn, user_id)
    return {"removed_stories": len(removed), "reports": reports}
