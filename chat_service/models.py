"""Request and response bodies (pydantic at the edges). Limits that depend on configuration
(message length, number of characters, attachments) are checked in the routes, so the error
names the configured limit with its own code."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.openapi import (
    NOT_BLANK_PATTERN,
    STORABLE_NOT_BLANK_PATTERN,
    STORABLE_PATTERN,
    exactly_one_of,
    omittable,
)
from shared.responses import json_response  # noqa: F401 (chat's routes import it from here)

# Text that must hold something besides whitespace: the document says so with this pattern, and the service
# answers its own clear code (EMPTY_MESSAGE, EMPTY_TEXT) for the rest, checking exactly that (str.strip()).
NOT_BLANK = {"pattern": NOT_BLANK_PATTERN}
# Stored text (messages, names) excludes U+0000, which PostgreSQL cannot hold: pydantic refuses it (422) before
# anything runs, and the document's pattern says both rules (not blank, no U+0000).
STORED_MESSAGE = {"pattern": STORABLE_PATTERN, "json_schema_extra": {"pattern": STORABLE_NOT_BLANK_PATTERN}}


IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# What the service checks, stated in the document (the service answers its own codes for the rest:
# INVALID_ATTACHMENT, UNSUPPORTED_MEDIA_TYPE): an http(s) URL, or base64 (RFC 4648, padded) of bytes that start
# with a JPEG, PNG, GIF or WebP signature, the signature spelled in base64.
HTTP_URL_PATTERN = r"^https?://"
IMAGE_BASE64_PATTERN = (
    r"^(?:/9j/|iVBORw0KGg[o-r][A-Za-z0-9+/]|R0lGOD[dl]h|UklGR[g-v][A-Za-z0-9+/]{4}[BFJNRVZdhlptx159]XRUJQ)"
    r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
)


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one_of("url", "data"))

    type: Literal["image"] = "image"
    url: omittable(Annotated[str, Field(max_length=4096)], pattern=HTTP_URL_PATTERN, description="http(s) URL") = None
    data: omittable(
        str,
        pattern=IMAGE_BASE64_PATTERN,
        description="base64 image bytes (an upload): JPEG, PNG, GIF or WebP, recognised by content",
    ) = None
    media_type: omittable(
        Literal[IMAGE_MEDIA_TYPES], description="informative: the bytes decide the type (a disagreeing one is ignored)"
    ) = None


# A Community custom character's id (a UUID); name and series then come from its definition.
CHARACTER_ID = Field(
    default=None,
    pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$",
    description="a Community custom character (public, or your own); replaces `character` and `series`",
)
# The document says "character or character_id" (schemathesis sends only what it allows).
# A branch's property is a string there: null is "not given".
CHARACTER_OR_ID = {
    "anyOf": [
        {"required": ["character"], "properties": {"character": {"type": "string"}}},
        {"required": ["character_id"], "properties": {"character_id": {"type": "string"}}},
    ]
}


class TalkRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra=CHARACTER_OR_ID)

    message: str = Field(..., **STORED_MESSAGE)
    character: str | None = Field(default=None, min_length=1, max_length=200, pattern=STORABLE_PATTERN)
    character_id: str | None = CHARACTER_ID
    series: str | None = Field(default=None, max_length=300, pattern=STORABLE_PATTERN)
    conversation_id: str | None = None
    model: str | None = None  # one of the catalogue's ids: the app's document lists them (main.py)
    stream: bool = Field(default=False, strict=True)  # a JSON boolean, as documented (not 0/1 or "yes")
    attachments: list[Attachment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _character_or_id(self):
        if self.character is None and self.character_id is None:
            raise ValueError("give character (a name) or character_id (a custom character)")
        return self


class QuotaInfo(BaseModel):
    type: str
    remaining: int  # -1 unlimited
    reset_at: str | None = None


class TalkResponse(BaseModel):
    response: str
    conversation_id: str
    message_id: str
    user_message_id: str
    model: str
    provider: str
    remaining_quota: int
    quota: QuotaInfo
    follow_up_questions: list[str]
    usage: dict[str, int]
    model_latency_ms: float
    context_tokens: int
    dropped_messages: int
    status: Literal["complete", "incomplete"]


class GroupCharacter(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["name"], "properties": {"name": {"type": "string"}}},
                {"required": ["character_id"], "properties": {"character_id": {"type": "string"}}},
            ]
        }
    )

    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=STORABLE_PATTERN)
    series: str | None = Field(default=None, max_length=300, pattern=STORABLE_PATTERN)
    character_id: str | None = CHARACTER_ID

    @model_validator(mode="after")
    def _name_or_id(self):
        if self.name is None and self.character_id is None:
            raise ValueError("give name or character_id (a custom character)")
        return self


class GroupChatRequest(BaseModel):
    # Optional when continuing a conversation (a conversation_id); a new one without characters answers
    # NO_CHARACTERS, and the document says so.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["characters"]},
                {"required": ["conversation_id"], "properties": {"conversation_id": {"type": "string"}}},
            ]
        }
    )
    characters: list[GroupCharacter] = Field(default_factory=list, json_schema_extra={"minItems": 1})
    message: str = Field(..., **STORED_MESSAGE)
    conversation_id: str | None = None
    model: str | None = None


class GroupReply(BaseModel):
    message_id: str
    sender: str
    response: str
    model: str
    provider: str


class GroupChatResponse(BaseModel):
    conversation_id: str
    user_message_id: str
    replies: list[GroupReply]
    turn_order: list[str]
    remaining_quota: int
    quota: QuotaInfo
    follow_up_questions: list[str]


class EditMessage(BaseModel):
    content: str = Field(..., **STORED_MESSAGE)


class ReactionRequest(BaseModel):
    reaction: Literal["like", "dislike"]


VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse")


class SpeakRequest(BaseModel):
    text: str = Field(..., json_schema_extra=NOT_BLANK)
    # The service answers UNKNOWN_VOICE (with the list) for any other.
    voice: str | None = Field(default=None, max_length=40, json_schema_extra={"enum": [*VOICES, None]})


def message_out(row, reactions: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = row["metadata"] or {}
    return {
        "id": str(row["id"]),
        "conversation_id": str(row["conversation_id"]),
        "sender": row["sender"],
        "role": row["role"],
        "content": row["content"],
        "message_type": row["message_type"],
        "status": row["status"],
        "pinned": row["pinned"],
        "token_count": row["token_count"],
        "metadata": meta,
        "edited_at": row["edited_at"].isoformat() if row["edited_at"] else None,
        "created_at": row["created_at"].isoformat(),
        "reactions": reactions or {"like": 0, "dislike": 0, "mine": []},
    }


def conversation_out(row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "character": row["character_name"],
        "series": row["character_series"],
        "type": row["conversation_type"],
        "participants": row["participants"],
        "model": row["model"],
        "message_count": row["message_count"],
        "token_count": row["token_count"],
        "shared": row["share_token"] is not None,
        "last_message_at": row["last_message_at"].isoformat() if row["last_message_at"] else None,
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }
