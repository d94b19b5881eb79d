"""Media benchmarks, side by side in one run (docs/benchmarks.md "Media").

1. Upload of a 2 MB JPEG through the service (uvicorn, one worker, MEDIA_CPU_WORKERS=2, multipart
   over HTTP from 20 keep-alive raw connections with the bodies built beforehand, row + outbox
   event in PostgreSQL, blobs in Azurite) against the same work done
   directly in this process: Pillow decode + re-encode (JPEG q88) + WebP thumbnail + sha256 +
   the two blob writes through the aio SDK, in a pool of the same two threads. Both at 20
   concurrent uploads of distinct files, in alternating rounds (direct, service, direct,
   service) so background load hits both alike. Target: service overhead <= 20%.
2. Peak memory of one upload, in a fresh child process each (so nothing else is measured):
   the Python heap's peak (tracemalloc: the copies of the file, the encoded outputs) and the
   process's resident peak (VmHWM after resetting it through /proc/self/clear_refs: everything,
   Pillow's decoded pixels included), for the service (its real app in-process, the request
   body built beforehand) and for the direct path. `--before <checkout>` measures the service
   code of another checkout too (e.g. /work/main: the upload path before this change).
   Target: <= 3x the file size.
3. `GET /images/{id}` at 200 req/s, open loop (latency from each request's scheduled time),
   beside `GET /health` at the same rate (the floor: HTTP, the middleware, the client). Target:
   p99 <= 10 ms. Plus the two parts of the route's own cost measured alone: signing the two
   SAS URLs and the database lookup.

Run: .venv/bin/python bench/bench_media.py [--uploads 60 --concurrency 20 --rate 200 --seconds 10]
     (needs scripts/infra.sh's PostgreSQL, Redis, RabbitMQ and Azurite).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from azure.core.exceptions import ResourceExistsError
from common import ROOT, percentile, process_cpu_seconds, uvicorn_command
from PIL import Image

from media_service import imaging
from shared.auth import mint_access_token
from shared.testing.env import TEST_JWT_SECRET, Infra, delete_blob_container, new_run_id
from shared.testing.plugin import blob_container_name, build_service_env, isolated_infra

MIB = 1024 * 1024
CPU_WORKERS = 2
CONCURRENT_MEMORY = 20  # uploads at once for the per-upload memory under concurrency


def make_jpeg(variant: int, size=(2400, 1600)) -> bytes:
    """A ~2 MB photo-like JPEG (a gradient under noise); `variant` makes distinct bytes."""
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    noise = Image.effect_noise(size, 40).convert("RGB")
    image = Image.blend(base, noise, 0.6)
    image.putpixel((variant % size[0], 0), (variant % 256, 7, 7))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# ------------------------------------------------------------------------- the direct path
def direct_process(data: bytes) -> tuple[bytes, bytes]:
    """What an upload has to do, written plainly: decode, re-encode, thumbnail."""
    image = Image.open(io.BytesIO(data))
    image.decodermaxblock = len(data)  # as the service decodes: the whole file in one call
    image.load()
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    # The encoder settings the service uses (media_service/imaging.py), so both sides do the same work.
    image.thumbnail((256, 256), Image.Resampling.LANCZOS, reducing_gap=imaging.REDUCING_GAP)
    tout = io.BytesIO()
    image.save(tout, "WEBP", quality=80, method=imaging.THUMBNAIL_WEBP_METHOD)
    return out.getvalue(), tout.getvalue()


class Direct:
    def __init__(self, connection_string: str, container: str):
        from azure.storage.blob.aio import BlobServiceClient

        self.service = BlobServiceClient.from_connection_string(connection_string, use_env_settings=False)
        self.container = self.service.get_container_client(container)
        self.pool = ThreadPoolExecutor(CPU_WORKERS)

    async def upload(self, data: bytes) -> None:
        original, thumb = await asyncio.get_running_loop().run_in_executor(self.pool, direct_process, data)
        await asyncio.gather(
            self.container.upload_blob(f"direct/{hashlib.sha256(original).hexdigest()}.jpg", original, overwrite=True),
            self.container.upload_blob(f"direct/{hashlib.sha256(thumb).hexdigest()}.webp", thumb, overwrite=True),
        )

    async def close(self) -> None:
        await self.service.close()
        self.pool.shutdown()


# ---------------------------------------------------------------------- memory (child side)
def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_hwm() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


async def probe(kind: str, data: bytes, runs: int = 3) -> dict:
    """Child process: the peaks of one upload, the best of `runs` (the least disturbed)."""
    if kind == "service":
        # The checkout measured (--before): its media_service, imported before this one's.
        sys.path.insert(0, os.environ["BENCH_CODE_ROOT"])
        from asgi_lifespan import LifespanManager

        from media_service.main import build_app
        from media_service.settings import Settings

        app = build_app(Settings())
        token = mint_access_token(TEST_JWT_SECRET, user_id=str(uuid.uuid4()), email="m@example.com", tier=0)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://media", timeout=60) as client:
                bodies = [multipart(make_jpeg(1000 + i)) for i in range(runs + 1)]

                concurrent = [multipart(make_jpeg(3000 + i)) for i in range(CONCURRENT_MEMORY)]

                async def one(i: int, bodies=bodies) -> None:
                    body, ctype = bodies[i]
                    headers = {"Authorization": f"Bearer {token}", "Content-Type": ctype}
                    r = await client.post("/images/upload", content=body, headers=headers)
                    assert r.status_code == 201, r.text

                result = await _measure(one, runs)
                # The request bodies are built beforehand in both: what is measured is the service's.
                result.update(await _measure_concurrent(lambda i: one(i, concurrent), CONCURRENT_MEMORY))
                return result
    direct = Direct(os.environ["AZURE_STORAGE_CONNECTION_STRING"], os.environ["AZURE_STORAGE_CONTAINER"])
    with contextlib.suppress(ResourceExistsError):
        await direct.container.create_container()
    files = [make_jpeg(2000 + i) for i in range(runs + 1)]
    concurrent = [make_jpeg(4000 + i) for i in range(CONCURRENT_MEMORY)]

    async def one(i: int, files=files) -> None:
        await direct.upload(files[i])

    try:
        result = await _measure(one, runs)
        result.update(await _measure_concurrent(lambda i: one(i, concurrent), CONCURRENT_MEMORY))
        return result
    finally:
        await direct.close()


async def _measure(one, runs: int) -> dict:
    await one(0)  # warm: pools, connections, Pillow's and the SDK's first-use allocations
    rss, heap = [], []
    for i in range(1, runs + 1):
        _reset_hwm()
        before = _status("VmRSS")
        await one(i)
        rss.append(_status("VmHWM") - before)
    tracemalloc.start()
    for i in range(1, runs + 1):
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        await one(i)
        heap.append(tracemalloc.get_traced_memory()[1] - base)
    tracemalloc.stop()
    return {"rss_peak": min(rss), "heap_peak": min(heap)}


async def _measure_concurrent(one, n: int) -> dict:
    """`n` uploads at once: the increase of the resident peak over the process's idle resident
    size (interpreter, libraries, pools: there before any upload) and of the heap peak, per upload.
    The files' own bytes were made before the baseline, as a client's would be elsewhere."""
    gc.collect()
    _reset_hwm()
    idle = _status("VmRSS")
    await asyncio.gather(*(one(i) for i in range(n)))
    rss = _status("VmHWM") - idle
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    await asyncio.gather(*(one(i) for i in range(n)))
    heap = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {"concurrent": n, "rss_per_upload": rss / n, "heap_per_upload": heap / n, "idle_rss": idle}


def run_probe(kind: str, env: dict[str, str], code_root: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe", kind]
    # A fixed mmap threshold: glibc otherwise raises it after the first large free and serves the
    # next upload's buffers from a heap that stays resident, hiding them from the resident peak.
    child_env = {**os.environ, **env, "BENCH_CODE_ROOT": str(code_root), "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(cmd, env=child_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"memory probe {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ throughput
async def rounds_of_uploads(
    connections: list[RawConnection], token: str, files: list[bytes], concurrency: int
) -> float:
    """`files` through `POST /images/upload`, `concurrency` at a time, each on its own keep-alive
    connection. The multipart bodies are built before the clock starts and sent over raw sockets:
    httpx spent ~4 ms of CPU per 2 MB upload on these two cores, load the service's figure does
    not owe (in production the clients are elsewhere); what remains of the client is printed."""
    headers = {"Authorization": f"Bearer {token}"}
    bodies = [multipart(data) for data in files]
    queue = list(range(len(bodies)))

    async def worker(conn: RawConnection):
        while queue:
            body, ctype = bodies[queue.pop()]
            status, _, answer = await conn.request("POST", "/images/upload", {**headers, "Content-Type": ctype}, body)
            if status != 201:
                raise SystemExit(f"upload failed: {status} {answer[:300]!r}")

    t = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections[:concurrency]))
    return time.perf_counter() - t


async def direct_round(direct: Direct, files: list[bytes], concurrency: int) -> float:
    queue = list(range(len(files)))

    async def worker():
        while queue:
            await direct.upload(files[queue.pop()])

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t


async def open_loop(
    connections: list[RawConnection], path: str, headers: dict[str, str], seconds: float, rate: float
) -> tuple[list[float], list[float], int]:
    """Each connection fires on its own fixed schedule (staggered); latency from the scheduled
    time, so a slow server shows as latency, not as less load. Returns (client latencies ms,
    the service's own time from Server-Timing ms, errors)."""
    lat: list[float] = []
    app: list[float] = []
    errors = 0
    clients = len(connections)
    interval = clients / rate

    async def worker(i):
        nonlocal errors
        start = t0 + (i / clients) * interval
        n = 0
        while (due := start + n * interval) <= t0 + seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, fields = await connections[i].get(path, headers)
            if status == 200:
                lat.append((time.perf_counter() - due) * 1000)
                timing = fields.get("server-timing", "")
                if "dur=" in timing:
                    app.append(float(timing.split("dur=")[1]))
            else:
                errors += 1
            n += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return lat, app, errors


async def wait_ready(url: str, proc: subprocess.Popen) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit("media service exited during start-up")
            try:
                if (await c.get(f"{url}/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("media service not ready after 60 s")


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uploads", type=int, default=60, help="uploads per round")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--port", type=int, default=18804)
    parser.add_argument("--before", type=Path, help="another checkout whose upload memory to measure too")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of upload rounds (direct, service)")
    parser.add_argument("--parts", default="memory,upload,get", help="which parts to run (comma-separated)")
    args = parser.parse_args()

    infra = Infra.from_environ()
    tag = "bench_media_" + new_run_id()
    async with isolated_infra(infra, tag) as (dsns, amqp_url):
        env = build_service_env(infra, tag, dsns, amqp_url, None)
        env.update({"LOG_LEVEL": "ERROR", "MEDIA_CPU_WORKERS": str(CPU_WORKERS), "OUTBOX_RELAY": "inprocess"})
        try:
            await run(args, env)
        finally:
            delete_blob_container(infra, blob_container_name(tag))


async def run(args, env: dict[str, str]) -> None:
    sample = make_jpeg(0)
    size = len(sample)
    w, h = Image.open(io.BytesIO(sample)).size
    print(f"load average at start: {load()}  (2 cores)")
    pixels = w * h * 4 / MIB  # Pillow keeps RGB at 4 bytes a pixel
    print(f"file: {size / MIB:.2f} MiB JPEG, {w}x{h} (decoded, as Pillow holds them: {pixels:.1f} MiB)")

    parts = set(args.parts.split(","))
    if "memory" in parts:
        await memory(args, env, size)
    if parts & {"upload", "get"}:
        await service_parts(args, env, parts)
    print(f"load average at the end: {load()}")


async def memory(args, env: dict[str, str], size: int) -> None:
    print("\npeak memory of one upload (fresh process each; best of 3):")
    roots = [("service", ROOT)] + ([("service, --before", args.before)] if args.before else [])
    results = [(name, run_probe("service", env, root)) for name, root in roots]
    results.append(("direct", run_probe("direct", env, ROOT)))
    for name, m in results:
        print(
            f"  {name:<18} Python heap peak {m['heap_peak'] / MIB:6.2f} MiB = {m['heap_peak'] / size:.2f}x the file"
            f"   resident peak {m['rss_peak'] / MIB:6.2f} MiB = {m['rss_peak'] / size:.2f}x"
        )
    print(
        f"\nper upload with {CONCURRENT_MEMORY} at once (same processes; resident: the peak's increase over the"
        " idle process, / uploads; heap: tracemalloc's peak increase, / uploads):"
    )
    for name, m in results:
        print(
            f"  {name:<18} resident +{m['rss_per_upload'] / MIB:6.2f} MiB = {m['rss_per_upload'] / size:.2f}x the file"
            f"   heap +{m['heap_per_upload'] / MIB:6.2f} MiB = {m['heap_per_upload'] / size:.2f}x"
            f"   (idle process {m['idle_rss'] / MIB:.0f} MiB)"
        )


async def service_parts(args, env: dict[str, str], parts: set[str]) -> None:
    user_id = str(uuid.uuid4())
    token = mint_access_token(TEST_JWT_SECRET, user_id=user_id, email="b@example.com", tier=0)
    url = f"http://127.0.0.1:{args.port}"
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, before any measuring)
        uvicorn_command("media_service.main:app", args.port), env={**os.environ, **env}, cwd=ROOT
    )
    limits = httpx.Limits(max_connections=args.concurrency + 10, max_keepalive_connections=args.concurrency + 10)
    try:
        await wait_ready(url, proc)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
            if "upload" in parts:
                await uploads(args, env, token, proc.pid)
            if "get" in parts:
                await reads(args, env, client, token, user_id, proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


async def uploads(args, env: dict[str, str], token: str, pid: int) -> None:
    """1. upload throughput, service vs direct, in alternating rounds"""
    n = args.uploads
    files = [make_jpeg(i + 1) for i in range(2 * args.rounds * n)]
    direct = Direct(env["AZURE_STORAGE_CONNECTION_STRING"], env["AZURE_STORAGE_CONTAINER"])
    connections = [RawConnection("127.0.0.1", args.port) for _ in range(args.concurrency)]
    await rounds_of_uploads(connections, token, [make_jpeg(9999)] * args.concurrency, args.concurrency)  # warm
    await direct_round(direct, [make_jpeg(9998)] * 4, 4)
    print(f"\nupload, {args.concurrency} concurrent, {n} distinct files per round (load {load()}):")
    times: dict[str, list[float]] = {"direct": [], "service": []}
    cpu = {"direct": 0.0, "service": 0.0, "client": 0.0}  # client: this process sending the service's uploads
    for r in range(args.rounds):
        batch = files[2 * r * n : (2 * r + 1) * n]
        c0 = time.process_time()
        times["direct"].append(await direct_round(direct, batch, args.concurrency))
        cpu["direct"] += time.process_time() - c0
        batch = files[(2 * r + 1) * n : (2 * r + 2) * n]
        s0, c0 = process_cpu_seconds(pid), time.process_time()
        times["service"].append(await rounds_of_uploads(connections, token, batch, args.concurrency))
        cpu["service"] += process_cpu_seconds(pid) - s0
        cpu["client"] += time.process_time() - c0
        print(
            f"  round {r + 1}: direct {n / times['direct'][-1]:5.1f} uploads/s"
            f"   service {n / times['service'][-1]:5.1f} uploads/s"
        )
    d, s, total = sum(times["direct"]), sum(times["service"]), args.rounds * n
    print(
        f"  total: direct {total / d:.1f}/s, service {total / s:.1f}/s -> service overhead {s / d - 1:+.1%}"
        f"  (CPU per upload: direct {cpu['direct'] * 1000 / total:.0f} ms in this process,"
        f" service {cpu['service'] * 1000 / total:.0f} ms in its process: {cpu['service'] / cpu['direct'] - 1:+.1%};"
        f" the client sending them {cpu['client'] * 1000 / total:.0f} ms, {cpu['client'] / s:.0%} of a core"
        " during the service rounds, on the same two cores)"
    )
    for c in connections:
        c.close()
    await direct.close()


class RawConnection:
    """A keep-alive HTTP/1.1 connection with the least client-side work (httpx costs several
    hundred µs a request, which on a loaded two-core machine is what an open loop would measure)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        status, fields, _ = await self.request("GET", path, headers)
        return status, fields

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"] + [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        if body is not None:
            self.writer.write(body)
            await self.writer.drain()
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        fields = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
        answer = await self.reader.readexactly(int(fields.get("content-length", "0")))
        return status, fields, answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def reads(args, env: dict[str, str], client: httpx.AsyncClient, token: str, user_id: str, pid: int) -> None:
    """3. GET /images/{id} at a fixed rate, beside /health; then the route's parts alone"""
    auth = {"Authorization": f"Bearer {token}"}
    body, ctype = multipart(make_jpeg(4242))
    r = await client.post("/images/upload", content=body, headers={**auth, "Content-Type": ctype})
    image_id = r.json()["id"]
    clients = 20
    connections = [RawConnection("127.0.0.1", args.port) for _ in range(clients)]
    for c in connections:  # connected and warm before the clock starts
        await c.get(f"/images/{image_id}", auth)
    await asyncio.sleep(1)
    print(
        f"\nopen loop, {args.rate:g} req/s for {args.seconds:g} s each, {clients} keep-alive connections"
        f" (load {load()}):"
    )
    for name, path, headers in (("GET /health", "/health", {}), ("GET /images/{id}", f"/images/{image_id}", auth)):
        cpu0, client0, wall0 = process_cpu_seconds(pid), time.process_time(), time.perf_counter()
        lat, app, errors = await open_loop(connections, path, headers, args.seconds, args.rate)
        cpu_ms = (process_cpu_seconds(pid) - cpu0) * 1000 / max(1, len(lat) + errors)
        client_share = (time.process_time() - client0) / (time.perf_counter() - wall0)
        print(
            f"  {name:<17} p50 {percentile(lat, 50):5.2f} ms  p99 {percentile(lat, 99):6.2f} ms"
            f"  (in the service: p50 {percentile(app, 50):.2f} ms, p99 {percentile(app, 99):.2f} ms;"
            f" service CPU {cpu_ms:.2f} ms/request; this client {client_share:.0%} of a core)"
            f"  n={len(lat)} errors={errors}"
        )
    for c in connections:
        c.close()

    from media_service.repositories import media as repo
    from media_service.storage import BlobStore
    from shared.db import create_pool

    store = BlobStore(env["AZURE_STORAGE_CONNECTION_STRING"], env["AZURE_STORAGE_CONTAINER"], sas_ttl_seconds=900)
    t = time.perf_counter()
    for _ in range(2000):
        store.read_url("images/" + "a" * 64 + ".jpg")
    sas_us = (time.perf_counter() - t) / 2000 * 1e6
    await store.close()
    pool = await create_pool(env["MEDIA_DATABASE_URL"], min_size=1, max_size=2)
    lookups = []
    for _ in range(500):
        t = time.perf_counter()
        await repo.get_owned(pool, uuid.UUID(image_id), user_id, "image")
        lookups.append((time.perf_counter() - t) * 1000)
    await pool.close()
    print(
        f"  the route's parts alone: one SAS URL signed in {sas_us:.0f} µs (two per image);"
        f" the row lookup p50 {percentile(lookups, 50):.2f} ms, p99 {percentile(lookups, 99):.2f} ms"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        result = asyncio.run(probe(sys.argv[2], b""))
        print(json.dumps(result))
    else:
        import uvloop

        uvloop.run(main())
