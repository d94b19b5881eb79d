"""The bus over a real RabbitMQ: outbox delivery across an outage, idempotency, retries, DLQ."""

import asyncio
import logging
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest

from shared import db as dbmod
from shared.bus import Consumer, EventHandlers, EventPublisher, OutboxRelay, emit, sweep_published
from shared.bus.amqp import HEARTBEAT_SECONDS, AMQPChannel
from shared.events import Event, EventType, make_event
from shared.migrate import migrate
from shared.testing.env import queue_info
from shared.testing.proxy import TcpProxy

pytestmark = pytest.mark.asyncio(loop_scope="session")
EXCHANGE = "scenextras.events"


@pytest.fixture(scope="module")
async def pool(service_env, tmp_path_factory):
    dsn = service_env["ANALYTICS_DATABASE_URL"]
    await migrate(dsn, "bus_tests", tmp_path_factory.mktemp("no-migrations"))
    p = await dbmod.create_pool(dsn)
    yield p
    await p.close()


def via_proxy(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@127.0.0.1:{proxy.port}"))


class Recorder:
    def __init__(self):
        self.calls: list[Event] = []
        self.states: list = []
        self.failures_left: dict[str, int] = {}

    async def __call__(self, conn, event: Event, state):
        self.calls.append(event)
        self.states.append(state)
        await conn.execute("SELECT 1")
        left = self.failures_left.get(event.event_id, 0)
        if left == -1 or left > 0:
            if left > 0:
                self.failures_left[event.event_id] = left - 1
            raise RuntimeError("handler failed on purpose")


def make_consumer(service_env, pool, queue, recorder, *types, **kwargs):
    handlers = EventHandlers()
    handlers.on(*types)(recorder)
    return Consumer(
        url=service_env["RABBITMQ_URL"],
        exchange=EXCHANGE,
        queue=queue,
        pool=pool,
        handlers=handlers,
        state=kwargs.get("state"),
        max_attempts=kwargs.get("max_attempts", 3),
        retry_delays_ms=kwargs.get("retry_delays_ms", [50, 100]),
    )


async def wait_until(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class LogSignal(logging.Handler):
    """An asyncio.Event set when a log record containing `text` is emitted: a positive sign that
    something happened (the relay tried and failed), instead of waiting a while."""

    def __init__(self, logger: str, text: str):
        super().__init__()
        self.logger, self.text = logging.getLogger(logger), text
        self.seen = asyncio.Event()

    def emit(self, record):
        if self.text in record.getMessage():
            self.seen.set()

    def __enter__(self):
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)


async def emit_marker(pool, user_id: str) -> Event:
    """A marker event emitted after the thing under test: once it is seen, anything the relay
    would have published before it is in the spy already (one channel, one queue, in order)."""
    marker = make_event(EventType.USER_UPDATED, user_id, {"marker": uuid.uuid4().hex})
    async with pool.acquire() as conn, conn.transaction():
        await emit(conn, marker)
    return marker


def unmarked(events: list[Event]) -> list[Event]:
    return [e for e in events if "marker" not in e.data]


@pytest.mark.parametrize(("suffix", "expected"), [("", HEARTBEAT_SECONDS), ("?heartbeat=40", 40)])
async def test_connections_agree_a_short_heartbeat_with_the_broker_unless_the_url_sets_one(
    service_env, suffix, expected
):
    """RabbitMQ proposes 60 s; ours is HEARTBEAT_SECONDS so a connection dead without a word is
    closed by pika within ~20-35 s (docs/e2e.md, bug 5). Read back after the broker's tune."""
    ch = await AMQPChannel(service_env["RABBITMQ_URL"] + suffix, "heartbeat-test").open()
    try:
        assert ch.channel.connection.params.heartbeat == expected
    finally:
        await ch.close()


async def test_event_emitted_while_rabbitmq_is_down_is_delivered_when_it_returns(service_env, pool, event_spy):
    host, port = urlsplit(service_env["RABBITMQ_URL"]).hostname, urlsplit(service_env["RABBITMQ_URL"]).port or 5672
    proxy = await TcpProxy(host, port).start()
    proxy.cut()  # the broker is unreachable from the service
    publisher = EventPublisher(via_proxy(service_env["RABBITMQ_URL"], proxy), EXCHANGE, "test-relay")
    relay = OutboxRelay(pool, publisher, poll_seconds=0.2, max_backoff_seconds=0.5)
    relay.start()
    user_id = str(uuid.uuid4())
    async with event_spy(["user.#"]) as spy:
        try:
            with LogSignal("shared.bus.outbox", "publish failed") as failed:
                async with pool.acquire() as conn, conn.transaction():
                    await emit(conn, make_event(EventType.USER_CREATED, user_id, {"email": "a@example.com"}))
                await asyncio.wait_for(failed.seen.wait(), 15)  # the relay tried, and could not publish
            assert spy.of_type("user.created", user_id=user_id) == []
            row = await pool.fetchrow(
                "SELECT published_at, attempts FROM outbox_events "
                "WHERE event_type='user.created' ORDER BY id DESC LIMIT 1"
            )
            assert row["published_at"] is None
            proxy.restore()
            events = await spy.wait_for("user.created", user_id=user_id, timeout=15)
            assert len(events) == 1 and events[0].data == {"email": "a@example.com"}
            unpublished = "SELECT count(*) FROM outbox_events WHERE published_at IS NULL"
            deadline = asyncio.get_running_loop().time() + 5
            # Polls rows another task (the relay) updates in PostgreSQL: there is no event to await.
            while await pool.fetchval(unpublished) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            assert await pool.fetchval(unpublished) == 0
        finally:
            await relay.stop()
            await publisher.close()
            await proxy.close()


async def test_a_claimed_batch_is_left_alone_until_its_claim_expires(service_env, pool, event_spy):
    """A relay that died between claiming and marking: its batch waits for the claim to
    expire, then another relay publishes it (once). Markers emitted after it prove what the
    relay did meanwhile, so nothing here depends on how long anything takes."""
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE, "test-claims")
    user_id = str(uuid.uuid4())
    claimed = make_event(EventType.USER_UPDATED, user_id, {"n": 1})
    async with event_spy(["user.#"]) as spy:
        async with pool.acquire() as conn, conn.transaction():
            await emit(conn, claimed)
            # as if another relay had claimed it (for an hour) and then died
            await conn.execute(
                "UPDATE outbox_events SET claimed_until = now() + interval '1 hour' WHERE event_id = $1",
                claimed.event_id,
            )
        relay = OutboxRelay(pool, publisher, poll_seconds=0.2)
        relay.start()
        try:
            # The relay published a later event: had it ignored the claim, the claimed (older) one
            # would have gone out first, in the same batch.
            first = await emit_marker(pool, user_id)
            await spy.wait_for("user.updated", user_id=user_id, marker=first.data["marker"], timeout=15)
            assert spy.of_type("user.updated", user_id=user_id, n=1) == []
            # The claim runs out: the next drain publishes it.
            await pool.execute(
                "UPDATE outbox_events SET claimed_until = now() - interval '1 second' WHERE event_id = $1",
                claimed.event_id,
            )
            await spy.wait_for("user.updated", user_id=user_id, n=1, timeout=15)
            # Once: a later marker arrives and the claimed event has not come again before it.
            last = await emit_marker(pool, user_id)
            await spy.wait_for("user.updated", user_id=user_id, marker=last.data["marker"], timeout=15)
            assert len(spy.of_type("user.updated", user_id=user_id, n=1)) == 1
        finally:
            await relay.stop()
            await publisher.close()


async def _wait_listening(pool, application_name: str, within: float = 10.0) -> None:
    """Until a connection of the pool named `application_name` has run LISTEN outbox_events."""
    deadline = asyncio.get_running_loop().time() + within
    sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %outbox_events%'"
    while not await pool.fetchval(sql, application_name):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the relay is not listening")
        await asyncio.sleep(0.02)


async def test_relay_is_woken_by_notify_not_by_its_poll(service_env, pool, event_spy):
    """README: the relay is woken by NOTIFY, so publishing is immediate. Its poll here is an hour:
    only the NOTIFY of the emitting commit can wake it within the deadline. (`pool`: the module's
    database, migrated.)"""
    name = f"notify-{uuid.uuid4().hex[:8]}"
    own_pool = await dbmod.create_pool(
        service_env["ANALYTICS_DATABASE_URL"], min_size=1, max_size=3, server_settings={"application_name": name}
    )
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE, "test-notify")
    relay = OutboxRelay(own_pool, publisher, poll_seconds=3600)
    user_id = str(uuid.uuid4())
    async with event_spy(["user.#"]) as spy:
        try:
            before = await emit_marker(own_pool, user_id)  # published by the relay's first drain
            relay.start()
            await _wait_listening(own_pool, name)
            await spy.wait_for("user.updated", user_id=user_id, marker=before.data["marker"], timeout=15)
            # The first drain is over (it returned after one short batch): only a wake-up drains again.
            after = await emit_marker(own_pool, user_id)
            await spy.wait_for("user.updated", user_id=user_id, marker=after.data["marker"], timeout=20)
        finally:
            await relay.stop()
            await publisher.close()
            await own_pool.close()


async def test_relay_stopped_mid_wait_hands_back_its_listener(service_env, pool):
    """Stopped while coalescing after a wake-up (or backing off), the relay still releases its
    LISTEN connection: otherwise the pool's close() at shutdown waits forever."""
    name = f"stop-{uuid.uuid4().hex[:8]}"
    own_pool = await dbmod.create_pool(
        service_env["ANALYTICS_DATABASE_URL"], min_size=1, max_size=2, server_settings={"application_name": name}
    )
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE, "test-stop")
    relay = OutboxRelay(own_pool, publisher, poll_seconds=3600, coalesce_seconds=3600)
    relay.start()
    try:
        await _wait_listening(own_pool, name)
        event = make_event(EventType.USER_UPDATED, str(uuid.uuid4()))
        async with own_pool.acquire() as conn, conn.transaction():
            await emit(conn, event)
        # Woken by the NOTIFY: from here the relay sits in its (hour-long) coalescing wait.
        await wait_until(relay._wake.is_set)
    finally:
        await relay.stop()
        await publisher.close()
    await asyncio.wait_for(own_pool.close(), 5)
    conn = await asyncpg.connect(service_env["ANALYTICS_DATABASE_URL"])
    try:  # leave no backlog for the next test's relays
        await conn.execute("DELETE FROM outbox_events WHERE event_id = $1", event.event_id)
    finally:
        await conn.close()


async def test_two_relays_publish_each_event_once(service_env, pool, event_spy):
    publishers = [EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE, f"test-two-relays-{i}") for i in range(2)]
    relays = [OutboxRelay(pool, p, poll_seconds=0.05, batch_size=7, coalesce_seconds=0) for p in publishers]
    user_id = str(uuid.uuid4())
    async with event_spy(["user.#"]) as spy:
        for r in relays:
            r.start()
        try:
            for i in range(60):
                async with pool.acquire() as conn, conn.transaction():
                    await emit(conn, make_event(EventType.USER_UPDATED, user_id, {"n": i}))
            await wait_until(lambda: len(unmarked(spy.of_type("user.updated", user_id=user_id))) >= 60, timeout=15)
            # Nothing published twice: once the relays publish a later event, any second copy
            # (an unmarked row is claimed again, before newer rows) would be in the spy already.
            marker = await emit_marker(pool, user_id)
            await spy.wait_for("user.updated", user_id=user_id, marker=marker.data["marker"], timeout=15)
            await wait_until(lambda: sum(r.published_total for r in relays) >= 61)
            seen = [e.data["n"] for e in unmarked(spy.of_type("user.updated", user_id=user_id))]
            assert sorted(seen) == list(range(60))  # all of them, none twice
            assert sum(r.published_total for r in relays) == 61
        finally:
            for r in relays:
                await r.stop()
            for p in publishers:
                await p.close()


async def test_rolled_back_transaction_emits_nothing(service_env, pool):
    event = make_event(EventType.USER_UPDATED, str(uuid.uuid4()))
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await emit(conn, event)
            raise RuntimeError("the state change failed")
    assert await pool.fetchval("SELECT count(*) FROM outbox_events WHERE event_id = $1", event.event_id) == 0


async def test_redelivered_event_is_handled_once(service_env, pool):
    recorder = Recorder()
    queue = f"idem-{uuid.uuid4().hex[:8]}.events"
    app_state = object()  # what the app factory passes: app.state
    consumer = make_consumer(service_env, pool, queue, recorder, "quota.updated", state=app_state)
    consumer.start()
    await asyncio.wait_for(consumer.ready.wait(), 10)
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE)
    try:
        event = make_event(EventType.QUOTA_UPDATED, str(uuid.uuid4()), {"remaining": 3})
        for _ in range(3):
            await publisher.publish(event)
        other = make_event(EventType.QUOTA_UPDATED, str(uuid.uuid4()))
        await publisher.publish(other)
        await wait_until(lambda: consumer.handled + consumer.duplicates == 4)
        assert [e.event_id for e in recorder.calls].count(event.event_id) == 1
        assert consumer.handled == 2 and consumer.duplicates == 2
        assert all(s is app_state for s in recorder.states)  # handlers get (conn, event, state)
    finally:
        await consumer.stop()
        await publisher.close()


async def test_failing_handler_is_retried_then_succeeds(service_env, pool):
    recorder = Recorder()
    queue = f"retry-{uuid.uuid4().hex[:8]}.events"
    consumer = make_consumer(service_env, pool, queue, recorder, "payment.failed", max_attempts=4)
    consumer.start()
    await asyncio.wait_for(consumer.ready.wait(), 10)
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE)
    try:
        event = make_event(EventType.PAYMENT_FAILED, str(uuid.uuid4()))
        recorder.failures_left[event.event_id] = 2
        await publisher.publish(event)
        await wait_until(lambda: consumer.handled == 1)
        assert len(recorder.calls) == 3
        assert consumer.dead_lettered == 0
    finally:
        await consumer.stop()
        await publisher.close()


async def test_message_that_always_fails_ends_in_the_dead_letter_queue(service_env, pool, infra, run_id):
    recorder = Recorder()
    queue = f"dlq-{uuid.uuid4().hex[:8]}.events"
    consumer = make_consumer(service_env, pool, queue, recorder, "story.created", max_attempts=3)
    consumer.start()
    await asyncio.wait_for(consumer.ready.wait(), 10)
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE)
    try:
        event = make_event(EventType.STORY_CREATED, str(uuid.uuid4()))
        recorder.failures_left[event.event_id] = -1
        await publisher.publish(event)
        await wait_until(lambda: consumer.dead_lettered == 1)
        assert len(recorder.calls) == 3  # exactly N tries
        # The failed attempts left no idempotency record: a replay from the DLQ can still apply it.
        assert await pool.fetchval("SELECT count(*) FROM processed_events WHERE event_id = $1", event.event_id) == 0
        await wait_until(lambda: (queue_info(infra, run_id, consumer.dlq) or {}).get("messages", 0) == 1, timeout=15)
        info = queue_info(infra, run_id, queue)
        assert info["messages"] == 0
    finally:
        await consumer.stop()
        await publisher.close()
    # The parked message is the original event, with the error recorded.
    ch = await AMQPChannel(service_env["RABBITMQ_URL"], "dlq-reader").open()
    try:
        got: asyncio.Future = asyncio.get_running_loop().create_future()
        ch.channel.basic_get(consumer.dlq, lambda _c, m, p, b: got.set_result((p, b)), auto_ack=True)
        props, body = await asyncio.wait_for(got, 5)
        assert Event.from_bytes(body).event_id == event.event_id
        assert "handler failed on purpose" in props.headers["x-last-error"]
    finally:
        await ch.close()


async def test_unknown_types_and_unknown_fields(service_env, pool):
    recorder = Recorder()
    queue = f"unknown-{uuid.uuid4().hex[:8]}.events"
    consumer = make_consumer(service_env, pool, queue, recorder, "user.updated")
    consumer.bindings = ["user.#", "future.#"]
    consumer.start()
    await asyncio.wait_for(consumer.ready.wait(), 10)
    ch = await AMQPChannel(service_env["RABBITMQ_URL"], "raw").open()
    try:
        future_event = {
            "event_id": str(uuid.uuid4()),
            "event_type": "future.thing",
            "timestamp": "2026-11-29T10:00:00Z",
            "data": {},
        }
        await ch.publish(EXCHANGE, "future.thing", orjson.dumps(future_event))
        newer = {
            "event_id": str(uuid.uuid4()),
            "event_type": "user.updated",
            "timestamp": "2026-11-29T10:00:00+00:00",
            "user_id": "u1",
            "data": {"name": "x"},
            "version": 2,
            "trace": {"span": "abc"},
        }
        await ch.publish(EXCHANGE, "user.updated", orjson.dumps(newer))
        await ch.publish(EXCHANGE, "user.updated", b"\x00not json")
        await wait_until(lambda: len(recorder.calls) == 1 and consumer.dead_lettered == 1)
        assert recorder.calls[0].model_extra == {"trace": {"span": "abc"}}
        assert recorder.calls[0].version == 2
    finally:
        await ch.close()
        await consumer.stop()


async def test_event_schema_round_trip():
    e = make_event("subscription.upgraded", "u1", {"tier": 1}, source="stripe")
    back = Event.from_bytes(e.to_bytes())
    assert back == e and back.timestamp.tzinfo is not None and back.known
    assert Event.model_validate({"event_type": "x.y", "timestamp": "2026-01-01T00:00:00"}).timestamp.tzinfo is not None


async def test_a_handler_must_take_conn_event_and_state():
    handlers = EventHandlers()

    async def old_style(conn, event):
        pass

    with pytest.raises(TypeError, match=r"must take \(conn, event, state\)"):
        handlers.on("user.created")(old_style)
    assert handlers.bindings == []

    @handlers.on("user.created", EventType.USER_DELETED)
    async def on_user(conn, event, state):
        pass

    assert handlers.bindings == ["user.created", "user.deleted"]
    assert handlers.on("quota.updated")(Recorder())  # a callable object with the signature is fine


async def _fresh_outbox(pool) -> None:
    """The earlier tests' rows out of the way: backdated rows of this test come after them in id
    order, which real rows never do (ids follow creation; the sweep stops at the first recent one)."""
    await pool.execute("DELETE FROM outbox_events")


async def _emit_rows(pool, *events: Event, published_ago_hours: float | None) -> None:
    """Events in the outbox as the relay leaves them: published `published_ago_hours` ago (created
    a minute before that), or unpublished (None) and as old as a day."""
    async with pool.acquire() as conn, conn.transaction():
        await emit(conn, *events)
        ids = [e.event_id for e in events]
        if published_ago_hours is None:
            await conn.execute(
                "UPDATE outbox_events SET created_at = now() - interval '1 day' WHERE event_id = ANY($1::uuid[])", ids
            )
        else:
            await conn.execute(
                "UPDATE outbox_events SET published_at = now() - make_interval(hours => $2),"
                " created_at = now() - make_interval(hours => $2, mins => 1) WHERE event_id = ANY($1::uuid[])",
                ids,
                published_ago_hours,
            )


async def _left(pool, events: list[Event]) -> set[str]:
    rows = await pool.fetch(
        "SELECT event_id::text FROM outbox_events WHERE event_id = ANY($1::uuid[])", [e.event_id for e in events]
    )
    return {r[0] for r in rows}


async def test_sweep_deletes_published_rows_past_the_retention_never_unpublished_ones(pool):
    old = [make_event(EventType.USER_CREATED, str(uuid.uuid4()), {"email": f"{i}@example.com"}) for i in range(7)]
    recent = make_event(EventType.USER_CREATED, str(uuid.uuid4()), {"email": "recent@example.com"})
    owed = make_event(EventType.USER_DELETED, str(uuid.uuid4()))
    await _fresh_outbox(pool)
    await _emit_rows(pool, *old, published_ago_hours=30)
    await _emit_rows(pool, recent, published_ago_hours=1)
    await _emit_rows(pool, owed, published_ago_hours=None)
    try:
        # Batches of 3: the sweep goes on until a batch comes back short.
        assert await sweep_published(pool, 24 * 3600, batch_size=3) >= len(old)
        assert await _left(pool, [*old, recent, owed]) == {recent.event_id, owed.event_id}
        assert await sweep_published(pool, 24 * 3600) == 0
    finally:
        await pool.execute(
            "DELETE FROM outbox_events WHERE event_id = ANY($1::uuid[])", [recent.event_id, owed.event_id]
        )


async def test_relay_sweeps_on_its_own_schedule(service_env, pool):
    old = make_event(EventType.USER_CREATED, str(uuid.uuid4()), {"email": "old@example.com"})
    await _fresh_outbox(pool)
    await _emit_rows(pool, old, published_ago_hours=2)
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE, "test-relay")
    relay = OutboxRelay(pool, publisher, poll_seconds=0.2, retention_seconds=3600, sweep_every_seconds=0.1)
    relay.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        # Polls rows another task (the sweeper) deletes in PostgreSQL: there is no event to await.
        while await _left(pool, [old]) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert await _left(pool, [old]) == set()
        assert relay.swept_total >= 1
    finally:
        await relay.stop()
        await publisher.close()


async def test_user_deleted_erases_the_users_published_rows_and_keeps_what_is_owed(service_env, pool):
    """Whatever the service's own handler does, its consumer deletes the published rows naming
    the user; an unpublished one (owed to the bus) and another user's stay."""
    gone, kept = str(uuid.uuid4()), str(uuid.uuid4())
    published = [
        make_event(EventType.USER_CREATED, gone, {"email": "gone@example.com"}),
        make_event(EventType.ROOM_JOINED, kept, {"owner_id": gone}),  # named in the data only
    ]
    owed = make_event(EventType.IMAGE_DELETED, gone)
    other = make_event(EventType.USER_CREATED, kept, {"email": "kept@example.com"})
    await _emit_rows(pool, *published, other, published_ago_hours=0)
    await _emit_rows(pool, owed, published_ago_hours=None)
    recorder = Recorder()
    consumer = make_consumer(service_env, pool, f"erase-{uuid.uuid4().hex[:8]}.events", recorder, "user.deleted")
    consumer.start()
    await asyncio.wait_for(consumer.ready.wait(), 10)
    publisher = EventPublisher(service_env["RABBITMQ_URL"], EXCHANGE)
    try:
        await publisher.publish(make_event(EventType.USER_DELETED, gone))
        await wait_until(lambda: consumer.handled == 1)
        assert await _left(pool, [*published, owed, other]) == {owed.event_id, other.event_id}
    finally:
        await consumer.stop()
        await publisher.close()
        await pool.execute(
            "DELETE FROM outbox_events WHERE event_id = ANY($1::uuid[])", [owed.event_id, other.event_id]
        )
