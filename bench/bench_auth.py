"""Auth service benchmark: token refresh and GET /users/me under 50 concurrent clients, and what
a login costs next to the argon2id hash it runs.

    .venv/bin/python bench/bench_auth.py [--clients 50] [--seconds 8] [--rate 10] [--workers 1]

Runs the real service (uvicorn, one process per worker) against the local PostgreSQL, Redis and
RabbitMQ (scripts/infra.sh), in a throw-away database and vhost, with production password
parameters (argon2id t=3, m=64 MiB, p=4 unless ARGON2_* say otherwise) and the per-route rate
limits off. Everything printed is measured in this run, side by side:

- open loop (first, on a fresh service): N clients each sending --rate requests a second on a
  fixed schedule (latency at a steady load below saturation), GET /health alongside as the
  framework's floor and a bare PostgreSQL INSERT commit as the write path's floor;
- closed loop: N clients each sending the next request as soon as the last answered (the
  service's saturation throughput; latency there is mostly queueing), with the service's CPU
  time per request (read from /proc: robust to other load on the machine, unlike wall time);
- login: sequential logins against the in-process argon2id hash with the same parameters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.testing.env import TEST_JWT_SECRET, Infra, create_database, create_vhost, delete_vhost, drop_database  # noqa: E402
from shared.testing.processes import free_port  # noqa: E402

PASSWORD = "bench password 123"


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its direct children (uvicorn workers)."""
    total = 0.0
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        proc_pid, ppid = int(path.parent.name), int(fields[1])
        if proc_pid == pid or ppid == pid:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


SERVER_PID = 0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))
    return values[k]


def summary(name: str, lat: list[float], elapsed: float, errors: int) -> dict:
    ms = [x * 1000 for x in lat]
    row = {
        "name": name,
        "n": len(ms),
        "rps": len(ms) / elapsed if elapsed else 0,
        "p50": pct(ms, 50),
        "p90": pct(ms, 90),
        "p99": pct(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "errors": errors,
    }
    print(
        f"  {name:<34} n={row['n']:>6}  {row['rps']:>7.0f} req/s  p50 {row['p50']:6.2f} ms  p90 {row['p90']:6.2f} ms"
        f"  p99 {row['p99']:6.2f} ms  max {row['max']:7.2f} ms  errors {errors}"
    )
    return row


async def closed_loop(name, op, clients: int, seconds: float) -> dict:
    cpu0 = cpu_seconds(SERVER_PID)
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(i):
        nonlocal errors
        while time.perf_counter() < stop:
            t = time.perf_counter()
            ok = await op(i)
            if ok:
                lat.append(time.perf_counter() - t)
            else:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    row = summary(name, lat, time.perf_counter() - start, errors)
    row["cpu_ms"] = (cpu_seconds(SERVER_PID) - cpu0) * 1000 / max(1, row["n"] + errors)
    print(
        f"  {'':<34} service CPU per request {row['cpu_ms']:.2f} ms  (= {1000 / row['cpu_ms']:.0f} "
        "req/s per core at full use)"
    )
    return row


async def open_loop(name, op, clients: int, seconds: float, rate: float) -> dict:
    """Each client fires on its own fixed schedule (staggered); latency is measured from the
    scheduled send time, so a slow server shows up as latency, not as a lower offered load."""
    lat: list[float] = []
    errors = 0
    interval = 1.0 / rate

    async def worker(i):
        nonlocal errors
        start = time.perf_counter() + (i / clients) * interval
        n = 0
        while True:
            due = start + n * interval
            if due > t0 + seconds:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ok = await op(i)
            if ok:
                lat.append(time.perf_counter() - due)
            else:
                errors += 1
            n += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return summary(name, lat, time.perf_counter() - t0, errors)


async def wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(300):
            if proc.poll() is not None:
                # The service died during start-up, before any load: the bench stops here.
                raise SystemExit(f"auth service exited:\n{log.read_text()[-3000:]}")  # noqa: ASYNC240
            try:
                if (await c.get(f"{url}/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("auth service did not become ready")


async def sign_up_users(c: httpx.AsyncClient, outbox: Path, n: int) -> list[dict]:
    users = []
    sem = asyncio.Semaphore(4)

    async def one(i):
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        async with sem:
            r = await c.post("/create-account", json={"email": email, "password": PASSWORD})
            r.raise_for_status()
            for _ in range(200):
                files = await asyncio.to_thread(lambda: [json.loads(p.read_text()) for p in outbox.glob("*.json")])
                found = [f for f in files if f["to"] == email]
                if found:
                    break
                await asyncio.sleep(0.02)
            r = await c.post("/verify-otp", json={"email": email, "code": found[-1]["context"]["code"]})
            r.raise_for_status()
            users.append({"email": email, **r.json()})

    await asyncio.gather(*(one(i) for i in range(n)))
    return users


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rate", type=float, default=2.0, help="requests per second per client in the open-loop runs")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--logins", type=int, default=20)
    ap.add_argument("--phases", default="closed,open,login", help="which parts to run (comma-separated)")
    args = ap.parse_args()

    infra = Infra.from_environ()
    run = f"bench{uuid.uuid4().hex[:8]}"
    dsn = await create_database(infra, f"{run}_core")
    amqp = create_vhost(infra, run)
    outbox = Path(tempfile.mkdtemp(prefix="auth-bench-outbox-"))
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": infra.redis_url,
        "REDIS_PREFIX": run,
        "RABBITMQ_URL": amqp,
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "MIGRATE_ON_START": "1",
        "LOG_LEVEL": "WARNING",
        "EMAIL_BACKEND": "file",
        "EMAIL_OUTBOX_DIR": str(outbox),
        "OTP_RESEND_COOLDOWN_SECONDS": "0",
        "RATE_LIMIT_PER_MINUTE": "0",
        "DB_POOL_MAX": "20",
        **{
            f"RATE_LIMIT_{n}_PER_MINUTE": "0"
            for n in ("SIGNUP", "LOGIN", "OTP_VERIFY", "OTP_RESEND", "PASSWORD", "GUEST", "OAUTH", "REFRESH")
        },
    }
    log = outbox / "service.log"
    # Apply migrations once before starting several workers.
    # Set-up before any load is timed: blocking the loop here delays nothing that is measured.
    subprocess.run(  # noqa: ASYNC221
        [sys.executable, "-m", "shared.migrate", "auth"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    proc = subprocess.Popen(  # noqa: ASYNC220
        [
            sys.executable,
            "-m",
            "uvicorn",
            "auth_service.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--workers",
            str(args.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),  # noqa: ASYNC230
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    global SERVER_PID
    SERVER_PID = proc.pid
    try:
        await wait_ready(url, proc, log)
        limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=args.clients + 10)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as c:
            from auth_service.passwords import Passwords
            from auth_service.settings import Settings

            s = Settings(database_url=dsn, supabase_jwt_secret=TEST_JWT_SECRET)
            pw = Passwords(
                time_cost=s.argon2_time_cost, memory_kib=s.argon2_memory_kib, parallelism=s.argon2_parallelism
            )
            print(
                f"auth benchmark: {args.clients} clients, {args.seconds:.0f} s per run, "
                f"{args.workers} uvicorn worker(s), "
                f"{os.cpu_count()} CPUs, password hash {pw.parameters}, load average {os.getloadavg()[0]:.1f}"
            )
            print("setting up users (create-account + emailed code + verify-otp) ...")
            users = await sign_up_users(c, outbox, args.clients)
            access = [u["access_token"] for u in users]
            refresh = [u["refresh_token"] for u in users]

            async def health(i):
                return (await c.get("/health")).status_code == 200

            async def me(i):
                return (await c.get("/users/me", headers={"Authorization": f"Bearer {access[i]}"})).status_code == 200

            async def do_refresh(i):
                r = await c.post("/token/refresh", json={"refresh_token": refresh[i]})
                if r.status_code != 200:
                    return False
                refresh[i] = r.json()["refresh_token"]
                return True

            print("warm-up:")
            for name, op in (("GET /health", health), ("GET /users/me", me), ("POST /token/refresh", do_refresh)):
                await closed_loop(name, op, min(5, args.clients), 1.0)  # the users signed up above
            results = {}
            phases = set(args.phases.split(","))
            if "open" in phases:
                # Control for the write path: a bare one-row INSERT commit (fsync) on the same server,
                # at the same rate, measured in the same run. A refresh commits a write; when this
                # control's tail is long, the disk (not the service) sets the refresh's tail.
                import asyncpg

                pg = await asyncpg.create_pool(dsn, min_size=5, max_size=20)
                await pg.execute(
                    "CREATE TABLE IF NOT EXISTS bench_commit_control (id bigserial PRIMARY KEY, "
                    "at timestamptz DEFAULT now())"
                )

                async def commit(i):
                    await pg.execute("INSERT INTO bench_commit_control DEFAULT VALUES")
                    return True

                print(
                    f"\nopen loop ({args.clients} clients x {args.rate:g} req/s = "
                    f"{args.clients * args.rate:.0f} req/s offered):"
                )
                for name, op in (
                    ("GET /health (floor)", health),
                    ("GET /users/me", me),
                    ("POST /token/refresh", do_refresh),
                    ("control: bare INSERT commit", commit),
                ):
                    results[("open", name)] = await open_loop(name, op, args.clients, args.seconds, args.rate)
                await pg.close()

            if "closed" in phases:
                print(f"\nclosed loop ({args.clients} clients back to back):")
                for name, op in (
                    ("GET /health (floor)", health),
                    ("GET /users/me", me),
                    ("POST /token/refresh", do_refresh),
                ):
                    results[("closed", name)] = await closed_loop(name, op, args.clients, args.seconds)
            if "login" in phases:
                print(f"\nlogin cost ({args.logins} sequential logins, no other load):")
                hash_times = []
                for _ in range(args.logins):
                    t = time.perf_counter()
                    await pw.hash(PASSWORD)
                    hash_times.append(time.perf_counter() - t)
                stored = await pw.hash(PASSWORD)
                verify_times = []
                for _ in range(args.logins):
                    t = time.perf_counter()
                    await pw.verify(stored, PASSWORD)
                    verify_times.append(time.perf_counter() - t)
                login_times, unknown_times = [], []
                for i in range(args.logins):
                    t = time.perf_counter()
                    r = await c.post("/login", json={"email": users[i % len(users)]["email"], "password": PASSWORD})
                    login_times.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                    t = time.perf_counter()
                    r = await c.post("/login", json={"email": f"nobody-{i}@example.com", "password": PASSWORD})
                    unknown_times.append(time.perf_counter() - t)
                    assert r.status_code == 401
                seq_refresh, seq_me = [], []
                for i in range(args.logins):
                    t = time.perf_counter()
                    assert await do_refresh(i % len(refresh))
                    seq_refresh.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    assert await me(i % len(access))
                    seq_me.append(time.perf_counter() - t)
                med = lambda xs: statistics.median(xs) * 1000  # noqa: E731
                print(f"  argon2id hash (in-process)          median {med(hash_times):7.1f} ms")
                print(f"  argon2id verify (in-process)        median {med(verify_times):7.1f} ms")
                print(
                    f"  POST /login (right password)        median {med(login_times):7.1f} ms   p99 "
                    f"{pct([x * 1000 for x in login_times], 99):7.1f} ms"
                )
                print(
                    f"  POST /login (unknown email)         median {med(unknown_times):7.1f} ms   (dummy verify: "
                    "same cost, no account oracle)"
                )
                print(f"  POST /token/refresh (one at a time) median {med(seq_refresh):7.1f} ms")
                print(f"  GET /users/me (one at a time)       median {med(seq_me):7.1f} ms")
                print(
                    f"  login = verify {med(verify_times):.0f} ms + the rest "
                    f"{max(0.0, med(login_times) - med(verify_times)):.0f} ms "
                    f"(a refresh, which does the same token work without the hash, takes {med(seq_refresh):.1f} ms)"
                )
                me_o, ref_o = results[("open", "GET /users/me")], results[("open", "POST /token/refresh")]
            if {"open", "login"} <= phases:
                print(
                    f"\nload average at the end: {os.getloadavg()[0]:.1f} (other work on this "
                    "machine inflates every figure)"
                )
                print(
                    "ratios: open-loop p99 /users/me vs /health floor "
                    f"{me_o['p99'] / results[('open', 'GET /health (floor)')]['p99']:.1f}x, "
                    f"refresh vs /users/me {ref_o['p99'] / me_o['p99']:.1f}x; login / refresh (one at a time) "
                    f"{med(login_times) / med(seq_refresh):.0f}x"
                )
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        await drop_database(infra, f"{run}_core")
        delete_vhost(infra, run)


if __name__ == "__main__":
    asyncio.run(main())
