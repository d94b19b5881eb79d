"""Messages: edit, delete, pin, reactions (own conversations only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request, Response

from chat_service import errors
from chat_service.errors import parse_uuid
from chat_service.models import EditMessage, ReactionRequest, message_out
from chat_service.repositories import conversations as conv_repo
from chat_service.repositories import messages as msg_repo
from shared.auth import CurrentUser, get_current_user
from shared.errors import documented
from shared.llm.tokens import count_tokens

router = APIRouter(tags=["messages"])


async def owned_message(request: Request, message_id: str, user: CurrentUser):
    row = await msg_repo.get_owned(request.app.state.db, parse_uuid(message_id, errors.MESSAGE_NOT_FOUND), user.user_id)
    if row is None:
        raise errors.MESSAGE_NOT_FOUND()
    return row


NOT_FOUND = documented(errors.MESSAGE_NOT_FOUND)


@router.patch(
    "/messages/{message_id}",
    responses=documented(
        errors.MESSAGE_NOT_FOUND,
        errors.CANNOT_EDIT_REPLY,
        errors.EMPTY_MESSAGE,
        errors.MESSAGE_TOO_LONG,
    ),
)
async def edit_message(
    message_id: str, body: EditMessage, request: Request, user: CurrentUser = Depends(get_current_user)
):
    row = await owned_message(request, message_id, user)
    if row["role"] != "user":
        raise errors.CANNOT_EDIT_REPLY()
    content = request.app.state.engine.check_message(body.content)
    db = request.app.state.db
    async with db.acquire() as conn:
        async with conn.transaction():
            updated = await msg_repo.edit(conn, row["id"], content, count_tokens(content), row["content"])
            await conv_repo.recount(conn, row["conversation_id"])
    return message_out(updated)


@router.delete("/messages/{message_id}", status_code=204, responses=NOT_FOUND)
async def delete_message(message_id: str, request: Request, user: CurrentUser = Depends(get_current_user)):
    row = await owned_message(request, message_id, user)
    async with request.app.state.db.acquire() as conn:
        async with conn.transaction():
            await msg_repo.delete(conn, row["id"])
            await conv_repo.recount(conn, row["conversation_id"])
    return Response(status_code=204)


@router.post("/messages/{message_id}/pin", responses=NOT_FOUND)
async def pin(message_id: str, request: Request, user: CurrentUser = Depends(get_current_user)):
    row = await owned_message(request, message_id, user)
    updated = await msg_repo.set_pinned(request.app.state.db, row["id"], True)
    return {"id": str(updated["id"]), "pinned": updated["pinned"]}


@router.delete("/messages/{message_id}/pin", responses=NOT_FOUND)
async def unpin(message_id: str, request: Request, user: CurrentUser = Depends(get_current_user)):
    row = await owned_message(request, message_id, user)
    updated = await msg_repo.set_pinned(request.app.state.db, row["id"], False)
    return {"id": str(updated["id"]), "pinned": updated["pinned"]}


async def _summary(db, message_id, user_id):
    summary = await msg_repo.reaction_summary(db, [message_id], user_id)
    return {
        "message_id": str(message_id),
        "reactions": summary.get(str(message_id), {"like": 0, "dislike": 0, "mine": []}),
    }


@router.post("/messages/{message_id}/reactions", responses=NOT_FOUND)
async def react(
    message_id: str, body: ReactionRequest, request: Request, user: CurrentUser = Depends(get_current_user)
):
    row = await owned_message(request, message_id, user)
    db = request.app.state.db
    async with db.acquire() as conn:
        async with conn.transaction():
            await msg_repo.react(conn, row["id"], user.user_id, body.reaction)
    return await _summary(db, row["id"], user.user_id)


@router.delete(
    "/messages/{message_id}/reactions/{reaction}",
    responses=documented(errors.MESSAGE_NOT_FOUND, errors.UNKNOWN_REACTION),
)
async def unreact(
    message_id: str,
    request: Request,
    reaction: str = Path(json_schema_extra={"enum": ["like", "dislike"]}),  # else UNKNOWN_REACTION
    user: CurrentUser = Depends(get_current_user),
):
    if reaction not in ("like", "dislike"):
        raise errors.UNKNOWN_REACTION()
    row = await owned_message(request, message_id, user)
    await msg_repo.unreact(request.app.state.db, row["id"], user.user_id, reaction)
    return await _summary(request.app.state.db, row["id"], user.user_id)
