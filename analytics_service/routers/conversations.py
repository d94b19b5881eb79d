"""/conversation-stats: the caller's conversation figures, the most-talked-to characters."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from analytics_service import service_conversations
from analytics_service.models import CharacterStats, ConversationStats
from analytics_service.routers.progress import USER_ROUTE_ERRORS, Account
from shared import errors as common

QUERY_NAMES = frozenset({"period", "limit"})


def only_known_query(request: Request) -> None:
    """An unknown query parameter is a 422, not silently ignored: the document lists the only two."""
    unknown = sorted(set(request.query_params) - QUERY_NAMES)
    if unknown:
        raise common.VALIDATION_ERROR("Unknown query parameter.", unknown=[name[:64] for name in unknown[:10]])


router = APIRouter(prefix="/conversation-stats", tags=["conversation-stats"], dependencies=[Depends(only_known_query)])

Period = Annotated[
    Literal["week", "month", "all"], Query(description="UTC ISO week (from Monday), UTC month, or all time")
]
Limit = Annotated[int, Query(ge=1, le=100, description="list lengths")]


@router.get("/me", response_model=ConversationStats, responses=USER_ROUTE_ERRORS)
async def my_conversation_stats(request: Request, user: Account, period: Period = "all", limit: Limit = 10):
    return await service_conversations.mine(request.app.state.db, user.user_id, period, limit)


@router.get("/characters", response_model=CharacterStats, responses=USER_ROUTE_ERRORS)
async def most_talked_to_characters(request: Request, user: Account, period: Period = "all", limit: Limit = 10):
    return await service_conversations.characters(request.app.state.db, period, limit)
