"""Chat benchmark: what the service adds on top of the model, side by side in one run.

    .venv/bin/python bench/bench_chat.py [--users 50] [--seconds 20] [--think 1.0] [--ttft 100]

Needs the local PostgreSQL, Redis and RabbitMQ (scripts/infra.sh). Creates throwaway databases
and a vhost, applies Payment's migrations (quota functions) to the core one, starts the sandbox
(the zero-latency local model: `uvicorn sandbox.app:app`) and the chat service
(`uvicorn chat_service.main:app`) as real processes, and drops everything afterwards.

Figures (issue 5 targets: overhead p50 <= 5 ms and p99 <= 20 ms at 50 concurrent users;
time-to-first-token overhead <= 10 ms):
  0. the machine's floor: a PostgreSQL and a Redis round trip, back to back and after 10 ms of
     idleness (what a request's round trips cost at a few dozen messages a second);
  1. the model alone: the same requests straight to the local model with the Anthropic SDK;
  2. /talk_with at N concurrent users (each sends a message in its conversation, waits `think`
     seconds, again): client latency, and per request the service's overhead = client latency
     minus the model time the service measured around its own model call (`model_latency_ms`);
     then, as the floor under that overhead, the same users calling the service's /health;
     the outbox relay runs in the web process (the default), or with `--relay external` as its own
     process (`python -m shared.relay chat`, OUTBOX_RELAY=external), its CPU then counted with the
     service's; at the end, how many of the run's events were published;
  3. time to first token, streamed, one request at a time: through the service vs straight to
     the model, and per request client TTFT minus the service-measured model TTFT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import anthropic  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402
from common import percentile as pct  # noqa: E402
from common import process_cpu_seconds, scratch, uvicorn_command  # noqa: E402

from shared.auth import mint_access_token  # noqa: E402
from shared.migrate import migrate  # noqa: E402
from shared.testing.env import TEST_JWT_SECRET  # noqa: E402

KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-bench",
    "OPENAI_API_KEY": "sk-bench",
    "TMDB_API_KEY": "0123456789abcdef0123456789abcdef",
}
SYSTEM = "You are Batman, the character from The Dark Knight (2008). Stay in character at all times."


def line(label: str, values: list[float]) -> str:
    return (
        f"  {label:<44} p50 {pct(values, 50):7.2f} ms   p99 {pct(values, 99):7.2f} ms   "
        f"mean {statistics.fmean(values):7.2f} ms   n={len(values)}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(module: str, port: int, env: dict[str, str], log: Path, workers: int = 1) -> subprocess.Popen:
    proc = subprocess.Popen(
        uvicorn_command(module, port, workers=workers),
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{module} exited:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health" if "chat" in module else f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{module} did not start:\n{log.read_text()[-3000:]}")


async def model_alone(base: str, users: int, seconds: float, think: float) -> tuple[list[float], float]:
    client = anthropic.AsyncAnthropic(
        api_key=KEYS["ANTHROPIC_API_KEY"],
        base_url=f"{base}/anthropic",
        max_retries=2,
        http_client=anthropic.DefaultAioHttpClient(),
    )
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def user(i: int) -> None:
        history: list[dict] = []
        await asyncio.sleep(random.random() * think)
        n = 0
        while time.monotonic() < stop:
            history.append({"role": "user", "content": f"message {n} from user {i}: what happened in Gotham tonight?"})
            t0 = time.perf_counter()
            msg = await client.messages.create(
                model="claude-haiku-4-5-20251001", system=SYSTEM, messages=history[-20:], max_tokens=1024
            )
            latencies.append((time.perf_counter() - t0) * 1000)
            history.append({"role": "assistant", "content": msg.content[0].text})
            n += 1
            await asyncio.sleep(think * (0.5 + random.random()))

    started = time.monotonic()
    await asyncio.gather(*(user(i) for i in range(users)))
    elapsed = time.monotonic() - started
    await client.close()
    return latencies, len(latencies) / elapsed


def server_ms(headers) -> float:
    """The service's own time until its response started (its Server-Timing `app;dur=`)."""
    return float(headers["server-timing"].partition("dur=")[2])


async def through_service(
    url: str, users: int, seconds: float, think: float
) -> tuple[list[float], list[float], list[float], float, int]:
    """The load generator is aiohttp, a lean client, so its own request building and parsing
    (httpx costs ~1 ms CPU per request on these shared cores) is not counted as the service's."""
    latencies: list[float] = []
    overheads: list[float] = []
    server_overheads: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=users + 10)
    async with aiohttp.ClientSession(
        base_url=url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as client:

        async def user(i: int) -> None:
            nonlocal errors
            uid = str(uuid.uuid4())
            headers = {"Authorization": f"Bearer {mint_access_token(TEST_JWT_SECRET, user_id=uid, expires_in=3600)}"}
            async with client.post(
                "/talk_with",
                json={"message": "Hello Batman", "character": "Batman", "series": "The Dark Knight"},
                headers=headers,
            ) as r:
                r.raise_for_status()
                cid = (await r.json())["conversation_id"]
            await asyncio.sleep(random.random() * think)
            n = 0
            while time.monotonic() < stop:
                body = {
                    "message": f"message {n} from user {i}: what happened in Gotham tonight?",
                    "character": "Batman",
                    "conversation_id": cid,
                }
                t0 = time.perf_counter()
                async with client.post("/talk_with", json=body, headers=headers) as r:
                    payload = await r.read()
                    total = (time.perf_counter() - t0) * 1000
                    if r.status != 200:
                        errors += 1
                    else:
                        model_ms = orjson.loads(payload)["model_latency_ms"]
                        latencies.append(total)
                        overheads.append(total - model_ms)
                        server_overheads.append(server_ms(r.headers) - model_ms)
                n += 1
                await asyncio.sleep(think * (0.5 + random.random()))

        started = time.monotonic()
        await asyncio.gather(*(user(i) for i in range(users)))
        elapsed = time.monotonic() - started
    return latencies, overheads, server_overheads, len(latencies) / elapsed, errors


async def empty_route(url: str, users: int, seconds: float, think: float) -> list[float]:
    """The floor under /talk_with's overhead: the same users and client calling the service's
    /health (no token, no database, no model) through the same server and middleware."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=users + 10)
    async with aiohttp.ClientSession(
        base_url=url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as client:

        async def user() -> None:
            await asyncio.sleep(random.random() * think)
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                async with client.get("/health") as r:
                    await r.read()
                    if r.status == 200:
                        latencies.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(think * (0.5 + random.random()))

        await asyncio.gather(*(user() for _ in range(users)))
    return latencies


async def ttft(url: str, base: str, n: int) -> tuple[list[float], list[float], list[float]]:
    model = anthropic.AsyncAnthropic(
        api_key=KEYS["ANTHROPIC_API_KEY"],
        base_url=f"{base}/anthropic",
        max_retries=2,
        http_client=anthropic.DefaultAioHttpClient(),
    )
    direct: list[float] = []
    service: list[float] = []
    per_request: list[float] = []
    uid = str(uuid.uuid4())
    headers = {
        "Authorization": f"Bearer {mint_access_token(TEST_JWT_SECRET, user_id=uid, expires_in=3600)}",
        "Accept": "text/event-stream",
    }
    async with aiohttp.ClientSession(base_url=url, timeout=aiohttp.ClientTimeout(total=60)) as client:
        async with client.post(
            "/talk_with",
            json={"message": "Hello", "character": "Batman", "series": "The Dark Knight"},
            headers={"Authorization": headers["Authorization"]},
        ) as r:
            cid = (await r.json())["conversation_id"]
        for i in range(n):
            # straight to the model
            t0 = time.perf_counter()
            stream = await model.messages.create(
                model="claude-haiku-4-5-20251001",
                system=SYSTEM,
                max_tokens=1024,
                stream=True,
                messages=[{"role": "user", "content": f"question {i}: where is the Joker?"}],
            )
            async with stream:
                async for event in stream:
                    if event.type == "content_block_delta":
                        direct.append((time.perf_counter() - t0) * 1000)
                        break
            # through the service
            t0 = time.perf_counter()
            first = None
            async with client.post(
                "/talk_with",
                json={"message": f"question {i}: where is the Joker?", "character": "Batman", "conversation_id": cid},
                headers=headers,
            ) as resp:
                event = None
                async for raw_line in resp.content:
                    raw = raw_line.decode().rstrip("\n")
                    if raw.startswith("event:"):
                        event = raw[6:].strip()
                    elif raw.startswith("data:") and event == "token" and first is None:
                        first = (time.perf_counter() - t0) * 1000
                    elif raw.startswith("data:") and event == "done":
                        server_ttft = orjson.loads(raw[5:])["first_token_ms"]
            service.append(first)
            per_request.append(first - server_ttft)
    await model.close()
    return direct, service, per_request


async def round_trips(dsn: str, redis_url: str, n: int = 200, idle: float = 0.0) -> tuple[list[float], list[float]]:
    """The machine's floor: one trivial PostgreSQL query and one Redis GET, back to back or each
    after `idle` seconds of doing nothing (as a request's round trips are at a few dozen
    messages a second: the processes on both ends have gone to sleep in between)."""
    import asyncpg
    import redis.asyncio as aioredis

    conn = await asyncpg.connect(dsn)
    r = aioredis.from_url(redis_url)
    pg, rd = [], []
    for _ in range(n):
        if idle:
            await asyncio.sleep(idle)
        t0 = time.perf_counter()
        await conn.fetchval("SELECT 1")
        pg.append((time.perf_counter() - t0) * 1000)
        if idle:
            await asyncio.sleep(idle)
        t0 = time.perf_counter()
        await r.get("bench:chat:nothing")
        rd.append((time.perf_counter() - t0) * 1000)
    await conn.close()
    await r.aclose()
    return pg, rd


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--think", type=float, default=1.0, help="mean seconds a user waits between messages")
    ap.add_argument("--ttft", type=int, default=100, help="streamed requests for time to first token")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers for the chat service")
    ap.add_argument(
        "--relay",
        choices=("inprocess", "external"),
        default="inprocess",
        help="the outbox relay in the web process (the default deployment) or as its own process "
        "(`python -m shared.relay chat`, OUTBOX_RELAY=external)",
    )
    args = ap.parse_args()

    async with scratch("core", "chat") as run_env:
        infra, run, dsns, amqp = run_env.infra, run_env.run, run_env.dsns, run_env.amqp
        logs = Path(os.environ.get("TMPDIR", "/tmp"))
        procs: list[subprocess.Popen] = []
        try:
            await migrate(dsns["core"], "payment")
            sandbox_port, chat_port = free_port(), free_port()
            procs.append(start("sandbox.app:app", sandbox_port, {}, logs / f"bench-chat-sandbox-{run}.log"))
            base = f"http://127.0.0.1:{sandbox_port}"
            env = {
                "DATABASE_URL": dsns["core"],
                "CHAT_DATABASE_URL": dsns["chat"],
                "REDIS_URL": infra.redis_url,
                "REDIS_PREFIX": run,
                "RABBITMQ_URL": amqp,
                "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
                "KNOWN_USERS_CHECK": "0",  # one service, no Auth: tokens of made-up users (docs/auth.md)
                "MIGRATE_ON_START": "1",
                "LOG_LEVEL": "WARNING",
                "RATE_LIMIT_PER_MINUTE": "1000000",
                "CHAT_FOLLOW_UPS": "template",
                "DB_POOL_MAX": "20",
                "ANTHROPIC_BASE_URL": f"{base}/anthropic",
                "OPENAI_BASE_URL": f"{base}/openai/v1",
                "TMDB_BASE_URL": f"{base}/tmdb/3",
                "WIKIPEDIA_BASE_URL": f"{base}/wikipedia/api/rest_v1",
                "OUTBOX_RELAY": args.relay,
                **KEYS,
            }
            procs.append(
                start("chat_service.main:app", chat_port, env, logs / f"bench-chat-service-{run}.log", args.workers)
            )
            service_pid = procs[-1].pid
            relay_pids = []
            if args.relay == "external":
                procs.append(  # set-up, before any load is timed
                    subprocess.Popen(  # noqa: ASYNC220
                        [sys.executable, "-m", "shared.relay", "chat"],
                        cwd=ROOT,
                        env={**os.environ, **env},
                        stdout=open(logs / f"bench-chat-relay-{run}.log", "wb"),  # noqa: ASYNC230
                        stderr=subprocess.STDOUT,
                    )
                )
                relay_pids.append(procs[-1].pid)

            def chat_cpu_seconds() -> float:  # the service (its workers included) and its relay process
                return process_cpu_seconds(service_pid, with_children=True) + sum(
                    process_cpu_seconds(p) for p in relay_pids
                )

            url = f"http://127.0.0.1:{chat_port}"
            # Warm up: the character context is cached after the first request, connections are open.
            # One conversation, as the timed users do: a new conversation spends a free user's `regular`
            # allowance (5 a day), a message in an existing one spends nothing.
            async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                h = {"Authorization": f"Bearer {mint_access_token(TEST_JWT_SECRET, user_id=str(uuid.uuid4()))}"}
                warm_body = {"message": "warm up", "character": "Batman", "series": "The Dark Knight"}
                for _ in range(20):
                    warm = await c.post("/talk_with", json=warm_body, headers=h)
                    warm.raise_for_status()
                    warm_body["conversation_id"] = warm.json()["conversation_id"]

            print(
                f"chat benchmark: {args.users} concurrent users, {args.seconds:.0f} s each phase, "
                f"think time ~{args.think} s, {args.workers} worker(s), "
                f"outbox relay {'in its own process' if args.relay == 'external' else 'in the web process'}; "
                f"model = local sandbox (no added latency); {os.cpu_count()} CPUs"
            )
            pg, rd = await round_trips(dsns["chat"], infra.redis_url)
            pg_idle, rd_idle = await round_trips(dsns["chat"], infra.redis_url, n=100, idle=0.01)
            load = os.getloadavg()
            print(
                f"\n0. the machine (load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
                "the service does ~10 such round trips a message)"
            )
            print(line("PostgreSQL SELECT 1", pg))
            print(line("Redis GET", rd))
            print(line("PostgreSQL SELECT 1 after 10 ms idle", pg_idle))
            print(line("Redis GET after 10 ms idle", rd_idle))
            alone, alone_rps = await model_alone(base, args.users, args.seconds, args.think)
            cpu_before = chat_cpu_seconds()
            latencies, overheads, server_overheads, rps, errors = await through_service(
                url, args.users, args.seconds, args.think
            )
            cpu_per_message = (chat_cpu_seconds() - cpu_before) / max(1, len(latencies)) * 1000
            empty = await empty_route(url, args.users, min(args.seconds, 10), args.think)
            print("\n1. non-streamed messages")
            print(line("model alone (SDK -> local model)", alone) + f"   {alone_rps:.0f} req/s")
            print(line("through /talk_with (client latency)", latencies) + f"   {rps:.0f} req/s, {errors} errors")
            print(line("service overhead per request", overheads))
            print(line("  of which inside the service (Server-Timing)", server_overheads))
            print(line("floor: GET /health, same users and server", empty))
            print(
                f"  chat service CPU: {cpu_per_message:.2f} ms per message (all its "
                f"threads{' and its relay process' if relay_pids else ''}, from /proc)"
            )
            print(
                f"  side by side: service p50 - model p50 = {pct(latencies, 50) - pct(alone, 50):.2f} ms; "
                f"p99 - p99 = {pct(latencies, 99) - pct(alone, 99):.2f} ms; "
                f"ratio p50 {pct(latencies, 50) / pct(alone, 50):.2f}x"
            )

            direct, service, per_request = await ttft(url, base, args.ttft)
            print("\n2. time to first token (streamed, one at a time)")
            print(line("model alone", direct))
            print(line("through /talk_with", service))
            print(line("overhead per request (client - server-measured)", per_request))
            print(
                f"  side by side: p50 {pct(service, 50) - pct(direct, 50):.2f} ms more; "
                f"ratio {pct(service, 50) / pct(direct, 50):.2f}x"
            )
            await asyncio.sleep(2)  # the last batch's publish
            import asyncpg

            conn = await asyncpg.connect(dsns["chat"])
            total, waiting = await conn.fetchrow(
                "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox_events"
            )
            await conn.close()
            print(
                f"\n3. events: {total} emitted through the outbox, "
                f"{total - waiting} published to RabbitMQ, {waiting} still waiting"
            )
            verdict = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
            print(
                "\ntargets: overhead p50 <= 5 ms: "
                + verdict(pct(overheads, 50) <= 5)
                + "; p99 <= 20 ms: "
                + verdict(pct(overheads, 99) <= 20)
                + "; TTFT overhead <= 10 ms: "
                + verdict(pct(per_request, 50) <= 10)
            )
        finally:
            for p in procs:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    asyncio.run(main())
