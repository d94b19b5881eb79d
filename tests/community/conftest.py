"""Community test fixtures: the service in-process (its real lifespan) against the run's
PostgreSQL, Redis and RabbitMQ (shared.testing.plugin), with Chat and Content as real uvicorn
processes (Community reaches them over HTTP only) and the sandbox for the LLMs, OpenAI's
moderation endpoint and TMDB."""
from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from shared.migrate import migrate


@pytest.fixture(scope="session")
def sandbox_env(sandbox) -> dict[str, str]:
    if sandbox is None:
        pytest.skip("the sandbox package is not importable")
    return sandbox.env(keys=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def core_schema(service_env):
    """Payment's migrations (quota functions) in the core database: Chat's /talk_with needs them."""
    await migrate(service_env["DATABASE_URL"], "payment")


@pytest.fixture(scope="session")
def chat_process(service_process, sandbox_env, core_schema):
    with service_process("chat", OUTBOX_RELAY="inprocess", **sandbox_env) as proc:
        yield proc


@pytest.fixture(scope="session")
def content_process(service_process, sandbox_env, tmp_path_factory):
    data = tmp_path_factory.mktemp("content-data")
    with service_process("content", CONTENT_DATA_DIR=str(data), CONTENT_SEED="real",
                         CONTENT_STORE_MAP_SIZE_GB="1", **sandbox_env) as proc:
        yield proc


@pytest.fixture(scope="session")
def community_env(sandbox_env, chat_process, content_process) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": sandbox_env["OPENAI_API_KEY"],
        "OPENAI_BASE_URL": sandbox_env["OPENAI_BASE_URL"],
        "CHAT_SERVICE_URL": chat_process.url,
        "CONTENT_SERVICE_URL": content_process.url,
        "PUBLIC_BASE_URL": "https://scenextras.test",
    }


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
