"""The analytics service's operations: ingest a batch of events (raw, rollups, progression,
erasure) in the consumer's transaction, check in, and read a user's figures. The rules
themselves are in rules.py; SQL is in repositories/."""

from __future__ import annotations

import logging
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
from shared import erasure
from shared.bus.outbox import emit
from shared.events import Event, EventType, make_event

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
    # XP to add in this transaction: from actions (capped per local day by the statement that adds
    # it, progress_repo.save) and from rewards (achievements, flips: not capped).
    action_xp: int = 0
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

    def gains(self, now: datetime) -> dict[str, Any]:
        """What progress_repo.save adds: the action XP (capped there), the reward XP, and the
        user's local day the action XP counts on."""
        return {"action_xp": self.action_xp, "reward_xp": self.xp_gain, "xp_day": rules.local_day(now, self.timezone)}


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
    conn: asyncpg.Connection,
    states: dict[uuid.UUID, Progress],
    now: datetime,
    extra_events: list[Event] = (),
    board_gains: dict[tuple[str, uuid.UUID], int] | None = None,
) -> Settled:
    """After the states took their XP and streak days: tickets for milestones reached (once per
    milestone per streak run), achievements whose metric reached its threshold (once), their
    XP, the new level; rows saved and the events emitted, all in the caller's transaction.
    `board_gains`: other per-period board scores (the batch's messages) written with the XP ones."""
    users = sorted(states, key=rules.uuid_order)
    grants = [
        (u, f"streak_{m}", rules.streak_grant_key(started, m)) for u in users for m, started in states[u].milestones
    ]
    tickets = await progress_repo.insert_tickets(conn, grants, now)

    achievements = await progress_repo.unlock_due(conn, users, [states[u].streak.longest for u in users], now)
    for a in achievements:
        states[a["user_id"]].xp_gain += a["xp_reward"]

    # The statement adds the XP (the action XP capped per local day) and sets the level.
    saved = await progress_repo.save(conn, [{**states[u].row(), **states[u].gains(now)} for u in users])
    level_ups = []
    for u in users:
        p = states[u]
        p.xp, new_level = saved[u]
        p.action_xp = p.xp_gain = 0
        if new_level > p.level:
            level_ups.append((u, p.level, new_level))
        p.level = new_level
    moved: Counter = Counter()
    longest: Counter = Counter()
    gains: dict[tuple[str, uuid.UUID], int] = dict(board_gains or {})
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


async def progress_from_events(
    conn: asyncpg.Connection, raw: list[rules.RawEvent], now: datetime, board_gains: dict | None = None
) -> Settled | None:
    """Progression from a batch's events. `board_gains` (the batch's message boards) are written
    with the XP boards: one statement for both."""
    relevant = [
        e
        for e in raw
        if e.user_id is not None
        and not e.erased
        and e.event_type not in rules.OWN_EVENT_TYPES
        and e.event_type in rules.PROGRESSION_TYPES
    ]
    if not relevant:
        await ranks_repo.add_scores(conn, board_gains or {})
        return None
    rows, created = await progress_repo.lock(conn, [e.user_id for e in relevant])
    states = {r["user_id"]: Progress.from_row(r, r["user_id"] in created) for r in rows}
    for e in sorted(relevant, key=lambda e: e.occurred_at):
        p = states[e.user_id]
        if rules.is_counted_message(e.event_type, e.data) or e.event_type != EventType.MESSAGE_SENT.value:
            p.action_xp += rules.XP_PER_EVENT.get(e.event_type, 0)
        # A check-in moved the streak in its own request; its event only counts as activity.
        if e.event_type in rules.ACTIVITY_TYPES and e.event_type != EventType.USER_ENGAGEMENT.value:
            p.active_on(rules.local_day(e.occurred_at, p.timezone))
    return await settle(conn, states, now, board_gains=board_gains)


# -- ingestion -----------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A batch's CPU work, done before its transaction (BatchConsumer overlaps it with the previous
    batch's): raw rows, the rollup delta, the months touched, the event ids it was made of."""

    event_ids: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    raw: list[rules.RawEvent] = field(default_factory=list)
    delta: rules.RollupDelta = field(default_factory=rules.RollupDelta)
    months: set[date] = field(default_factory=set)

    def add(self, events: list[Event]) -> None:
        for e in events:
            user_id, data = self._keep(e)
            r = rules.RawEvent(e.event_type, user_id, e.timestamp, data)
            self.raw.append(r)
            self.delta.add(r)

    def keep_only(self, events: list[Event]) -> None:
        """The raw rows alone, nothing derived (bench_analytics' floor consumer)."""
        for e in events:
            self._keep(e)

    def _keep(self, e: Event) -> tuple[uuid.UUID | None, dict]:
        """The event's raw row, month and id; its user and data for what is derived from it."""
        user_id = rules.event_user(e)
        data = e.data if isinstance(e.data, dict) else {}
        source = e.metadata.get("source") if isinstance(e.metadata, dict) else None
        self.rows.append(events_repo.raw_row(e.event_id, e.event_type, user_id, e.timestamp, source, data))
        self.months.add(rules.hour_and_day(e.timestamp)[1].date().replace(day=1))
        self.event_ids.append(e.event_id)
        return user_id, data

    def made_of(self, events: list[Event]) -> bool:
        """Exactly these events, each once (a redelivery filtered out, or an id twice in the
        delivered batch, means it must be made again from the events applied)."""
        return len(self.event_ids) == len(events) and set(self.event_ids) == {e.event_id for e in events}


class Ingestor:
    """Applies a batch of events (first-time ones: the consumer filtered redeliveries) in the
    consumer's transaction. Keeps the months whose partition is known to exist."""

    def __init__(self, forwarder: Any = None, second_pass_seconds: float = 120.0) -> None:
        self.months: set[date] = set()
        self.forwarder = forwarder  # PostHogForwarder, when POSTHOG_API_KEY is set
        self.second_pass_seconds = second_pass_seconds  # shared/erasure.py

    @staticmethod
    def prepare(events: list[Event], prepared: Prepared | None = None) -> Prepared:
        """BatchConsumer's hook: called chunk by chunk as a batch is parsed."""
        prepared = prepared or Prepared()
        prepared.add(events)
        return prepared

    async def __call__(
        self, conn: asyncpg.Connection, events: list[Event], state: Any = None, prepared: Prepared | None = None
    ) -> None:
        tombstones = getattr(state, "tombstones", None)
        if tombstones is not None:
            # Events naming a user erased by an earlier batch (the image.deleted Media emits while
            # erasing them, anything published after the deletion) would bring the user back: not
            # kept. A user deleted in this batch is handled by ingest (totals kept, user erased).
            # (What was prepared from the unfiltered batch is then made again: Prepared.made_of.)
            deleted_now = {str(rules.event_user(e)) for e in events if e.event_type == EventType.USER_DELETED.value}
            events = [e for e in events if (user := str(rules.event_user(e))) in deleted_now or user not in tombstones]
            if not events:
                return
        try:
            await self.ingest(conn, events, prepared)
        except BaseException:
            # A partition created in a transaction that rolls back does not exist: forget the
            # months seen, so the retry creates them again.
            self.months.clear()
            raise

    async def ingest(self, conn: asyncpg.Connection, events: list[Event], prepared: Prepared | None = None) -> None:
        if prepared is None or not prepared.made_of(events):
            prepared = self.prepare(events)
        raw = prepared.raw
        await events_repo.ensure_partitions(conn, prepared.months, self.months)
        await events_repo.insert_raw(conn, prepared.rows, rollups_repo.ROLLUP_LOCK)
        await rollups_repo.apply(conn, prepared.delta, write_boards=False)
        deleted = {e.user_id for e in raw if e.event_type == EventType.USER_DELETED.value and e.user_id is not None}
        # No progression (nor its events, which would come back naming the user) for a user
        # this batch erases.
        await progress_from_events(
            conn, [e for e in raw if e.user_id not in deleted], _utcnow(), prepared.delta.board_messages
        )
        for user_id in sorted(deleted):
            await erase_user(conn, user_id)
            await erasure.schedule(conn, str(user_id), delay_seconds=self.second_pass_seconds)
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


async def erase_user_again(conn: asyncpg.Connection, user_id: str, state: Any = None) -> None:
    """The second erasure pass (shared/erasure.py): what a request in flight wrote after the batch
    that erased the user; under the rollups' shared lock, as a batch."""
    await rollups_repo.lock_shared(conn)
    await erase_user(conn, uuid.UUID(user_id))


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
