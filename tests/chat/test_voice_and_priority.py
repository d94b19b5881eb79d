"""Voice through the OpenAI SDK (speech and transcription), and Max-tier priority in the router."""
import asyncio
import time

from sandbox import audio


async def test_speak_then_transcribe_round_trip(chat, new_user, llm_sandbox):
    user = new_user()
    r = await chat.post("/voice/speak", json={"text": "I am vengeance", "voice": "onyx"}, headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/mpeg" and len(r.content) > 100
    speech = (await llm_sandbox.requests(provider="openai", path="/audio/speech"))[0]["body"]
    assert speech["voice"] == "onyx" and speech["input"] == "I am vengeance" and speech["model"] == "tts-1"
    r = await chat.post("/voice/transcribe", files={"file": ("clip.mp3", r.content, "audio/mpeg")}, headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"text": "I am vengeance"}
    wav = audio.make_wav("Why so serious")
    r = await chat.post("/voice/transcribe", files={"file": ("clip.wav", wav, "audio/wav")}, headers=user.headers)
    assert r.json() == {"text": "Why so serious"}


async def test_voice_input_limits(make_client, chat_env, new_user):
    user = new_user()
    async with make_client("chat", **chat_env, VOICE_MAX_BYTES="2000") as client:
        r = await client.post("/voice/transcribe", files={"file": ("notes.txt", b"hello", "text/plain")}, headers=user.headers)
        assert r.status_code == 415 and r.json()["detail"]["code"] == "UNSUPPORTED_AUDIO_TYPE"
        big = audio.make_wav("a long speech " * 20)
        assert len(big) > 2000
        r = await client.post("/voice/transcribe", files={"file": ("big.wav", big, "audio/wav")}, headers=user.headers)
        assert r.status_code == 413 and r.json()["detail"]["code"] == "AUDIO_TOO_LARGE"
        r = await client.post("/voice/transcribe", files={"file": ("empty.wav", b"", "audio/wav")}, headers=user.headers)
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


async def test_max_tier_is_not_queued_behind_others(make_client, chat_env, new_user, subscribe, llm_sandbox):
    free_a, free_b, max_user = new_user(), new_user(), new_user(tier=2)
    await subscribe(max_user.id, 2)
    async with make_client("chat", **chat_env, LLM_MAX_CONCURRENCY="1", CHAT_FOLLOW_UPS="template") as client:
        # free-a holds the only slot for 1.5 s: time for the others to queue even on a busy machine
        await llm_sandbox.latency(provider="anthropic", first_token_seconds=1.5)
        finished: list[tuple[str, float]] = []

        async def send(name, user, delay):
            await asyncio.sleep(delay)
            r = await client.post("/talk_with", json={"message": name, "character": "Batman"}, headers=user.headers)
            assert r.status_code == 200, r.text
            finished.append((name, time.monotonic()))

        await asyncio.gather(send("free-a", free_a, 0), send("free-b", free_b, 0.15), send("max", max_user, 0.3))
    order = [name for name, _ in finished]
    # free-a held the only slot; free-b queued first, but the Max request went ahead of it.
    assert order == ["free-a", "max", "free-b"], order
