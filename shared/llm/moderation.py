"""Moderation of text through OpenAI's moderation endpoint (`POST /v1/moderations`, the SDK's
`moderations.create`), for what users write that others will see (story drafts, prompts).

Fails closed: with no OPENAI_API_KEY, or when the endpoint cannot answer (timeout, connection,
any error status), `moderate()` raises ModerationUnavailable instead of answering "not flagged".
A caller turns that into a 503 and publishes nothing: an unconfigured or broken moderator that
lets everything through is a hole nobody sees, a refusal is seen and fixed. A service that wants
to go on without moderation must decide so itself, by catching the exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx
import openai

log = logging.getLogger("shared.llm.moderation")


class ModerationUnavailable(Exception):
    """The text could not be moderated (not configured, or the endpoint failed): treat it as refused."""


@dataclass(frozen=True)
class Moderation:
    flagged: bool
    categories: list[str]  # the categories that were flagged, e.g. ["violence", "harassment/threatening"]
    model: str
    scores: dict[str, float] = field(default_factory=dict)  # every category's score, 0..1


async def moderate(client: openai.AsyncOpenAI | None, text: str, model: str, seconds: float) -> Moderation:
    if client is None:
        raise ModerationUnavailable("moderation needs OPENAI_API_KEY, which this server does not have")
    try:
        response = await client.moderations.create(model=model, input=text, timeout=seconds)
    except (openai.APIError, httpx.TransportError) as exc:
        status = getattr(exc, "status_code", None)
        log.warning("moderation unavailable", extra={"error": type(exc).__name__, "status": status})
        raise ModerationUnavailable(
            f"moderation failed: {type(exc).__name__}" + (f" {status}" if status else "")
        ) from exc
    result = response.results[0]
    flags = result.categories.model_dump(by_alias=True)
    scores = result.category_scores.model_dump(by_alias=True)
    return Moderation(
        flagged=bool(result.flagged),
        categories=sorted(name for name, flagged in flags.items() if flagged),
        model=response.model,
        scores={name: float(score) for name, score in scores.items() if score is not None},
    )
