"""Conversations: list and detail (cursor pagination), delete, regenerate, export, share."""

from __future__ import annotations

import asyncio
import re
import secrets

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from chat_service import errors, export
from chat_service.errors import parse_uuid
from chat_service.models import conversation_out, message_out
from chat_service.repositories import conversations as conv_repo
from chat_service.repositories import messages as msg_repo
from shared.auth import CurrentUser, bearer_token, get_current_user, resolve_tier
from shared.errors import INSUFFICIENT_QUOTA, INSUFFICIENT_TIER, VALIDATION_ERROR, documented
from shared.pagination import (
    SEQUENCE_PATTERN,
    cursor_query,
    decode_keyset,
    decode_sequence,
    encode_keyset,
    encode_sequence,
)

router = APIRouter(tags=["conversations"])


async def owned(request: Request, conversation_id: str, user: CurrentUser):
    conv = await conv_repo.get_owned(request.app.state.db, parse_uuid(conversation_id), user.user_id)
    if conv is None:
        raise errors.CONVERSATION_NOT_FOUND()
    return conv


NOT_FOUND = documented(errors.CONVERSATION_NOT_FOUND)


@router.get("/conversations", responses=documented(errors.INVALID_CURSOR))
async def list_conversations(
    request: Request,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = cursor_query(),
    user: CurrentUser = Depends(get_current_user),
):
    after = decode_keyset(cursor) if cursor else None
    rows = await conv_repo.list_page(request.app.state.db, user.user_id, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_keyset(rows[-1]["activity_at"], rows[-1]["id"]) if more and rows else None
    return {"conversations": [conversation_out(r) for r in rows], "next_cursor": next_cursor}


@router.get(
    "/conversations/{conversation_id}", responses=documented(errors.CONVERSATION_NOT_FOUND, errors.INVALID_CURSOR)
)
async def get_conversation(
    conversation_id: str,
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = cursor_query(SEQUENCE_PATTERN),
    user: CurrentUser = Depends(get_current_user),
):
    """The conversation and a page of its messages: the newest first page, older with `cursor`;
    each page is in chronological order."""
    conv = await owned(request, conversation_id, user)
    before = decode_sequence(cursor) if cursor else None
    db = request.app.state.db
    rows = await msg_repo.page(db, conv["id"], limit=limit + 1, before_seq=before)
    more = len(rows) > limit
    rows = rows[-limit:] if more else rows
    reactions = await msg_repo.reaction_summary(db, [r["id"] for r in rows], user.user_id) if rows else {}
    return {
        "conversation": conversation_out(conv),
        "messages": [message_out(r, reactions.get(str(r["id"]))) for r in rows],
        "next_cursor": encode_sequence(rows[0]["seq"]) if more and rows else None,
    }


@router.delete("/conversations/{conversation_id}", status_code=204, responses=NOT_FOUND)
async def delete_conversation(conversation_id: str, request: Request, user: CurrentUser = Depends(get_current_user)):
    if not await conv_repo.delete_owned(request.app.state.db, parse_uuid(conversation_id), user.user_id):
        raise errors.CONVERSATION_NOT_FOUND()
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/regenerate",
    responses=documented(
        errors.CONVERSATION_NOT_FOUND,
        errors.NOTHING_TO_REGENERATE,
        VALIDATION_ERROR,
        errors.UNKNOWN_MODEL,
        INSUFFICIENT_TIER,
        INSUFFICIENT_QUOTA,
        errors.LLM_UNAVAILABLE,
        errors.CHARACTER_NOT_FOUND,
        errors.COMMUNITY_UNAVAILABLE,
    ),
)
async def regenerate(
    conversation_id: str,
    request: Request,
    body: dict | None = Body(default=None),
    user: CurrentUser = Depends(get_current_user),
):
    model = (body or {}).get("model")
    if model is not None and not isinstance(model, str):
        raise VALIDATION_ERROR("model must be a string.")
    tier = await resolve_tier(request, user)
    return await request.app.state.engine.regenerate(user, tier, conversation_id, model, bearer_token(request))


async def _transcript(db, conv):
    rows = await msg_repo.all_in(db, conv["id"])
    return conversation_out(conv), [message_out(r) for r in rows]


@router.get(
    "/conversations/{conversation_id}/export",
    responses=documented(
        errors.CONVERSATION_NOT_FOUND,
        errors.UNSUPPORTED_FORMAT,
    ),
)
async def export_conversation(
    conversation_id: str,
    request: Request,
    # Declared as the list; the service answers UNSUPPORTED_FORMAT (with the list) for any other.
    format: str = Query("txt", json_schema_extra={"enum": list(export.FORMATS)}),
    user: CurrentUser = Depends(get_current_user),
):
    if format not in export.FORMATS:
        raise errors.UNSUPPORTED_FORMAT(
            f"format must be one of {', '.join(export.FORMATS)}.", formats=list(export.FORMATS)
        )
    conv = await owned(request, conversation_id, user)
    meta, messages = await _transcript(request.app.state.db, conv)
    if format == "pdf":
        data = await asyncio.to_thread(export.to_pdf, meta, messages, request.app.state.settings.chat_pdf_font_path)
    else:
        data = {"txt": export.to_txt, "md": export.to_md, "json": export.to_json}[format](meta, messages)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", conv["character_name"]).strip("-").lower() or "conversation"
    return Response(
        data,
        media_type=export.FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="{slug}-{str(conv["id"])[:8]}.{format}"'},
    )


@router.post("/conversations/{conversation_id}/share", responses=NOT_FOUND)
async def share(conversation_id: str, request: Request, user: CurrentUser = Depends(get_current_user)):
    """A read-only link to the transcript; calling it again returns the same link."""
    conv = await owned(request, conversation_id, user)
    token = conv["share_token"]
    if token is None:
        token = secrets.token_urlsafe(24)
        await conv_repo.set_share_token(request.app.state.db, conv["id"], user.user_id, token)
    base = request.app.state.settings.public_base_url.rstrip("/")
    return {"share_token": token, "url": f"{base}/shared/{token}"}


@router.delete("/conversations/{conversation_id}/share", status_code=204, responses=NOT_FOUND)
async def unshare(conversation_id: str, request: Request, user: CurrentUser = Depends(get_current_user)):
    conv = await owned(request, conversation_id, user)
    await conv_repo.set_share_token(request.app.state.db, conv["id"], user.user_id, None)
    return Response(status_code=204)


@router.get("/shared/{token}", responses=documented(errors.SHARE_NOT_FOUND))
async def shared_transcript(token: str, request: Request):
    """Public and read-only: no ids of the owner, no metadata beyond who said what."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]{16,64}", token):
        raise errors.SHARE_NOT_FOUND()
    conv = await conv_repo.get_shared(request.app.state.db, token)
    if conv is None:
        raise errors.SHARE_NOT_FOUND()
    meta, messages = await _transcript(request.app.state.db, conv)
    return {
        "character": meta["character"],
        "series": meta["series"],
        "type": meta["type"],
        "created_at": meta["created_at"],
        "messages": [
            {
                "sender": "You" if m["role"] == "user" else m["sender"],
                "role": m["role"],
                "content": m["content"],
                "created_at": m["created_at"],
            }
            for m in messages
        ],
    }
