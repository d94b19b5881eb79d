"""Chat's own error codes (the ones every service answers are in shared/errors.py).

`raise CONVERSATION_NOT_FOUND()`; a route lists what it may answer with
`responses=documented(...)`.
"""

from __future__ import annotations

import uuid

from shared.errors import ErrorCode
from shared.pagination import INVALID_CURSOR  # noqa: F401 (re-exported: one code for every list)

# -- conversations and messages -----------------------------------------------------------------
CONVERSATION_NOT_FOUND = ErrorCode(404, "CONVERSATION_NOT_FOUND", "No such conversation.")
MESSAGE_NOT_FOUND = ErrorCode(404, "MESSAGE_NOT_FOUND", "No such message.")
SHARE_NOT_FOUND = ErrorCode(404, "SHARE_NOT_FOUND", "This link does not exist or was revoked.")
NOT_A_SINGLE_CONVERSATION = ErrorCode(
    422, "NOT_A_SINGLE_CONVERSATION", "This is a group conversation: use /group_chat."
)
NOT_A_GROUP_CONVERSATION = ErrorCode(
    422, "NOT_A_GROUP_CONVERSATION", "This is a one-to-one conversation: use /talk_with."
)
NOTHING_TO_REGENERATE = ErrorCode(409, "NOTHING_TO_REGENERATE", "This conversation has no message to answer.")
CANNOT_EDIT_REPLY = ErrorCode(
    403, "CANNOT_EDIT_REPLY", "Only your own messages can be edited; regenerate a character's reply instead."
)
UNKNOWN_REACTION = ErrorCode(422, "UNKNOWN_REACTION", "reaction must be like or dislike.")
UNSUPPORTED_FORMAT = ErrorCode(422, "UNSUPPORTED_FORMAT", "This format is not offered.")

# -- custom characters (Community's) -------------------------------------------------------------
CHARACTER_NOT_FOUND = ErrorCode(404, "CHARACTER_NOT_FOUND", "No such character.")
COMMUNITY_UNAVAILABLE = ErrorCode(
    503, "COMMUNITY_UNAVAILABLE", "Custom characters cannot be read right now; try again shortly."
)

# -- a message --------------------------------------------------------------------------------
EMPTY_MESSAGE = ErrorCode(422, "EMPTY_MESSAGE", "The message is empty.")
MESSAGE_TOO_LONG = ErrorCode(422, "MESSAGE_TOO_LONG", "The message is too long.")
UNKNOWN_MODEL = ErrorCode(422, "UNKNOWN_MODEL", "Unknown model.")
MODEL_CANNOT_SEE_IMAGES = ErrorCode(422, "MODEL_CANNOT_SEE_IMAGES", "This model cannot read images.")
TOO_MANY_ATTACHMENTS = ErrorCode(422, "TOO_MANY_ATTACHMENTS", "Too many images in one message.")
INVALID_ATTACHMENT = ErrorCode(422, "INVALID_ATTACHMENT", "An attachment is invalid.")
ATTACHMENT_TOO_LARGE = ErrorCode(422, "ATTACHMENT_TOO_LARGE", "An image is too large.")
# 422, not shared's 415: the request's own type is fine, one image inside it is not.
ATTACHMENT_NOT_AN_IMAGE = ErrorCode(
    422, "UNSUPPORTED_MEDIA_TYPE", "An attachment is not a JPEG, PNG, GIF or WebP image."
)

# -- group chat -------------------------------------------------------------------------------
NO_CHARACTERS = ErrorCode(422, "NO_CHARACTERS", "A group chat needs at least one character.")
TOO_MANY_CHARACTERS = ErrorCode(422, "TOO_MANY_CHARACTERS", "Too many characters for one group chat.")
# A character is its name (any case): naming one twice conflicts with the group already holding it.
DUPLICATE_CHARACTER = ErrorCode(409, "DUPLICATE_CHARACTER", "Each character can join a group chat once.")

# -- the model --------------------------------------------------------------------------------
LLM_UNAVAILABLE = ErrorCode(
    503, "LLM_UNAVAILABLE", "No language model is available right now; nothing was charged. Try again shortly."
)
# In a stream's `error` frame (the response status was already 200).
LLM_STREAM_INTERRUPTED = ErrorCode(
    502, "LLM_STREAM_INTERRUPTED", "The model stopped in the middle of the reply; the part received was saved."
)
SAVE_FAILED = ErrorCode(500, "SAVE_FAILED", "The reply could not be saved; nothing was charged.")

# -- voice ------------------------------------------------------------------------------------
VOICE_UNAVAILABLE = ErrorCode(503, "VOICE_UNAVAILABLE", "The speech service is unavailable; try again shortly.")
VOICE_FAILED = ErrorCode(502, "VOICE_FAILED", "The speech service refused the request.")
AUDIO_REJECTED = ErrorCode(422, "AUDIO_REJECTED", "The speech service could not process this audio.")
UNSUPPORTED_AUDIO_TYPE = ErrorCode(415, "UNSUPPORTED_AUDIO_TYPE", "Send mp3, wav, webm, ogg, m4a or flac audio.")
AUDIO_TOO_LARGE = ErrorCode(413, "AUDIO_TOO_LARGE", "The audio file is too large.")
EMPTY_AUDIO = ErrorCode(422, "EMPTY_AUDIO", "The audio file is empty.")
EMPTY_TEXT = ErrorCode(422, "EMPTY_TEXT", "There is no text to speak.")
TEXT_TOO_LONG = ErrorCode(422, "TEXT_TOO_LONG", "The text is too long to speak at once.")
UNKNOWN_VOICE = ErrorCode(422, "UNKNOWN_VOICE", "Unknown voice.")


def llm_unavailable(message: str | None = None, **extra) -> Exception:
    """503 LLM_UNAVAILABLE with Retry-After (the attempts made, when there were any)."""
    return LLM_UNAVAILABLE(message, headers={"Retry-After": "5"}, **extra)


def parse_uuid(value: str | None, not_found: ErrorCode = CONVERSATION_NOT_FOUND) -> str | None:
    """An id from a path or body; one that is not a UUID cannot exist: `not_found`."""
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise not_found() from None
