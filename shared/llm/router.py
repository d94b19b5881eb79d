"""The LLM router: a model catalogue, one async SDK client per configured provider, fallback and
priority (chat now; community and media next).

- Anthropic through `AsyncAnthropic`; OpenAI, Groq, DeepSeek and Gemini through `AsyncOpenAI`
  pointed at each one's OpenAI-compatible base URL (so Ollama or vLLM work the same way).
- A provider without an API key is not in the router.
- The catalogue says which tier a model needs, which quota it spends and whether it sees images.
- On a timeout, a connection error, a rate limit, an auth/permission failure or a 5xx (529
  included) the router moves to the next provider's model of the same class; a stream falls back
  only until its first token has been sent.
- Each provider has a concurrency limit; waiting requests are served Max tier first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import anthropic
import openai

from shared.auth import TIER_FREE
from shared.llm.catalogue import ANTHROPIC, OPENAI_COMPATIBLE, PROVIDERS, ModelSpec, catalogue_from_config
from shared.llm.messages import Turn
from shared.llm.moderation import Moderation, moderate
from shared.llm.priority import priority
from shared.llm.providers import (
    AnthropicProvider,
    LLMUnavailable,
    OpenAICompatibleProvider,
    Provider,
    describe,
    should_fall_back,
)
from shared.llm.settings import LLMSettings

log = logging.getLogger("shared.llm")

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


@dataclass
class Completion:
    text: str
    model: str  # catalogue id that answered
    provider: str
    provider_model: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    attempts: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None

    @property
    def fell_back(self) -> bool:
        return bool(self.attempts)


@dataclass
class StreamResult:
    """Filled in while a router stream runs; complete once the iterator is exhausted."""

    spec: ModelSpec | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)
    first_token_ms: float | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def completion(self, text: str) -> Completion:
        assert self.spec is not None
        return Completion(
            text=text,
            model=self.spec.id,
            provider=self.spec.provider,
            provider_model=self.spec.provider_model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            latency_ms=round((time.perf_counter() - self.started) * 1000, 2),
            attempts=self.attempts,
        )


class LLMRouter:
    """`default_model` / `vision_model`: catalogue ids a caller prefers (None: the first regular
    Free model of the first configured provider, a vision one for images)."""

    def __init__(
        self,
        settings: LLMSettings,
        providers: dict[str, Provider] | None = None,
        *,
        default_model: str | None = None,
        vision_model: str | None = None,
    ):
        self.settings = settings
        self.catalogue = catalogue_from_config(settings.llm_model_catalogue)
        self.by_id = {m.id: m for m in self.catalogue}
        self.providers: dict[str, Provider] = providers if providers is not None else self._build_providers(settings)
        self.order = [p for p in settings.llm_provider_order if p in PROVIDERS] + [
            p for p in PROVIDERS if p not in settings.llm_provider_order
        ]
        self.queue_timeout = settings.llm_queue_timeout_seconds
        self.preferred = {False: default_model, True: vision_model}

    @staticmethod
    def _build_providers(s: LLMSettings) -> dict[str, Provider]:
        out: dict[str, Provider] = {}
        keys, bases = s.provider_api_keys(), s.provider_base_urls()
        if keys[ANTHROPIC]:
            timeout = anthropic.Timeout(s.llm_timeout_seconds, connect=s.llm_connect_timeout_seconds)
            out[ANTHROPIC] = AnthropicProvider(
                keys[ANTHROPIC], bases[ANTHROPIC], timeout, s.llm_max_retries, s.llm_max_concurrency
            )
        timeout = openai.Timeout(s.llm_timeout_seconds, connect=s.llm_connect_timeout_seconds)
        for name in OPENAI_COMPATIBLE:
            if keys[name]:
                out[name] = OpenAICompatibleProvider(
                    name, keys[name], bases[name], timeout, s.llm_max_retries, s.llm_max_concurrency
                )
        return out

    def openai_client(self) -> openai.AsyncOpenAI | None:
        """The OpenAI SDK client (voice, moderation), or None when OPENAI_API_KEY is not set."""
        provider = self.providers.get("openai")
        return provider.client if isinstance(provider, OpenAICompatibleProvider) else None

    async def moderate(self, text: str) -> Moderation:
        """OpenAI's moderation of `text`; raises ModerationUnavailable (fail closed, see moderation.py)."""
        return await moderate(
            self.openai_client(), text, self.settings.llm_moderation_model, self.settings.llm_moderation_timeout_seconds
        )

    def announce(self, logger: logging.Logger, without_providers: str) -> None:
        """At start-up: an ERROR when no provider is configured (`without_providers` says what
        fails then), a WARNING naming providers that point at local servers, the models."""
        if not self.configured:
            logger.error(
                "NO LANGUAGE MODEL PROVIDER IS CONFIGURED: set ANTHROPIC_API_KEY, OPENAI_API_KEY, GROQ_API_KEY, "
                "DEEPSEEK_API_KEY or GEMINI_API_KEY. %s",
                without_providers,
            )
            return
        bases = self.settings.provider_base_urls()
        local = {
            name: bases[name]
            for name in self.providers
            if bases[name] and urlparse(bases[name]).hostname in LOCAL_HOSTS
        }
        if local:
            logger.warning(
                "LLM providers point at LOCAL servers (sandbox or self-hosted), not the real APIs: %s", local
            )
        logger.info(
            "llm providers",
            extra={"providers": list(self.providers), "models": [m.id for m in self.available_models()]},
        )

    async def close(self) -> None:
        for p in self.providers.values():
            try:
                await p.close()
            except Exception:
                log.exception("closing provider %s failed", p.name)

    # -- catalogue ------------------------------------------------------------------------------
    @property
    def configured(self) -> bool:
        return bool(self.providers)

    def available_models(self) -> list[ModelSpec]:
        return [m for m in self.catalogue if m.provider in self.providers]

    def get(self, model_id: str) -> ModelSpec | None:
        return self.by_id.get(model_id)

    def default_model(self, vision: bool = False) -> ModelSpec | None:
        wanted = self.preferred[vision]
        if wanted and wanted in self.by_id and self.by_id[wanted].provider in self.providers:
            return self.by_id[wanted]
        for provider in self.order:
            for m in self.catalogue:
                if (
                    m.provider == provider
                    and provider in self.providers
                    and m.quota_type == "regular"
                    and m.min_tier == TIER_FREE
                    and (m.vision or not vision)
                ):
                    return m
        return None

    def chain(self, spec: ModelSpec, vision: bool = False) -> list[ModelSpec]:
        """The requested model first, then one model of the same class per other provider."""
        chain = [spec] if spec.provider in self.providers else []
        for provider in self.order:
            if provider == spec.provider or provider not in self.providers:
                continue
            for m in self.catalogue:
                if (
                    m.provider == provider
                    and m.quota_type == spec.quota_type
                    and m.min_tier <= max(spec.min_tier, TIER_FREE)
                    and (m.vision or not vision)
                ):
                    chain.append(m)
                    break
        return chain

    # -- calls ------------------------------------------------------------------------------------
    async def complete(
        self,
        spec: ModelSpec,
        system: str,
        turns: list[Turn],
        *,
        tier: int = TIER_FREE,
        max_tokens: int | None = None,
        vision: bool = False,
    ) -> Completion:
        max_tokens = max_tokens or self.settings.llm_max_reply_tokens
        attempts: list[dict[str, Any]] = []
        started = time.perf_counter()
        for candidate in self.chain(spec, vision):
            provider = self.providers[candidate.provider]
            try:
                await provider.slots.acquire(priority(tier), self.queue_timeout)
                try:
                    raw = await provider.complete(candidate.provider_model, system, turns, max_tokens)
                finally:
                    provider.slots.release()
            except Exception as exc:
                if not should_fall_back(exc):
                    log.warning(
                        "llm request refused",
                        extra={"provider": candidate.provider, "model": candidate.id, "error": describe(exc)},
                    )
                    attempts.append({"provider": candidate.provider, "model": candidate.id, "error": describe(exc)})
                    raise LLMUnavailable(
                        f"{candidate.provider} refused the request: {describe(exc)}", attempts
                    ) from exc
                log.warning(
                    "llm provider failed, falling back",
                    extra={"provider": candidate.provider, "model": candidate.id, "error": describe(exc)},
                )
                attempts.append({"provider": candidate.provider, "model": candidate.id, "error": describe(exc)})
                continue
            return Completion(
                text=raw.text,
                model=candidate.id,
                provider=candidate.provider,
                provider_model=candidate.provider_model,
                input_tokens=raw.input_tokens,
                output_tokens=raw.output_tokens,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
                attempts=attempts,
                stop_reason=raw.stop_reason,
            )
        raise LLMUnavailable("no language model provider could answer", attempts)

    async def stream(
        self,
        spec: ModelSpec,
        system: str,
        turns: list[Turn],
        result: StreamResult,
        *,
        tier: int = TIER_FREE,
        max_tokens: int | None = None,
        vision: bool = False,
    ) -> AsyncIterator[str]:
        """Yield text deltas; falls back to the next provider only before the first delta.
        `result` carries the model that answered, usage and the fallback trace."""
        max_tokens = max_tokens or self.settings.llm_max_reply_tokens
        for candidate in self.chain(spec, vision):
            provider = self.providers[candidate.provider]
            usage: dict[str, int] = {}
            sent_any = False
            try:
                await provider.slots.acquire(priority(tier), self.queue_timeout)
                try:
                    async for delta in provider.stream(candidate.provider_model, system, turns, max_tokens, usage):
                        if not sent_any:
                            sent_any = True
                            result.spec = candidate
                            result.first_token_ms = round((time.perf_counter() - result.started) * 1000, 2)
                        yield delta
                finally:
                    provider.slots.release()
            except Exception as exc:
                result.attempts.append({"provider": candidate.provider, "model": candidate.id, "error": describe(exc)})
                if sent_any or not should_fall_back(exc):
                    raise LLMUnavailable(f"{candidate.provider} failed: {describe(exc)}", result.attempts) from exc
                log.warning(
                    "llm provider failed, falling back",
                    extra={"provider": candidate.provider, "model": candidate.id, "error": describe(exc)},
                )
                continue
            result.spec = candidate
            result.input_tokens = usage.get("input_tokens", 0)
            result.output_tokens = usage.get("output_tokens", 0)
            return
        raise LLMUnavailable("no language model provider could answer", result.attempts)
