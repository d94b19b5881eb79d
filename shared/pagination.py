"""Opaque list cursors (`?cursor=`): a few fields, base64url-encoded. A cursor this service did not
give out answers 422 INVALID_CURSOR."""

from __future__ import annotations

import base64

from shared.errors import ErrorCode

INVALID_CURSOR = ErrorCode(422, "INVALID_CURSOR", "The cursor is not one this service gave out.")


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise INVALID_CURSOR() from None
    parts = raw.split("|")
    if len(parts) != n:
        raise INVALID_CURSOR()
    return parts
