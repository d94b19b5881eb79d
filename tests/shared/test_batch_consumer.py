"""BatchConsumer over a real RabbitMQ and PostgreSQL: many messages per transaction, each event
applied once under redelivery, a bad event set aside (retried, then parked) without holding back
the others, unparseable messages parked."""

import asyncio
import uuid

import pytest

from shared import db as dbmod
from shared.bus import EventPublisher, emit
from shared.bus.batch import BatchConsumer
from shared.events import EventType, make_event
from shared.migrate import migrate
from shared.testing.env import queue_info

pytestmark = pytest.mark.asyncio(loop_scope="session")
EXCHANGE = "scenextras.events"


@pytest.fixture(scope="module")
async def pool(service_env, tmp_path_factory):
    dsn = service_env["ANALYTICS_DATABASE_URL"]
    await migrate(dsn, "bus_tests", tmp_path_factory.mktemp("no-migrations"))
    p = await dbmod.create_pool(dsn)
    await p.execute("CREATE TABLE IF NOT EXISTS batch_test_effects (event_id UUID, consumer TEXT)")
    yield p
    await p.close()


class Recorder:
    """A batch handler with an effect in the transaction (one row per event), failing while the
    batch holds a poisoned event."""

    def __init__(self, queue: str):
        self.queue = queue
        self.batches: list[list[str]] = []
        self.poisoned: set[str] = set()

    async def __call__(self, conn, events, state):
        ids = [e.event_id for e in events]
        self.batches.append(ids)
        await conn.execute("INSERT INTO batch_test_effects SELECT unnest($1::uuid[]), $2", ids, self.queue)
        if self.poisoned & set(ids):
            raise RuntimeError("poisoned event in the batch")


async def started(service_env, pool, recorder, **kwargs) -> BatchConsumer:
    consumer = BatchConsumer(
        url=service_env["RABBITMQ_URL"],
        exchange=EXCHANGE,
        queue=recorder.queue,
        pool=pool,
        handle_batch=recorder,
        bindings=[f"{recorder.queue}.#", *kwargs.get("also", [])],
        batch_size=kwargs.get("batch_size", 100),
        max_wait_ms=20,
        max_attempts=kwargs.get("max_attempts", 3),
        retry_delays_ms=[50, 100],
    )
    consumer.start()
    await asyncio.wait_for(consumer.ready.wait(), 10)
    return consumer


async def wait_until(predicate, within=15.0):
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def effects(pool, queue) -> list[str]:
    return [str(r[0]) for r in await pool.fetch("SELECT event_id FROM batch_test_effects WHERE consumer = $1", queue)]


async def test_batches_apply_each_event_once_under_redelivery(service_env, pool):
    recorder = Recorder(f"batch-{uuid.uuid4().hex[:8]}")
    consumer = await started(service_env, pool, recorder)
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE)
    try:
        events = [make_event(f"{recorder.queue}.thing", str(uuid.uuid4())) for _ in range(600)]
        again = events[::3]
        items = [(e.event_id, e.event_type, e.to_bytes()) for e in events + again + again[:50]]
        assert all(r is None for r in await publisher.publish_raw(items))
        await wait_until(lambda: consumer.handled + consumer.duplicates == len(items))
        applied = await effects(pool, recorder.queue)
        assert sorted(applied) == sorted(e.event_id for e in events)
        assert consumer.handled == 600 and consumer.duplicates == len(again) + 50
        assert len(recorder.batches) < 60  # many per transaction, not one each
    finally:
        await consumer.stop()
        await publisher.close()


def _vhost(service_env):
    from urllib.parse import unquote, urlsplit

    from shared.testing.env import Infra

    return Infra.from_environ(), unquote(urlsplit(service_env["RABBITMQ_URL"]).path.lstrip("/"))


async def test_a_poisoned_event_is_parked_and_the_rest_of_its_batch_applied(service_env, pool):
    recorder = Recorder(f"poison-{uuid.uuid4().hex[:8]}")
    consumer = await started(service_env, pool, recorder, max_attempts=3)
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE)
    try:
        events = [make_event(f"{recorder.queue}.thing", str(uuid.uuid4())) for _ in range(50)]
        bad = events[17]
        recorder.poisoned.add(bad.event_id)
        items = [(e.event_id, e.event_type, e.to_bytes()) for e in events]
        items.insert(5, (str(uuid.uuid4()), f"{recorder.queue}.thing", b"{not json"))
        assert all(r is None for r in await publisher.publish_raw(items))
        infra, vhost = _vhost(service_env)
        await wait_until(lambda: (queue_info(infra, vhost, consumer.dlq) or {}).get("messages", 0) == 2)
        applied = await effects(pool, recorder.queue)
        # The failed transactions left nothing; every other event once.
        assert sorted(applied) == sorted(e.event_id for e in events if e is not bad)
        assert consumer.dead_lettered == 2 and consumer.handled == 49
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = $2",
                recorder.queue,
                bad.event_id,
            )
            == 0
        )
    finally:
        await consumer.stop()
        await publisher.close()


class PreparingRecorder(Recorder):
    """A handler with `prepare`: what it was handed must be exactly the events it is applied to,
    or None; the batch's own prepare work is then redone from the events (as analytics does)."""

    def __init__(self, queue: str):
        super().__init__(queue)
        self.prepared_used = 0
        self.prepared_stale = 0

    @staticmethod
    def prepare(events, prepared=None):
        return (prepared or []) + [e.event_id for e in events]

    async def __call__(self, conn, events, state, prepared=None):
        assert prepared is not None  # the consumer always hands what it prepared
        if sorted(prepared) == sorted(e.event_id for e in events):
            self.prepared_used += 1
        else:
            self.prepared_stale += 1  # redeliveries were filtered out after it was prepared
        await super().__call__(conn, events, state)


async def test_prepared_batches_apply_each_event_once_in_order_with_redeliveries(service_env, pool):
    recorder = PreparingRecorder(f"prep-{uuid.uuid4().hex[:8]}")
    consumer = await started(service_env, pool, recorder, batch_size=50)
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE)
    try:
        events = [make_event(f"{recorder.queue}.thing", str(uuid.uuid4())) for _ in range(1000)]
        again = events[::7]
        items = [(e.event_id, e.event_type, e.to_bytes()) for e in events + again]
        items.insert(333, (str(uuid.uuid4()), f"{recorder.queue}.thing", b"{not json"))
        assert all(r is None for r in await publisher.publish_raw(items))
        await wait_until(lambda: consumer.handled + consumer.duplicates == len(items) - 1)
        applied = await effects(pool, recorder.queue)
        assert sorted(applied) == sorted(e.event_id for e in events)
        assert consumer.handled == 1000 and consumer.duplicates == len(again)
        assert recorder.prepared_used >= 15  # batches of fresh events used their prepared work
        # Nothing left unacknowledged: the queue is empty once the consumer stops.
        await consumer.stop()
        infra, vhost = _vhost(service_env)
        await wait_until(lambda: (queue_info(infra, vhost, recorder.queue) or {}).get("messages", 1) == 0)
        assert (queue_info(infra, vhost, consumer.dlq) or {}).get("messages", 0) == 1  # the unparseable one
    finally:
        await consumer.stop()
        await publisher.close()


async def test_user_deleted_in_a_batch_erases_the_users_published_outbox_rows(service_env, pool):
    gone = str(uuid.uuid4())
    named = make_event(EventType.USER_CREATED, gone, {"email": "gone@example.com"})
    owed = make_event(EventType.IMAGE_DELETED, gone)  # unpublished: still owed to the bus
    async with pool.acquire() as conn, conn.transaction():
        await emit(conn, named, owed)
        await conn.execute("UPDATE outbox_events SET published_at = now() WHERE event_id = $1", named.event_id)
    recorder = Recorder(f"batch-{uuid.uuid4().hex[:8]}")
    consumer = await started(service_env, pool, recorder, also=["user.deleted"])
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE)
    try:
        await publisher.publish(make_event(f"{recorder.queue}.thing", gone))
        await publisher.publish(make_event(EventType.USER_DELETED, gone))
        await wait_until(lambda: consumer.handled == 2)
        left = await pool.fetch(
            "SELECT event_id::text FROM outbox_events WHERE event_id = ANY($1::uuid[])", [named.event_id, owed.event_id]
        )
        assert [r[0] for r in left] == [owed.event_id]
    finally:
        await consumer.stop()
        await publisher.close()
        await pool.execute("DELETE FROM outbox_events WHERE event_id = $1", owed.event_id)
