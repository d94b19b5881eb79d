"""POST /group_chat: up to five characters in one scene."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from chat_service.models import GroupChatRequest, GroupChatResponse, json_response
from shared.auth import CurrentUser, get_current_user, resolve_tier

router = APIRouter(tags=["chat"])


@router.post("/group_chat", responses={200: {"model": GroupChatResponse}})
async def group_chat(body: GroupChatRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    tier = await resolve_tier(request, user)
    return json_response(await request.app.state.engine.group(
        user, tier, characters=body.characters, message=body.message, conversation_id=body.conversation_id, model=body.model
    ))
