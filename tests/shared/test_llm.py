"""shared/llm against the sandbox's Anthropic and OpenAI-compatible servers, through the real SDKs:
fallback, streaming, a provider down, moderation (flagged, not flagged, unconfigured, down), Max
priority and the settings mixin."""

from __future__ import annotations

import asyncio

import pytest

from shared.auth import TIER_FREE, TIER_MAX
from shared.llm import LLMRouter, LLMSettings, LLMUnavailable, ModerationUnavailable, StreamResult, Turn
from shared.llm.priority import PrioritySemaphore
from shared.llm.tokens import count_tokens

KEYS = {
    "anthropic_api_key": "sk-ant-sandbox-key",
    "openai_api_key": "sk-sandbox-openai",
    "groq_api_key": "gsk-sandbox",
    "deepseek_api_key": "sk-sandbox-deepseek",
    "gemini_api_key": "sandbox-gemini-key",
}
SYSTEM = "You are Batman, the character from The Dark Knight (2008)."


@pytest.fixture
def control(sandbox):
    if sandbox is None:
        pytest.skip("the sandbox package is not available")
    # Only the faults and latency this module adds: in a whole-suite run the sandbox is shared.
    sandbox.control.clear_faults()
    sandbox.control._call("DELETE", "/_sandbox/latency")
    yield sandbox.control
    sandbox.control.clear_faults()
    sandbox.control._call("DELETE", "/_sandbox/latency")


@pytest.fixture
def settings(sandbox, control) -> LLMSettings:
    urls = {k.lower(): v for k, v in sandbox.env().items() if k.endswith("_BASE_URL")}
    return LLMSettings(**urls, **KEYS, llm_timeout_seconds=5)


@pytest.fixture
async def router(settings):
    r = LLMRouter(settings)
    yield r
    await r.close()


def since(control) -> int:
    last = control.requests()
    return last[-1]["id"] if last else 0


async def test_complete_falls_back_to_the_next_provider_when_the_first_fails(router, control):
    control.fault("anthropic", 529, count=1)
    mark = since(control)
    spec = router.default_model()
    assert spec.id == "claude-haiku-4-5"
    reply = await router.complete(spec, SYSTEM, [Turn("user", "Where is the Joker?")], tier=TIER_FREE)
    assert reply.provider == "openai" and reply.model == "gpt-4o-mini"
    assert reply.text.startswith("Batman here. You said: Where is the Joker?")
    assert reply.attempts == [{"provider": "anthropic", "model": "claude-haiku-4-5", "error": "OverloadedError 529"}]
    assert reply.input_tokens > 0 and reply.output_tokens > 0
    calls = control.requests(since=mark)
    providers = [r["provider"] for r in calls if r["path"].endswith(("/messages", "/completions"))]
    assert providers == ["anthropic", "openai"]


async def test_a_bad_request_is_not_retried_elsewhere(router, control):
    control.fault("anthropic", 400, count=1)
    with pytest.raises(LLMUnavailable) as refused:
        await router.complete(router.default_model(), SYSTEM, [Turn("user", "hi")])
    assert [a["provider"] for a in refused.value.attempts] == ["anthropic"]


async def test_every_provider_down_is_llm_unavailable_with_each_attempt(router, control):
    for provider in ("anthropic", "openai", "gemini", "groq", "deepseek"):
        control.fault(provider, 503, count=None)
    with pytest.raises(LLMUnavailable) as down:
        await router.complete(router.default_model(), SYSTEM, [Turn("user", "hi")])
    assert [a["provider"] for a in down.value.attempts] == ["anthropic", "openai", "gemini", "groq", "deepseek"]


async def test_stream_yields_the_reply_and_usage(router, control):
    result = StreamResult()
    deltas = [d async for d in router.stream(router.default_model(), SYSTEM, [Turn("user", "Why so serious?")], result)]
    assert len(deltas) > 3
    assert "".join(deltas) == "Batman here. You said: Why so serious?"
    assert result.spec.id == "claude-haiku-4-5" and result.first_token_ms is not None
    assert result.input_tokens > 0 and result.output_tokens == len(deltas)
    assert result.completion("".join(deltas)).provider == "anthropic"


async def test_stream_falls_back_before_its_first_token_only(router, control):
    control.fault("anthropic", 529, count=1)
    result = StreamResult()
    text = "".join([d async for d in router.stream(router.default_model(), SYSTEM, [Turn("user", "hello")], result)])
    assert text.startswith("Batman here") and result.spec.provider == "openai"
    assert [a["provider"] for a in result.attempts] == ["anthropic"]
    # After the first token a failure ends the stream: no second provider's reply is spliced in.
    control.fault("anthropic", 529, after_chunks=2)
    result, received = StreamResult(), []
    with pytest.raises(LLMUnavailable):
        async for delta in router.stream(router.default_model(), SYSTEM, [Turn("user", "one two three four")], result):
            received.append(delta)
    assert len(received) == 2 and result.spec.provider == "anthropic"


async def test_moderation_flags_the_marked_text_only(router, control):
    clean = await router.moderate("Batman meets Commissioner Gordon on the roof.")
    assert clean.flagged is False and clean.categories == [] and clean.model == "omni-moderation-latest"
    assert set(clean.scores) >= {"violence", "harassment/threatening", "self-harm/intent"}
    flagged = await router.moderate("a story with sandbox-flag in it")
    assert flagged.flagged is True and flagged.categories == ["violence"] and flagged.scores["violence"] > 0.9
    named = await router.moderate("sandbox-flag:self-harm/intent and sandbox-flag:hate")
    assert named.categories == ["hate", "self-harm/intent"]
    body = control.requests(provider="openai", path="/moderations")[-1]["body"]
    assert body == {"model": "omni-moderation-latest", "input": "sandbox-flag:self-harm/intent and sandbox-flag:hate"}


async def test_moderation_fails_closed_when_down_or_not_configured(router, settings, control):
    control.fault("openai", 503, path="/moderations", count=1)
    with pytest.raises(ModerationUnavailable):
        await router.moderate("anything")
    without_openai = LLMRouter(settings.model_copy(update={"openai_api_key": None}))
    try:
        with pytest.raises(ModerationUnavailable, match="OPENAI_API_KEY"):
            await without_openai.moderate("anything")
        assert without_openai.configured and "openai" not in without_openai.providers
    finally:
        await without_openai.close()


async def test_max_tier_waiters_are_served_first():
    slots = PrioritySemaphore(1)
    await slots.acquire()
    served: list[str] = []

    async def wait(name: str, tier: int) -> None:
        await slots.acquire(0 if tier >= TIER_MAX else 1, wait_seconds=5)
        served.append(name)
        slots.release()

    free = asyncio.create_task(wait("free", TIER_FREE))
    await asyncio.sleep(0.01)
    maxed = asyncio.create_task(wait("max", TIER_MAX))
    await asyncio.sleep(0.01)
    slots.release()
    await asyncio.gather(free, maxed)
    assert served == ["max", "free"] and slots.active == 0


def test_settings_mixin_reads_the_shared_variables(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("LLM_PROVIDER_ORDER", '["openai", "anthropic"]')
    monkeypatch.setenv("CHAT_MODEL_CATALOGUE", '[{"id": "local", "provider": "openai", "provider_model": "llama3"}]')
    settings = LLMSettings()
    assert settings.openai_api_key == "sk-from-env" and settings.llm_provider_order == ["openai", "anthropic"]
    router = LLMRouter(settings, providers={})
    assert [m.id for m in router.catalogue] == ["local"] and router.order[:2] == ["openai", "anthropic"]


def test_token_counts_are_cl100k():
    assert count_tokens("hello world") == 2 and count_tokens("") == 0
