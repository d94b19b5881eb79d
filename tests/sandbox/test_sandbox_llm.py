"""The official anthropic and openai SDKs (async clients) against the sandbox."""

from __future__ import annotations

import base64
import json
import time

import anthropic
import httpx
import openai
import pytest

from sandbox import audio

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SYSTEM = "You are Bruce Wayne, a billionaire who fights crime in Gotham. Stay in character."


def claude(sandbox, **kw) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=sandbox.url("/anthropic"), **kw)


def oai(sandbox, prefix: str = "/openai/v1", **kw) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test", base_url=sandbox.url(prefix), **kw)


# --------------------------------------------------------------------------------------- Anthropic


async def test_anthropic_create_in_character_with_usage(sandbox):
    msg = await claude(sandbox).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=200,
        system=SYSTEM,
        messages=[{"role": "user", "content": "Who are you really?"}],
    )
    assert msg.type == "message" and msg.role == "assistant" and msg.id.startswith("msg_")
    assert msg.content[0].text == "Bruce Wayne here. You said: Who are you really?"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 9  # one token per word
    assert msg.usage.input_tokens == len(SYSTEM.split()) + 4
    rec = sandbox.control.requests(provider="anthropic")[-1]
    assert rec["path"] == "/v1/messages" and rec["headers"]["anthropic-version"]
    # this SDK sends the key as x-api-key or Authorization: Bearer; the log masks long keys
    assert "sk-ant-test" in (rec["headers"].get("x-api-key") or rec["headers"]["authorization"])
    assert rec["body"]["system"] == SYSTEM


async def test_anthropic_stream_event_sequence_and_assembly(sandbox):
    client = claude(sandbox)
    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=200,
        system=SYSTEM,
        messages=[{"role": "user", "content": "Tell me about Gotham"}],
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Bruce Wayne here. You said: Tell me about Gotham"
    assert final.usage.output_tokens == 9 and final.stop_reason == "end_turn"

    raw = await client.messages.create(
        model="claude-sonnet-4-6", max_tokens=200, stream=True, messages=[{"role": "user", "content": "hi"}]
    )
    types = [event.type async for event in raw]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(types[2:-3]) == {"content_block_delta"}

    # the raw SSE has event: lines and a ping, as Anthropic sends
    async with httpx.AsyncClient() as http:
        r = await http.post(
            sandbox.url("/anthropic/v1/messages"),
            json={
                "model": "claude-haiku-4-5",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "content_block_start", "ping"]
    delta = json.loads([line for line in r.text.splitlines() if '"message_delta"' in line][0][6:])
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] == 5


async def test_anthropic_max_tokens_and_stop_sequences(sandbox):
    c = claude(sandbox)
    cut = await c.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=3,
        system=SYSTEM,
        messages=[{"role": "user", "content": "a long question indeed"}],
    )
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3
    assert cut.content[0].text == "Bruce Wayne here. "
    stop = await c.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=50,
        stop_sequences=["said"],
        system=SYSTEM,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert stop.stop_reason == "stop_sequence" and stop.stop_sequence == "said"


async def test_anthropic_image_blocks(sandbox):
    c = claude(sandbox)
    img = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG_1PX).decode()},
    }
    msg = await c.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        system=SYSTEM,
        messages=[{"role": "user", "content": [img, {"type": "text", "text": "Look"}]}],
    )
    assert msg.content[0].text.endswith("I can see the image you sent.")
    assert msg.usage.input_tokens == len(SYSTEM.split()) + 1 + 85
    bad = dict(img, source=dict(img["source"], media_type="image/jpeg"))
    with pytest.raises(anthropic.BadRequestError) as e:
        await c.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": [bad]}])
    assert "does not match the provided media type" in e.value.message
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "invalid_request_error"


async def test_anthropic_count_tokens_and_models(sandbox):
    c = claude(sandbox)
    counted = await c.messages.count_tokens(
        model="claude-sonnet-4-6", system=SYSTEM, messages=[{"role": "user", "content": "one two three"}]
    )
    assert counted.input_tokens == len(SYSTEM.split()) + 3
    models = await c.models.list()
    assert any(m.id.startswith("claude-") for m in models.data)


async def test_anthropic_auth_and_version_headers_required(sandbox):
    async with httpx.AsyncClient() as http:
        body = {"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        r = await http.post(
            sandbox.url("/anthropic/v1/messages"), json=body, headers={"anthropic-version": "2023-06-01"}
        )
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert r.json()["type"] == "error" and r.json()["request_id"].startswith("req_")
        r = await http.post(sandbox.url("/anthropic/v1/messages"), json=body, headers={"x-api-key": "k"})
        assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]
    with pytest.raises(anthropic.NotFoundError):
        await claude(sandbox).messages.create(model="gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        await claude(sandbox).messages.create(
            model="claude-sonnet-4-6", max_tokens=0, messages=[{"role": "user", "content": "x"}]
        )


async def test_anthropic_overloaded_fault_is_529_overloaded_error(sandbox):
    sandbox.control.fault("anthropic", 529, count=1)
    with pytest.raises(anthropic.InternalServerError) as e:
        await claude(sandbox, max_retries=0).messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 529
    assert isinstance(e.value, anthropic.OverloadedError)
    assert e.value.body["error"]["type"] == "overloaded_error"
    # the fault is used up: the next call succeeds
    ok = await claude(sandbox, max_retries=0).messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    assert ok.content[0].text.startswith("Assistant here.")


async def test_anthropic_sdk_retries_through_a_fault(sandbox):
    sandbox.control.fault("anthropic", 529, count=1, retry_after=0)
    msg = await claude(sandbox, max_retries=1).messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "again"}]
    )
    assert msg.content[0].text == "Assistant here. You said: again"
    statuses = [r["status"] for r in sandbox.control.requests(provider="anthropic")]
    assert statuses == [529, 200]


async def test_anthropic_rate_limit_with_retry_after(sandbox):
    sandbox.control.fault("anthropic", 429, retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as e:
        await claude(sandbox, max_retries=0).messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.response.headers["retry-after"] == "7"
    assert e.value.body["error"]["type"] == "rate_limit_error"
    sandbox.control.fault("anthropic", 500)
    with pytest.raises(anthropic.InternalServerError) as e:
        await claude(sandbox, max_retries=0).messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 500 and e.value.body["error"]["type"] == "api_error"


async def test_anthropic_delay_fault_times_the_client_out(sandbox):
    sandbox.control.fault("anthropic", delay_seconds=2)
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        await claude(sandbox, max_retries=0, timeout=0.3).messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert time.monotonic() - started < 1.5


async def test_anthropic_mid_stream_error_event(sandbox):
    sandbox.control.fault("anthropic", 529, after_chunks=2)
    got = []
    with pytest.raises(anthropic.APIStatusError) as e:
        async with claude(sandbox).messages.stream(
            model="claude-sonnet-4-6", max_tokens=100, system=SYSTEM, messages=[{"role": "user", "content": "go on"}]
        ) as stream:
            async for text in stream.text_stream:
                got.append(text)
    assert "".join(got) == "Bruce Wayne "
    assert "overloaded_error" in str(e.value)


async def test_stream_latency_per_token(sandbox):
    sandbox.control.latency("anthropic", per_token_seconds=0.05)
    started = time.monotonic()
    async with claude(sandbox).messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        system=SYSTEM,
        messages=[{"role": "user", "content": "one two three four"}],
    ) as s:
        stamps = [time.monotonic() - started async for _ in s.text_stream]
    assert len(stamps) == 9
    assert stamps[-1] - stamps[0] >= 8 * 0.05 * 0.9


# ------------------------------------------------------------------------------------------ OpenAI


async def test_openai_create_in_character(sandbox):
    r = await oai(sandbox).chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are Naruto Uzumaki from the Hidden Leaf."},
            {"role": "user", "content": "Believe it?"},
        ],
    )
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.content == "Naruto Uzumaki here. You said: Believe it?"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 7 and r.usage.total_tokens == r.usage.prompt_tokens + 7
    assert r.system_fingerprint == "fp_sandbox_openai"


async def test_openai_stream_with_usage_chunk(sandbox):
    stream = await oai(sandbox).chat.completions.create(
        model="gpt-4o",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Where is Alfred?"}],
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Bruce Wayne here. You said: Where is Alfred?"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert all(c.usage is None for c in chunks[:-1])
    # and the wire ends with data: [DONE]
    async with httpx.AsyncClient() as http:
        r = await http.post(
            sandbox.url("/openai/v1/chat/completions"),
            headers={"Authorization": "Bearer k"},
            json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        )
    lines = [line for line in r.text.splitlines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


async def test_openai_follow_up_questions_json(sandbox):
    r = await oai(sandbox).chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": SYSTEM + " Suggest 3 follow-up questions as a JSON array of strings."},
            {"role": "user", "content": "I saw the Joker tonight"},
        ],
    )
    questions = json.loads(r.choices[0].message.content)
    assert isinstance(questions, list) and len(questions) == 3 and all(q.endswith("?") for q in questions)
    r = await oai(sandbox).chat.completions.create(
        model="gpt-4o",
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give follow-up questions in JSON"}],
    )
    assert len(json.loads(r.choices[0].message.content)["questions"]) == 3


async def test_openai_image_url_parts(sandbox):
    data_url = "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()
    r = await oai(sandbox).chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content.endswith("I can see the image you sent.")
    with pytest.raises(openai.BadRequestError) as e:
        await oai(sandbox).chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://nope"}}]}],
        )
    assert e.value.code == "invalid_image_url"


async def test_openai_compatible_providers_are_tagged(sandbox):
    msgs = [{"role": "user", "content": "hello"}]
    groq = await oai(sandbox, "/groq/openai/v1").chat.completions.create(model="llama-3.3-70b-versatile", messages=msgs)
    deep = await oai(sandbox, "/deepseek/v1").chat.completions.create(model="deepseek-chat", messages=msgs)
    gem = await oai(sandbox, "/gemini/v1beta/openai").chat.completions.create(model="gemini-2.5-flash", messages=msgs)
    assert [x.system_fingerprint for x in (groq, deep, gem)] == [
        "fp_sandbox_groq",
        "fp_sandbox_deepseek",
        "fp_sandbox_gemini",
    ]
    assert [r["provider"] for r in sandbox.control.requests()] == ["groq", "deepseek", "gemini"]
    sandbox.control.config(tag_replies=True)
    tagged = await oai(sandbox, "/groq/openai/v1").chat.completions.create(model="llama-3.1-8b-instant", messages=msgs)
    assert tagged.choices[0].message.content.endswith("[via groq]")
    # each provider only knows its own models, and Gemini answers errors as a list like the real one
    with pytest.raises(openai.NotFoundError):
        await oai(sandbox, "/deepseek/v1").chat.completions.create(model="gpt-4o", messages=msgs)
    with pytest.raises(openai.NotFoundError) as e:
        await oai(sandbox, "/gemini/v1beta/openai").chat.completions.create(model="gpt-4o", messages=msgs)
    assert e.value.body[0]["error"]["status"] == "NOT_FOUND"


async def test_openai_faults(sandbox):
    sandbox.control.fault("openai", 500)
    with pytest.raises(openai.InternalServerError) as e:
        await oai(sandbox, max_retries=0).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 500 and e.value.type == "server_error"
    sandbox.control.fault("openai", delay_seconds=2)
    with pytest.raises(openai.APITimeoutError):
        await oai(sandbox, max_retries=0, timeout=0.3).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    sandbox.control.fault("groq", 429, retry_after=3)
    with pytest.raises(openai.RateLimitError) as e:
        await oai(sandbox, "/groq/openai/v1", max_retries=0).chat.completions.create(
            model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.response.headers["retry-after"] == "3"
    sandbox.control.fault("openai", 500, after_chunks=1)
    with pytest.raises(openai.APIError):
        stream = await oai(sandbox).chat.completions.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": "x"}]
        )
        async for _ in stream:
            pass
    async with httpx.AsyncClient() as http:
        r = await http.post(sandbox.url("/openai/v1/chat/completions"), json={"model": "gpt-4o", "messages": []})
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"


async def test_openai_models_list(sandbox):
    models = await oai(sandbox).models.list()
    assert "gpt-4o" in [m.id for m in models.data]


async def test_transcription_round_trips_sandbox_audio(sandbox):
    client = oai(sandbox)
    wav = audio.make_wav("I am the night")
    t = await client.audio.transcriptions.create(model="whisper-1", file=("note.wav", wav, "audio/wav"))
    assert t.text == "I am the night"
    plain = audio.make_wav()  # a WAV made without text: the default phrase
    t = await client.audio.transcriptions.create(model="whisper-1", file=("plain.wav", plain, "audio/wav"))
    assert t.text == audio.DEFAULT_TRANSCRIPT
    other = await client.audio.transcriptions.create(model="whisper-1", file=("clip.webm", b"\x1a\x45\xdf\xa3" * 100))
    assert other.text == "Sandbox transcription of clip.webm (400 bytes)."
    text = await client.audio.transcriptions.create(model="whisper-1", file=("n.wav", wav), response_format="text")
    assert text.strip() == "I am the night"
    sandbox.control.queue_transcripts("queued words")
    q = await client.audio.transcriptions.create(model="whisper-1", file=("n.wav", wav))
    assert q.text == "queued words"
    with pytest.raises(openai.BadRequestError):
        await client.audio.transcriptions.create(model="whisper-1", file=("notes.txt", b"hello"))
    form = sandbox.control.requests(path="/audio/transcriptions")[0]["body"]
    assert form["file"] == {"filename": "note.wav", "content_type": "audio/wav", "size": len(wav)}
    assert form["model"] == "whisper-1"


async def test_speech_returns_real_audio(sandbox):
    client = oai(sandbox)
    mp3 = await client.audio.speech.create(model="tts-1", voice="alloy", input="Why so serious?")
    assert mp3.response.headers["content-type"] == "audio/mpeg"
    data = mp3.content
    assert data[:3] == b"ID3" and b"\xff\xfb\x94\xc0" in data
    wav = await client.audio.speech.create(model="tts-1", voice="nova", input="Why so serious?", response_format="wav")
    assert wav.response.headers["content-type"] == "audio/wav" and wav.content[:4] == b"RIFF"
    # speech -> transcription round trip
    t = await client.audio.transcriptions.create(model="whisper-1", file=("s.mp3", data, "audio/mpeg"))
    assert t.text == "Why so serious?"
    with pytest.raises(openai.BadRequestError):
        await client.audio.speech.create(model="tts-1", voice="batman", input="x")


async def test_openai_reasoning_models_refuse_max_tokens(sandbox):
    client = oai(sandbox)
    with pytest.raises(openai.BadRequestError) as e:
        await client.chat.completions.create(
            model="gpt-5-mini", max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.code == "unsupported_parameter" and e.value.param == "max_tokens"
    ok = await client.chat.completions.create(
        model="gpt-5-mini", max_completion_tokens=3, messages=[{"role": "user", "content": "x y z"}]
    )
    assert ok.choices[0].finish_reason == "length" and ok.usage.completion_tokens == 3
