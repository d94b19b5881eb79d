"""POST /talk_with (plain or server-sent events) and GET /models."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from chat_service.models import TalkRequest, json_response
from chat_service.streaming import StreamRun
from shared.auth import TIER_NAMES, CurrentUser, get_current_user, resolve_tier

router = APIRouter(tags=["chat"])


def engine(request: Request):
    return request.app.state.engine


def wants_stream(request: Request, body: TalkRequest) -> bool:
    return body.stream or "text/event-stream" in request.headers.get("accept", "")


@router.post("/talk_with")
async def talk_with(body: TalkRequest, request: Request, user: CurrentUser = Depends(get_current_user)):
    eng = engine(request)
    tier = await resolve_tier(request, user)
    prepared = await eng.prepare(
        user,
        tier,
        message=body.message,
        character=body.character,
        series=body.series,
        conversation_id=body.conversation_id,
        model=body.model,
        attachments=body.attachments,
    )
    if not wants_stream(request, body):
        return json_response(await eng.talk(prepared))
    run = StreamRun(eng, prepared).start()
    return StreamingResponse(
        run.events(eng.settings.chat_stream_heartbeat_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


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
