"""Media generation benchmark: what POST /images/generate adds around a zero-latency provider,
side by side in one run.

    .venv/bin/python bench/bench_media_generation.py [--requests 100] [--warmup 10] [--profile FILE]
    .venv/bin/python bench/bench_media_generation.py --pillow   # the Pillow step alone, no services

Needs the local PostgreSQL, Redis, RabbitMQ and Azurite (scripts/infra.sh). Creates throwaway
databases, a vhost and a blob container, applies Payment's migrations (quota functions) to the
core database, starts the sandbox (`uvicorn sandbox.app:app`: the zero-latency provider) and the
media service (`uvicorn media_service.main:app`, OpenAI images as its only provider) as real
processes, a Max-tier user, and drops everything afterwards. One request at a time, each with its
own prompt (so every image is new: its blobs are written, not found):

  1. direct: the OpenAI SDK's `images.generate` straight to the sandbox;
  2. direct: moderation + `images.generate`, the provider work the service cannot skip;
  3. the service: `POST /images/generate` (tier, moderation, quota reserve, provider, Pillow
     decode + re-encode + thumbnail, two blob writes to Azurite, row + outbox event, settle).

Overhead = the service's p50 minus (2)'s p50 (target p50 <= 15 ms, issue 14).

`--pillow`: the service's Pillow step (`service.process_image`: decode, PNG re-encode, thumbnail,
hashes) alone, in this process, with a clean provider PNG kept as sent (`keep_clean_png`, what
generation does) against re-encoded (what it did before, and what uploads do), alternating, on the
sandbox's 256 x 256 PNG and on 1024 x 1024 photo-like PNGs (a provider's usual size), clean and with
a text chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import openai  # noqa: E402
from common import percentile as pct  # noqa: E402
from common import process_cpu_seconds, scratch, uvicorn_command  # noqa: E402

from sandbox.testing import DUMMY_KEYS  # noqa: E402
from shared.auth import mint_access_token  # noqa: E402
from shared.migrate import migrate  # noqa: E402
from shared.testing.env import TEST_JWT_SECRET, delete_blob_container  # noqa: E402
from shared.testing.plugin import blob_container_name  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    module: str, port: int, env: dict[str, str], log: Path, probe: str, profile: str | None = None
) -> subprocess.Popen:
    cmd = uvicorn_command(module, port)
    if profile:  # the process's main thread under cProfile, written when uvicorn exits on SIGTERM
        cmd[1:1] = ["-m", "cProfile", "-o", profile]
    proc = subprocess.Popen(
        cmd,
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
            httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{module} did not start:\n{log.read_text()[-3000:]}")


def line(label: str, values: list[float]) -> str:
    return (
        f"  {label:<44} p50 {pct(values, 50):7.2f} ms   p90 {pct(values, 90):7.2f} ms   p99 {pct(values, 99):7.2f} ms"
    )


async def timed(n: int, call) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


async def run(args, sandbox_base: str, media_base: str, headers: dict[str, str], media_pid: int) -> None:
    sdk = openai.AsyncOpenAI(api_key=DUMMY_KEYS["OPENAI_API_KEY"], base_url=f"{sandbox_base}/openai/v1", max_retries=0)
    tag = uuid.uuid4().hex[:8]

    async def images_only(i: int, phase: str = "a") -> None:
        r = await sdk.images.generate(model="gpt-image-1", prompt=f"direct {phase} {tag} {i}", n=1, size="1024x1024")
        assert r.data[0].b64_json

    async def moderation_and_images(i: int, phase: str = "b") -> None:
        m = await sdk.moderations.create(model="omni-moderation-latest", input=f"direct {phase} {tag} {i}")
        assert not m.results[0].flagged
        await images_only(i, phase)

    async with httpx.AsyncClient(base_url=media_base, headers=headers, timeout=30) as http:

        async def service(i: int, phase: str = "s") -> None:
            r = await http.post("/images/generate", json={"prompt": f"service {phase} {tag} {i}", "provider": "openai"})
            assert r.status_code == 201, r.text

        for fn in (images_only, moderation_and_images, service):  # warm connections, caches, Pillow
            await timed(args.warmup, lambda i, fn=fn: fn(i, "warm"))
        # Interleaved rounds, so a noisy neighbour on the shared machine hits all three alike.
        direct, direct_mod, through = [], [], []
        per_round = max(1, args.requests // 5)
        service_cpu = 0.0
        for rnd in range(5):
            direct += await timed(per_round, lambda i, r=rnd: images_only(i, f"a{r}"))
            direct_mod += await timed(per_round, lambda i, r=rnd: moderation_and_images(i, f"b{r}"))
            cpu = process_cpu_seconds(media_pid)
            through += await timed(per_round, lambda i, r=rnd: service(i, f"s{r}"))
            service_cpu += process_cpu_seconds(media_pid) - cpu
    await sdk.close()

    print(f"\nOne request at a time, {len(through)} each (after {args.warmup} warm-up), zero-latency sandbox:")
    print(line("1. SDK images.generate, direct", direct))
    print(line("2. SDK moderation + images.generate, direct", direct_mod))
    print(line("3. POST /images/generate (the service)", through))
    overhead = pct(through, 50) - pct(direct_mod, 50)
    print(f"\n  service overhead p50 (3 - 2): {overhead:.2f} ms   (target <= 15 ms)")
    print(f"  service / direct p50 (3 / 2): {pct(through, 50) / pct(direct_mod, 50):.2f}x")
    print(
        f"  media process CPU per request: {service_cpu * 1000 / len(through):.2f} ms"
        " (its own work: Python, Pillow; PostgreSQL, Redis, Azurite and the sandbox not counted)"
    )
    print(f"  machine load: {os.getloadavg()}")


def pillow_step(rounds: int = 5, per_round: int = 20) -> None:
    import io
    import statistics

    from PIL import Image, PngImagePlugin

    from media_service.service import process_image
    from sandbox.images_api import make_png

    def photo(seed: int, text: bool = False) -> bytes:
        image = Image.blend(
            Image.linear_gradient("L").resize((1024, 1024)).convert("RGB"),
            Image.effect_noise((1024, 1024), 30 + seed).convert("RGB"),
            0.5,
        )
        info = PngImagePlugin.PngInfo()
        if text:
            info.add_text("parameters", "a provider's generation parameters")
        out = io.BytesIO()
        image.save(out, "PNG", pnginfo=info)  # zlib level 6, as providers' encoders
        return out.getvalue()

    cases = {
        "sandbox 256x256 PNG": [make_png(f"bench {i}", model="gpt-image-1") for i in range(per_round)],
        "1024x1024 photo-like PNG, clean": [photo(i) for i in range(4)],
        "1024x1024 photo-like PNG with a text chunk": [photo(i, text=True) for i in range(4)],
    }
    print(f"\nservice.process_image, {rounds} alternating rounds (load {os.getloadavg()[0]:.2f}):")
    for name, files in cases.items():
        times: dict[bool, list[float]] = {False: [], True: []}
        sizes: dict[bool, int] = {}
        for _ in range(rounds):
            for keep in (False, True):
                for data in files:
                    t = time.perf_counter()
                    out = process_image(data, max_pixels=40_000_000, thumbnail_size=256, keep_clean_png=keep)
                    times[keep].append((time.perf_counter() - t) * 1000)
                    sizes[keep] = len(out.data)
        before, after = statistics.median(times[False]), statistics.median(times[True])
        print(
            f"  {name:44} re-encoded {before:7.2f} ms   kept if clean {after:7.2f} ms   ({after / before:.2f}x;"
            f" stored {sizes[False]:,} -> {sizes[True]:,} bytes, sent {len(files[-1]):,})"
        )
    print(f"  machine load: {os.getloadavg()}")


async def main() -> None:
    if "--pillow" in sys.argv:
        pillow_step()
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--profile", help="write a cProfile of the media process (event loop thread) to this file")
    args = ap.parse_args()

    async with scratch("core", "media") as run_env:
        infra, run_id, dsns, amqp = run_env.infra, run_env.run, run_env.dsns, run_env.amqp
        container = blob_container_name(run_id)
        logs = Path(os.environ.get("TMPDIR", "/tmp"))
        procs: list[subprocess.Popen] = []
        try:
            await migrate(dsns["core"], "payment")
            sandbox_port, media_port = free_port(), free_port()
            procs.append(start("sandbox.app:app", sandbox_port, {}, logs / f"bench-gen-sandbox-{run_id}.log", "/"))
            base = f"http://127.0.0.1:{sandbox_port}"
            env = {
                "DATABASE_URL": dsns["core"],
                "MEDIA_DATABASE_URL": dsns["media"],
                "REDIS_URL": infra.redis_url,
                "REDIS_PREFIX": run_id,
                "RABBITMQ_URL": amqp,
                "AZURE_STORAGE_CONNECTION_STRING": infra.azure_storage,
                "AZURE_STORAGE_CONTAINER": container,
                "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
                "KNOWN_USERS_CHECK": "0",  # one service, no Auth: tokens of made-up users (docs/auth.md)
                "MIGRATE_ON_START": "1",
                "LOG_LEVEL": "WARNING",
                "RATE_LIMIT_PER_MINUTE": "1000000",
                "OPENAI_API_KEY": DUMMY_KEYS["OPENAI_API_KEY"],
                "OPENAI_BASE_URL": f"{base}/openai/v1",
                "MEDIA_IMAGE_PROVIDERS": '["openai"]',
            }
            procs.append(
                start(
                    "media_service.main:app",
                    media_port,
                    env,
                    logs / f"bench-gen-media-{run_id}.log",
                    "/health",
                    args.profile,
                )
            )
            user_id = str(uuid.uuid4())
            import asyncpg

            conn = await asyncpg.connect(dsns["core"])
            try:
                await conn.execute(
                    "INSERT INTO subscriptions (user_id, source, external_id, tier, status, current_period_end,"
                    " source_updated_at)"
                    " VALUES ($1::uuid, 'stripe', $2, 2, 'active', now() + interval '1 month', now())",
                    user_id,
                    f"sub_bench_{run_id}",
                )
                await conn.execute("SELECT quota_reset($1::uuid, 2, now() + interval '1 month', 'bench')", user_id)
            finally:
                await conn.close()
            token = mint_access_token(TEST_JWT_SECRET, user_id=user_id, email="bench@example.com", tier=2)
            await run(args, base, f"http://127.0.0.1:{media_port}", {"Authorization": f"Bearer {token}"}, procs[1].pid)
        finally:
            for p in procs:
                # uvicorn re-raises SIGTERM after shutting down (no cProfile dump); SIGINT ends in
                # KeyboardInterrupt, after which cProfile still writes its file.
                p.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        delete_blob_container(infra, container)


if __name__ == "__main__":
    asyncio.run(main())
