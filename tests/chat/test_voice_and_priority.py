"""Voice through the OpenAI SDK (speech and transcription), and Max-tier priority in the router."""

import asyncio
import json

from sandbox import audio


async def test_speak_then_transcribe_round_trip(chat, new_user, llm_sandbox):
    user = new_user()
    r = await chat.post("/voice/speak", json={"text": "I am vengeance", "voice": "onyx"}, headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/mpeg" and len(r.content) > 100
    speech = (await llm_sandbox.requests(provider="openai", path="/audio/speech"))[0]["body"]
    assert speech["voice"] == "onyx" and speech["input"] == "I am vengeance" and speech["model"] == "tts-1"
    r = await chat.post(
        "/voice/transcribe", files={"file": ("clip.mp3", r.content, "audio/mpeg")}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"text": "I am vengeance"}
    wav = audio.make_wav("Why so serious")
    r = await chat.post("/voice/transcribe", files={"file": ("clip.wav", wav, "audio/wav")}, headers=user.headers)
    assert r.json() == {"text": "Why so serious"}


async def test_voice_input_limits(make_client, chat_env, new_user):
    user = new_user()
    async with make_client("chat", **chat_env, VOICE_MAX_BYTES="2000") as client:
        r = await client.post(
            "/voice/transcribe", files={"file": ("notes.txt", b"hello", "text/plain")}, headers=user.headers
        )
        assert r.status_code == 415 and r.json()["detail"]["code"] == "UNSUPPORTED_AUDIO_TYPE"
        big = audio.make_wav("a long speech " * 20)
        assert len(big) > 2000
        r = await client.post("/voice/transcribe", files={"file": ("big.wav", big, "audio/wav")}, headers=user.headers)
        assert r.status_code == 413 and r.json()["detail"]["code"] == "AUDIO_TOO_LARGE"
        r = await client.post(
            "/voice/transcribe", files={"file": ("empty.wav", b"", "audio/wav")}, headers=user.headers
        )
        assert r.status_code == 422 and r.json()["detail"]["code"] == "EMPTY_AUDIO"
        r = await client.post("/voice/speak", json={"text": "x" * 5000}, headers=user.headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "TEXT_TOO_LONG"
        r = await client.post("/voice/speak", json={"text": "hi", "voice": "darth"}, headers=user.headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "UNKNOWN_VOICE"
        r = await client.post("/voice/speak", json={"text": "hi"})
        assert r.status_code == 401


async def test_voice_provider_down_is_503(chat, new_user, llm_sandbox):
    await llm_sandbox.fault(provider="openai", status=503, path="/audio/speech", count=None)
    r = await chat.post("/voice/speak", json={"text": "hello"}, headers=new_user().headers)
    assert r.status_code == 503 and r.json()["detail"]["code"] == "VOICE_UNAVAILABLE"


async def test_max_tier_is_not_queued_behind_others(
    make_client, chat_env, new_user, subscribe, eventually, llm_sandbox
):
    """The only LLM slot is taken; a free request queues first, a Max request after it. Each step
    is confirmed (the slot held, then one waiter, then two) before the next, so the order the
    requests are served in does not depend on how fast anything runs."""
    free_user, max_user = new_user(), new_user(tier=2)
    await subscribe(max_user.id, 2)
    async with make_client("chat", **chat_env, LLM_MAX_CONCURRENCY="1", CHAT_FOLLOW_UPS="template") as client:
        slots = client.app.state.llm.providers["anthropic"].slots
        await slots.acquire()  # a request in progress holds the only slot

        async def send(name, user):
            r = await client.post("/talk_with", json={"message": name, "character": "Batman"}, headers=user.headers)
            assert r.status_code == 200, r.text

        calls = [asyncio.ensure_future(send("free", free_user))]
        await eventually(lambda: slots.waiting == 1)
        calls.append(asyncio.ensure_future(send("max", max_user)))
        await eventually(lambda: slots.waiting == 2)
        slots.release()  # the request in progress ends: the slot goes to the best waiter
        await asyncio.gather(*calls)
    # The free request queued first, but the Max request reached the provider first (with one
    # slot, the second call starts only after the first one has ended).
    calls = await llm_sandbox.requests(provider="anthropic", path="/v1/messages")
    sent = [json.dumps(r["body"]["messages"][-1]) for r in calls]
    order = [name for text in sent for name in ("free", "max") if f'"{name}"' in text]
    assert order == ["max", "free"], sent
