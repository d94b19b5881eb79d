"""Voice: speech to text (OpenAI transcription) and text to speech (OpenAI TTS), via the SDK."""

from __future__ import annotations

import logging

import openai
from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile

from chat_service import errors
from chat_service.models import VOICES as MODEL_VOICES
from chat_service.models import SpeakRequest
from shared.auth import CurrentUser, get_current_user
from shared.errors import APIError, documented
from shared.llm import describe, should_fall_back
from shared.ratelimit import RateLimit

log = logging.getLogger("chat_service.voice")
router = APIRouter(tags=["voice"])

AUDIO_TYPES = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/webm": "webm",
    "video/webm": "webm",
    "audio/ogg": "ogg",
    "audio/mp4": "m4a",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
}
VOICES = set(MODEL_VOICES)
SPEECH_FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac"}


def openai_client(request: Request) -> openai.AsyncOpenAI:
    client = request.app.state.llm.openai_client()
    if client is None:
        raise errors.VOICE_UNAVAILABLE("Voice needs OPENAI_API_KEY, which this server does not have.")
    return client


def _voice_error(exc: Exception) -> APIError:
    if isinstance(exc, openai.APIStatusError) and exc.status_code == 400:
        return errors.AUDIO_REJECTED(detail=str(exc.message)[:300])
    if should_fall_back(exc):
        log.warning("voice provider failed", extra={"error": describe(exc)})
        return errors.VOICE_UNAVAILABLE(headers={"Retry-After": "5"})
    log.error("voice provider refused", extra={"error": describe(exc)})
    return errors.VOICE_FAILED()


VOICE_ERRORS = (errors.VOICE_UNAVAILABLE, errors.VOICE_FAILED)
# The caller is authenticated before the voice limit counts the request: no token is a 401, never a 429.
VOICE_DEPENDENCIES = [Depends(get_current_user), Depends(RateLimit(30, 60, scope="voice"))]


# The audio types the upload's part may carry (its Content-Type; or a file name with one of their extensions).
TRANSCRIBE_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "encoding": {"file": {"contentType": ", ".join(AUDIO_TYPES)}},
            }
        }
    }
}


@router.post(
    "/voice/transcribe",
    dependencies=VOICE_DEPENDENCIES,
    responses=documented(
        errors.UNSUPPORTED_AUDIO_TYPE,
        errors.AUDIO_TOO_LARGE,
        errors.EMPTY_AUDIO,
        errors.AUDIO_REJECTED,
        *VOICE_ERRORS,
    ),
    openapi_extra=TRANSCRIBE_BODY,
)
async def transcribe(
    request: Request,
    file: UploadFile = File(..., json_schema_extra={"minLength": 1}),  # else EMPTY_AUDIO
    user: CurrentUser = Depends(get_current_user),
):
    settings = request.app.state.settings
    ctype = (file.content_type or "").split(";")[0].strip().lower()
    ext = (file.filename or "").rsplit(".", 1)[-1].lower() if "." in (file.filename or "") else ""
    if ctype not in AUDIO_TYPES and ext not in set(AUDIO_TYPES.values()):
        raise errors.UNSUPPORTED_AUDIO_TYPE(accepted=sorted(set(AUDIO_TYPES.values())))
    data = await file.read(settings.voice_max_bytes + 1)
    if len(data) > settings.voice_max_bytes:
        raise errors.AUDIO_TOO_LARGE(
            f"Audio files are limited to {settings.voice_max_bytes} bytes.", max_bytes=settings.voice_max_bytes
        )
    if not data:
        raise errors.EMPTY_AUDIO()
    client = openai_client(request)
    name = f"audio.{AUDIO_TYPES.get(ctype) or ext}"
    try:
        result = await client.audio.transcriptions.create(
            model=settings.voice_transcribe_model, file=(name, data, ctype or "application/octet-stream")
        )
    except openai.APIError as exc:
        raise _voice_error(exc) from None
    return {"text": result.text}


SPEAK_RESPONSES = {
    200: {
        "description": "The speech: `audio/mpeg` (mp3, the default), `audio/wav` or `audio/flac` by `format`.",
        "content": {
            media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in SPEECH_FORMATS.values()
        },
    },
} | documented(errors.EMPTY_TEXT, errors.TEXT_TOO_LONG, errors.UNKNOWN_VOICE, errors.UNSUPPORTED_FORMAT, *VOICE_ERRORS)


@router.post("/voice/speak", dependencies=VOICE_DEPENDENCIES, response_class=Response, responses=SPEAK_RESPONSES)
async def speak(
    body: SpeakRequest,
    request: Request,
    # Declared as the list; the service answers UNSUPPORTED_FORMAT (with the list) for any other.
    format: str = Query("mp3", json_schema_extra={"enum": list(SPEECH_FORMATS)}),
    user: CurrentUser = Depends(get_current_user),
):
    settings = request.app.state.settings
    text = body.text.strip() if body.text else ""
    if not text:
        raise errors.EMPTY_TEXT()
    if len(text) > settings.voice_max_text_chars:
        raise errors.TEXT_TOO_LONG(
            f"At most {settings.voice_max_text_chars} characters can be spoken at once.",
            max_chars=settings.voice_max_text_chars,
        )
    voice = body.voice or settings.voice_default
    if voice not in VOICES:
        raise errors.UNKNOWN_VOICE(f"Unknown voice {voice!r}.", voices=sorted(VOICES))
    if format not in SPEECH_FORMATS:
        raise errors.UNSUPPORTED_FORMAT("format must be mp3, wav or flac.", formats=list(SPEECH_FORMATS))
    client = openai_client(request)
    try:
        audio = await client.audio.speech.create(
            model=settings.voice_tts_model, voice=voice, input=text, response_format=format
        )
    except openai.APIError as exc:
        raise _voice_error(exc) from None
    return Response(audio.content, media_type=SPEECH_FORMATS[format])
