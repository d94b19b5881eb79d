"""The community service's own error codes (the common ones are in shared/errors.py)."""

from shared.errors import ErrorCode

STORY_NOT_FOUND = ErrorCode(404, "STORY_NOT_FOUND", "No such story.")
CHARACTER_NOT_FOUND = ErrorCode(404, "CHARACTER_NOT_FOUND", "No such character.")
UNIVERSE_NOT_FOUND = ErrorCode(404, "UNIVERSE_NOT_FOUND", "No such universe.")
SCENARIO_NOT_FOUND = ErrorCode(404, "SCENARIO_NOT_FOUND", "No such scenario.")
TARGET_NOT_FOUND = ErrorCode(404, "TARGET_NOT_FOUND", "No such item to vote on or report.")
CONVERSATION_NOT_FOUND = ErrorCode(404, "CONVERSATION_NOT_FOUND", "No such conversation.")
TITLE_NOT_FOUND = ErrorCode(404, "TITLE_NOT_FOUND", "No such movie or series.")
FAVORITE_NOT_FOUND = ErrorCode(404, "FAVORITE_NOT_FOUND", "That is not among your favourites.")
SHARE_NOT_FOUND = ErrorCode(404, "SHARE_NOT_FOUND", "This share link does not exist or was withdrawn.")
NOT_A_DRAFT = ErrorCode(409, "NOT_A_DRAFT", "Only a draft's wizard steps can change.")
SCENARIO_WITHOUT_CHARACTERS = ErrorCode(
    409, "SCENARIO_WITHOUT_CHARACTERS", "The scenario names no character to talk with."
)
STORY_INCOMPLETE = ErrorCode(409, "STORY_INCOMPLETE", "The story has no text to publish yet.")
ALREADY_REPORTED = ErrorCode(409, "ALREADY_REPORTED", "You have already reported this.")
VERSION_CONFLICT = ErrorCode(412, "VERSION_CONFLICT", "The story changed since the version you edited.")
PRECONDITION_REQUIRED = ErrorCode(428, "PRECONDITION_REQUIRED", 'Send If-Match: "<version>" to edit a story.')
INVALID_IF_MATCH = ErrorCode(400, "INVALID_IF_MATCH", 'If-Match must be a story version, e.g. "3".')
TOO_MANY_CHARACTERS = ErrorCode(422, "TOO_MANY_CHARACTERS", "A story has 1 to 5 characters.")
CONTENT_FLAGGED = ErrorCode(422, "CONTENT_FLAGGED", "The content was flagged by moderation.")
INVALID_CURSOR = ErrorCode(422, "INVALID_CURSOR", "The cursor is not one this service gave out.")
MODERATION_UNAVAILABLE = ErrorCode(503, "MODERATION_UNAVAILABLE", "Moderation is unavailable; try again shortly.")
LLM_UNAVAILABLE = ErrorCode(503, "LLM_UNAVAILABLE", "No language model is available; try again shortly.")
UPSTREAM_UNAVAILABLE = ErrorCode(502, "UPSTREAM_UNAVAILABLE", "A SceneXtras service did not answer; try again shortly.")
MODERATOR_REQUIRED = ErrorCode(403, "MODERATOR_REQUIRED", "This needs the moderator role or a service token.")
# Fandom rooms
ROOM_NOT_FOUND = ErrorCode(404, "ROOM_NOT_FOUND", "No such room.")
INVITE_NOT_FOUND = ErrorCode(404, "INVITE_NOT_FOUND", "No room has this invite code.")
MEMBER_NOT_FOUND = ErrorCode(404, "MEMBER_NOT_FOUND", "This user is not a member of the room.")
ROOM_MEMBERS_ONLY = ErrorCode(403, "ROOM_MEMBERS_ONLY", "Join the room first.")
ROOM_OWNER_REQUIRED = ErrorCode(403, "ROOM_OWNER_REQUIRED", "Only the room's owner can do this.")
OWNER_ROLE_FIXED = ErrorCode(409, "OWNER_ROLE_FIXED", "The owner's role cannot change, and the owner cannot leave.")
DEVICE_NOT_FOUND = ErrorCode(404, "DEVICE_NOT_FOUND", "No such device token among yours.")
