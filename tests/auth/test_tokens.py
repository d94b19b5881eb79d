"""Refresh rotation, reuse detection, logout, tiers from subscription events, and the tokens
being accepted by another service's shared validation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends

from shared.auth import CurrentUser, get_current_user, requires_tier
from shared.bus import EventPublisher
from shared.events import make_event
from shared.testing.env import TEST_JWT_SECRET
from tests.auth.conftest import bearer, sign_up
from tests.auth.test_signup import claims


async def test_refresh_rotates_and_reuse_revokes_the_family(client, outbox, db):
    done = await sign_up(client, outbox)
    first = done["refresh_token"]
    r = await client.post("/token/refresh", json={"refresh_token": first})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first and second["token_type"] == "bearer"
    assert claims(second["access_token"])["session_id"] == claims(done["access_token"])["session_id"]
    r = await client.post("/token/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 200
    third = r.json()

    # The first token again: someone replayed it. 401, and the whole session is revoked...
    r = await client.post("/token/refresh", json={"refresh_token": first})
    assert r.status_code == 401 and r.json()["detail"]["code"] == "REFRESH_TOKEN_REUSED"
    # ...so the newest token of that family stops working too.
    r = await client.post("/token/refresh", json={"refresh_token": third["refresh_token"]})
    assert r.status_code == 401
    # Tokens are stored hashed.
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens WHERE token_hash = $1", first.encode()) == 0
    # Another session of the same user is untouched.
    other = await client.post("/login", json={"email": done["email"], "password": done["password"]})
    r = await client.post("/token/refresh", json={"refresh_token": other.json()["refresh_token"]})
    assert r.status_code == 200


async def test_concurrent_refresh_with_one_token_yields_one_pair(client, outbox):
    done = await sign_up(client, outbox)
    answers = await asyncio.gather(
        *(client.post("/token/refresh", json={"refresh_token": done["refresh_token"]}) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [200, 401, 401, 401]


async def test_refresh_refusals(client, outbox, db):
    r = await client.post("/token/refresh", json={"refresh_token": "x" * 64})
    assert r.status_code == 401 and r.json()["detail"]["code"] == "INVALID_REFRESH_TOKEN"
    r = await client.post("/token/refresh", json={"refresh_token": "short"})
    assert r.status_code == 422
    r = await client.post("/token/refresh", json={})
    assert r.status_code == 422
    done = await sign_up(client, outbox)
    await db.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1", done["user"]["id"]
    )
    r = await client.post("/token/refresh", json={"refresh_token": done["refresh_token"]})
    assert r.status_code == 401 and r.json()["detail"]["code"] == "REFRESH_TOKEN_EXPIRED"


async def test_logout_ends_the_session(client, outbox):
    done = await sign_up(client, outbox)
    r = await client.post("/logout", json={"refresh_token": done["refresh_token"]})
    assert r.status_code == 204
    r = await client.post("/token/refresh", json={"refresh_token": done["refresh_token"]})
    assert r.status_code == 401
    assert (await client.post("/logout", json={"refresh_token": done["refresh_token"]})).status_code == 204


async def test_subscription_events_set_the_tier_and_never_go_back_in_time(client, outbox, service_env, db, eventually):
    """Both orders: an older event arriving after a newer one changes nothing (new-then-stale),
    and events arriving in order apply in order (stale-then-new). Each event's handling is
    confirmed by its idempotency record (written with the effect), never by waiting a while."""
    done = await sign_up(client, outbox)
    user_id = done["user"]["id"]
    publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events", name="test:payment")
    await client.app.state.consumer.ready.wait()
    consumer_queue = client.app.state.consumer.queue
    now = datetime.now(UTC)

    async def deliver(event_type: str, tier, at: datetime) -> None:
        event = make_event(event_type, user_id, {"tier": tier})
        event.timestamp = at
        await publisher.publish(event)
        await eventually(
            lambda: db.fetchval(
                "SELECT true FROM processed_events WHERE consumer = $1 AND event_id = $2",
                consumer_queue,
                event.event_id,
            )
        )

    async def premium() -> int:
        return await db.fetchval("SELECT premium FROM users WHERE id = $1", user_id)

    try:
        # In order (older first, then newer): each applies.
        await deliver("subscription.created", 1, now - timedelta(minutes=10))
        assert await premium() == 1
        await deliver("subscription.upgraded", 2, now)
        assert await premium() == 2
        r = await client.post("/token/refresh", json={"refresh_token": done["refresh_token"]})
        assert claims(r.json()["access_token"])["app_metadata"]["tier"] == 2
        assert (await client.get("/users/me", headers=bearer(r.json()["access_token"]))).json()["tier_name"] == "max"
        # Newer first, then the older one arrives late: handled, and changes nothing.
        await deliver("subscription.downgraded", 1, now - timedelta(hours=1))
        assert await premium() == 2
        await deliver("subscription.cancelled", "free", now + timedelta(seconds=1))
        assert await premium() == 0
        await deliver("subscription.resumed", "max", now - timedelta(seconds=1))  # older than the cancellation
        assert await premium() == 0
        login = await client.post("/login", json={"email": done["email"], "password": done["password"]})
        assert claims(login.json()["access_token"])["app_metadata"]["tier"] == 0
    finally:
        await publisher.close()


async def test_tokens_are_accepted_by_another_services_validation(client, outbox, make_client, service_env):
    """A chat-service app built by shared.create_app with chat's settings takes our token through
    get_current_user and requires_tier, and refuses a tampered one."""
    import importlib

    from shared.app import create_app
    from shared.testing.env import patched_environ

    done = await sign_up(client, outbox)
    chat_settings_mod = importlib.import_module("chat_service.settings")
    # Its own Redis namespace: the auth client's requests in this run do not count against it.
    with patched_environ({**service_env, "REDIS_PREFIX": service_env["REDIS_PREFIX"] + "-chat"}):
        chat_settings = chat_settings_mod.Settings()
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(user: CurrentUser = Depends(get_current_user)):
        return {"user_id": user.user_id, "email": user.email, "tier": user.tier, "guest": user.is_guest}

    @router.get("/pro-only")
    async def pro_only(user: CurrentUser = Depends(requires_tier(1))):
        return {"ok": True}

    import httpx
    from asgi_lifespan import LifespanManager

    app = create_app(service="chat", settings=chat_settings, routers=[router], use_database=False, outbox=False)
    async with LifespanManager(app) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://chat") as chat:
            r = await chat.get("/whoami", headers=bearer(done["access_token"]))
            assert r.status_code == 200, r.text
            assert r.json() == {"user_id": done["user"]["id"], "email": done["email"], "tier": 0, "guest": False}
            r = await chat.get("/pro-only", headers=bearer(done["access_token"]))
            assert r.status_code == 402 and r.json()["detail"]["code"] == "INSUFFICIENT_TIER"
            # The same claims with the tier raised to max, keeping the signature: refused.
            import base64
            import json

            head, payload, sig = done["access_token"].split(".")
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            body["app_metadata"]["tier"] = 2
            forged_payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
            r = await chat.get("/pro-only", headers=bearer(f"{head}.{forged_payload}.{sig}"))
            assert r.status_code == 401, r.text
    assert chat_settings.supabase_jwt_secret == TEST_JWT_SECRET
