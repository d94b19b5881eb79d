"""POST /talk_with end to end: real PostgreSQL, Redis, RabbitMQ; LLMs, TMDB and Wikipedia as local
protocol servers (sandbox)."""

import asyncio
import base64
import json

import pytest

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64).decode()


def meta(row):
    m = row["metadata"]
    return json.loads(m) if isinstance(m, str) else m


async def test_talk_with_creates_conversation_and_saves_both_messages(chat, new_user, chat_db, event_spy, llm_sandbox):
    user = new_user()
    async with event_spy(["conversation.*", "message.*"]) as spy:
        r = await chat.post(
            "/talk_with",
            json={"message": "Why do you wear a mask?", "character": "Batman", "series": "The Dark Knight"},
            headers=user.headers,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["response"].startswith("Batman here. You said: Why do you wear a mask?")
        assert 2 <= len(body["follow_up_questions"]) <= 3
        assert all(q.strip() for q in body["follow_up_questions"])
        assert body["remaining_quota"] == 4  # free: 5 new conversations a day, one spent
        created = await spy.wait_for("conversation.created", conversation_id=body["conversation_id"])
        sent = await spy.wait_for("message.sent", conversation_id=body["conversation_id"])
    assert created[0].data["character"] == "Batman" and created[0].data["type"] == "single"
    assert created[0].user_id == user.id
    assert sent[0].data["message_id"] == body["message_id"]
    assert (
        sent[0].data["output_tokens"] > 0
        and sent[0].data["input_tokens"] > 0
        and sent[0].data["quota_type"] == "regular"
    )
    rows = await chat_db.fetch(
        "SELECT sender, role, content, metadata, status FROM messages WHERE conversation_id = $1 ORDER BY seq",
        body["conversation_id"],
    )
    assert [(r["sender"], r["role"]) for r in rows] == [("user", "user"), ("Batman", "assistant")]
    m = meta(rows[1])
    assert (
        m["model"] == "claude-haiku-4-5"
        and m["provider"] == "anthropic"
        and m["latency_ms"] >= 0
        and m["output_tokens"] > 0
    )
    # The character context came from TMDB (actor, film) and Wikipedia (biography).
    calls = await llm_sandbox.requests(provider="anthropic", path="/v1/messages")
    system = calls[0]["body"]["system"]
    assert "Christian Bale" in system and "The Dark Knight" in system and "Bruce Wayne" in system

    # A second message in the same conversation spends nothing and carries the history.
    r2 = await chat.post(
        "/talk_with",
        json={"message": "And the Joker?", "character": "Batman", "conversation_id": body["conversation_id"]},
        headers=user.headers,
    )
    assert r2.status_code == 200, r2.text
    assert r2.json()["remaining_quota"] == 4
    calls = await llm_sandbox.requests(provider="anthropic", path="/v1/messages")
    replay = [c for c in calls if any("And the Joker?" in json.dumps(m) for m in c["body"]["messages"])]
    msgs = replay[0]["body"]["messages"]
    assert "Why do you wear a mask?" in json.dumps(msgs[0]) and msgs[1]["role"] == "assistant"


@pytest.mark.parametrize(
    "model,provider,provider_model",
    [
        ("claude-haiku-4-5", "anthropic", "claude-haiku-4-5-20251001"),
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("llama-3.3-70b", "groq", "llama-3.3-70b-versatile"),
        ("deepseek-chat", "deepseek", "deepseek-chat"),
        ("gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
    ],
)
async def test_each_provider_family(chat, new_user, llm_sandbox, model, provider, provider_model):
    user = new_user()
    r = await chat.post(
        "/talk_with",
        json={"message": "Hello there", "character": "Luke Skywalker", "series": "Star Wars", "model": model},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == model and body["provider"] == provider
    assert body["response"].startswith("Luke Skywalker here. You said: Hello there")
    calls = await llm_sandbox.requests(provider=provider)
    chat_calls = [c for c in calls if c["path"].endswith(("/v1/messages", "/chat/completions"))]
    assert chat_calls and chat_calls[0]["body"]["model"] == provider_model
    # The follow-up questions came from the model, not the template.
    assert len(chat_calls) == 2 and body["follow_up_questions"][0] == "What would you do next?"


@pytest.mark.parametrize(
    "payload,code",
    [
        ({"message": "   ", "character": "Batman"}, "EMPTY_MESSAGE"),
        ({"message": "x" * 8001, "character": "Batman"}, "MESSAGE_TOO_LONG"),
        ({"message": "hi", "character": "Batman", "model": "gpt-17-ultra"}, "UNKNOWN_MODEL"),
        (
            {
                "message": "hi",
                "character": "Batman",
                "attachments": [{"data": base64.b64encode(b"not an image").decode()}],
            },
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            {"message": "hi", "character": "Batman", "attachments": [{"url": "https://x/a.png"}] * 5},
            "TOO_MANY_ATTACHMENTS",
        ),
        ({"message": "hi", "character": ""}, "VALIDATION_ERROR"),
    ],
)
async def test_bad_input_is_a_clear_422_and_changes_nothing(chat, new_user, chat_db, core_db, payload, code):
    user = new_user()
    r = await chat.post("/talk_with", json=payload, headers=user.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["code"] == code
    assert await chat_db.fetchval("SELECT count(*) FROM conversations WHERE user_id = $1", user.id) == 0
    assert await core_db.fetchval("SELECT count(*) FROM quota_reservations WHERE user_id = $1", user.id) == 0


async def test_message_limit_is_configurable(make_client, chat_env, new_user):
    user = new_user()
    async with make_client("chat", **chat_env, CHAT_MAX_MESSAGE_CHARS="20") as client:
        r = await client.post("/talk_with", json={"message": "x" * 21, "character": "Batman"}, headers=user.headers)
        assert r.status_code == 422 and r.json()["detail"]["max_chars"] == 20


async def test_premium_model_on_free_is_402_insufficient_tier(chat, new_user):
    r = await chat.post(
        "/talk_with",
        json={"message": "hi", "character": "Batman", "model": "claude-sonnet-4-6"},
        headers=new_user().headers,
    )
    assert r.status_code == 402
    assert r.json()["detail"]["code"] == "INSUFFICIENT_TIER" and r.json()["detail"]["required_tier"] == 1


async def test_premium_model_spends_premium_on_pro(chat, new_user, subscribe):
    user = new_user(tier=1)
    await subscribe(user.id, 1)
    r = await chat.post(
        "/talk_with", json={"message": "hi", "character": "Batman", "model": "claude-sonnet-4-6"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["quota"]["type"] == "premium" and r.json()["remaining_quota"] == 99


async def test_unauthenticated_is_401(chat):
    r = await chat.post("/talk_with", json={"message": "hi", "character": "Batman"})
    assert r.status_code == 401 and r.json()["detail"]["code"] == "NOT_AUTHENTICATED"


async def test_legacy_prefix(chat, new_user):
    r = await chat.post(
        "/api/chat/talk_with", json={"message": "hi", "character": "Batman"}, headers=new_user().headers
    )
    assert r.status_code == 200, r.text


async def test_another_users_conversation_is_invisible(chat, new_user):
    owner, other = new_user(), new_user()
    r = await chat.post(
        "/talk_with",
        json={"message": "secret plans", "character": "Joker", "series": "The Dark Knight"},
        headers=owner.headers,
    )
    cid, mid = r.json()["conversation_id"], r.json()["message_id"]
    for method, path, body in [
        ("GET", f"/conversations/{cid}", None),
        ("DELETE", f"/conversations/{cid}", None),
        ("GET", f"/conversations/{cid}/export?format=txt", None),
        ("POST", f"/conversations/{cid}/regenerate", None),
        ("POST", f"/conversations/{cid}/share", None),
        ("POST", "/talk_with", {"message": "hi", "character": "Joker", "conversation_id": cid}),
        ("PATCH", f"/messages/{mid}", {"content": "mine now"}),
        ("DELETE", f"/messages/{mid}", None),
        ("POST", f"/messages/{mid}/pin", None),
        ("POST", f"/messages/{mid}/reactions", {"reaction": "like"}),
    ]:
        resp = await chat.request(method, path, json=body, headers=other.headers)
        assert resp.status_code == 404, (method, path, resp.text)
    listing = await chat.get("/conversations", headers=other.headers)
    assert listing.json()["conversations"] == []
    assert (await chat.get(f"/conversations/{cid}", headers=owner.headers)).status_code == 200
    # A malformed id is a 404 too, not a 500.
    assert (await chat.get("/conversations/not-a-uuid", headers=owner.headers)).status_code == 404


async def test_llm_down_is_503_nothing_saved_quota_released(chat, new_user, chat_db, llm_sandbox):
    user = new_user()
    await llm_sandbox.fault(provider="*", status=503, count=None)
    r = await chat.post("/talk_with", json={"message": "hello?", "character": "Batman"}, headers=user.headers)
    assert r.status_code == 503, r.text
    assert r.json()["detail"]["code"] == "LLM_UNAVAILABLE"
    assert len(r.json()["detail"]["attempts"]) >= 3  # every configured provider was tried
    assert await chat_db.fetchval("SELECT count(*) FROM conversations WHERE user_id = $1", user.id) == 0
    q = await chat.get("/models", headers=user.headers)
    assert q.status_code == 200
    await llm_sandbox.reset()
    r = await chat.post("/talk_with", json={"message": "hello?", "character": "Batman"}, headers=user.headers)
    assert r.status_code == 200 and r.json()["remaining_quota"] == 4  # the failed try cost nothing


async def test_fallback_when_first_provider_is_overloaded(chat, new_user, llm_sandbox, chat_db):
    user = new_user()
    await llm_sandbox.fault(provider="anthropic", status=529, count=None)
    r = await chat.post(
        "/talk_with", json={"message": "hi", "character": "Batman", "model": "claude-haiku-4-5"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["provider"] == "openai" and body["model"] == "gpt-4o-mini"
    row = await chat_db.fetchrow("SELECT metadata FROM messages WHERE id = $1", body["message_id"])
    assert meta(row)["fallbacks"][0]["provider"] == "anthropic" and "529" in meta(row)["fallbacks"][0]["error"]


async def test_fallback_when_first_provider_times_out(make_client, chat_env, new_user, llm_sandbox):
    user = new_user()
    async with make_client("chat", **chat_env, LLM_TIMEOUT_SECONDS="0.5") as client:
        await llm_sandbox.fault(provider="anthropic", delay_seconds=3, count=None)
        r = await client.post("/talk_with", json={"message": "hi", "character": "Batman"}, headers=user.headers)
        assert r.status_code == 200, r.text
        assert r.json()["provider"] == "openai"


async def test_no_keys_means_503_and_a_loud_start(make_client, chat_env, new_user, capfd):
    env = {k: v for k, v in chat_env.items() if not k.endswith("_API_KEY") or k == "TMDB_API_KEY"}
    env.update(
        {k: "" for k in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GROQ_API_KEY", "DEEPSEEK_API_KEY", "GEMINI_API_KEY")}
    )
    async with make_client("chat", **env) as client:
        r = await client.post("/talk_with", json={"message": "hi", "character": "Batman"}, headers=new_user().headers)
        assert r.status_code == 503 and r.json()["detail"]["code"] == "LLM_UNAVAILABLE"
    out = capfd.readouterr()
    assert "NO LANGUAGE MODEL PROVIDER IS CONFIGURED" in out.out + out.err


async def test_context_sources_down_gives_a_plain_context(chat, new_user, llm_sandbox):
    await llm_sandbox.fault(provider="tmdb", status=500, count=None)
    await llm_sandbox.fault(provider="wikipedia", status=500, count=None)
    r = await chat.post(
        "/talk_with",
        json={"message": "hi", "character": "Walter White", "series": "Breaking Bad"},
        headers=new_user().headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["response"].startswith("Walter White here.")
    system = (await llm_sandbox.requests(provider="anthropic", path="/v1/messages"))[0]["body"]["system"]
    assert (
        system.startswith("You are Walter White, the character from Breaking Bad.") and "Bryan Cranston" not in system
    )


async def test_vision_spends_image_recognition(chat, new_user, core_db, llm_sandbox, subscribe):
    user = new_user(tier=1)
    await subscribe(user.id, 1)
    r = await chat.post(
        "/talk_with",
        json={
            "message": "What is this?",
            "character": "Batman",
            "model": "llama-3.3-70b",
            "attachments": [{"data": PNG, "media_type": "image/png"}],
        },
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert "I can see the image you sent" in body["response"]
    assert body["model"] != "llama-3.3-70b"  # not a vision model: a vision model answered
    snap = await core_db.fetchrow("SELECT quota_image_recognition FROM user_quotas WHERE user_id = $1", user.id)
    assert snap["quota_image_recognition"] == 9
    # Free users have no image recognition quota.
    free = new_user()
    r = await chat.post(
        "/talk_with",
        json={"message": "What is this?", "character": "Batman", "attachments": [{"url": "https://example.com/a.png"}]},
        headers=free.headers,
    )
    assert r.status_code == 402 and r.json()["detail"]["quota_type"] == "image_recognition"
    assert (await core_db.fetchrow("SELECT quota FROM user_quotas WHERE user_id = $1", free.id))[
        "quota"
    ] == 5  # regular given back


async def test_models_route(chat, new_user):
    r = await chat.get("/models", headers=new_user().headers)
    assert r.status_code == 200
    models = {m["id"]: m for m in r.json()["models"]}
    assert models["claude-haiku-4-5"]["allowed"] and not models["claude-sonnet-4-6"]["allowed"]
    assert r.json()["default_model"] == "claude-haiku-4-5"


async def test_images_as_multipart_uploads(chat, new_user, subscribe, core_db, llm_sandbox):
    user = new_user(tier=1)
    await subscribe(user.id, 1)
    png = base64.b64decode(PNG)
    r = await chat.post(
        "/talk_with/upload",
        data={"message": "What are these?", "character": "Batman"},
        files=[("images", ("a.png", png, "image/png")), ("images", ("b.png", png, "image/png"))],
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    assert "I can see the 2 images you sent" in r.json()["response"]
    call = (await llm_sandbox.requests(provider="anthropic", path="/v1/messages"))[0]
    blocks = call["body"]["messages"][-1]["content"]
    assert [b["type"] for b in blocks] == ["image", "image", "text"] and blocks[0]["source"][
        "media_type"
    ] == "image/png"
    assert await core_db.fetchval("SELECT quota_image_recognition FROM user_quotas WHERE user_id = $1", user.id) == 9
    r = await chat.post(
        "/talk_with/upload",
        data={"message": "And this?", "character": "Batman"},
        files=[("images", ("x.txt", b"plain text", "text/plain"))],
        headers=user.headers,
    )
    assert r.status_code == 422 and r.json()["detail"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_openapi_documents_the_chat_routes(chat):
    spec = (await chat.get("/openapi.json")).json()
    for path in [
        "/talk_with",
        "/talk_with/upload",
        "/group_chat",
        "/conversations",
        "/conversations/{conversation_id}/export",
        "/messages/{message_id}/reactions",
        "/voice/transcribe",
        "/voice/speak",
        "/models",
    ]:
        assert path in spec["paths"], path
    schema = spec["paths"]["/talk_with"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/TalkResponse")
    assert "follow_up_questions" in spec["components"]["schemas"]["TalkResponse"]["properties"]


async def test_context_sources_timing_out_do_not_hold_the_reply(make_client, chat_env, new_user, llm_sandbox):
    async with make_client("chat", **chat_env, CONTEXT_TIMEOUT_SECONDS="0.3") as client:
        # The sources answer after a minute; the reply must not wait for them. The bound below is
        # far above what a reply takes on a busy machine and far below the sources' delay.
        await llm_sandbox.fault(provider="tmdb", delay_seconds=60, count=None)
        await llm_sandbox.fault(provider="wikipedia", delay_seconds=60, count=None)
        started = asyncio.get_running_loop().time()
        r = await client.post(
            "/talk_with",
            json={"message": "hi", "character": "Sherlock Holmes", "series": "Sherlock"},
            headers=new_user().headers,
        )
        assert r.status_code == 200, r.text
        assert asyncio.get_running_loop().time() - started < 20
        assert r.json()["response"].startswith("Sherlock Holmes here.")


async def test_character_context_is_cached(chat, new_user, llm_sandbox):
    for _ in range(2):
        r = await chat.post(
            "/talk_with",
            json={"message": "hi", "character": "Naruto Uzumaki", "series": "Naruto"},
            headers=new_user().headers,
        )
        assert r.status_code == 200, r.text
    tmdb = await llm_sandbox.requests(provider="tmdb")
    wiki = await llm_sandbox.requests(provider="wikipedia")
    assert len(tmdb) == 2  # search + credits, once
    assert 1 <= len(wiki) <= 3  # the title candidates, once
    system = (await llm_sandbox.requests(provider="anthropic", path="/v1/messages"))[-2]["body"]["system"]
    assert system.startswith("You are Naruto Uzumaki") and "About you: Naruto Uzumaki is the title character" in system
