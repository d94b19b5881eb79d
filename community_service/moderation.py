"""Moderation of what others will read (public characters, universes and scenarios, published
stories) through shared/llm's moderation (OpenAI's moderation endpoint).

It fails closed: without OPENAI_API_KEY, or when the endpoint does not answer, shared/llm raises
ModerationUnavailable and this answers 503 MODERATION_UNAVAILABLE; nothing is published.
"""

from __future__ import annotations

from community_service import errors
from shared.llm import LLMRouter, ModerationUnavailable


class Moderator:
    def __init__(self, llm: LLMRouter):
        self.llm = llm

    async def require_clean(self, *texts: str | None) -> None:
        """422 CONTENT_FLAGGED (with the flagged categories) when the texts are flagged."""
        text = "\n\n".join(t for t in texts if t)
        if not text.strip():
            return
        try:
            verdict = await self.llm.moderate(text)
        except ModerationUnavailable as exc:
            raise errors.MODERATION_UNAVAILABLE() from exc
        if verdict.flagged:
            raise errors.CONTENT_FLAGGED(categories=verdict.categories)
