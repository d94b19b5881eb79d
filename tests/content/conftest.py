"""Fixtures for the content service: the app in-process (real lifespan) over a fresh embedded
store per test, TMDB played by the sandbox's protocol server."""

from __future__ import annotations

import asyncio

import pytest

from sandbox.testing import DUMMY_KEYS


@pytest.fixture
def content_app(make_client, sandbox, tmp_path):
    """`async with content_app(**overrides) as client`; the same tmp store across calls in a
    test, so a second app is a restart."""
    tmdb = {"TMDB_API_KEY": DUMMY_KEYS["TMDB_API_KEY"]} if sandbox is not None else {}

    def _make(**overrides):
        env = {
            "CONTENT_DATA_DIR": str(tmp_path / "content"),
            "CONTENT_SEED": "real",
            "SYNC_INTERVAL_SECONDS": "0",
            "SYNC_POPULAR_PAGES": "1",
            "SYNC_PEOPLE_PER_TITLE": "2",
            "SYNC_TRENDING": "false",
            "RATE_LIMIT_PER_MINUTE": "0",
            **tmdb,
        }
        env.update({k.upper(): str(v) for k, v in overrides.items()})
        return make_client("content", **env)

    return _make


@pytest.fixture
def tmdb_control(sandbox):
    if sandbox is None:
        pytest.skip("the sandbox package is not there")
    control = sandbox.control
    yield control
    control.clear_faults()
    control.tmdb(synthetic_movies=0, synthetic_tv=0)


async def wait_sync(client, headers, timeout: float = 60.0) -> dict:
    """Poll GET /admin/sync until no run is going; the last result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        r = await client.get("/admin/sync", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        if not body["running"]:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"sync still running: {body}")
        await asyncio.sleep(0.05)
