"""Each service runs from what its image would hold, and nothing else.

No Docker daemon is reachable here, so the image is reproduced as far as it matters:
- the files: exactly the COPY sources of <svc>_service/Dockerfile, placed under a scratch
  WORKDIR, so a module the Dockerfile forgets to copy fails the test;
- the packages: a virtual environment created empty and filled only from the service's
  requirements.txt (built once per test session per distinct requirements file);
- the commands: the Procfile's `release` (migrations) then its `web` command with $PORT, as Dokku
  runs them, with the test infrastructure's environment (service_env) and MIGRATE_ON_START=0.
The web process must answer /health/ready (database, Redis, RabbitMQ) and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shared.testing.processes import free_port
from tests.deploy.images import ROOT, SERVICES, copy_sources, dockerfile_instructions, procfile


def stage_image_files(service: str, dest: Path) -> Path:
    """Copy what the Dockerfile copies into dest (standing in for WORKDIR /app)."""
    dockerfile = ROOT / f"{service}_service" / "Dockerfile"
    workdir = dict(dockerfile_instructions(dockerfile))["WORKDIR"]
    app = dest / "app"
    app.mkdir(parents=True)
    for sources, target in copy_sources(dockerfile):
        if target.startswith("/") and not target.startswith(workdir):
            continue  # e.g. requirements.txt to /tmp for the pip layer
        base = app / target.removeprefix(workdir).lstrip("/")
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, base, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
            else:
                target_path = base / src.name if target.endswith("/") else base
                target_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target_path)
    return app


# pip's own cache is not written on this machine (the index answers with no-store), so the
# downloaded wheels are kept here instead: the resolution still comes from requirements.txt alone.
WHEELHOUSE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scenextras" / "wheels"


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True, timeout=900
    )


def build_venv(requirements: Path, where: Path) -> Path:
    """An empty venv, filled only from requirements (pip of the dev venv does the installing)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = str(where / "bin" / "python")
    install = [
        "--python",
        python,
        "install",
        "--quiet",
        "--no-compile",
        "--no-index",
        "--find-links",
        str(WHEELHOUSE),
        "-r",
        str(requirements),
    ]
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    result = pip(*install)
    if result.returncode != 0:  # a wheel is not in the wheelhouse yet: fetch what is missing
        fetched = pip(
            "download", "--quiet", "--only-binary", ":all:", "--dest", str(WHEELHOUSE), "-r", str(requirements)
        )
        if fetched.returncode != 0:
            raise RuntimeError(
                f"pip download -r {requirements} failed:\n{fetched.stdout[-3000:]}\n{fetched.stderr[-3000:]}"
            )
        result = pip(*install)
    if result.returncode != 0:
        raise RuntimeError(f"pip install -r {requirements} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return where


@pytest.fixture(scope="session")
def fresh_venvs(tmp_path_factory):
    """service -> venv directory; services with identical requirements share one venv."""
    base = tmp_path_factory.mktemp("fresh-venvs")
    by_hash: dict[str, list[str]] = {}
    for service in SERVICES:
        req = ROOT / f"{service}_service" / "requirements.txt"
        assert req.exists(), f"{service}_service/requirements.txt is missing"
        by_hash.setdefault(hashlib.sha256(req.read_bytes()).hexdigest()[:16], []).append(service)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            digest: pool.submit(build_venv, ROOT / f"{services[0]}_service" / "requirements.txt", base / digest)
            for digest, services in by_hash.items()
        }
        venvs = {digest: future.result() for digest, future in futures.items()}
    return {service: venvs[digest] for digest, services in by_hash.items() for service in services}


def clean_env(service_env: dict[str, str], venv: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in {"HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE"}}
    return {
        **keep,
        **service_env,
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "PYTHONNOUSERSITE": "1",
        "MIGRATE_ON_START": "0",
        **extra,
    }


def procfile_argv(command: str, port: int) -> list[str]:
    # Dokku expands $PORT in the Procfile command and runs it without a shell.
    return shlex.split(command.replace("$PORT", str(port)))


@pytest.mark.parametrize("service", SERVICES)
def test_service_runs_from_its_image_contents(service, fresh_venvs, service_env, tmp_path):
    venv = fresh_venvs[service]
    app_dir = stage_image_files(service, tmp_path / "image")
    assert not (app_dir / "tests").exists() and not (app_dir / "sandbox").exists()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = clean_env(service_env, venv, CONTENT_DATA_DIR=str(data_dir))
    entries = procfile(service)

    # Nothing of the development environment leaks in.
    probe = subprocess.run(["python", "-c", "import pytest"], cwd=app_dir, env=env, capture_output=True)
    assert probe.returncode != 0, "the fresh venv must not see the development packages"

    release = subprocess.run(
        procfile_argv(entries["release"], 0), cwd=app_dir, env=env, capture_output=True, text=True, timeout=120
    )
    assert release.returncode == 0, f"release phase failed:\n{release.stdout}\n{release.stderr}"
    assert service in release.stdout

    port = free_port()
    log_path = tmp_path / "web.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            procfile_argv(entries["web"], port),
            cwd=app_dir,
            env={**env, "PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        started = time.monotonic()
        ready = None
        while time.monotonic() - started < 120:  # generous: several suites share 2 cores
            assert proc.poll() is None, f"{service} exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}"
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert ready is not None and ready.status_code == 200, (
            f"not ready: {ready and ready.text}\n{log_path.read_text()[-4000:]}"
        )
        body = ready.json()
        assert body["service"] == service and all(v == "ok" for v in body["checks"].values())
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json() == {"status": "ok", "service": service}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"{service} did not stop within 25 s of SIGTERM")
    # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean stop too.
    assert code in (0, -signal.SIGTERM), f"{service} exited with {code} on SIGTERM:\n{log_path.read_text()[-3000:]}"
    assert "Application shutdown complete" in log_path.read_text()
