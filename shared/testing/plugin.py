"""pytest fixtures for real infrastructure.

- `infra`: where PostgreSQL, Redis and RabbitMQ are (started by scripts/infra.sh).
- `databases`: fresh databases for this run (core and each service's own, from shared/fleet.py), dropped after.
- `amqp_url`: a RabbitMQ vhost for this run, deleted after.
- blob storage: `service_env` names a container of this run in Azurite (or in the account of
  TEST_AZURE_STORAGE_CONNECTION_STRING), deleted after.
- `service_env`: the environment a service needs, pointing at all of the above (and the
  sandbox's protocol servers when the sandbox package is present).
- `make_client`: `async with make_client("chat", **overrides) as client:` runs a service
  in-process (its real lifespan) behind an httpx client; `client.app` is the app.
- `service_process`: `with service_process("auth", **overrides) as svc:` a real uvicorn process.
- `tokens`: mint access and service tokens signed with the run's secret.
- `event_spy`: `async with event_spy(["user.*"]) as spy:` sees what reaches the exchange.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import uuid

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager

from shared import fleet
from shared.auth import mint_access_token, mint_service_token
from shared.testing import poll
from shared.testing.bus import EventSpy
from shared.testing.env import (
    TEST_JWT_SECRET,
    Infra,
    create_database,
    create_vhost,
    delete_blob_container,
    delete_vhost,
    drop_database,
    new_run_id,
    patched_environ,
)
from shared.testing.processes import ServiceProcess

DATABASE_ROLES = tuple(fleet.database_roles())  # "core" and every service with its own database


@pytest.fixture(scope="session")
def run_id() -> str:
    return new_run_id()


@pytest.fixture(scope="session")
def infra() -> Infra:
    return Infra.from_environ()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def databases(infra: Infra, run_id: str):
    dsns = {}
    for role in DATABASE_ROLES:
        dsns[role] = await create_database(infra, f"{run_id}_{role}")
    yield dsns
    for role in DATABASE_ROLES:
        await drop_database(infra, f"{run_id}_{role}")


@pytest.fixture(scope="session")
def amqp_url(infra: Infra, run_id: str):
    url = create_vhost(infra, run_id)
    yield url
    delete_vhost(infra, run_id)


@pytest.fixture(scope="session")
def sandbox():
    """The local protocol servers (Anthropic, OpenAI, Stripe, TMDB, ...) in a thread, or None."""
    try:
        from sandbox.testing import start_sandbox_in_thread
    except ImportError:
        yield None
        return
    handle = start_sandbox_in_thread()
    yield handle
    handle.stop()


def blob_container_name(tag: str) -> str:
    """A valid container name (3-63 of a-z, 0-9, single hyphens) for a run's tag."""
    name = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", tag.lower())).strip("-")
    return (name or "run").ljust(3, "0")[:63].rstrip("-")


def build_service_env(infra: Infra, tag: str, dsns: dict[str, str], amqp_url: str, sandbox) -> dict[str, str]:
    """The environment a service needs for one isolated set of databases, vhost and Redis prefix."""
    env = {
        "ENVIRONMENT": "test",
        **fleet.database_env(dsns),
        "REDIS_URL": infra.redis_url,
        "REDIS_PREFIX": tag,
        "RABBITMQ_URL": amqp_url,
        # Blob storage (Azurite locally): a container per run (or per isolated tag), created by
        # the service at start-up; the run's is deleted at the end of the session.
        "AZURE_STORAGE_CONNECTION_STRING": infra.azure_storage,
        "AZURE_STORAGE_CONTAINER": blob_container_name(tag),
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "MIGRATE_ON_START": "1",
        "LOG_JSON": "1",
        "LOG_LEVEL": "WARNING",
        "CONSUMER_RETRY_DELAYS_MS": "[50,100,200]",
        "CONSUMER_MAX_ATTEMPTS": "3",
        # Every in-process client shares one address (127.0.0.1) and the run's Redis prefix, so
        # the default per-address limit would leak between unrelated tests. Tests of the default
        # limit set RATE_LIMIT_PER_MINUTE themselves; per-route limits keep their own values.
        "RATE_LIMIT_PER_MINUTE": "100000",
        # Tests of one service run it without Auth, with tokens of users no Auth ever created: the
        # known-users check (shared/known_users.py, on by default) is off here, and on in every
        # Fleet that runs Auth (shared/testing/fleet.py), whose tests create their users through it.
        "KNOWN_USERS_CHECK": "0",
    }
    if sandbox is not None:
        env.update(sandbox.env())
    return env


@contextlib.asynccontextmanager
async def isolated_infra(infra: Infra, tag: str):
    """Fresh databases (one per role) and a RabbitMQ vhost named after `tag`, dropped afterwards."""
    dsns = {role: await create_database(infra, f"{tag}_{role}") for role in DATABASE_ROLES}
    amqp_url = create_vhost(infra, tag)
    try:
        yield dsns, amqp_url
    finally:
        for role in DATABASE_ROLES:
            await drop_database(infra, f"{tag}_{role}")
        delete_vhost(infra, tag)


@pytest.fixture(scope="session")
def service_env(infra: Infra, run_id: str, databases, amqp_url, sandbox) -> dict[str, str]:
    yield build_service_env(infra, run_id, databases, amqp_url, sandbox)
    delete_blob_container(infra, blob_container_name(run_id))


@pytest.fixture(scope="session")
def make_client(service_env):
    @contextlib.asynccontextmanager
    async def _make(service, **overrides):
        """`service` is a service name ("chat"), or a callable env -> FastAPI for a custom app."""
        env = {**service_env, **{k.upper(): str(v) for k, v in overrides.items()}}
        if callable(service):
            with patched_environ(env):
                app = service(env)
        else:
            name = service.removesuffix("_service")
            main = importlib.import_module(f"{name}_service.main")
            settings_mod = importlib.import_module(f"{name}_service.settings")
            with patched_environ(env):
                settings = settings_mod.Settings()
            app = main.build_app(settings)
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
            # As under uvicorn: the 500 response is sent, the error is logged, not raised into the test.
            transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
                client.app = app
                yield client

    return _make


@pytest.fixture(scope="session")
def service_process(service_env, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("service-logs")

    @contextlib.contextmanager
    def _start(service: str, **overrides):
        env = {**service_env, **{k.upper(): str(v) for k, v in overrides.items()}}
        with ServiceProcess(service, env, log_dir=log_dir) as proc:
            yield proc

    return _start


class Tokens:
    secret = TEST_JWT_SECRET

    def user(self, user_id: str | None = None, *, tier: int = 0, email: str | None = None, **kwargs) -> str:
        user_id = user_id or str(uuid.uuid4())
        return mint_access_token(
            self.secret, user_id=user_id, email=email or f"{user_id[:8]}@example.com", tier=tier, **kwargs
        )

    def service(self, name: str = "tests") -> str:
        return mint_service_token(self.secret, name)

    @staticmethod
    def headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture(scope="session")
def event_spy(service_env):
    def _spy(bindings: list[str] | None = None) -> EventSpy:
        return EventSpy(service_env["RABBITMQ_URL"], "scenextras.events", bindings)

    return _spy


@pytest.fixture
async def eventually():
    """await eventually(lambda: condition(), timeout=5): poll an async or sync predicate."""
    return poll.eventually
