"""Blob storage in /health/ready (docs/media.md "Readiness"): shared/app.py's ready_checks hook."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import ResourceNotFoundError

from media_service.storage import BlobStore
from shared.testing.processes import free_port


async def test_ready_includes_blob_storage(client):
    r = await client.get("/health/ready")
    assert r.status_code == 200 and r.json()["checks"]["blob_storage"] == "ok"


async def test_ready_fails_when_blob_storage_is_unreachable(make_client, service_env):
    real = service_env["AZURE_STORAGE_CONNECTION_STRING"]
    parts = dict(p.split("=", 1) for p in real.split(";") if p)
    parts["BlobEndpoint"] = f"http://127.0.0.1:{free_port()}/{parts.get('AccountName', 'devstoreaccount1')}"
    unreachable = ";".join(f"{k}={v}" for k, v in parts.items())
    async with make_client("media", azure_storage_connection_string=unreachable) as c:
        r = await c.get("/health/ready")
        assert r.status_code == 503, r.text
        assert r.json()["checks"]["blob_storage"].startswith("error")
        assert r.json()["checks"]["database"] == "ok"
        assert (await c.get("/health")).status_code == 200


async def test_container_missing_at_start_is_created_by_the_ready_check(service_env):
    """Storage was away at start-up (container never confirmed): the first ready check that
    reaches storage creates the container, and readiness follows."""
    name = f"ready-{uuid.uuid4().hex[:12]}"
    store = BlobStore(service_env["AZURE_STORAGE_CONNECTION_STRING"], name, sas_ttl_seconds=60)
    try:
        assert not await store.container.exists()
        await store.ready()
        assert await store.container.exists()
        await store.ready()  # confirmed: now only asks that the container is there
        await store.container.delete_container()
        with pytest.raises(ResourceNotFoundError):  # deleted later: not ready, and not silently re-created
            await store.ready()
    finally:
        if await store.container.exists():
            await store.container.delete_container()
        await store.close()
