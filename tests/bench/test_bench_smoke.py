"""Every benchmark under bench/ still runs: each script with the smallest arguments it accepts,
as a real process against the local PostgreSQL, Redis, RabbitMQ and Azurite, must exit 0 and print
its figures. Slow (minutes in all), so marked `bench` and run only when asked:

    .venv/bin/python -m pytest tests/bench -m bench -q

The check that every script has an entry here is not marked: a new benchmark without smoke
arguments fails the default suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


@dataclass(frozen=True)
class Smoke:
    args: tuple[str, ...]
    # A line every successful run prints (a figure, not the banner), so a run that exits 0 after
    # printing nothing useful still fails.
    expect: str
    env: dict[str, str] = field(default_factory=dict)


# The smallest arguments each script accepts (read from its docstring and argparse).
SMOKE: dict[str, Smoke | str] = {
    "bench_analytics.py": Smoke(
        (
            "--events",
            "500",
            "--users",
            "50",
            "--batch",
            "100",
            "--rank-users",
            "1000",
            "--lookups",
            "100",
            "--me-users",
            "100",
            "--me-rate",
            "20",
            "--me-seconds",
            "2",
            "--dashboard-events",
            "5000",
            "--dashboard-users",
            "100",
            "--dashboard-queries",
            "5",
        ),  # fmt: skip
        "target p99 <= 200 ms",
    ),
    "bench_auth.py": Smoke(
        ("--clients", "3", "--seconds", "2", "--rate", "2", "--logins", "2"), "login / refresh (one at a time)"
    ),
    "bench_chat.py": Smoke(("--users", "3", "--seconds", "3", "--ttft", "5"), "targets: overhead p50"),
    "bench_chat_history.py": Smoke((), "10000"),
    "bench_community.py": Smoke(
        (
            "--stories",
            "200",
            "--votes",
            "1000",
            "--seconds",
            "2",
            "--rate",
            "20",
            "--feed-connections",
            "2",
            "--in-flight",
            "4",
        ),  # fmt: skip
        "exact counts: 0 stories",
    ),
    # 40 s: long enough for a few users to reach the paid paths (premium, images, recognition).
    "bench_fleet.py": Smoke(("--users", "8", "--seconds", "40", "--ramp", "2"), "RESULT: OK"),
    "bench_media.py": Smoke(
        ("--uploads", "3", "--concurrency", "2", "--rate", "20", "--seconds", "2", "--rounds", "1"),
        "GET /images/{id}",
    ),
    "bench_media_generation.py": Smoke(("--requests", "5", "--warmup", "1"), "service overhead p50"),
    "bench_notifications.py": Smoke(
        ("--events", "1000", "--users", "50", "--streams", "5", "--live", "20", "--rate", "20"), "live: 20/20 frames"
    ),
    "bench_outbox_retention.py": Smoke(("--rows", "2000"), "sweep again, nothing to delete"),
    "bench_payment.py": Smoke(
        ("--reserves", "200", "--webhooks", "20", "--concurrency", "4"), "target p99 < 50 ms, in-process"
    ),
    "bench_rooms.py": Smoke(("--updates", "10", "--rooms", "3", "--per-room", "2"), "one update in every room"),
    "bench_search.py": Smoke(("--names", "2000", "--queries", "100"), "start-up (fresh process"),
    "bench_search_http.py": Smoke(
        ("--names", "2000", "--rate", "20", "--duration", "2", "--connections", "2"), "/autocomplete  n="
    ),
    "bench_shared.py": Smoke(
        (), "publish -> consume latency", {"BENCH_SECONDS": "1", "BENCH_ROUNDS": "1", "BENCH_EVENTS": "500"}
    ),
    "bench_tombstones.py": Smoke(
        ("--calls", "200", "--deleted", "100", "--events", "5", "--misses", "20"), "known-users miss (asks Auth"
    ),
}


def test_every_benchmark_has_smoke_arguments():
    scripts = {path.name for path in BENCH.glob("bench_*.py")}
    assert scripts - SMOKE.keys() == set(), "add the new script's tiny arguments to SMOKE"
    assert SMOKE.keys() - scripts == set(), "a script listed in SMOKE is gone"


@pytest.mark.bench
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs(script: str, tmp_path: Path):
    smoke = SMOKE[script]
    if isinstance(smoke, str):
        pytest.skip(smoke)
    env = {**os.environ, **smoke.env, "TMPDIR": str(tmp_path)}
    try:
        run = subprocess.run(
            [sys.executable, str(BENCH / script), *smoke.args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} still running after {exc.timeout} s:\n{exc.stdout or ''}{exc.stderr or ''}")
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"{script} exited {run.returncode}:\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    assert smoke.expect in output, f"{script} did not print {smoke.expect!r}:\n{output[-4000:]}"
