"""Analytics benchmarks, side by side in one run.

1. Ingestion: N events published to a real RabbitMQ (topic exchange, copied to three queues
   bound to `#`). A bare consume-and-ack loop drains one copy, the analytics BatchConsumer (the
   service's own Ingestor: raw rows, rollups, progression, in one transaction per batch) drains
   the second, and the bare loop drains the third: the consumer's sustained rate against the
   mean of the two bare rates. Targets: >= 5,000 events/s and >= 50% of the bare loop. Between
   the bare loop and the consumer, a floor consumer (LandingOnly: each event recorded once and
   kept raw, nothing derived) drains a fourth copy; every phase prints its CPU per event (this
   process, PostgreSQL's backends, the broker), and the budget line what 50% leaves to spend.
2. Percentile/rank lookup at --users users (histograms built by the service's own code path,
   Pareto-distributed values): p99 of `ranks.rank()` over --lookups lookups. Target p99 <= 5 ms.
3. `GET /analytics/me` over HTTP from one uvicorn worker (as deployed: uvloop, httptools), --me-users
   users seeded in SQL (rollups, progression, 30 days of active days, the rank histograms, tiers
   stored by the daily task), requests arriving open-loop at --me-rate per second (Poisson) for
   --me-seconds; latency counted from each request's scheduled arrival. Target p99 <= 15 ms at 200/s.
4. The platform query (`platform.platform()`, what /analytics/platform and the dashboard call) with
   --dashboard-events raw events (one year, generate_series) in analytics_events and the rollups
   made from them by SQL aggregates: 30 days by day, a year by day, 7 days by hour; the 30-day range
   ending yesterday (stored DAU/WAU/MAU) and today (WAU/MAU counted). Target p99 <= 200 ms.

Run: .venv/bin/python bench/bench_analytics.py [--events 40000 --users 20000 --batch 1000]
     [--sql-breakdown: the consumer's time per SQL statement, awaited wall time on its side, which
     includes the event loop's delay in resuming it]
     (needs scripts/infra.sh's PostgreSQL and RabbitMQ). Prints the load average with the figures:
     on a shared machine they move with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from common import (
    ROOT,
    Infra,
    cpu_seconds_of,
    create_database,
    create_vhost,
    drop_database,
    process_cpu_seconds,
    summary,
    uvicorn_command,
)

from analytics_service import daily, platform
from analytics_service.repositories import events as events_repo
from analytics_service.repositories import ranks as ranks_repo
from analytics_service.repositories import rollups as rollups_repo
from analytics_service.service import Ingestor, Prepared
from shared.auth import mint_access_token
from shared.bus import EventPublisher
from shared.bus.amqp import AMQPChannel, declare_event_exchange
from shared.bus.batch import BatchConsumer
from shared.events import make_event
from shared.migrate import migrate
from shared.testing.env import TEST_JWT_SECRET, delete_vhost

EXCHANGE = "scenextras.events"
QUEUE = "analytics_service.events"
BARE = ("bench.bare.before", "bench.bare.after")
LANDING = "bench.landing"  # the floor: a consumer that only records and keeps each event
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


class Cpu:
    """CPU seconds used by this process and by the broker (RabbitMQ's beam.smp, read from /proc:
    the broker runs on this machine) between start() and stop(), per event."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.broker = _broker_pids()

    def start(self) -> Cpu:
        self._own = time.process_time()
        self._broker = cpu_seconds_of(self.broker)
        return self

    def stop(self) -> dict:
        own = time.process_time() - self._own
        end = cpu_seconds_of(self.broker)
        broker = sum(t - self._broker.get(pid, 0.0) for pid, t in end.items()) if end else None
        return {"own_us": 1e6 * own / self.n, "broker_us": None if broker is None else 1e6 * broker / self.n}


def _broker_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "beam.smp":
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


class LandingOnly:
    """The floor of any consumer that does what the issue asks first: each event recorded once
    (BatchConsumer's idempotency statement) and kept raw (the Ingestor's own raw insert), in one
    transaction per batch; no rollups, no progression. What the full consumer does beyond it is
    the derive step."""

    def __init__(self) -> None:
        self.months: set = set()

    @staticmethod
    def prepare(events: list, prepared: Prepared | None = None) -> Prepared:
        prepared = prepared or Prepared()
        prepared.keep_only(events)
        return prepared

    async def __call__(self, conn, events: list, state: Any = None, prepared: Prepared | None = None) -> None:
        if prepared is None or not prepared.made_of(events):
            prepared = self.prepare(events)
        await events_repo.ensure_partitions(conn, prepared.months, self.months)
        await events_repo.insert_raw(conn, prepared.rows, rollups_repo.ROLLUP_LOCK)


async def bare_loop(url: str, queue: str, n: int, prefetch: int) -> tuple[float, dict]:
    """Consume and ack each message, nothing else: the broker's and the client's ceiling. Also
    the CPU per event of this process (the loop alone runs in it meanwhile) and of the broker."""
    cpu = Cpu(n).start()
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
    used = cpu.stop()
    await ch.close()
    return (n - 1) / (end - start), used


class StatementTimes:
    """The wall time the consumer awaits each SQL statement (its first words): where a batch's
    transaction spends its time. Wraps asyncpg.Connection's query methods while installed."""

    METHODS = ("execute", "fetch", "fetchval", "fetchrow")

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.saved: dict[str, Any] = {}

    def install(self) -> None:
        for name in self.METHODS:
            self.saved[name] = getattr(asyncpg.Connection, name)
            setattr(asyncpg.Connection, name, self._timed(self.saved[name]))

    def uninstall(self) -> None:
        for name, method in self.saved.items():
            setattr(asyncpg.Connection, name, method)

    def _timed(self, method):
        async def timed(conn, query, *args, **kwargs):
            start = time.perf_counter()
            try:
                return await method(conn, query, *args, **kwargs)
            finally:
                entry = self.times.setdefault(" ".join(query.split())[:70], [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - start

        return timed

    def report(self, events: int, top: int = 12) -> list[str]:
        rows = sorted(self.times.items(), key=lambda kv: -kv[1][1])
        total = sum(t for _, t in self.times.values())
        lines = [f"  SQL awaited: {1e6 * total / events:.0f} us per event in all; by statement (us/event, calls):"]
        lines += [f"    {1e6 * t / events:6.1f} {n:5d}  {q}" for q, (n, t) in rows[:top]]
        return lines


async def backend_cpu(pool: asyncpg.Pool) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend of the pool's database (read from
    /proc: PostgreSQL runs on this machine; {} when it cannot be read; reading /proc does not
    block: a plain read between two measurements)."""
    pids = [r[0] for r in await pool.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]
    return cpu_seconds_of(pids)


async def consumer_rate(
    url: str,
    pool: asyncpg.Pool,
    n: int,
    batch: int,
    statements: StatementTimes | None = None,
    queue: str = QUEUE,
    handler: Any = None,
) -> tuple[float, int, float, float | None, float | None]:
    consumer = BatchConsumer(
        url=url,
        exchange=EXCHANGE,
        queue=queue,
        pool=pool,
        handle_batch=handler or Ingestor(),
        bindings=["#"],
        batch_size=batch,
        max_wait_ms=20,
    )
    db_start = await backend_cpu(pool)
    broker = Cpu(n).start()
    start = time.perf_counter()
    cpu_start = time.process_time()
    if statements is not None:
        statements.install()
    consumer.start()
    await asyncio.wait_for(consumer.ready.wait(), 30)
    first = None
    while consumer.handled + consumer.duplicates < n:
        if first is None and consumer.handled:
            first = time.perf_counter()
        await asyncio.sleep(0.01)
    end = time.perf_counter()
    cpu = time.process_time() - cpu_start
    broker_us = broker.stop()["broker_us"]
    db_end = await backend_cpu(pool)
    db_cpu = sum(t - db_start.get(pid, 0.0) for pid, t in db_end.items()) if db_end else None
    if statements is not None:
        statements.uninstall()
    await consumer.stop()
    # From the consumer's start: includes filling the first batch, the honest "sustained" figure.
    return n / (end - start), consumer.batches, cpu, db_cpu, broker_us


async def bench_ingestion(infra: Infra, run: str, n: int, users: int, batch: int, sql_breakdown: bool = False) -> dict:
    dsn = await create_database(infra, run)
    url = create_vhost(infra, run)
    try:
        await migrate(dsn, "analytics", ROOT / "analytics_service" / "migrations")
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
        ch = await AMQPChannel(url, "bench-setup").open()
        await declare_event_exchange(ch, EXCHANGE)
        for q in (QUEUE, LANDING, *BARE):
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
        print(f"  published {n:,} events x {2 + len(BARE)} queues in {time.perf_counter() - t:.1f} s")
        await publisher.close()

        bare_before, bare_cpu_before = await bare_loop(url, BARE[0], n, 2 * batch)
        floor_rate, _, floor_cpu, floor_db_cpu, floor_broker = await consumer_rate(
            url, pool, n, batch, queue=LANDING, handler=LandingOnly()
        )
        assert await pool.fetchval("SELECT count(*) FROM analytics_events") == n
        # The full consumer starts from empty tables, as the floor did.
        await pool.execute("TRUNCATE analytics_events, processed_events")
        statements = StatementTimes() if sql_breakdown else None
        rate, batches, cpu, db_cpu, broker_us = await consumer_rate(url, pool, n, batch, statements)
        bare_after, bare_cpu_after = await bare_loop(url, BARE[1], n, 2 * batch)
        raw = await pool.fetchval("SELECT count(*) FROM analytics_events")
        assert raw == n, (raw, n)
        await pool.close()
        bare = (bare_before + bare_after) / 2
        return {
            "rate": rate,
            "batches": batches,
            "bare_before": bare_before,
            "bare_after": bare_after,
            "bare_cpu": [bare_cpu_before, bare_cpu_after],
            "ratio": rate / bare,
            "floor": {
                "rate": floor_rate,
                "ratio": floor_rate / bare,
                "cpu_us": 1e6 * floor_cpu / n,
                "db_cpu_us": None if floor_db_cpu is None else 1e6 * floor_db_cpu / n,
                "broker_us": floor_broker,
            },
            "broker_us": broker_us,
            # This process's CPU while the consumer ran (nothing else runs in it meanwhile).
            "cpu_us": 1e6 * cpu / n,
            "cpu_share": cpu * rate / n,
            # PostgreSQL's backends for this database meanwhile (the consumer's transactions).
            "db_cpu_us": None if db_cpu is None else 1e6 * db_cpu / n,
            "db_cpu_share": None if db_cpu is None else db_cpu * rate / n,
            "statements": statements.report(n) if statements is not None else [],
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


SEED_USERS_SQL = """
INSERT INTO user_analytics (user_id, events, messages, conversations, characters, stories, images, upgrades,
                            active_days, first_seen_at, last_active_at)
SELECT md5('user' || i)::uuid, m + 10, m, 1 + m / 20, 1 + m / 50, m / 200, m / 100, (i % 17 = 0)::int,
       1 + (i % 30), now() - make_interval(days => 1 + i % 400), now() - make_interval(hours => i % 900)
  FROM (SELECT i, floor(power(random(), 4) * 3000)::bigint AS m FROM generate_series(1, $1) AS i) AS s;
INSERT INTO user_progress (user_id, timezone, xp, level, streak_current, streak_longest, streak_started_on,
                           last_active_day, last_checkin_day)
SELECT user_id, 'Europe/Paris', messages * 2 + 50, 1, active_days % 8, active_days % 20, current_date - 3,
       current_date, current_date
  FROM user_analytics;
INSERT INTO user_active_days (user_id, day)
SELECT DISTINCT user_id, current_date - (random() * 29)::int
  FROM user_analytics, generate_series(1, 1 + (abs(hashtext(user_id::text)) % 15));
"""

# One year of raw events for the platform query ($1 events, $2 users): each day about 3,000 of the
# users are active (a window that moves through them), ~9 events each at 10M a year.
SEED_RAW_SQL = """
INSERT INTO analytics_events (event_id, event_type, user_id, occurred_at, source, data)
SELECT gen_random_uuid(),
       CASE WHEN i % 10 < 8 THEN 'message.sent' WHEN i % 10 = 8 THEN 'conversation.created' ELSE 'image.generated' END,
       md5('user' || (((i::bigint * 365 / $1) * 997 + i % 3000) % $2))::uuid,
       date_trunc('hour', now()) - make_interval(secs => (i::bigint * 31536000 / $1)),
       'bench', '{"sender": "Frodo"}'::jsonb
  FROM generate_series(1, $1) AS i
"""
# The rollups the platform query reads, made from the raw events in SQL: one scan for the hourly
# counts and one for the day rows of who was active; day counts from the hour rows.
ROLLUPS_FROM_RAW_SQL = """
SET work_mem = '256MB';
CREATE TEMP TABLE per_hour AS
SELECT date_trunc('hour', occurred_at, 'UTC') AS b, event_type, count(*) AS n FROM analytics_events GROUP BY 1, 2;
INSERT INTO platform_metrics (granularity, bucket, metric, value)
SELECT g, b, m, sum(v) FROM (
    SELECT 'hour' AS g, b, event_type, n FROM per_hour
    UNION ALL
    SELECT 'day', date_trunc('day', b, 'UTC'), event_type, n FROM per_hour
) AS per_type
CROSS JOIN LATERAL (VALUES ('events', n),
                           ('messages', CASE WHEN event_type = 'message.sent' THEN n ELSE 0 END),
                           ('conversations', CASE WHEN event_type = 'conversation.created' THEN n ELSE 0 END),
                           ('images', CASE WHEN event_type = 'image.generated' THEN n ELSE 0 END)) AS x(m, v)
GROUP BY 1, 2, 3;
INSERT INTO activity_buckets (granularity, bucket, user_id)
SELECT 'day', date_trunc('day', occurred_at, 'UTC'), user_id FROM analytics_events GROUP BY 2, 3;
INSERT INTO platform_metrics (granularity, bucket, metric, value)
SELECT 'day', bucket, 'active_users', count(*) FROM activity_buckets WHERE granularity = 'day' GROUP BY bucket;
"""


async def serve(dsn: str, amqp_url: str, infra: Infra, port: int, log_path: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": dsn,
        "ANALYTICS_DATABASE_URL": dsn,
        "REDIS_URL": infra.redis_url,
        "REDIS_PREFIX": f"bench-{port}",
        "RABBITMQ_URL": amqp_url,
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "KNOWN_USERS_CHECK": "0",  # one service, no Auth: tokens of made-up users (docs/auth.md)
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "ANALYTICS_DAILY_CHECK_SECONDS": "0",
    }
    proc = subprocess.Popen(  # noqa: ASYNC220 (set-up, before anything is measured)
        uvicorn_command("analytics_service.main:app", port),
        cwd=ROOT,
        env=env,
        stdout=open(log_path, "wb"),  # noqa: ASYNC230
        stderr=subprocess.STDOUT,
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as probe:
        for _ in range(300):
            if proc.poll() is not None:
                raise SystemExit(f"the analytics worker exited, see {log_path}")
            try:
                if (await probe.get("/health")).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the analytics worker did not start")


class KeepAliveGets:
    """GET over HTTP/1.1 keep-alive connections with prepared bytes (as bench_payment's
    RawHttpClient posts): httpx costs milliseconds of CPU per request on the same two cores as the
    worker, which would be measured as the worker's latency."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.app_ms: list[float] = []  # the worker's own time per request (its Server-Timing header)

    async def get(self, path: str, token: str) -> int:
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        reader, writer = self._idle.pop() if self._idle else await asyncio.open_connection(self.host, self.port)
        writer.write(request)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"server-timing" and b"app;dur=" in value:
                self.app_ms.append(float(value.split(b"app;dur=")[1].split(b",")[0]))
        await reader.readexactly(length)
        self._idle.append((reader, writer))
        return status

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()


async def bench_me(infra: Infra, run: str, users: int, rate: float, seconds: float) -> dict:
    dsn = await create_database(infra, run)
    url = create_vhost(infra, run)
    proc = None
    try:
        await migrate(dsn, "analytics", ROOT / "analytics_service" / "migrations")
        t = time.perf_counter()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SEED_USERS_SQL.replace("$1", str(int(users))))
            await conn.execute(
                "UPDATE user_analytics ua SET active_days = d.n FROM (SELECT user_id, count(*) AS n"
                " FROM user_active_days GROUP BY 1) d WHERE d.user_id = ua.user_id"
            )
            async with conn.transaction():
                for metric, source in (
                    ("messages", "SELECT messages, count(*) FROM user_analytics GROUP BY 1"),
                    ("xp", "SELECT xp, count(*) FROM user_progress GROUP BY 1"),
                    ("streak", "SELECT streak_longest, count(*) FROM user_progress GROUP BY 1"),
                ):
                    await ranks_repo.rebuild(conn, metric, source)
            await conn.execute("VACUUM ANALYZE")
            ids = [str(r[0]) for r in await conn.fetch("SELECT user_id FROM user_analytics")]
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        tiers = (await daily.run_daily(pool, force=True))["tiers"]
        await pool.close()
        seeded = time.perf_counter() - t
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = await serve(dsn, url, infra, port, f"/tmp/bench_analytics_me_{run}.log")
        rnd = random.Random(5)
        tokens = {u: mint_access_token(TEST_JWT_SECRET, user_id=u) for u in rnd.sample(ids, min(len(ids), 5000))}
        chosen = list(tokens)
        times: list[float] = []
        errors = 0
        client = KeepAliveGets("127.0.0.1", port)
        try:
            for u in chosen[:50]:  # warm-up: the worker's first requests
                await client.get("/analytics/me", tokens[u])
            client.app_ms.clear()

            async def one(user: str, due: float) -> None:
                nonlocal errors
                status = await client.get("/analytics/me", tokens[user])
                times.append((time.perf_counter() - due) * 1000)
                if status != 200:
                    errors += 1

            gaps = random.Random(6).expovariate
            n = int(rate * seconds)
            cpu = process_cpu_seconds(proc.pid)
            start = due = time.perf_counter()
            tasks = []
            for i in range(n):
                due += gaps(rate)
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(chosen[i % len(chosen)], due)))
            await asyncio.gather(*tasks)
            achieved = n / (time.perf_counter() - start)
            cpu_ms = (process_cpu_seconds(proc.pid) - cpu) / n * 1000
        finally:
            await client.close()
        return {
            "times": times,
            "errors": errors,
            "rate": achieved,
            "seeded_s": seeded,
            "tiers": tiers,
            "cpu_ms": cpu_ms,
            "app_ms": list(client.app_ms),
        }
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        await drop_database(infra, run)
        delete_vhost(infra, run)


async def bench_dashboard(infra: Infra, run: str, events: int, users: int, queries: int) -> dict:
    dsn = await create_database(infra, run)
    try:
        await migrate(dsn, "analytics", ROOT / "analytics_service" / "migrations")
        t = time.perf_counter()
        conn = await asyncpg.connect(dsn)
        try:
            today = datetime.now(UTC).date().replace(day=1)
            await conn.execute(
                "SELECT analytics_ensure_partition(($1::date - make_interval(months => m))::date)"
                " FROM generate_series(0, 13) AS m",
                today,
            )
            await conn.execute(SEED_RAW_SQL, events, users)
            await conn.execute(ROLLUPS_FROM_RAW_SQL)
            await conn.execute("VACUUM ANALYZE")
            raw = await conn.fetchval("SELECT count(*) FROM analytics_events")
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        await daily.run_daily(pool, force=True)  # the stored DAU/WAU/MAU of the last 60 complete days
        seeded = time.perf_counter() - t
        now = datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        cases = {
            "30 days by day, ending yesterday (stored WAU/MAU)": (midnight - timedelta(days=30), midnight, "day"),
            "30 days by day, ending today (trailing + newcomers)": (
                midnight - timedelta(days=29),
                midnight + timedelta(days=1),
                "day",
            ),
            "365 days by day, ending yesterday": (midnight - timedelta(days=365), midnight, "day"),
            "7 days by hour, ending yesterday": (midnight - timedelta(days=7), midnight, "hour"),
        }
        results = {}
        for name, (start, end, granularity) in cases.items():
            timings = []
            for _ in range(queries):
                t0 = time.perf_counter()
                answer = await platform.platform(pool, start, end, granularity)
                timings.append((time.perf_counter() - t0) * 1000)
            results[name] = (timings, answer["mau"], sum(answer["series"]["messages"]))
        # Side by side: the same range ending today with WAU/MAU counted over the day rows (the
        # way before yesterday's trailing figures were stored, and still the fallback).
        yesterday = (midnight - timedelta(days=1)).date()
        await pool.execute("UPDATE platform_daily_actives SET mau_trailing = NULL WHERE day = $1", yesterday)
        start, end, granularity = cases["30 days by day, ending today (trailing + newcomers)"]
        timings = []
        for _ in range(queries):
            t0 = time.perf_counter()
            answer = await platform.platform(pool, start, end, granularity)
            timings.append((time.perf_counter() - t0) * 1000)
        results["30 days by day, ending today, distinct count (fallback)"] = (
            timings,
            answer["mau"],
            sum(answer["series"]["messages"]),
        )
        await pool.close()
        return {"raw": raw, "seeded_s": seeded, "cases": results}
    finally:
        await drop_database(infra, run)


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _print_budget(r: dict) -> None:
    """CPU per event of each side, and what 50% of the bare loop leaves for them: at half the bare
    rate, the two cores give 2 x 2 / bare_rate seconds of CPU per event to share out."""
    f = r["floor"]
    print(
        f"  floor (recorded once + kept raw, no rollups): {f['rate']:,.0f} events/s, "
        f"{100 * f['ratio']:.0f}% of the bare loop; CPU per event: consumer {_us(f['cpu_us'])} us, "
        f"PostgreSQL {_us(f['db_cpu_us'])} us, broker {_us(f['broker_us'])} us"
    )
    for label, used in zip(("before", "after"), r["bare_cpu"], strict=True):
        print(f"  bare loop {label}: CPU per event: loop {_us(used['own_us'])} us, broker {_us(used['broker_us'])} us")
    bare = (r["bare_before"] + r["bare_after"]) / 2
    budget = 4e6 / bare
    used = [r["cpu_us"], r["db_cpu_us"], r["broker_us"]]
    total = None if None in used else sum(used)
    print(
        f"  budget at 50% of the bare loop ({bare / 2:,.0f}/s on 2 cores): {budget:.0f} us of CPU per event in all, "
        f"the consumer's own <= {2e6 / bare:.0f} us (one thread); the full consumer used {_us(total)} us "
        f"(consumer {_us(r['cpu_us'])}, PostgreSQL {_us(r['db_cpu_us'])}, broker {_us(r['broker_us'])})"
    )


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rank-users", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--me-users", type=int, default=200_000)
    parser.add_argument("--me-rate", type=float, default=200)
    parser.add_argument("--me-seconds", type=float, default=15)
    parser.add_argument("--dashboard-events", type=int, default=10_000_000)
    parser.add_argument("--dashboard-users", type=int, default=50_000)
    parser.add_argument("--dashboard-queries", type=int, default=200)
    parser.add_argument("--sql-breakdown", action="store_true")
    parser.add_argument("--skip", choices=["ingestion", "ranks", "me", "dashboard"], action="append", default=[])
    args = parser.parse_args()
    infra = Infra.from_environ()
    tag = uuid.uuid4().hex[:6]
    print(f"cores {os.cpu_count()}, load average {load()}")
    if "ingestion" not in args.skip:
        r = await bench_ingestion(
            infra, f"bench_analytics_{tag}", args.events, args.users, args.batch, args.sql_breakdown
        )
        print(f"ingestion: {args.events:,} events, {args.users:,} users, batch {args.batch}")
        print(f"  bare consume-and-ack: {r['bare_before']:,.0f}/s before, {r['bare_after']:,.0f}/s after")
        print(f"  analytics consumer:   {r['rate']:,.0f} events/s ({r['batches']} batches)")
        print(f"  ratio to the bare loop: {100 * r['ratio']:.0f}%   (targets: >= 5,000/s, >= 50%)")
        print(f"  consumer process CPU: {r['cpu_us']:.0f} us per event, {100 * r['cpu_share']:.0f}% of one core")
        if r["db_cpu_us"] is not None:
            print(
                f"  PostgreSQL backends' CPU: {r['db_cpu_us']:.0f} us per event, "
                f"{100 * r['db_cpu_share']:.0f}% of one core"
            )
        for line in r["statements"]:
            print(line)
        _print_budget(r)
        print(f"  load average {load()}")
    if "ranks" not in args.skip:
        r = await bench_ranks(infra, f"bench_ranks_{tag}", args.rank_users, args.lookups)
        print(f"rank lookup: {args.rank_users:,} users, {r['distinct']:,} distinct values")
        print(f"  {summary(r['timings'])}   (target p99 <= 5 ms)")
        print(f"  load average {load()}")
    if "me" not in args.skip:
        r = await bench_me(infra, f"bench_me_{tag}", args.me_users, args.me_rate, args.me_seconds)
        print(f"/analytics/me over HTTP, one uvicorn worker: {args.me_users:,} users seeded in {r['seeded_s']:.0f} s")
        print(f"  tiers stored by the daily task: {r['tiers']}")
        print(f"  open loop at {args.me_rate:.0f}/s for {args.me_seconds:.0f} s (achieved {r['rate']:.0f}/s),")
        print(f"  {summary(r['times'])}, non-200: {r['errors']}   (target p99 <= 15 ms)")
        print(f"  the worker's CPU: {r['cpu_ms']:.2f} ms per request; its own time (Server-Timing, from the")
        print(f"  request read to the response started): {summary(r['app_ms'])}")
        print(f"  load average {load()}")
    if "dashboard" not in args.skip:
        r = await bench_dashboard(
            infra, f"bench_dash_{tag}", args.dashboard_events, args.dashboard_users, args.dashboard_queries
        )
        print(f"platform query: {r['raw']:,} raw events over a year, rollups made in {r['seeded_s']:.0f} s")
        for name, (timings, mau, messages) in r["cases"].items():
            print(f"  {name:<52} {summary(timings)}  (MAU {mau:,}, messages {messages:,})")
        print(f"  target p99 <= 200 ms; load average {load()}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
