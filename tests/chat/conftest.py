"""Chat test fixtures: the local protocol servers (sandbox) for the LLMs, TMDB and Wikipedia,
Payment's quota functions in the core database, and chat apps on real infrastructure."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn

from shared.migrate import migrate

# Keys are required by the SDKs and checked by the sandbox; they are not secrets.
KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-sandbox-key",
    "OPENAI_API_KEY": "sk-sandbox-openai",
    "GROQ_API_KEY": "gsk-sandbox",
    "DEEPSEEK_API_KEY": "sk-sandbox-deepseek",
    "GEMINI_API_KEY": "sandbox-gemini-key",
    "TMDB_API_KEY": "0123456789abcdef0123456789abcdef",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SandboxControl:
    """The sandbox's control API (/_sandbox): faults, latency, recorded requests."""

    def __init__(self, base_url: str, env: dict[str, str]):
        self.base = base_url.rstrip("/")
        self.env = env
        self.mark = 0  # requests up to this id belong to earlier tests

    async def _call(self, method: str, path: str, **kw):
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as c:
            r = await c.request(method, path, **kw)
            r.raise_for_status()
            return r.json()

    async def reset(self):
        """Our faults, latency and reply tags off, and a new mark for `requests()`. Not the
        sandbox's full reset: in a whole-suite run the sandbox is shared with other services'
        tests, whose state (Stripe objects, emails, ...) must survive."""
        await self._call("DELETE", "/_sandbox/faults")
        await self._call("DELETE", "/_sandbox/latency")
        await self._call("POST", "/_sandbox/config", json={"tag_replies": False})
        last = (await self._call("GET", "/_sandbox/requests", params={"limit": 1}))["data"]
        self.mark = last[-1]["id"] if last else 0

    async def fault(self, **spec):
        return await self._call("POST", "/_sandbox/faults", json=spec)

    async def latency(self, **spec):
        return await self._call("POST", "/_sandbox/latency", json=spec)

    async def requests(self, **filters):
        """Requests recorded since the last reset()."""
        return (await self._call("GET", "/_sandbox/requests", params={"since": self.mark, **filters}))["data"]

    async def config(self, **values):
        return await self._call("POST", "/_sandbox/config", json=values)

    async def transcripts(self, *texts):
        return await self._call("POST", "/_sandbox/transcripts", json={"texts": list(texts)})


@pytest.fixture(scope="session")
def llm_sandbox(sandbox):
    """The plugin's sandbox when sandbox/testing.py provides it; else one started here."""
    if sandbox is not None:
        env = sandbox.env()
        base = env["ANTHROPIC_BASE_URL"].rsplit("/anthropic", 1)[0]
        yield SandboxControl(base, env)
        return
    from sandbox.app import create_app
    from sandbox.control import env_for

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True, name="sandbox")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("sandbox did not start")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    yield SandboxControl(base, env_for(base))
    server.should_exit = True
    thread.join(10)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def core_schema(service_env):
    """Payment's migrations (quota functions, subscriptions) in the core database."""
    await migrate(service_env["DATABASE_URL"], "payment")
    return service_env["DATABASE_URL"]


@pytest.fixture(scope="session")
def chat_env(llm_sandbox, core_schema) -> dict[str, str]:
    """Overrides for make_client: sandbox URLs and dummy keys (and the core database migrated,
    so any test that builds its own chat app finds the quota functions)."""
    return {**llm_sandbox.env, **KEYS, "CHAT_STREAM_HEARTBEAT_SECONDS": "0.5", "RATE_LIMIT_PER_MINUTE": "100000"}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chat(make_client, chat_env, core_schema):
    """One chat app for the tests that need no special settings."""
    async with make_client("chat", **chat_env) as client:
        yield client


@pytest.fixture(autouse=True)
async def _clean_sandbox(llm_sandbox):
    await llm_sandbox.reset()
    yield


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chat_db(service_env):
    pool = await asyncpg.create_pool(service_env["CHAT_DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def core_db(service_env, core_schema):
    pool = await asyncpg.create_pool(service_env["DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


class User:
    def __init__(self, tokens, tier: int = 0):
        self.id = str(uuid.uuid4())
        self.tier = tier
        self.token = tokens.user(self.id, tier=tier)
        self.headers = tokens.headers(self.token)


@pytest.fixture
def new_user(tokens):
    def _make(tier: int = 0) -> User:
        return User(tokens, tier)

    return _make


@pytest.fixture(scope="session")
def serve_chat(service_env, chat_env, core_schema):
    """`async with serve_chat(**overrides) as (base_url, app)`: the chat app behind a real uvicorn
    server on this event loop (streaming and client disconnects need a real socket)."""
    from chat_service.main import build_app
    from chat_service.settings import Settings
    from shared.testing.env import patched_environ

    @contextlib.asynccontextmanager
    async def _serve(**overrides):
        env = {**service_env, **chat_env, **{k.upper(): str(v) for k, v in overrides.items()}}
        with patched_environ(env):
            settings = Settings()
        app = build_app(settings)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve())
        deadline = time.monotonic() + 30
        while not server.started:
            if task.done():
                task.result()
            if time.monotonic() > deadline:
                raise RuntimeError("chat server did not start")
            await asyncio.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}", app
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 30)

    return _serve


@pytest.fixture
def subscribe(core_db):
    """What Payment does when a subscription starts: the subscription row (effective_tier reads
    it) and the tier's allowances for a new period."""

    async def _subscribe(user_id: str, tier: int) -> None:
        await core_db.execute(
            """
            INSERT INTO subscriptions (user_id, source, external_id, tier, status, current_period_end,
                                       source_updated_at)
            VALUES ($1::uuid, 'stripe', $2, $3, 'active', now() + interval '1 month', now())
            """,
            user_id,
            f"sub_test_{uuid.uuid4().hex[:12]}",
            tier,
        )
        await core_db.execute("SELECT quota_reset($1::uuid, $2, now() + interval '1 month', 'test')", user_id, tier)

    return _subscribe
