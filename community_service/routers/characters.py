"""Custom characters (personality definitions), user-made universes, favourites."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from community_service import errors
from community_service import service as svc
from community_service.cursors import CursorQuery
from community_service.models import CharacterCreate, CharacterUpdate, UniverseCreate
from community_service.routers.common import DEFAULT_LIMIT, MAX_LIMIT, listing, moderator, pool, responses, upstreams
from shared.auth import CurrentUser, get_current_user
from shared.errors import FORBIDDEN
from shared.openapi import STORABLE_PATTERN

router = APIRouter(tags=["characters"])
MODERATED = (errors.CONTENT_FLAGGED, errors.MODERATION_UNAVAILABLE)


@router.post("/characters", status_code=201, responses=responses(*MODERATED, errors.UNIVERSE_NOT_FOUND))
async def create_character(body: CharacterCreate, request: Request, user: CurrentUser = Depends(get_current_user)):
    """A custom character; a public one passes moderation first."""
    return await svc.create_character(pool(request), moderator(request), user, body.model_dump())


@router.get("/characters", responses=responses(errors.INVALID_CURSOR))
async def list_characters(
    request: Request,
    scope: Literal["public", "mine"] = "public",
    sort: Literal["top", "new"] = "new",
    q: str | None = Query(None, min_length=1, max_length=100, pattern=STORABLE_PATTERN),
    cursor: str | None = CursorQuery,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    user: CurrentUser = Depends(get_current_user),
):
    items, next_cursor = await svc.list_characters(
        pool(request), user, scope=scope, q=q, sort=sort, cursor=cursor, limit=limit
    )
    return listing("characters", items, next_cursor)


@router.get("/characters/{character_id}", responses=responses(errors.CHARACTER_NOT_FOUND))
async def get_character(
    request: Request, character_id: str = Path(max_length=64), user: CurrentUser = Depends(get_current_user)
):
    """The caller's own character, or a public one (Chat reads definitions here with the user's token)."""
    return await svc.get_character(pool(request), user, character_id)


@router.patch(
    "/characters/{character_id}",
    responses=responses(errors.CHARACTER_NOT_FOUND, FORBIDDEN, errors.UNIVERSE_NOT_FOUND, *MODERATED),
)
async def update_character(
    body: CharacterUpdate,
    request: Request,
    character_id: str = Path(max_length=64),
    user: CurrentUser = Depends(get_current_user),
):
    return await svc.update_character(
        pool(request), moderator(request), user, character_id, body.model_dump(exclude_unset=True)
    )


@router.delete(
    "/characters/{character_id}", status_code=204, responses=responses(errors.CHARACTER_NOT_FOUND, FORBIDDEN)
)
async def delete_character(
    request: Request, character_id: str = Path(max_length=64), user: CurrentUser = Depends(get_current_user)
):
    await svc.delete_character(pool(request), user, character_id)
    return Response(status_code=204)


# Universes ----------------------------------------------------------------------------------


@router.post("/universes", status_code=201, responses=responses(*MODERATED), tags=["universes"])
async def create_universe(body: UniverseCreate, request: Request, user: CurrentUser = Depends(get_current_user)):
    return await svc.create_universe(
        pool(request), moderator(request), user, body.name, body.description, body.visibility
    )


@router.get("/universes", responses=responses(errors.INVALID_CURSOR), tags=["universes"])
async def list_universes(
    request: Request,
    scope: Literal["public", "mine"] = "mine",
    cursor: str | None = CursorQuery,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    user: CurrentUser = Depends(get_current_user),
):
    items, next_cursor = await svc.list_universes(pool(request), user, scope, cursor, limit)
    return listing("universes", items, next_cursor)


@router.get("/universes/{universe_id}", responses=responses(errors.UNIVERSE_NOT_FOUND), tags=["universes"])
async def get_universe(
    request: Request, universe_id: str = Path(max_length=64), user: CurrentUser = Depends(get_current_user)
):
    return await svc.get_universe(pool(request), user, universe_id)


# Favourites ---------------------------------------------------------------------------------

FavoriteKind = Literal["character", "title"]


@router.put(
    "/favorites/{kind}/{target_id}",
    status_code=204,
    tags=["favorites"],
    responses=responses(errors.CHARACTER_NOT_FOUND, errors.TITLE_NOT_FOUND, errors.UPSTREAM_UNAVAILABLE),
)
async def put_favorite(
    kind: FavoriteKind,
    request: Request,
    target_id: str = Path(max_length=64),
    user: CurrentUser = Depends(get_current_user),
):
    """kind `character`: a custom character's id, or a Content character's key `character:<id>`;
    kind `title`: `movie:<tmdb id>` or `tv:<tmdb id>`."""
    await svc.put_favorite(pool(request), upstreams(request), user, kind, target_id)
    return Response(status_code=204)


@router.delete(
    "/favorites/{kind}/{target_id}", status_code=204, tags=["favorites"], responses=responses(errors.FAVORITE_NOT_FOUND)
)
async def delete_favorite(
    kind: FavoriteKind,
    request: Request,
    target_id: str = Path(max_length=64),
    user: CurrentUser = Depends(get_current_user),
):
    await svc.delete_favorite(pool(request), user, kind, target_id)
    return Response(status_code=204)


@router.get("/favorites", responses=responses(errors.UPSTREAM_UNAVAILABLE), tags=["favorites"])
async def list_favorites(
    request: Request, kind: FavoriteKind | None = None, user: CurrentUser = Depends(get_current_user)
):
    favorites = await svc.list_favorites(pool(request), upstreams(request), user, kind)
    return {"favorites": favorites, "next_cursor": None}
