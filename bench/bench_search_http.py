"""HTTP benchmark of the content service: uvicorn (one worker) on 127.0.0.1, an open-loop load
of --rate requests/s from this second process, latency measured from each request's scheduled
send time (so a stalled server shows up as queueing, not as fewer samples).

    python bench/bench_search.py --keep /tmp/sx_bench          # builds the 1M-name store
    python bench/bench_search_http.py --store /tmp/sx_bench/store --rate 500 --duration 30
    python bench/bench_search_http.py --names 100000            # builds a small store itself

Traffic: 90% /autocomplete (what a client sends while typing), 10% /search?mode=fuzzy, the
query strings drawn from the corpus like bench_search.py (popular names more often, prefixes,
typos). The service runs as in production (request ids, access log, CORS, error envelope), with
the default per-identity rate limit switched off because all traffic comes from one address.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from common import uvicorn_command  # noqa: E402

SECRET = "bench-secret-bench-secret-bench-secret-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


class Keys:
    """Just the keys of the index snapshot (what make_queries draws from)."""

    def __init__(self, store_dir: str):
        from content_service.engine import Store

        store = Store(store_dir)
        loaded = store.load_index()
        store.close()
        if loaded is None:
            raise SystemExit(f"{store_dir} has no index snapshot")
        self.keys = loaded[0]["s.keys"].decode("utf-8").split("\x00")


def build_store(n: int, where: str) -> str:
    from content_service.corpus import generate, names_of
    from content_service.engine import EntityNames, SearchIndex, Store

    recs = list(generate(n, seed=2024))
    idx = SearchIndex.build([EntityNames(r["key"], r["type"], r["popularity"], names_of(r)) for r in recs])
    store = Store(where)
    store.put_entities(recs)
    store.save_index(idx.to_snapshot())
    store.close()
    return where


def start_server(store_dir: str, port: int, cache: bool, workers: int = 1) -> subprocess.Popen:
    data_dir = os.path.dirname(os.path.abspath(store_dir))
    env = {
        **os.environ,
        "CONTENT_DATA_DIR": data_dir,
        "CONTENT_SEED": "none",
        "SUPABASE_JWT_SECRET": SECRET,
        "KNOWN_USERS_CHECK": "0",  # one service, no Auth: tokens of made-up users (docs/auth.md)
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "WARNING",
        "SYNC_INTERVAL_SECONDS": "0",
        "PYTHONPATH": ROOT,
        "SEARCH_CACHE_SIZE": "50000" if cache else "0",
    }
    env.pop("TMDB_API_KEY", None)
    proc = subprocess.Popen(
        uvicorn_command("content_service.main:app", port, workers=workers, fast_loop=False),
        cwd=ROOT,
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start in 120 s")


async def load(port: int, paths: list[str], rate: float, duration: float, connections: int):
    """Open loop: request i is due at t0 + i/rate; a free connection sends it."""
    n = int(rate * duration)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(n):
        queue.put_nowait((t0 + i / rate, paths[i % len(paths)]))
    results: list[tuple[str, float, int]] = []

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                try:
                    due, path = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                await writer.drain()
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    k, _, v = line.decode("latin-1").partition(":")
                    if k.lower() == "content-length":
                        length = int(v.strip())
                await reader.readexactly(length)
                status = int(status_line.split()[1]) if status_line else 0
                results.append((path.split("?")[0], (loop.time() - due) * 1000, status))
        finally:
            writer.close()

    started = loop.time()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return results, loop.time() - started


def make_paths(keys: Keys, n: int, seed: int = 3) -> list[str]:
    from bench_search import make_queries

    q = make_queries(keys, n, seed=seed)
    rnd = random.Random(seed)
    paths = []
    auto = q["autocomplete"]
    fuzzy = q["fuzzy"]
    for i in range(n):
        if rnd.random() < 0.9:
            paths.append("/autocomplete?" + urllib.parse.urlencode({"q": auto[i], "limit": 10}))
        else:
            paths.append("/search?" + urllib.parse.urlencode({"q": fuzzy[i], "mode": "fuzzy", "limit": 10}))
    return paths


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children (uvicorn workers), from /proc."""
    total = 0.0
    pids = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def summarize(results, elapsed):
    out = {
        "requests": len(results),
        "achieved_rps": len(results) / elapsed,
        "errors": sum(1 for _, _, s in results if s != 200),
    }
    for route in ("all", "/autocomplete", "/search"):
        lat = [ms for r, ms, _ in results if route == "all" or r == route]
        if lat:
            out[route] = {"n": len(lat), "p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "max": max(lat)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", help="a store directory (bench_search.py --keep DIR makes DIR/store)")
    ap.add_argument("--names", type=int, default=100_000, help="build a store of this size")
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--no-cache", action="store_true", help="switch the response LRU off")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    tmp = None
    store_dir = args.store
    if store_dir is None:
        tmp = tempfile.mkdtemp(prefix="bench_http_")
        store_dir = build_store(args.names, os.path.join(tmp, "store"))
    keys = Keys(store_dir)
    names = len(keys.keys)
    paths = make_paths(keys, int(args.rate * (args.duration + 5)))
    del keys
    port = free_port()
    t = time.perf_counter()
    server = start_server(store_dir, port, cache=not args.no_cache, workers=args.workers)
    startup = time.perf_counter() - t
    try:
        asyncio.run(load(port, paths[: int(args.rate * 3)], args.rate, 3, args.connections))
        cpu0 = cpu_seconds(server.pid)
        results, elapsed = asyncio.run(
            load(port, paths[int(args.rate * 3) :], args.rate, args.duration, args.connections)
        )
        server_cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(results, elapsed)
    summary["server_cpu_ms_per_request"] = server_cpu * 1000 / max(1, len(results))
    summary["server_cpu_share"] = server_cpu / elapsed
    summary.update(
        names=names,
        rate=args.rate,
        duration=args.duration,
        workers=args.workers,
        cache=not args.no_cache,
        server_start_s=startup,
        loadavg=os.getloadavg(),
    )
    print(
        f"\nHTTP: {names:,} names, {args.rate:.0f} req/s offered for {args.duration:.0f} s, "
        f"{summary['achieved_rps']:.0f} req/s served, {summary['errors']} errors, "
        f"response cache {'on' if not args.no_cache else 'off'}, {args.workers} worker(s); "
        f"server up in {startup:.1f} s; load average {summary['loadavg'][0]:.1f}"
    )
    print(
        f"  server CPU: {summary['server_cpu_ms_per_request']:.2f} ms per request, "
        f"{summary['server_cpu_share']:.0%} of one core"
    )
    for route in ("all", "/autocomplete", "/search"):
        if route in summary:
            s = summary[route]
            print(
                f"  {route:<14} n={s['n']:<6} p50 {s['p50']:.2f} ms  p90 {s['p90']:.2f} ms  "
                f"p99 {s['p99']:.2f} ms  max {s['max']:.2f} ms"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return summary


if __name__ == "__main__":
    main()
