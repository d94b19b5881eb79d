"""All apps of the fleet manifest start with their real lifespan, answer their health routes, answer
under the legacy prefixes the manifest gives them, and bind an event queue exactly when the
manifest says they consume events."""

import asyncio

import pytest
from fastapi.routing import APIRoute

from shared import fleet
from shared.testing.checks import assert_healthy
from shared.testing.env import queue_info

SERVICES = fleet.names()


@pytest.mark.parametrize("service", SERVICES)
async def test_service_health(make_client, service, tmp_path, infra, run_id):
    s = fleet.get(service)
    async with make_client(service, content_data_dir=str(tmp_path)) as client:
        await assert_healthy(client, service)

        paths = [r.path for r in client.app.routes if isinstance(r, APIRoute) and not r.path.startswith("/health")]
        if paths:  # a skeleton has no routes to mount under its prefixes yet
            for prefix in s.legacy_prefixes:
                assert any(p.startswith(prefix + "/") for p in paths), f"nothing mounted under {prefix}"

        queue = await asyncio.to_thread(queue_info, infra, run_id, s.events_queue)
        for _ in range(50):
            if queue is not None or not s.consumes_events:
                break
            await asyncio.sleep(0.1)
            queue = await asyncio.to_thread(queue_info, infra, run_id, s.events_queue)
        assert (queue is not None) == s.consumes_events, f"{s.events_queue}: consumes_events in shared/fleet.py"
