"""SQL for conversations (asyncpg, written out). Every query is scoped to the owner."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from chat_service.repositories.messages import recent_within_query

COLUMNS = (
    "id, user_id, character_name, character_series, conversation_type, participants, model,"
    " token_count, message_count, share_token, last_message_at, created_at, updated_at"
)


async def get_owned(
    conn: asyncpg.Connection | asyncpg.Pool, conversation_id: str, user_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    sql = f"SELECT {COLUMNS} FROM conversations WHERE id = $1 AND user_id = $2"
    if for_update:
        sql += " FOR UPDATE"
    return await conn.fetchrow(sql, conversation_id, user_id)


_CONVERSATION_COLUMNS = [c.strip() for c in COLUMNS.split(",")]
_OWNED_WITH_HISTORY = f"""
    SELECT {", ".join(f"c.{c} AS c_{c}" for c in _CONVERSATION_COLUMNS)}, h.*
      FROM conversations c
      LEFT JOIN LATERAL ({recent_within_query("c.id", "$3")}) h ON true
     WHERE c.id = $1 AND c.user_id = $2
     ORDER BY h.seq
"""


async def get_owned_with_history(
    conn, conversation_id: str, user_id: str, token_cap: int
) -> tuple[dict[str, Any] | None, list[asyncpg.Record]]:
    """The conversation (if the caller owns it) and its recent history (as
    `messages.recent_within`) in one round trip: one row per history message, each carrying the
    conversation's columns prefixed `c_`, or one row with empty message columns when there is
    no history yet. (None, []) when there is no such conversation of this user."""
    rows = await conn.fetch(_OWNED_WITH_HISTORY, conversation_id, user_id, token_cap)
    if not rows:
        return None, []
    conversation = {c: rows[0][f"c_{c}"] for c in _CONVERSATION_COLUMNS}
    return conversation, [r for r in rows if r["id"] is not None]


async def recount(conn: asyncpg.Connection, conversation_id: str, *, model: str | None = None) -> None:
    """After an edit, a delete or a regenerate: counts from the messages themselves; a
    regenerate (`model`) also records the model and the activity."""
    await conn.execute(
        """
        UPDATE conversations c
           SET message_count = s.n, token_count = s.t, updated_at = clock_timestamp(),
               model = COALESCE($2, c.model),
               last_message_at = CASE WHEN $2::text IS NULL THEN c.last_message_at ELSE clock_timestamp() END
          FROM (SELECT count(*) AS n, COALESCE(sum(token_count), 0) AS t FROM messages WHERE conversation_id = $1) s
         WHERE c.id = $1
        """,
        conversation_id,
        model,
    )


async def list_page(
    pool: asyncpg.Pool, user_id: str, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[asyncpg.Record]:
    """Most recent first; keyset pagination on (last activity, id)."""
    if after is None:
        return await pool.fetch(
            f"""
            SELECT {COLUMNS}, COALESCE(last_message_at, created_at) AS activity_at FROM conversations
             WHERE user_id = $1
             ORDER BY COALESCE(last_message_at, created_at) DESC, id DESC
             LIMIT $2
            """,
            user_id,
            limit,
        )
    return await pool.fetch(
        f"""
        SELECT {COLUMNS}, COALESCE(last_message_at, created_at) AS activity_at FROM conversations
         WHERE user_id = $1
           AND (COALESCE(last_message_at, created_at), id) < ($3, $4)
         ORDER BY COALESCE(last_message_at, created_at) DESC, id DESC
         LIMIT $2
        """,
        user_id,
        limit,
        after[0],
        after[1],
    )


async def delete_owned(pool: asyncpg.Pool, conversation_id: str, user_id: str) -> bool:
    status = await pool.execute("DELETE FROM conversations WHERE id = $1 AND user_id = $2", conversation_id, user_id)
    return status.endswith(" 1")


async def set_share_token(
    pool: asyncpg.Pool, conversation_id: str, user_id: str, token: str | None
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "UPDATE conversations SET share_token = $3, updated_at = clock_timestamp() WHERE id = $1 "
        f"AND user_id = $2 RETURNING {COLUMNS}",
        conversation_id,
        user_id,
        token,
    )


async def get_shared(pool: asyncpg.Pool, token: str) -> asyncpg.Record | None:
    return await pool.fetchrow(f"SELECT {COLUMNS} FROM conversations WHERE share_token = $1", token)


async def erase_user(conn: asyncpg.Connection, user_id: str) -> dict[str, int]:
    """Every conversation, message and reaction of the user (messages go with their conversation)."""
    reactions = await conn.execute("DELETE FROM message_reactions WHERE user_id = $1", user_id)
    messages = await conn.execute("DELETE FROM messages WHERE user_id = $1", user_id)
    conversations = await conn.execute("DELETE FROM conversations WHERE user_id = $1", user_id)
    return {
        "reactions": int(reactions.split()[-1]),
        "messages": int(messages.split()[-1]),
        "conversations": int(conversations.split()[-1]),
    }
