"""Opaque keyset cursors: the last row's (sort value, id), base64 of JSON with the value's type."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

import orjson

from community_service import errors


def encode(value, row_id) -> str:
    if isinstance(value, datetime):
        tagged = ["t", value.isoformat()]
    elif isinstance(value, bool):
        raise TypeError("booleans are not sort keys")
    elif isinstance(value, int):
        tagged = ["i", value]
    else:
        tagged = ["f", float(value)]
    return base64.urlsafe_b64encode(orjson.dumps([*tagged, str(row_id)])).decode().rstrip("=")


def decode(cursor: str | None, kind: str) -> tuple | None:
    """`kind`: 't' (timestamp), 'i' (integer) or 'f' (float), what the list sorts by."""
    if cursor is None:
        return None
    try:
        tag, value, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if tag != kind:
            raise ValueError(tag)
        if kind == "t":
            value = datetime.fromisoformat(value)
        elif kind == "i":
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(value)
        else:
            value = float(value)
        return value, uuid.UUID(row_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise errors.INVALID_CURSOR() from None


def page(rows: list, limit: int, key: str) -> tuple[list, str | None]:
    """Rows fetched with limit + 1: the page and the next cursor (None on the last page)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode(rows[-1][key], rows[-1]["id"])
