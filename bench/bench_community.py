"""Community: the public story feed (hot) at a fixed rate and votes at full speed, side by side in one run.

    .venv/bin/python bench/bench_community.py [--stories 100000] [--votes 1000000] [--seconds 10]
        [--parts feed,votes,votes2,hello,layer] [--relays inprocess,external] [--no-milestone-seed]
        [--profile FILE]

Needs the local PostgreSQL, Redis and RabbitMQ (scripts/infra.sh). Creates a throwaway database
with community's schema, seeds it in SQL (generate_series: published public stories over the last
30 days, votes skewed towards a few stories, every story's counters and hot value computed from
the votes table), then runs the community service under uvicorn and measures over HTTP, with a
minimal keep-alive HTTP/1.1 client (common.RawHTTP: the client shares the two cores, so its own
CPU per request is printed next to the server's):

1. the hot feed (`GET /stories?scope=public&sort=hot`, first page of 20 and a page deep in the
   feed by cursor), after `GET /health` as the latency floor, at a fixed arrival rate (open loop:
   latency counted from the scheduled send time, so a stall is not hidden by the client waiting),
   one worker;
2. votes (`PUT /votes`, ±1 by distinct users, some changing their vote) as fast as `--in-flight`
   connections go: all on one story (every vote serializes on its row) and spread over the
   seeded stories, on one worker and then on two (`votes2`: the vote batcher is per process;
   the SQL keeps the counts exact across processes). One worker twice (`--relays`): the outbox
   relay in the web process, then as its own process (OUTBOX_RELAY=external and
   `python -m shared.relay community`, as a deployment that scales web processes runs it), its CPU
   counted with the worker's; after each, every `story.voted` row must have reached the broker (a
   queue of the bench's own bound to it counts them: events lost = 0). Each line also counts the
   milestone notifications the votes told (the seed holds those its own votes would have told);
3. the floor (`hello`): a bare FastAPI `GET /ping` on one and two workers, and the same endpoint
   behind the shared stack (JWT, Redis rate limit) with a distinct token per request;
4. the same votes through the service layer alone (`layer`: no HTTP), on one story and spread, to
   separate the database's share;

and at the end checks that every story's up/down/score/hot equals the votes table (exact counts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from common import RawHTTP, process_cpu_seconds, uvicorn_command  # noqa: E402
from common import percentile as pct  # noqa: E402

from shared.auth import CurrentUser, mint_access_token  # noqa: E402
from shared.db import create_pool  # noqa: E402
from shared.migrate import migrate  # noqa: E402
from shared.testing.env import (  # noqa: E402
    TEST_JWT_SECRET,
    Infra,
    create_database,
    create_vhost,
    delete_vhost,
    drop_database,
    new_run_id,
)

# Votes are skewed towards some stories (index ~ n * random()^2), each by its own user. Then the vote
# milestones those votes would have told their authors (notifications/kinds.py): without them every
# story's next up-vote tells a milestone reached long ago, and a run spread over many stories
# measured one new notification (and its deliveries) per vote, a seeding artefact, not the votes.
SEED = """
INSERT INTO stories (id, author_id, title, body, version, step, status, visibility, published_at, created_at)
SELECT md5('story' || g)::uuid, 'author-' || (g % 5000), 'Seeded story ' || g,
       repeat('It was a dark and stormy night in Gotham. ', 12), 2, 'edit', 'published', 'public',
       now() - (g % 2592000) * interval '1 second', now() - (g % 2592000) * interval '1 second' - interval '1 hour'
  FROM generate_series(1, $1::int) g;
INSERT INTO votes (target_type, target_id, user_id, value)
SELECT 'story', md5('story' || (1 + floor($1::int * random() ^ 2))::int)::uuid, 'seed-' || g,
       CASE WHEN random() < 0.8 THEN 1 ELSE -1 END
  FROM generate_series(1, $2::int) g;
UPDATE stories s SET up = v.up, down = v.down, score = v.up - v.down
  FROM (SELECT target_id, count(*) FILTER (WHERE value = 1) AS up, count(*) FILTER (WHERE value = -1) AS down
          FROM votes GROUP BY target_id) v
 WHERE s.id = v.target_id;
UPDATE stories SET hot = community_hot(score, published_at);
INSERT INTO notifications (user_id, seq, kind, title, body, data, dedup_key, read_at)
SELECT s.author_id, row_number() OVER (PARTITION BY s.author_id ORDER BY s.id, m), 'story_milestone',
       'Your story reached ' || m || ' votes', m || ' readers voted your story up.',
       jsonb_build_object('story_id', s.id::text, 'votes', m), 'story:' || s.id::text || ':' || m, now()
  FROM stories s CROSS JOIN unnest(ARRAY[1, 10, 100, 1000, 10000, 100000, 1000000]) m
 WHERE m <= s.up;
INSERT INTO notification_counters (user_id, last_seq) SELECT user_id, max(seq) FROM notifications GROUP BY user_id;
"""
SEED_SQL = [s.strip() for s in SEED.split(";") if s.strip() and not s.strip().startswith("--")]
MILESTONE_SEED = [sql for sql in SEED_SQL if "notification" in sql]

# Stories whose counters differ from the votes table (must be 0).
MISMATCHES = """
SELECT count(*) FROM stories s
  LEFT JOIN (SELECT target_id, count(*) FILTER (WHERE value = 1) AS up, count(*) FILTER (WHERE value = -1) AS down
               FROM votes WHERE target_type = 'story' GROUP BY target_id) v ON v.target_id = s.id
 WHERE s.up <> coalesce(v.up, 0) OR s.down <> coalesce(v.down, 0) OR s.score <> s.up - s.down
    OR (s.status = 'published' AND s.hot <> community_hot(s.score, s.published_at))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_relay(env: dict[str, str], log: Path) -> subprocess.Popen:
    """The outbox relay as its own process (`python -m shared.relay community`, Procfile `relay`): how a
    deployment that scales web processes runs it (OUTBOX_RELAY=external on the web processes)."""
    return subprocess.Popen(
        [sys.executable, "-m", "shared.relay", "community"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )


PROBE_QUEUE = "bench.story_voted"
EXCHANGE = "scenextras.events"  # ServiceSettings.events_exchange


def probe_messages(amqp_url: str, exchange: str) -> int:
    """A queue of the bench's own bound to `story.voted` (declared at the first call, before any vote):
    how many events reached the broker (publisher confirms: a confirmed message is in the queue)."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = conn.channel()
        channel.queue_declare(PROBE_QUEUE)
        channel.queue_bind(PROBE_QUEUE, exchange, routing_key="story.voted")
        return channel.queue_declare(PROBE_QUEUE, passive=True).method.message_count
    finally:
        conn.close()


async def events_check(pool, amqp_url: str, exchange: str, timeout: float = 60.0) -> tuple[int, int, int]:
    """After a votes phase: wait for the outbox to drain, then (story.voted rows, messages the probe
    queue got, events lost = rows not published or not received)."""
    deadline = time.monotonic() + timeout
    while await pool.fetchval("SELECT count(*) FROM outbox_events WHERE published_at IS NULL"):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    rows = await pool.fetchval("SELECT count(*) FROM outbox_events WHERE event_type = 'story.voted'")
    unpublished = await pool.fetchval("SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
    received = await asyncio.to_thread(probe_messages, amqp_url, exchange)
    return rows, received, max(unpublished, rows - received)


def start(
    port: int,
    env: dict[str, str],
    log: Path,
    workers: int,
    profile: str | None = None,
    app: str = "community_service.main:app",
    ready: str = "/health",
) -> subprocess.Popen:
    cmd = uvicorn_command(app, port, workers=workers)
    if profile:  # the one worker under cProfile; the profile is written when it stops (SIGTERM)
        cmd = [cmd[0], "-m", "cProfile", "-o", profile, *cmd[1:]]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"community exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"community did not start:\n{log.read_text()[-3000:]}")


def token(name: str) -> dict[str, str]:
    """A signed-in user's headers (Auth's user ids are UUIDs: one derived from `name`)."""
    user_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
    return {
        "Authorization": f"Bearer {mint_access_token(TEST_JWT_SECRET, user_id=user_id, expires_in=3600)}",
        "Content-Type": "application/json",
    }


def line(label: str, values: list[float], extra: str = "") -> str:
    return f"  {label:<46} p50 {pct(values, 50):7.2f} ms   p99 {pct(values, 99):7.2f} ms   n={len(values)}  {extra}"


def connections(port: int, n: int) -> list[RawHTTP]:
    return [RawHTTP("127.0.0.1", port) for _ in range(n)]


async def feed_at_rate(conns: list[RawHTTP], path: str, headers: dict, rate: float, seconds: float):
    """Open loop: each connection has its own fixed schedule (staggered), request i of connection c
    due at start + (c + i * len(conns)) / rate; latency counts from the due time, so a stall shows
    as latency (coordinated omission avoided), not as less load."""
    latencies: list[float] = []
    errors = 0
    interval = len(conns) / rate

    async def worker(c: int) -> None:
        nonlocal errors
        n = 0
        while (due := t0 + (c / len(conns) + n) * interval) < t0 + seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, _ = await conns[c].request("GET", path, headers)
            errors += status != 200
            latencies.append((time.perf_counter() - due) * 1000)
            n += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in range(len(conns))))
    return latencies, errors


async def votes_http(conns: list[RawHTTP], targets: list[str], voters: list[dict], seconds: float):
    """Closed loop, one request in flight per connection: each voter votes ±1 on a target; one in
    five votes again the other way (a change). Returns (votes done, wall seconds, latencies, non-200)."""
    rnd = random.Random(7)
    latencies: list[float] = []
    bad = 0
    done = 0
    stop = time.perf_counter() + seconds
    next_voter = 0

    async def worker(conn: RawHTTP) -> None:
        nonlocal bad, done, next_voter
        while time.perf_counter() < stop and next_voter < len(voters):
            headers = voters[next_voter]
            next_voter += 1
            target = rnd.choice(targets)
            values = [1 if rnd.random() < 0.8 else -1]
            if rnd.random() < 0.2:
                values.append(-values[0])
            for value in values:
                t0 = time.perf_counter()
                body = json.dumps({"target_type": "story", "target_id": target, "value": value}).encode()
                status, _ = await conn.request("PUT", "/votes", headers, body)
                bad += status != 200
                latencies.append((time.perf_counter() - t0) * 1000)
                done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    return done, time.perf_counter() - t0, latencies, bad


async def closed_loop_get(
    conns: list[RawHTTP], path: str, seconds: float, headers: list[dict] | None = None
) -> tuple[int, float]:
    """GET `path` as fast as the connections go (one in flight each): (requests, wall seconds).
    `headers`: one set per request, in turn (e.g. a distinct user's token each)."""
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(conn: RawHTTP) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            status, _ = await conn.request("GET", path, headers[done % len(headers)] if headers else None)
            assert status == 200, status
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    return done, time.perf_counter() - t0


async def votes_service_layer(pool, targets: list[str], n: int, in_flight: int) -> tuple[int, float]:
    from community_service import service_votes
    from community_service.vote_batch import VoteBatcher

    batcher = VoteBatcher(pool)
    users = [
        CurrentUser(user_id=str(uuid.uuid4()), email=None, role="authenticated", tier=0, claims={}) for _ in range(n)
    ]
    queue = iter(users)
    rnd = random.Random(11)

    async def worker() -> None:
        for user in queue:
            await service_votes.vote(batcher, user, "story", rnd.choice(targets), 1 if rnd.random() < 0.8 else -1)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    wall = time.perf_counter() - t0
    return n, wall, batcher.calls


def stop(proc: subprocess.Popen, *, profiled: bool = False) -> None:
    # uvicorn re-raises the signal it caught after shutting down; SIGINT's KeyboardInterrupt still
    # lets cProfile write its file, SIGTERM's default action does not.
    proc.send_signal(signal.SIGINT if profiled else signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def cpu(*procs: subprocess.Popen) -> float:  # the server's own CPU seconds (its workers, its relay process)
    return sum(process_cpu_seconds(p.pid, with_children=True) for p in procs)


def client_cpu() -> float:  # this process (the load generator), on the same two cores
    return process_cpu_seconds(os.getpid())


async def feed_phase(port, proc, args, counts, deep_cursor, results: dict, label: str) -> None:
    conns = connections(port, args.feed_connections)
    reader = token("bench-reader")
    first = "/stories?scope=public&sort=hot&limit=20"
    deep = f"{first}&cursor={deep_cursor}"
    # Warm-up in parallel: every connection open and the worker's DB pool set up before the clock.
    for _ in range(3):
        await asyncio.gather(*(c.request("GET", first, reader) for c in conns))
    await asyncio.sleep(0.5)
    print(f"\n{label}: hot feed at {args.rate:.0f} req/s, open loop, {len(conns)} keep-alive connections")
    # GET /health on the same worker at the same rate: the latency floor of this moment's machine
    # (no token, no database), beside the feed's.
    pages = (
        ("GET /health (the floor)", "/health"),
        ("first page", first),
        (f"a page {counts['s'] // 2:,} stories deep (cursor)", deep),
    )
    for name, path in pages:
        c0, k0 = cpu(proc), client_cpu()
        lat, err = await feed_at_rate(conns, path, reader, args.rate, args.seconds)
        c1, k1 = cpu(proc), client_cpu()
        per, kper = (c1 - c0) / len(lat) * 1000, (k1 - k0) / len(lat) * 1000
        print(line(name, lat, f"{err} errors, CPU/req service {per:.2f} ms, client {kper:.2f} ms"))
        results[(label, name)] = (lat, per, kper)
    for c in conns:
        c.close()


async def votes_phase(port, procs, args, one_story, all_ids, results: dict, label: str, pool, amqp: str) -> None:
    """`procs`: the server and, with OUTBOX_RELAY=external, its relay process (CPU counted for both)."""
    await asyncio.to_thread(probe_messages, amqp, EXCHANGE)  # the probe queue exists before any vote
    conns = connections(port, args.in_flight)
    for c in conns:  # connected before the clock
        await c.request("GET", "/health")
    tag = uuid.uuid4().hex[:6]
    print(f"\n{label}: votes, PUT /votes, {args.in_flight} in flight, distinct voters, 20% change their vote")
    for name, targets in (("one story", [one_story]), (f"spread over {len(all_ids):,} stories", all_ids)):
        voters = [token(f"bench-{tag}-{name[:3]}-{i}") for i in range(int(args.seconds * 3000))]
        told = await pool.fetchval("SELECT count(*) FROM notifications")
        c0, k0 = cpu(*procs), client_cpu()
        done, wall, lat, bad = await votes_http(conns, targets, voters, args.seconds)
        per, kper = (cpu(*procs) - c0) / max(done, 1) * 1000, (client_cpu() - k0) / max(done, 1) * 1000
        told = await pool.fetchval("SELECT count(*) FROM notifications") - told
        print(
            line(
                name,
                lat,
                f"{done / wall:,.0f} votes/s, {bad} non-200, CPU/vote service {per:.2f} ms, client {kper:.2f} ms,"
                f" {told} milestone notifications",
            )
        )
        results[(label, name.split()[0])] = (done / wall, per, kper, bad)
    rows, received, lost = await events_check(pool, amqp, EXCHANGE)
    print(f"  story.voted: {rows:,} in the outbox so far, {received:,} reached the broker: events lost = {lost}")
    results[(label, "lost")] = lost
    for c in conns:
        c.close()


async def hello_phase(env, log, args, workers: int, results: dict, *, stack: bool = False) -> None:
    """The floor: a bare FastAPI `GET /ping` (bench/apps/bare.py) under the same uvicorn options, as
    fast as `--in-flight` connections go, with this client. `stack`: the same endpoint behind the
    shared stack (bench/apps/shared_stack.py: factory middleware, JWT, Redis rate limit), each
    request with a distinct user's token as each vote has: the shared part of a vote's cost."""
    port = free_port()
    app = "bench.apps.shared_stack:app" if stack else "bench.apps.bare:app"
    proc = start(port, {**env, "SERVICE_NAME": "bench"}, log, workers, app=app, ready="/health" if stack else "/ping")
    try:
        conns = connections(port, args.in_flight)
        users = [token(f"ping-{uuid.uuid4()}") for _ in range(int(args.seconds * 2500))] if stack else None
        await closed_loop_get(conns, "/ping", 1.0, users[-500:] if users else None)
        c0, k0 = cpu(proc), client_cpu()
        done, wall = await closed_loop_get(conns, "/ping", args.seconds / 2, users)
        per, kper = (cpu(proc) - c0) / done * 1000, (client_cpu() - k0) / done * 1000
        name = "shared stack GET /ping (JWT, rate limit)" if stack else "bare FastAPI GET /ping"
        print(
            f"  {name}, {workers} worker(s): {done / wall:,.0f} req/s,"
            f" CPU/req server {per:.2f} ms, client {kper:.2f} ms"
        )
        results[("stack" if stack else "hello", workers)] = (done / wall, per, kper)
        for c in conns:
            c.close()
    finally:
        stop(proc)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stories", type=int, default=100_000)
    ap.add_argument("--votes", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=10.0, help="each timed phase")
    ap.add_argument("--rate", type=float, default=200.0, help="feed requests per second")
    ap.add_argument("--feed-connections", type=int, default=20, help="keep-alive connections of the feed load")
    ap.add_argument("--in-flight", type=int, default=64, help="concurrent vote requests (connections)")
    ap.add_argument("--pool", type=int, default=20, help="DB_POOL_MAX of each worker")
    ap.add_argument("--profile", help="write a cProfile of the one-worker run to this file")
    ap.add_argument("--parts", default="feed,votes,votes2,hello,layer", help="which phases to run")
    ap.add_argument(
        "--no-milestone-seed",
        action="store_true",
        help="seed no milestone notifications (as before 2026-12-05): shows what they cost a spread run",
    )
    ap.add_argument(
        "--relays",
        default="inprocess,external",
        help="the 1-worker votes with the outbox relay in the web process and/or as its own process"
        " (OUTBOX_RELAY=external + `python -m shared.relay community`, its CPU counted with the service's)",
    )
    args = ap.parse_args()
    parts = set(args.parts.split(","))

    infra = Infra.from_environ()
    run = new_run_id()
    name = f"{run}_community_bench"
    dsn = await create_database(infra, name)
    amqp = create_vhost(infra, run)
    proc = None
    results: dict = {}
    try:
        await migrate(dsn, "community")
        pool = await create_pool(dsn, min_size=2, max_size=10)
        t0 = time.perf_counter()
        seeder = await asyncpg.connect(dsn)  # no command timeout: seeding takes a while
        try:
            for sql in SEED_SQL:
                if args.no_milestone_seed and sql in MILESTONE_SEED:
                    continue
                args_ = [a for a, used in ((args.stories, "$1"), (args.votes, "$2")) if used in sql]
                await seeder.execute(sql, *args_)
            await seeder.execute("VACUUM ANALYZE stories")
            await seeder.execute("VACUUM ANALYZE votes")
        finally:
            await seeder.close()
        seeded = time.perf_counter() - t0
        counts = await pool.fetchrow("SELECT (SELECT count(*) FROM stories) s, (SELECT count(*) FROM votes) v")
        env = {
            "COMMUNITY_DATABASE_URL": dsn,
            "DATABASE_URL": dsn,
            "REDIS_URL": infra.redis_url,
            "REDIS_PREFIX": run,
            "RABBITMQ_URL": amqp,
            "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
            "KNOWN_USERS_CHECK": "0",  # one service, no Auth: tokens of made-up users (docs/auth.md)
            "MIGRATE_ON_START": "1",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PER_MINUTE": "100000000",
            "DB_POOL_MAX": str(args.pool),
            "OUTBOX_RELAY": "inprocess",
        }
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-community-{run}.log"
        load = os.getloadavg()
        print(
            f"community benchmark: {counts['s']:,} published stories, {counts['v']:,} votes seeded in {seeded:.1f} s; "
            f"DB pool {args.pool} per worker; {os.cpu_count()} CPUs, "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
        )
        deep = await pool.fetchrow(
            "SELECT hot, id FROM stories WHERE status = 'published' AND visibility = 'public'"
            " ORDER BY hot DESC, id DESC OFFSET $1 LIMIT 1",
            counts["s"] // 2,
        )
        from shared.pagination import encode_ranked  # community's cursor format

        deep_cursor = encode_ranked(deep["hot"], deep["id"])
        one_story = str(deep["id"])
        all_ids = [str(r["id"]) for r in await pool.fetch("SELECT id FROM stories")]

        if "feed" in parts:
            port = free_port()
            proc = start(port, env, log, 1, args.profile)
            await feed_phase(port, proc, args, counts, deep_cursor, results, "1 worker")
            stop(proc, profiled=bool(args.profile))
            proc = None
        for relay in args.relays.split(",") if "votes" in parts else ():
            port = free_port()
            proc = start(port, {**env, "OUTBOX_RELAY": relay}, log, 1, args.profile)
            procs = [proc]
            if relay == "external":
                relay_proc = start_relay(env, log.with_suffix(".relay.log"))
                procs.append(relay_proc)
            label = "1 worker" if relay == "inprocess" else "1 worker + relay process"
            try:
                await votes_phase(port, procs, args, one_story, all_ids, results, label, pool, amqp)
            finally:
                for p in procs[1:]:
                    stop(p)
            stop(proc, profiled=bool(args.profile))
            proc = None
        if "votes2" in parts:
            port = free_port()
            proc = start(port, env, log, 2)
            await votes_phase(port, [proc], args, one_story, all_ids, results, "2 workers", pool, amqp)
            stop(proc)
            proc = None
        if "hello" in parts:
            print("\nthe floor, same client and uvicorn options:")
            for workers in (1, 2):
                await hello_phase(env, log, args, workers, results)
            await hello_phase(env, log, args, 1, results, stack=True)
        if "layer" in parts:
            n = int(args.seconds * 1500)
            print(f"\nservice layer alone (no HTTP), {args.in_flight} in flight:")
            for name, targets in (("one story", [one_story]), ("spread", all_ids)):
                done3, wall3, calls = await votes_service_layer(pool, targets, n, args.in_flight)
                results["layer" if name == "one story" else "layer spread"] = done3 / wall3
                print(f"  {name}: {done3 / wall3:,.0f} votes/s (n={done3}, {done3 / calls:.1f} votes per statement)")

        mismatches = await pool.fetchval(MISMATCHES)
        story = await pool.fetchrow("SELECT up, down, score FROM stories WHERE id = $1", deep["id"])
        table = await pool.fetchrow(
            "SELECT count(*) FILTER (WHERE value = 1) AS up, count(*) FILTER (WHERE value = -1) AS down"
            " FROM votes WHERE target_type = 'story' AND target_id = $1",
            deep["id"],
        )
        print(
            f"\nexact counts: {mismatches} stories whose up/down/score/hot differ from the votes table; "
            f"the one story: counters {story['up']}/{story['down']} (score {story['score']}), "
            f"votes table {table['up']}/{table['down']}"
        )
        summary(results)
        load = os.getloadavg()
        print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        await pool.close()
        lost = sum(v for k, v in results.items() if isinstance(k, tuple) and k[1] == "lost")
        if mismatches:
            raise SystemExit("counts are not exact")
        if lost:
            raise SystemExit(f"{lost} story.voted events lost")
    finally:
        if proc is not None:
            stop(proc, profiled=bool(args.profile))
        delete_vhost(infra, run)
        await drop_database(infra, name)


def summary(results: dict) -> None:
    """The vote rates side by side: service layer, HTTP on 1 and 2 workers, and the bare floor."""
    rows = [
        ("service layer, one story", results.get("layer")),
        ("service layer, spread", results.get("layer spread")),
        ("HTTP 1 worker, one story", (results.get(("1 worker", "one")) or (None,))[0]),
        ("HTTP 1 worker, spread", (results.get(("1 worker", "spread")) or (None,))[0]),
        ("HTTP 1 worker + relay process, one story", (results.get(("1 worker + relay process", "one")) or (None,))[0]),
        ("HTTP 1 worker + relay process, spread", (results.get(("1 worker + relay process", "spread")) or (None,))[0]),
        ("HTTP 2 workers, one story", (results.get(("2 workers", "one")) or (None,))[0]),
        ("HTTP 2 workers, spread", (results.get(("2 workers", "spread")) or (None,))[0]),
        ("bare FastAPI GET /ping, 1 worker", (results.get(("hello", 1)) or (None,))[0]),
        ("bare FastAPI GET /ping, 2 workers", (results.get(("hello", 2)) or (None,))[0]),
        ("shared stack GET /ping, 1 worker", (results.get(("stack", 1)) or (None,))[0]),
    ]
    floor = (results.get(("hello", 1)) or (None,))[0]
    print("\nside by side (requests or votes per second; ratio to the bare 1-worker floor):")
    for label, rate in rows:
        if rate is not None:
            ratio = f"  x{rate / floor:.2f}" if floor else ""
            print(f"  {label:<42} {rate:8,.0f}/s{ratio}")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
