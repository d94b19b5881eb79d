"""Fixtures for the auth service's tests: the service in-process against real PostgreSQL, Redis
and RabbitMQ, emails read from the `file` backend's outbox (or the sandbox's SendGrid sink), and
Google / Apple / Facebook played by the sandbox's protocol servers (real JWKS, real RS256 tokens)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

GOOGLE_CLIENT_ID = "sx-test.apps.googleusercontent.com"
APPLE_CLIENT_ID = "com.scenextras.app"
FACEBOOK_APP_SECRET = "sandbox-facebook-app-secret"
PASSWORD = "correct horse battery"


def _sandbox_app():
    """The whole sandbox app, or (while other providers are still being written) the providers
    Auth talks to: SendGrid, Google, Apple and Facebook, plus the control API."""
    try:
        from sandbox.app import create_app

        return create_app()
    except ImportError:
        pass
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from sandbox import control, oauth, sendgrid_api
    from sandbox.core import ProviderApp, SandboxState

    state = SandboxState()
    oauth.keyring()

    def mount(prefix, provider, router):
        return Mount(prefix, app=ProviderApp(provider, router, state))

    app = Starlette(
        routes=[
            *control.routes(state),
            *oauth.control_routes(state),
            mount("/sendgrid", "sendgrid", sendgrid_api.build(state)),
            mount("/oauth/google", "google", oauth.build_google(state)),
            mount("/oauth/apple", "apple", oauth.build_apple(state)),
            mount("/oauth/facebook", "facebook", oauth.build_facebook(state)),
        ]
    )
    app.state.sandbox = state
    return app


class _SandboxThread:
    """The sandbox app on a free port in a thread (used when the plugin's `sandbox` fixture has
    no handle to give)."""

    def __init__(self):
        import uvicorn

        from shared.testing.processes import free_port

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(_sandbox_app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, name="sandbox", daemon=True)

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.05)
        return self

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def providers(sandbox):
    """(sandbox base URL, environment pointing the auth service at it)."""
    from sandbox.control import env_for
    from sandbox.oauth import DEFAULT_FACEBOOK_APP_ID

    own = None
    if sandbox is not None:
        env = dict(sandbox.env())
        base = getattr(sandbox, "base_url", None) or env["SENDGRID_BASE_URL"].rstrip("/").removesuffix("/sendgrid")
    else:
        own = _SandboxThread().start()
        base = f"http://127.0.0.1:{own.port}"
        env = env_for(base)
    env.update(
        GOOGLE_CLIENT_IDS=f"{GOOGLE_CLIENT_ID},other-web-client.apps.googleusercontent.com",
        APPLE_CLIENT_IDS=APPLE_CLIENT_ID,
        FACEBOOK_APP_ID=DEFAULT_FACEBOOK_APP_ID,
        FACEBOOK_APP_SECRET=FACEBOOK_APP_SECRET,
    )
    yield base, env
    if own is not None:
        own.stop()


@pytest.fixture(scope="session")
def outbox_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("email-outbox")


class Outbox:
    def __init__(self, directory: Path):
        self.directory = directory

    def messages(self, to: str | None = None, template: str | None = None) -> list[dict]:
        out = []
        for path in sorted(self.directory.glob("*.json")):
            message = json.loads(path.read_text())
            if (to is None or message["to"] == to) and (template is None or message["template"] == template):
                out.append(message)
        return out

    async def wait(self, to: str, template: str, count: int = 1, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to, template)
            if len(found) >= count:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {template} email #{count} to {to}; outbox has {len(self.messages(to))} for them"
                )
            await asyncio.sleep(0.05)

    async def code(self, to: str, template: str = "otp_verify", count: int = 1) -> str:
        return (await self.wait(to, template, count))["context"]["code"]


@pytest.fixture(scope="session")
def outbox(outbox_dir) -> Outbox:
    return Outbox(outbox_dir)


@pytest.fixture(scope="session")
def auth_settings(providers, outbox_dir) -> dict:
    """What the default test client runs with: the file email backend, no cooldown, generous rate
    limits (tests that check limits and cooldowns start their own client), lighter argon2."""
    _, env = providers
    return {
        **{k.lower(): v for k, v in env.items()},
        "email_backend": "file",
        "email_outbox_dir": str(outbox_dir),
        "otp_resend_cooldown_seconds": 0,
        "rate_limit_per_minute": 100000,
        **{
            f"rate_limit_{n}_per_minute": 100000
            for n in ("signup", "login", "otp_verify", "otp_resend", "password", "guest", "oauth", "refresh")
        },
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8192,
        "argon2_parallelism": 1,
    }


@pytest.fixture(scope="session")
def auth_client_factory(make_client, auth_settings):
    @contextlib.asynccontextmanager
    async def _make(**overrides):
        async with make_client("auth", **{**auth_settings, **overrides}) as client:
            yield client

    return _make


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(auth_client_factory):
    async with auth_client_factory() as c:
        yield c


def new_email(prefix: str = "fan") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_up(
    client: httpx.AsyncClient, outbox: Outbox, email: str | None = None, password: str = PASSWORD, **body
) -> dict:
    """create-account, read the code from the email, verify: the token pair and user."""
    email = email or new_email()
    r = await client.post("/create-account", json={"email": email, "password": password, **body})
    assert r.status_code == 201, r.text
    count = len(outbox.messages(email, "otp_verify"))
    code = await outbox.code(email, count=max(count, 1))
    r = await client.post("/verify-otp", json={"email": email, "code": code})
    assert r.status_code == 200, r.text
    return {**r.json(), "email": email, "password": password}


@pytest.fixture
def db(client):
    """The service's own pool (the core database), for checking what was stored."""
    return client.app.state.db
