"""Analytics benchmarks, side by side in one run.

1. Ingestion: N events published to a real RabbitMQ (topic exchange, copied to three queues
   bound to `#`). A bare consume-and-ack loop drains one copy, the analytics BatchConsumer (the
   service's own Ingestor: raw rows, rollups, progression, in one transaction per batch) drains
   the second, and the bare loop drains the third: the consumer's sustained rate against the
   mean of the two bare rates. Targets: >= 5,000 events/s and >= 50% of the bare loop.
2. Percentile/rank lookup at --users users (histograms built by the service's own code path,
   Pareto-distributed values): p99 of `ranks.rank()` over --lookups lookups. Target p99 <= 5 ms.

Run: .venv/bin/python bench/bench_analytics.py [--events 40000 --users 20000 --batch 1000]
     (needs scripts/infra.sh's PostgreSQL and RabbitMQ). Prints the load average with the figures:
     on a shared machine they move with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
from common import ROOT, Infra, create_database, create_vhost, drop_database, summary

from analytics_service.repositories import ranks as ranks_repo
from analytics_service.service import Ingestor
from shared.bus import EventPublisher
from shared.bus.amqp import AMQPChannel, declare_event_exchange
from shared.bus.batch import BatchConsumer
from shared.events import make_event
from shared.migrate import migrate
from shared.testing.env import delete_vhost

EXCHANGE = "scenextras.events"
QUEUE = "analytics_service.events"
BARE = ("bench.bare.before", "bench.bare.after")
CHARACTERS = [f"character-{i}" for i in range(300)]


def make_events(n: int, users: int, seed: int = 7) -> list:
    """A chat-heavy mix over the last 24 hours: mostly replies, some new conversations, images,
    stories and check-ins, the odd upgrade."""
    rnd = random.Random(seed)
    ids = [str(uuid.UUID(int=rnd.getrandbits(128))) for _ in range(users)]
    convs: dict[str, str] = {}
    now = datetime.now(UTC)
    out = []
    for _ in range(n):
        user = ids[min(int(rnd.paretovariate(1.2)) - 1, users - 1) if rnd.random() < 0.5 else rnd.randrange(users)]
        at = now - timedelta(seconds=rnd.randrange(86_400))
        r = rnd.random()
        if r < 0.80:
            conv = convs.setdefault(user, str(uuid.uuid4()))
            data = {"conversation_id": conv, "sender": rnd.choice(CHARACTERS), "regenerated": rnd.random() < 0.05}
            e = make_event("message.sent", user, data, source="chat_service")
        elif r < 0.88:
            convs[user] = str(uuid.uuid4())
            e = make_event("conversation.created", user, {"conversation_id": convs[user]}, source="chat_service")
        elif r < 0.94:
            e = make_event("image.generated", user, {"image_id": str(uuid.uuid4())}, source="media_service")
        elif r < 0.97:
            e = make_event("story.created", user, {"story_id": str(uuid.uuid4())}, source="content_service")
        elif r < 0.995:
            e = make_event("quota.consumed", user, {"kind": "messages"}, source="payment_service")
        else:
            e = make_event("subscription.created", user, {"tier": 1, "previous_tier": 0}, source="payment_service")
        e.timestamp = at
        out.append(e)
    return out


async def bare_loop(url: str, queue: str, n: int, prefetch: int) -> float:
    """Consume and ack each message, nothing else: the broker's and the client's ceiling."""
    ch = await AMQPChannel(url, f"bare:{queue}").open()
    await ch.qos(prefetch)
    done = asyncio.get_running_loop().create_future()
    seen = 0
    start = 0.0

    def on_message(_c, method, _p, _body):
        nonlocal seen, start
        if seen == 0:
            start = time.perf_counter()
        seen += 1
        ch.channel.basic_ack(method.delivery_tag)
        if seen == n and not done.done():
            done.set_result(time.perf_counter())

    ch.channel.basic_consume(queue, on_message, auto_ack=False)
    end = await asyncio.wait_for(done, 600)
    await ch.close()
    return (n - 1) / (end - start)


async def consumer_rate(url: str, pool: asyncpg.Pool, n: int, batch: int) -> tuple[float, int]:
    consumer = BatchConsumer(
        url=url,
        exchange=EXCHANGE,
        queue=QUEUE,
        pool=pool,
        handle_batch=Ingestor(),
        bindings=["#"],
        batch_size=batch,
        max_wait_ms=20,
    )
    start = time.perf_counter()
    consumer.start()
    await asyncio.wait_for(consumer.ready.wait(), 30)
    first = None
    while consumer.handled + consumer.duplicates < n:
        if first is None and consumer.handled:
            first = time.perf_counter()
        await asyncio.sleep(0.01)
    end = time.perf_counter()
    await consumer.stop()
    # From the consumer's start: includes filling the first batch, the honest "sustained" figure.
    return n / (end - start), consumer.batches


async def bench_ingestion(infra: Infra, run: str, n: int, users: int, batch: int) -> dict:
    dsn = await create_database(infra, run)
    url = create_vhost(infra, run)
    try:
        await migrate(dsn, "analytics", ROOT / "analytics_service" / "migrations")
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
        ch = await AMQPChannel(url, "bench-setup").open()
        await declare_event_exchange(ch, EXCHANGE)
        for q in (QUEUE, *BARE):
            await ch.declare_queue(q)
            await ch.bind_queue(q, EXCHANGE, "#")
        await ch.close()

        events = make_events(n, users)
        publisher = EventPublisher(url, EXCHANGE, "bench-publisher")
        t = time.perf_counter()
        for i in range(0, n, 5000):
            chunk = events[i : i + 5000]
            errors = await publisher.publish_raw([(e.event_id, e.event_type, e.to_bytes()) for e in chunk], timeout=60)
            assert not [e for e in errors if e is not None], errors[:3]
        print(f"  published {n:,} events x {1 + len(BARE)} queues in {time.perf_counter() - t:.1f} s")
        await publisher.close()

        bare_before = await bare_loop(url, BARE[0], n, 2 * batch)
        rate, batches = await consumer_rate(url, pool, n, batch)
        bare_after = await bare_loop(url, BARE[1], n, 2 * batch)
        raw = await pool.fetchval("SELECT count(*) FROM analytics_events")
        assert raw == n, (raw, n)
        await pool.close()
        bare = (bare_before + bare_after) / 2
        return {
            "rate": rate,
            "batches": batches,
            "bare_before": bare_before,
            "bare_after": bare_after,
            "ratio": rate / bare,
        }
    finally:
        await drop_database(infra, run)
        delete_vhost(infra, run)


async def bench_ranks(infra: Infra, run: str, users: int, lookups: int) -> dict:
    dsn = await create_database(infra, run)
    try:
        await migrate(dsn, "analytics", ROOT / "analytics_service" / "migrations")
        rnd = random.Random(11)
        values = [min(int(rnd.paretovariate(0.8)) - 1, 10_000_000) for _ in range(users)]
        counts = Counter(values)
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await ranks_repo.shift(conn, "messages", counts)
            await conn.execute("ANALYZE metric_histogram; ANALYZE metric_histogram_blocks")
            sample = [rnd.choice(values) for _ in range(lookups)]
            timings = []
            ordered = sorted(values, reverse=True)
            for v in sample:
                t = time.perf_counter()
                above, total = await ranks_repo.rank(conn, "messages", v)
                timings.append((time.perf_counter() - t) * 1000)
                assert total == users
            # spot check against a brute-force count
            for v in sample[:20]:
                assert (await ranks_repo.rank(conn, "messages", v))[0] == sum(1 for x in ordered if x > v)
        finally:
            await conn.close()
        return {"timings": timings, "distinct": len(counts)}
    finally:
        await drop_database(infra, run)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rank-users", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--skip", choices=["ingestion", "ranks"], action="append", default=[])
    args = parser.parse_args()
    infra = Infra.from_environ()
    tag = uuid.uuid4().hex[:6]
    print(f"cores {os.cpu_count()}, load average {load()}")
    if "ingestion" not in args.skip:
        r = await bench_ingestion(infra, f"bench_analytics_{tag}", args.events, args.users, args.batch)
        print(f"ingestion: {args.events:,} events, {args.users:,} users, batch {args.batch}")
        print(f"  bare consume-and-ack: {r['bare_before']:,.0f}/s before, {r['bare_after']:,.0f}/s after")
        print(f"  analytics consumer:   {r['rate']:,.0f} events/s ({r['batches']} batches)")
        print(f"  ratio to the bare loop: {100 * r['ratio']:.0f}%   (targets: >= 5,000/s, >= 50%)")
        print(f"  load average {load()}")
    if "ranks" not in args.skip:
        r = await bench_ranks(infra, f"bench_ranks_{tag}", args.rank_users, args.lookups)
        print(f"rank lookup: {args.rank_users:,} users, {r['distinct']:,} distinct values")
        print(f"  {summary(r['timings'])}   (target p99 <= 5 ms)")
        print(f"  load average {load()}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
