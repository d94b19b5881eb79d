"""shared/ under killed database connections (pg_terminate_backend on the end-to-end core database),
in-process so the app's own tasks can be inspected: the outbox relay survives and keeps
publishing; a request on a connection the server terminated while idle answers 503."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from shared.bus import emit
from shared.events import make_event
from tests.e2e.test_faults import kill_connections


async def test_outbox_relay_survives_killed_connections(make_client, infra, e2e_env, event_spy):
    core = e2e_env["DATABASE_URL"].rsplit("/", 1)[1]
    async with make_client("payment", sweep_interval_seconds=0, **e2e_env) as client:
        relay = client.app.state.relay
        # The relay holds its LISTEN connection (the one whose loss used to end it silently).
        listening = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %outbox_events%'"
        admin = await asyncpg.connect(infra.pg_admin_url)
        try:
            deadline = asyncio.get_running_loop().time() + 15
            while not await admin.fetchval(listening, core):
                assert asyncio.get_running_loop().time() < deadline, "the relay is not listening"
                await asyncio.sleep(0.02)
        finally:
            await admin.close()
        for _ in range(10):
            await kill_connections(infra.pg_admin_url, [core])
            await asyncio.sleep(0.05)
        # The proof that the relay survived is positive: an event emitted now is published.
        user = str(uuid.uuid4())
        async with event_spy(["user.engagement"]) as spy:
            async with client.app.state.db.acquire() as conn:
                async with conn.transaction():
                    await emit(conn, make_event("user.engagement", user, {"probe": True}, source="e2e"))
            await spy.wait_for("user.engagement", user_id=user, timeout=15)
        assert not relay._task.done()
