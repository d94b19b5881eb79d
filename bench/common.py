"""Helpers for the benchmarks: scratch databases and vhosts, percentiles, wrk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.testing.env import (  # noqa: E402
    Infra,
    create_database,
    create_vhost,
    delete_vhost,
    drop_database,
    new_run_id,
)

__all__ = [
    "ROOT",
    "Infra",
    "create_database",
    "create_vhost",
    "drop_database",
    "Scratch",
    "scratch",
    "percentile",
    "wrk",
    "summary",
    "process_cpu_seconds",
]


@dataclass
class Scratch:
    infra: Infra
    run: str  # this run's id: names its databases, vhost and Redis prefix
    dsns: dict[str, str]  # role -> the database `<run>_<role>`
    amqp: str  # the RabbitMQ URL of the vhost `<run>`


@contextlib.asynccontextmanager
async def scratch(*roles: str) -> AsyncIterator[Scratch]:
    """A benchmark run's own databases (one per role) and RabbitMQ vhost, dropped afterwards
    however the run ends."""
    infra = Infra.from_environ()
    run = new_run_id()
    dsns: dict[str, str] = {}
    amqp = None
    try:
        for role in roles:
            dsns[role] = await create_database(infra, f"{run}_{role}")
        amqp = create_vhost(infra, run)
        yield Scratch(infra, run, dsns, amqp)
    finally:
        for role in dsns:
            await drop_database(infra, f"{run}_{role}")
        if amqp is not None:
            delete_vhost(infra, run)


def uvicorn_command(module: str, port: int, *, workers: int = 1, fast_loop: bool = True) -> list[str]:
    """The command line every benchmark serves an app with: loopback, no access log, warnings only;
    uvloop + httptools and long keep-alive unless `fast_loop=False` (uvicorn's defaults)."""
    cmd = [sys.executable, "-m", "uvicorn", module, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--no-access-log", "--log-level", "warning"]
    if fast_loop:
        cmd += ["--loop", "uvloop", "--http", "httptools", "--timeout-keep-alive", "60"]
    if workers != 1:
        cmd += ["--workers", str(workers)]
    return cmd


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values_ms: list[float]) -> str:
    return (
        f"p50 {percentile(values_ms, 50):.2f} ms  p99 {percentile(values_ms, 99):.2f} ms  "
        f"mean {statistics.fmean(values_ms):.2f} ms  n={len(values_ms)}"
    )


def wrk(
    url: str, *, seconds: int = 10, connections: int = 50, threads: int = 2, headers: dict[str, str] | None = None
) -> dict:
    """Run wrk (Debian package) and parse requests/s and latency percentiles."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: scripts/bootstrap.sh installs it (apt-get install wrk)")
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def lat(label: str) -> float:
        m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "rps": rps,
        "requests": total,
        "p50_ms": lat("50"),
        "p99_ms": lat("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "raw": out,
    }


def process_cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU time of a process (from /proc): robust to other load on the machine.
    `with_children`: its child processes too (uvicorn's workers)."""
    pids = [pid, *_children(pid)] if with_children else [pid]
    return sum(cpu_seconds_of(pids).values())


def cpu_seconds_of(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each process (from /proc) that still exists; one that is gone (or
    not readable) is left out, so a difference of two readings only counts processes in both."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[p] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return out


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class RawHTTP:
    """One keep-alive HTTP/1.1 connection with the least client-side work: a request is one write
    of preformatted bytes and a read of the status line, headers and Content-Length body. The load
    generator shares the machine's cores with the server; aiohttp/httpx cost several hundred µs of
    CPU a request, which an open loop at a few hundred req/s then measures as the server's latency."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
