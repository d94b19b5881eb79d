"""Request and response bodies (pydantic at the edges)."""

from __future__ import annotations

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
