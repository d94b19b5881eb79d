"""/conversation-stats: a user's own conversation figures, and the most-talked-to characters.
Read from the rollups (conversation_stats, user_characters, character_stats, character_daily);
SQL in repositories/conversations.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from analytics_service import rules
from analytics_service.repositories import conversations as conversations_repo
from analytics_service.repositories import ranks as ranks_repo


def _period(period: str, now: datetime):
    """(first day, its UTC midnight) of the week or month; (None, None) for all time."""
    if period == "all":
        return None, None
    start = rules.period_start(period, now)
    return start, datetime(start.year, start.month, start.day, tzinfo=UTC)


async def mine(pool: asyncpg.Pool, user_id: str, period: str, limit: int, now: datetime | None = None) -> dict:
    """The caller's messages in the period (the leaderboard's per-period count, or all time), the
    conversations with a message in it, and the characters the caller talks to most (all time)."""
    now = now or datetime.now(UTC)
    uid = uuid.UUID(user_id)
    start_day, since = _period(period, now)
    board = rules.board("messages", period, start_day) if start_day is not None else None
    async with pool.acquire() as conn:
        messages = await ranks_repo.value_of(conn, "messages", board, uid)
        summary = await conversations_repo.user_summary(conn, user_id, since)
        recent = await conversations_repo.user_conversations(conn, user_id, since, limit)
        characters = await conversations_repo.user_top_characters(conn, user_id, limit)
    conversations = int(summary["conversations"])
    return {
        "period": period,
        "period_start": start_day.isoformat() if start_day else None,
        "messages": int(messages or 0),
        "conversations": conversations,
        "characters": int(summary["characters"]),
        "average_messages_per_conversation": (
            round(int(summary["messages"]) / conversations, 2) if conversations else 0.0
        ),
        "recent_conversations": [_conversation_out(r) for r in recent],
        "top_characters": [{"character": r["character"], "messages": int(r["messages"])} for r in characters],
    }


def _conversation_out(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "conversation_id": str(r["conversation_id"]),
        "character": r["character"],
        "messages": int(r["messages"]),
        "first_message_at": r["first_message_at"].isoformat() if r["first_message_at"] else None,
        "last_message_at": r["last_message_at"].isoformat() if r["last_message_at"] else None,
    }


async def characters(pool: asyncpg.Pool, period: str, limit: int, now: datetime | None = None) -> dict:
    """The most-talked-to characters of the platform: messages (and, all time, conversations and
    distinct users) per character. Totals over everyone: no user is named."""
    now = now or datetime.now(UTC)
    start_day, _ = _period(period, now)
    async with pool.acquire() as conn:
        if start_day is None:
            rows = await conversations_repo.top_characters(conn, limit)
        else:
            rows = await conversations_repo.top_characters_since(conn, start_day, limit)
    entries = []
    for i, r in enumerate(rows):
        rank = entries[-1]["rank"] if entries and entries[-1]["messages"] == r["messages"] else i + 1
        entries.append(
            {
                "rank": rank,
                "character": r["character"],
                "messages": int(r["messages"]),
                "conversations": int(r["conversations"]) if start_day is None else None,
                "users": int(r["users"]) if start_day is None else None,
            }
        )
    return {"period": period, "period_start": start_day.isoformat() if start_day else None, "characters": entries}
