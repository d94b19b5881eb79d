"""The service as Dokku runs it: migrations from the command line (twice), then a real uvicorn
process answering a whole sign-up over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.auth.conftest import PASSWORD, new_email

ROOT = Path(__file__).resolve().parents[2]


def test_migrations_run_twice_and_uvicorn_serves_a_sign_up(service_env, auth_settings, service_process, tmp_path):
    env = {**service_env, "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "shared.migrate", "auth"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    overrides = {**auth_settings, "email_outbox_dir": str(tmp_path), "migrate_on_start": "0"}
    with service_process("auth", **overrides) as svc:
        with httpx.Client(base_url=svc.url, timeout=10) as c:
            assert c.get("/health/ready").status_code == 200
            email = new_email("proc")
            r = c.post("/api/auth/create-account", json={"email": email, "password": PASSWORD})
            assert r.status_code == 201, r.text
            deadline = time.monotonic() + 10
            while not list(tmp_path.glob("*.json")) and time.monotonic() < deadline:
                time.sleep(0.05)
            [mail] = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
            r = c.post("/verify-otp", json={"email": email, "code": mail["context"]["code"]})
            assert r.status_code == 200
            r = c.get("/users/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
            assert r.status_code == 200 and r.json()["email"] == email
