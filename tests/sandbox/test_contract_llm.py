"""Contract: the sandbox's OpenAI-compatible and Anthropic answers against what the providers publish.

OpenAI: its OpenAPI document (openai/openai-openapi, trimmed to the endpoints we call) - every JSON
answer and every stream chunk validates against its schemas, for each provider the sandbox plays with
OpenAI's protocol; the stream follows the sequence OpenAI documents (a role chunk, content chunks, a
finish chunk, `[DONE]`).
Anthropic publishes no OpenAPI document here (sandbox/README.md); its SDK's event types are generated
from its spec, so each SSE event validates against the SDK's own models (closed: an invented field is
drift), and the event order follows Anthropic's published stream (tests/fixtures/providers/anthropic).
"""

from __future__ import annotations

import json
import re

import httpx
import jsonschema_rs
import pytest
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from sandbox.testing import DUMMY_KEYS
from tests.sandbox.published import FIXTURES, closed, errors, load, nullable_as_null_type, openapi_validator

ANTHROPIC_STREAM = (FIXTURES / "anthropic/messages-streaming.basic_response.txt").read_text()
OPENAI_STREAM = (FIXTURES / "openai/chat-completions-streaming.documented.txt").read_text()
OPENAI = load("openai/openapi.trimmed.json")

# provider -> (prefix, a model of that provider)
OPENAI_COMPATIBLE = {
    "openai": ("/openai/v1", "gpt-4o-mini"),
    "groq": ("/groq/openai/v1", "llama-3.3-70b-versatile"),
    "deepseek": ("/deepseek/v1", "deepseek-chat"),
    "gemini": ("/gemini/v1beta/openai", "gemini-2.5-flash"),
}
COMPONENTS = nullable_as_null_type(OPENAI["components"])


def openai_validator(name: str):
    return openapi_validator(OPENAI, name, components=COMPONENTS)


ANTHROPIC_EVENT = jsonschema_rs.validator_for(closed(TypeAdapter(RawMessageStreamEvent).json_schema()))


def sse_frames(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) of each SSE frame."""
    out = []
    for block in re.split(r"\r?\n\r?\n", text.strip()):
        event, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            out.append((event, "\n".join(data)))
    return out


# ----------------------------------------------------------------------------------------- OpenAI


def test_openais_documented_stream_chunks_fit_its_schema():
    chunks = [json.loads(b) for b in OPENAI_STREAM.split("\n\n") if b.strip().startswith("{")]
    assert len(chunks) == 3
    for chunk in chunks:
        assert errors(openai_validator("CreateChatCompletionStreamResponse"), chunk) == []


@pytest.fixture
def http(sandbox):
    with httpx.Client(base_url=sandbox.base_url, timeout=30) as client:
        yield client


def chat(http, prefix, model, **extra):
    return http.post(
        f"{prefix}/chat/completions",
        headers={"Authorization": f"Bearer {DUMMY_KEYS['OPENAI_API_KEY']}"},
        json={
            "model": model,
            "messages": [
                {"role": "system", "content": "You are Sherlock Holmes."},
                {"role": "user", "content": "Who did it?"},
            ],
            "max_tokens": 50,
            **extra,
        },
    )


@pytest.mark.parametrize("provider", sorted(OPENAI_COMPATIBLE))
def test_chat_completion_fits_openais_schema(http, provider):
    prefix, model = OPENAI_COMPATIBLE[provider]
    r = chat(http, prefix, model)
    assert r.status_code == 200, r.text
    assert errors(openai_validator("CreateChatCompletionResponse"), r.json()) == []


@pytest.mark.parametrize("provider", sorted(OPENAI_COMPATIBLE))
def test_chat_stream_fits_openais_schema_and_documented_sequence(http, provider):
    prefix, model = OPENAI_COMPATIBLE[provider]
    r = chat(http, prefix, model, stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    frames = [data for _, data in sse_frames(r.text)]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(d) for d in frames[:-1]]
    validator = openai_validator("CreateChatCompletionStreamResponse")
    for chunk in chunks:
        assert errors(validator, chunk) == [], chunk
    # The documented order: the role first (empty content), content deltas, a finish chunk with an
    # empty delta; with include_usage a last chunk with no choices and the usage.
    with_choices = [c for c in chunks if c["choices"]]
    first = dict(with_choices[0]["choices"][0]["delta"])
    assert first.pop("refusal", None) is None  # OpenAI's current answers add `refusal: null` here
    assert first == {"role": "assistant", "content": ""}
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in with_choices[1:-1])
    assert with_choices[-1]["choices"][0]["delta"] == {} and with_choices[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert len({c["id"] for c in chunks}) == 1


def test_models_and_errors_fit_openais_schema(http):
    auth = {"Authorization": f"Bearer {DUMMY_KEYS['OPENAI_API_KEY']}"}
    models = http.get("/openai/v1/models", headers=auth)
    assert errors(openai_validator("ListModelsResponse"), models.json()) == []
    missing = http.post(
        "/openai/v1/chat/completions",
        headers=auth,
        json={"model": "not-a-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert missing.status_code == 404
    assert errors(openai_validator("ErrorResponse"), missing.json()) == []
    unauthorized = http.get("/openai/v1/models")
    assert unauthorized.status_code == 401
    assert errors(openai_validator("ErrorResponse"), unauthorized.json()) == []


# -------------------------------------------------------------------------------------- Anthropic

# message_start, content_block_start, [ping], content_block_delta*, content_block_stop, message_delta, message_stop
ANTHROPIC_ORDER = re.compile(
    r"^message_start content_block_start( ping)?( content_block_delta)+ content_block_stop"
    r" message_delta message_stop$"
)


def check_anthropic_stream(text: str) -> list[str]:
    problems, names = [], []
    for event, data in sse_frames(text):
        body = json.loads(data)
        names.append(event)
        if event != body.get("type"):
            problems.append(f"event {event} carries type {body.get('type')}")
        if event == "ping":
            if body != {"type": "ping"}:
                problems.append(f"ping {body}")
            continue
        problems += [f"{event}: {e}" for e in errors(ANTHROPIC_EVENT, body)]
    if not ANTHROPIC_ORDER.match(" ".join(names)):
        problems.append("order: " + " ".join(names))
    return problems


def test_anthropics_published_stream_fits_the_checks():
    assert check_anthropic_stream(ANTHROPIC_STREAM) == []


def test_sandbox_anthropic_stream_fits_anthropics_events_and_order(http):
    r = http.post(
        "/anthropic/v1/messages",
        headers={"x-api-key": DUMMY_KEYS["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-sonnet-4-6",
            "max_tokens": 50,
            "stream": True,
            "system": "You are Ada Lovelace.",
            "messages": [{"role": "user", "content": "What is an engine?"}],
        },
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert check_anthropic_stream(r.text) == []


def test_sandbox_anthropic_message_fits_anthropics_model(http):
    from anthropic.types import Message

    r = http.post(
        "/anthropic/v1/messages",
        headers={"x-api-key": DUMMY_KEYS["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-sonnet-4-6",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "What is an engine?"}],
        },
    )
    assert r.status_code == 200
    assert errors(jsonschema_rs.validator_for(closed(Message.model_json_schema())), r.json()) == []
