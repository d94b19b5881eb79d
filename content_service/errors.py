"""Content's own error codes (the shared ones are in shared.errors)."""

from shared.errors import ErrorCode

INVALID_QUERY = ErrorCode(422, "INVALID_QUERY", "The query has no letters or digits to search for.")
INVALID_PARAMETERS = ErrorCode(422, "INVALID_PARAMETERS", "Give exactly one of series_id and movie_id.")
SYNC_NOT_CONFIGURED = ErrorCode(409, "SYNC_NOT_CONFIGURED", "TMDB_API_KEY is not set: this instance cannot sync.")
UPSTREAM_UNAVAILABLE = ErrorCode(502, "UPSTREAM_UNAVAILABLE", "TMDB did not answer.")
