"""Email through SendGrid's v3 API (the sandbox's), delivery failures, the per-address code
cooldown and the per-route rate limits."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from tests.auth.conftest import PASSWORD, new_email


async def _sandbox_emails(base: str, to: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=base) as sb:
        return (await sb.get("/_sandbox/emails", params={"to": to})).json()["data"]


async def test_codes_go_out_through_sendgrid(auth_client_factory, providers, eventually):
    base, _ = providers
    async with auth_client_factory(
        email_backend="sendgrid", sendgrid_api_key="SG.sandbox-key", email_from="hello@scenextras.com"
    ) as c:
        email = new_email("sg")
        r = await c.post("/create-account", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        [message] = await _sandbox_emails(base, email)
        assert message["from"]["email"] == "hello@scenextras.com" and message["categories"] == ["otp_verify"]
        code = message["text"].split("verification code is ")[1][:6]
        r = await c.post("/verify-otp", json={"email": email, "code": code})
        assert r.status_code == 200
        # A reset code for the confirmed account, sent in the background.
        assert (await c.post("/password/forgot", json={"email": email})).status_code == 202
        await eventually(lambda: _count(base, email, 2))


async def _count(base, email, n):
    return len(await _sandbox_emails(base, email)) >= n


async def test_sendgrid_outage_is_a_clear_error_and_loses_nothing(auth_client_factory, providers, db):
    base, _ = providers
    async with auth_client_factory(
        email_backend="sendgrid", sendgrid_api_key="SG.sandbox-key", otp_resend_cooldown_seconds=60
    ) as c:
        async with httpx.AsyncClient(base_url=base) as sb:
            await sb.post("/_sandbox/faults", json={"provider": "sendgrid", "status": 500, "count": 2})
        email = new_email("sgdown")
        r = await c.post("/create-account", json={"email": email, "password": PASSWORD})
        assert r.status_code == 503 and r.json()["detail"]["code"] == "EMAIL_DELIVERY_FAILED"
        user_id = r.json()["detail"]["user_id"]
        # The account is kept, and the cooldown was not spent on an email that never went.
        assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1 AND email = $2", user_id, email) == 1
        r = await c.post("/resend-otp", json={"email": email})
        assert r.status_code == 202
        [message] = await _sandbox_emails(base, email)
        code = message["text"].split("verification code is ")[1][:6]
        assert (await c.post("/verify-otp", json={"email": email, "code": code})).status_code == 200
        # A key SendGrid refuses (401) is a failure too, not a silent success.
    async with auth_client_factory(email_backend="sendgrid", sendgrid_api_key="SG.sandbox-key") as c:
        async with httpx.AsyncClient(base_url=base) as sb:
            await sb.post("/_sandbox/faults", json={"provider": "sendgrid", "status": 401, "count": 1})
        r = await c.post("/create-account", json={"email": new_email("sg401"), "password": PASSWORD})
        assert r.status_code == 503


async def test_code_cooldown_per_address(auth_client_factory, outbox):
    async with auth_client_factory(otp_resend_cooldown_seconds=60) as c:
        email = new_email("cool")
        assert (await c.post("/create-account", json={"email": email, "password": PASSWORD})).status_code == 201
        r = await c.post("/resend-otp", json={"email": email})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        # The same answer for an address nobody owns: the cooldown reveals nothing.
        ghost = new_email("ghost")
        assert (await c.post("/resend-otp", json={"email": ghost})).status_code == 202
        r2 = await c.post("/resend-otp", json={"email": ghost})
        assert r2.status_code == 429 and r2.json()["detail"]["code"] == r.json()["detail"]["code"] == "RATE_LIMITED"
        assert len(outbox.messages(email, "otp_verify")) == 1


async def test_route_rate_limits(auth_client_factory, outbox):
    # Every in-process client is 127.0.0.1: counters of its own (a Redis namespace of its own), so
    # logins made by other tests in this minute do not count here, whatever ran before.
    own_counters = f"rl-{uuid.uuid4().hex[:8]}"
    # Fixed 60 s windows: start where the few requests below cannot straddle a window boundary.
    into = time.time() % 60
    if into > 50:
        await asyncio.sleep(60 - into + 0.1)
    async with auth_client_factory(
        rate_limit_login_per_minute=3, rate_limit_otp_verify_per_minute=4, redis_prefix=own_counters
    ) as c:
        for _ in range(3):
            assert (await c.post("/login", json={"email": new_email(), "password": "whatever1"})).status_code == 401
        r = await c.post("/login", json={"email": new_email(), "password": "whatever1"})
        assert r.status_code == 429 and r.headers["retry-after"] and r.json()["detail"]["code"] == "RATE_LIMITED"
        for _ in range(4):
            await c.post("/verify-otp", json={"email": new_email(), "code": "000000"})
        assert (await c.post("/verify-otp", json={"email": new_email(), "code": "000000"})).status_code == 429


async def test_passwords_and_codes_never_reach_the_logs(auth_client_factory, outbox, capsys):
    """The service logs JSON lines to stdout (DEBUG here): neither the password nor the code
    appears in them, on success or failure."""
    secret_password = "Sup3r-secret-passphrase!"
    capsys.readouterr()
    async with auth_client_factory(log_level="DEBUG") as c:
        email = new_email("logs")
        await c.post("/create-account", json={"email": email, "password": secret_password})
        code = await outbox.code(email)
        await c.post("/verify-otp", json={"email": email, "code": f"{(int(code) + 1) % 1_000_000:06d}"})
        await c.post("/verify-otp", json={"email": email, "code": code})
        await c.post("/login", json={"email": email, "password": secret_password})
        await c.post("/login", json={"email": email, "password": secret_password + "x"})
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert '"service":"auth_service"' in text, "expected the service's log lines to inspect"
    assert secret_password not in text and code not in text
