"""What a user reads and does in analytics: check in, their profile with percentiles, achievements,
flip tickets and flips, leaderboards. Ingestion and progression from events are in service.py;
the rules in rules.py; SQL in repositories/."""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from analytics_service import rules
from analytics_service.repositories import progress as progress_repo
from analytics_service.repositories import ranks as ranks_repo
from analytics_service.repositories import rollups as rollups_repo
from analytics_service.service import SOURCE, Progress, _metrics, _utcnow, settle
from shared.events import EventType, make_event
from shared.quota import REWARD_QUOTA_TYPES

log = logging.getLogger("analytics_service")


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
                await progress_repo.save(conn, [{**p.row(), **p.gains(now)}])
            return {**_state_out(p, today), "checked_in": False, "reward": None}
        p.last_checkin_day = today
        p.action_xp += rules.CHECKIN_XP
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
    """/analytics/me: one statement (progress_repo.profile_row) reads the rollup, progression,
    achievements, the stored engagement tier and both ranks."""
    now = now or _utcnow()
    async with pool.acquire() as conn:
        r = await progress_repo.profile_row(conn, user_id, (now - timedelta(days=rules.TIER_WINDOW_DAYS - 1)).date())
    has_analytics = r["has_analytics"]
    p = Progress.from_row(r) if r["user_id"] is not None else None
    tier = r["tier"]
    if tier is None and has_analytics:
        # Seen for the first time since the last daily run: computed now, by the same rule.
        tier = rules.engagement_tier(
            first_seen=r["first_seen_at"],
            last_active=r["last_active_at"],
            active_days_30=r["active_days_window"],
            now=now,
        )
    today = rules.local_day(now, p.timezone if p else "UTC")
    xp = p.xp if p else 0

    def count(name: str) -> int:
        return int(r[name]) if has_analytics else 0

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
        "achievements": {"unlocked": r["unlocked"], "total": r["achievements_total"]},
        "percentiles": {
            "messages": rank_out(r["messages_above"], r["messages_total"]) if has_analytics else None,
            "xp": rank_out(r["xp_above"], r["xp_total"]) if p is not None else None,
        },
        "engagement_tier": tier or "new",
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
