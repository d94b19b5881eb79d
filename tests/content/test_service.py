"""The content service over HTTP: search routes, validation, resources, sync from the sandbox's
TMDB (paging, 429 with Retry-After, resume, incremental), restart without TMDB."""

from __future__ import annotations

import pytest

from tests.content.conftest import wait_sync


def mark(control) -> int:
    """The id of the sandbox's latest recorded request (its log keeps the last 5000)."""
    last = control.http.get("/_sandbox/requests", params={"limit": 1}).json()["data"]
    return last[-1]["id"] if last else 0


def tmdb_since(control, since: int) -> list[dict]:
    return control.requests(provider="tmdb", since=since)


async def test_autocomplete_and_search(content_app):
    async with content_app() as client:
        r = await client.get("/autocomplete", params={"q": "dark kn"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [x["name"] for x in body["results"]][:2] == ["The Dark Knight", "The Dark Knight Rises"]
        first = body["results"][0]
        assert first["id"] == "movie:155" and first["kind"] == "prefix"
        assert first["distance"] == 0 and first["spans"] == [[4, 11]]
        assert first["tmdb_id"] == 155 and first["year"] == 2008
        assert body["took_ms"] >= 0

        r = await client.get("/autocomplete", params={"q": "btaman begi"})
        assert r.json()["results"][0]["name"] == "Batman Begins"
        assert r.json()["results"][0]["kind"] == "fuzzy"

        r = await client.get("/search", params={"q": "walter whtie", "mode": "fuzzy"})
        hit = r.json()["results"][0]
        assert hit["name"] == "Walter White" and hit["distance"] == 1
        assert hit["type"] == "character" and hit["title_name"] == "Breaking Bad"
        assert hit["actor"] == "Bryan Cranston"

        r = await client.get("/search", params={"q": "naruto", "type": "tv"})
        assert [x["name"] for x in r.json()["results"]] == ["Naruto", "Naruto Shippūden"]
        assert r.json()["results"][0]["is_anime"] is True

        r = await client.get("/search", params={"q": "atma", "mode": "substring", "limit": 5})
        assert all("atma" in x["name"].lower() for x in r.json()["results"])

        # the old monolith prefix answers too
        r = await client.get("/api/search/autocomplete", params={"q": "amel"})
        assert r.json()["results"][0]["name"] == "Amélie"
        r = await client.get("/api/resources/movies/155")
        assert r.status_code == 200


async def test_openapi_documents_the_routes(content_app):
    async with content_app() as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        for p in (
            "/autocomplete",
            "/search",
            "/popular",
            "/admin/sync",
            "/resources/movies/{id}",
            "/resources/series/{id}",
            "/resources/movies/{id}/characters",
            "/resources/series/{id}/characters",
            "/resources/people/{id}/filmography",
            "/resources/characters/{id}",
        ):
            assert p in paths, p
        modes = paths["/search"]["get"]["parameters"]
        assert any(x["name"] == "mode" for x in modes)


@pytest.mark.parametrize(
    "path,params",
    [
        ("/autocomplete", {"q": ""}),
        ("/autocomplete", {}),
        ("/autocomplete", {"q": "!!!"}),
        ("/autocomplete", {"q": "bat", "limit": 0}),
        ("/autocomplete", {"q": "bat", "limit": 51}),
        ("/autocomplete", {"q": "bat", "type": "book"}),
        ("/search", {"q": "bat", "mode": "regex"}),
        ("/search", {"q": "bat", "limit": "ten"}),
        ("/characters", {}),
        ("/popular", {"type": "book"}),
    ],
)
async def test_bad_parameters_are_422(content_app, path, params):
    async with content_app() as client:
        r = await client.get(path, params=params)
        assert r.status_code == 422, r.text
        assert "code" in r.json()["detail"]


async def test_result_counts_come_from_the_settings(content_app):
    async with content_app(autocomplete_default_limit=2, search_default_limit=3, search_max_limit=4) as client:
        for prefix in ("", "/api/search"):
            r = await client.get(prefix + "/autocomplete", params={"q": "the"})
            assert r.status_code == 200 and len(r.json()["results"]) == 2, r.text
            r = await client.get(prefix + "/search", params={"q": "the"})
            assert r.status_code == 200 and len(r.json()["results"]) == 3, r.text
            r = await client.get(prefix + "/search", params={"q": "the", "limit": 4})
            assert r.status_code == 200 and len(r.json()["results"]) == 4, r.text
            r = await client.get(prefix + "/autocomplete", params={"q": "the", "limit": 5})
            assert r.status_code == 422, r.text
            error = r.json()["detail"]["errors"][0]
            assert error["loc"] == ["query", "limit"] and "between 1 and 4" in error["msg"]


async def test_resources(content_app):
    async with content_app() as client:
        r = await client.get("/resources/movies/155")
        assert r.status_code == 200, r.text
        movie = r.json()
        assert movie["name"] == "The Dark Knight"
        batman = movie["cast"][0]
        assert batman["credit"] == "Bruce Wayne / Batman"
        assert batman["person"]["name"] == "Christian Bale"
        assert batman["character"]["name"] == "Bruce Wayne / Batman"
        assert {c["name"] for c in movie["characters"]} >= {"Joker", "James Gordon"}

        r = await client.get("/resources/series/46260")
        assert r.json()["is_anime"] is True and r.json()["is_cartoon"] is False
        r = await client.get("/resources/series/246")
        assert r.json()["is_cartoon"] is True

        r = await client.get("/resources/people/3894/filmography")
        body = r.json()
        assert body["person"]["name"] == "Christian Bale"
        assert [f["title"]["name"] for f in body["filmography"]] == [
            "The Dark Knight Rises",
            "The Dark Knight",
            "Batman Begins",
        ]

        r = await client.get("/resources/movies/155")
        assert r.headers.get("x-cache") == "hit"

        r = await client.get("/characters", params={"series_id": 1396})
        assert [c["name"] for c in r.json()["characters"]] == ["Walter White", "Jesse Pinkman"]
        r = await client.get("/characters", params={"series_id": 424242})
        assert r.status_code == 404
        r = await client.get("/resources/series/1396/characters", params={"limit": 1})
        assert [c["name"] for c in r.json()["characters"]] == ["Walter White"]
        r = await client.get("/resources/movies/155/characters")
        assert {c["name"] for c in r.json()["characters"]} >= {"Joker", "James Gordon"}
        r = await client.get("/resources/series/424242/characters")
        assert r.status_code == 404 and r.json()["detail"]["code"] == "NOT_FOUND"

        r = await client.get("/popular")
        body = r.json()
        assert body["titles"][0]["name"] == "The Dark Knight"
        assert body["characters"][0]["type"] == "character"
        r = await client.get("/popular", params={"type": "anime", "limit": 3})
        assert all(x["is_anime"] for x in r.json()["results"])

        r = await client.get("/resources/movies/0")
        assert r.status_code == 422

        # One character by the id in its key (Community checks favourites with it).
        joker = next(c for c in movie["characters"] if c["name"] == "Joker")
        r = await client.get(f"/resources/characters/{joker['id'].split(':', 1)[1]}")
        assert r.status_code == 200, r.text
        assert r.json()["key"] == joker["id"] and r.json()["title_name"] == "The Dark Knight"
        r = await client.get("/resources/characters/999999999")
        assert r.status_code == 404 and r.json()["detail"]["code"] == "NOT_FOUND"
        r = await client.get("/resources/characters/bad%20id")
        assert r.status_code == 422 and r.json()["detail"]["code"]


async def test_unknown_title_is_fetched_from_tmdb_on_demand(content_app, tmdb_control):
    async with content_app() as client:
        r = await client.get("/resources/movies/27205")  # Inception: not in the seed
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Inception"
        r = await client.get("/resources/movies/99999999")
        assert r.status_code == 404
        assert r.json()["detail"]["code"] == "NOT_FOUND"


async def test_admin_sync_needs_a_service_token(content_app, tokens):
    async with content_app() as client:
        r = await client.post("/admin/sync")
        assert r.status_code == 401
        r = await client.post("/admin/sync", headers=tokens.headers(tokens.user()))
        assert r.status_code == 403


async def test_sync_pages_respects_429_and_indexes(content_app, tmdb_control, tokens):
    svc = tokens.headers(tokens.service("tests"))
    tmdb_control.tmdb(synthetic_movies=45)  # popular movies now span several pages
    before = mark(tmdb_control)
    tmdb_control.fault("tmdb", 429, count=2, retry_after=1, path="/movie/popular")
    async with content_app(sync_popular_pages=3, sync_people_per_title=1) as client:
        r = await client.post("/admin/sync", headers=svc)
        assert r.status_code == 202, r.text
        assert r.json()["started"] is True
        status = await wait_sync(client, svc)
        last = status["last"]
        assert last["status"] == "ok", last
        assert last["tmdb"]["throttled"] == 2
        assert last["queued"] >= 60 + 15  # 3 pages of movies + the series
        assert last["stats"]["titles"] >= 60
        reqs = tmdb_since(tmdb_control, before)
        pages = sorted(
            {
                int(x["query"].get("page", 1))
                for x in reqs
                if x["path"].endswith("/movie/popular") and x["status"] == 200
            }
        )
        assert pages == [1, 2, 3]
        throttled = [x for x in reqs if x["status"] == 429]
        assert len(throttled) == 2

        # the new titles are searchable, with characters and people
        r = await client.get("/autocomplete", params={"q": "incepton"})
        assert r.json()["results"][0]["name"] == "Inception"
        r = await client.get("/search", params={"q": "bruce wayne", "type": "character"})
        assert any(x["title_name"] == "The Dark Knight" for x in r.json()["results"])
        r = await client.get("/resources/people/3894/filmography")
        assert "The Dark Knight" in [f["title"]["name"] for f in r.json()["filmography"]]

        # incremental: a second run skips what is fresh
        n = mark(tmdb_control)
        r = await client.post("/admin/sync", headers=svc)
        status = await wait_sync(client, svc)
        assert status["last"]["stats"]["skipped"] >= 60
        assert status["last"]["stats"]["titles"] == 0
        details = [x for x in tmdb_since(tmdb_control, n) if "/movie/" in x["path"] and "popular" not in x["path"]]
        assert details == []


async def test_interrupted_sync_resumes(content_app, tmdb_control, tokens):
    svc = tokens.headers(tokens.service("tests"))
    fault = tmdb_control.fault("tmdb", 503, count=None, path="/person/")
    async with content_app() as client:
        await client.post("/admin/sync", headers=svc)
        status = await wait_sync(client, svc)
        assert status["last"]["status"] == "failed"
        assert status["checkpoint"]["phase"] == "people"
    tmdb_control.clear_faults()
    assert fault
    n = mark(tmdb_control)
    async with content_app() as client:  # a restart resumes the run by itself
        status = await wait_sync(client, svc)
        last = status["last"]
        assert last["status"] == "ok" and last["resumed"] is True
        assert last["stats"]["people"] >= 1
        assert status["checkpoint"] is None
        again = tmdb_since(tmdb_control, n)
        assert not [x for x in again if x["path"].endswith("/popular")]  # no re-discovery


async def test_restart_keeps_the_data_without_tmdb(content_app, tmdb_control, tokens):
    svc = tokens.headers(tokens.service("tests"))
    async with content_app() as client:
        await client.post("/admin/sync", headers=svc)
        assert (await wait_sync(client, svc))["last"]["status"] == "ok"
        r = await client.get("/autocomplete", params={"q": "interstel"})
        assert r.json()["results"][0]["name"] == "Interstellar"
    tmdb_control.fault("tmdb", 500, count=None)  # TMDB is down from here on
    n = mark(tmdb_control)
    async with content_app() as client:
        r = await client.get("/autocomplete", params={"q": "interstel"})
        assert r.json()["results"][0]["name"] == "Interstellar"
        r = await client.get("/resources/movies/157336")
        assert r.status_code == 200 and r.json()["name"] == "Interstellar"
        status = (await client.get("/admin/sync", headers=svc)).json()
        assert status["index"]["stale"] is False
    assert tmdb_since(tmdb_control, n) == []


async def test_targeted_sync_from_tmdb_search(content_app, tmdb_control, tokens):
    svc = tokens.headers(tokens.service("tests"))
    async with content_app() as client:
        r = await client.get("/autocomplete", params={"q": "fight clu"})
        assert not [x for x in r.json()["results"] if x["name"] == "Fight Club"]
        since = mark(tmdb_control)
        r = await client.post("/admin/sync", headers=svc, json={"queries": ["fight club"]})
        assert r.status_code == 202, r.text
        last = (await wait_sync(client, svc))["last"]
        assert last["status"] == "ok" and last["queued"] >= 1
        paths = [x["path"] for x in tmdb_since(tmdb_control, since)]
        assert any(p.endswith("/search/multi") for p in paths)
        assert not any(p.endswith("/popular") for p in paths)
        r = await client.get("/autocomplete", params={"q": "fight clu"})
        assert r.json()["results"][0]["name"] == "Fight Club"
        r = await client.post("/admin/sync", headers=svc, json={"queries": ["x"] * 51})
        assert r.status_code == 422
