"""The community service as it is today: it starts, answers health and readiness, and migrates its database."""


async def test_health_and_readiness(client):
    live = await client.get("/health")
    assert live.status_code == 200 and live.json() == {"status": "ok", "service": "community"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) >= {"database", "redis", "rabbitmq"}


async def test_its_database_has_the_shared_tables(client):
    async with client.app.state.db.acquire() as conn:
        applied = await conn.fetch("SELECT version FROM schema_migrations WHERE component = 'shared'")
        assert applied, "shared/migrations ran on the service's database at start"
        assert await conn.fetchval("SELECT to_regclass('outbox_events') IS NOT NULL")
