"""A user's own figures and progression: /analytics/me, check-in, achievements, flip tickets."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Request

from analytics_service import errors, rules, service_user
from analytics_service.models import (
    AchievementList,
    CheckinRequest,
    CheckinResponse,
    FlipResult,
    FlipTicketList,
    Leaderboard,
    MeResponse,
)
from shared import errors as common
from shared.auth import CurrentUser, get_current_user
from shared.errors import documented
from shared.pagination import cursor_query, decode_keyset, encode_keyset

router = APIRouter(prefix="/analytics", tags=["analytics"])

USER_ROUTE_ERRORS = documented(common.USER_TOKEN_REQUIRED)


async def account(user: Annotated[CurrentUser, Depends(get_current_user)]) -> CurrentUser:
    """A user's own token: these routes answer about the caller and nobody else (shared/auth.py has
    already refused a user token whose subject is not a uuid)."""
    if user.is_service:
        raise common.USER_TOKEN_REQUIRED()
    return user


Account = Annotated[CurrentUser, Depends(account)]


@router.get("/me", response_model=MeResponse, responses=USER_ROUTE_ERRORS)
async def me(request: Request, user: Account):
    return await service_user.profile(request.app.state.db, user.user_id)


@router.post(
    "/checkin", response_model=CheckinResponse, responses=USER_ROUTE_ERRORS | documented(errors.INVALID_TIMEZONE)
)
async def checkin(request: Request, user: Account, body: Annotated[CheckinRequest | None, Body()] = None):
    tz_name = body.timezone if body is not None else None
    if tz_name is not None and not rules.valid_timezone(tz_name):
        raise errors.INVALID_TIMEZONE(timezone=tz_name[:64])
    return await service_user.checkin(request.app.state.db, user.user_id, tz_name)


@router.get("/achievements", response_model=AchievementList, responses=USER_ROUTE_ERRORS)
async def achievements(request: Request, user: Account):
    return {"achievements": await service_user.achievements(request.app.state.db, user.user_id)}


@router.get(
    "/flip-tickets", response_model=FlipTicketList, responses=USER_ROUTE_ERRORS | documented(errors.INVALID_CURSOR)
)
async def flip_tickets(
    request: Request,
    user: Account,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = cursor_query(),
):
    after = decode_keyset(cursor) if cursor else None
    rows = await service_user.flip_tickets(request.app.state.db, user.user_id, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "flip_tickets": [service_user.ticket_out(r) for r in rows],
        "next_cursor": encode_keyset(rows[-1]["granted_at"], rows[-1]["id"]) if more and rows else None,
    }


@router.get(
    "/leaderboard", response_model=Leaderboard, responses=USER_ROUTE_ERRORS | documented(errors.UNSUPPORTED_PERIOD)
)
async def leaderboard(
    request: Request,
    user: Account,
    metric: Annotated[Literal["xp", "messages", "streak"], Query()] = "xp",
    period: Annotated[Literal["week", "month", "all"], Query()] = "all",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
):
    """Top users and the caller's rank. `metric=streak` has only `period=all` (the longest streak): with
    `week` or `month` it is 422 `UNSUPPORTED_PERIOD`."""
    if metric == "streak" and period != "all":
        raise errors.UNSUPPORTED_PERIOD(period=period)
    return await service_user.leaderboard(request.app.state.db, user.user_id, metric, period, limit)


@router.post(
    "/flip-tickets/{ticket_id}/flip",
    response_model=FlipResult,
    responses=USER_ROUTE_ERRORS | documented(common.NOT_FOUND),
)
async def flip_ticket(request: Request, user: Account, ticket_id: uuid.UUID):
    """Reveal the ticket's reward (drawn server-side), once; flipping again answers the same reward."""
    result = await service_user.flip(request.app.state.db, user.user_id, ticket_id)
    if result is None:
        raise common.NOT_FOUND("No such flip ticket.")
    return result
