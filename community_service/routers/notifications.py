"""Notifications: the in-app list, unread count, mark read, the live stream, preferences, devices."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from community_service import errors
from community_service.notifications import live
from community_service.notifications import service as notifications
from community_service.notifications.models import (
    Device,
    DeviceRequest,
    NotificationPage,
    Preferences,
    PreferencesUpdate,
    ReadAll,
    ReadAnswer,
    ReadIds,
    UnreadCount,
)
from community_service.routers.common import DEFAULT_LIMIT, MAX_LIMIT, pool, responses
from shared.auth import CurrentUser, get_current_user
from shared.pagination import INVALID_CURSOR, SEQUENCE_PATTERN, cursor_query

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("", response_model=NotificationPage, responses=responses(INVALID_CURSOR))
async def list_notifications(
    request: Request,
    unread: bool = Query(False, description="Only unread ones."),
    cursor: str | None = cursor_query(SEQUENCE_PATTERN),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    user: CurrentUser = Depends(get_current_user),
):
    """The caller's notifications, newest first."""
    return await notifications.list_notifications(pool(request), user, cursor=cursor, unread=unread, limit=limit)


@router.get("/unread-count", response_model=UnreadCount, responses=responses())
async def unread_count(request: Request, user: CurrentUser = Depends(get_current_user)):
    return await notifications.unread_count(pool(request), user)


@router.post("/read", response_model=ReadAnswer, responses=responses())
async def mark_read(body: ReadIds | ReadAll, request: Request, user: CurrentUser = Depends(get_current_user)):
    """`{ids}` or `{all: true}`; ids that are not the caller's change nothing."""
    return await notifications.mark_read(pool(request), user, body.ids if isinstance(body, ReadIds) else None)


@router.get(
    "/stream",
    responses=responses()
    | {200: {"content": {"text/event-stream": {}}, "description": "one `notification` event per new notification"}},
)
async def stream(
    request: Request,
    last_event_id: str = Header(  # not `| None`: the document states a string, never null
        None,
        alias="Last-Event-ID",
        pattern=r"^[0-9]{1,18}$",
        description="The last event id received: what came after it is sent first.",
    ),
    user: CurrentUser = Depends(get_current_user),
):
    """Server-sent events: `id: <seq>`, `event: notification`, `data: <notification>`. Reconnecting
    with `Last-Event-ID` sends what was missed, then live ones. Ends after a few minutes (then reconnect)."""
    state = request.app.state
    settings = state.settings
    frames = live.stream(
        pool(request),
        state.notification_hub,
        user.user_id,
        int(last_event_id) if last_event_id is not None else None,
        heartbeat=settings.notification_stream_heartbeat_seconds,
        max_seconds=settings.notification_stream_max_seconds,
    )
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get("/preferences", response_model=Preferences, responses=responses())
async def get_preferences(request: Request, user: CurrentUser = Depends(get_current_user)):
    """Per channel and kind; in-app is always on. Defaults: email for subscription and payment only,
    push for everything but marketing."""
    return await notifications.get_preferences(pool(request), user)


@router.put("/preferences", response_model=Preferences, responses=responses())
async def put_preferences(body: PreferencesUpdate, request: Request, user: CurrentUser = Depends(get_current_user)):
    """Changes the kinds named; answers every setting."""
    return await notifications.put_preferences(pool(request), user, {"email": body.email, "push": body.push})


@router.post("/devices", status_code=201, response_model=Device, responses=responses())
async def add_device(body: DeviceRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    """Registers an Expo push token for the caller (idempotent)."""
    return await notifications.add_device(pool(request), user, body.expo_push_token, body.platform)


@router.delete(
    "/devices/{token}", status_code=204, response_class=Response, responses=responses(errors.DEVICE_NOT_FOUND)
)
async def remove_device(
    request: Request, token: str = Path(max_length=220), user: CurrentUser = Depends(get_current_user)
):
    await notifications.remove_device(pool(request), user, token)
    return Response(status_code=204)
