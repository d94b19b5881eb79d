"""Fandom rooms' request bodies (kept apart from models.py: other branches append there)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from community_service.models import Body, Name, ShortText

InviteCode = Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
# Auth's referral codes: 8 characters; a little room either side, Auth has the final word.
ReferralCode = Annotated[str, Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9]+$")]


class RoomCreate(Body):
    name: Name
    description: ShortText = ""
    story_id: str | None = Field(None, max_length=64)
    visibility: Literal["public", "invite"] = "invite"


class JoinByInvite(Body):
    """Any room, by its invite code."""

    invite_code: InviteCode
    referral_code: ReferralCode | None = None


class JoinPublic(Body):
    """A public room, by its id."""

    room_id: str = Field(max_length=64)
    referral_code: ReferralCode | None = None


# One or the other (the document says so: anyOf two closed objects). With `referral_code` (a
# member's Auth referral code) the referral is recorded through Auth's rules.
RoomJoin = JoinByInvite | JoinPublic


class MemberRole(Body):
    role: Literal["editor", "viewer"]


class PostCreate(Body):
    body: Annotated[str, Field(min_length=1, max_length=4000, pattern=r"\S")]
