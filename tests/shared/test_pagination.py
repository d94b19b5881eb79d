"""shared/pagination's cursors: what a service encodes decodes to the same position, and every cursor
matching the documented pattern decodes (clamped to the sort column's range), anything else is 422."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import APIError
from shared.pagination import RANKED_PATTERN, decode_ranked, encode_ranked

ROW = uuid.UUID("0123456789abcdef0123456789abcdef")


@pytest.mark.parametrize(
    "value,kind",
    [
        (datetime(2026, 12, 4, 18, 30, 1, 123456, tzinfo=UTC), "timestamptz"),
        (datetime(1969, 7, 20, 20, 17, tzinfo=UTC), "timestamptz"),
        (42, "integer"),
        (-7, "integer"),
        (39034.123456789012, "float8"),  # a hot value (Reddit's formula)
        (-0.5, "float8"),
        (0.0, "float8"),
    ],
)
def test_a_cursor_decodes_to_the_position_it_was_made_from(value, kind):
    cursor = encode_ranked(value, ROW)
    assert re.fullmatch(RANKED_PATTERN, cursor)
    assert decode_ranked(cursor, kind) == (value, ROW)


def test_the_first_page_is_an_empty_cursor():
    assert decode_ranked("", "integer") is None


def test_every_cursor_matching_the_pattern_is_a_position_in_the_columns_range():
    row = "0" * 32
    assert decode_ranked(f"9999999999999999999.{row}", "integer")[0] == 2**31 - 1
    assert decode_ranked(f"-9999999999999999999.{row}", "integer")[0] == -(2**31)
    latest, _ = decode_ranked(f"9999999999999999999.{row}", "timestamptz")
    earliest, _ = decode_ranked(f"-9999999999999999999.{row}", "timestamptz")
    assert latest - datetime.max.replace(tzinfo=UTC) < timedelta(microseconds=1)
    assert earliest == datetime.min.replace(tzinfo=UTC)
    assert isinstance(decode_ranked(f"9999999999999999999.{row}", "float8")[0], float)


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "1." + "0" * 31, "1." + "G" * 32, "1" + "0" * 32, "1.5." + "0" * 32, "eyJ0IjoxfQ", None],
)
def test_anything_else_is_invalid_cursor(cursor):
    with pytest.raises(APIError) as refused:
        decode_ranked(cursor, "timestamptz")
    assert (refused.value.status, refused.value.code) == (422, "INVALID_CURSOR")
