"""POST /group_chat: up to five characters in one scene."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from chat_service import errors
from chat_service.models import GroupChatRequest, GroupChatResponse, json_response
from shared.auth import CurrentUser, bearer_token, get_current_user, resolve_tier
from shared.errors import INSUFFICIENT_QUOTA, INSUFFICIENT_TIER, documented

router = APIRouter(tags=["chat"])


GROUP_RESPONSES = {200: {"model": GroupChatResponse}} | documented(
    INSUFFICIENT_TIER,
    INSUFFICIENT_QUOTA,
    errors.CONVERSATION_NOT_FOUND,
    errors.NOT_A_GROUP_CONVERSATION,
    errors.EMPTY_MESSAGE,
    errors.MESSAGE_TOO_LONG,
    errors.UNKNOWN_MODEL,
    errors.NO_CHARACTERS,
    errors.TOO_MANY_CHARACTERS,
    errors.DUPLICATE_CHARACTER,
    errors.LLM_UNAVAILABLE,
    errors.CHARACTER_NOT_FOUND,
    errors.COMMUNITY_UNAVAILABLE,
)


@router.post("/group_chat", responses=GROUP_RESPONSES)
async def group_chat(body: GroupChatRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    tier = await resolve_tier(request, user)
    return json_response(
        await request.app.state.engine.group(
            user,
            tier,
            characters=body.characters,
            message=body.message,
            conversation_id=body.conversation_id,
            model=body.model,
            token=bearer_token(request),
        )
    )
