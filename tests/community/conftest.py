"""Community test fixtures: the service in-process (its real lifespan) against the run's
PostgreSQL, Redis and RabbitMQ (shared.testing.plugin), with Chat and Content as real uvicorn
processes (Community reaches them over HTTP only) and the sandbox for the LLMs, OpenAI's
moderation endpoint and TMDB."""

from __future__ import annotations

import contextlib
import uuid

import asyncpg
import pytest
import pytest_asyncio

from shared.migrate import migrate
from shared.testing.processes import ServiceProcess


@pytest.fixture(scope="session")
def sandbox_env(sandbox) -> dict[str, str]:
    if sandbox is None:
        pytest.skip("the sandbox package is not importable")
    return sandbox.env(keys=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def core_schema(service_env):
    """Payment's migrations (quota functions) in the core database: Chat's /talk_with needs them."""
    await migrate(service_env["DATABASE_URL"], "payment")


@contextlib.contextmanager
def _process(service: str, env: dict[str, str], log_dir):
    # A longer start-up allowance than service_process's 30 s: on a loaded two-core machine
    # chat's imports alone have taken longer.
    proc = ServiceProcess(service, env, log_dir=log_dir)
    proc.start(timeout=120)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def chat_process(service_env, sandbox_env, core_schema, tmp_path_factory):
    env = {**service_env, "OUTBOX_RELAY": "inprocess", **sandbox_env}
    with _process("chat", env, tmp_path_factory.mktemp("chat-logs")) as proc:
        yield proc


@pytest.fixture(scope="session")
def content_process(service_env, sandbox_env, tmp_path_factory):
    env = {
        **service_env,
        "CONTENT_DATA_DIR": str(tmp_path_factory.mktemp("content-data")),
        "CONTENT_SEED": "real",
        "CONTENT_STORE_MAP_SIZE_GB": "1",
        **sandbox_env,
    }
    with _process("content", env, tmp_path_factory.mktemp("content-logs")) as proc:
        yield proc


@pytest.fixture(scope="session")
def community_env(sandbox_env, chat_process, content_process, core_schema) -> dict[str, str]:
    return {
        **sandbox_env,  # the LLM providers (generation) and OpenAI's moderation endpoint
        "CHAT_SERVICE_URL": chat_process.url,
        "CONTENT_SERVICE_URL": content_process.url,
        "PUBLIC_BASE_URL": "https://scenextras.test",
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def community_db(service_env):
    """The Community database, for what a test checks or holds (a row lock) beside the service."""
    pool = await asyncpg.create_pool(service_env["COMMUNITY_DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(make_client, community_env):
    async with make_client("community", **community_env) as c:
        yield c


class User:
    def __init__(self, tokens, **claims):
        self.id = str(uuid.uuid4())
        self.token = tokens.user(self.id, **claims)
        self.headers = tokens.headers(self.token)


@pytest.fixture
def new_user(tokens):
    def _make(**claims) -> User:
        return User(tokens, **claims)

    return _make


@pytest.fixture(scope="session")
def auth_process(service_env, tmp_path_factory):
    """Auth as a real process (referral joins go through its /referrals/apply), emails as files."""
    outbox = tmp_path_factory.mktemp("auth-emails")
    env = {
        **service_env,
        "OUTBOX_RELAY": "inprocess",
        "EMAIL_BACKEND": "file",
        "EMAIL_OUTBOX_DIR": str(outbox),
        "OTP_RESEND_COOLDOWN_SECONDS": "0",
        "RATE_LIMIT_PER_MINUTE": "100000",
        "RATE_LIMIT_SIGNUP_PER_MINUTE": "100000",
        "RATE_LIMIT_OTP_VERIFY_PER_MINUTE": "100000",
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "8192",
        "ARGON2_PARALLELISM": "1",
    }
    with _process("auth", env, tmp_path_factory.mktemp("auth-logs")) as proc:
        proc.email_outbox = outbox
        yield proc


@pytest.fixture(scope="session")
def room_env(sandbox_env, auth_process) -> dict[str, str]:
    """Community's environment for rooms: Auth's URL (referral joins), a short save interval, the
    sandbox's moderation endpoint (saving a published story's text); rooms need no Chat or Content."""
    return {**sandbox_env, "AUTH_SERVICE_URL": auth_process.url, "ROOM_DOC_SAVE_SECONDS": "0.5"}
