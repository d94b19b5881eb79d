"""Notifications' request bodies and answers."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from community_service.notifications.kinds import KINDS

Kind = Literal[KINDS]  # type: ignore[valid-type]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadIds(Body):
    """Marks these (the caller's; others' ids change nothing)."""

    ids: list[uuid.UUID] = Field(min_length=1, max_length=500)


class ReadAll(Body):
    """Marks every one."""

    all: Literal[True]


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

    email: dict[Kind, StrictBool] = Field(default_factory=dict)
    push: dict[Kind, StrictBool] = Field(default_factory=dict)


class DeviceRequest(Body):
    # What Expo's getExpoPushTokenAsync gives, and all the official server SDK accepts.
    expo_push_token: str = Field(pattern=r"^ExponentPushToken\[[A-Za-z0-9_\-:.]{1,200}\]$")
    platform: Literal["ios", "android"]


class Device(BaseModel):
    expo_push_token: str
    platform: str
    created_at: str
