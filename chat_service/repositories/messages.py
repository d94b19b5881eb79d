"""SQL for messages and reactions (asyncpg, written out)."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.bus import OUTBOX_INSERT_ARRAYS, outbox_arrays

COLUMNS = (
    "id, seq, conversation_id, user_id, sender, role, content, message_type, metadata, token_count, status, pinned, "
    "edited_at, created_at"
)
M_COLUMNS = ", ".join(f"m.{c.strip()}" for c in COLUMNS.split(","))


async def insert(
    conn: asyncpg.Connection,
    *,
    message_id: str,
    conversation_id: str,
    user_id: str,
    sender: str,
    role: str,
    content: str,
    token_count: int,
    metadata: dict[str, Any] | None = None,
    message_type: str = "text",
    status: str = "complete",
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        INSERT INTO messages (id, conversation_id, user_id, sender, role, content, message_type, metadata,
                              token_count, status)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        RETURNING {COLUMNS}
        """,
        message_id,
        conversation_id,
        user_id,
        sender,
        role,
        content,
        message_type,
        metadata or {},
        token_count,
        status,
    )


_SAVE_TURN = f"""
        WITH conv AS (
            INSERT INTO conversations (id, user_id, character_name, character_series, conversation_type, participants,
                                       model, message_count, token_count, last_message_at)
            SELECT $1::uuid, $12::uuid, $13, $14, $15, $16::jsonb, COALESCE($11, $21), cardinality($2::uuid[]),
                   (SELECT COALESCE(sum(n), 0) FROM unnest($9::int[]) AS n), clock_timestamp()
             WHERE $17
        ), ins AS (
            INSERT INTO messages (id, conversation_id, user_id, sender, role, content, message_type, metadata,
                                  token_count, status)
            SELECT id, $1::uuid, user_id, sender, role, content, message_type, metadata, token_count, status
              FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[],
                          $9::int[], $10::text[])
                   AS t(id, user_id, sender, role, content, message_type, metadata, token_count, status)
            RETURNING {COLUMNS}
        ), upd AS (
            -- A conversation inserted by this statement is invisible to this UPDATE (one
            -- snapshot), so a new one is inserted with its counters instead.
            UPDATE conversations
               SET message_count = message_count + (SELECT count(*) FROM ins),
                   token_count = token_count + (SELECT COALESCE(sum(token_count), 0) FROM ins),
                   model = COALESCE($11, model),
                   last_message_at = clock_timestamp(),
                   updated_at = clock_timestamp()
             WHERE id = $1::uuid AND NOT $17
        ), events AS (
            {OUTBOX_INSERT_ARRAYS.format(ids="$18", types="$19", bodies="$20")}
        )
        SELECT {COLUMNS} FROM ins ORDER BY seq
        """


async def save_turn(
    conn,
    conversation_id: str,
    rows: list[dict[str, Any]],
    model: str | None,
    events: list,
    *,
    new_conversation: dict[str, Any] | None = None,
) -> list[asyncpg.Record]:
    """A turn in one statement, so one round trip and atomic without BEGIN/COMMIT: the
    conversation when it is new (`new_conversation`: user_id, character_name, character_series,
    conversation_type, participants, model), its messages in order, its counters, and the turn's events
    in the outbox. `rows` each have id, user_id, sender, role, content, message_type, metadata,
    token_count, status. Returns the inserted messages in order."""
    new = new_conversation or {}
    event_ids, event_types, event_bodies = outbox_arrays(events)
    return await conn.fetch(
        _SAVE_TURN,
        conversation_id,
        [r["id"] for r in rows],
        [r["user_id"] for r in rows],
        [r["sender"] for r in rows],
        [r["role"] for r in rows],
        [r["content"] for r in rows],
        [r.get("message_type", "text") for r in rows],
        [r.get("metadata") or {} for r in rows],
        [r["token_count"] for r in rows],
        [r.get("status", "complete") for r in rows],
        model,
        new.get("user_id"),
        new.get("character_name"),
        new.get("character_series"),
        new.get("conversation_type", "single"),
        new.get("participants"),
        bool(new_conversation),
        event_ids,
        event_types,
        event_bodies,
        new.get("model"),
    )


async def last_spoke(conn, conversation_id) -> dict[str, int]:
    """Per character of a group conversation, the sequence number of its latest reply."""
    rows = await conn.fetch(
        "SELECT sender, max(seq) AS last FROM messages WHERE conversation_id = $1 "
        "AND role = 'assistant' GROUP BY sender",
        conversation_id,
    )
    return {r["sender"]: r["last"] for r in rows}


async def by_ids(conn: asyncpg.Connection, ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {COLUMNS} FROM messages WHERE id = ANY($1::uuid[]) ORDER BY seq", ids)


def recent_within_query(conversation: str, token_cap: str, before_seq: str = "NULL") -> str:
    """The history window as SQL over the given expressions (parameters or columns): pinned
    messages and the newest messages whose running token total stays within the cap, with the
    columns a prompt needs (HISTORY_COLUMNS) and `total` (how many messages the conversation has
    in that range). Unordered. The window is read newest first and stops at the cap (migration
    002's `chat_history_window`), so long conversations cost what their window costs."""
    return f"SELECT {HISTORY_COLUMNS} FROM chat_history_window({conversation}, {token_cap}, {before_seq})"


HISTORY_COLUMNS = "id, seq, sender, role, content, token_count, pinned, total"


async def recent_within(
    conn, conversation_id: str, token_cap: int, *, before_seq: int | None = None
) -> list[asyncpg.Record]:
    """`recent_within_query`, chronological. The exact fit is `budget.fit`; this only bounds
    what is read."""
    return await conn.fetch(_RECENT_WITHIN, conversation_id, token_cap, before_seq)


_RECENT_WITHIN = recent_within_query("$1", "$2", "$3") + " ORDER BY seq"


async def get_owned(conn, message_id: str, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM messages WHERE id = $1 AND user_id = $2", message_id, user_id)


async def page(conn, conversation_id: str, *, limit: int, before_seq: int | None) -> list[asyncpg.Record]:
    """Newest `limit` messages before `before_seq`, returned chronologically."""
    rows = await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM messages
         WHERE conversation_id = $1 AND ($3::bigint IS NULL OR seq < $3)
         ORDER BY seq DESC
         LIMIT $2
        """,
        conversation_id,
        limit,
        before_seq,
    )
    return list(reversed(rows))


async def all_in(conn, conversation_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY seq", conversation_id)


async def last_user_message(conn, conversation_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM messages WHERE conversation_id = $1 AND role = 'user' ORDER BY seq DESC LIMIT 1",
        conversation_id,
    )


async def replies_after(conn, conversation_id: str, seq: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq",
        conversation_id,
        seq,
    )


async def edit(conn, message_id: str, content: str, token_count: int, previous: str) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        UPDATE messages
           SET content = $2,
               token_count = $3,
               edited_at = clock_timestamp(),
               metadata = jsonb_set(metadata, '{{edits}}',
                   COALESCE(metadata->'edits', '[]'::jsonb)
                   || jsonb_build_array(jsonb_build_object('content', $4::text, 'replaced_at', clock_timestamp())))
         WHERE id = $1
        RETURNING {COLUMNS}
        """,
        message_id,
        content,
        token_count,
        previous,
    )


async def replace_reply(
    conn,
    message_id: str,
    *,
    content: str,
    token_count: int,
    sender: str,
    metadata: dict[str, Any],
    status: str = "complete",
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        UPDATE messages SET content = $2, token_count = $3, sender = $4, metadata = $5, status = $6,
                            edited_at = clock_timestamp()
         WHERE id = $1
        RETURNING {COLUMNS}
        """,
        message_id,
        content,
        token_count,
        sender,
        metadata,
        status,
    )


async def delete(conn, message_id: str) -> None:
    await conn.execute("DELETE FROM messages WHERE id = $1", message_id)


async def set_pinned(conn, message_id: str, pinned: bool) -> asyncpg.Record:
    return await conn.fetchrow(f"UPDATE messages SET pinned = $2 WHERE id = $1 RETURNING {COLUMNS}", message_id, pinned)


# -- reactions ---------------------------------------------------------------------------------


async def react(conn: asyncpg.Connection, message_id: str, user_id: str, reaction: str) -> None:
    """One reaction per user and kind; a like replaces the user's dislike and vice versa."""
    opposite = "dislike" if reaction == "like" else "like"
    await conn.execute(
        "DELETE FROM message_reactions WHERE message_id = $1 AND user_id = $2 AND reaction_type = $3",
        message_id,
        user_id,
        opposite,
    )
    await conn.execute(
        """
        INSERT INTO message_reactions (message_id, user_id, reaction_type) VALUES ($1, $2, $3)
        ON CONFLICT (message_id, user_id, reaction_type) DO NOTHING
        """,
        message_id,
        user_id,
        reaction,
    )


async def unreact(conn, message_id: str, user_id: str, reaction: str) -> None:
    await conn.execute(
        "DELETE FROM message_reactions WHERE message_id = $1 AND user_id = $2 AND reaction_type = $3",
        message_id,
        user_id,
        reaction,
    )


async def reaction_summary(conn, message_ids: list, user_id: str) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT message_id, reaction_type, count(*) AS n, bool_or(user_id = $2) AS mine
          FROM message_reactions WHERE message_id = ANY($1::uuid[])
         GROUP BY message_id, reaction_type
        """,
        message_ids,
        user_id,
    )
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = out.setdefault(str(r["message_id"]), {"like": 0, "dislike": 0, "mine": []})
        entry[r["reaction_type"]] = r["n"]
        if r["mine"]:
            entry["mine"].append(r["reaction_type"])
    return out
