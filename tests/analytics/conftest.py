"""Analytics test fixtures: the service in process on real PostgreSQL and RabbitMQ, a publisher
that puts events on the exchange as other services do, and a way to wait until the consumer
has applied them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio

from analytics_service.daily import HOURLY_ACTIVITY_RETENTION
from shared.bus import EventPublisher
from shared.events import Event, make_event

EXCHANGE = "scenextras.events"
QUEUE = "analytics_service.events"

# Tables a replay rebuilds, each with a key that orders its rows.
ROLLUPS = {
    "user_analytics": "user_id",
    "user_active_days": "user_id, day",
    "user_characters": "user_id, character",
    "conversation_stats": "conversation_id",
    "character_stats": "character",
    "character_daily": "day, character",
    "activity_buckets": "granularity, bucket, user_id",
    "platform_metrics": "granularity, metric, bucket",
}


# Package scope: the app (its outbox relay, its consumer of every event) must be gone before other
# packages' tests use the analytics database or the bus as their own (tests/shared/test_bus.py).
@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def analytics(make_client):
    # POSTHOG_HOST comes from the sandbox's environment; the key turns forwarding on.
    async with make_client("analytics", ANALYTICS_BATCH_WAIT_MS="10", POSTHOG_API_KEY="phc_sandbox_test") as client:
        await asyncio.wait_for(client.app.state.event_consumer.ready.wait(), 30)
        yield client


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def client(analytics):
    """The template's name for the service's client (test_analytics.py)."""
    yield analytics


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def analytics_db(service_env, analytics):
    pool = await asyncpg.create_pool(service_env["ANALYTICS_DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


class Bus:
    """Publishes events as the other services' relays do, and waits for the consumer."""

    def __init__(self, publisher: EventPublisher, db: asyncpg.Pool, outbox_mark: int):
        self.publisher = publisher
        self.db = db
        self.outbox_mark = outbox_mark  # outbox rows up to this id were not this package's

    async def publish(self, *events: Event) -> None:
        errors = await self.publisher.publish_raw([(e.event_id, e.event_type, e.to_bytes()) for e in events])
        assert not [e for e in errors if e is not None], errors

    async def applied(self, *events: Event, within: float = 20.0) -> None:
        ids = list({e.event_id for e in events})
        deadline = asyncio.get_running_loop().time() + within
        while True:
            n = await self.db.fetchval(
                "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2::uuid[])", QUEUE, ids
            )
            if n == len(ids):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"only {n} of {len(ids)} events applied in {within}s")
            await asyncio.sleep(0.05)

    async def settled(self, within: float = 20.0) -> None:
        """Until what the service emitted itself (level.up, ...) has come back and been applied:
        then the rollups stop moving."""
        deadline = asyncio.get_running_loop().time() + within
        while await self.db.fetchval(
            "SELECT count(*) FROM outbox_events o WHERE id > $2 AND NOT EXISTS"
            " (SELECT 1 FROM processed_events p WHERE p.consumer = $1 AND p.event_id = o.event_id)",
            QUEUE,
            self.outbox_mark,
        ):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the service's own events were not all applied in time")
            await asyncio.sleep(0.05)

    async def send(self, *events: Event) -> None:
        await self.publish(*events)
        await self.applied(*events)


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def bus(service_env, analytics_db):
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE, "analytics-tests")
    mark = await analytics_db.fetchval("SELECT COALESCE(max(id), 0) FROM outbox_events")
    yield Bus(publisher, analytics_db, mark)
    await publisher.close()


def event(event_type: str, user_id: str | None, data: dict | None = None, at=None) -> Event:
    e = make_event(event_type, user_id, data or {}, source="tests")
    if at is not None:
        e.timestamp = at
    return e


async def snapshot(db: asyncpg.Pool) -> dict[str, list[tuple]]:
    tables = {
        table: [tuple(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
        for table, key in ROLLUPS.items()
    }
    # The daily task prunes hourly activity rows older than its retention (a replay makes them
    # again until its next run): only the rows within the retention are compared.
    tables["activity_buckets"] = [
        tuple(r)
        for r in await db.fetch(
            "SELECT * FROM activity_buckets WHERE granularity = 'day' OR bucket >= $1 ORDER BY granularity, bucket,"
            " user_id",
            datetime.now(UTC) - HOURLY_ACTIVITY_RETENTION,
        )
    ]
    # The messages histograms (all time and per-period boards) are rollups too (values no user has
    # any more are left at 0 users), and so are the per-period message boards.
    for table, key in (("metric_histogram", "value"), ("metric_histogram_blocks", "block")):
        tables[table] = [
            tuple(r)
            for r in await db.fetch(
                f"SELECT * FROM {table} WHERE (metric = 'messages' OR metric LIKE 'messages:%') AND users <> 0"
                f" ORDER BY metric, {key}"
            )
        ]
    tables["leaderboard_scores"] = [
        tuple(r)
        for r in await db.fetch(
            "SELECT * FROM leaderboard_scores WHERE board LIKE 'messages:%' ORDER BY board, user_id"
        )
    ]
    return tables


async def histograms_match_the_users(db: asyncpg.Pool) -> None:
    """The rank histograms hold exactly what a brute-force count of the users gives."""
    boards = [r[0] for r in await db.fetch("SELECT DISTINCT board FROM leaderboard_scores")]
    for metric, source in (
        ("xp", "SELECT xp, count(*) FROM user_progress GROUP BY 1"),
        ("messages", "SELECT messages, count(*) FROM user_analytics GROUP BY 1"),
        ("streak", "SELECT streak_longest, count(*) FROM user_progress GROUP BY 1"),
        *[(b, f"SELECT value, count(*) FROM leaderboard_scores WHERE board = '{b}' GROUP BY 1") for b in boards],
    ):
        kept = await db.fetch(
            "SELECT value, users FROM metric_histogram WHERE metric = $1 AND users <> 0 ORDER BY 1", metric
        )
        counted = await db.fetch(f"SELECT * FROM ({source}) AS s ORDER BY 1")
        assert [tuple(r) for r in kept] == [tuple(r) for r in counted], metric
        blocks = await db.fetch(
            "SELECT block, users FROM metric_histogram_blocks WHERE metric = $1 AND users <> 0 ORDER BY 1", metric
        )
        by_block = await db.fetch(f"SELECT v >> 10, sum(n)::bigint FROM ({source}) AS s(v, n) GROUP BY 1 ORDER BY 1")
        assert [tuple(r) for r in blocks] == [tuple(r) for r in by_block], metric


class User:
    def __init__(self, tokens):
        self.id = str(uuid.uuid4())
        self.headers = tokens.headers(tokens.user(self.id))


@pytest.fixture
def new_user(tokens):
    return lambda: User(tokens)


async def rewrite_progress(db: asyncpg.Pool, user_id: str, sql: str, *args) -> None:
    """A test's direct UPDATE of a user's progress row ($1 = the user), with the streak histogram
    moved as the service would (ranks stay right for the tests that check them)."""
    from collections import Counter

    from analytics_service.repositories import ranks as ranks_repo

    async with db.acquire() as conn, conn.transaction():
        before = await conn.fetchval("SELECT streak_longest FROM user_progress WHERE user_id = $1 FOR UPDATE", user_id)
        await conn.execute(sql, user_id, *args)
        after = await conn.fetchval("SELECT streak_longest FROM user_progress WHERE user_id = $1", user_id)
        if before != after:
            await ranks_repo.shift(conn, "streak", Counter({before: -1, after: 1}))
