"""Server-sent events from /talk_with, through a real uvicorn server (a real socket is needed to
see a client go away)."""

import json

import httpx
import pytest


async def sse(response):
    """Yield (event, data) frames; comments come as ("comment", text)."""
    event, data = None, []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and event:
            yield event, json.loads("\n".join(data))
            event, data = None, []


@pytest.fixture(scope="module")
async def server(serve_chat):
    async with serve_chat() as (url, app):
        yield url, app


async def test_stream_sends_tokens_then_one_done(server, new_user, chat_db):
    url, _ = server
    user = new_user()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/talk_with",
            json={
                "message": "Tell me about Gotham",
                "character": "Batman",
                "series": "The Dark Knight",
                "stream": True,
            },
            headers=user.headers,
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            frames = [f async for f in sse(r)]
    tokens = [d["text"] for e, d in frames if e == "token"]
    done = [d for e, d in frames if e == "done"]
    assert len(tokens) > 3 and len(done) == 1 and frames[-1][0] == "done"
    body = done[0]
    assert "".join(tokens) == body["response"] == "Batman here. You said: Tell me about Gotham"
    assert body["usage"]["output_tokens"] == len(tokens)
    assert body["remaining_quota"] == 4 and len(body["follow_up_questions"]) >= 2
    row = await chat_db.fetchrow("SELECT content, status FROM messages WHERE id = $1", body["message_id"])
    assert row["content"] == body["response"] and row["status"] == "complete"


async def test_accept_header_asks_for_a_stream_and_heartbeats_fill_the_wait(server, new_user, llm_sandbox):
    url, _ = server
    await llm_sandbox.latency(provider="anthropic", first_token_seconds=1.3)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/talk_with",
            json={"message": "hi", "character": "Batman"},
            headers={**new_user().headers, "Accept": "text/event-stream"},
        ) as r:
            frames = [f async for f in sse(r)]
    kinds = [k for k, _ in frames]
    assert kinds[0] == "comment" and "heartbeat" in frames[0][1]  # before the first token
    assert kinds[-1] == "done" and kinds.count("done") == 1


async def test_client_leaving_mid_stream_saves_the_partial_reply_and_spends_what_was_used(
    server, new_user, llm_sandbox, chat_db, core_db, eventually
):
    url, _ = server
    user = new_user()
    await llm_sandbox.latency(provider="anthropic", per_token_seconds=0.15)
    message = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    received = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream(
            "POST", "/talk_with", json={"message": message, "character": "Batman", "stream": True}, headers=user.headers
        ) as r:
            async for event, data in sse(r):
                if event == "token":
                    received.append(data["text"])
                    if len(received) == 4:
                        break  # leaving the block closes the connection
    assert len(received) == 4

    async def saved():
        return await chat_db.fetchrow(
            "SELECT m.content, m.status, m.metadata FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE c.user_id = $1 AND m.role = 'assistant'",
            user.id,
        )

    row = await eventually(saved, timeout=10)
    full = f"Batman here. You said: {message}"
    assert row["status"] == "incomplete"
    assert row["content"].startswith("".join(received)) and len(row["content"]) < len(full)
    user_msg = await chat_db.fetchval("SELECT content FROM messages WHERE user_id = $1 AND role = 'user'", user.id)
    assert user_msg == message
    # Tokens were produced, so the new conversation was spent; nothing is left held.
    assert await core_db.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", user.id) == 4
    assert (
        await core_db.fetchval("SELECT count(*) FROM quota_reservations WHERE user_id = $1 AND state = 'held'", user.id)
        == 0
    )


async def test_client_leaving_before_any_token_spends_nothing(
    server, new_user, llm_sandbox, chat_db, core_db, eventually
):
    url, _ = server
    user = new_user()
    await llm_sandbox.latency(provider="anthropic", first_token_seconds=3)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream(
            "POST", "/talk_with", json={"message": "hello", "character": "Batman", "stream": True}, headers=user.headers
        ) as r:
            async for event, _ in sse(r):
                assert event == "comment"
                break

    async def released():
        return (
            await core_db.fetchval(
                "SELECT count(*) FROM quota_reservations WHERE user_id = $1 AND state = 'released'", user.id
            )
            == 1
        )

    await eventually(released, timeout=10)
    assert await core_db.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", user.id) == 5
    assert await chat_db.fetchval("SELECT count(*) FROM conversations WHERE user_id = $1", user.id) == 0


async def test_stream_with_every_provider_down_ends_in_one_error(server, new_user, llm_sandbox, chat_db, core_db):
    url, _ = server
    user = new_user()
    await llm_sandbox.fault(provider="*", status=503, count=None)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream(
            "POST", "/talk_with", json={"message": "hello", "character": "Batman", "stream": True}, headers=user.headers
        ) as r:
            frames = [f async for f in sse(r) if f[0] != "comment"]
    assert [k for k, _ in frames] == ["error"] and frames[0][1]["code"] == "LLM_UNAVAILABLE"
    assert await chat_db.fetchval("SELECT count(*) FROM conversations WHERE user_id = $1", user.id) == 0
    assert await core_db.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", user.id) == 5


async def test_stream_falls_back_before_the_first_token(server, new_user, llm_sandbox):
    url, _ = server
    await llm_sandbox.fault(provider="anthropic", status=529, count=None)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/talk_with",
            json={"message": "hello", "character": "Batman", "stream": True},
            headers=new_user().headers,
        ) as r:
            frames = [f async for f in sse(r) if f[0] != "comment"]
    done = frames[-1][1]
    assert frames[-1][0] == "done" and done["provider"] == "openai"
    assert "".join(d["text"] for e, d in frames if e == "token") == done["response"]


async def test_model_failing_mid_stream_keeps_the_part_and_charges_nothing(
    server, new_user, llm_sandbox, chat_db, core_db
):
    url, _ = server
    user = new_user()
    await llm_sandbox.fault(provider="anthropic", status=529, after_chunks=3, count=1)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream(
            "POST",
            "/talk_with",
            json={"message": "a b c d e f g h", "character": "Batman", "stream": True},
            headers=user.headers,
        ) as r:
            frames = [f async for f in sse(r) if f[0] != "comment"]
    assert frames[-1][0] == "error" and frames[-1][1]["code"] == "LLM_STREAM_INTERRUPTED"
    part = "".join(d["text"] for e, d in frames if e == "token")
    row = await chat_db.fetchrow("SELECT content, status FROM messages WHERE id = $1", frames[-1][1]["message_id"])
    assert row["content"] == part and row["status"] == "incomplete"
    assert await core_db.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", user.id) == 5
