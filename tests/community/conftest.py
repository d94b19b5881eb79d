"""Community test fixtures: the service in-process (its real lifespan) against the run's
PostgreSQL, Redis and RabbitMQ (shared.testing.plugin)."""
from __future__ import annotations

import pytest_asyncio


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(make_client):
    async with make_client("community") as c:
        yield c
