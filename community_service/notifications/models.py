"""Notifications' request bodies and answers."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from community_service.notifications.kinds import KINDS

Kind = Literal[KINDS]  # type: ignore[valid-type]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadRequest(Body):
    """`{ids: [...]}` marks those (yours; others' change nothing), `{all: true}` marks every one."""

    ids: list[uuid.UUID] | None = Field(None, min_length=1, max_length=500)
    all: Literal[True] | None = None

    @model_validator(mode="after")
    def _one_of(self):
        if (self.ids is None) == (self.all is None):
            raise ValueError("send either ids or all: true")
        return self


class ReadAnswer(BaseModel):
    marked: int
    unread: int


class UnreadCount(BaseModel):
    unread: int


class Notification(BaseModel):
    id: str
    seq: int = Field(description="The user's sequence number (the live stream's event id).")
    kind: str
    title: str
    body: str
    data: dict
    created_at: str
    read: bool


class NotificationPage(BaseModel):
    notifications: list[Notification]
    next_cursor: str | None


class Preferences(BaseModel):
    email: dict[str, bool]
    push: dict[str, bool]


class PreferencesUpdate(Body):
    """Only the kinds named change."""

    email: dict[Kind, bool] = Field(default_factory=dict)
    push: dict[Kind, bool] = Field(default_factory=dict)


class DeviceRequest(Body):
    # What Expo's getExpoPushTokenAsync gives, and all the official server SDK accepts.
    expo_push_token: str = Field(pattern=r"^ExponentPushToken\[[A-Za-z0-9_\-:.]{1,200}\]$")
    platform: Literal["ios", "android"]


class Device(BaseModel):
    expo_push_token: str
    platform: str
    created_at: str
