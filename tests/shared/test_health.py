"""All seven apps start with their real lifespan and answer their health routes."""
import pytest

from shared import fleet

SERVICES = fleet.names()


@pytest.mark.parametrize("service", SERVICES)
async def test_service_health(make_client, service, tmp_path):
    async with make_client(service, content_data_dir=str(tmp_path)) as client:
        live = await client.get("/health")
        assert live.status_code == 200
        assert live.json() == {"status": "ok", "service": service}
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert all(v == "ok" for v in ready.json()["checks"].values())
        assert "x-request-id" in ready.headers
