"""Resource details: /resources/movies/{id}, /resources/series/{id},
/resources/people/{id}/filmography, /resources/characters/{id}.

Answers come from the embedded store (cast, characters and people resolved) and are cached in
Redis (RESOURCE_CACHE_TTL_SECONDS) under a key carrying the store's entity version, so a sync
makes old entries unreachable at once. A title or person missing from the store is fetched from
TMDB on demand when a key is configured, stored, and indexed at the next rebuild. Redis being
down only costs the cache: the answer still comes from the store.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from redis.exceptions import RedisError

from content_service import errors as content_errors
from content_service.routers.search import characters_of
from content_service.sync.mapping import merge_person, person_record, title_records
from content_service.sync.tmdb import TMDBError, TMDBNotFound
from shared import errors
from shared.errors import documented

router = APIRouter(prefix="/resources", tags=["resources"])
log = logging.getLogger("content_service.resources")


async def _cached(request: Request, parts: tuple, produce):
    state = request.app.state
    catalog = state.catalog
    key = state.keys("content", "res", catalog.store.entity_version(), *parts)
    try:
        raw = await state.redis.get(key)
    except (RedisError, OSError) as exc:
        log.warning("resource cache unavailable", extra={"error": str(exc)})
        raw = None
    if raw is not None:
        return Response(raw, media_type="application/json", headers={"X-Cache": "hit"})
    body = await produce()
    if body is None:
        raise errors.NOT_FOUND(f"No {parts[0]} with id {parts[1]}.")
    raw = orjson.dumps(body)
    try:
        await state.redis.set(key, raw, ex=state.settings.resource_cache_ttl_seconds)
    except (RedisError, OSError):
        pass
    return Response(raw, media_type="application/json", headers={"X-Cache": "miss"})


def _tmdb(request: Request):
    factory = getattr(request.app.state, "tmdb_factory", None)
    return factory() if factory is not None else None


async def _fetch_title(request: Request, kind: str, tid: int) -> bool:
    client = _tmdb(request)
    if client is None:
        return False
    catalog = request.app.state.catalog
    try:
        append = "aggregate_credits" if kind == "tv" else "credits"
        body = await client.get(f"{kind}/{tid}", {"append_to_response": append})
    except TMDBNotFound:
        return False
    except TMDBError as exc:
        raise content_errors.UPSTREAM_UNAVAILABLE(f"TMDB did not answer: {exc.message}") from None
    finally:
        await client.aclose()
    recs = title_records(kind, body)

    def write():
        persons = [r for r in recs if r["type"] == "person"]
        existing = catalog.store.get_entities([p["key"] for p in persons])
        merged = {}
        for p in persons:
            merged[p["key"]] = merge_person(merged.get(p["key"]) or existing.get(p["key"]), p)
        catalog.store.put_entities([r for r in recs if r["type"] != "person"] + list(merged.values()))

    await asyncio.to_thread(write)
    return True


async def _fetch_person(request: Request, pid: int) -> bool:
    client = _tmdb(request)
    if client is None:
        return False
    catalog = request.app.state.catalog
    try:
        body = await client.get(f"person/{pid}")
        credits = await client.get(f"person/{pid}/combined_credits")
    except TMDBNotFound:
        return False
    except TMDBError as exc:
        raise content_errors.UPSTREAM_UNAVAILABLE(f"TMDB did not answer: {exc.message}") from None
    finally:
        await client.aclose()
    rec = merge_person(catalog.store.get_entity(f"person:{pid}"), person_record(body, credits))
    await asyncio.to_thread(catalog.store.put_entities, [rec])
    return True


def _title_route(kind: str, label: str):
    async def handler(request: Request, id: int = Path(..., ge=1)):
        catalog = request.app.state.catalog

        async def produce():
            found = catalog.title(kind, id)
            if found is None and await _fetch_title(request, kind, id):
                found = catalog.title(kind, id)
            return found

        return await _cached(request, (label, id), produce)

    return handler


# Not in the store and not found on TMDB (or no TMDB key); TMDB failing while asked.
_LOOKUP_ERRORS = documented(errors.NOT_FOUND, content_errors.UPSTREAM_UNAVAILABLE)

router.add_api_route(
    "/movies/{id}",
    _title_route("movie", "movie"),
    methods=["GET"],
    summary="A movie: details, cast, characters",
    responses=_LOOKUP_ERRORS,
)
router.add_api_route(
    "/series/{id}",
    _title_route("tv", "series"),
    methods=["GET"],
    summary="A series: details, cast, characters, anime/cartoon flags",
    responses=_LOOKUP_ERRORS,
)


def _characters_route(kind: str):
    async def handler(request: Request, id: int = Path(..., ge=1), limit: int = Query(50, ge=1, le=200)):
        return characters_of(request, kind, id, limit)

    return handler


router.add_api_route(
    "/movies/{id}/characters",
    _characters_route("movie"),
    methods=["GET"],
    summary="A movie's characters, in cast order",
    responses=documented(errors.NOT_FOUND),
)
router.add_api_route(
    "/series/{id}/characters",
    _characters_route("tv"),
    methods=["GET"],
    summary="A series' characters, in cast order",
    responses=documented(errors.NOT_FOUND),
)


@router.get(
    "/people/{id}/filmography", summary="A person and their filmography, newest first", responses=_LOOKUP_ERRORS
)
async def filmography(request: Request, id: int = Path(..., ge=1)):
    catalog = request.app.state.catalog

    async def produce():
        found = catalog.filmography(id)
        if (found is None or found["person"].get("stub")) and await _fetch_person(request, id):
            found = catalog.filmography(id)
        return found

    return await _cached(request, ("person", id), produce)


# A character's id is what follows "character:" in its key: a number (seed, corpus) or TMDB's
# credit id (hex), so Community can check a favourite and show its name and title.
CHARACTER_ID = r"^[A-Za-z0-9]{1,64}$"


@router.get("/characters/{id}", summary="A character: name, title, actor", responses=documented(errors.NOT_FOUND))
async def character(request: Request, id: str = Path(..., pattern=CHARACTER_ID)):
    rec = request.app.state.catalog.entity(f"character:{id}")
    if rec is None or rec.get("type") != "character":
        raise errors.NOT_FOUND(f"No character with id {id}.")
    return rec
