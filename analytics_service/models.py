"""Request and response bodies (pydantic at the edges)."""

from __future__ import annotations

from typing import Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field

# Every name the service knows (rules.known_timezones, the same tz database): the document lists them,
# and the service answers INVALID_TIMEZONE (naming the value) for any other.
TIMEZONES = sorted(available_timezones())


class CheckinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="IANA time zone name (e.g. Europe/Paris); kept for the user's later days",
        json_schema_extra={"enum": [*TIMEZONES, None]},
    )


class Streak(BaseModel):
    current: int
    longest: int
    last_active_day: str | None
    next_milestone: int | None


class FlipTicket(BaseModel):
    id: str
    reason: str
    granted_at: str
    flipped: bool
    flipped_at: str | None
    reward: dict | None


class Reward(BaseModel):
    flip_ticket: FlipTicket


class CheckinResponse(BaseModel):
    streak: Streak
    xp: int
    level: int
    level_progress: float
    timezone: str
    checked_in: bool = Field(description="false when the user had already checked in this local day (nothing changed)")
    reward: Reward | None
    achievements_unlocked: list[str] = Field(default_factory=list)


class Rank(BaseModel):
    rank: int = Field(description="1 is the top; equal values share a rank")
    of: int = Field(description="users ranked")
    top_percent: float = Field(description="share of users at this rank or above, in percent")


class Percentiles(BaseModel):
    messages: Rank | None = Field(description="all-time messages; null before the user's first event")
    xp: Rank | None = Field(description="XP; null before the user's first activity")


class AchievementsCount(BaseModel):
    unlocked: int
    total: int


class MeResponse(BaseModel):
    messages: int
    conversations: int
    characters: int
    stories: int
    images: int
    active_days: int
    streak: Streak
    xp: int
    level: int
    level_progress: float
    achievements: AchievementsCount
    percentiles: Percentiles
    engagement_tier: str
    timezone: str


class Achievement(BaseModel):
    code: str
    name: str
    description: str
    metric: str
    threshold: int
    xp_reward: int
    progress: int
    unlocked: bool
    unlocked_at: str | None


class AchievementList(BaseModel):
    achievements: list[Achievement]


class FlipTicketList(BaseModel):
    flip_tickets: list[FlipTicket]
    next_cursor: str | None


class LeaderboardEntry(BaseModel):
    rank: int = Field(description="1 is the top; equal values share a rank")
    display_name: str
    value: int
    is_me: bool


class MyRank(Rank):
    value: int


class Leaderboard(BaseModel):
    metric: str
    period: str
    period_start: str | None = Field(description="first day (UTC) of the week or month; null for all time")
    entries: list[LeaderboardEntry]
    me: MyRank | None = Field(description="the caller's rank; null when the caller has no score on this board")


class FlipResult(BaseModel):
    flip_ticket: FlipTicket
    flipped_now: bool = Field(description="false when the ticket had already been flipped: the same reward again")


class ConversationOut(BaseModel):
    conversation_id: str
    character: str | None
    messages: int = Field(description="messages of the whole conversation")
    first_message_at: str | None
    last_message_at: str | None


class CharacterMessages(BaseModel):
    character: str
    messages: int


class ConversationStats(BaseModel):
    period: Literal["week", "month", "all"]
    period_start: str | None = Field(description="first day (UTC) of the week or month; null for all time")
    messages: int = Field(description="messages the caller sent in the period (regenerations excluded)")
    conversations: int = Field(description="the caller's conversations with a message in the period")
    characters: int = Field(description="distinct characters of those conversations")
    average_messages_per_conversation: float
    recent_conversations: list[ConversationOut] = Field(description="most recent message first")
    top_characters: list[CharacterMessages] = Field(description="the caller's most-talked-to characters, all time")


class CharacterEntry(BaseModel):
    rank: int = Field(description="1 is the top; equal message counts share a rank")
    character: str
    messages: int
    conversations: int | None = Field(description="conversations started with the character; all time only")
    users: int | None = Field(description="distinct users who talked to the character; all time only")


class CharacterStats(BaseModel):
    period: Literal["week", "month", "all"]
    period_start: str | None
    characters: list[CharacterEntry]
