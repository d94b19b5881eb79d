"""RabbitMQ restarted while Analytics has a backlog (issue 18): a real broker restart, on a node of
this module's own (tests/e2e/rabbit_node.py), so the shared broker other test runs use is never
touched. Analytics runs as a uvicorn process against it.

The backlog is made certain rather than hoped for: Analytics is frozen (SIGSTOP) after it has
counted part of the first chunk, the rest is published, and the node is stopped and started
again while Analytics cannot drain anything. Then:
- the restart lost nothing: the queue holds at least every message Analytics had not counted;
- once Analytics runs again, every event is one raw row and the user's message count equals the
  distinct events (the batch frozen mid-way and the deliveries it never acknowledged come back
  and are recognised), nothing is dead-lettered, and the consumer is attached to the new node;
- Analytics' own events (level-ups, achievements), written to its outbox before and after the
  restart, are all published (its relay reconnected too).
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import uuid

import asyncpg
import pytest

from shared.bus.publisher import EventPublisher
from shared.events import make_event
from shared.testing import poll
from shared.testing.fleet import Fleet
from tests.e2e.conftest import counted, wait_ready
from tests.e2e.rabbit_node import RabbitNode

QUEUE = "analytics_service.events"
NAMES_USER = "convert_from(body, 'UTF8')::jsonb->>'user_id' = $1"
# 90 s: a connection dead without pika being told is closed by the heartbeat within ~40 s (bug 5).
until = functools.partial(poll.eventually, timeout=90.0, interval=0.2)


@pytest.fixture(scope="module")
def node():
    n = RabbitNode().start()
    yield n
    n.remove()


@pytest.fixture(scope="module")
def fleet(e2e_env, node, tmp_path_factory):
    env = {**e2e_env, "RABBITMQ_URL": node.url}
    # Not proxied: the services talk to the node itself, so its restart is what they see.
    with Fleet(env, log_dir=tmp_path_factory.mktemp("fleet"), services=("analytics",), proxied=False) as f:
        yield f


def message(user_id: str, conversation: str):
    return make_event(
        "message.sent",
        user_id,
        {"conversation_id": conversation, "message_id": str(uuid.uuid4()), "sender": "Aria"},
        source="chat_service",
    )


async def publish(url: str, items: list[tuple[str, str, bytes]]) -> None:
    publisher = EventPublisher(url, "scenextras.events", name="restart-test-publisher")
    try:
        for start in range(0, len(items), 1000):
            errors = await publisher.publish_raw(items[start : start + 1000], timeout=60)
            assert not any(errors), [e for e in errors if e][:3]
    finally:
        await publisher.close()


async def test_analytics_backlog_survives_a_broker_restart(fleet, node, analytics_db):
    db = analytics_db
    user_id = str(uuid.uuid4())
    conversation = str(uuid.uuid4())
    first = [message(user_id, conversation) for _ in range(2000)]
    second = [message(user_id, conversation) for _ in range(3000)]
    ids = [uuid.UUID(e.event_id) for e in first + second]

    async def consumer_attached():
        state = await asyncio.to_thread(node.queue, QUEUE)
        return state is not None and state[1] >= 1

    await until(consumer_attached, what="Analytics consuming from the node")

    def items(events):
        return [(e.event_id, e.event_type, e.to_bytes()) for e in events]

    await publish(node.url, items(first))
    await until(lambda: counted(db, ids), what="Analytics counting the first chunk")
    analytics = fleet.procs["analytics"].proc
    os.kill(analytics.pid, signal.SIGSTOP)
    try:
        # Frozen: from here nothing more is counted or acknowledged until SIGCONT.
        # Duplicates too, as an outbox relay may publish an event again after a lost confirm.
        await publish(node.url, items(second) + items(first[:300]) + items(second[:300]))
        published = len(first) + len(second) + 600
        counted_at_restart = await counted(db, ids)
        assert counted_at_restart < len(ids)

        await asyncio.to_thread(node.restart)
        state = await asyncio.to_thread(node.queue, QUEUE)
        assert state is not None, "the queue did not survive the restart"
        ready, _ = state
        # Acknowledged ⊆ counted (a batch is acknowledged after its transaction commits), so at
        # least every message not counted is still in the queue after the restart.
        assert ready >= published - counted_at_restart, (ready, published, counted_at_restart)
    finally:
        os.kill(analytics.pid, signal.SIGCONT)

    await until(lambda: _all_counted(db, ids), what="every event counted")
    await until(consumer_attached, what="the consumer attached to the restarted node")

    async def drained():
        state = await asyncio.to_thread(node.queue, QUEUE)
        return state is not None and state[0] == 0

    await until(drained, what="the queue drained")
    rows = await db.fetchval("SELECT count(*) FROM analytics_events WHERE event_id = ANY($1::uuid[])", ids)
    assert rows == len(ids), f"{rows} raw rows for {len(ids)} events"
    messages = await db.fetchval("SELECT messages FROM user_analytics WHERE user_id = $1::uuid", user_id)
    assert messages == len(ids)
    dead = await asyncio.to_thread(node.queue, QUEUE + ".dlq")
    assert dead is None or dead[0] == 0, dead

    # Analytics' own events for this user (level-ups, achievements), written before and after the
    # restart: all published in the end (the outbox relay reconnected to the restarted node).
    async def outbox_published():
        return await db.fetchval(
            f"SELECT count(*) = 0 FROM outbox_events WHERE published_at IS NULL AND {NAMES_USER}", user_id
        )

    own = await db.fetchval(f"SELECT count(*) FROM outbox_events WHERE {NAMES_USER}", user_id)
    assert own > 0
    await until(outbox_published, what="Analytics' outbox published to the restarted node")
    await wait_ready(fleet.url("analytics"), timeout=30)
    print(f"analytics: {len(ids)} events (+600 duplicates), {counted_at_restart} counted at the restart")


async def _all_counted(db: asyncpg.Pool, ids: list[uuid.UUID]) -> bool:
    return await counted(db, ids) == len(ids)
