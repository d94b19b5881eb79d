"""`python -m shared.relay <service>`: the outbox relay as a process of its own
(OUTBOX_RELAY=external), run as a real subprocess against the test databases and vhost."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from shared.bus import emit
from shared.events import EventType, make_event

ROOT = Path(__file__).resolve().parents[2]


def start_relay(service_env: dict, service: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "shared.relay", service],
        cwd=ROOT,
        env={**os.environ, **service_env, "LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def published_at(pool, event_id: str):
    return await pool.fetchval("SELECT published_at FROM outbox_events WHERE event_id = $1", event_id)


async def test_with_an_external_relay_the_web_process_leaves_events_to_the_relay_process(
    make_client, service_env, event_spy, eventually
):
    async with make_client("analytics", OUTBOX_RELAY="external") as client:
        state = client.app.state
        assert state.relay is None  # this process publishes nothing
        user_id = str(uuid.uuid4())
        async with event_spy(["user.#"]) as spy:
            before = make_event(EventType.USER_UPDATED, user_id, {"n": 0})
            async with state.db.acquire() as conn, conn.transaction():
                await emit(conn, before)
            # No relay in this process (above), none started yet: the event is kept, not sent.
            assert await published_at(state.db, before.event_id) is None
            assert spy.of_type("user.updated", user_id=user_id) == []

            relay = start_relay(service_env, "analytics")
            try:
                # what was waiting in the outbox goes out when the relay starts ...
                await eventually(lambda: spy.of_type("user.updated", user_id=user_id), timeout=20)
                await eventually(lambda: published_at(state.db, before.event_id), timeout=10)
                # ... and what is committed while it runs, on the commit's notification
                after = make_event(EventType.USER_UPDATED, user_id, {"n": 1})
                async with state.db.acquire() as conn, conn.transaction():
                    await emit(conn, after)
                await eventually(lambda: len(spy.of_type("user.updated", user_id=user_id)) >= 2, timeout=10)
                # Each once: a later event arrives, and no second copy of the earlier ones came before it.
                marker = make_event(EventType.USER_UPDATED, user_id, {"n": 2})
                async with state.db.acquire() as conn, conn.transaction():
                    await emit(conn, marker)
                await eventually(lambda: spy.of_type("user.updated", user_id=user_id, n=2), timeout=10)
                assert sorted(e.data["n"] for e in spy.of_type("user.updated", user_id=user_id)) == [0, 1, 2]
            finally:
                relay.send_signal(signal.SIGTERM)  # Dokku's stop signal
                out, _ = await asyncio.to_thread(relay.communicate, timeout=15)
            assert relay.returncode == 0, out.decode(errors="replace")
            assert b"outbox relay stopped" in out


def test_relay_command_names_its_services():
    result = subprocess.run(
        [sys.executable, "-m", "shared.relay", "content"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "usage: python -m shared.relay <service>" in result.stderr and "chat" in result.stderr
