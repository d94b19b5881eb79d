"""Audio files (voice notes, TTS results): upload, read, delete."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from media_service import errors
from media_service.audio import KINDS
from media_service.models import AudioOut
from media_service.routers.images import media
from media_service.uploads import multipart_upload_body, read_upload
from shared.auth import CurrentUser, get_current_user
from shared.errors import documented

router = APIRouter(tags=["audio"])


@router.post(
    "/audio",
    status_code=201,
    response_model=AudioOut,
    responses=documented(
        errors.INVALID_TOKEN,
        errors.TOO_LARGE,
        errors.UNSUPPORTED_MEDIA_TYPE,
        errors.INVALID_AUDIO,
        errors.VALIDATION_ERROR,
        errors.STORAGE_UNAVAILABLE,
    ),
    openapi_extra=multipart_upload_body(file_types=tuple(dict.fromkeys(mime for mime, _ in KINDS.values()))),
)
async def upload_audio(request: Request, user: CurrentUser = Depends(get_current_user)):
    """Multipart `file`: mp3, m4a, ogg, wav or webm, recognised by content."""
    service = media(request)
    upload = await read_upload(request, limit=service.settings.media_audio_max_bytes)
    return await service.upload_audio(user.user_id, upload.file.getvalue())


@router.get(
    "/audio/{audio_id}", response_model=AudioOut, responses=documented(errors.INVALID_TOKEN, errors.AUDIO_NOT_FOUND)
)
async def get_audio(audio_id: str, request: Request, user: CurrentUser = Depends(get_current_user)):
    return await media(request).get_audio(user.user_id, audio_id)


@router.delete("/audio/{audio_id}", status_code=204, responses=documented(errors.INVALID_TOKEN, errors.AUDIO_NOT_FOUND))
async def delete_audio(audio_id: str, request: Request, user: CurrentUser = Depends(get_current_user)):
    await media(request).delete_audio(user.user_id, audio_id)
    return Response(status_code=204)
