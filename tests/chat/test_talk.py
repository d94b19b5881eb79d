"""POST /talk_with end to end: real PostgreSQL, Redis, RabbitMQ; LLMs, TMDB and Wikipedia as local
protocol servers."""
import pytest


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
    assert created[0].data["character"] == "Batman"
    assert sent[0].data["message_id"] == body["message_id"]
    assert sent[0].data["output_tokens"] > 0 and sent[0].data["input_tokens"] > 0
    rows = await chat_db.fetch("SELECT sender, role, content, metadata, status FROM messages WHERE conversation_id = $1 ORDER BY seq", body["conversation_id"])
    assert [(r["sender"], r["role"]) for r in rows] == [("user", "user"), ("Batman", "assistant")]
    meta = rows[1]["metadata"]
    import json
    meta = json.loads(meta) if isinstance(meta, str) else meta
    assert meta["model"] and meta["provider"] and meta["latency_ms"] >= 0 and meta["output_tokens"] > 0
    # The character context came from TMDB and Wikipedia.
    calls = await llm_sandbox.requests(provider="anthropic", path="/v1/messages")
    system = calls[0]["body"]["system"]
    assert "Christian Bale" in system and "The Dark Knight" in system and "Bruce Wayne" in system
