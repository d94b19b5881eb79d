"""The analytics service's operations: ingest a batch of events (raw, rollups, progression,
erasure) in the consumer's transaction, check in, and read a user's figures. The rules
themselves are in rules.py; SQL is in repositories/."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from analytics_service import rules
from analytics_service.repositories import events as events_repo
from analytics_service.repositories import progress as progress_repo
from analytics_service.repositories import ranks as ranks_repo
from analytics_service.repositories import rollups as rollups_repo
from shared.bus.outbox import emit
from shared.events import Event, EventType, make_event
from shared.quota import REWARD_QUOTA_TYPES

log = logging.getLogger("analytics_service")

SOURCE = "analytics_service"


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- progression ---------------------------------------------------------------------------------


@dataclass
class Progress:
    user_id: uuid.UUID
    timezone: str
    xp: int
    level: int
    streak: rules.Streak
    last_checkin_day: date | None
    xp_gain: int = 0
    milestones: list[tuple[int, date]] = field(default_factory=list)
    # The XP and longest streak the user had in the histograms before this transaction (None: a new row).
    xp_before: int | None = None
    longest_before: int | None = None

    @classmethod
    def from_row(cls, r: asyncpg.Record, created: bool = False) -> Progress:
        return cls(
            xp_before=None if created else r["xp"],
            longest_before=None if created else r["streak_longest"],
            user_id=r["user_id"],
            timezone=r["timezone"],
            xp=r["xp"],
            level=r["level"],
            streak=rules.Streak(r["streak_current"], r["streak_longest"], r["streak_started_on"], r["last_active_day"]),
            last_checkin_day=r["last_checkin_day"],
        )

    def active_on(self, day: date) -> None:
        for m in self.streak.step(day):
            self.milestones.append((m, self.streak.started_on))

    def row(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "timezone": self.timezone,
            "xp": self.xp,
            "level": self.level,
            "streak_current": self.streak.current,
            "streak_longest": self.streak.longest,
            "streak_started_on": self.streak.started_on,
            "last_active_day": self.streak.last_active_day,
            "last_checkin_day": self.last_checkin_day,
        }


@dataclass
class Settled:
    tickets: list[asyncpg.Record]
    achievements: list[asyncpg.Record]
    level_ups: list[tuple[uuid.UUID, int, int]]


def _metrics(analytics: asyncpg.Record | None, p: Progress) -> dict[str, int]:
    values = {
        m: (analytics[m] if analytics is not None else 0)
        for m in ("messages", "conversations", "characters", "stories", "images", "upgrades", "active_days")
    }
    values["streak"] = p.streak.longest
    return values


async def settle(
    conn: asyncpg.Connection, states: dict[uuid.UUID, Progress], now: datetime, extra_events: list[Event] = ()
) -> Settled:
    """After the states took their XP and streak days: tickets for milestones reached (once per
    milestone per streak run), achievements whose metric reached its threshold (once), their
    XP, the new level; rows saved and the events emitted, all in the caller's transaction."""
    users = sorted(states)
    grants = [
        (u, f"streak_{m}", rules.streak_grant_key(started, m)) for u in users for m, started in states[u].milestones
    ]
    tickets = await progress_repo.insert_tickets(conn, grants, now)

    achievements = await progress_repo.unlock_due(conn, users, [states[u].streak.longest for u in users], now)
    for a in achievements:
        states[a["user_id"]].xp_gain += a["xp_reward"]

    level_ups = []
    for u in users:
        p = states[u]
        p.xp += p.xp_gain
        p.xp_gain = 0
        new_level = rules.level_for_xp(p.xp)
        if new_level > p.level:
            level_ups.append((u, p.level, new_level))
        p.level = max(p.level, new_level)
    await progress_repo.save(conn, [states[u].row() for u in users])
    moved: Counter = Counter()
    longest: Counter = Counter()
    gains: dict[tuple[str, uuid.UUID], int] = {}
    boards = rules.boards_at("xp", now)
    for p in states.values():
        gained = p.xp - (p.xp_before or 0)
        if gained > 0:
            gains.update({(b, p.user_id): gained for b in boards})
        if p.xp_before != p.xp:
            if p.xp_before is not None:
                moved[p.xp_before] -= 1
            moved[p.xp] += 1
        p.xp_before = p.xp
        if p.longest_before != p.streak.longest:
            if p.longest_before is not None:
                longest[p.longest_before] -= 1
            longest[p.streak.longest] += 1
        p.longest_before = p.streak.longest
    await ranks_repo.shift_many(conn, {"xp": moved, "streak": longest})
    await ranks_repo.add_scores(conn, gains)

    out = list(extra_events)
    for t in tickets:
        milestone = int(t["reason"].split("_", 1)[1])
        out.append(
            make_event(
                EventType.STREAK_MILESTONE,
                str(t["user_id"]),
                {"milestone": milestone, "flip_ticket_id": str(t["id"])},
                source=SOURCE,
            )
        )
    for a in achievements:
        out.append(
            make_event(
                EventType.ACHIEVEMENT_UNLOCKED,
                str(a["user_id"]),
                {"code": a["code"], "name": a["name"], "xp_reward": a["xp_reward"]},
                source=SOURCE,
            )
        )
    for u, old, new in level_ups:
        out.append(
            make_event(
                EventType.LEVEL_UP, str(u), {"level": new, "previous_level": old, "xp": states[u].xp}, source=SOURCE
            )
        )
    if out:
        await emit(conn, *out)
    return Settled(tickets, achievements, level_ups)


async def progress_from_events(conn: asyncpg.Connection, raw: list[rules.RawEvent], now: datetime) -> Settled | None:
    relevant = [
        e
        for e in raw
        if e.user_id is not None
        and not e.erased
        and e.event_type not in rules.OWN_EVENT_TYPES
        and e.event_type in rules.PROGRESSION_TYPES
    ]
    if not relevant:
        return None
    rows, created = await progress_repo.lock(conn, [e.user_id for e in relevant])
    states = {r["user_id"]: Progress.from_row(r, r["user_id"] in created) for r in rows}
    for e in sorted(relevant, key=lambda e: e.occurred_at):
        p = states[e.user_id]
        if rules.is_counted_message(e.event_type, e.data) or e.event_type != EventType.MESSAGE_SENT.value:
            p.xp_gain += rules.XP_PER_EVENT.get(e.event_type, 0)
        # A check-in moved the streak in its own request; its event only counts as activity.
        if e.event_type in rules.ACTIVITY_TYPES and e.event_type != EventType.USER_ENGAGEMENT.value:
            p.active_on(rules.local_day(e.occurred_at, p.timezone))
    return await settle(conn, states, now)


# -- ingestion -----------------------------------------------------------------------------------------


class Ingestor:
    """Applies a batch of events (first-time ones: the consumer filtered redeliveries) in the
    consumer's transaction. Keeps the months whose partition is known to exist."""

    def __init__(self, forwarder: Any = None) -> None:
        self.months: set[date] = set()
        self.forwarder = forwarder  # PostHogForwarder, when POSTHOG_API_KEY is set

    async def __call__(self, conn: asyncpg.Connection, events: list[Event], state: Any = None) -> None:
        try:
            await self.ingest(conn, events)
        except BaseException:
            # A partition created in a transaction that rolls back does not exist: forget the
            # months seen, so the retry creates them again.
            self.months.clear()
            raise

    async def ingest(self, conn: asyncpg.Connection, events: list[Event]) -> None:
        raw, rows = [], []
        for e in events:
            user_id = rules.event_user(e)
            data = e.data if isinstance(e.data, dict) else {}
            source = e.metadata.get("source") if isinstance(e.metadata, dict) else None
            rows.append(events_repo.raw_row(e.event_id, e.event_type, user_id, e.timestamp, source, data))
            raw.append(rules.RawEvent(e.event_type, user_id, e.timestamp, data))
        months = {e.occurred_at.astimezone(UTC).date().replace(day=1) for e in raw}
        await events_repo.ensure_partitions(conn, months, self.months)
        await events_repo.insert_raw(conn, rows, rollups_repo.ROLLUP_LOCK)
        await rollups_repo.apply(conn, rollup_delta(raw))
        deleted = {e.user_id for e in raw if e.event_type == EventType.USER_DELETED.value and e.user_id is not None}
        # No progression (nor its events, which would come back naming the user) for a user
        # this batch erases.
        await progress_from_events(conn, [e for e in raw if e.user_id not in deleted], _utcnow())
        for user_id in sorted(deleted):
            await erase_user(conn, user_id)
        if self.forwarder is not None:
            # Last: nothing is handed over for a batch whose work failed (nor anything naming a user
            # this batch erases).
            self.forwarder.forward([e for e in events if rules.event_user(e) not in deleted])


async def ensure_partitions_ahead(pool: asyncpg.Pool, months: int = 2) -> None:
    """This month's partition and the next ones', so the first events of a month do not wait
    for its creation (the consumer still creates any month a batch needs)."""
    today = _utcnow().date().replace(day=1)
    wanted = [(today + timedelta(days=32 * i)).replace(day=1) for i in range(months + 1)]
    async with pool.acquire() as conn, conn.transaction():
        await events_repo.ensure_partitions(conn, wanted, set())


def rollup_delta(raw: list[rules.RawEvent]) -> rules.RollupDelta:
    delta = rules.RollupDelta()
    for e in raw:
        delta.add(e)
    return delta


async def erase_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> dict[str, int]:
    """`user.deleted`: nothing left that names the user. Per-user rows and progression are
    deleted; raw events and the rows platform totals are made of move to a random id that links
    to nobody (so totals, and a replay, stay right)."""
    pseudonym = uuid.uuid4()
    counts = {
        "analytics_events": await events_repo.erase_user(conn, user_id, pseudonym, list(rules.KEYS_KEPT_AFTER_ERASURE))
    }
    counts.update(await rollups_repo.erase_user(conn, user_id, pseudonym))
    counts.update(await progress_repo.erase_user(conn, user_id))
    log.info("user erased", extra={"user_id": str(user_id), **counts})
    return counts


async def replay(pool_or_conn, chunk: int = 5000) -> int:
    """Rebuild every rollup from the raw events, in one transaction (consumers wait on the lock
    meanwhile; their messages stay queued). Returns the number of events read."""

    async def run(conn) -> int:
        n = 0
        async with conn.transaction():
            await rollups_repo.lock_exclusive(conn)
            await rollups_repo.truncate(conn)
            async for rows in events_repo.iterate_raw(conn, chunk):
                delta = rules.RollupDelta()
                for r in rows:
                    delta.add(
                        rules.RawEvent(r["event_type"], r["user_id"], r["occurred_at"], _json(r["data"]), r["erased"])
                    )
                await rollups_repo.apply(conn, delta)
                n += len(rows)
            await ranks_repo.rebuild(
                conn, "messages", "SELECT messages, count(*) FROM user_analytics GROUP BY messages"
            )
        return n

    if isinstance(pool_or_conn, asyncpg.Pool):
        async with pool_or_conn.acquire() as conn:
            return await run(conn)
    return await run(pool_or_conn)


def _json(value: Any) -> dict:
    if isinstance(value, (str, bytes)):
        import orjson

        value = orjson.loads(value)
    return value if isinstance(value, dict) else {}


# -- check-in and reads ------------------------------------------------------------------------------------


def streak_out(p: Progress | None, today: date) -> dict[str, Any]:
    streak = p.streak if p is not None else rules.Streak()
    return {
        "current": streak.current_on(today),
        "longest": streak.longest,
        "last_active_day": streak.last_active_day.isoformat() if streak.last_active_day else None,
        "next_milestone": streak.next_milestone(today),
    }


def rank_out(above: int, total: int) -> dict[str, Any]:
    """Rank 1 is the top; users with the same value share a rank. `top_percent`: the share of
    users at this rank or above ("you are in the top 12%")."""
    total = max(total, above + 1)
    return {"rank": above + 1, "of": total, "top_percent": round(100 * (above + 1) / total, 1)}


def ticket_out(r: asyncpg.Record) -> dict[str, Any]:
    flipped = r["flipped_at"] is not None
    return {
        "id": str(r["id"]),
        "reason": r["reason"],
        "granted_at": r["granted_at"].isoformat(),
        "flipped": flipped,
        "flipped_at": r["flipped_at"].isoformat() if flipped else None,
        "reward": {"kind": r["reward_kind"], "amount": r["reward_amount"]} if flipped else None,
    }


async def checkin(pool: asyncpg.Pool, user_id: str, tz_name: str | None, now: datetime | None = None) -> dict[str, Any]:
    """Once per local day: the streak moves, the check-in's XP is given, a milestone reached
    gives its ticket. A second check-in that day changes nothing and answers the same state."""
    now = now or _utcnow()
    uid = uuid.UUID(user_id)
    async with pool.acquire() as conn, conn.transaction():
        rows, created = await progress_repo.lock(conn, [uid])
        p = Progress.from_row(rows[0], bool(created))
        if tz_name:
            p.timezone = tz_name
        today = rules.local_day(now, p.timezone)
        if p.last_checkin_day == today:
            if tz_name:
                await progress_repo.save(conn, [p.row()])
            return {**_state_out(p, today), "checked_in": False, "reward": None}
        p.last_checkin_day = today
        p.xp_gain += rules.CHECKIN_XP
        p.active_on(today)
        engagement = make_event(
            EventType.USER_ENGAGEMENT,
            user_id,
            {"action": rules.CHECKIN_ACTION, "local_day": today.isoformat(), "timezone": p.timezone},
            source=SOURCE,
        )
        engagement.timestamp = now
        settled = await settle(conn, {uid: p}, now, [engagement])
    reward = {"flip_ticket": ticket_out(settled.tickets[0])} if settled.tickets else None
    return {
        **_state_out(p, today),
        "checked_in": True,
        "reward": reward,
        "achievements_unlocked": [a["code"] for a in settled.achievements],
    }


def _state_out(p: Progress, today: date) -> dict[str, Any]:
    return {
        "streak": streak_out(p, today),
        "xp": p.xp,
        "level": p.level,
        "level_progress": rules.level_progress(p.xp),
        "timezone": p.timezone,
    }


async def profile(pool: asyncpg.Pool, user_id: str, now: datetime | None = None) -> dict[str, Any]:
    now = now or _utcnow()
    async with pool.acquire() as conn:
        a = await rollups_repo.user_row(conn, user_id)
        row = await progress_repo.get(conn, user_id)
        p = Progress.from_row(row) if row is not None else None
        unlocked, total = await progress_repo.count_unlocked(conn, user_id)
        active_30 = await rollups_repo.active_days_since(conn, user_id, (now - timedelta(days=29)).date())
        percentiles = {
            "messages": rank_out(*await ranks_repo.rank(conn, "messages", a["messages"])) if a is not None else None,
            "xp": rank_out(*await ranks_repo.rank(conn, "xp", p.xp)) if p is not None else None,
        }
    today = rules.local_day(now, p.timezone if p else "UTC")
    xp = p.xp if p else 0

    def count(name: str) -> int:
        return int(a[name]) if a is not None else 0

    return {
        "messages": count("messages"),
        "conversations": count("conversations"),
        "characters": count("characters"),
        "stories": count("stories"),
        "images": count("images"),
        "active_days": count("active_days"),
        "streak": streak_out(p, today),
        "xp": xp,
        "level": rules.level_for_xp(xp) if p is None else p.level,
        "level_progress": rules.level_progress(xp),
        "achievements": {"unlocked": unlocked, "total": total},
        "percentiles": percentiles,
        "engagement_tier": rules.engagement_tier(
            first_seen=a["first_seen_at"] if a else None,
            last_active=a["last_active_at"] if a else None,
            active_days_30=active_30,
            now=now,
        ),
        "timezone": p.timezone if p else "UTC",
    }


async def achievements(pool: asyncpg.Pool, user_id: str) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await progress_repo.achievements_of(conn, user_id)
        a = await rollups_repo.user_row(conn, user_id)
        row = await progress_repo.get(conn, user_id)
    p = Progress.from_row(row) if row is not None else Progress(uuid.UUID(user_id), "UTC", 0, 1, rules.Streak(), None)
    values = _metrics(a, p)
    return [
        {
            "code": r["code"],
            "name": r["name"],
            "description": r["description"],
            "metric": r["metric"],
            "threshold": r["threshold"],
            "xp_reward": r["xp_reward"],
            "progress": min(values[r["metric"]], r["threshold"]),
            "unlocked": r["unlocked_at"] is not None,
            "unlocked_at": r["unlocked_at"].isoformat() if r["unlocked_at"] else None,
        }
        for r in rows
    ]


async def flip_tickets(pool: asyncpg.Pool, user_id: str, *, limit: int, after) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await progress_repo.list_tickets(conn, user_id, limit=limit, after=after)


# -- leaderboards ----------------------------------------------------------------------------------------


async def leaderboard(
    pool: asyncpg.Pool, user_id: str, metric: str, period: str, limit: int, now: datetime | None = None
) -> dict[str, Any]:
    """Top `limit` users (display names only) and the caller's rank. All time: messages, XP,
    longest streak; week / month (UTC): messages sent and XP earned in it. Index range scans and
    histograms: no sort of the users."""
    now = now or _utcnow()
    uid = uuid.UUID(user_id)
    start = rules.period_start(period, now) if period != "all" else None
    board = rules.board(metric, period, start) if start is not None else None
    histogram = board or metric
    async with pool.acquire() as conn:
        rows = await ranks_repo.top(conn, metric, board, limit)
        mine = await ranks_repo.value_of(conn, metric, board, uid)
        me = None
        if mine is not None:
            me = {**rank_out(*await ranks_repo.rank(conn, histogram, mine)), "value": int(mine)}
    entries = []
    for i, r in enumerate(rows):
        # Everyone with a higher value is listed before: the rank is 1 + those, ties share it.
        rank = entries[-1]["rank"] if entries and entries[-1]["value"] == r["value"] else i + 1
        entries.append(
            {
                "rank": rank,
                "display_name": rules.display_name(r["user_id"]),
                "value": int(r["value"]),
                "is_me": r["user_id"] == uid,
            }
        )
    return {
        "metric": metric,
        "period": period,
        "period_start": start.isoformat() if start else None,
        "entries": entries,
        "me": me,
    }


# -- flip tickets ---------------------------------------------------------------------------------------


async def flip(pool: asyncpg.Pool, user_id: str, ticket_id: uuid.UUID, now: datetime | None = None) -> dict | None:
    """Reveal a ticket's reward, once: the ticket row is locked, so concurrent flips wait and then
    see it flipped (they answer the same reward, `flipped_now: false`). The reward is drawn here
    from the weighted table; a credit leaves as `reward.granted` (outbox, reward_id = the ticket id,
    so Payment adds it once), XP is added at once. None: no such ticket for this user."""
    now = now or _utcnow()
    uid = uuid.UUID(user_id)
    try:
        async with pool.acquire() as conn, conn.transaction():
            # Progress row first, then the ticket: the order erasure and check-ins lock them in.
            rows, created = await progress_repo.lock(conn, [uid])
            p = Progress.from_row(rows[0], bool(created))
            ticket = await progress_repo.lock_ticket(conn, ticket_id, uid)
            if ticket is None:
                raise _NoTicket  # rolls back the progress row the lock may have created
            if ticket["flipped_at"] is not None:
                if created:
                    await settle(conn, {uid: p}, now)  # a new row enters the rank histograms
                return {"flip_ticket": ticket_out(ticket), "flipped_now": False}
            choice = rules.draw_reward(await progress_repo.flip_rewards(conn), _REWARD_RNG)
            ticket = await progress_repo.reveal(conn, ticket_id, choice["kind"], choice["amount"], now)
            granted = make_event(
                EventType.REWARD_GRANTED,
                user_id,
                {
                    "reward_id": str(ticket_id),
                    "flip_ticket_id": str(ticket_id),
                    "kind": choice["kind"],
                    "amount": choice["amount"],
                    "quota_type": REWARD_QUOTA_TYPES.get(choice["kind"]),
                },
                source=SOURCE,
            )
            if choice["kind"] == "xp":
                p.xp_gain += choice["amount"]
            await settle(conn, {uid: p}, now, [granted])
    except _NoTicket:
        return None
    return {"flip_ticket": ticket_out(ticket), "flipped_now": True}


class _NoTicket(Exception):
    pass


_REWARD_RNG = secrets.SystemRandom()
