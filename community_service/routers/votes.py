"""Votes, reports and moderators' actions."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import ValidationError
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Message, Receive, Scope, Send

from community_service import errors
from community_service import service_votes as votes_svc
from community_service.models import ReportRequest, VoteRequest
from community_service.routers.common import feed_pages, pool, responses
from community_service.service import is_moderator
from shared.auth import CurrentUser, authenticate, get_current_user
from shared.errors import APIError
from shared.responses import json_response

router = APIRouter(tags=["votes"])
# What can be reported and moderated (post: a room's discussion post, by its id).
TargetType = Literal["story", "scenario", "character", "room", "post"]
VoteTargetType = Literal["story", "scenario", "character", "room"]


@router.put("/votes", responses=responses(errors.TARGET_NOT_FOUND))
async def put_vote(body: VoteRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    """Up (1) or down (-1); voting again changes the vote. Answers the target's counts."""
    return await _cast(request, user, body)


async def _cast(request: Request, user: CurrentUser, body: VoteRequest) -> Response:
    # orjson straight to bytes: the answer is plain JSON types (FastAPI's encoder walk costs more).
    state = request.app.state
    return json_response(
        await votes_svc.vote(state.votes, user, body.target_type, body.target_id, body.value, state.engagement)
    )


# The hot path: PUT /votes without FastAPI's per-request machinery (body reading, content-type
# parsing, dependency solving, exit stacks; with the router order the worker's CPU per vote went
# 0.46 -> 0.33 ms, docs/benchmarks.md).
# Put before FastAPI's routes (create_app(first_routes=...)), inside the shared middleware (request
# id, body limit, rate limit, errors). It answers only a request it is sure of: a JSON body that
# FastAPI's route would read the same way (json.loads, then the same model's validation in Python
# mode) and a signed-in caller. Anything else (another content type, invalid JSON or fields, no or a
# bad token) goes on to the FastAPI route above with the body replayed, which answers it exactly as
# before (which error, in which order). put_vote stays the documented route in /openapi.json.
_REDISPATCHED = "community.votes.redispatched"


class _LeanVoteRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if _REDISPATCHED in scope:
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        return (match, child_scope) if match == Match.FULL else (Match.NONE, {})


async def _lean_put_vote(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app (Starlette's Route would wrap a plain function as a request -> response endpoint)."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    raw = b"".join(chunks)
    request = Request(scope, receive)
    response = await _lean_answer(request, raw)
    if response is not None:
        await response(scope, receive, send)
        return
    replay = [{"type": "http.request", "body": raw, "more_body": False}]

    async def replayed() -> Message:
        return replay.pop() if replay else await receive()

    scope[_REDISPATCHED] = True
    await scope["router"](scope, replayed, send)


async def _lean_answer(request: Request, raw: bytes) -> Response | None:
    """The vote's answer, or None for FastAPI's route to answer (errors included)."""
    content_type = request.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != "application/json" or not raw:
        return None
    try:
        body = VoteRequest.model_validate(json.loads(raw))
    except (ValueError, RecursionError, ValidationError):  # bad JSON, too deep, bad fields: FastAPI's to answer
        return None
    try:
        user = await authenticate(request)
    except APIError:
        return None
    if user is None:
        return None
    return await _cast(request, user, body)


class _ASGIEndpoint:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def lean_routes() -> list[BaseRoute]:
    return [_LeanVoteRoute("/votes", _ASGIEndpoint(_lean_put_vote), methods=["PUT"], include_in_schema=False)]


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
