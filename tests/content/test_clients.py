"""The TMDB and TVDB clients against small local servers speaking their protocols (TVDB has no
sandbox provider: a Starlette app plays its v4 API here), and the TVDB step of a sync."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from content_service.corpus.real import real_records
from content_service.engine import Store
from content_service.service import ContentCatalog
from content_service.sync.runner import SyncRunner
from content_service.sync.tmdb import TMDBClient, TMDBError, retry_after_seconds
from content_service.sync.tvdb import TVDBClient


def tvdb_app(state: dict) -> Starlette:
    async def login(request: Request):
        body = await request.json()
        state["logins"] += 1
        if body.get("apikey") != "tvdb-key":
            return JSONResponse({"status": "failure", "message": "Unauthorized"}, 401)
        return JSONResponse({"status": "success", "data": {"token": f"tok{state['logins']}"}})

    async def search(request: Request):
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer tok{state['logins']}" or state.pop("expire", False):
            return JSONResponse({"status": "failure", "message": "Unauthorized"}, 401)
        if state.get("throttle"):
            state["throttle"] -= 1
            return JSONResponse({"status": "failure"}, 429, headers={"Retry-After": "0"})
        q = request.query_params.get("query", "")
        data = []
        if q.lower().startswith("naruto"):
            data = [
                {
                    "tvdb_id": "78857",
                    "name": "Naruto",
                    "year": "2002",
                    "aliases": ["NARUTO -ナルト-", "Naruto TV"],
                    "translations": {"eng": "Naruto", "jpn": "ナルト"},
                },
                {"tvdb_id": "79824", "name": "Naruto Shippuden", "year": "2007"},
            ]
        return JSONResponse({"status": "success", "data": data})

    return Starlette(routes=[Route("/v4/login", login, methods=["POST"]), Route("/v4/search", search)])


async def no_sleep(_):
    return None


async def test_tvdb_login_search_relogin_and_429():
    state = {"logins": 0, "throttle": 1}
    client = TVDBClient(
        "http://tvdb.local/v4", "tvdb-key", transport=httpx.ASGITransport(app=tvdb_app(state)), sleep=no_sleep
    )
    found = await client.find_series("Naruto", 2002)
    assert found["tvdb_id"] == 78857
    assert "NARUTO -ナルト-" in found["aliases"]
    state["expire"] = True  # the token expires: one new login, then on
    assert (await client.find_series("Naruto"))["tvdb_id"] == 78857
    assert state["logins"] == 2
    assert await client.find_series("Breaking Bad") is None
    await client.aclose()


async def test_tvdb_step_adds_aliases_that_search_finds(tmp_path):
    state = {"logins": 0}
    catalog = ContentCatalog(tmp_path / "data")
    catalog.open("real")

    def tvdb_factory():
        return TVDBClient(
            "http://tvdb.local/v4", "tvdb-key", transport=httpx.ASGITransport(app=tvdb_app(state)), sleep=no_sleep
        )

    runner = SyncRunner(catalog, client_factory=None, tvdb_factory=tvdb_factory)
    out = await runner._tvdb({"queue": [["tv", 46260], ["tv", 1396], ["movie", 155]]})
    assert out["matched"] == 1 and out["aliases"] >= 2
    rec = catalog.store.get_entity("tv:46260")
    assert rec["tvdb_id"] == 78857
    catalog.rebuild()
    hits = catalog.index.search("naruto tv", "auto", 5)
    assert hits[0].entity == "tv:46260" and hits[0].name == "Naruto TV"
    catalog.close()


def test_retry_after_forms():
    assert retry_after_seconds("3", 1.0) == 3.0
    assert retry_after_seconds(None, 1.5) == 1.5
    assert retry_after_seconds("soon", 2.0) == 2.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_seconds(later, 1.0) <= 31


async def test_tmdb_client_auth_retries_and_cache(tmp_path):
    seen = []
    budget = {"429": 2, "503": 1}

    def handler(request: httpx.Request):
        seen.append(request)
        if budget["429"]:
            budget["429"] -= 1
            return httpx.Response(429, json={"status_code": 25}, headers={"Retry-After": "1"})
        if budget["503"]:
            budget["503"] -= 1
            return httpx.Response(503, json={"status_code": 9})
        if request.url.path.endswith("/missing"):
            return httpx.Response(404, json={"status_code": 34, "status_message": "nope"})
        return httpx.Response(200, json={"id": 1, "page": 1, "total_pages": 1})

    waits = []

    async def sleep(s):
        waits.append(s)

    store = Store(tmp_path / "s")
    client = TMDBClient(
        "http://tmdb.local/3", "eyJhbGciOi.v4token", store=store, transport=httpx.MockTransport(handler), sleep=sleep
    )
    assert (await client.get("movie/1"))["id"] == 1
    assert waits[:2] == [1.0, 1.0] and len(waits) == 3
    assert seen[0].headers["authorization"] == "Bearer eyJhbGciOi.v4token"
    assert "api_key" not in str(seen[0].url)
    n = len(seen)
    assert (await client.get("movie/1"))["id"] == 1  # from the 7-day cache
    assert len(seen) == n and client.cache_hits == 1
    with pytest.raises(TMDBError) as err:
        await client.get("movie/missing")
    assert err.value.status == 404
    await client.aclose()
    plain = TMDBClient("http://tmdb.local/3", "abc123", transport=httpx.MockTransport(handler))
    await plain.get("configuration", cache=False)
    assert seen[-1].url.params["api_key"] == "abc123"
    await plain.aclose()
    store.close()


def test_records_roundtrip_real_set(tmp_path):
    store = Store(tmp_path / "s")
    store.put_entities(real_records())
    briefs = store.get_briefs(["character:1", "tv:46260"])
    assert briefs["character:1"]["title_name"] == "The Dark Knight"
    assert "cast" not in briefs["tv:46260"] and briefs["tv:46260"]["is_anime"] is True
    store.close()


def test_a_second_process_snapshot_is_picked_up(tmp_path):
    """Workers (or instances) sharing one store: one syncs and rebuilds, the others reload."""
    import subprocess
    import sys

    catalog = ContentCatalog(tmp_path / "data")
    catalog.open("real")
    assert catalog.refresh() is False
    assert not catalog.index.search("zyxwvut movie", "auto")
    root = str(__import__("pathlib").Path(__file__).parents[2])
    script = (
        f"import sys; sys.path.insert(0, {root!r})\n"
        "from content_service.service import ContentCatalog\n"
        f"r = ContentCatalog({str(tmp_path / 'data')!r}); r.open('none')\n"
        "r.store.put_entities([{'key': 'movie:777', 'type': 'movie', 'id': 777,"
        " 'name': 'Zyxwvut Movie', 'popularity': 5.0}])\n"
        "r.rebuild(); r.close()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert catalog.refresh() is True
    assert catalog.index.search("zyxwvut movie", "auto")[0].entity == "movie:777"
    assert catalog.stale is False
    catalog.close()


async def test_one_sync_per_store(tmp_path):
    from content_service.sync.runner import _ProcessLock

    catalog = ContentCatalog(tmp_path / "data")
    catalog.open("real")
    held = _ProcessLock(catalog.store.path / "sync.lock")
    assert held.acquire()
    runner = SyncRunner(catalog, client_factory=lambda: None)
    assert (await runner.run("test"))["status"] == "skipped"
    held.release()
    catalog.close()
