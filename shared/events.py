"""The event schema on the bus (topic exchange `scenextras.events`, routing key = event type).

Unknown fields are kept (extra="allow") and unknown types parse fine: consumers acknowledge and
log what they do not handle instead of crashing on it. `version` lets a payload change shape.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1


class EventType(StrEnum):
    # Auth
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    REFERRAL_COMPLETED = "referral.completed"
    # Payment
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_UPGRADED = "subscription.upgraded"
    SUBSCRIPTION_DOWNGRADED = "subscription.downgraded"
    SUBSCRIPTION_CANCELLED = "subscription.cancelled"
    SUBSCRIPTION_PAUSED = "subscription.paused"
    SUBSCRIPTION_RESUMED = "subscription.resumed"
    QUOTA_UPDATED = "quota.updated"
    QUOTA_DEPLETED = "quota.depleted"
    QUOTA_RESET = "quota.reset"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    # Chat
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_COMPLETED = "conversation.completed"
    MESSAGE_SENT = "message.sent"
    # Community
    STORY_CREATED = "story.created"
    STORY_PUBLISHED = "story.published"
    # data: {room_id, owner_id, story_id, visibility}
    ROOM_CREATED = "room.created"
    # data: {room_id, user_id, owner_id, role, via: invite|public|referral, referrer_id}
    ROOM_JOINED = "room.joined"
    # Media
    IMAGE_GENERATED = "image.generated"
    IMAGE_UPLOADED = "image.uploaded"
    IMAGE_DELETED = "image.deleted"
    # Analytics
    USER_ENGAGEMENT = "user.engagement"
    ACHIEVEMENT_UNLOCKED = "achievement.unlocked"
    STREAK_MILESTONE = "streak.milestone"
    LEVEL_UP = "level.up"
    REWARD_GRANTED = "reward.granted"
    # Community: data {story_id, author_id, value, previous, score, up, down} (service_votes)
    STORY_VOTED = "story.voted"


KNOWN_TYPES = frozenset(t.value for t in EventType)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(extra="allow")

    event_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    event_type: str
    timestamp: datetime = Field(default_factory=_utcnow)
    user_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = SCHEMA_VERSION

    @field_validator("event_type", mode="before")
    @classmethod
    def _type_value(cls, value: Any) -> str:
        if isinstance(value, EventType):
            return value.value
        if not isinstance(value, str) or not value:
            raise ValueError("event_type must be a non-empty string")
        return value

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("event_id", mode="before")
    @classmethod
    def _event_id(cls, value: Any) -> str:
        return str(uuid.UUID(str(value)))

    @property
    def known(self) -> bool:
        return self.event_type in KNOWN_TYPES

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, body: bytes) -> Event:
        return cls.model_validate(orjson.loads(body))


def make_event(
    event_type: EventType | str, user_id: str | None, data: dict[str, Any] | None = None, **metadata: Any
) -> Event:
    return Event(event_type=event_type, user_id=user_id, data=data or {}, metadata=metadata)
