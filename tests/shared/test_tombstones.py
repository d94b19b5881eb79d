"""shared.tombstones over real Redis and RabbitMQ: seeded from Redis, fed live by a per-process
queue (every process hears every deletion), resynced, and what happens when either is down at
start-up; shared.auth refusing a deleted user's token on a service's routes (401 USER_DELETED)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from shared.bus import EventPublisher
from shared.events import EventType, make_event
from shared.redis import Keys, create_redis
from shared.testing.processes import free_port
from shared.tombstones import Tombstones, record_deletion, redis_key

pytestmark = pytest.mark.asyncio(loop_scope="session")
EXCHANGE = "scenextras.events"


@pytest.fixture
async def redis(service_env):
    client = create_redis(service_env["REDIS_URL"])
    yield client
    await client.aclose()


@pytest.fixture
def key() -> str:
    # A prefix of its own: other tests' deletions do not show up here.
    return redis_key(Keys(f"tomb-{uuid.uuid4().hex[:8]}"))


def tombstones(service_env, redis, key, **overrides) -> Tombstones:
    options = {
        "redis": redis,
        "key": key,
        "amqp_url": service_env["RABBITMQ_URL"],
        "exchange": EXCHANGE,
        "service": "tests",
        **overrides,
    }
    return Tombstones(**options)


async def publish_deleted(service_env, user_id: str, valid_until: float | None = None) -> None:
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE)
    data = {"was_guest": False} | ({"tokens_valid_until": valid_until} if valid_until else {})
    try:
        await publisher.publish(make_event(EventType.USER_DELETED, user_id, data, source="tests"))
    finally:
        await publisher.close()


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_seeded_from_redis_and_fed_live_in_every_process(service_env, redis, key):
    recent, expired, live = (str(uuid.uuid4()) for _ in range(3))
    await record_deletion(redis, key, recent, time.time() + 3600)
    await redis.zadd(key, {expired: time.time() - 1})  # every token of that user has expired
    workers = [tombstones(service_env, redis, key), tombstones(service_env, redis, key)]
    try:
        for w in workers:
            await w.start()
            assert w.seeded and w.listening.is_set()
            assert recent in w and expired not in w
        await publish_deleted(service_env, live, time.time() + 3600)
        # Both "workers" hear it: each has a queue of its own.
        for w in workers:
            await until(lambda w=w: live in w)
        assert str(uuid.uuid4()) not in workers[0]
    finally:
        for w in workers:
            await w.stop()
    # Recording prunes entries whose tokens have all expired.
    await record_deletion(redis, key, live, time.time() + 3600)
    assert await redis.zscore(key, expired) is None and await redis.zscore(key, recent) is not None


async def test_resync_adds_missed_deletions_and_drops_expired_ones(service_env, redis, key):
    soon_expired = str(uuid.uuid4())
    await record_deletion(redis, key, soon_expired, time.time() + 0.5)
    w = tombstones(service_env, redis, key, resync_seconds=0.2)
    try:
        await w.start()
        assert soon_expired in w
        missed = str(uuid.uuid4())  # written to Redis only (its event went elsewhere)
        await record_deletion(redis, key, missed, time.time() + 3600)
        await until(lambda: missed in w and soon_expired not in w)
    finally:
        await w.stop()


async def test_redis_down_at_start_up_serves_and_still_hears_events(service_env, key):
    dead_redis = create_redis(f"redis://127.0.0.1:{free_port()}/0")
    w = tombstones(service_env, dead_redis, key, resync_seconds=0.2)
    try:
        started = time.monotonic()
        await w.start()  # does not raise
        assert time.monotonic() - started < 10
        assert not w.seeded and w.listening.is_set()
        user = str(uuid.uuid4())
        await publish_deleted(service_env, user)  # no tokens_valid_until: kept for a day
        await until(lambda: user in w)
    finally:
        await w.stop()
        await dead_redis.aclose()


async def test_rabbitmq_down_at_start_up_serves_from_redis_and_keeps_trying(service_env, redis, key):
    user = str(uuid.uuid4())
    await record_deletion(redis, key, user, time.time() + 3600)
    w = tombstones(service_env, redis, key, amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    try:
        await w.start(wait_seconds=0.5)  # does not raise
        assert w.seeded and user in w and not w.listening.is_set()
    finally:
        await w.stop()


async def test_a_deleted_users_token_is_refused_by_a_service(make_client, tokens, service_env):
    """shared.auth on a real service (Payment): the token works, then the deletion arrives on the
    bus and the same token is refused with 401 USER_DELETED on every route, nothing created."""
    user_id = str(uuid.uuid4())
    token = tokens.user(user_id)
    async with make_client("payment") as client:
        h = tokens.headers(token)
        assert (await client.get("/subscription", headers=h)).status_code == 200
        await publish_deleted(service_env, user_id, time.time() + 3600)
        await until(lambda: user_id in client.app.state.tombstones)
        for r in (
            await client.get("/subscription", headers=h),
            await client.get("/quota", headers=h),
            await client.post("/create-checkout-session", json={"tier": "pro"}, headers=h),
        ):
            assert r.status_code == 401 and r.json()["detail"]["code"] == "USER_DELETED", r.text
            assert r.headers["www-authenticate"] == "Bearer"
        for table in ("stripe_customers", "user_quotas", "subscriptions"):
            n = await client.app.state.db.fetchval(f"SELECT count(*) FROM {table} WHERE user_id::text = $1", user_id)
            assert n == 0, table
        # Other users are unaffected; the OpenAPI document lists the code under 401.
        assert (await client.get("/subscription", headers=tokens.headers(tokens.user()))).status_code == 200
        document = (await client.get("/openapi.json")).json()
        assert "USER_DELETED" in document["paths"]["/quota"]["get"]["responses"]["401"]["description"]


async def test_a_consumer_applies_nothing_about_a_user_once_deleted(service_env, redis, key, tmp_path_factory):
    """A service's durable consumer marks the deletion before its handler erases the user, and
    skips later events naming that user (they would re-create what the erasure removed)."""
    from types import SimpleNamespace

    from shared import db as dbmod
    from shared.bus import Consumer, EventHandlers
    from shared.migrate import migrate

    dsn = service_env["ANALYTICS_DATABASE_URL"]
    await migrate(dsn, "bus_tests", tmp_path_factory.mktemp("no-migrations"))
    pool = await dbmod.create_pool(dsn)
    state = SimpleNamespace(tombstones=Tombstones(redis=redis, key=key, amqp_url="", exchange="", service="tests"))
    seen: list[tuple[str, str, bool]] = []
    handlers = EventHandlers()

    @handlers.on(EventType.USER_DELETED, EventType.MESSAGE_SENT)
    async def record(conn, event, st):
        # Whether the deletion was already refused here when the handler ran.
        seen.append((event.event_type, event.user_id, event.user_id in st.tombstones))

    queue = f"tombstone-consumer-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        url=service_env["RABBITMQ_URL"], exchange=EXCHANGE, queue=queue, pool=pool, handlers=handlers, state=state
    )
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE)
    gone, stays = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        consumer.start()
        await asyncio.wait_for(consumer.ready.wait(), 10)
        await publisher.publish(make_event(EventType.USER_DELETED, gone, {}))
        # Delivered after the deletion was handled (messages in flight together run concurrently,
        # and one handled at the same moment as the deletion is not told apart).
        await until(lambda: any(t == "user.deleted" for t, _, _ in seen))
        await publisher.publish(make_event(EventType.MESSAGE_SENT, gone, {}))
        await publisher.publish(make_event(EventType.MESSAGE_SENT, stays, {}))
        await until(lambda: any(u == stays for _, u, _ in seen))
        await asyncio.sleep(0.2)
    finally:
        await publisher.close()
        await consumer.stop()
        await pool.close()
    assert [(t, u) for t, u, _ in seen if u == gone] == [("user.deleted", gone)]
    assert ("user.deleted", gone, True) in seen  # marked before the handler (the erasure) ran
    assert ("message.sent", stays, False) in seen
