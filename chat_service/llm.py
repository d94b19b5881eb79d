"""The LLM router: a model catalogue, one async SDK client per configured provider, fallback and
priority.

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

import abc

import asyncio
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import anthropic
import httpx
import openai

from shared.auth import TIER_FREE, TIER_MAX, TIER_PRO

log = logging.getLogger("chat_service.llm")

ANTHROPIC = "anthropic"
OPENAI_COMPATIBLE = ("openai", "groq", "deepseek", "gemini")
PROVIDERS = (ANTHROPIC, *OPENAI_COMPATIBLE)


@dataclass(frozen=True)
class ModelSpec:
    id: str  # what clients send
    provider: str
    provider_model: str  # what the provider is asked for
    min_tier: int = TIER_FREE
    quota_type: str = "regular"  # regular | premium
    vision: bool = False
    label: str = ""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "label": self.label or self.id,
            "min_tier": self.min_tier,
            "quota_type": self.quota_type,
            "vision": self.vision,
        }


DEFAULT_CATALOGUE: tuple[ModelSpec, ...] = (
    ModelSpec("claude-haiku-4-5", ANTHROPIC, "claude-haiku-4-5-20251001", TIER_FREE, "regular", True, "Claude Haiku 4.5"),
    ModelSpec("claude-sonnet-4-6", ANTHROPIC, "claude-sonnet-4-6", TIER_PRO, "premium", True, "Claude Sonnet 4.6"),
    ModelSpec("claude-opus-4-7", ANTHROPIC, "claude-opus-4-7", TIER_PRO, "premium", True, "Claude Opus 4.7"),
    ModelSpec("gpt-4o-mini", "openai", "gpt-4o-mini", TIER_FREE, "regular", True, "GPT-4o mini"),
    ModelSpec("gpt-4o", "openai", "gpt-4o", TIER_PRO, "premium", True, "GPT-4o"),
    ModelSpec("gemini-2.5-flash", "gemini", "gemini-2.5-flash", TIER_FREE, "regular", True, "Gemini 2.5 Flash"),
    ModelSpec("gemini-2.5-pro", "gemini", "gemini-2.5-pro", TIER_PRO, "premium", True, "Gemini 2.5 Pro"),
    ModelSpec("llama-3.3-70b", "groq", "llama-3.3-70b-versatile", TIER_FREE, "regular", False, "Llama 3.3 70B (Groq)"),
    ModelSpec("deepseek-chat", "deepseek", "deepseek-chat", TIER_FREE, "regular", False, "DeepSeek Chat"),
)


def catalogue_from_config(items: list[dict[str, Any]] | None) -> tuple[ModelSpec, ...]:
    if not items:
        return DEFAULT_CATALOGUE
    specs = []
    for item in items:
        provider = item["provider"]
        if provider not in PROVIDERS:
            raise ValueError(f"CHAT_MODEL_CATALOGUE: unknown provider {provider!r} (one of {', '.join(PROVIDERS)})")
        specs.append(
            ModelSpec(
                id=item["id"],
                provider=provider,
                provider_model=item.get("provider_model") or item["id"],
                min_tier=int(item.get("min_tier", TIER_FREE)),
                quota_type=item.get("quota_type", "regular"),
                vision=bool(item.get("vision", False)),
                label=item.get("label", ""),
            )
        )
    return tuple(specs)


# ------------------------------------------------------------------------------------------
# messages
# ------------------------------------------------------------------------------------------


@dataclass
class ImageInput:
    url: str | None = None
    media_type: str | None = None
    data_b64: str | None = None


@dataclass
class Turn:
    role: str  # user | assistant
    text: str
    images: list[ImageInput] = field(default_factory=list)


def merge_turns(turns: list[Turn]) -> list[Turn]:
    """Consecutive turns of one role become one (providers want alternating roles), and the
    conversation starts with a user turn."""
    merged: list[Turn] = []
    for t in turns:
        if merged and merged[-1].role == t.role:
            merged[-1] = Turn(t.role, merged[-1].text + "\n\n" + t.text, merged[-1].images + t.images)
        else:
            merged.append(Turn(t.role, t.text, list(t.images)))
    if merged and merged[0].role != "user":
        merged.insert(0, Turn("user", "(The conversation continues.)"))
    return merged


def _anthropic_messages(turns: list[Turn]) -> list[dict[str, Any]]:
    out = []
    for t in merge_turns(turns):
        if not t.images:
            out.append({"role": t.role, "content": t.text})
            continue
        blocks: list[dict[str, Any]] = []
        for img in t.images:
            if img.data_b64:
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": img.media_type, "data": img.data_b64}})
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": img.url}})
        blocks.append({"type": "text", "text": t.text})
        out.append({"role": t.role, "content": blocks})
    return out


def _openai_messages(system: str, turns: list[Turn]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for t in merge_turns(turns):
        if not t.images:
            out.append({"role": t.role, "content": t.text})
            continue
        parts: list[dict[str, Any]] = [{"type": "text", "text": t.text}]
        for img in t.images:
            url = f"data:{img.media_type};base64,{img.data_b64}" if img.data_b64 else img.url
            parts.append({"type": "image_url", "image_url": {"url": url}})
        out.append({"role": t.role, "content": parts})
    return out


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------


class LLMUnavailable(Exception):
    """Every provider able to answer failed (or none is configured)."""

    def __init__(self, message: str, attempts: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.attempts = attempts or []


class QueueTimeout(Exception):
    pass


_FALLBACK_STATUSES = {401, 403, 408, 409, 429}


def should_fall_back(exc: BaseException) -> bool:
    if isinstance(exc, (asyncio.TimeoutError, QueueTimeout, httpx.TransportError)):
        return True
    if isinstance(exc, (anthropic.APITimeoutError, anthropic.APIConnectionError, openai.APITimeoutError, openai.APIConnectionError)):
        return True
    if isinstance(exc, (anthropic.APIStatusError, openai.APIStatusError)):
        return exc.status_code in _FALLBACK_STATUSES or exc.status_code >= 500
    if isinstance(exc, (anthropic.APIError, openai.APIError)):
        # An error event in the middle of a stream (e.g. overloaded_error) has no status code.
        return True
    return False


def describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" {status}" if status else "")


# ------------------------------------------------------------------------------------------
# priority semaphore
# ------------------------------------------------------------------------------------------


class PrioritySemaphore:
    """A concurrency limit whose waiters are served by priority (lower first), then arrival."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self.active = 0
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    async def acquire(self, priority: int = 1, timeout: float | None = None) -> None:
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            if fut.done() and not fut.cancelled():
                self.release()
            raise QueueTimeout(f"no free slot within {timeout}s") from None
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as we gave up
            else:
                fut.cancel()
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(True)  # hand the slot over: `active` stays the same
                return
        self.active = max(0, self.active - 1)


# ------------------------------------------------------------------------------------------
# providers
# ------------------------------------------------------------------------------------------


@dataclass
class RawReply:
    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None = None


class Provider(abc.ABC):
    """One LLM provider family behind the router (Anthropic, or an OpenAI-compatible API)."""

    name: str

    def __init__(self, name: str, limit: int):
        self.name = name
        self.slots = PrioritySemaphore(limit)

    @abc.abstractmethod
    async def complete(self, model: str, system: str, turns: list[Turn], max_tokens: int) -> RawReply: ...

    @abc.abstractmethod
    def stream(self, model: str, system: str, turns: list[Turn], max_tokens: int, usage: dict[str, int]) -> AsyncIterator[str]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class AnthropicProvider(Provider):
    def __init__(self, api_key: str, base_url: str | None, timeout: Any, max_retries: int, limit: int):
        super().__init__(ANTHROPIC, limit)
        # The SDK's aiohttp transport: ~25% less CPU per call than its default httpx one.
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, http_client=anthropic.DefaultAioHttpClient()
        )

    async def complete(self, model, system, turns, max_tokens) -> RawReply:
        msg = await self.client.messages.create(
            model=model, system=system, messages=_anthropic_messages(turns), max_tokens=max_tokens
        )
        text = "".join(b.text for b in msg.content if getattr(b, "type", "") == "text")
        return RawReply(text, msg.usage.input_tokens, msg.usage.output_tokens, msg.stop_reason)

    async def stream(self, model, system, turns, max_tokens, usage):
        stream = await self.client.messages.create(
            model=model, system=system, messages=_anthropic_messages(turns), max_tokens=max_tokens, stream=True
        )
        async with stream:
            async for event in stream:
                kind = event.type
                if kind == "message_start":
                    usage["input_tokens"] = event.message.usage.input_tokens
                elif kind == "content_block_delta" and getattr(event.delta, "type", "") == "text_delta":
                    yield event.delta.text
                elif kind == "message_delta":
                    usage["output_tokens"] = event.usage.output_tokens

    async def close(self) -> None:
        await self.client.close()


class OpenAICompatibleProvider(Provider):
    def __init__(self, name: str, api_key: str, base_url: str | None, timeout: Any, max_retries: int, limit: int):
        super().__init__(name, limit)
        self.client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, http_client=openai.DefaultAioHttpClient()
        )

    async def complete(self, model, system, turns, max_tokens) -> RawReply:
        resp = await self.client.chat.completions.create(
            model=model, messages=_openai_messages(system, turns), max_tokens=max_tokens
        )
        choice = resp.choices[0]
        usage = resp.usage
        return RawReply(
            choice.message.content or "",
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            choice.finish_reason,
        )

    async def stream(self, model, system, turns, max_tokens, usage):
        stream = await self.client.chat.completions.create(
            model=model,
            messages=_openai_messages(system, turns),
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage["input_tokens"] = chunk.usage.prompt_tokens
                    usage["output_tokens"] = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content

    async def close(self) -> None:
        await self.client.close()


# ------------------------------------------------------------------------------------------
# router
# ------------------------------------------------------------------------------------------


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
    def __init__(self, settings, providers: dict[str, Provider] | None = None):
        self.settings = settings
        self.catalogue = catalogue_from_config(settings.chat_model_catalogue)
        self.by_id = {m.id: m for m in self.catalogue}
        self.providers: dict[str, Provider] = providers if providers is not None else self._build_providers(settings)
        self.order = [p for p in settings.llm_provider_order if p in PROVIDERS] + [p for p in PROVIDERS if p not in settings.llm_provider_order]
        self.queue_timeout = settings.llm_queue_timeout_seconds

    @staticmethod
    def _build_providers(s) -> dict[str, Provider]:
        out: dict[str, Provider] = {}
        if s.anthropic_api_key:
            timeout = anthropic.Timeout(s.llm_timeout_seconds, connect=s.llm_connect_timeout_seconds)
            out[ANTHROPIC] = AnthropicProvider(s.anthropic_api_key, s.anthropic_base_url, timeout, s.llm_max_retries, s.llm_max_concurrency)
        timeout = openai.Timeout(s.llm_timeout_seconds, connect=s.llm_connect_timeout_seconds)
        bases = {"openai": s.openai_base_url, "groq": s.groq_base_url, "deepseek": s.deepseek_base_url, "gemini": s.gemini_base_url}
        keys = {"openai": s.openai_api_key, "groq": s.groq_api_key, "deepseek": s.deepseek_api_key, "gemini": s.gemini_api_key}
        for name in OPENAI_COMPATIBLE:
            if keys[name]:
                out[name] = OpenAICompatibleProvider(name, keys[name], bases[name], timeout, s.llm_max_retries, s.llm_max_concurrency)
        return out

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
        wanted = self.settings.chat_vision_model if vision else self.settings.chat_default_model
        if wanted and wanted in self.by_id and self.by_id[wanted].provider in self.providers:
            return self.by_id[wanted]
        for provider in self.order:
            for m in self.catalogue:
                if m.provider == provider and provider in self.providers and m.quota_type == "regular" and m.min_tier == TIER_FREE and (m.vision or not vision):
                    return m
        return None

    def chain(self, spec: ModelSpec, vision: bool = False) -> list[ModelSpec]:
        """The requested model first, then one model of the same class per other provider."""
        chain = [spec] if spec.provider in self.providers else []
        for provider in self.order:
            if provider == spec.provider or provider not in self.providers:
                continue
            for m in self.catalogue:
                if m.provider == provider and m.quota_type == spec.quota_type and m.min_tier <= max(spec.min_tier, TIER_FREE) and (m.vision or not vision):
                    chain.append(m)
                    break
        return chain

    # -- calls ------------------------------------------------------------------------------------
    async def complete(
        self, spec: ModelSpec, system: str, turns: list[Turn], *, tier: int = TIER_FREE, max_tokens: int | None = None, vision: bool = False
    ) -> Completion:
        max_tokens = max_tokens or self.settings.llm_max_reply_tokens
        attempts: list[dict[str, Any]] = []
        started = time.perf_counter()
        for candidate in self.chain(spec, vision):
            provider = self.providers[candidate.provider]
            try:
                await provider.slots.acquire(_priority(tier), self.queue_timeout)
                try:
                    raw = await provider.complete(candidate.provider_model, system, turns, max_tokens)
                finally:
                    provider.slots.release()
            except Exception as exc:
                if not should_fall_back(exc):
                    log.warning("llm request refused", extra={"provider": candidate.provider, "model": candidate.id, "error": describe(exc)})
                    attempts.append({"provider": candidate.provider, "model": candidate.id, "error": describe(exc)})
                    raise LLMUnavailable(f"{candidate.provider} refused the request: {describe(exc)}", attempts) from exc
                log.warning("llm provider failed, falling back", extra={"provider": candidate.provider, "model": candidate.id, "error": describe(exc)})
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
                await provider.slots.acquire(_priority(tier), self.queue_timeout)
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
                log.warning("llm provider failed, falling back", extra={"provider": candidate.provider, "model": candidate.id, "error": describe(exc)})
                continue
            result.spec = candidate
            result.input_tokens = usage.get("input_tokens", 0)
            result.output_tokens = usage.get("output_tokens", 0)
            return
        raise LLMUnavailable("no language model provider could answer", result.attempts)


def _priority(tier: int) -> int:
    return 0 if tier >= TIER_MAX else 1
