"""What refusing deleted users' tokens (shared/tombstones.py) and never-created users' tokens
(shared/known_users.py) costs, measured side by side:

    .venv/bin/python bench/bench_tombstones.py [--calls 20000] [--deleted 100000] [--events 50]
        [--misses 200]

- per request: `shared.auth.authenticate` on a cached valid token, without a tombstone set, with
  an empty one and with `--deleted` ids in it (the check is one dict lookup); then with the
  tombstones and the known-users check, the user known among `--deleted` known ids (a hit: a dict
  lookup and an LRU move);
- per miss: a user id this process has not seen, asked to a real Auth process (started here, on a
  throw-away database; `GET /internal/users/{id}`, a primary-key read), p50/p99;
- per deletion: a `user.deleted` published to the local RabbitMQ (in a throw-away vhost) until a
  process's set has it, next to the publisher's confirm round trip on the same connection;
- per start-up: seeding `--deleted` ids from the local Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from starlette.requests import Request  # noqa: E402

from shared.auth import TokenValidator, authenticate, mint_access_token  # noqa: E402
from shared.bus import EventPublisher  # noqa: E402
from shared.events import EventType, make_event  # noqa: E402
from shared.known_users import KnownUsers  # noqa: E402
from shared.redis import Keys, create_redis  # noqa: E402
from shared.testing.env import (  # noqa: E402
    TEST_JWT_SECRET,
    Infra,
    create_database,
    create_vhost,
    delete_vhost,
    drop_database,
)
from shared.testing.processes import ServiceProcess  # noqa: E402
from shared.tombstones import Tombstones, redis_key  # noqa: E402

EXCHANGE = "scenextras.events"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def per_request(calls: int, deleted: int) -> dict[str, float]:
    validator = TokenValidator(TEST_JWT_SECRET)
    user_id = str(uuid.uuid4())
    token = mint_access_token(TEST_JWT_SECRET, user_id=user_id)
    header = [(b"authorization", f"Bearer {token}".encode())]
    full = Tombstones(redis=None, key="", amqp_url="", exchange="", service="bench")
    for _ in range(deleted):
        full.add(str(uuid.uuid4()), time.time() + 3600)
    empty = Tombstones(redis=None, key="", amqp_url="", exchange="", service="bench")
    # Never asks Auth: the user is known, as every active user is after their first request.
    known = KnownUsers(auth_url="http://127.0.0.1:9", secret=TEST_JWT_SECRET, service="bench", max_known=deleted + 1)
    for _ in range(deleted):
        known.add(str(uuid.uuid4()))
    known.add(user_id)
    cases = (
        ("no set", None, None),
        ("empty set", empty, None),
        (f"{deleted} ids", full, None),
        ("+ known hit", full, known),
    )
    out: dict[str, float] = {}
    # Five interleaved rounds, the best of each kept: other load on the machine moves single runs.
    for _ in range(5):
        for name, tombstones, known_users in cases:
            state = SimpleNamespace(token_validator=validator, tombstones=tombstones, known_users=known_users)
            app = SimpleNamespace(state=state)
            await authenticate(Request({"type": "http", "headers": header, "app": app}))  # warm the token cache
            started = time.perf_counter()
            for _ in range(calls // 5):
                await authenticate(Request({"type": "http", "headers": header, "app": app}))
            micros = (time.perf_counter() - started) / (calls // 5) * 1e6
            out[name] = min(out.get(name, micros), micros)
        # The known-users hit alone (what the last case adds to the one before it).
        started = time.perf_counter()
        for _ in range(calls // 5):
            await known.check(user_id)
        micros = (time.perf_counter() - started) / (calls // 5) * 1e6
        out["hit alone"] = min(out.get("hit alone", micros), micros)
    return out


async def per_miss(auth_url: str, misses: int) -> list[float]:
    """A user id not seen here: one call to Auth each (answered 404, unknown)."""
    known = KnownUsers(auth_url=auth_url, secret=TEST_JWT_SECRET, service="bench")
    timings = []
    try:
        for _ in range(misses):
            started = time.perf_counter()
            await known.check(str(uuid.uuid4()))
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        await known.close()
    assert known.lookups == misses
    return timings


async def per_deletion(amqp_url: str, redis, events: int) -> tuple[list[float], list[float]]:
    tombstones = Tombstones(
        redis=redis,
        key=redis_key(Keys(f"bench{uuid.uuid4().hex[:6]}")),
        amqp_url=amqp_url,
        exchange=EXCHANGE,
        service="bench",
    )
    await tombstones.start()
    publisher = EventPublisher(amqp_url, EXCHANGE, "bench")
    confirms, visible = [], []
    try:
        await publisher.connect()
        for _ in range(events):
            user = str(uuid.uuid4())
            started = time.perf_counter()
            await publisher.publish(make_event(EventType.USER_DELETED, user, {"tokens_valid_until": time.time() + 60}))
            confirms.append((time.perf_counter() - started) * 1000)
            while user not in tombstones:  # noqa: ASYNC110 - the set has no event to wait on
                await asyncio.sleep(0.0002)
            visible.append((time.perf_counter() - started) * 1000)
    finally:
        await publisher.close()
        await tombstones.stop()
    return confirms, visible


async def seeding(redis, deleted: int) -> float:
    key = redis_key(Keys(f"bench{uuid.uuid4().hex[:6]}"))
    until = time.time() + 3600
    ids = {str(uuid.uuid4()): until for _ in range(deleted)}
    try:
        for start in range(0, deleted, 10_000):
            chunk = dict(list(ids.items())[start : start + 10_000])
            await redis.zadd(key, chunk)
        tombstones = Tombstones(redis=redis, key=key, amqp_url="", exchange="", service="bench")
        started = time.perf_counter()
        await tombstones.sync()
        assert len(tombstones) == deleted
        return (time.perf_counter() - started) * 1000
    finally:
        await redis.delete(key)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--deleted", type=int, default=100000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--misses", type=int, default=200, help="0: no Auth process, no miss figure")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")

    costs = await per_request(args.calls, args.deleted)
    base = costs["no set"]
    print(f"authenticate() on a cached token, {args.calls} calls (µs per call):")
    for name, micros in costs.items():
        print(f"  {name:>14}: {micros:7.2f} µs  ({micros / base:.2f}x of no set)")

    infra = Infra.from_environ()
    vhost = f"bench_tomb_{uuid.uuid4().hex[:8]}"
    amqp_url = create_vhost(infra, vhost)
    redis = create_redis(infra.redis_url)
    core = None
    try:
        if args.misses:
            core = await create_database(infra, f"{vhost}_core")
            env = {
                "DATABASE_URL": core,
                "REDIS_URL": infra.redis_url,
                "REDIS_PREFIX": vhost,
                "RABBITMQ_URL": amqp_url,
                "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
                "MIGRATE_ON_START": "1",
                "LOG_LEVEL": "WARNING",
                "RATE_LIMIT_PER_MINUTE": "0",
            }
            with ServiceProcess("auth", env) as auth:
                misses = await per_miss(auth.url, args.misses)
            print(f"known-users miss (asks Auth over HTTP), {args.misses} ids (ms):")
            print(f"  p50 {statistics.median(misses):6.2f}  p99 {pct(misses, 0.99):6.2f}")
        confirms, visible = await per_deletion(amqp_url, redis, args.events)
        print(f"user.deleted published -> in a process's set, {args.events} deletions (ms):")
        print(f"  publisher confirm   p50 {statistics.median(confirms):6.2f}  p99 {pct(confirms, 0.99):6.2f}")
        print(f"  in the set after it   p50 {statistics.median(visible):6.2f}  p99 {pct(visible, 0.99):6.2f}")
        ms = await seeding(redis, args.deleted)
        print(f"seeding {args.deleted} ids from Redis at start-up: {ms:.0f} ms")
    finally:
        await redis.aclose()
        delete_vhost(infra, vhost)
        if core is not None:
            await drop_database(infra, f"{vhost}_core")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
