"""LLM access for every service: the provider router (Anthropic, OpenAI and the OpenAI-compatible
providers; fallback, Max-tier priority, streaming), token counting and moderation.

    router = LLMRouter(settings)                     # settings: an LLMSettings subclass
    reply = await router.complete(router.default_model(), system, [Turn("user", "Hi")], tier=tier)
    verdict = await router.moderate(draft)           # ModerationUnavailable: refuse (fails closed)
"""

from shared.llm.catalogue import DEFAULT_CATALOGUE, PROVIDERS, ModelSpec
from shared.llm.messages import ImageInput, Turn
from shared.llm.moderation import Moderation, ModerationUnavailable
from shared.llm.providers import LLMUnavailable, describe, should_fall_back
from shared.llm.router import Completion, LLMRouter, StreamResult
from shared.llm.settings import LLMSettings

__all__ = [
    "DEFAULT_CATALOGUE",
    "PROVIDERS",
    "Completion",
    "ImageInput",
    "LLMRouter",
    "LLMSettings",
    "LLMUnavailable",
    "ModelSpec",
    "Moderation",
    "ModerationUnavailable",
    "StreamResult",
    "Turn",
    "describe",
    "should_fall_back",
]
