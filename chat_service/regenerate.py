"""Regenerate: new reply(ies) to a conversation's last user message; each old reply is kept in
its successor's `metadata.alternatives`."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import asyncpg

from chat_service import errors, quota_plan
from chat_service.context import system_prompt
from chat_service.group_chat import scene_turns
from chat_service.models import message_out
from chat_service.repositories import conversations as conv_repo
from chat_service.repositories import messages as msg_repo
from chat_service.turns import message_sent, reply_metadata
from shared.auth import CurrentUser
from shared.bus import emit
from shared.llm import Completion, LLMUnavailable, Turn
from shared.llm.tokens import count_tokens, message_tokens

if TYPE_CHECKING:
    from chat_service.service import ChatEngine


async def regenerate(
    engine: ChatEngine, user: CurrentUser, tier: int, conversation_id: str, model: str | None, token: str | None = None
) -> dict[str, Any]:
    conv = await conv_repo.get_owned(engine.pool, errors.parse_uuid(conversation_id), user.user_id)
    if conv is None:
        raise errors.CONVERSATION_NOT_FOUND()
    last_user = await msg_repo.last_user_message(engine.pool, conv["id"])
    if last_user is None:
        raise errors.NOTHING_TO_REGENERATE()
    after = await msg_repo.replies_after(engine.pool, conv["id"], last_user["seq"])
    old_replies = [r for r in after if r["role"] == "assistant"]
    spec = engine.choose_model(model or engine.conversation_model(conv, tier), tier)
    plan = quota_plan.plan(spec, new_conversation=False)
    # Custom characters (Community's) are read before any quota is reserved: a 404 or 503 costs nothing.
    participants = conv["participants"] or []
    by_id = await engine.custom_contexts([c.get("character_id") for c in participants], user, token)
    custom = {c["name"]: by_id[c["character_id"]] for c in participants if c.get("character_id")}
    async with engine.quota.reserved(user.user_id, plan.needs):
        results, used, dropped = await answer_again(engine, conv, last_user, old_replies, spec, tier, custom)
        async with engine.pool.acquire() as conn, conn.transaction():
            saved, events = [], []
            for i, (speaker, c) in enumerate(results):
                old = old_replies[i] if i < len(old_replies) else None
                row = await save_reply(conn, user, conv, old, speaker, c, used, dropped, plan.main)
                saved.append(row)
                events.append(
                    message_sent(
                        user.user_id,
                        str(conv["id"]),
                        str(row["id"]),
                        c,
                        c.output_tokens,
                        plan.main,
                        speaker,
                        regenerated=True,
                    )
                )
            await conv_repo.recount(conn, str(conv["id"]), model=spec.id)
            await emit(conn, *events)
    return {"conversation_id": str(conv["id"]), "messages": [message_out(r) for r in saved]}


async def answer_again(
    engine: ChatEngine, conv, last_user, old_replies, spec, tier, custom: dict | None = None
) -> tuple[list[tuple[str, Completion]], int, int]:
    """The same speakers as before, in order, each seeing the history before the user message and
    the new replies before its own; `custom`: the custom characters' contexts by name.
    (replies, context tokens, dropped messages)"""
    group = conv["conversation_type"] == "group"
    participants = conv["participants"] or []
    names = [c["name"] for c in participants] if group else [conv["character_name"]]
    if group:
        series_of = {c["name"]: c.get("series") for c in participants}
    else:
        series_of = {conv["character_name"]: conv["character_series"]}
    speakers = [r["sender"] for r in old_replies if r["sender"] in series_of] or [names[0]]
    text = last_user["content"]
    new_tokens = message_tokens(text)
    results: list[tuple[str, Completion]] = []
    rows: list[asyncpg.Record] = []
    used = dropped = 0
    for speaker in speakers:
        ctx = (custom or {}).get(speaker) or await engine.contexts.get(speaker, series_of.get(speaker))
        system = system_prompt(ctx, group_names=names if group else None)
        if not rows:
            rows, used, dropped = await engine.history(
                str(conv["id"]), system, new_tokens, tier, before_seq=last_user["seq"]
            )
        turns = scene_turns(rows, speaker) if group else [Turn(r["role"], r["content"]) for r in rows]
        turns += [Turn("user", text)] + [Turn("user", f"[{s}]: {c.text}") for s, c in results]
        try:
            c = await engine.router.complete(spec, system, turns, tier=tier)
        except LLMUnavailable as exc:
            raise errors.llm_unavailable(attempts=exc.attempts) from None
        results.append((speaker, c))
    return results, used, dropped


async def save_reply(
    conn, user: CurrentUser, conv, old, speaker: str, c: Completion, used: int, dropped: int, quota_type: str | None
) -> asyncpg.Record:
    """The new reply in place of `old` (which goes to its alternatives), or a new message."""
    reply_tokens = count_tokens(c.text)
    meta = reply_metadata(c, c.output_tokens, used, dropped, quota_type, regenerated=True)
    if old is None:
        return await msg_repo.insert(
            conn,
            message_id=str(uuid.uuid4()),
            conversation_id=str(conv["id"]),
            user_id=user.user_id,
            sender=speaker,
            role="assistant",
            content=c.text,
            token_count=reply_tokens,
            metadata=meta,
        )
    old_meta = dict(old["metadata"] or {})
    alternatives = old_meta.pop("alternatives", [])
    alternatives.append(
        {
            "content": old["content"],
            "model": old_meta.get("model"),
            "status": old["status"],
            "created_at": (old["edited_at"] or old["created_at"]).isoformat(),
        }
    )
    meta["alternatives"] = alternatives
    if "follow_up_questions" in old_meta:
        meta["follow_up_questions"] = old_meta["follow_up_questions"]
    return await msg_repo.replace_reply(
        conn, old["id"], content=c.text, token_count=reply_tokens, sender=speaker, metadata=meta
    )
