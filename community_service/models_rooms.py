"""Fandom rooms' request bodies (kept apart from models.py: other branches append there)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from community_service.models import Body, Name, ShortText

InviteCode = Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
# Auth's referral codes: 8 characters; a little room either side, Auth has the final word.
ReferralCode = Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9]+$")]


class RoomCreate(Body):
    name: Name
    description: ShortText = ""
    story_id: str | None = Field(None, max_length=64)
    visibility: Literal["public", "invite"] = "invite"


class RoomJoin(Body):
    """The room: `invite_code` (any room) or `room_id` (a public room). With `referral_code` (a
    member's Auth referral code) the referral is recorded through Auth's rules."""

    invite_code: InviteCode | None = None
    referral_code: ReferralCode | None = None
    room_id: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _one_room(self):
        if self.invite_code is None and self.room_id is None:
            raise ValueError("send invite_code, or room_id for a public room")
        if self.invite_code is not None and self.room_id is not None:
            raise ValueError("send invite_code or room_id, not both")
        return self


class MemberRole(Body):
    role: Literal["editor", "viewer"]


class PostCreate(Body):
    body: Annotated[str, Field(min_length=1, max_length=4000, pattern=r"\S")]
