"""Signed read URLs (media_service/storage.py read_url): reused within a step, never valid past the TTL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from media_service.storage import BlobStore


def expiry(url: str) -> datetime:
    return datetime.strptime(parse_qs(urlsplit(url).query)["se"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def test_read_urls_are_reused_within_a_step_and_never_outlive_the_ttl(service_env):
    store = BlobStore(service_env["AZURE_STORAGE_CONNECTION_STRING"], "unused", sas_ttl_seconds=900)
    try:
        assert store.sas_step == 60
        before = time.time()
        first = store.read_url("images/a.jpg")
        assert store.read_url("images/a.jpg") is first  # signed once per blob and step
        assert store.read_url("images/b.jpg") != first
        left = expiry(first).timestamp() - before
        assert 900 - 60 - 1 <= left <= 900
        # An explicit ttl is signed fresh, to the second.
        assert 59 <= expiry(store.read_url("images/a.jpg", ttl=store.sas_ttl / 15)).timestamp() - before <= 61
    finally:
        await store.close()


async def test_short_ttl_steps_by_the_second(service_env):
    store = BlobStore(service_env["AZURE_STORAGE_CONNECTION_STRING"], "unused", sas_ttl_seconds=2)
    try:
        assert store.sas_step == 1
        now = time.time()
        assert 1 - 0.01 <= expiry(store.read_url("a")).timestamp() - now <= 2
    finally:
        await store.close()
