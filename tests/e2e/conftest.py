"""The fleet end to end: Auth, Payment and Chat as separate uvicorn processes on PostgreSQL
databases, a Redis prefix and a RabbitMQ vhost of their own (`e2e_env`: not the run's shared
ones, where in-process apps of other test folders keep outbox relays and consumers running for
the whole session and would publish or consume the fleet's events behind the tests' back),
every external API played by the sandbox,
driven only over HTTP. Redis and RabbitMQ are reached through cuttable TCP proxies
(`fleet.redis_proxy`, `fleet.amqp_proxy`), so a test can take them "down" for these services
without touching the servers other test runs share.

One fleet per test module (module-scoped), started once: flows and faults in different modules.
"""

from __future__ import annotations

import time
import uuid

import asyncpg
import httpx
import pytest
import pytest_asyncio

from shared.testing.bus import EventSpy
from shared.testing.plugin import build_service_env, isolated_infra
from tests.e2e.fans import Clients, Outbox
from tests.e2e.fleets import running_fleet


@pytest.fixture(scope="session")
def sandbox_handle(sandbox):
    if sandbox is None:
        pytest.fail("the sandbox package is required for the end-to-end tests")
    return sandbox


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def e2e_env(infra, run_id, sandbox_handle):
    """Databases, vhost and Redis prefix for the fleet alone."""
    tag = f"{run_id}e2e"
    async with isolated_infra(infra, tag) as (dsns, amqp_url):
        yield build_service_env(infra, tag, dsns, amqp_url, sandbox_handle)


@pytest.fixture(scope="session")
def event_spy(e2e_env):
    """The plugin's event_spy, on the fleet's own vhost."""

    def _spy(bindings: list[str] | None = None) -> EventSpy:
        return EventSpy(e2e_env["RABBITMQ_URL"], "scenextras.events", bindings)

    return _spy


@pytest.fixture(scope="module")
def fleet(e2e_env, sandbox_handle, infra, tmp_path_factory):
    """Auth, Payment and Chat running, the sandbox's Stripe posting signed webhooks to Payment."""
    env = {**e2e_env, **sandbox_handle.env(keys=True)}
    with running_fleet(env, sandbox_handle, infra, tmp_path_factory.mktemp("fleet"), stripe_webhooks=True) as f:
        yield f


@pytest.fixture(scope="module")
def outbox(fleet) -> Outbox:
    return Outbox(fleet.outbox_dir)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(fleet):
    clients = Clients({name: fleet.url(name) for name in fleet.procs})
    yield clients
    await clients.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def core_db(e2e_env):
    """Direct to the fleet's core database (not through any proxy), for checking what was stored."""
    pool = await asyncpg.create_pool(e2e_env["DATABASE_URL"], min_size=1, max_size=3)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chat_db(e2e_env):
    pool = await asyncpg.create_pool(e2e_env["CHAT_DATABASE_URL"], min_size=1, max_size=3)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def analytics_db(e2e_env):
    pool = await asyncpg.create_pool(e2e_env["ANALYTICS_DATABASE_URL"], min_size=1, max_size=2)
    yield pool
    await pool.close()


async def counted(analytics: asyncpg.Pool, ids: list[uuid.UUID]) -> int:
    """How many of the events `ids` Analytics has stored (distinct: a duplicate row would not hide
    a missing one)."""
    return await analytics.fetchval(
        "SELECT count(DISTINCT event_id) FROM analytics_events WHERE event_id = ANY($1::uuid[])", ids
    )


async def wait_ready(url: str, timeout: float = 30.0) -> dict:
    """Poll /health/ready until 200 (the service recovered by itself)."""
    deadline = time.monotonic() + timeout
    last = None
    async with httpx.AsyncClient(timeout=5, trust_env=False) as c:
        while time.monotonic() < deadline:
            try:
                r = await c.get(url + "/health/ready")
                last = r.json()
                if r.status_code == 200:
                    return last
            except httpx.HTTPError as exc:
                last = repr(exc)
            import asyncio

            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout}s: {last}")
