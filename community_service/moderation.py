"""Moderation of what others will read (public characters and scenarios, published stories)
through OpenAI's moderation endpoint (the official SDK; the sandbox speaks it in tests).

Fails closed: without OPENAI_API_KEY, or when the endpoint does not answer, `check()` raises
MODERATION_UNAVAILABLE (503) and nothing is published: a moderator that silently lets everything
through would be a hole nobody sees.
TODO(shared/llm): once shared/llm lands on main this becomes a call to its `moderate()`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
import openai

from community_service import errors

log = logging.getLogger("community_service.moderation")


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    categories: list[str]


class Moderator:
    def __init__(self, api_key: str | None, base_url: str | None, model: str, timeout: float):
        self.model = model
        self.timeout = timeout
        self.client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=1) if api_key else None

    async def check(self, text: str) -> Verdict:
        if self.client is None:
            raise errors.MODERATION_UNAVAILABLE("Moderation is not configured on this server.")
        try:
            response = await self.client.moderations.create(model=self.model, input=text, timeout=self.timeout)
        except (openai.APIError, httpx.TransportError) as exc:
            log.warning("moderation unavailable", extra={"error": type(exc).__name__})
            raise errors.MODERATION_UNAVAILABLE() from exc
        result = response.results[0]
        flags = result.categories.model_dump(by_alias=True)
        return Verdict(bool(result.flagged), sorted(k for k, v in flags.items() if v))

    async def require_clean(self, *texts: str | None) -> None:
        """422 CONTENT_FLAGGED (with the categories) when the texts are flagged."""
        text = "\n\n".join(t for t in texts if t)
        if not text.strip():
            return
        verdict = await self.check(text)
        if verdict.flagged:
            raise errors.CONTENT_FLAGGED(categories=verdict.categories)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
