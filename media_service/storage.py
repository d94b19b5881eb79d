"""Blob storage: Azure Blob Storage through the official aio SDK (Azurite locally and in tests).

Blobs are content-addressed (`<folder>/<sha256>.<ext>`), so the same bytes are stored once
whoever uploads them. Clients never get the account key: they get read-only SAS URLs signed with
it that expire after `MEDIA_SAS_TTL_SECONDS`. Which blobs may be deleted is decided by the
database (service.py, docs/media.md "Blobs and rows"), not here.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobSasPermissions, ContentSettings, generate_blob_sas
from azure.storage.blob.aio import BlobServiceClient, LinearRetry

# Signed read URLs kept for reuse (see read_url): at most this many, the oldest dropped first.
SIGNED_URL_CACHE = 4096


def content_address(folder: str, data: bytes, extension: str) -> str:
    return f"{folder}/{hashlib.sha256(data).hexdigest()}.{extension}"


def address_sha256(name: str) -> str:
    """The sha256 in a content address (`<folder>/<sha256>.<ext>`): that of the blob's bytes."""
    return name.rsplit("/", 1)[-1].split(".", 1)[0]


class BlobStore:
    def __init__(self, connection_string: str, container: str, *, sas_ttl_seconds: int, timeout_seconds: float = 30):
        # The SDK's default retry waits 15 s, then more, three times: a request would hang for a
        # minute while storage is down. Two quick retries, then the caller answers 503.
        self.service = BlobServiceClient.from_connection_string(
            connection_string,
            connection_timeout=5,
            read_timeout=timeout_seconds,
            retry_policy=LinearRetry(backoff=0.2, retry_total=2, random_jitter_range=0.1),
            # Otherwise aiohttp (trust_env) looks up ~/.netrc and the proxy variables in a worker
            # thread on every request: two thread hops per blob write. Storage is reached directly.
            use_env_settings=False,
        )
        self.container_name = container
        self.container = self.service.get_container_client(container)
        self.account_name = self.service.account_name
        self.account_key = getattr(self.service.credential, "account_key", None)
        if not self.account_key:
            raise ValueError("AZURE_STORAGE_CONNECTION_STRING must carry an AccountKey (to sign SAS URLs)")
        self.base_url = self.container.url.rstrip("/")
        self.sas_ttl = timedelta(seconds=sas_ttl_seconds)
        # Expiries are rounded down to this step, so one signature serves every read of a blob
        # within a step: a URL handed out is valid between TTL - step and TTL, never longer.
        self.sas_step = max(1, min(60, sas_ttl_seconds // 10))
        self._signed: dict[tuple[str, int], str] = {}
        self.container_confirmed = False

    async def ensure_container(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self.container.create_container()
        self.container_confirmed = True

    async def ready(self) -> None:
        """The readiness check: storage answers and the container exists; raises otherwise. Until
        the container has been seen once (storage was down at start-up), it is created here."""
        if not self.container_confirmed:
            await self.ensure_container()
            return
        await self.container.get_container_properties()

    async def put(self, name: str, data: bytes, content_type: str) -> None:
        """Write (or rewrite: same name, same bytes) one blob."""
        await self.container.upload_blob(
            name,
            data,
            overwrite=True,
            content_settings=ContentSettings(
                content_type=content_type, cache_control="private, max-age=31536000, immutable"
            ),
        )

    async def get(self, name: str) -> bytes:
        stream = await self.container.download_blob(name)
        return await stream.readall()

    async def exists(self, name: str) -> bool:
        return await self.container.get_blob_client(name).exists()

    async def delete(self, name: str) -> None:
        """Delete one blob; one already gone is fine (a sweep that crashed halfway runs again)."""
        with contextlib.suppress(ResourceNotFoundError):
            await self.container.delete_blob(name)

    async def names(self, prefix: str | None = None) -> list[str]:
        return [b.name async for b in self.container.list_blobs(name_starts_with=prefix)]

    def read_url(self, name: str, ttl: timedelta | None = None) -> str:
        """A read-only URL for one blob that stops working after `ttl` (default: the configured TTL,
        less up to `sas_step` seconds). Signing is an HMAC over a few fields, no I/O; at ~100 µs it
        was the largest part of GET /images/{id}, so a URL signed for the configured TTL is reused
        by every read of that blob until the (rounded) expiry moves on."""
        if ttl is not None:
            return self._sign(name, datetime.now(UTC) + ttl)
        step = self.sas_step
        expiry = math.floor((time.time() + self.sas_ttl.total_seconds()) / step) * step
        key = (name, expiry)
        url = self._signed.get(key)
        if url is None:
            url = self._sign(name, datetime.fromtimestamp(expiry, UTC))
            if len(self._signed) >= SIGNED_URL_CACHE:
                del self._signed[next(iter(self._signed))]
            self._signed[key] = url
        return url

    def _sign(self, name: str, expiry: datetime) -> str:
        sas = generate_blob_sas(
            self.account_name,
            self.container_name,
            name,
            account_key=self.account_key,
            permission=BlobSasPermissions(read=True),
            expiry=expiry,
        )
        return f"{self.base_url}/{name}?{sas}"

    async def close(self) -> None:
        await self.service.close()
