"""Community: the public story feed (hot) at a fixed rate and votes at full speed, side by side in one run.

    .venv/bin/python bench/bench_community.py [--stories 100000] [--votes 1000000] [--seconds 10]

Needs the local PostgreSQL, Redis and RabbitMQ (scripts/infra.sh). Creates a throwaway database
with community's schema, seeds it in SQL (generate_series: published public stories over the last
30 days, votes skewed towards a few stories, every story's counters and hot value computed from
the votes table), then runs the community service under uvicorn and measures over HTTP:

1. the hot feed (`GET /stories?scope=public&sort=hot`, first page of 20 and a page deep in the
   feed by cursor) at a fixed arrival rate (open loop: latency counted from the scheduled send
   time, so a stall is not hidden by the client waiting);
2. votes (`PUT /votes`, ±1 by distinct users, some changing their vote) as fast as `--in-flight`
   concurrent requests go: all on one story (every vote serializes on its row) and spread over
   the seeded stories;
3. the same votes through the service layer alone (no HTTP), to separate the database's share;

and at the end checks that every story's up/down/score equals the votes table (exact counts).
"""

from __future__ import annotations

import argparse
import asyncio
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

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import httpx  # noqa: E402
from common import percentile as pct  # noqa: E402
from common import process_cpu_seconds, scratch, uvicorn_command  # noqa: E402

from shared.auth import CurrentUser, mint_access_token  # noqa: E402
from shared.db import create_pool  # noqa: E402
from shared.migrate import migrate  # noqa: E402
from shared.testing.env import TEST_JWT_SECRET  # noqa: E402

# Votes are skewed towards some stories (index ~ n * random()^2), each by its own user.
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
"""
SEED_SQL = [s.strip() for s in SEED.split(";") if s.strip() and not s.strip().startswith("--")]

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


def start(port: int, env: dict[str, str], log: Path, workers: int, profile: str | None) -> subprocess.Popen:
    cmd = uvicorn_command("community_service.main:app", port, workers=workers)
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
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"community did not start:\n{log.read_text()[-3000:]}")


def token(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_access_token(TEST_JWT_SECRET, user_id=user_id, expires_in=3600)}"}


def line(label: str, values: list[float], extra: str = "") -> str:
    return f"  {label:<46} p50 {pct(values, 50):7.2f} ms   p99 {pct(values, 99):7.2f} ms   n={len(values)}  {extra}"


async def feed_at_rate(session: aiohttp.ClientSession, url: str, rate: float, seconds: float, cursor: str | None):
    """Open loop: request i is due at start + i/rate; its latency counts from then."""
    headers = token("bench-reader")
    params = {"scope": "public", "sort": "hot", "limit": "20", **({"cursor": cursor} if cursor else {})}
    latencies: list[float] = []
    errors = 0

    async def one(due: float) -> None:
        nonlocal errors
        async with session.get(f"{url}/stories", params=params, headers=headers) as r:
            await r.read()
            if r.status != 200:
                errors += 1
        latencies.append((time.perf_counter() - due) * 1000)

    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    return latencies, errors


async def votes_http(session, url, targets: list[str], voters: list[dict], in_flight: int, seconds: float):
    """Closed loop, `in_flight` at once: each voter votes ±1 on a target; one in five votes again
    the other way (a change). Returns (votes done, wall seconds, latencies, non-200 answers)."""
    rnd = random.Random(7)
    latencies: list[float] = []
    bad = 0
    done = 0
    stop = time.perf_counter() + seconds
    next_voter = 0

    async def worker() -> None:
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
                body = {"target_type": "story", "target_id": target, "value": value}
                async with session.put(f"{url}/votes", json=body, headers=headers) as r:
                    await r.read()
                    bad += r.status != 200
                latencies.append((time.perf_counter() - t0) * 1000)
                done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done, time.perf_counter() - t0, latencies, bad


async def votes_service_layer(pool, targets: list[str], n: int, in_flight: int) -> tuple[int, float]:
    from community_service import service_votes
    from community_service.vote_batch import VoteBatcher

    batcher = VoteBatcher(pool)
    users = [
        CurrentUser(user_id=f"layer-{uuid.uuid4()}", email=None, role="authenticated", tier=0, claims={})
        for _ in range(n)
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


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stories", type=int, default=100_000)
    ap.add_argument("--votes", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=10.0, help="each timed phase")
    ap.add_argument("--rate", type=float, default=200.0, help="feed requests per second")
    ap.add_argument("--in-flight", type=int, default=64, help="concurrent vote requests")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers")
    ap.add_argument("--pool", type=int, default=20, help="DB_POOL_MAX of each worker")
    ap.add_argument("--profile", help="write a cProfile of the (single) worker to this file")
    args = ap.parse_args()

    async with scratch("community_bench") as run_env:
        infra, run, dsn, amqp = run_env.infra, run_env.run, run_env.dsns["community_bench"], run_env.amqp
        proc = None
        try:
            await migrate(dsn, "community")
            pool = await create_pool(dsn, min_size=2, max_size=10)
            t0 = time.perf_counter()
            seeder = await asyncpg.connect(dsn)  # no command timeout: seeding takes a while
            try:
                for sql in SEED_SQL:
                    args_ = [a for a, used in ((args.stories, "$1"), (args.votes, "$2")) if used in sql]
                    await seeder.execute(sql, *args_)
                await seeder.execute("VACUUM ANALYZE stories")
                await seeder.execute("VACUUM ANALYZE votes")
            finally:
                await seeder.close()
            seeded = time.perf_counter() - t0
            counts = await pool.fetchrow("SELECT (SELECT count(*) FROM stories) s, (SELECT count(*) FROM votes) v")
            port = free_port()
            env = {
                "COMMUNITY_DATABASE_URL": dsn,
                "DATABASE_URL": dsn,
                "REDIS_URL": infra.redis_url,
                "REDIS_PREFIX": run,
                "RABBITMQ_URL": amqp,
                "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
                "MIGRATE_ON_START": "1",
                "LOG_LEVEL": "WARNING",
                "RATE_LIMIT_PER_MINUTE": "100000000",
                "DB_POOL_MAX": str(args.pool),
                "OUTBOX_RELAY": "inprocess",
            }
            log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-community-{run}.log"
            if args.profile and args.workers != 1:
                raise SystemExit("--profile needs --workers 1")
            proc = start(port, env, log, args.workers, args.profile)
            url = f"http://127.0.0.1:{port}"
            load = os.getloadavg()
            print(
                f"community benchmark: {counts['s']:,} published stories, {counts['v']:,} votes seeded"
                f" in {seeded:.1f} s; "
                f"{args.workers} uvicorn worker(s), DB pool {args.pool}; {os.cpu_count()} CPUs, "
                f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
            )
            connector = aiohttp.TCPConnector(limit=256)
            async with aiohttp.ClientSession(connector=connector) as session:
                # A cursor half-way down the feed (its keyset position), and a warm-up.
                async with session.get(
                    f"{url}/stories", params={"scope": "public", "sort": "hot", "limit": "100"}, headers=token("w")
                ) as r:
                    assert r.status == 200, await r.text()
                deep = await pool.fetchrow(
                    "SELECT hot, id FROM stories WHERE status = 'published' AND visibility = 'public'"
                    " ORDER BY hot DESC, id DESC OFFSET $1 LIMIT 1",
                    counts["s"] // 2,
                )
                from shared.pagination import encode_ranked  # community's cursor format

                deep_cursor = encode_ranked(deep["hot"], deep["id"])

                # Warm-up in parallel, so the worker's DB pool has opened (and set up) its connections
                # before the timed phase rather than during it (a serial warm-up used one connection).
                async def warm() -> None:
                    for _ in range(10):
                        async with session.get(f"{url}/stories", params={"scope": "public"}, headers=token("w")) as r:
                            await r.read()

                await asyncio.gather(*(warm() for _ in range(args.pool)))

                def cpu() -> float:  # the service's own CPU seconds (its workers too), not PostgreSQL's
                    return process_cpu_seconds(proc.pid, with_children=True)

                def client_cpu() -> float:  # this process (the load generator), on the same two cores
                    return process_cpu_seconds(os.getpid())

                print(
                    f"\n1. hot feed, GET /stories?scope=public&sort=hot&limit=20 at {args.rate:.0f} req/s (open loop)"
                )
                c0, k0 = cpu(), client_cpu()
                first, err1 = await feed_at_rate(session, url, args.rate, args.seconds, None)
                c1, k1 = cpu(), client_cpu()
                print(
                    line(
                        "first page",
                        first,
                        f"{err1} errors, CPU/req service {(c1 - c0) / len(first) * 1000:.2f} ms,"
                        f" client {(k1 - k0) / len(first) * 1000:.2f} ms",
                    )
                )
                deeper, err2 = await feed_at_rate(session, url, args.rate, args.seconds, deep_cursor)
                c2, k2 = cpu(), client_cpu()
                print(
                    line(
                        f"a page {counts['s'] // 2:,} stories deep (cursor)",
                        deeper,
                        f"{err2} errors, CPU/req service {(c2 - c1) / len(deeper) * 1000:.2f} ms,"
                        f" client {(k2 - k1) / len(deeper) * 1000:.2f} ms",
                    )
                )

                print(f"\n2. votes, PUT /votes, {args.in_flight} in flight, distinct voters, 20% change their vote")
                one_story = str(deep["id"])
                all_ids = [str(r["id"]) for r in await pool.fetch("SELECT id FROM stories")]
                voters = [token(f"bench-voter-{i}") for i in range(int(args.seconds * 4000))]
                c0, k0 = cpu(), client_cpu()
                done, wall, lat, bad = await votes_http(session, url, [one_story], voters, args.in_flight, args.seconds)
                per, kper = (cpu() - c0) / max(done, 1) * 1000, (client_cpu() - k0) / max(done, 1) * 1000
                print(
                    line(
                        "all on one story",
                        lat,
                        f"{done / wall:,.0f} votes/s, {bad} non-200, CPU/vote service {per:.2f} ms,"
                        f" client {kper:.2f} ms",
                    )
                )
                spread_voters = [token(f"bench-spread-{i}") for i in range(int(args.seconds * 4000))]
                done2, wall2, lat2, bad2 = await votes_http(
                    session, url, all_ids, spread_voters, args.in_flight, args.seconds
                )
                print(
                    line(f"spread over {len(all_ids):,} stories", lat2, f"{done2 / wall2:,.0f} votes/s, {bad2} non-200")
                )

            n = int(args.seconds * 1500)
            done3, wall3, calls = await votes_service_layer(pool, [one_story], n, args.in_flight)
            print(
                f"  service layer alone (no HTTP), one story, {args.in_flight} in flight: {done3 / wall3:,.0f} votes/s "
                f"(n={done3}, {done3 / calls:.1f} votes per statement)"
            )

            mismatches = await pool.fetchval(MISMATCHES)
            story = await pool.fetchrow("SELECT up, down, score FROM stories WHERE id = $1", deep["id"])
            table = await pool.fetchrow(
                "SELECT count(*) FILTER (WHERE value = 1) AS up, count(*) FILTER (WHERE value = -1) AS down"
                " FROM votes WHERE target_type = 'story' AND target_id = $1",
                deep["id"],
            )
            print(
                f"\n3. exact counts: {mismatches} stories whose up/down/score/hot differ from the votes table; "
                f"the one story: counters {story['up']}/{story['down']} (score {story['score']}), "
                f"votes table {table['up']}/{table['down']}"
            )
            load = os.getloadavg()
            print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
            await pool.close()
            if mismatches:
                raise SystemExit("counts are not exact")
        finally:
            if proc is not None:
                # uvicorn re-raises the signal it caught after shutting down; SIGINT's KeyboardInterrupt still
                # lets cProfile write its file, SIGTERM's default action does not.
                proc.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
