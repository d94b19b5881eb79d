"""TheTVDB v4 over httpx: login with the API key (and subscriber PIN) for a bearer token, then
search series. Used to give synced series their TVDB id and aliases (more names to search by)."""

from __future__ import annotations

import asyncio

import httpx

from content_service.engine.normalize import normalize
from content_service.sync.tmdb import retry_after_seconds


class TVDBError(Exception):
    pass


class TVDBClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        pin: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int = 3,
        sleep=asyncio.sleep,
    ):
        if not api_key:
            raise ValueError("TVDB_API_KEY is not set")
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", timeout=timeout, transport=transport)
        self.api_key = api_key
        self.pin = pin
        self.token: str | None = None
        self.max_retries = max_retries
        self.sleep = sleep

    async def aclose(self) -> None:
        await self.http.aclose()

    async def login(self) -> None:
        body = {"apikey": self.api_key}
        if self.pin:
            body["pin"] = self.pin
        r = await self.http.post("login", json=body)
        if r.status_code != 200:
            raise TVDBError(f"TVDB login failed: {r.status_code} {r.text[:200]}")
        self.token = r.json()["data"]["token"]

    async def get(self, path: str, params: dict | None = None) -> dict:
        if self.token is None:
            await self.login()
        attempt = 0
        relogged = False
        while True:
            r = await self.http.get(path.lstrip("/"), params=params, headers={"Authorization": f"Bearer {self.token}"})
            if r.status_code == 401 and not relogged:
                relogged = True
                await self.login()
                continue
            if (r.status_code == 429 or r.status_code >= 500) and attempt < self.max_retries:
                await self.sleep(min(60.0, retry_after_seconds(r.headers.get("Retry-After"), 2.0**attempt)))
                attempt += 1
                continue
            if r.status_code >= 400:
                raise TVDBError(f"TVDB {r.status_code}: {r.text[:200]}")
            return r.json()

    async def find_series(self, name: str, year: int | None = None) -> dict | None:
        """The best series match by name (and year): {"tvdb_id", "name", "aliases"}."""
        params = {"query": name, "type": "series"}
        if year:
            params["year"] = year
        data = (await self.get("search", params)).get("data") or []
        want = normalize(name)
        best = None
        for item in data:
            names = (
                [item.get("name") or ""]
                + list((item.get("translations") or {}).values())
                + list(item.get("aliases") or [])
            )
            if want in {normalize(n) for n in names if n}:
                if year is None or str(item.get("year") or "") == str(year) or best is None:
                    best = item
                    if year is None or str(item.get("year") or "") == str(year):
                        break
        if best is None:
            return None
        aliases = list(best.get("aliases") or []) + [
            v for k, v in (best.get("translations") or {}).items() if k in ("eng", "jpn", "fra", "spa", "deu")
        ]
        return {
            "tvdb_id": int(best.get("tvdb_id") or best.get("id") or 0),
            "name": best.get("name"),
            "aliases": [a for a in aliases if a],
        }
