"""Checks every service passes from its first day, shared by tests/shared/test_health.py and each
service's own tests (the scaffold, scripts/new_service.py, writes one that calls them)."""

from __future__ import annotations


async def assert_healthy(client, service: str) -> None:
    """Liveness, readiness with every dependency ok, a request id, and (when the service has a
    database) the shared outbox tables migrated into it at start."""
    live = await client.get("/health")
    assert live.status_code == 200 and live.json() == {"status": "ok", "service": service}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert all(v == "ok" for v in ready.json()["checks"].values()), ready.text
    assert "x-request-id" in ready.headers
    if client.app.state.db is not None:
        async with client.app.state.db.acquire() as conn:
            outbox = await conn.fetchval("SELECT to_regclass('outbox_events') IS NOT NULL")
            assert outbox, "shared/migrations were not applied at start"
