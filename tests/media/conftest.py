"""Media test fixtures: the service in-process (its real lifespan) against the run's
PostgreSQL, Redis, RabbitMQ and blob container in Azurite (shared.testing.plugin)."""

from __future__ import annotations

import io
import uuid

import asyncpg
import pytest
import pytest_asyncio
from PIL import Image

# Small limits so the limit tests need small bodies; a short lease and sweep interval so crash
# recovery is seen within a test.
LIMITS = {
    "media_image_max_bytes": 3 * 1024 * 1024,
    "media_audio_max_bytes": 1024 * 1024,
    "media_image_max_pixels": 30_000_000,
    "media_sweep_interval_seconds": 1,
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(make_client):
    async with make_client("media", **LIMITS) as c:
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def media_db(service_env):
    pool = await asyncpg.create_pool(service_env["MEDIA_DATABASE_URL"], min_size=1, max_size=2)
    yield pool
    await pool.close()


class User:
    def __init__(self, tokens):
        self.id = str(uuid.uuid4())
        self.headers = tokens.headers(tokens.user(self.id))


@pytest.fixture
def new_user(tokens):
    return lambda: User(tokens)


def png(width: int = 64, height: int = 48, color=(200, 30, 30), mode: str = "RGB", **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), color).save(out, "PNG", **save)
    return out.getvalue()


def jpeg(width: int = 64, height: int = 48, color=(20, 120, 200), **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG", quality=90, **save)
    return out.getvalue()
