"""The analytics service's own error codes (the common ones are in shared/errors.py)."""

from shared.errors import ErrorCode
from shared.pagination import INVALID_CURSOR  # noqa: F401 (re-exported: one code for every list)

INVALID_TIMEZONE = ErrorCode(
    422, "INVALID_TIMEZONE", "The time zone is not an IANA time zone name (e.g. Europe/Paris)."
)
INVALID_RANGE = ErrorCode(
    422, "INVALID_RANGE", "The time range is empty, reversed, or longer than the granularity allows."
)
UNSUPPORTED_PERIOD = ErrorCode(
    422, "UNSUPPORTED_PERIOD", "A streak runs up to today: its leaderboard has no week or month, only period=all."
)
