"""Runs built service images as Dokku would and checks them (called by scripts/images.sh).

For each image, against the local PostgreSQL/Redis/RabbitMQ (host network), in databases and a
vhost made for this run and dropped afterwards (as the tests do, shared/testing):
- the Procfile's `release` command (migrations) exits 0;
- the Procfile's `web` command, with $PORT, answers app.json's startup check (its path, attempts,
  wait, timeout and initial delay) and the liveness path, runs as a non-root user, and stops
  cleanly on SIGTERM (--init: Python as PID 1 would ignore it);
- no C compiler is in the image; the content image imports its compiled query kernel;
then prints every image's size, and how much of it is over the base image.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.testing.env import Infra  # noqa: E402
from shared.testing.plugin import build_service_env, isolated_infra  # noqa: E402
from shared.testing.processes import free_port  # noqa: E402

COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "x86_64-linux-gnu-gcc-12")
# Dokku's defaults for a check's fields app.json leaves out.
CHECK_DEFAULTS = {"attempts": 5, "wait": 5, "timeout": 5, "initialDelay": 0}


class CheckFailed(Exception):
    pass


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise CheckFailed(f"podman {' '.join(args[:3])} ... exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def procfile(context: Path, service: str) -> dict[str, str]:
    entries = {}
    for line in (context / f"{service}_service" / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def healthchecks(context: Path, service: str) -> list[dict]:
    return json.loads((context / f"{service}_service" / "app.json").read_text())["healthchecks"]["web"]


def in_image(image: str, label: str, code: str) -> str:
    """Run a Python snippet in a throwaway container of the image; its stdout."""
    return podman("run", "--rm", "--network=none", "--label", label, image, "python", "-c", code).stdout.strip()


def wait_for(url: str, check: dict, container: str) -> float:
    spec = {**CHECK_DEFAULTS, **check}
    started = time.monotonic()
    time.sleep(spec["initialDelay"])
    last = ""
    for _ in range(spec["attempts"]):
        try:
            response = httpx.get(url, timeout=spec["timeout"])
            if response.status_code == 200:
                return time.monotonic() - started
            last = f"HTTP {response.status_code}: {response.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        state = podman("inspect", "--format", "{{.State.Status}}", container, check=False).stdout.strip()
        if state not in {"running", "created"}:
            raise CheckFailed(f"the web container is {state} before answering {url}")
        time.sleep(spec["wait"])
    raise CheckFailed(f"{url} did not answer 200 within app.json's {spec['attempts']} attempts: {last}")


def check_service(service: str, image: str, context: Path, env_file: Path, label: str) -> dict:
    commands = procfile(context, service)
    run = ["run", "--network=host", "--init", "--env-file", str(env_file), "--label", label]
    figures: dict = {}

    # Release phase: Dokku runs it in a one-off container of the new image before any traffic.
    t0 = time.monotonic()
    release = podman(*run, "--rm", image, *commands["release"].split(), timeout=300, check=False)
    if release.returncode != 0:
        raise CheckFailed(
            f"release `{commands['release']}` exited {release.returncode}:\n{(release.stdout + release.stderr)[-3000:]}"
        )
    figures["release_s"] = time.monotonic() - t0

    # The web process, word-split as Dokku runs Procfile commands, with $PORT set.
    port = free_port()
    web = commands["web"].replace("$PORT", str(port)).split()
    name = f"scenextras-check-{service}-{uuid.uuid4().hex[:6]}"
    podman(*run, "-d", "--name", name, "-e", f"PORT={port}", image, *web)
    try:
        checks = healthchecks(context, service)
        startup = next(c for c in checks if c["type"] == "startup")
        figures["ready_s"] = wait_for(f"http://127.0.0.1:{port}{startup['path']}", startup, name)
        for liveness in (c for c in checks if c["type"] == "liveness"):
            wait_for(f"http://127.0.0.1:{port}{liveness['path']}", liveness, name)
        uid = podman("exec", name, "id", "-u").stdout.strip()
        if uid == "0":
            raise CheckFailed("the web process runs as root")
        figures["uid"] = uid
        t0 = time.monotonic()
        podman("stop", "-t", "30", name, timeout=60)
        figures["stop_s"] = time.monotonic() - t0
        # uvicorn shuts down gracefully, then re-raises SIGTERM: 143 (128 + 15). 137 would be
        # podman's SIGKILL after the timeout, anything else a crash on the way out.
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        logs = podman("logs", name, check=False)
        if exit_code not in {"0", "143"} or "Application shutdown complete" not in logs.stdout + logs.stderr:
            raise CheckFailed(
                f"the web process did not shut down cleanly on SIGTERM: exit {exit_code} after {figures['stop_s']:.1f}s"
            )
    except CheckFailed:
        logs = podman("logs", "--tail", "60", name, check=False)
        print(f"[images] {service} web container's last output:\n{logs.stdout}{logs.stderr}", file=sys.stderr)
        raise
    finally:
        podman("rm", "-f", name, check=False)

    found = in_image(image, label, f"import shutil; print(' '.join(c for c in {COMPILERS!r} if shutil.which(c)))")
    if found:
        raise CheckFailed(f"the image carries a compiler: {found}")
    if service == "content":
        kernel = in_image(
            image,
            label,
            "from content_service.engine import index; print(index._kernel.__file__ if index.kernel_enabled() else '')",
        )
        if not kernel.endswith(".so"):
            raise CheckFailed("the content image has no compiled query kernel (the engine would run pure Python)")
        figures["kernel"] = kernel
    return figures


def image_size(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=Path, required=True, help="the build context (git archive of HEAD)")
    parser.add_argument("--image-prefix", required=True)
    parser.add_argument("--base", required=True, help="the base image, for the size over it")
    parser.add_argument("--label", required=True, help="put on every container, to clean up by")
    parser.add_argument("services", nargs="+")
    args = parser.parse_args()

    infra = Infra.from_environ()
    tag = f"img{uuid.uuid4().hex[:10]}"
    failures = []
    results = {}
    async with isolated_infra(infra, tag) as (dsns, amqp_url):
        env = build_service_env(infra, tag, dsns, amqp_url, None)
        # Dokku's release phase migrates; the web process must not need to.
        env.update(MIGRATE_ON_START="0", LOG_LEVEL="INFO")
        with tempfile.NamedTemporaryFile("w", suffix=".env", delete=False) as handle:
            handle.write("".join(f"{key}={value}\n" for key, value in env.items()))
        env_file = Path(handle.name)
        try:
            for service in args.services:
                image = f"{args.image_prefix}/{service}-service:check"
                try:
                    figures = await asyncio.to_thread(check_service, service, image, args.context, env_file, args.label)
                except (CheckFailed, subprocess.TimeoutExpired) as exc:
                    print(f"[images] FAILED {service}: {exc}", file=sys.stderr)
                    failures.append(service)
                    continue
                results[service] = figures
                print(
                    f"[images] {service}: release {figures['release_s']:.1f}s, /health/ready after "
                    f"{figures['ready_s']:.1f}s, uid {figures['uid']}, SIGTERM stop {figures['stop_s']:.1f}s, "
                    f"no compiler" + (f", kernel {figures['kernel']}" if "kernel" in figures else "")
                )
        finally:
            os.unlink(env_file)

    base = image_size(args.base)
    print(f"[images] sizes (MiB; the base is the local stand-in for {args.base}: {base / 2**20:.0f} MiB)")
    print(f"[images]   {'service':<10} {'image':>6} {'over base':>10}")
    for service in args.services:
        size = image_size(f"{args.image_prefix}/{service}-service:check")
        print(f"[images]   {service:<10} {size / 2**20:>6.0f} {(size - base) / 2**20:>10.0f}")
    if failures:
        print(f"[images] FAILED: {' '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
