"""Room co-editing: update fan-out latency and what many open rooms cost one worker.

    .venv/bin/python bench/bench_rooms.py [--updates 200] [--rooms 200] [--per-room 5]

Needs the local PostgreSQL, Redis and RabbitMQ (scripts/infra.sh). Starts Community as one uvicorn
worker (one process, as ServiceProcess runs it) on throwaway databases and vhost, then, in one run:

1. Fan-out, side by side: an update typed by one client of a room, timed until each other client
   of the room has it (pycrdt.Provider over httpx-ws, the clients in this process), in a room of 2
   clients and in a room of 20; writers take turns, one update every 50 ms. p50/p99 and the ratio.
2. Many rooms: ROOMS rooms x PER_ROOM clients connected and synchronised at once; the worker's
   resident memory before and after (VmRSS), per room and per connection; then one update in
   every room at once, timed to each of its peers.

The clients share the machine's cores with the server, so latencies include their own decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
import asyncpg  # noqa: E402
import httpx  # noqa: E402
from common import percentile, process_cpu_seconds  # noqa: E402
from httpx_ws import aconnect_ws  # noqa: E402
from pycrdt import Doc, Provider, Text  # noqa: E402
from pycrdt.websocket.websocket import HttpxWebsocket  # noqa: E402

from shared.auth import mint_access_token  # noqa: E402
from shared.testing.env import Infra, new_run_id  # noqa: E402
from shared.testing.plugin import TEST_JWT_SECRET, build_service_env, isolated_infra  # noqa: E402
from shared.testing.processes import ServiceProcess  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Client:
    """One pycrdt client on a room's document; records when each marker first appears in its text."""

    def __init__(self, http: httpx.AsyncClient, base: str, room_id: str, token: str):
        self.http, self.url, self.room_id, self.token = http, f"{base}/rooms/{room_id}/doc", room_id, token
        self.doc = Doc()
        self.text = self.doc.get("body", type=Text)
        self.seen: dict[str, float] = {}
        self.waiting: set[str] = set()
        self.text.observe(self._changed)

    def _changed(self, event) -> None:
        now = time.perf_counter()
        for delta in event.delta:
            inserted = delta.get("insert")
            if isinstance(inserted, str) and inserted.startswith("<") and inserted in self.waiting:
                self.seen[inserted] = now
                self.waiting.discard(inserted)

    @contextlib.asynccontextmanager
    async def connected(self):
        async with aconnect_ws(self.url, self.http, subprotocols=["yjs", f"bearer.{self.token}"]) as ws:
            async with Provider(self.doc, HttpxWebsocket(ws, self.room_id)) as provider:
                with anyio.fail_after(60):
                    await provider.synced.wait()
                yield self


async def setup_rooms(http: httpx.AsyncClient, dsn: str, count: int, per_room: int) -> list[tuple[str, list[str]]]:
    """`count` rooms (created over HTTP by their owners), each with per_room - 1 editors added in SQL."""
    rooms = []
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        for _ in range(count):
            owner = str(uuid.uuid4())
            token = mint_access_token(TEST_JWT_SECRET, user_id=owner, email=f"{owner[:8]}@example.com")
            r = await http.post(
                "/rooms", json={"name": "bench", "visibility": "invite"}, headers={"Authorization": f"Bearer {token}"}
            )
            r.raise_for_status()
            room_id = r.json()["id"]
            editors = [str(uuid.uuid4()) for _ in range(per_room - 1)]
            await pool.executemany(
                "INSERT INTO room_members (room_id, user_id, role) VALUES ($1, $2, 'editor')",
                [(uuid.UUID(room_id), e) for e in editors],
            )
            tokens = [token] + [
                mint_access_token(TEST_JWT_SECRET, user_id=e, email=f"{e[:8]}@example.com") for e in editors
            ]
            rooms.append((room_id, tokens))
    finally:
        await pool.close()
    return rooms


async def fan_out(http, base: str, room_id: str, tokens: list[str], updates: int) -> list[float]:
    """ms from a writer's insert to each other client having it."""
    clients = [Client(http, base, room_id, t) for t in tokens]
    samples: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        for c in clients:
            await stack.enter_async_context(c.connected())
        for i in range(updates):
            writer = clients[i % len(clients)]
            marker = f"<{i}>"
            others = [c for c in clients if c is not writer]
            for c in others:
                c.waiting.add(marker)
            sent = time.perf_counter()
            writer.text.insert(len(writer.text), marker)
            with anyio.fail_after(30):
                while any(marker in c.waiting for c in others):  # noqa: ASYNC110 (observer callbacks)
                    await asyncio.sleep(0.001)
            samples += [(c.seen[marker] - sent) * 1000 for c in others]
            await asyncio.sleep(0.05)
    return samples


async def many_rooms(http, base: str, pid: int, rooms: list[tuple[str, list[str]]]) -> dict:
    before = rss_mib(pid)
    clients = [Client(http, base, room_id, t) for room_id, tokens in rooms for t in tokens]
    started = time.perf_counter()
    stop = anyio.Event()
    connected = 0
    all_connected = anyio.Event()
    gate = anyio.Semaphore(50)  # handshakes in flight at once

    async def hold(c: Client) -> None:
        nonlocal connected
        async with gate:
            cm = c.connected()
            await cm.__aenter__()
        try:
            connected += 1
            if connected == len(clients):
                all_connected.set()
            await stop.wait()
        finally:
            await cm.__aexit__(None, None, None)

    async with anyio.create_task_group() as tg:
        for c in clients:
            tg.start_soon(hold, c)
        with anyio.fail_after(300):
            await all_connected.wait()
        connect_s = time.perf_counter() - started
        await asyncio.sleep(2)
        after = rss_mib(pid)
        # One update in every room at once.
        per_room = len(rooms[0][1])
        samples: list[float] = []
        sent: dict[str, float] = {}
        groups = [clients[i : i + per_room] for i in range(0, len(clients), per_room)]
        for n, group in enumerate(groups):
            for c in group[1:]:
                c.waiting.add(f"<r{n}>")
        server_cpu, own_cpu, burst_start = process_cpu_seconds(pid), time.process_time(), time.perf_counter()
        for n, group in enumerate(groups):
            sent[f"<r{n}>"] = time.perf_counter()
            group[0].text.insert(0, f"<r{n}>")
        with anyio.fail_after(60):
            while any(c.waiting for c in clients):  # noqa: ASYNC110 (observer callbacks)
                await asyncio.sleep(0.005)
        burst_cpu = {
            "wall": time.perf_counter() - burst_start,
            "server": process_cpu_seconds(pid) - server_cpu,
            "clients": time.process_time() - own_cpu,
        }
        for n, group in enumerate(groups):
            samples += [(c.seen[f"<r{n}>"] - sent[f"<r{n}>"]) * 1000 for c in group[1:]]
        stop.set()
    return {
        "connections": len(clients),
        "connect_s": connect_s,
        "rss_before": before,
        "rss_after": after,
        "burst": samples,
        "burst_cpu": burst_cpu,
    }


async def main(args) -> None:
    infra = Infra.from_environ()
    tag = new_run_id() + "_rooms"
    async with isolated_infra(infra, tag) as (dsns, amqp_url):
        env = {
            **build_service_env(infra, tag, dsns, amqp_url, None),
            "LOG_LEVEL": "WARNING",
            "OUTBOX_RELAY": "inprocess",
            "ROOM_DOC_SAVE_SECONDS": "30",
        }
        proc = ServiceProcess("community", env)
        proc.start(timeout=120)
        try:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
            async with httpx.AsyncClient(base_url=proc.url, timeout=60, limits=limits) as http:
                base = proc.url.replace("http", "ws", 1)
                community_dsn = env["COMMUNITY_DATABASE_URL"]
                [(small_room, small_tokens)] = await setup_rooms(http, community_dsn, 1, 2)
                [(big_room, big_tokens)] = await setup_rooms(http, community_dsn, 1, 20)
                two = await fan_out(http, base, small_room, small_tokens, args.updates)
                twenty = await fan_out(http, base, big_room, big_tokens, args.updates)
                print(f"load before: {os.getloadavg()}")
                print("fan-out, one update to every other client of the room (ms):")
                for label, s in (("2 clients ", two), ("20 clients", twenty)):
                    print(
                        f"  {label}: p50 {percentile(s, 50):.2f}  p99 {percentile(s, 99):.2f}"
                        f"  max {max(s):.2f}  n={len(s)}"
                    )
                print(
                    f"  ratio 20/2: p50 x{percentile(twenty, 50) / percentile(two, 50):.2f}"
                    f"  p99 x{percentile(twenty, 99) / percentile(two, 99):.2f}"
                )
                rooms = await setup_rooms(http, community_dsn, args.rooms, args.per_room)
                result = await many_rooms(http, base, proc.proc.pid, rooms)
                grown = result["rss_after"] - result["rss_before"]
                print(
                    f"{args.rooms} rooms x {args.per_room} clients = {result['connections']} connections on one"
                    f" worker: connected and synced in {result['connect_s']:.1f} s"
                )
                print(
                    f"  worker RSS {result['rss_before']:.1f} MiB -> {result['rss_after']:.1f} MiB"
                    f" (+{grown:.1f} MiB: {grown * 1024 / args.rooms:.0f} KiB per room,"
                    f" {grown * 1024 / result['connections']:.0f} KiB per connection)"
                )
                s = result["burst"]
                print(
                    f"  one update in every room at once: p50 {percentile(s, 50):.2f} ms"
                    f"  p99 {percentile(s, 99):.2f} ms  n={len(s)}"
                )
                cpu = result["burst_cpu"]
                print(
                    f"  that burst: {cpu['wall']:.2f} s wall, CPU {cpu['server']:.2f} s in the worker,"
                    f" {cpu['clients']:.2f} s in the clients' process"
                )
                print(f"load after: {os.getloadavg()}")
        finally:
            proc.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--per-room", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
