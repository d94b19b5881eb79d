"""Load on the local fleet: virtual users doing flows 1-3 over HTTP for a bounded time.

    .venv/bin/python bench/bench_fleet.py                       # 200 users, 60 s (the issue's run)
    .venv/bin/python bench/bench_fleet.py --users 20 --seconds 15

Starts its own fleet (Auth, Payment, Chat as uvicorn processes on scratch PostgreSQL databases, a
scratch RabbitMQ vhost and Redis prefix; the sandbox as a separate process for the LLMs, TMDB,
Wikipedia and Stripe), with an Analytics-style durable queue bound to '#' on the events exchange.
Each virtual user loops: sign up (OTP from the email outbox; every other sign-up uses the previous
user's referral code), details, quota; chat (new conversation, history, stream, pin, like,
export); exhaust the free conversations until 402; checkout, pay at the sandbox's Stripe (signed
webhooks to Payment), chat again with the old token, refresh the token. Only 127.0.0.1 is loaded.

Reports request rate and p50/p99 per route, then the checks: server errors (5xx, must be 0),
quota overspent (the ledger in the core database vs conversations saved in the chat database, and
free allowances never exceeded: must be 0), events lost (outbox rows published vs events that
reached the '#' queue: must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, Infra, create_database, create_vhost, drop_database, percentile
from shared import fleet as manifest
from shared.testing.env import TEST_JWT_SECRET, delete_vhost, new_run_id, queue_info
from shared.testing.fleet import Fleet
from shared.testing.processes import free_port
from tests.e2e.fans import Clients, Fan, Outbox, claims, new_email, parse_sse

TAP_QUEUE = "bench.analytics.tap"
# The queues of the consumers among the services it runs (Fleet's default: auth, payment, chat).
SERVICE_QUEUES = tuple(
    manifest.get(s).events_queue for s in ("auth", "payment", "chat") if manifest.get(s).consumes_events
)


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.status: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.errors: list[str] = []

    async def call(self, route: str, coro) -> httpx.Response:
        t = time.perf_counter()
        try:
            r = await coro
        except httpx.HTTPError as exc:
            self.status[route]["exc"] += 1
            self.errors.append(f"{route}: {exc!r}")
            raise
        self.latency[route].append((time.perf_counter() - t) * 1000)
        self.status[route][r.status_code] += 1
        if r.status_code >= 500:
            self.errors.append(f"{route}: {r.status_code} {r.text[:200]}")
        return r


class Expectation(Exception):
    pass


def expect(r: httpx.Response, *codes: int) -> httpx.Response:
    if r.status_code not in codes:
        raise Expectation(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}")
    return r


class Run:
    def __init__(self, http: Clients, outbox: Outbox, sandbox_url: str, stats: Stats, deadline: float):
        self.http = http
        self.outbox = outbox
        self.sandbox = httpx.AsyncClient(base_url=sandbox_url, timeout=60, trust_env=False)
        self.stats = stats
        self.deadline = deadline
        self.users: list[Fan] = []
        self.flows_done = collections.Counter()
        self.failures: list[str] = []
        self.last_code: str | None = None

    async def code(self, email: str) -> str:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            found = await asyncio.to_thread(self.outbox.messages, email)
            if found:
                return found[-1]["context"]["code"]
            await asyncio.sleep(0.1)
        raise Expectation(f"no OTP email for {email}")

    async def flow1(self) -> Fan:
        s, h = self.stats, self.http
        fan = Fan(new_email("load"))
        body = {"email": fan.email, "password": fan.password}
        if self.last_code and len(self.users) % 2:
            body["referral_code"] = self.last_code
        expect(await s.call("POST /create-account", h.auth.post("/create-account", json=body)), 201)
        code = await self.code(fan.email)
        r = expect(
            await s.call("POST /verify-otp", h.auth.post("/verify-otp", json={"email": fan.email, "code": code})), 200
        )
        fan.take(r.json())
        self.users.append(fan)
        self.last_code = fan.referral_code
        expect(
            await s.call(
                "PUT /users/me/details",
                h.auth.put(
                    "/users/me/details", json={"name": "Load", "onboarding_status": "completed"}, headers=fan.headers
                ),
            ),
            200,
        )
        expect(await s.call("GET /quota", h.payment.get("/quota", headers=fan.headers)), 200)
        self.flows_done["1 onboarding"] += 1
        return fan

    async def talk(self, fan: Fan, route: str, token: str | None = None, **body) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else fan.headers
        return await self.stats.call(
            route,
            self.http.chat.post(
                "/talk_with", json={"character": "Luke Skywalker", "series": "Star Wars", **body}, headers=headers
            ),
        )

    async def flow2(self, fan: Fan) -> None:
        s, h = self.stats, self.http
        r = expect(await self.talk(fan, "POST /talk_with (new)", message="Hello there, Luke"), 200)
        first = r.json()
        cid = first["conversation_id"]
        expect(await self.talk(fan, "POST /talk_with (history)", message="Tell me more", conversation_id=cid), 200)
        t = time.perf_counter()
        async with h.chat.stream(
            "POST",
            "/talk_with",
            json={"message": "Stream it", "character": "Luke Skywalker", "conversation_id": cid, "stream": True},
            headers=fan.headers,
        ) as resp:
            text = (await resp.aread()).decode()
        s.latency["POST /talk_with (stream)"].append((time.perf_counter() - t) * 1000)
        s.status["POST /talk_with (stream)"][resp.status_code] += 1
        kinds = [k for k, _ in parse_sse(text)]
        if resp.status_code != 200 or kinds.count("done") != 1:
            s.errors.append(f"stream: {resp.status_code} {kinds[-3:]}")
        mid = first["message_id"]
        expect(await s.call("POST /messages/{id}/pin", h.chat.post(f"/messages/{mid}/pin", headers=fan.headers)), 200)
        expect(
            await s.call(
                "POST /messages/{id}/reactions",
                h.chat.post(f"/messages/{mid}/reactions", json={"reaction": "like"}, headers=fan.headers),
            ),
            200,
        )
        expect(
            await s.call(
                "GET /conversations/{id}/export",
                h.chat.get(f"/conversations/{cid}/export", params={"format": "md"}, headers=fan.headers),
            ),
            200,
        )
        self.flows_done["2 conversation"] += 1

    async def flow3(self, fan: Fan) -> None:
        s, h = self.stats, self.http
        for i in range(40):  # the rest of the free conversations (plus any referral bonus), then 402
            r = expect(await self.talk(fan, "POST /talk_with (new)", message=f"New chat {i}"), 200, 402)
            if r.status_code == 402:
                break
        else:
            raise Expectation("never reached 402")
        old = fan.access_token
        r = expect(
            await s.call(
                "POST /create-checkout-session",
                h.payment.post("/create-checkout-session", json={"tier": "pro"}, headers=fan.headers),
            ),
            200,
        )
        session = r.json()["session_id"]
        r = await s.call(
            "sandbox: pay checkout",
            self.sandbox.post(f"/_sandbox/stripe/checkout/sessions/{session}/complete", json={}),
        )
        expect(r, 200)
        bad = [d for d in r.json()["deliveries"] if d["status"] != 200]
        if bad:
            s.errors.append(f"webhook deliveries failed: {bad[:2]}")
        paid = time.monotonic()
        while True:
            r = await self.talk(fan, "POST /talk_with (old token, after upgrade)", token=old, message="I'm Pro now")
            if r.status_code == 200:
                break
            if time.monotonic() - paid > 5:
                raise Expectation(f"old token still refused 5 s after the upgrade: {r.status_code} {r.text[:200]}")
            await asyncio.sleep(0.1)
        s.latency["upgrade visible (webhook -> chat ok)"].append((time.monotonic() - paid) * 1000)
        s.status["upgrade visible (webhook -> chat ok)"]["ok"] += 1
        r = expect(
            await s.call(
                "POST /token/refresh", h.auth.post("/token/refresh", json={"refresh_token": fan.refresh_token})
            ),
            200,
        )
        fan.take(r.json())
        self.flows_done["3 upgrade"] += 1
        if claims(fan.access_token)["app_metadata"]["tier"] == 1:
            self.flows_done["3 refreshed token already tier 1"] += 1

    async def virtual_user(self) -> None:
        while time.monotonic() < self.deadline:
            try:
                fan = await self.flow1()
                if time.monotonic() >= self.deadline:
                    return
                await self.flow2(fan)
                if time.monotonic() >= self.deadline:
                    return
                await self.flow3(fan)
            except (Expectation, httpx.HTTPError) as exc:
                self.failures.append(repr(exc)[:300])
                await asyncio.sleep(0.5)


def drain_tap(url: str) -> list[str]:
    """Every event id that reached the '#' queue (consumed and acknowledged here)."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ids = []
    while True:
        method, props, body = ch.basic_get(TAP_QUEUE, auto_ack=True)
        if method is None:
            break
        ids.append(props.message_id)
    conn.close()
    return ids


def declare_tap(url: str) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(TAP_QUEUE, durable=True)
    ch.queue_bind(TAP_QUEUE, "scenextras.events", "#")
    conn.close()


async def checks(core_dsn: str, chat_dsn: str, amqp_url: str) -> dict:
    core = await asyncpg.connect(core_dsn)
    chat = await asyncpg.connect(chat_dsn)
    try:
        # Events: every outbox row published, and each reached the '#' queue.
        deadline = time.monotonic() + 60
        while True:
            pending = await core.fetchval("SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
            pending += await chat.fetchval("SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
            if pending == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        published = {
            str(r["event_id"])
            for r in await core.fetch("SELECT event_id FROM outbox_events WHERE published_at IS NOT NULL")
        }
        published |= {
            str(r["event_id"])
            for r in await chat.fetch("SELECT event_id FROM outbox_events WHERE published_at IS NOT NULL")
        }
        await asyncio.sleep(1.0)
        seen = await asyncio.to_thread(drain_tap, amqp_url)
        lost = published - set(seen)
        # Quota: conversations saved vs regular reservations charged, per user; free allowance kept.
        convs = {
            str(r["user_id"]): r["n"]
            for r in await chat.fetch("SELECT user_id, count(*) AS n FROM conversations GROUP BY user_id")
        }
        ledger = await core.fetch(
            "SELECT user_id::text AS u, count(*) FILTER (WHERE state = 'settled') AS settled,"
            " count(*) FILTER (WHERE state = 'settled' AND NOT unlimited) AS limited,"
            " count(*) FILTER (WHERE state = 'held') AS held FROM quota_reservations "
            "WHERE quota_type = 'regular' GROUP BY user_id"
        )
        bonus = {
            str(r["u"]): r["b"]
            for r in await core.fetch(
                "SELECT u, sum(b) AS b FROM (SELECT referrer_id AS u, 10 AS b FROM referrals "
                "UNION ALL SELECT referred_id, 5 FROM referrals) x GROUP BY u"
            )
        }
        mismatched = [r["u"] for r in ledger if r["settled"] != convs.get(r["u"], 0)]
        mismatched += [u for u in convs if u not in {r["u"] for r in ledger}]
        overspent = [r["u"] for r in ledger if r["limited"] > 5 + int(bonus.get(r["u"], 0))]
        negative = await core.fetchval("SELECT count(*) FROM user_quotas WHERE quota < -1 OR bonus_quota < 0")
        return {
            "events_published": len(published),
            "events_seen_on_#": len(set(seen)),
            "events_duplicated_on_#": len(seen) - len(set(seen)),
            "events_lost": len(lost),
            "users_with_ledger_mismatch": len(mismatched),
            "users_quota_overspent": len(overspent) + negative,
            "reservations_still_held": sum(r["held"] for r in ledger),
            "conversations": sum(convs.values()),
            "dead_lettered": None,
        }
    finally:
        await core.close()
        await chat.close()


async def load(
    args, fleet: Fleet, sandbox_url: str, amqp_url: str, core_dsn: str, chat_dsn: str, infra: Infra, vhost: str
) -> None:
    stats = Stats()
    limits = httpx.Limits(max_connections=args.users * 2, max_keepalive_connections=args.users * 2)
    http = Clients({n: fleet.url(n) for n in fleet.procs}, timeout=120, limits=limits)
    started = time.monotonic()
    run = Run(http, Outbox(fleet.outbox_dir), sandbox_url, stats, started + args.seconds)
    tasks = []
    for _ in range(args.users):
        tasks.append(asyncio.create_task(run.virtual_user()))
        await asyncio.sleep(args.ramp / max(1, args.users))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    await http.aclose()
    await run.sandbox.aclose()

    total = sum(len(v) for v in stats.latency.values())
    print(
        f"\n{args.users} virtual users, {args.seconds:.0f} s of load (+ finishing in-flight flows): {elapsed:.1f} s, "
        f"{total} timed requests, {total / elapsed:.1f} req/s"
    )
    print(f"{'route':48} {'count':>7} {'req/s':>7} {'p50 ms':>9} {'p99 ms':>9}  statuses")
    for route in sorted(stats.latency):
        lat = stats.latency[route]
        codes = " ".join(f"{k}:{v}" for k, v in sorted(stats.status[route].items(), key=lambda kv: str(kv[0])))
        print(
            f"{route:48} {len(lat):7d} {len(lat) / elapsed:7.1f} {percentile(lat, 50):9.1f} "
            f"{percentile(lat, 99):9.1f}  {codes}"
        )
    print("flows completed:", dict(run.flows_done))
    server_errors = sum(v for st in stats.status.values() for k, v in st.items() if isinstance(k, int) and k >= 500)
    transport_errors = sum(st.get("exc", 0) for st in stats.status.values())
    print(
        f"server errors (5xx): {server_errors}   transport errors: "
        f"{transport_errors}   flow failures: {len(run.failures)}"
    )
    for e in (stats.errors + run.failures)[:10]:
        print("   ", e)
    result = await checks(core_dsn, chat_dsn, amqp_url)
    result["dead_lettered"] = sum(
        (queue_info(infra, vhost, q + ".dlq") or {}).get("messages", 0) for q in SERVICE_QUEUES
    )
    for k, v in result.items():
        print(f"{k}: {v}")
    ok = (
        server_errors == 0
        and result["events_lost"] == 0
        and result["users_quota_overspent"] == 0
        and result["users_with_ledger_mismatch"] == 0
    )
    print("RESULT:", "OK" if ok else "FAILED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which the users start")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    infra = Infra.from_environ()
    run_id = new_run_id()
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    dsns = {}
    sandbox = fleet = None
    try:
        for role in manifest.database_roles():
            dsns[role] = asyncio.run(create_database(infra, f"{run_id}_{role}"))
        amqp_url = create_vhost(infra, run_id)
        port = free_port()
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--port", str(port)],
            cwd=ROOT,
            stdout=open(work / "sandbox.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        sandbox_url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(sandbox_url + "/_sandbox", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        from sandbox.control import env_for
        from sandbox.testing import DUMMY_KEYS

        env = {
            "ENVIRONMENT": "bench",
            **manifest.database_env(dsns),
            "REDIS_URL": infra.redis_url,
            "REDIS_PREFIX": run_id,
            "RABBITMQ_URL": amqp_url,
            "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
            "MIGRATE_ON_START": "1",
            "LOG_JSON": "1",
            "DB_POOL_MAX": "20",
            **env_for(sandbox_url),
            **DUMMY_KEYS,
        }
        print(f"starting the fleet (logs in {work}) ...", flush=True)
        t = time.monotonic()
        fleet = Fleet(env, log_dir=work, proxied=False).start(timeout=180)
        deadline = time.monotonic() + 60
        while any((queue_info(infra, run_id, q) or {}).get("consumers", 0) < 1 for q in SERVICE_QUEUES):
            if time.monotonic() > deadline:
                raise RuntimeError("consumers did not attach")
            time.sleep(0.2)
        declare_tap(amqp_url)
        httpx.post(
            sandbox_url + "/_sandbox/stripe/webhook_endpoints",
            json={"url": fleet.url("payment") + "/webhook"},
            timeout=10,
        ).raise_for_status()
        print(
            f"fleet up in {time.monotonic() - t:.1f} s: " + ", ".join(f"{n} {fleet.url(n)}" for n in fleet.procs),
            flush=True,
        )
        asyncio.run(load(args, fleet, sandbox_url, amqp_url, dsns["core"], dsns["chat"], infra, run_id))
    finally:
        if fleet is not None:
            fleet.stop()
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(10)
        for role in dsns:
            asyncio.run(drop_database(infra, f"{run_id}_{role}"))
        delete_vhost(infra, run_id)
        if not args.keep_logs:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
