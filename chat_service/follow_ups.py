"""Follow-up questions under a reply: a short second model call asking for a JSON array; anything
but 2-3 questions, a timeout or a failure gives three built from the character, series and message."""

from __future__ import annotations

import asyncio
import json
import logging

from chat_service.turns import Prepared
from shared.llm import LLMRouter, LLMUnavailable, Turn

log = logging.getLogger("chat_service.follow_ups")


def template(character: str, series: str | None, message: str) -> list[str]:
    first = character.split()[0] if character.split() else character
    where = series or "your story"
    return [
        f"What is your favourite memory from {where}, {first}?",
        f"What do you want most, {first}?",
        f"Who do you trust the most, {first}?",
    ]


async def questions(router: LLMRouter, settings, p: Prepared, reply: str) -> list[str]:
    fallback = template(p.character, p.series, p.message)
    if settings.chat_follow_ups != "llm" or not reply.strip():
        return fallback
    spec = router.get(settings.chat_follow_up_model or "") or p.spec
    system = (
        f"You suggest follow-up questions for a fan chatting with {p.character}"
        f"{' from ' + p.series if p.series else ''}. Write 3 short follow-up questions the fan could ask next, "
        "each under 15 words, in the fan's voice. Answer with a JSON array of strings only."
    )
    turns = [Turn("user", f"Fan: {p.message}\n{p.character}: {reply}\n\nThe 3 follow-up questions, as a JSON array:")]
    try:
        c = await asyncio.wait_for(
            router.complete(spec, system, turns, tier=p.tier, max_tokens=200), settings.chat_follow_up_timeout_seconds
        )
    except (LLMUnavailable, TimeoutError) as exc:
        log.info("follow-up questions from the template", extra={"reason": type(exc).__name__})
        return fallback
    parsed = parse_questions(c.text)
    return parsed if len(parsed) >= 2 else fallback


def parse_questions(text: str) -> list[str]:
    """A JSON array of strings (or {"questions": [...]}) somewhere in the model's answer."""
    candidates = []
    start, end = text.find("["), text.rfind("]")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    candidates.append(text)
    for cand in candidates:
        try:
            data = json.loads(cand)
        except ValueError:
            continue
        if isinstance(data, dict):
            data = data.get("questions")
        if isinstance(data, list):
            qs = [" ".join(str(q).split()) for q in data if isinstance(q, str) and q.strip()]
            return [q[:200] for q in qs][:3]
    return []
