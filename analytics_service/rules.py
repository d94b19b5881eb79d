"""The analytics rules as pure functions: what an event counts as, streak days, XP and levels,
engagement tiers. No I/O here, so every rule is tested directly (time zones, DST, the curve)."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from shared.events import Event, EventType

# -- what events count as -------------------------------------------------------------------------

CHECKIN_ACTION = "checkin"
# Things a person does in the product: they make a day (or an hour) active.
ACTIVITY_TYPES = frozenset(
    {
        EventType.MESSAGE_SENT.value,
        EventType.CONVERSATION_CREATED.value,
        EventType.STORY_CREATED.value,
        EventType.STORY_PUBLISHED.value,
        EventType.IMAGE_GENERATED.value,
        EventType.USER_ENGAGEMENT.value,
    }
)
# What this service emits itself comes back through `#`: kept raw and in the platform's event
# count, but not counted as the user's doing, and it earns no XP and moves no streak.
OWN_EVENT_TYPES = frozenset(
    {
        EventType.ACHIEVEMENT_UNLOCKED.value,
        EventType.STREAK_MILESTONE.value,
        EventType.LEVEL_UP.value,
        EventType.REWARD_GRANTED.value,
    }
)
UPGRADE_TYPES = frozenset({EventType.SUBSCRIPTION_CREATED.value, EventType.SUBSCRIPTION_UPGRADED.value})

# XP per action (the route's check-in gives CHECKIN_XP). A regenerated reply earns nothing: it
# replaces a reply the user already had.
XP_PER_EVENT = {
    EventType.MESSAGE_SENT.value: 2,
    EventType.CONVERSATION_CREATED.value: 5,
    EventType.STORY_CREATED.value: 20,
    EventType.STORY_PUBLISHED.value: 30,
    EventType.IMAGE_GENERATED.value: 5,
}
CHECKIN_XP = 10
# At most this much XP from actions (XP_PER_EVENT and check-ins) per user and local day: a script
# sending messages all day cannot farm levels. Achievements and flip rewards are not capped (each
# comes once, or from a ticket). Enforced by the statement that adds XP (progress_repo.save).
DAILY_ACTION_XP_CAP = 500
# Events that can move a user's progression: XP, a streak day, or an achievement's metric.
PROGRESSION_TYPES = frozenset(XP_PER_EVENT) | ACTIVITY_TYPES | UPGRADE_TYPES
STREAK_MILESTONES = (3, 7, 14, 30, 100)

# The keys of an erased user's events that the platform totals still need; everything else
# (emails, referral codes, conversation ids) is dropped from the raw row.
KEYS_KEPT_AFTER_ERASURE = ("sender", "regenerated", "tier", "previous_tier", "amount", "is_guest", "action")


def uuid_order(u: uuid.UUID) -> int:
    """Sort key of a UUID: the same order as comparing UUIDs, without UUID.__lt__ per comparison."""
    return u.int


def parse_user_id(value: object) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def event_user(event: Event) -> uuid.UUID | None:
    return parse_user_id(event.user_id or event.data.get("user_id"))


def is_counted_message(event_type: str, data: dict) -> bool:
    return event_type == EventType.MESSAGE_SENT.value and not data.get("regenerated")


def message_character(data: dict) -> str | None:
    sender = data.get("sender")
    if isinstance(sender, str) and sender and sender != "user":
        return sender[:200]
    return None


def _int(value: object, default: int = 0) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def is_upgrade(event_type: str, data: dict) -> bool:
    return event_type in UPGRADE_TYPES and _int(data.get("tier")) > _int(data.get("previous_tier"))


def is_conversion(event_type: str, data: dict) -> bool:
    """Free to paid: an upgrade from tier 0."""
    return is_upgrade(event_type, data) and _int(data.get("previous_tier")) == 0


def hour_bucket(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC)
    return ts.replace(minute=0, second=0, microsecond=0)


def day_bucket(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC)
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


@lru_cache(maxsize=8192)
def _hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


def hour_and_day(ts: datetime) -> tuple[datetime, datetime]:
    """hour_bucket(ts), day_bucket(ts) for the ingestion's hot loop: integer hours since the epoch
    (UTC days are whole hours from it) and a cache, instead of time zone conversions per event."""
    hour = math.floor(ts.timestamp()) // 3600
    return _hour_start(hour), _hour_start(hour - hour % 24)


# -- rollup deltas ----------------------------------------------------------------------------------


@dataclass(slots=True)
class RawEvent:
    """An event as the rollups see it (live from the bus, or read back from analytics_events)."""

    event_type: str
    user_id: uuid.UUID | None
    occurred_at: datetime
    data: dict
    erased: bool = False


USER_COUNTERS = ("events", "messages", "conversations", "stories", "images", "upgrades")
PLATFORM_METRICS = (
    "events",
    "messages",
    "conversations",
    "new_users",
    "new_guests",
    "stories",
    "images",
    "conversions",
    "cancellations",
    "revenue_cents",
    "active_users",
)


@dataclass
class RollupDelta:
    """What a set of events adds to the rollups. Every part is a sum, a set or a min/max, so the
    order events arrive in (and how they are batched) cannot change the result: that is what
    makes a replay from the raw events give the same numbers as the live rollups."""

    users: dict[uuid.UUID, Counter] = field(default_factory=dict)
    user_first: dict[uuid.UUID, datetime] = field(default_factory=dict)
    user_last: dict[uuid.UUID, datetime] = field(default_factory=dict)
    user_days: set[tuple[uuid.UUID, date]] = field(default_factory=set)
    user_characters: Counter = field(default_factory=Counter)  # (user, character) -> messages
    conversations: dict[uuid.UUID, dict] = field(default_factory=dict)
    character_messages: Counter = field(default_factory=Counter)
    character_conversations: Counter = field(default_factory=Counter)
    character_daily: Counter = field(default_factory=Counter)  # (day, character) -> messages
    activity: set[tuple[str, datetime, uuid.UUID]] = field(default_factory=set)
    platform: Counter = field(default_factory=Counter)  # (granularity, bucket, metric) -> value
    board_messages: Counter = field(default_factory=Counter)  # (board, user) -> messages

    def add(self, e: RawEvent) -> None:
        hour, day = hour_and_day(e.occurred_at)
        t, data, uid = e.event_type, e.data, e.user_id
        # Per-user rollups only for the user's own live events (an erased user has none).
        per_user = uid is not None and not e.erased and t not in OWN_EVENT_TYPES
        plat: list[tuple[str, int]] = [("events", 1)]
        if per_user:
            c = self.users.setdefault(uid, Counter())
            c["events"] += 1
            if uid not in self.user_first or e.occurred_at < self.user_first[uid]:
                self.user_first[uid] = e.occurred_at
        active = uid is not None and t in ACTIVITY_TYPES
        if active:
            self.activity.add(("hour", hour, uid))
            self.activity.add(("day", day, uid))
            if per_user:
                self.user_days.add((uid, day.date()))
                if uid not in self.user_last or e.occurred_at > self.user_last[uid]:
                    self.user_last[uid] = e.occurred_at
        if is_counted_message(t, data):
            plat.append(("messages", 1))
            character = message_character(data)
            if per_user:
                self.users[uid]["messages"] += 1
                for b in _boards_on("messages", day.date()):
                    self.board_messages[(b, uid)] += 1
                conv_id = parse_user_id(data.get("conversation_id"))
                if conv_id is not None:
                    self._conversation(conv_id, uid, None, e.occurred_at)["messages"] += 1
            if character:
                self.character_messages[character] += 1
                self.character_daily[(day.date(), character)] += 1
                if uid is not None:
                    self.user_characters[(uid, character)] += 1
        elif t == EventType.CONVERSATION_CREATED.value:
            plat.append(("conversations", 1))
            character = data.get("character") if isinstance(data.get("character"), str) else None
            character = character[:200] if character else None
            if per_user:
                self.users[uid]["conversations"] += 1
                conv_id = parse_user_id(data.get("conversation_id"))
                if conv_id is not None:
                    self._conversation(conv_id, uid, character, None)
            if character:
                self.character_conversations[character] += 1
        elif t == EventType.USER_CREATED.value:
            plat.append(("new_guests" if data.get("is_guest") else "new_users", 1))
        elif t == EventType.STORY_CREATED.value:
            plat.append(("stories", 1))
            if per_user:
                self.users[uid]["stories"] += 1
        elif t == EventType.IMAGE_GENERATED.value:
            plat.append(("images", 1))
            if per_user:
                self.users[uid]["images"] += 1
        elif t == EventType.SUBSCRIPTION_CANCELLED.value:
            plat.append(("cancellations", 1))
        elif t == EventType.PAYMENT_SUCCEEDED.value:
            plat.append(("revenue_cents", max(0, _int(data.get("amount")))))
        if is_upgrade(t, data):
            if per_user:
                self.users[uid]["upgrades"] += 1
            if is_conversion(t, data):
                plat.append(("conversions", 1))
        for metric, value in plat:
            self.platform[("hour", hour, metric)] += value
            self.platform[("day", day, metric)] += value

    def _conversation(
        self, conv_id: uuid.UUID, uid: uuid.UUID, character: str | None, message_at: datetime | None
    ) -> dict:
        row = self.conversations.setdefault(
            conv_id, {"user_id": uid, "character": None, "messages": 0, "first": None, "last": None}
        )
        if character:  # one conversation.created per conversation; min() keeps any order giving one answer
            row["character"] = character if row["character"] is None else min(row["character"], character)
        if message_at is not None:
            row["first"] = message_at if row["first"] is None else min(row["first"], message_at)
            row["last"] = message_at if row["last"] is None else max(row["last"], message_at)
        return row


# -- flip tickets ------------------------------------------------------------------------------------


def draw_reward(table: list, rng) -> Any:
    """One row of the weighted reward table (rows with `weight`), drawn with `rng` (the service
    passes secrets.SystemRandom: the client never chooses)."""
    rows = [r for r in table if r["weight"] > 0]
    if not rows:
        raise ValueError("no active flip reward")
    return rng.choices(rows, weights=[r["weight"] for r in rows], k=1)[0]


# -- leaderboards -----------------------------------------------------------------------------------

LEADERBOARD_METRICS = ("xp", "messages", "streak")
LEADERBOARD_PERIODS = ("week", "month", "all")


def period_start(period: str, ts: datetime) -> date:
    """The first day of the UTC ISO week (Monday) or UTC month `ts` falls in."""
    day = ts.astimezone(UTC).date()
    return day - timedelta(days=day.weekday()) if period == "week" else day.replace(day=1)


def board(metric: str, period: str, start: date) -> str:
    return f"{metric}:{period}:{start.isoformat()}"


def boards_at(metric: str, ts: datetime) -> tuple[str, ...]:
    """The per-period boards a score earned at `ts` counts on."""
    return _boards_on(metric, ts.astimezone(UTC).date())


@lru_cache(maxsize=4096)
def _boards_on(metric: str, day: date) -> tuple[str, ...]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return tuple(board(metric, period, period_start(period, start)) for period in ("week", "month"))


def display_name(user_id: uuid.UUID) -> str:
    """Analytics knows no names (Auth's user events carry none): a short, stable form of the id."""
    return f"Fan {user_id.hex[:8]}"


# -- time zones and streaks --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def known_timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def valid_timezone(name: str) -> bool:
    return name in known_timezones()


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_day(ts: datetime, tz_name: str) -> date:
    """The calendar day `ts` falls on where the user lives (DST included: zoneinfo knows the
    offset at that instant)."""
    return ts.astimezone(zone(tz_name)).date()


@dataclass
class Streak:
    current: int = 0
    longest: int = 0
    started_on: date | None = None
    last_active_day: date | None = None

    def step(self, day: date) -> list[int]:
        """Count an active local day; the milestones this reached (each at most once per run).

        Same day: nothing. The next day: one more. A later day after a missed one: a new run of
        one (no grace day, docs/analytics.md says why). An earlier day (a late event, or a time
        zone moved west): ignored, a streak never goes back in time."""
        last = self.last_active_day
        if last is not None and day <= last:
            return []
        if last is not None and day == last + timedelta(days=1):
            self.current += 1
        else:
            self.current = 1
            self.started_on = day
        self.last_active_day = day
        self.longest = max(self.longest, self.current)
        return [m for m in STREAK_MILESTONES if m == self.current]

    def current_on(self, today: date) -> int:
        """The streak as it stands today: still alive if the last active day is today or yesterday."""
        if self.last_active_day is None or self.last_active_day < today - timedelta(days=1):
            return 0
        return self.current

    def next_milestone(self, today: date) -> int | None:
        current = self.current_on(today)
        return next((m for m in STREAK_MILESTONES if m > current), None)


def streak_grant_key(started_on: date, milestone: int) -> str:
    """One ticket per milestone per streak run: the run is named by its first day."""
    return f"streak:{started_on.isoformat()}:{milestone}"


# -- levels -------------------------------------------------------------------------------------------


def xp_for_level(level: int) -> int:
    """Total XP needed to reach `level`: 50 * level * (level - 1). Level 1 at 0, 2 at 100, 3 at 300,
    5 at 1,000, 10 at 4,500, 20 at 19,000: each level costs 100 XP more than the one before."""
    return 50 * level * (level - 1)


def level_for_xp(xp: int) -> int:
    """The largest level with xp_for_level(level) <= xp: floor((5 + sqrt(25 + 2 * xp)) / 10)."""
    xp = max(0, int(xp))
    level = (5 + math.isqrt(25 + 2 * xp)) // 10
    while xp_for_level(level + 1) <= xp:  # integer square roots are exact; these only guard
        level += 1
    while level > 1 and xp_for_level(level) > xp:
        level -= 1
    return max(1, level)


def level_progress(xp: int) -> float:
    level = level_for_xp(xp)
    low, high = xp_for_level(level), xp_for_level(level + 1)
    return round((xp - low) / (high - low), 4)


# -- engagement tier ------------------------------------------------------------------------------------


# The engagement tier's thresholds (the daily task applies the same ones in SQL).
TIER_NEW_DAYS = 7
TIER_AT_RISK_DAYS = 14
TIER_WINDOW_DAYS = 30
TIER_POWER_DAYS = 20
TIER_REGULAR_DAYS = 8
ENGAGEMENT_TIERS = ("new", "casual", "regular", "power", "at_risk")


def engagement_tier(
    *, first_seen: datetime | None, last_active: datetime | None, active_days_30: int, now: datetime
) -> str:
    """new: first seen within 7 days. at_risk: nothing for 14 days or more. power: active on 20+ of
    the last 30 days. regular: 8+. casual: the rest."""
    if first_seen is None or now - first_seen < timedelta(days=TIER_NEW_DAYS):
        return "new"
    if last_active is None or now - last_active >= timedelta(days=TIER_AT_RISK_DAYS):
        return "at_risk"
    if active_days_30 >= TIER_POWER_DAYS:
        return "power"
    if active_days_30 >= TIER_REGULAR_DAYS:
        return "regular"
    return "casual"
