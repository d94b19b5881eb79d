"""Where the local infrastructure is (scripts/infra.sh starts it) and per-run isolation."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import asyncpg
import httpx

TEST_JWT_SECRET = "test-secret-for-scenextras-tests-only-0123456789"
# Azurite's published development account (scripts/infra.sh starts Azurite on this port).
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)
_environ_lock = threading.Lock()


@dataclass(frozen=True)
class Infra:
    pg_admin_url: str  # a superuser DSN to the `postgres` database
    pg_base: str  # DSN without the database name
    redis_url: str
    amqp_host: str
    amqp_port: int
    rabbit_api: str  # management API base
    rabbit_user: str
    rabbit_password: str
    azure_storage: str = AZURITE_CONNECTION_STRING  # blob storage connection string

    @classmethod
    def from_environ(cls) -> Infra:
        pg_base = os.environ.get("TEST_PG_BASE", "postgresql://postgres:postgres@127.0.0.1:5432")
        return cls(
            pg_admin_url=f"{pg_base}/postgres",
            pg_base=pg_base,
            redis_url=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            amqp_host=os.environ.get("TEST_AMQP_HOST", "127.0.0.1"),
            amqp_port=int(os.environ.get("TEST_AMQP_PORT", "5672")),
            rabbit_api=os.environ.get("TEST_RABBIT_API", "http://127.0.0.1:15672/api"),
            rabbit_user=os.environ.get("TEST_RABBIT_USER", "guest"),
            rabbit_password=os.environ.get("TEST_RABBIT_PASSWORD", "guest"),
            azure_storage=os.environ.get("TEST_AZURE_STORAGE_CONNECTION_STRING", AZURITE_CONNECTION_STRING),
        )

    def amqp_url(self, vhost: str) -> str:
        credentials = f"{self.rabbit_user}:{self.rabbit_password}"
        return f"amqp://{credentials}@{self.amqp_host}:{self.amqp_port}/{quote(vhost, safe='')}"


def new_run_id() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def create_database(infra: Infra, name: str) -> str:
    conn = await asyncpg.connect(infra.pg_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{infra.pg_base}/{name}"


async def drop_database(infra: Infra, name: str) -> None:
    conn = await asyncpg.connect(infra.pg_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _rabbit(infra: Infra) -> httpx.Client:
    return httpx.Client(base_url=infra.rabbit_api, auth=(infra.rabbit_user, infra.rabbit_password), timeout=15)


def create_vhost(infra: Infra, vhost: str) -> str:
    with _rabbit(infra) as api:
        api.put(f"/vhosts/{quote(vhost, safe='')}").raise_for_status()
        api.put(
            f"/permissions/{quote(vhost, safe='')}/{infra.rabbit_user}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
    return infra.amqp_url(vhost)


def delete_vhost(infra: Infra, vhost: str) -> None:
    with _rabbit(infra) as api:
        api.delete(f"/vhosts/{quote(vhost, safe='')}")


def queue_info(infra: Infra, vhost: str, queue: str) -> dict | None:
    with _rabbit(infra) as api:
        r = api.get(f"/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
        return r.json() if r.status_code == 200 else None


def delete_blob_container(infra: Infra, container: str) -> None:
    """Drop a run's blob container (best effort: a run without Azurite has none)."""
    try:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobServiceClient
    except ImportError:
        return
    try:
        with BlobServiceClient.from_connection_string(infra.azure_storage, connection_timeout=2) as service:
            service.delete_container(container)
    except (AzureError, ValueError):
        pass


@contextlib.contextmanager
def patched_environ(values: dict[str, str]):
    """Settings classes read os.environ; build them from a given mapping, thread-safely."""
    with _environ_lock:
        saved = dict(os.environ)
        os.environ.update({k: str(v) for k, v in values.items()})
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)
