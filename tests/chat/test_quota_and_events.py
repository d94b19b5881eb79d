"""Quotas through Payment's reserve/settle functions, and the events the service consumes."""

import asyncio

from shared.bus import EventPublisher
from shared.events import make_event


async def publish(service_env, event_type, user_id, data):
    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events", name="test-publisher")
    try:
        event = make_event(event_type, user_id, data)
        await publisher.publish(event)
        return event
    finally:
        await publisher.close()


async def new_conversation(client, user, n=0):
    return await client.post("/talk_with", json={"message": f"hello #{n}", "character": "Batman"}, headers=user.headers)


async def test_sixth_new_conversation_on_free_is_402(chat, new_user, chat_db):
    user = new_user()
    for i in range(5):
        r = await new_conversation(chat, user, i)
        assert r.status_code == 200, r.text
        assert r.json()["remaining_quota"] == 4 - i
    r = await new_conversation(chat, user, 6)
    assert r.status_code == 402
    detail = r.json()["detail"]
    assert detail["code"] == "INSUFFICIENT_QUOTA" and detail["quota_type"] == "regular" and detail["remaining"] == 0
    assert detail["reset_at"]
    assert await chat_db.fetchval("SELECT count(*) FROM conversations WHERE user_id = $1", user.id) == 5
    # Continuing an existing conversation is still free.
    cid = await chat_db.fetchval("SELECT id::text FROM conversations WHERE user_id = $1 LIMIT 1", user.id)
    r = await chat.post(
        "/talk_with",
        json={"message": "still here?", "character": "Batman", "conversation_id": cid},
        headers=user.headers,
    )
    assert r.status_code == 200 and r.json()["remaining_quota"] == 0


async def test_twenty_concurrent_new_conversations_with_five_left_give_exactly_five(chat, new_user, chat_db, core_db):
    user = new_user()
    results = await asyncio.gather(*(new_conversation(chat, user, i) for i in range(20)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 5 and codes.count(402) == 15, codes
    assert await chat_db.fetchval("SELECT count(*) FROM conversations WHERE user_id = $1", user.id) == 5
    assert await core_db.fetchval("SELECT quota FROM user_quotas WHERE user_id = $1", user.id) == 0
    held = await core_db.fetchval(
        "SELECT count(*) FROM quota_reservations WHERE user_id = $1 AND state = 'held'", user.id
    )
    assert held == 0


async def test_upgrade_event_lifts_the_limit_on_the_next_request_with_the_same_token(
    chat, new_user, service_env, core_db, eventually, subscribe
):
    user = new_user()  # the token says free, and keeps saying it
    for i in range(5):
        assert (await new_conversation(chat, user, i)).status_code == 200
    assert (await new_conversation(chat, user, 5)).status_code == 402
    r = await chat.post(
        "/talk_with", json={"message": "hi", "character": "Batman", "model": "claude-sonnet-4-6"}, headers=user.headers
    )
    assert r.status_code == 402 and r.json()["detail"]["code"] == "INSUFFICIENT_TIER"
    # Payment records the subscription and applies the new allowances, then publishes the event.
    await subscribe(user.id, 1)
    await publish(service_env, "subscription.upgraded", user.id, {"tier": 1, "previous_tier": 0})
    redis = chat.app.state.redis
    key = chat.app.state.keys("tier", user.id)
    await eventually(lambda: _is(redis, key, "1"), timeout=10)
    r = await new_conversation(chat, user, 7)
    assert r.status_code == 200, r.text
    assert r.json()["remaining_quota"] == -1  # unlimited conversations on Pro
    r = await chat.post(
        "/talk_with", json={"message": "hi", "character": "Batman", "model": "claude-sonnet-4-6"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["quota"] == {"type": "premium", "remaining": 99, "reset_at": r.json()["quota"]["reset_at"]}


async def test_downgrade_event_closes_premium_models(chat, new_user, service_env, core_db, eventually, subscribe):
    user = new_user(tier=1)
    await subscribe(user.id, 1)
    r = await chat.post(
        "/talk_with", json={"message": "hi", "character": "Batman", "model": "claude-sonnet-4-6"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    cid = r.json()["conversation_id"]
    await core_db.execute("UPDATE subscriptions SET status = 'canceled' WHERE user_id = $1", user.id)
    await publish(service_env, "subscription.cancelled", user.id, {"tier": 0})
    key = chat.app.state.keys("tier", user.id)
    await eventually(lambda: _is(chat.app.state.redis, key, "0"), timeout=10)
    r = await chat.post(
        "/talk_with", json={"message": "hi", "character": "Batman", "model": "claude-sonnet-4-6"}, headers=user.headers
    )
    assert r.status_code == 402 and r.json()["detail"]["code"] == "INSUFFICIENT_TIER"
    # The premium conversation goes on, on the default model, instead of being locked.
    r = await chat.post(
        "/talk_with",
        json={"message": "still there?", "character": "Batman", "conversation_id": cid},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "claude-haiku-4-5"


async def _is(redis, key, value):
    return await redis.get(key) == value


async def test_quota_event_drops_the_cached_quota(chat, new_user, service_env, eventually):
    user = new_user()
    state = chat.app.state
    await state.quota.remaining(user.id)  # cached now
    key = state.keys("quota", user.id)
    assert await state.redis.exists(key)
    await publish(service_env, "quota.updated", user.id, {"reason": "referral"})
    await eventually(lambda: _gone(state.redis, key), timeout=10)


async def _gone(redis, key):
    return not await redis.exists(key)


async def test_user_deleted_erases_conversations_messages_and_reactions(
    chat, new_user, service_env, chat_db, eventually
):
    user, other = new_user(), new_user()
    r = await new_conversation(chat, user)
    mid = r.json()["message_id"]
    assert (
        await chat.post(f"/messages/{mid}/reactions", json={"reaction": "like"}, headers=user.headers)
    ).status_code == 200
    await chat.post(
        "/group_chat",
        json={"characters": [{"name": "Batman"}, {"name": "Joker"}], "message": "Hi both"},
        headers=user.headers,
    )
    kept = await new_conversation(chat, other)
    assert await chat_db.fetchval("SELECT count(*) FROM messages WHERE user_id = $1", user.id) >= 4
    await publish(service_env, "user.deleted", user.id, {})

    async def erased():
        n = await chat_db.fetchval(
            "SELECT (SELECT count(*) FROM conversations WHERE user_id = $1) + (SELECT count(*) "
            "FROM messages WHERE user_id = $1)"
            " + (SELECT count(*) FROM message_reactions WHERE user_id = $1)",
            user.id,
        )
        return n == 0

    await eventually(erased, timeout=10)
    assert (
        await chat_db.fetchval("SELECT count(*) FROM conversations WHERE id = $1", kept.json()["conversation_id"]) == 1
    )
