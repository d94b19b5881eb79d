"""Notifications benchmark (issue 16), both figures from one run against Community as one uvicorn
worker on fresh databases and a fresh RabbitMQ vhost.

1. In-app throughput: --events events (streak.milestone and achievement.unlocked over --users
   users) are queued on the service's notification queue, then the service starts and drains
   them. Rate = notifications committed / (last commit - first commit), from the rows' own
   `created_at` (transaction start), and the wall-clock drain from the first row to the last
   seen. Next to it, a bare consume-and-ack loop over the same messages (no database): the
   broker's own ceiling on this machine. Target >= 1,000 notifications/s.
2. Live latency: --streams open `GET /notifications/stream` connections (one per user, raw
   asyncio sockets, so the client costs little), then --live events published at --rate per
   second to random connected users. Latency = the frame's arrival - the moment before its
   event was published (bus, consumer, commit, NOTIFY, stream). Target p99 <= 100 ms.

Run: .venv/bin/python bench/bench_notifications.py [--events 10000 --streams 1000 --live 2000 --rate 200]
Prints the load average: on a shared machine the figures move with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import orjson
from common import Infra, percentile, summary

from community_service.notifications.consumer import BINDINGS, QUEUE
from shared.auth import mint_access_token
from shared.bus import EventPublisher
from shared.bus.amqp import AMQPChannel, declare_event_exchange
from shared.events import make_event
from shared.testing.env import TEST_JWT_SECRET, new_run_id
from shared.testing.plugin import build_service_env, isolated_infra
from shared.testing.processes import ServiceProcess

EXCHANGE = "scenextras.events"
BARE = "bench.bare.notifications"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def events_for(users: list[str], n: int, seed: int = 11) -> list:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        user = rnd.choice(users)
        if i % 2:
            out.append(make_event("streak.milestone", user, {"milestone": rnd.choice((3, 7, 14, 30, 100))}))
        else:
            out.append(make_event("achievement.unlocked", user, {"code": f"bench-{i}", "name": f"Badge {i}"}))
    return out


async def publish_all(publisher: EventPublisher, events: list, concurrency: int = 200) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(events), concurrency):
        await asyncio.gather(*(publisher.publish(e) for e in events[i : i + concurrency]))
    return time.perf_counter() - t0


async def declare(url: str) -> None:
    """The service's queue (as its consumer declares it) and a bare copy, bound before publishing."""
    ch = AMQPChannel(url, "bench-declare")
    await ch.open()
    try:
        await declare_event_exchange(ch, EXCHANGE)
        for queue in (QUEUE, BARE):
            await ch.declare_queue(queue)
            for key in BINDINGS:
                await ch.bind_queue(queue, EXCHANGE, key)
    finally:
        await ch.close()


async def bare_drain(url: str, n: int) -> float:
    """Consume-and-ack with no work: messages/s the broker and pika give on this machine."""
    ch = AMQPChannel(url, "bench-bare")
    await ch.open()
    await ch.qos(1000)
    done = asyncio.Event()
    seen = 0
    first = last = 0.0

    def on_message(_c, method, _p, _b):
        nonlocal seen, first, last
        seen += 1
        last = time.perf_counter()
        if seen == 1:
            first = last
        ch.channel.basic_ack(method.delivery_tag)
        if seen >= n:
            done.set()

    ch.channel.basic_consume(BARE, on_message, auto_ack=False)
    await asyncio.wait_for(done.wait(), 300)
    await ch.close()
    return (n - 1) / (last - first)


class SSEClient:
    """One stream over a raw socket: the frames' `data:` lines, with their arrival times."""

    def __init__(self, host: str, port: int, token: str, arrivals: dict):
        self.host, self.port, self.token, self.arrivals = host, port, token, arrivals
        self.ready = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(
            (
                f"GET /notifications/stream HTTP/1.1\r\nHost: {self.host}\r\nAccept: text/event-stream\r\n"
                f"Authorization: Bearer {self.token}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"retry:"):
                    self.ready.set()  # the stream is subscribed
                elif line.startswith(b"data: "):
                    now = time.time()
                    item = orjson.loads(line[6:])
                    self.arrivals[item["data"]["code"]] = now
        finally:
            writer.close()


async def bench(args) -> None:
    infra = Infra.from_environ()
    tag = new_run_id()
    async with isolated_infra(infra, tag) as (dsns, amqp_url):
        env = build_service_env(infra, tag, dsns, amqp_url, None)
        env.update({"EMAIL_BACKEND": "console", "LOG_LEVEL": "WARNING", "DB_POOL_MAX": "20"})
        users = [str(uuid.uuid4()) for _ in range(max(args.users, args.streams))]
        await declare(amqp_url)
        publisher = EventPublisher(amqp_url, EXCHANGE, name="bench")
        backlog = events_for(users[: args.users], args.events)
        publish_s = await publish_all(publisher, backlog)
        bare_rate = await bare_drain(amqp_url, args.events)
        print(f"load average before: {loadavg()}")
        print(f"published {args.events} events in {publish_s:.2f} s ({args.events / publish_s:.0f}/s)")
        print(f"bare consume-and-ack of the same messages: {bare_rate:.0f} msg/s")

        proc = ServiceProcess("community", env, log_dir=Path(tempfile.mkdtemp(prefix="bench-notif-")))
        pool = await asyncpg.create_pool(env["COMMUNITY_DATABASE_URL"], min_size=1, max_size=2)
        proc.start(timeout=180)
        try:
            # 1. In-app throughput: the backlog drained by the running service.
            t_seen_first = None
            while True:
                count = await pool.fetchval("SELECT count(*) FROM notifications")
                if count and t_seen_first is None:
                    t_seen_first = time.perf_counter()
                if count >= args.events:
                    break
                await asyncio.sleep(0.02)
            wall = time.perf_counter() - t_seen_first
            # Batches run back to back: from the first batch's start to the last one's, every batch but
            # the last was applied. created_at is each batch transaction's start.
            stats = await pool.fetchrow(
                "SELECT extract(epoch FROM max(created_at) - min(created_at))::float8 AS span,"
                " count(*) FILTER (WHERE created_at < (SELECT max(created_at) FROM notifications)) AS before_last,"
                " count(DISTINCT created_at) AS batches FROM notifications"
            )
            span, before_last = stats["span"], stats["before_last"]
            rate = before_last / span if span else float("nan")
            print(
                f"in-app: {args.events} notifications in {stats['batches']} batches; {before_last} applied between the "
                f"first batch's start and the last one's ({span:.2f} s) = {rate:.0f}/s; "
                f"wall clock first row seen -> all seen {wall:.2f} s; {rate / bare_rate:.0%} of the bare loop; "
                "target >= 1,000/s"
            )
            dup = await pool.fetchval("SELECT count(*) - count(DISTINCT (user_id, dedup_key)) FROM notifications")
            print(f"  duplicates: {dup}")

            # 2. Live latency at --streams open streams.
            arrivals: dict[str, float] = {}
            host, port = "127.0.0.1", proc.port
            streamers = users[: args.streams]
            clients = [
                SSEClient(host, port, mint_access_token(TEST_JWT_SECRET, user_id=u, email=None, tier=0), arrivals)
                for u in streamers
            ]
            tasks = [asyncio.create_task(c.run()) for c in clients]
            await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 120)
            print(f"{len(clients)} streams open; load average: {loadavg()}")
            rnd = random.Random(5)
            sent: dict[str, float] = {}
            interval = 1.0 / args.rate
            t_next = time.perf_counter()
            for i in range(args.live):
                code = f"live-{i}"
                sent[code] = time.time()
                await publisher.publish(make_event("achievement.unlocked", rnd.choice(streamers), {"code": code}))
                t_next += interval
                delay = t_next - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            deadline = time.perf_counter() + 30
            while len(arrivals) < args.live and time.perf_counter() < deadline:  # noqa: ASYNC110 - a bounded wait
                await asyncio.sleep(0.05)
            latencies = [(arrivals[c] - t) * 1000 for c, t in sent.items() if c in arrivals]
            print(
                f"live: {len(latencies)}/{args.live} frames at {args.rate}/s over {len(clients)} open streams: "
                f"{summary(latencies)}; target p99 <= 100 ms"
            )
            print(f"  p90 {percentile(latencies, 90):.1f} ms, max {max(latencies):.1f} ms")
            # Where the time goes: publish -> the consumer's transaction start (bus, batching) and
            # transaction start -> frame (statements, commit, NOTIFY, stream, client).
            started = {
                r["code"]: r["at"]
                for r in await pool.fetch(
                    "SELECT data->>'code' AS code, extract(epoch FROM created_at)::float8 AS at FROM notifications"
                    " WHERE data->>'code' LIKE 'live-%'"
                )
            }
            to_tx = [(started[c] - t) * 1000 for c, t in sent.items() if c in started]
            tx_to_frame = [(arrivals[c] - started[c]) * 1000 for c in sent if c in arrivals and c in started]
            print(f"  publish -> transaction start: {summary(to_tx)}")
            print(f"  transaction start -> frame:   {summary(tx_to_frame)}")
            print(f"load average after: {loadavg()}")
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            proc.stop()
            await pool.close()
            await publisher.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--streams", type=int, default=1_000)
    parser.add_argument("--live", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=200.0)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
