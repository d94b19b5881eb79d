"""Foundation benchmarks, measured side by side in one run.

1. HTTP: a bare FastAPI endpoint vs the same endpoint authenticated (JWT) and rate limited
   (Redis) through the shared app factory; each under uvicorn (1 worker), loaded by wrk from a
   second process, alternating rounds. Target: shared >= 50% of bare requests/s.
2. Outbox relay: 20,000 events emitted into the outbox, published with confirms. Target >= 2,000/s.
3. Publish -> consume latency: events emitted one by one (NOTIFY wakes the relay), consumed
   from a queue; latency = consume time - emit time. Target p99 < 50 ms.
4. The shared stack's CPU per request, before/after side by side: bench/apps/shared_stack.py
   (HS256 fast path, batched rate-limit leases) vs bench/apps/shared_stack_before.py (python-jose
   for every token, one Redis call per lease), a fresh user's token on every request (wrk + Lua),
   alternating rounds. `BENCH_ONLY=stack` runs this part alone.

Run: .venv/bin/python bench/bench_shared.py   (needs scripts/infra.sh's services and wrk)
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import ROOT, Infra, create_database, create_vhost, drop_database, process_cpu_seconds, summary, wrk

from shared import db as dbmod
from shared.auth import mint_access_token
from shared.bus import EventPublisher, OutboxRelay, emit
from shared.bus.amqp import AMQPChannel, declare_event_exchange
from shared.events import Event, make_event
from shared.migrate import migrate
from shared.testing.env import delete_vhost
from shared.testing.processes import free_port

SECRET = "bench-secret-bench-secret-bench-secret-0123"
EXCHANGE = "scenextras.events"


def start(module: str, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", module, "--port", str(port), "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


def bench_http(seconds: int, rounds: int) -> None:
    env = {
        "DATABASE_URL": "postgresql://unused/unused",
        "SUPABASE_JWT_SECRET": SECRET,
        "KNOWN_USERS_CHECK": "0",  # one service, no Auth: tokens of made-up users (docs/auth.md)
        "REDIS_PREFIX": f"bench{uuid.uuid4().hex[:6]}",
        # High enough that the benchmark measures the limiter's cost, not 429s.
        "RATE_LIMIT_PER_MINUTE": "100000000",
    }
    bare, bare_url = start("bench.apps.bare:app", env)
    shared, shared_url = start("bench.apps.shared_stack:app", env)
    token = mint_access_token(SECRET, user_id=str(uuid.uuid4()), tier=1)
    try:
        results = {"bare": [], "shared": []}
        for _ in range(rounds):  # alternating, so background load hits both alike
            for name, proc, url, headers in (
                ("bare", bare, bare_url, None),
                ("shared", shared, shared_url, {"Authorization": f"Bearer {token}"}),
            ):
                cpu0 = process_cpu_seconds(proc.pid)
                run = wrk(f"{url}/ping", seconds=seconds, headers=headers)
                run["cpu_us"] = (process_cpu_seconds(proc.pid) - cpu0) / run["requests"] * 1e6
                results[name].append(run)
        print(
            "\n== HTTP: bare FastAPI vs authenticated + rate-limited (shared factory), "
            "wrk -t2 -c50, uvicorn 1 worker =="
        )
        for name, runs in results.items():
            best = max(runs, key=lambda r: r["rps"])
            cpu = statistics.median(r["cpu_us"] for r in runs)
            print(
                f"{name:>7}: {best['rps']:8.0f} req/s  p50 {best['p50_ms']:.2f} ms  p99 {best['p99_ms']:.2f} ms  "
                f"non-2xx {sum(r['non_2xx'] for r in runs)}"
                f"  server CPU {cpu:.0f} us/request  (rounds: {', '.join(format(r['rps'], '.0f') for r in runs)})"
            )
        pair_ratios = sorted(s["rps"] / b["rps"] for s, b in zip(results["shared"], results["bare"], strict=True))
        cpu_ratio = statistics.median(r["cpu_us"] for r in results["bare"]) / statistics.median(
            r["cpu_us"] for r in results["shared"]
        )
        print(
            f"  ratio shared/bare, req/s: median of {len(pair_ratios)} back-to-back pairs "
            f"{statistics.median(pair_ratios):.2f} (range {pair_ratios[0]:.2f}-{pair_ratios[-1]:.2f})  (target >= 0.50)"
        )
        print(f"  ratio by server CPU per request (insensitive to other load): {cpu_ratio:.2f}")
    finally:
        for p in (bare, shared):
            p.terminate()
            p.wait()


_FRESH_TOKENS_LUA = """
-- A different token on every request: thread t of n takes tokens t, t+n, t+2n, ... from line
-- `offset` on (each round its own slice, so no token is ever seen twice by one server).
local tokens, i, n = {}, 0, 0
function setup(thread)
  thread:set("tid", n); n = n + 1
end
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  i = tonumber(args[2]) + tid
  step = tonumber(args[3])
end
function request()
  local token = tokens[(i % #tokens) + 1]
  i = i + step
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. token})
end
"""


def wrk_fresh_tokens(url: str, tokens_file: str, offset: int, seconds: int, threads: int = 2) -> dict:
    script = Path(tokens_file).with_suffix(".lua")
    script.write_text(_FRESH_TOKENS_LUA)
    cmd = ["wrk", "-t", str(threads), "-c", "50", "-d", f"{seconds}s", "--latency", "-s", str(script)]
    out = subprocess.run(
        [*cmd, url, "--", tokens_file, str(offset), str(threads)], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return {"rps": rps, "requests": total, "non_2xx": int(non2xx.group(1)) if non2xx else 0, "p99_ms": p99_ms}


def bench_stack_before_after(seconds: int, rounds: int) -> None:
    env = {
        "DATABASE_URL": "postgresql://unused/unused",
        "SUPABASE_JWT_SECRET": SECRET,
        "REDIS_PREFIX": f"bench{uuid.uuid4().hex[:6]}",
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "LOG_LEVEL": "WARNING",
        "KNOWN_USERS_CHECK": "0",  # one service, no Auth: tokens of made-up users (docs/auth.md)
    }
    per_round = seconds * 6000  # more than either server answers in a round
    tokens_file = Path(tempfile.mkdtemp()) / "tokens.txt"
    tokens_file.write_text(
        "\n".join(mint_access_token(SECRET, user_id=str(uuid.uuid4())) for _ in range(per_round * rounds)) + "\n"
    )
    servers = {
        "before": start("bench.apps.shared_stack_before:app", env),
        "after": start("bench.apps.shared_stack:app", env),
    }
    try:
        results: dict[str, list[dict]] = {"before": [], "after": []}
        for r in range(rounds):  # alternating, so background load hits both alike
            for name, (proc, url) in servers.items():
                cpu0 = process_cpu_seconds(proc.pid)
                run = wrk_fresh_tokens(f"{url}/ping", str(tokens_file), r * per_round, seconds)
                run["cpu_us"] = (process_cpu_seconds(proc.pid) - cpu0) / run["requests"] * 1e6
                run["tokens_reused"] = run["requests"] > per_round
                results[name].append(run)
        print(
            "\n== Shared stack GET /ping, a fresh user's token per request, before/after "
            "(wrk -t2 -c50 + Lua, uvicorn 1 worker) =="
        )
        for name, runs in results.items():
            cpu = statistics.median(r["cpu_us"] for r in runs)
            print(
                f"{name:>7}: median {statistics.median(r['rps'] for r in runs):7.0f} req/s  "
                f"server CPU {cpu:4.0f} us/request  p99 {statistics.median(r['p99_ms'] for r in runs):.2f} ms  "
                f"non-2xx {sum(r['non_2xx'] for r in runs)}"
                f"{'  (tokens reused!)' if any(r['tokens_reused'] for r in runs) else ''}"
                f"  (rounds: {', '.join(format(r['rps'], '.0f') for r in runs)} req/s; "
                f"{', '.join(format(r['cpu_us'], '.0f') for r in runs)} us)"
            )
        cpu_before = statistics.median(r["cpu_us"] for r in results["before"])
        cpu_after = statistics.median(r["cpu_us"] for r in results["after"])
        pairs = sorted(a["rps"] / b["rps"] for a, b in zip(results["after"], results["before"], strict=True))
        print(
            f"  after/before: server CPU per request {cpu_after / cpu_before:.2f}, "
            f"req/s median of {len(pairs)} pairs {statistics.median(pairs):.2f} (range {pairs[0]:.2f}-{pairs[-1]:.2f})"
        )
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
        tokens_file.unlink(missing_ok=True)
        tokens_file.with_suffix(".lua").unlink(missing_ok=True)


async def bench_bus(events: int, latency_events: int) -> None:
    infra = Infra.from_environ()
    run = f"bench{uuid.uuid4().hex[:6]}"
    dsn = await create_database(infra, run)
    amqp = create_vhost(infra, run)
    try:
        await migrate(dsn, "bench", ROOT / "bench" / "no-migrations")
        pool = await dbmod.create_pool(dsn, min_size=2, max_size=4)
        # A consumer queue bound to everything, so messages are really routed and stored.
        ch = await AMQPChannel(amqp, "bench-consumer").open()
        await declare_event_exchange(ch, EXCHANGE)
        await ch.declare_queue("bench.events")
        await ch.bind_queue("bench.events", EXCHANGE, "#")

        # 1. Throughput: a backlog of events, drained by the relay.
        batch = [make_event("message.sent", str(uuid.uuid4()), {"n": i}) for i in range(events)]
        async with pool.acquire() as conn, conn.transaction():
            for i in range(0, events, 1000):
                await emit(conn, *batch[i : i + 1000])
        publisher = EventPublisher(amqp, EXCHANGE)
        relay = OutboxRelay(pool, publisher, batch_size=500)
        t0 = time.perf_counter()
        published = await relay.drain()
        elapsed = time.perf_counter() - t0
        print("\n== Outbox relay (publisher confirms, persistent, batch 500) ==")
        print(
            f"published {published} events in {elapsed:.2f} s: {published / elapsed:,.0f} events/s  (target >= 2,000/s)"
        )
        await ch._rpc(ch.channel.queue_purge, queue="bench.events")

        # 2. Latency: one event per transaction, relay woken by NOTIFY, consumer on the queue.
        latencies: list[float] = []
        done = asyncio.Event()

        def on_message(_c, method, _props, body):
            event = Event.from_bytes(body)
            latencies.append((time.time() - event.timestamp.timestamp()) * 1000)
            if len(latencies) >= latency_events:
                done.set()

        ch.channel.basic_consume("bench.events", on_message, auto_ack=True)
        relay.start()
        for i in range(latency_events):
            async with pool.acquire() as conn, conn.transaction():
                await emit(conn, make_event("message.sent", str(uuid.uuid4()), {"i": i}))
            await asyncio.sleep(0.005)
        await asyncio.wait_for(done.wait(), 30)
        print(
            f"publish -> consume latency ({latency_events} events at ~200/s): "
            f"{summary(latencies)}  (target p99 < 50 ms)"
        )
        await relay.stop()
        await publisher.close()
        await ch.close()
        await pool.close()
    finally:
        await drop_database(infra, run)
        delete_vhost(infra, run)


def main() -> None:
    seconds = int(os.environ.get("BENCH_SECONDS", "5"))
    if os.environ.get("BENCH_ONLY") == "stack":
        bench_stack_before_after(seconds, rounds=int(os.environ.get("BENCH_ROUNDS", "3")))
        return
    bench_http(seconds, rounds=int(os.environ.get("BENCH_ROUNDS", "4")))
    asyncio.run(bench_bus(events=int(os.environ.get("BENCH_EVENTS", "20000")), latency_events=1000))
    bench_stack_before_after(seconds, rounds=int(os.environ.get("BENCH_ROUNDS", "4")))


if __name__ == "__main__":
    main()
