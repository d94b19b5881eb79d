"""Fandom rooms: rooms, joining, members and roles, posts, and the co-edited document's WebSocket."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, WebSocket
from fastapi.responses import JSONResponse

from community_service import collab, errors
from community_service import service_rooms as rooms
from community_service.models_rooms import MemberRole, PostCreate, RoomCreate, RoomJoin
from community_service.routers.common import DEFAULT_LIMIT, MAX_LIMIT, pool, responses, upstreams
from shared.auth import (
    CurrentUser,
    InvalidToken,
    bearer_token,
    get_current_user,
    is_deleted,
    require_known_user,
    user_from_claims,
)
from shared.errors import INVALID_TOKEN, NOT_AUTHENTICATED, USER_DELETED, APIError, ErrorCode
from shared.pagination import INVALID_CURSOR, cursor_query

router = APIRouter(tags=["rooms"])
RoomId = Path(max_length=64)
# Auth's refusals of a referral code, passed on as they are (listed here for the OpenAPI document).
AUTH_REFERRAL_ANSWERS = (
    ErrorCode(403, "ACCOUNT_REQUIRED", "Create an account (and verify its email) to use a referral code."),
    ErrorCode(404, "INVALID_REFERRAL_CODE", "That referral code does not exist."),
    ErrorCode(409, "REFERRAL_ALREADY_APPLIED", "You have already used a referral code."),
    ErrorCode(429, "RATE_LIMITED", "Too many requests; try again shortly."),
)
MemberId = Path(max_length=128)


def room_docs(request_or_socket) -> collab.RoomDocs:
    return request_or_socket.app.state.room_docs


@router.post("/rooms", status_code=201, responses=responses(errors.STORY_NOT_FOUND))
async def create_room(body: RoomCreate, request: Request, user: CurrentUser = Depends(get_current_user)):
    """A room, empty or co-editing one of the caller's stories; the caller is its owner."""
    return await rooms.create_room(pool(request), user, body.model_dump())


@router.post(
    "/rooms/join",
    responses=responses(
        errors.INVITE_NOT_FOUND, errors.ROOM_NOT_FOUND, errors.UPSTREAM_UNAVAILABLE, *AUTH_REFERRAL_ANSWERS
    ),
)
async def join_room(body: RoomJoin, request: Request, user: CurrentUser = Depends(get_current_user)):
    """Joins as a viewer. With `referral_code`, Auth records the referral by its own rules first;
    its refusals (404 INVALID_REFERRAL_CODE, 409 SELF_REFERRAL / REFERRAL_ALREADY_APPLIED /
    REFERRAL_WINDOW_CLOSED, 403 ACCOUNT_REQUIRED) are answered as they are and nothing changes."""
    return await rooms.join_room(
        pool(request), upstreams(request), user, bearer_token(request), body.model_dump(), request.app.state.engagement
    )


@router.get("/rooms", responses=responses(INVALID_CURSOR))
async def list_rooms(
    request: Request,
    scope: Literal["public", "mine"] = "public",
    cursor: str | None = cursor_query(),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    user: CurrentUser = Depends(get_current_user),
):
    """Public rooms (newest first) or the caller's rooms (most recently joined first)."""
    return await rooms.list_rooms(pool(request), user, scope, cursor, limit)


# `:uuid` so that /rooms/join is not also this route (its Allow header would list GET).
@router.get("/rooms/{room_id:uuid}", responses=responses(errors.ROOM_NOT_FOUND))
async def get_room(request: Request, room_id: uuid.UUID, user: CurrentUser = Depends(get_current_user)):
    """The room with its members and roles, and its live document in this worker (`open`: loaded,
    `connections`: clients on it); an invite-only room is a 404 to non-members."""
    room = await rooms.get_room(pool(request), user, str(room_id))
    return {**room, "document": room_docs(request).status(room["id"])}


@router.patch(
    "/rooms/{room_id}/members/{user_id}",
    responses=responses(
        errors.ROOM_NOT_FOUND, errors.ROOM_OWNER_REQUIRED, errors.MEMBER_NOT_FOUND, errors.OWNER_ROLE_FIXED
    ),
)
async def set_member_role(
    body: MemberRole,
    request: Request,
    room_id: str = RoomId,
    user_id: str = MemberId,
    user: CurrentUser = Depends(get_current_user),
):
    """Owner only: a member becomes an editor or a viewer (open document connections follow)."""
    answer = await rooms.set_member_role(pool(request), user, room_id, user_id, body.role)
    await room_docs(request).member_changed(answer["room_id"], user_id, body.role)
    return answer


@router.delete(
    "/rooms/{room_id}/members/{user_id}",
    status_code=204,
    responses=responses(
        errors.ROOM_NOT_FOUND, errors.ROOM_OWNER_REQUIRED, errors.MEMBER_NOT_FOUND, errors.OWNER_ROLE_FIXED
    ),
)
async def remove_member(
    request: Request, room_id: str = RoomId, user_id: str = MemberId, user: CurrentUser = Depends(get_current_user)
):
    """The owner removes a member, or a member leaves (their own id); the owner cannot leave."""
    rid = await rooms.remove_member(pool(request), user, room_id, user_id)
    await room_docs(request).member_changed(rid, user_id, None)
    return Response(status_code=204)


@router.get(
    "/rooms/{room_id}/posts", responses=responses(errors.ROOM_NOT_FOUND, errors.ROOM_MEMBERS_ONLY, INVALID_CURSOR)
)
async def list_posts(
    request: Request,
    room_id: str = RoomId,
    cursor: str | None = cursor_query(),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    user: CurrentUser = Depends(get_current_user),
):
    """The room's discussion, newest first (members only)."""
    return await rooms.list_posts(pool(request), user, room_id, cursor, limit)


@router.post(
    "/rooms/{room_id}/posts", status_code=201, responses=responses(errors.ROOM_NOT_FOUND, errors.ROOM_MEMBERS_ONLY)
)
async def add_post(
    body: PostCreate, request: Request, room_id: str = RoomId, user: CurrentUser = Depends(get_current_user)
):
    return await rooms.add_post(pool(request), user, room_id, body.body)


# The document ------------------------------------------------------------------------------------


def _socket_token(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The token and the subprotocol to answer with. Browsers cannot set headers on a WebSocket:
    the token comes as a subprotocol (`bearer.<token>`, or the bare token, next to e.g. `yjs`) or
    as `?token=`. A browser fails the connection unless the server picks one of the offered
    subprotocols, so one is echoed (the non-token one when there is one)."""
    offered = [p.strip() for p in websocket.scope.get("subprotocols") or [] if p.strip()]
    token = None
    for protocol in offered:
        if protocol.startswith("bearer."):
            token = protocol.removeprefix("bearer.")
        elif protocol.count(".") == 2:
            token = protocol
    others = [p for p in offered if not p.startswith("bearer.") and p.count(".") != 2]
    chosen = others[0] if others else (offered[0] if offered else None)
    return token or websocket.query_params.get("token"), chosen


async def _refuse(websocket: WebSocket, error: APIError) -> None:
    """Refuses the handshake with the error's status and envelope (where the server supports the
    denial response extension, as uvicorn does), else closes it with 4000 + status."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(error.body(), status_code=error.status))
    else:
        await websocket.close(code=4000 + error.status, reason=error.code)


@router.websocket("/rooms/{room_id}/doc")
async def room_document(websocket: WebSocket, room_id: str):
    """Yjs sync (pycrdt-websocket) on the room's document: editors and the owner write, viewers
    read; a bad token is refused with 401, a non-member (or no such room) with 404."""
    token, subprotocol = _socket_token(websocket)
    if not token:
        return await _refuse(websocket, NOT_AUTHENTICATED())
    try:
        user = user_from_claims(await websocket.app.state.token_validator.decode(token))
    except InvalidToken as exc:
        return await _refuse(websocket, INVALID_TOKEN(f"Invalid token: {exc}."))
    if is_deleted(websocket.app, user.user_id):
        return await _refuse(websocket, USER_DELETED())
    try:
        if not user.is_service:
            await require_known_user(websocket.app, user.user_id)
        rid, role = await rooms.document_access(websocket.app.state.db, user, room_id)
    except APIError as exc:
        return await _refuse(websocket, exc)
    await websocket.accept(subprotocol=subprotocol)
    await room_docs(websocket).serve(collab.MemberChannel(websocket, rid, user.user_id, role))
