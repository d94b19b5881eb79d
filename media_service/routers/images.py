"""Images: upload, list, read (with fresh SAS URLs), delete."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request, Response

from media_service import errors
from media_service.imaging import FORMATS
from media_service.models import ImageList, ImageOut
from media_service.service import PURPOSES, MediaService
from media_service.uploads import multipart_upload_body, read_upload
from shared.auth import CurrentUser, get_current_user
from shared.errors import documented
from shared.pagination import cursor_query

router = APIRouter(tags=["images"])

_AUTH = (errors.INVALID_TOKEN,)


def media(request: Request) -> MediaService:
    return request.app.state.media


@router.post(
    "/images/upload",
    status_code=201,
    response_model=ImageOut,
    responses=documented(
        *_AUTH,
        errors.TOO_LARGE,
        errors.UNSUPPORTED_MEDIA_TYPE,
        errors.INVALID_IMAGE,
        errors.VALIDATION_ERROR,
        errors.STORAGE_UNAVAILABLE,
    ),
    openapi_extra=multipart_upload_body(
        file_types=tuple(dict.fromkeys(mime for mime, _ in FORMATS.values())),
        purpose={"type": "string", "enum": list(PURPOSES), "default": "attachment"},
    ),
)
async def upload_image(request: Request, user: CurrentUser = Depends(get_current_user)):
    """Multipart `file` (PNG, JPEG, GIF or WebP, by content) and `purpose`. Stored re-encoded,
    without metadata (EXIF, GPS), with a thumbnail."""
    service = media(request)
    upload = await read_upload(request, limit=service.settings.media_image_max_bytes)
    purpose = upload.fields.get("purpose") or "attachment"
    if purpose not in PURPOSES:
        raise errors.VALIDATION_ERROR(f"`purpose` must be one of {', '.join(PURPOSES)}.")
    return await service.upload_image(user.user_id, upload.file, purpose)


@router.get(
    "/images", response_model=ImageList, responses=documented(*_AUTH, errors.INVALID_CURSOR, errors.VALIDATION_ERROR)
)
async def list_images(
    request: Request,
    purpose: str | None = Query(None, pattern="^(avatar|character|attachment)$"),
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = cursor_query(),
    user: CurrentUser = Depends(get_current_user),
):
    """The caller's images, newest first."""
    return await media(request).list_images(user.user_id, purpose=purpose, limit=limit, cursor=cursor)


# `:uuid` so that /images/upload and /images/recognize are not also these routes (a 405 there
# would list GET and DELETE in its Allow header); any other id is 404 as before.
@router.get("/images/{image_id:uuid}", response_model=ImageOut, responses=documented(*_AUTH, errors.IMAGE_NOT_FOUND))
async def get_image(image_id: uuid.UUID, request: Request, user: CurrentUser = Depends(get_current_user)):
    """One of the caller's images with fresh URLs; another user's answers 404."""
    return await media(request).get_image(user.user_id, str(image_id))


@router.delete("/images/{image_id:uuid}", status_code=204, responses=documented(*_AUTH, errors.IMAGE_NOT_FOUND))
async def delete_image(image_id: uuid.UUID, request: Request, user: CurrentUser = Depends(get_current_user)):
    await media(request).delete_image(user.user_id, str(image_id))
    return Response(status_code=204)
