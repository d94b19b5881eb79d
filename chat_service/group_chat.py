"""Group chat: up to five characters in one scene. Who answers, in what order, and each one's view
of the transcript."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg

from chat_service import errors, follow_ups, quota_plan
from chat_service.context import STOPWORDS, CharacterContext, system_prompt
from chat_service.models import GroupCharacter
from chat_service.repositories import conversations as conv_repo
from chat_service.repositories import messages as msg_repo
from chat_service.turns import Prepared, save_turn
from shared.auth import CurrentUser
from shared.llm import Completion, LLMUnavailable, Turn
from shared.llm.tokens import count_tokens, message_tokens

if TYPE_CHECKING:
    from chat_service.service import ChatEngine

log = logging.getLogger("chat_service.group_chat")


async def group(
    engine: ChatEngine,
    user: CurrentUser,
    tier: int,
    *,
    characters: list[GroupCharacter],
    message: str,
    conversation_id: str | None,
    model: str | None,
    token: str | None = None,
) -> dict[str, Any]:
    text = engine.check_message(message)
    conv = None
    if conversation_id is not None:
        conv = await conv_repo.get_owned(engine.pool, errors.parse_uuid(conversation_id), user.user_id)
        if conv is None:
            raise errors.CONVERSATION_NOT_FOUND()
        if conv["conversation_type"] != "group":
            raise errors.NOT_A_GROUP_CONVERSATION()
    cast = [GroupCharacter(**c) for c in conv["participants"] or []] if conv is not None else characters
    # Custom characters (Community's) are read before any quota is reserved: a 404 or 503 costs nothing.
    by_id = await engine.custom_contexts([c.character_id for c in cast], user, token)
    cast = [_as_defined(c, by_id[c.character_id]) if c.character_id else c for c in cast]
    names = check_cast(cast, engine.settings.chat_max_group_characters)
    spec = engine.choose_model(model or engine.conversation_model(conv, tier), tier)
    plan = quota_plan.plan(spec, new_conversation=conv is None)
    async with engine.quota.reserved(user.user_id, plan.needs) as reservations:
        contexts = await asyncio.gather(
            *(_known(by_id[c.character_id]) if c.character_id else engine.contexts.get(c.name, c.series) for c in cast)
        )
        by_name = {c.name.strip(): ctx for c, ctx in zip(cast, contexts, strict=True)}
        last_spoke: dict[str, int] = {}
        rows: list[asyncpg.Record] = []
        used, dropped = 0, 0
        new_tokens = message_tokens(text)
        if conv is not None:
            # Budget against the longest system prompt among the cast.
            longest = max((system_prompt(ctx, group_names=names) for ctx in contexts), key=len)
            rows, used, dropped = await engine.history(str(conv["id"]), longest, new_tokens, tier)
            last_spoke = await msg_repo.last_spoke(engine.pool, conv["id"])
        order = turn_order(text, names, by_name, last_spoke, engine.settings.chat_group_max_speakers)
        p = Prepared(
            user=user,
            tier=tier,
            spec=spec,
            vision=False,
            conversation_id=str(conv["id"]) if conv is not None else str(uuid.uuid4()),
            conversation=conv,
            character=" & ".join(names),
            series=cast[0].series,
            context=contexts[0],
            system="",
            turns=[],
            message=text,
            message_tokens=count_tokens(text),
            attachments_meta=[],
            reservations=reservations,
            quota_type=plan.main,
            context_tokens=used or new_tokens,
            dropped=dropped,
        )
        replies = await speak_in_turn(engine, p, order, by_name, names, rows)
        transcript = "\n".join(f"{s}: {c.text}" for s, c, _ in replies)
        first = replies[0][0]
        follow = await follow_ups.questions(
            engine.router,
            engine.settings,
            Prepared(**{**p.__dict__, "character": first, "context": by_name[first]}),
            transcript,
        )
        participants = [
            {"name": c.name.strip(), "series": c.series, **({"character_id": c.character_id} if c.character_id else {})}
            for c in cast
        ]
        user_message_id, saved = await save_turn(
            engine.pool,
            p,
            replies,
            follow,
            conversation_type="group",
            participants=participants,
            character_label=" & ".join(names),
        )
    quota = await quota_plan.view(engine.quota, user.user_id, reservations, plan.main)
    return {
        "conversation_id": p.conversation_id,
        "user_message_id": user_message_id,
        "replies": [
            {"message_id": str(row["id"]), "sender": s, "response": c.text, "model": c.model, "provider": c.provider}
            for (s, c, _), row in zip(replies, saved, strict=True)
        ],
        "turn_order": order,
        "remaining_quota": quota["remaining"],
        "quota": quota,
        "follow_up_questions": follow,
    }


def _as_defined(member: GroupCharacter, ctx: CharacterContext) -> GroupCharacter:
    """A custom member's name and series are its definition's."""
    return GroupCharacter(name=ctx.character, series=ctx.series, character_id=member.character_id)


async def _known(ctx: CharacterContext) -> CharacterContext:
    return ctx


def check_cast(cast: list[GroupCharacter], limit: int) -> list[str]:
    if not cast:
        raise errors.NO_CHARACTERS()
    if len(cast) > limit:
        raise errors.TOO_MANY_CHARACTERS(
            f"A group chat has at most {limit} characters; {len(cast)} were given.", max_characters=limit
        )
    names = [c.name.strip() for c in cast]
    if len({n.lower() for n in names}) != len(names):
        raise errors.DUPLICATE_CHARACTER()
    return names


async def speak_in_turn(
    engine: ChatEngine,
    p: Prepared,
    order: list[str],
    by_name: dict[str, CharacterContext],
    names: list[str],
    rows: list[asyncpg.Record],
) -> list[tuple[str, Completion, str]]:
    """Each speaker in order, seeing the scene and the replies before its own; a speaker whose
    model fails after someone has answered is skipped (before that: 503)."""
    replies: list[tuple[str, Completion, str]] = []
    for speaker in order:
        system = system_prompt(by_name[speaker], group_names=names)
        turns = [*scene_turns(rows, speaker), Turn("user", p.message)]
        turns += [Turn("user", f"[{s}]: {c.text}") for s, c, _ in replies]
        try:
            c = await engine.router.complete(p.spec, system, turns, tier=p.tier)
        except LLMUnavailable as exc:
            if not replies:
                raise errors.llm_unavailable(attempts=exc.attempts) from None
            log.warning("group chat: a speaker was skipped", extra={"speaker": speaker})
            break
        replies.append((speaker, c, "complete"))
    return replies


def _name_pattern(name: str) -> re.Pattern:
    words = [w for w in name.split() if len(w) >= 3 and w.lower() not in {"the", "and", "mr.", "mrs.", "dr."}]
    parts = [re.escape(name)] + [re.escape(w) for w in words]
    return re.compile(r"(?<![\w])(?:@)?(" + "|".join(parts) + r")(?![\w])", re.IGNORECASE)


def turn_order(
    message: str, names: list[str], contexts: dict[str, CharacterContext], last_spoke: dict[str, int], max_speakers: int
) -> list[str]:
    """Who answers, in order: the characters the message names (in the order it names them);
    with no mention, the most relevant to the message (shared words with what we know of them),
    then whoever has waited longest for a turn; at most `max_speakers` then."""
    mentions: list[tuple[int, int, str]] = []
    for i, name in enumerate(names):
        m = _name_pattern(name).search(message)
        if m:
            mentions.append((m.start(), i, name))
    if mentions:
        return [n for _, _, n in sorted(mentions)]
    words = {w for w in re.findall(r"[a-z]{4,}", message.lower())} - STOPWORDS
    scored = []
    for i, name in enumerate(names):
        relevance = len(words & contexts[name].keywords()) if name in contexts else 0
        waited = last_spoke.get(name, -1)  # never spoke: -1, first in line
        scored.append((-relevance, waited, i, name))
    scored.sort()
    return [n for *_, n in scored[: max(1, max_speakers)]]


def scene_turns(rows: list[asyncpg.Record], speaker: str) -> list[Turn]:
    """A group transcript from one character's point of view: its own lines are the assistant's,
    the fan's and the other characters' lines (named) are the user's."""
    turns = []
    for r in rows:
        if r["role"] == "assistant" and r["sender"] == speaker:
            turns.append(Turn("assistant", r["content"]))
        elif r["role"] == "assistant":
            turns.append(Turn("user", f"[{r['sender']}]: {r['content']}"))
        else:
            turns.append(Turn("user", r["content"]))
    return turns
