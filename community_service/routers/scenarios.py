"""The scenario library: public and personal scenarios."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from community_service import errors
from community_service import service as svc
from community_service.cursors import CursorQuery
from community_service.models import ScenarioCreate, ScenarioUpdate
from community_service.routers.common import DEFAULT_LIMIT, MAX_LIMIT, listing, moderator, pool, responses, upstreams
from shared.auth import CurrentUser, bearer_token, get_current_user
from shared.errors import FORBIDDEN, INSUFFICIENT_QUOTA
from shared.openapi import STORABLE_PATTERN

router = APIRouter(tags=["scenarios"])
MODERATED = (errors.CONTENT_FLAGGED, errors.MODERATION_UNAVAILABLE)


@router.post("/scenarios", status_code=201, responses=responses(*MODERATED, errors.CHARACTER_NOT_FOUND))
async def create_scenario(body: ScenarioCreate, request: Request, user: CurrentUser = Depends(get_current_user)):
    return await svc.create_scenario(pool(request), moderator(request), user, body.model_dump())


@router.get("/scenarios", responses=responses(errors.INVALID_CURSOR))
async def list_scenarios(
    request: Request,
    scope: Literal["public", "mine"] = "public",
    sort: Literal["hot", "top", "new"] = "hot",
    q: str | None = Query(None, min_length=1, max_length=100, pattern=STORABLE_PATTERN),
    cursor: str | None = CursorQuery,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    user: CurrentUser = Depends(get_current_user),
):
    items, next_cursor = await svc.list_scenarios(
        pool(request), user, scope=scope, sort=sort, q=q, cursor=cursor, limit=limit
    )
    return listing("scenarios", items, next_cursor)


@router.get("/scenarios/{scenario_id}", responses=responses(errors.SCENARIO_NOT_FOUND))
async def get_scenario(
    request: Request, scenario_id: str = Path(max_length=64), user: CurrentUser = Depends(get_current_user)
):
    return await svc.get_scenario(pool(request), user, scenario_id)


@router.patch(
    "/scenarios/{scenario_id}",
    responses=responses(errors.SCENARIO_NOT_FOUND, FORBIDDEN, errors.CHARACTER_NOT_FOUND, *MODERATED),
)
async def update_scenario(
    body: ScenarioUpdate,
    request: Request,
    scenario_id: str = Path(max_length=64),
    user: CurrentUser = Depends(get_current_user),
):
    return await svc.update_scenario(
        pool(request), moderator(request), user, scenario_id, body.model_dump(exclude_unset=True)
    )


@router.delete("/scenarios/{scenario_id}", status_code=204, responses=responses(errors.SCENARIO_NOT_FOUND, FORBIDDEN))
async def delete_scenario(
    request: Request, scenario_id: str = Path(max_length=64), user: CurrentUser = Depends(get_current_user)
):
    await svc.delete_scenario(pool(request), user, scenario_id)
    return Response(status_code=204)


@router.post(
    "/scenarios/{scenario_id}/start",
    responses=responses(
        errors.SCENARIO_NOT_FOUND, errors.SCENARIO_WITHOUT_CHARACTERS, INSUFFICIENT_QUOTA, errors.UPSTREAM_UNAVAILABLE
    ),
)
async def start_scenario(
    request: Request, scenario_id: str = Path(max_length=64), user: CurrentUser = Depends(get_current_user)
):
    """A new chat conversation opened with the scenario (through Chat, on the caller's quota)."""
    return await svc.start_scenario(pool(request), upstreams(request), user, bearer_token(request), scenario_id)
