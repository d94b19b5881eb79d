"""The media service's own error codes: `shared.errors.ErrorCode` constants, raised as
`raise errors.SOME_CODE()` and listed on a route with `responses=documented(...)`. The common
ones are re-exported from shared/errors.py so routes import one module.
"""

from shared.errors import (  # noqa: F401 (re-exported)
    FORBIDDEN,
    INSUFFICIENT_QUOTA,
    INSUFFICIENT_TIER,
    INVALID_JSON,
    INVALID_TOKEN,
    NOT_FOUND,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION_ERROR,
    APIError,
    ErrorCode,
)
from shared.pagination import INVALID_CURSOR  # noqa: F401 (re-exported)

TOO_LARGE = ErrorCode(413, "TOO_LARGE", "The file is larger than this upload accepts.")
INVALID_IMAGE = ErrorCode(422, "INVALID_IMAGE", "The image is corrupt, truncated or too large to decode.")
INVALID_AUDIO = ErrorCode(422, "INVALID_AUDIO", "The audio file is corrupt or truncated.")
IMAGE_NOT_FOUND = ErrorCode(404, "IMAGE_NOT_FOUND", "No such image.")
AUDIO_NOT_FOUND = ErrorCode(404, "AUDIO_NOT_FOUND", "No such audio file.")
STORAGE_UNAVAILABLE = ErrorCode(503, "STORAGE_UNAVAILABLE", "Blob storage is unavailable; try again shortly.")
PROMPT_REJECTED = ErrorCode(422, "PROMPT_REJECTED", "The prompt was rejected by moderation.")
MODERATION_UNAVAILABLE = ErrorCode(503, "MODERATION_UNAVAILABLE", "Moderation is unavailable; try again shortly.")
PROVIDER_UNAVAILABLE = ErrorCode(503, "PROVIDER_UNAVAILABLE", "No image provider could generate the image; try again.")
JOB_NOT_FOUND = ErrorCode(404, "JOB_NOT_FOUND", "No such generation job.")
LLM_UNAVAILABLE = ErrorCode(
    503, "LLM_UNAVAILABLE", "No vision model could answer; nothing was charged. Try again shortly."
)
