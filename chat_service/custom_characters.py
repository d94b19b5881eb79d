"""Community's custom characters, read over HTTP with the caller's token (never Community's database).

`GET {COMMUNITY_SERVICE_URL}/characters/{id}` answers the definition to its owner, or to anyone when
it is public; 404 otherwise, which chat answers as 404 CHARACTER_NOT_FOUND. Community unreachable
or failing: 503 COMMUNITY_UNAVAILABLE, raised while the turn is planned, before any quota is
reserved, so nothing is charged.

Cache: the definition is kept in Redis for CUSTOM_CHARACTER_CACHE_SECONDS (60 by default) under
the character's id, with its owner and visibility. A cached copy answers only a caller Community
itself would answer (public, or the owner); anyone else is asked of Community. Staleness is
bounded by that TTL, and shorter for edits: Community's `character.updated` event drops the
cached copy (chat_service/events.py). A deletion or a moderator's removal
sends no event, so such a character can still be talked with for at most the TTL.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import orjson
from redis.exceptions import RedisError

from chat_service import errors
from chat_service.context import CharacterContext

log = logging.getLogger("chat_service.custom_characters")

# What a prompt is built from; anything else Community answers is not kept.
FIELDS = ("id", "owner_id", "name", "series", "description", "personality", "greeting", "example_dialogue")


def parse_character_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise errors.CHARACTER_NOT_FOUND() from None


def to_context(definition: dict[str, Any]) -> CharacterContext:
    return CharacterContext(
        character=definition["name"],
        series=definition.get("series"),
        bio=definition.get("description"),
        personality=definition.get("personality"),
        greeting=definition.get("greeting"),
        example_dialogue=definition.get("example_dialogue"),
        character_id=definition["id"],
        sources=["community"],
    )


class CustomCharacters:
    def __init__(self, settings, redis, keys):
        self.redis = redis
        self.keys = keys
        self.ttl = settings.custom_character_cache_seconds
        timeout = settings.community_timeout_seconds
        self.http = httpx.AsyncClient(
            base_url=settings.community_service_url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=min(2.0, timeout)),
        )

    async def close(self) -> None:
        await self.http.aclose()

    def cache_key(self, character_id: str) -> str:
        return self.keys("chat", "custom-character", character_id)

    async def context(self, character_id: str, user_id: str, token: str | None) -> CharacterContext:
        """The character as a prompt context, if this caller may talk with it."""
        character_id = parse_character_id(character_id)
        cached = await self._cached(character_id)
        if cached is not None and (cached["visibility"] == "public" or cached["owner_id"] == user_id):
            return to_context(cached)
        definition = await self._fetch(character_id, token)
        await self.remember(definition)
        return to_context(definition)

    async def forget(self, character_id: str) -> None:
        """Drop a cached definition (Community's character.updated event)."""
        try:
            await self.redis.delete(self.cache_key(character_id))
        except (RedisError, OSError):
            log.warning("a changed character's cached definition could not be dropped; it expires by itself")

    async def remember(self, character: dict[str, Any]) -> None:
        """Cache a definition, as Community answered it to a caller allowed to see it."""
        kept = {k: character.get(k) for k in (*FIELDS, "visibility")}
        try:
            await self.redis.set(self.cache_key(kept["id"]), orjson.dumps(kept), ex=self.ttl)
        except (RedisError, OSError):
            pass  # the cache is an optimisation: Community is asked next time

    async def _cached(self, character_id: str) -> dict[str, Any] | None:
        try:
            raw = await self.redis.get(self.cache_key(character_id))
        except (RedisError, OSError):
            return None
        return orjson.loads(raw) if raw else None

    async def _fetch(self, character_id: str, token: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = await self.http.get(f"/characters/{character_id}", headers=headers)
        except httpx.HTTPError as exc:
            log.warning("community unreachable", extra={"error": type(exc).__name__})
            raise errors.COMMUNITY_UNAVAILABLE() from exc
        if r.status_code == 404:
            raise errors.CHARACTER_NOT_FOUND()
        if r.status_code != 200:
            log.warning("community answered %s for a character", r.status_code)
            raise errors.COMMUNITY_UNAVAILABLE()
        body = r.json()
        if body.get("status", "active") != "active":
            raise errors.CHARACTER_NOT_FOUND()
        return body
