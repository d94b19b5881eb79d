"""TMDB v3 over httpx: base URL and key from configuration, 429 Retry-After respected, 5xx and
transport errors retried with back-off, answers cached in the store for 7 days."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx

log = logging.getLogger("content_service.sync.tmdb")


class TMDBError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"TMDB {status}: {message}")
        self.status = status
        self.message = message


class TMDBNotFound(TMDBError):
    pass


def retry_after_seconds(value: str | None, default: float) -> float:
    """Retry-After as seconds: an integer, or an HTTP date."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
            return max(0.0, when - time.time())
        except (TypeError, ValueError):
            return default


class TMDBClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 10.0,
        max_retries: int = 5,
        store=None,
        max_wait: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep=asyncio.sleep,
    ):
        if not api_key:
            raise ValueError(
                "TMDB_API_KEY is not set: set it (or point TMDB_BASE_URL at the "
                "sandbox with its dummy key) to sync from TMDB"
            )
        headers = {"Accept": "application/json"}
        self._params = {}
        if api_key.startswith("eyJ"):  # a v4 read access token
            headers["Authorization"] = f"Bearer {api_key}"
        else:
            self._params["api_key"] = api_key
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout, transport=transport
        )
        self.store = store
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.sleep = sleep
        self.requests = 0
        self.cache_hits = 0
        self.throttled = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    async def get(self, path: str, params: dict | None = None, *, cache: bool = True) -> dict:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        key = path.strip("/") + ("?" + urlencode(sorted(params.items())) if params else "")
        if cache and self.store is not None:
            hit = await asyncio.to_thread(self.store.cache_get, key)
            if hit is not None:
                self.cache_hits += 1
                return hit
        attempt = 0
        while True:
            try:
                self.requests += 1
                r = await self.http.get(path.lstrip("/"), params={**params, **self._params})
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise TMDBError(0, f"transport error: {exc!r}") from exc
                await self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            if r.status_code == 429 or r.status_code >= 500:
                if attempt >= self.max_retries:
                    raise TMDBError(r.status_code, _message(r))
                if r.status_code == 429:
                    self.throttled += 1
                    wait = retry_after_seconds(r.headers.get("Retry-After"), self._backoff(attempt))
                    log.info("tmdb throttled", extra={"path": path, "retry_after": wait})
                else:
                    wait = self._backoff(attempt)
                await self.sleep(min(wait, self.max_wait))
                attempt += 1
                continue
            if r.status_code == 404:
                raise TMDBNotFound(404, _message(r))
            if r.status_code >= 400:
                raise TMDBError(r.status_code, _message(r))
            body = r.json()
            if cache and self.store is not None:
                await asyncio.to_thread(self.store.cache_put, key, body)
            return body

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(30.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2)

    async def pages(
        self, path: str, params: dict | None = None, *, max_pages: int = 1, start_page: int = 1, cache: bool = False
    ) -> AsyncIterator[tuple[int, dict]]:
        """(page number, page body) for pages start_page.. up to max_pages or total_pages."""
        page = start_page
        while page <= max_pages:
            body = await self.get(path, {**(params or {}), "page": page}, cache=cache)
            yield page, body
            if page >= int(body.get("total_pages") or 1):
                break
            page += 1


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
        return str(body.get("status_message") or body)
    except ValueError:
        return r.text[:200]
