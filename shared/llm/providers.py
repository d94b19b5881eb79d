"""The provider families behind the router (Anthropic, and every OpenAI-compatible API), and which
of their errors mean "try the next provider"."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai

from shared.llm.catalogue import ANTHROPIC
from shared.llm.messages import Turn, anthropic_messages, openai_messages
from shared.llm.priority import PrioritySemaphore, QueueTimeout


class LLMUnavailable(Exception):
    """Every provider able to answer failed (or none is configured)."""

    def __init__(self, message: str, attempts: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.attempts = attempts or []


_FALLBACK_STATUSES = {401, 403, 408, 409, 429}


def should_fall_back(exc: BaseException) -> bool:
    if isinstance(exc, (asyncio.TimeoutError, QueueTimeout, httpx.TransportError)):
        return True
    if isinstance(
        exc,
        (anthropic.APITimeoutError, anthropic.APIConnectionError, openai.APITimeoutError, openai.APIConnectionError),
    ):
        return True
    if isinstance(exc, (anthropic.APIStatusError, openai.APIStatusError)):
        return exc.status_code in _FALLBACK_STATUSES or exc.status_code >= 500
    # An error event in the middle of a stream (e.g. overloaded_error) has no status code.
    return isinstance(exc, (anthropic.APIError, openai.APIError))


def describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" {status}" if status else "")


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
    def stream(
        self, model: str, system: str, turns: list[Turn], max_tokens: int, usage: dict[str, int]
    ) -> AsyncIterator[str]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


def client_options(api_key: str, base_url: str | None, timeout: Any, max_retries: int, http_client: Any) -> dict:
    """What both SDKs' async clients are built with. `http_client`: the SDK's aiohttp transport,
    ~25% less CPU per call than its default httpx one."""
    return {
        "api_key": api_key,
        "base_url": base_url,
        "timeout": timeout,
        "max_retries": max_retries,
        "http_client": http_client,
    }


class AnthropicProvider(Provider):
    def __init__(self, api_key: str, base_url: str | None, timeout: Any, max_retries: int, limit: int):
        super().__init__(ANTHROPIC, limit)
        options = client_options(api_key, base_url, timeout, max_retries, anthropic.DefaultAioHttpClient())
        self.client = anthropic.AsyncAnthropic(**options)

    async def complete(self, model, system, turns, max_tokens) -> RawReply:
        msg = await self.client.messages.create(
            model=model, system=system, messages=anthropic_messages(turns), max_tokens=max_tokens
        )
        text = "".join(b.text for b in msg.content if getattr(b, "type", "") == "text")
        return RawReply(text, msg.usage.input_tokens, msg.usage.output_tokens, msg.stop_reason)

    async def stream(self, model, system, turns, max_tokens, usage):
        stream = await self.client.messages.create(
            model=model, system=system, messages=anthropic_messages(turns), max_tokens=max_tokens, stream=True
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
        options = client_options(api_key, base_url, timeout, max_retries, openai.DefaultAioHttpClient())
        self.client = openai.AsyncOpenAI(**options)

    async def complete(self, model, system, turns, max_tokens) -> RawReply:
        resp = await self.client.chat.completions.create(
            model=model, messages=openai_messages(system, turns), max_tokens=max_tokens
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
            messages=openai_messages(system, turns),
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
