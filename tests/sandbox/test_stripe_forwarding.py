"""The sandbox's `stripe listen --forward-to`: run as the local fleet runs it (Procfile.dev), a
checkout paid on the sandbox's page upgrades the user in Payment with no manual step."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import httpx

from sandbox.app import create_app
from sandbox.core import SandboxState
from sandbox.stripe_api import forward_to, store_of
from shared import fleet
from shared.testing.processes import ROOT, ServiceProcess, free_port

SECRET = "whsec_forwarding_test_0123456789abcdefghijkl"


def test_procfile_runs_the_sandbox_forwarding_to_payment():
    line = next(x for x in (ROOT / "Procfile.dev").read_text().splitlines() if x.startswith("sandbox:"))
    assert f"--stripe-forward-to {fleet.payment_webhook_url()}" in line
    assert fleet.payment_webhook_url() == f"http://127.0.0.1:{fleet.get('payment').dev_port}/webhook"


def test_forwarding_survives_a_reset():
    state = SandboxState()
    create_app(state)
    forward_to(state, "http://127.0.0.1:1/webhook", SECRET)
    state.reset()
    [endpoint] = store_of(state).endpoints
    assert endpoint["url"] == "http://127.0.0.1:1/webhook" and endpoint["secret"] == SECRET


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sandbox exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def test_checkout_paid_on_the_sandbox_page_upgrades_the_user(service_env, tokens, tmp_path):
    sandbox_port, payment_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    webhook = f"http://127.0.0.1:{payment_port}/webhook"
    with open(tmp_path / "sandbox.log", "wb") as log:
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--port", str(sandbox_port), "--stripe-forward-to", webhook],
            cwd=ROOT,
            env={**os.environ, "STRIPE_WEBHOOK_SECRET": SECRET},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_up(sandbox_url + "/_sandbox", sandbox)
            env = {
                **service_env,
                "STRIPE_API_BASE": f"{sandbox_url}/stripe",
                "STRIPE_API_KEY": "sk_test_sandbox_0000000000000000",
                "STRIPE_WEBHOOK_SECRET": SECRET,
                "STRIPE_PRICE_PRO": "price_sandbox_pro_monthly",
                "STRIPE_PRICE_MAX": "price_sandbox_max_monthly",
                "FRONTEND_URL": "https://app.scenextras.test",
            }
            with ServiceProcess("payment", env, port=payment_port, log_dir=tmp_path) as payment:
                user_id = str(uuid.uuid4())
                headers = tokens.headers(tokens.user(user_id))
                with httpx.Client(base_url=payment.url, headers=headers, timeout=30) as api:
                    assert api.get("/subscription").json()["tier"] == 0
                    r = api.post("/create-checkout-session", json={"tier": "pro"})
                    assert r.status_code == 200, r.text
                    # A person presses "Pay" on the sandbox's checkout page; nothing else is done.
                    paid = httpx.post(r.json()["checkout_url"], data={}, follow_redirects=False, timeout=30)
                    assert paid.status_code == 303
                    deadline = time.monotonic() + 15
                    while (state := api.get("/subscription").json())["tier"] != 1:
                        assert time.monotonic() < deadline, f"never upgraded: {state}"
                        time.sleep(0.2)
                    assert state["status"] in ("active", "trialing") and state["source"] == "stripe"
                deliveries = httpx.get(sandbox_url + "/_sandbox/stripe/deliveries", timeout=10).json()["data"]
                assert deliveries and all(d["url"] == webhook and d["status"] == 200 for d in deliveries), deliveries
        finally:
            sandbox.terminate()
            sandbox.wait(10)
