"""Opaque list cursors (`?cursor=`): where the previous page ended, in a format the OpenAPI document states
as a pattern, so that every cursor matching it is a position (the page after it may be empty) and a
client, or a test generating requests from the document, cannot send a well-formed one that is refused.

- a keyset position, `<microseconds since the epoch>.<row id as 32 hex digits>`, for lists ordered by
  (timestamp, id);
- a sequence position, `<digits>`, for lists ordered by an integer;
- a ranked position, `<signed integer>.<row id as 32 hex digits>`, for lists ordered by (sort value, id) where
  the sort value is a timestamp, an integer or a float (a ranking such as "top" or "hot"). The integer is the
  timestamp's microseconds since the epoch, the integer itself, or the float's IEEE 754 bits (exact both ways).
  Out-of-range values are clamped to the sort column's range, so every matching cursor is still a position.

Anything else answers 422 INVALID_CURSOR (base64 cursors of earlier releases included).
"""

from __future__ import annotations

import re
import struct
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import Query

from shared.errors import ErrorCode

INVALID_CURSOR = ErrorCode(422, "INVALID_CURSOR", "The cursor is not one this service gave out.")

# Empty is the first page (as no cursor). 16 digits of microseconds reach the year 2286.
KEYSET_PATTERN = r"^(?:([0-9]{1,16})\.([0-9a-f]{32}))?$"
SEQUENCE_PATTERN = r"^([0-9]{1,18})?$"  # within a bigint
RANKED_PATTERN = r"^(?:(-?[0-9]{1,19})\.([0-9a-f]{32}))?$"
_KEYSET = re.compile(KEYSET_PATTERN)
_RANKED = re.compile(RANKED_PATTERN)
_SEQUENCE = re.compile(SEQUENCE_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cursor_query(pattern: str = KEYSET_PATTERN) -> Any:
    """The `cursor` query parameter: the pattern is documented and checked by the decoder (so a
    cursor that does not match answers INVALID_CURSOR, not a generic validation error)."""
    return Query(
        None, max_length=60, description="`next_cursor` of the previous page.", json_schema_extra={"pattern": pattern}
    )


def encode_keyset(at: datetime, row_id: Any) -> str:
    return f"{_micros(at)}.{uuid.UUID(str(row_id)).hex}"


def decode_keyset(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """(timestamp, id) of a keyset cursor, None for the first page; the whole value matched, as JSON Schema does."""
    match = _KEYSET.fullmatch(cursor) if isinstance(cursor, str) else None
    if match is None:
        raise INVALID_CURSOR()
    if match.group(1) is None:
        return None
    return _EPOCH + timedelta(microseconds=int(match.group(1))), uuid.UUID(hex=match.group(2))


def _micros(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


RankedKind = Literal["timestamptz", "integer", "float8"]  # the sort column's PostgreSQL type
_MIN_MICROS = _micros(datetime.min.replace(tzinfo=UTC))
_MAX_MICROS = _micros(datetime.max.replace(tzinfo=UTC))
_RANGES = {"timestamptz": (_MIN_MICROS, _MAX_MICROS), "integer": (-(2**31), 2**31 - 1), "float8": (-(2**63), 2**63 - 1)}


def encode_ranked(value: datetime | int | float, row_id: Any) -> str:
    if isinstance(value, datetime):
        number = _micros(value)
    elif isinstance(value, bool):
        raise TypeError("booleans are not sort keys")
    elif isinstance(value, int):
        number = value
    else:
        number = struct.unpack("<q", struct.pack("<d", float(value)))[0]
    return f"{number}.{uuid.UUID(str(row_id)).hex}"


def decode_ranked(cursor: str | None, kind: RankedKind) -> tuple[datetime | int | float, uuid.UUID] | None:
    """(sort value, id) of a ranked cursor for a list sorted by a `kind` column, None for the first page."""
    match = _RANKED.fullmatch(cursor) if isinstance(cursor, str) else None
    if match is None:
        raise INVALID_CURSOR()
    if match.group(1) is None:
        return None
    low, high = _RANGES[kind]
    number = min(max(int(match.group(1)), low), high)
    row_id = uuid.UUID(hex=match.group(2))
    if kind == "timestamptz":
        return _EPOCH + timedelta(microseconds=number), row_id
    if kind == "float8":
        return struct.unpack("<d", struct.pack("<q", number))[0], row_id
    return number, row_id


def encode_sequence(value: int) -> str:
    return str(int(value))


def decode_sequence(cursor: str | None) -> int | None:
    match = _SEQUENCE.fullmatch(cursor) if isinstance(cursor, str) else None
    if match is None:
        raise INVALID_CURSOR()
    return int(match.group(1)) if match.group(1) is not None else None


__all__ = [
    "INVALID_CURSOR",
    "KEYSET_PATTERN",
    "RANKED_PATTERN",
    "SEQUENCE_PATTERN",
    "cursor_query",
    "decode_keyset",
    "decode_ranked",
    "decode_sequence",
    "encode_keyset",
    "encode_ranked",
    "encode_sequence",
]
