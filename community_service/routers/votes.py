"""Votes, reports and moderators' actions."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from community_service import errors
from community_service import service_votes as votes_svc
from community_service.models import ReportRequest, VoteRequest
from community_service.routers.common import feed_pages, pool, responses
from community_service.service import is_moderator
from shared.auth import CurrentUser, get_current_user
from shared.responses import json_response

router = APIRouter(tags=["votes"])
# What can be reported and moderated (post: a room's discussion post, by its id).
TargetType = Literal["story", "scenario", "character", "room", "post"]
VoteTargetType = Literal["story", "scenario", "character", "room"]


@router.put("/votes", responses=responses(errors.TARGET_NOT_FOUND))
async def put_vote(body: VoteRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    """Up (1) or down (-1); voting again changes the vote. Answers the target's counts."""
    # orjson straight to bytes: the answer is plain JSON types (FastAPI's encoder walk costs more).
    return json_response(
        await votes_svc.vote(
            request.app.state.votes, user, body.target_type, body.target_id, body.value, request.app.state.engagement
        )
    )


@router.delete("/votes/{target_type}/{target_id}", responses=responses(errors.TARGET_NOT_FOUND))
async def delete_vote(
    target_type: VoteTargetType,
    request: Request,
    target_id: str = Path(max_length=64),
    user: CurrentUser = Depends(get_current_user),
):
    return json_response(
        await votes_svc.vote(request.app.state.votes, user, target_type, target_id, 0, request.app.state.engagement)
    )


@router.post(
    "/reports",
    status_code=201,
    responses=responses(errors.TARGET_NOT_FOUND, errors.ALREADY_REPORTED),
    tags=["moderation"],
)
async def report(body: ReportRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    return await votes_svc.report(pool(request), user, body.target_type, body.target_id, body.reason)


async def moderator_user(user: CurrentUser = Depends(get_current_user)) -> CurrentUser:
    if not is_moderator(user):
        raise errors.MODERATOR_REQUIRED()
    return user


@router.get("/moderation/queue", responses=responses(errors.MODERATOR_REQUIRED), tags=["moderation"])
async def moderation_queue(
    request: Request, limit: int = Query(50, ge=1, le=200), user: CurrentUser = Depends(moderator_user)
):
    """Reported content with open reports, oldest first."""
    return {"queue": await votes_svc.moderation_queue(pool(request), limit), "next_cursor": None}


@router.post(
    "/moderation/{target_type}/{target_id}/{action}",
    tags=["moderation"],
    responses=responses(errors.MODERATOR_REQUIRED, errors.TARGET_NOT_FOUND),
)
async def moderate(
    target_type: TargetType,
    action: Literal["approve", "remove"],
    request: Request,
    target_id: str = Path(max_length=64),
    note: str | None = Body(None, embed=True, max_length=1000),
    user: CurrentUser = Depends(moderator_user),
):
    """approve closes the reports; remove hides the content from feeds, lists and share links. Audited."""
    done = await votes_svc.moderate(pool(request), user, target_type, target_id, action, note)
    if action == "remove":
        feed_pages(request).clear()
        if target_type == "room":  # its open document connections are closed (joining is refused too)
            await request.app.state.room_docs.room_deleted(done["target_id"])
    return done
