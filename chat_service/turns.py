"""A turn once the model has answered: the reply's metadata, the `message.sent` event (built here
only), and the user message with its replies saved in one statement."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from chat_service.context import CharacterContext
from chat_service.repositories import messages as msg_repo
from shared.auth import CurrentUser
from shared.db import is_unavailable, retry_unavailable
from shared.events import EventType, make_event
from shared.llm import Completion, ModelSpec, Turn
from shared.llm.tokens import count_tokens
from shared.quota import Reservation

log = logging.getLogger("chat_service.turns")


@dataclass
class Prepared:
    """Everything a turn needs before the model is called (its quota is held meanwhile)."""

    user: CurrentUser
    tier: int
    spec: ModelSpec
    vision: bool
    conversation_id: str
    conversation: asyncpg.Record | None  # None: created when the turn is saved
    character: str
    series: str | None
    context: CharacterContext
    system: str
    turns: list[Turn]
    message: str
    message_tokens: int
    attachments_meta: list[dict[str, Any]]
    reservations: list[Reservation]
    quota_type: str | None  # the main quota this turn spent (None: none)
    context_tokens: int
    dropped: int
    quota_snapshot: asyncio.Future | None = None  # read early when the turn reserves nothing
    started: float = field(default_factory=time.perf_counter)


def reply_metadata(
    c: Completion, output_tokens: int, context_tokens: int, dropped: int, quota_type: str | None, **extra: Any
) -> dict[str, Any]:
    return {
        "model": c.model,
        "provider": c.provider,
        "provider_model": c.provider_model,
        "input_tokens": c.input_tokens,
        "output_tokens": output_tokens,
        "latency_ms": c.latency_ms,
        "context_tokens": context_tokens,
        "dropped_messages": dropped,
        "quota_type": quota_type,
        **extra,
    }


def message_sent(
    user_id: str,
    conversation_id: str,
    message_id: str,
    c: Completion,
    output_tokens: int,
    quota_type: str | None,
    sender: str,
    **extra: Any,
) -> dict[str, Any]:
    """The `message.sent` event of one reply (`status`, or `regenerated`, in `extra`)."""
    return make_event(
        EventType.MESSAGE_SENT,
        user_id,
        {
            "conversation_id": conversation_id,
            "message_id": message_id,
            "model": c.model,
            "provider": c.provider,
            "input_tokens": c.input_tokens,
            "output_tokens": output_tokens,
            "latency_ms": c.latency_ms,
            "quota_type": quota_type,
            **extra,
            "sender": sender,
        },
        source="chat_service",
    )


async def save_turn(
    pool: asyncpg.Pool,
    p: Prepared,
    replies: list[tuple[str, Completion, str]],  # (sender, completion, status)
    follow_ups: list[str],
    *,
    conversation_type: str = "single",
    participants: list[dict[str, Any]] | None = None,
    character_label: str | None = None,
) -> tuple[str, list[asyncpg.Record]]:
    """The user message and the replies in one statement (one round trip, atomic), with their
    events. Returns the user message's id and the replies' rows."""
    user_message_id = str(uuid.uuid4())
    rows, events, new_conversation = _turn_rows(
        p, replies, follow_ups, user_message_id, conversation_type, participants, character_label
    )
    model = replies[0][1].model if replies else None
    try:
        saved = await msg_repo.save_turn(
            pool, p.conversation_id, rows, model, events, new_conversation=new_conversation
        )
        return user_message_id, list(saved)[1:]
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # The connection died around COMMIT: the turn may or may not be saved. Ask the
        # database (once it answers) rather than guess: quota is settled or released on
        # what is really there, and a saved turn is answered as saved.
        stored = await retry_unavailable(lambda: _stored_rows(pool, [r["id"] for r in rows]))
        if len(stored) != len(rows):
            raise
        log.warning("turn saved although its commit was not acknowledged", extra={"conversation_id": p.conversation_id})
        return user_message_id, stored[1:]


async def _stored_rows(pool: asyncpg.Pool, ids: list[str]) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await msg_repo.by_ids(conn, ids)


def _turn_rows(p: Prepared, replies, follow_ups, user_message_id, conversation_type, participants, character_label):
    """(message rows, outbox events, the new conversation or None) of one turn."""
    events = []
    new_conversation = None
    if p.conversation is None:
        if participants is None and p.context.character_id:
            # A custom character: the conversation remembers which, so later turns read its definition.
            participants = [{"name": p.character, "series": p.series, "character_id": p.context.character_id}]
        new_conversation = {
            "user_id": p.user.user_id,
            "character_name": character_label or p.character,
            "character_series": p.series,
            "conversation_type": conversation_type,
            "participants": participants,
            "model": p.spec.id,
        }
        events.append(
            make_event(
                EventType.CONVERSATION_CREATED,
                p.user.user_id,
                {
                    "conversation_id": p.conversation_id,
                    "character": character_label or p.character,
                    "series": p.series,
                    "type": conversation_type,
                },
                source="chat_service",
            )
        )
    rows: list[dict[str, Any]] = [
        {
            "id": user_message_id,
            "user_id": p.user.user_id,
            "sender": "user",
            "role": "user",
            "content": p.message,
            "token_count": p.message_tokens,
            "metadata": {"attachments": p.attachments_meta} if p.attachments_meta else {},
            "message_type": "image" if p.attachments_meta else "text",
        }
    ]
    for sender, c, status in replies:
        reply_tokens = count_tokens(c.text)
        output_tokens = c.output_tokens or reply_tokens
        meta = reply_metadata(
            c, output_tokens, p.context_tokens, p.dropped, p.quota_type, follow_up_questions=follow_ups
        )
        if c.attempts:
            meta["fallbacks"] = c.attempts
        if status != "complete":
            meta["incomplete_reason"] = "client_disconnected"
        message_id = str(uuid.uuid4())
        rows.append(
            {
                "id": message_id,
                "user_id": p.user.user_id,
                "sender": sender,
                "role": "assistant",
                "content": c.text,
                "token_count": reply_tokens,
                "metadata": meta,
                "status": status,
            }
        )
        events.append(
            message_sent(
                p.user.user_id, p.conversation_id, message_id, c, output_tokens, p.quota_type, sender, status=status
            )
        )
    return rows, events, new_conversation
