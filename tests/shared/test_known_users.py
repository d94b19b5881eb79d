"""shared.known_users against a real Auth process: a token of a user Auth never had is refused
(401 USER_NOT_FOUND) and creates nothing; users and guests are accepted, the answer is cached
(one call to Auth per id, concurrent misses coalesced), unknown ids only briefly; a deleted user
Auth knows of is refused as deleted; Auth unreachable serves (fail-open) without caching."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import httpx
import pytest

from shared import known_users as ku
from shared.bus import EventPublisher
from shared.events import EventType, make_event
from shared.testing.env import TEST_JWT_SECRET
from shared.testing.processes import ServiceProcess, free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def auth(service_env, tmp_path_factory):
    env = {
        **service_env,
        "OUTBOX_RELAY": "inprocess",
        "EMAIL_BACKEND": "file",
        "EMAIL_OUTBOX_DIR": str(tmp_path_factory.mktemp("known-users-emails")),
        "RATE_LIMIT_GUEST_PER_MINUTE": "100000",
    }
    with ServiceProcess("auth", env, log_dir=tmp_path_factory.mktemp("known-users-auth")) as proc:
        yield proc


async def new_guest(auth) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=auth.url, timeout=30) as client:
        r = await client.post("/guest")
    assert r.status_code == 201, r.text
    token = r.json()["access_token"]
    async with httpx.AsyncClient(base_url=auth.url, timeout=30) as client:
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    return me.json()["id"], token


def known_users(url: str, **overrides) -> ku.KnownUsers:
    return ku.KnownUsers(auth_url=url, secret=TEST_JWT_SECRET, service="tests", **overrides)


async def test_users_known_once_asked_and_guests_are_users(auth):
    user_id, _ = await new_guest(auth)
    cache = known_users(auth.url)
    try:
        # Asked right after the sign-up's 201: Auth committed before it issued the token.
        assert await cache.check(user_id) == ku.KNOWN
        assert cache.lookups == 1
        for _ in range(5):
            assert await cache.check(user_id) == ku.KNOWN
        assert cache.lookups == 1, "a known user is a dict hit, Auth is not asked again"
    finally:
        await cache.close()


async def test_unknown_ids_are_refused_cached_briefly_and_coalesced(auth):
    stranger = str(uuid.uuid4())
    cache = known_users(auth.url, unknown_ttl_seconds=0.5)
    try:
        answers = await asyncio.gather(*(cache.check(stranger) for _ in range(20)))
        assert answers == [ku.UNKNOWN] * 20
        assert cache.lookups == 1, "twenty concurrent misses for one id make one call to Auth"
        assert await cache.check(stranger) == ku.UNKNOWN and cache.lookups == 1
        await asyncio.sleep(0.6)
        assert await cache.check(stranger) == ku.UNKNOWN
        assert cache.lookups == 2, "an unknown id is asked again once its short refusal expired"
    finally:
        await cache.close()


async def test_lru_is_bounded(auth):
    cache = known_users(auth.url, max_known=3)
    for i in range(5):
        cache.add(f"u{i}")
    assert len(cache) == 3 and "u0" not in cache and "u4" in cache


async def test_deleted_user_is_reported_deleted(auth):
    user_id, token = await new_guest(auth)
    async with httpx.AsyncClient(base_url=auth.url, timeout=30) as client:
        r = await client.delete("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204, r.text
    cache = known_users(auth.url)
    try:
        assert await cache.check(user_id) == ku.DELETED
    finally:
        await cache.close()


async def test_auth_unreachable_fails_open_without_caching(caplog):
    cache = known_users(f"http://127.0.0.1:{free_port()}", retry_seconds=0.2)
    stranger = str(uuid.uuid4())
    try:
        with caplog.at_level(logging.WARNING, logger="shared.known_users"):
            assert await cache.check(stranger) == ku.KNOWN
        assert any("fail-open" in r.getMessage() for r in caplog.records)
        assert stranger not in cache, "a fail-open answer is not remembered"
        assert await cache.check(stranger) == ku.KNOWN and cache.lookups == 1, "Auth is not retried at once"
        await asyncio.sleep(0.3)
        await cache.check(stranger)
        assert cache.lookups == 2
    finally:
        await cache.close()


async def test_internal_route_is_for_services_only(auth, tokens):
    user_id, token = await new_guest(auth)
    async with httpx.AsyncClient(base_url=auth.url, timeout=30) as client:
        path = f"/internal/users/{user_id}"
        assert (await client.get(path)).status_code == 401
        r = await client.get(path, headers=tokens.headers(token))
        assert r.status_code == 403 and r.json()["detail"]["code"] == "SERVICE_TOKEN_REQUIRED"
        r = await client.get(path, headers=tokens.headers(tokens.service()))
        assert r.status_code == 200 and r.json() == {"user_id": user_id, "is_guest": True}
        r = await client.get(f"/internal/users/{uuid.uuid4()}", headers=tokens.headers(tokens.service()))
        assert r.status_code == 404 and r.json()["detail"] == {
            "code": "NO_SUCH_USER",
            "message": "Auth has no user with this id.",
            "deleted": False,
        }
        r = await client.get("/internal/users/not-a-uuid", headers=tokens.headers(tokens.service()))
        assert r.status_code == 422


async def test_a_service_refuses_never_created_users_and_creates_nothing(auth, make_client, tokens, service_env):
    stranger = str(uuid.uuid4())
    guest_id, guest_token = await new_guest(auth)
    async with make_client("payment", known_users_check="1", auth_service_url=auth.url) as client:
        r = await client.get("/quota", headers=tokens.headers(tokens.user(stranger)))
        assert r.status_code == 401, r.text
        assert r.json()["detail"]["code"] == "USER_NOT_FOUND"
        assert r.headers["www-authenticate"] == "Bearer"
        r = await client.get("/quota", headers=tokens.headers(guest_token))
        assert r.status_code == 200, r.text
        assert guest_id in client.app.state.known_users
    conn = await asyncpg.connect(service_env["DATABASE_URL"])
    try:
        assert await conn.fetchval("SELECT count(*) FROM user_quotas WHERE user_id = $1", uuid.UUID(stranger)) == 0
        assert await conn.fetchval("SELECT count(*) FROM user_quotas WHERE user_id = $1", uuid.UUID(guest_id)) > 0
    finally:
        await conn.close()


async def test_user_created_events_prewarm_the_cache(make_client, service_env, eventually):
    # No Auth at this address: only the event can make the user known.
    newcomer = str(uuid.uuid4())
    async with make_client("payment", known_users_check="1", auth_service_url=f"http://127.0.0.1:{free_port()}") as c:
        publisher = EventPublisher(service_env["RABBITMQ_URL"], "scenextras.events")
        try:
            await publisher.publish(make_event(EventType.USER_CREATED, newcomer, {"is_guest": True}, source="tests"))
        finally:
            await publisher.close()
        await eventually(lambda: newcomer in c.app.state.known_users)
        assert c.app.state.known_users.lookups == 0


async def test_a_waiter_asks_again_when_the_caller_it_waited_on_went_away(auth):
    stranger = str(uuid.uuid4())
    cache = known_users(auth.url)
    try:
        first = asyncio.create_task(cache.check(stranger))
        await asyncio.sleep(0)  # the first caller is now waiting for Auth (another process)
        second = asyncio.create_task(cache.check(stranger))
        await asyncio.sleep(0)  # ...and the second one waits for the first one's answer
        first.cancel()  # the first client disconnected
        assert await second == ku.UNKNOWN  # not let through by the first one's going away
        assert first.cancelled() and cache.lookups == 2
    finally:
        await cache.close()
