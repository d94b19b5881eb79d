"""SQL for /conversation-stats: a user's conversations (conversation_stats), the characters they
talk to (user_characters), and the most-talked-to characters (character_stats, character_daily).
Reads of the rollups only."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg


async def user_summary(conn, user_id: str, since: datetime | None) -> asyncpg.Record:
    """The user's conversations with a message at or after `since` (all when None): how many,
    with how many characters, their messages (whole conversations)."""
    return await conn.fetchrow(
        """
        SELECT count(*) AS conversations, count(DISTINCT character) AS characters,
               COALESCE(sum(messages), 0) AS messages
          FROM conversation_stats
         WHERE user_id = $1 AND ($2::timestamptz IS NULL OR last_message_at >= $2)
        """,
        user_id,
        since,
    )


async def user_conversations(conn, user_id: str, since: datetime | None, limit: int) -> list[asyncpg.Record]:
    """The user's conversations, most recent message first."""
    return await conn.fetch(
        """
        SELECT conversation_id, character, messages, first_message_at, last_message_at
          FROM conversation_stats
         WHERE user_id = $1 AND ($2::timestamptz IS NULL OR last_message_at >= $2)
         ORDER BY last_message_at DESC NULLS LAST, conversation_id
         LIMIT $3
        """,
        user_id,
        since,
        limit,
    )


async def user_top_characters(conn, user_id: str, limit: int) -> list[asyncpg.Record]:
    """The characters the user exchanged the most messages with (all time)."""
    return await conn.fetch(
        "SELECT character, messages FROM user_characters WHERE user_id = $1 AND messages > 0"
        " ORDER BY messages DESC, character LIMIT $2",
        user_id,
        limit,
    )


async def top_characters(conn, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT character, messages, conversations, users FROM character_stats WHERE messages > 0"
        " ORDER BY messages DESC, character LIMIT $1",
        limit,
    )


async def top_characters_since(conn, since: date, limit: int) -> list[asyncpg.Record]:
    """Messages per character on the UTC days from `since` (a primary-key range of character_daily)."""
    return await conn.fetch(
        "SELECT character, sum(messages)::bigint AS messages FROM character_daily WHERE day >= $1"
        " GROUP BY character HAVING sum(messages) > 0 ORDER BY messages DESC, character LIMIT $2",
        since,
        limit,
    )
