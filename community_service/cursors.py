"""Keyset cursors of community's lists: shared/pagination's ranked format (`<signed integer>.<row id>`), the
last row's (sort value, id), documented as a pattern so that every cursor matching it is a position."""

from __future__ import annotations

from shared.pagination import RANKED_PATTERN, cursor_query, decode_ranked, encode_ranked

_KINDS = {"t": "timestamptz", "i": "integer", "f": "float8"}

# The `?cursor=` parameter of every community list.
CursorQuery = cursor_query(RANKED_PATTERN)


def decode(cursor: str | None, kind: str) -> tuple | None:
    """`kind`: 't' (timestamp), 'i' (integer) or 'f' (float), what the list sorts by."""
    if cursor is None:
        return None
    return decode_ranked(cursor, _KINDS[kind])


def page(rows: list, limit: int, key: str) -> tuple[list, str | None]:
    """Rows fetched with limit + 1: the page and the next cursor (None on the last page)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_ranked(rows[-1][key], rows[-1]["id"])
