"""Image attachments: exactly one of url or data, the bytes sniffed (never the declared type
trusted), within the configured count and size."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from chat_service import errors
from chat_service.models import Attachment
from shared.errors import APIError
from shared.llm import ImageInput

IMAGE_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


def check_count(count: int, limit: int) -> None:
    if count > limit:
        raise errors.TOO_MANY_ATTACHMENTS(f"At most {limit} images per message.", max_attachments=limit)


def too_large(index: int, size: int | None, limit: int) -> APIError:
    what = f"{size} bytes; the limit is {limit}" if size is not None else f"larger than {limit} bytes"
    return errors.ATTACHMENT_TOO_LARGE(f"Attachment {index} is {what}.", index=index, max_bytes=limit)


def sniff(raw: bytes) -> str | None:
    for media_type, signatures in IMAGE_SIGNATURES.items():
        if any(raw.startswith(s) for s in signatures) and (media_type != "image/webp" or raw[8:12] == b"WEBP"):
            return media_type
    return None


def check(
    attachments: list[Attachment], max_count: int, max_bytes: int
) -> tuple[list[ImageInput], list[dict[str, Any]]]:
    """(the images for the model, what the saved message records about them)."""
    if not attachments:
        return [], []
    check_count(len(attachments), max_count)
    images: list[ImageInput] = []
    meta: list[dict[str, Any]] = []
    for i, a in enumerate(attachments):
        if (a.url is None) == (a.data is None):
            raise errors.INVALID_ATTACHMENT(f"Attachment {i}: give exactly one of url or data.", index=i)
        if a.url is not None:
            if not re.match(r"^https?://", a.url):
                raise errors.INVALID_ATTACHMENT(f"Attachment {i}: the url must be http(s).", index=i)
            images.append(ImageInput(url=a.url))
            meta.append({"type": "image", "url": a.url})
            continue
        try:
            raw = base64.b64decode(a.data, validate=True)
        except (binascii.Error, ValueError):
            raise errors.INVALID_ATTACHMENT(f"Attachment {i}: data is not valid base64.", index=i) from None
        if len(raw) > max_bytes:
            raise too_large(i, len(raw), max_bytes)
        sniffed = sniff(raw)
        if sniffed is None:
            raise errors.ATTACHMENT_NOT_AN_IMAGE(f"Attachment {i} is not a JPEG, PNG, GIF or WebP image.", index=i)
        # A declared media_type that disagrees is ignored: the bytes decide (the document says so).
        images.append(ImageInput(media_type=sniffed, data_b64=base64.b64encode(raw).decode()))
        digest = hashlib.sha256(raw).hexdigest()
        meta.append({"type": "image", "media_type": sniffed, "bytes": len(raw), "sha256": digest})
    return images, meta
