"""POST /talk_with (plain or server-sent events) and GET /models."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from chat_service import attachments, errors
from chat_service.models import IMAGE_MEDIA_TYPES, STORED_MESSAGE, Attachment, TalkRequest, TalkResponse, json_response
from chat_service.streaming import StreamRun
from shared.auth import TIER_NAMES, CurrentUser, bearer_token, get_current_user, resolve_tier
from shared.errors import INSUFFICIENT_QUOTA, INSUFFICIENT_TIER, documented
from shared.openapi import STORABLE_PATTERN

router = APIRouter(tags=["chat"])


def engine(request: Request):
    return request.app.state.engine


def wants_stream(request: Request, body: TalkRequest) -> bool:
    return body.stream or "text/event-stream" in request.headers.get("accept", "")


async def _talk(request: Request, user: CurrentUser, body: TalkRequest):
    eng = engine(request)
    plan = await eng.plan(
        user,
        message=body.message,
        character=body.character,
        series=body.series,
        conversation_id=body.conversation_id,
        model=body.model,
        attachments=body.attachments,
        character_id=body.character_id,
        token=bearer_token(request),
    )
    if not wants_stream(request, body):
        return json_response(await eng.talk(plan))
    run = StreamRun(eng, plan).start()
    await run.started()  # quota reserved and prompt built; or its error, answered as JSON
    return StreamingResponse(
        run.events(eng.settings.chat_stream_heartbeat_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


TALK_RESPONSES = {
    200: {
        "model": TalkResponse,
        "description": "The reply; with `stream: true` or `Accept: text/event-stream`, server-sent events "
        "(`token` frames, then one `done` carrying this body, or one `error`).",
        "content": {"text/event-stream": {}},
    }
} | documented(
    INSUFFICIENT_TIER,
    INSUFFICIENT_QUOTA,
    errors.CONVERSATION_NOT_FOUND,
    errors.NOT_A_SINGLE_CONVERSATION,
    errors.EMPTY_MESSAGE,
    errors.MESSAGE_TOO_LONG,
    errors.UNKNOWN_MODEL,
    errors.MODEL_CANNOT_SEE_IMAGES,
    errors.TOO_MANY_ATTACHMENTS,
    errors.INVALID_ATTACHMENT,
    errors.ATTACHMENT_TOO_LARGE,
    errors.ATTACHMENT_NOT_AN_IMAGE,
    errors.LLM_UNAVAILABLE,
    errors.CHARACTER_NOT_FOUND,
    errors.COMMUNITY_UNAVAILABLE,
)


@router.post("/talk_with", responses=TALK_RESPONSES)
async def talk_with(body: TalkRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    return await _talk(request, user, body)


@router.post(
    "/talk_with/upload",
    responses=TALK_RESPONSES,
    # Each `images` part is a JPEG, PNG, GIF or WebP file (recognised by content, not by this type).
    openapi_extra={
        "requestBody": {
            "content": {"multipart/form-data": {"encoding": {"images": {"contentType": ", ".join(IMAGE_MEDIA_TYPES)}}}}
        }
    },
)
async def talk_with_upload(
    request: Request,
    message: str = Form(..., **STORED_MESSAGE),
    character: str = Form(..., min_length=1, max_length=200, pattern=STORABLE_PATTERN),
    series: str | None = Form(None, max_length=300, pattern=STORABLE_PATTERN),
    conversation_id: str | None = Form(None),
    model: str | None = Form(None),
    stream: bool = Form(False),
    images: list[UploadFile] = File(default_factory=list),
    user: CurrentUser = Depends(get_current_user),
):
    """/talk_with with images as multipart uploads (field `images`, repeatable); the same answer."""
    settings = request.app.state.settings
    attachments.check_count(len(images), settings.chat_max_attachments)
    uploaded = []
    for i, upload in enumerate(images):
        data = await upload.read(settings.chat_max_image_bytes + 1)
        if len(data) > settings.chat_max_image_bytes:
            raise attachments.too_large(i, None, settings.chat_max_image_bytes)
        uploaded.append(Attachment(data=base64.b64encode(data).decode()))
    body = TalkRequest(
        message=message,
        character=character,
        series=series,
        conversation_id=conversation_id,
        model=model,
        stream=stream,
        attachments=uploaded,
    )
    return await _talk(request, user, body)


@router.get("/models")
async def models(request: Request, user: CurrentUser = Depends(get_current_user)):
    eng = engine(request)
    tier = await resolve_tier(request, user)
    default = eng.router.default_model()
    return {
        "tier": tier,
        "tier_name": TIER_NAMES.get(tier, "free"),
        "default_model": default.id if default else None,
        "models": [{**m.public(), "allowed": m.min_tier <= tier} for m in eng.router.available_models()],
    }
