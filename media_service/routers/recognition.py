"""POST /images/recognize: a picture sent as a multipart `file`, or one of the caller's images as
JSON `{image_id}`, described by a vision model and matched to Content's titles and characters."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from media_service import errors
from media_service.imaging import FORMATS
from media_service.models import RecognitionOut, RecognizeByImage
from media_service.recognition import Recognizer
from media_service.uploads import multipart_upload_body, read_upload
from shared.auth import CurrentUser, get_current_user
from shared.errors import documented

router = APIRouter(tags=["images"])

MAX_JSON_BYTES = 4096


def _request_body() -> dict:
    body = multipart_upload_body(file_types=tuple(dict.fromkeys(mime for mime, _ in FORMATS.values())))
    body["requestBody"]["content"]["application/json"] = {"schema": RecognizeByImage.model_json_schema()}
    return body


async def _read_json(request: Request) -> RecognizeByImage:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_JSON_BYTES:
            raise errors.TOO_LARGE(limit_bytes=MAX_JSON_BYTES)
    try:
        return RecognizeByImage.model_validate_json(bytes(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":  # not JSON at all (invalid UTF-8 included): as every JSON route
            raise errors.INVALID_JSON() from None
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        message = f'{where}: {first.get("msg", "invalid")}. Send {{"image_id": "..."}}.'
        raise errors.VALIDATION_ERROR(message) from None


@router.post(
    "/images/recognize",
    response_model=RecognitionOut,
    responses=documented(
        errors.INVALID_TOKEN,
        errors.INSUFFICIENT_QUOTA,
        errors.IMAGE_NOT_FOUND,
        errors.TOO_LARGE,
        errors.UNSUPPORTED_MEDIA_TYPE,
        errors.INVALID_IMAGE,
        errors.VALIDATION_ERROR,
        errors.INVALID_JSON,
        errors.LLM_UNAVAILABLE,
        errors.STORAGE_UNAVAILABLE,
    ),
    openapi_extra=_request_body(),
)
async def recognize_image(request: Request, user: CurrentUser = Depends(get_current_user)):
    """Multipart `file` (checked like an upload, not stored) or JSON `{image_id}` (one of the
    caller's images). Spends one `image_recognition` unit (402 when none is left; not charged
    when no model answers, 503). `matches` are Content's titles and characters; when Content does
    not answer, `matches_available` is false and the description still comes back. The same
    bytes recognised again by the same user answer the stored result with `cached: true`: no
    model call, nothing charged (matches are searched again)."""
    recognizer: Recognizer = request.app.state.recognizer
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "multipart/form-data":
        upload = await read_upload(request, limit=recognizer.settings.media_image_max_bytes)
        return await recognizer.recognize(user, upload=upload.file)
    if content_type == "application/json" or content_type.endswith("+json"):
        body = await _read_json(request)
        return await recognizer.recognize(user, image_id=body.image_id)
    raise errors.UNSUPPORTED_MEDIA_TYPE('Send the image as multipart/form-data (`file`) or JSON {"image_id": "..."}.')
