"""The TMDB sync over responses exactly as TMDB documents them: the examples of TMDB's own OpenAPI
document (tests/fixtures/providers/tmdb/tmdb-api.trimmed.json, see the README there), served by a
small local server - not the sandbox's dataset, which we wrote.

TMDB documents one example per endpoint (movie 550, series 1399, person 31); a detail asked for any
other id answers TMDB's documented not-found error, which the sync counts as gone, not as a failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from content_service.service import ContentCatalog
from content_service.sync.runner import SyncRunner
from content_service.sync.tmdb import TMDBClient

SPEC = json.loads((Path(__file__).parents[1] / "fixtures/providers/tmdb/tmdb-api.trimmed.json").read_text())
# TMDB's documented error body (developer.themoviedb.org/docs/errors), status_code 34 = not found.
NOT_FOUND = {"success": False, "status_code": 34, "status_message": "The resource you requested could not be found."}


def documented(path: str) -> dict:
    value = SPEC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["examples"]["Result"]["value"]
    return json.loads(value) if isinstance(value, str) else value  # a JSON string in most, an object in some


MOVIE, MOVIE_CREDITS = documented("/3/movie/{movie_id}"), documented("/3/movie/{movie_id}/credits")
TV, TV_AGGREGATE = documented("/3/tv/{series_id}"), documented("/3/tv/{series_id}/aggregate_credits")
PERSON, PERSON_CREDITS = documented("/3/person/{person_id}"), documented("/3/person/{person_id}/combined_credits")
LISTS = {
    "movie/popular": documented("/3/movie/popular"),
    "tv/popular": documented("/3/tv/popular"),
    "trending/all/week": documented("/3/trending/all/{time_window}"),
    "search/multi": documented("/3/search/multi"),
}


def documented_tmdb(log: list[str]) -> Starlette:
    def with_appended(body: dict, request: Request, **parts: dict) -> dict:
        # append_to_response: each named sub-response under its name, as TMDB documents it.
        wanted = (request.query_params.get("append_to_response") or "").split(",")
        return {**body, **{name: part for name, part in parts.items() if name in wanted}}

    async def handle(request: Request):
        if request.query_params.get("api_key") != "tmdb-key":
            return JSONResponse(
                {
                    "success": False,
                    "status_code": 7,
                    "status_message": "Invalid API key: You must be granted a valid key.",
                },
                401,
            )
        path = request.url.path.removeprefix("/3/")
        log.append(path)
        if path in LISTS:
            return JSONResponse(LISTS[path])
        if path == f"movie/{MOVIE['id']}":
            return JSONResponse(with_appended(MOVIE, request, credits=MOVIE_CREDITS))
        if path == f"tv/{TV['id']}":
            return JSONResponse(with_appended(TV, request, aggregate_credits=TV_AGGREGATE))
        if path == f"person/{PERSON['id']}":
            return JSONResponse(PERSON)
        if path == f"person/{PERSON['id']}/combined_credits":
            return JSONResponse(PERSON_CREDITS)
        return JSONResponse(NOT_FOUND, 404)

    return Starlette(routes=[Route("/3/{path:path}", handle)])


def client_factory(log: list[str]):
    def make() -> TMDBClient:
        return TMDBClient(
            "http://tmdb.local/3", "tmdb-key", transport=httpx.ASGITransport(app=documented_tmdb(log)), max_retries=0
        )

    return make


async def test_a_full_sync_over_the_documented_lists(tmp_path):
    log: list[str] = []
    repo = ContentCatalog(tmp_path / "data")
    repo.open("real")
    runner = SyncRunner(repo, client_factory(log), popular_pages=1, trending=True, people_per_title=3)
    result = await runner.run("test")
    assert result["status"] == "ok", result
    trending = LISTS["trending/all/week"]["results"]
    listed = (
        {("movie", r["id"]) for r in LISTS["movie/popular"]["results"]}
        | {("tv", r["id"]) for r in LISTS["tv/popular"]["results"]}
        | {(r["media_type"], r["id"]) for r in trending if r["media_type"] in ("movie", "tv")}
    )
    assert result["queued"] == len(listed)
    # Every listed title was asked for; those TMDB documents no detail for answered 404: gone, not errors.
    asked = {
        tuple(p.split("/"))
        for p in log
        if p.count("/") == 1 and p.split("/")[0] in ("movie", "tv") and p.split("/")[1].isdigit()
    }
    assert {(k, str(i)) for k, i in listed} <= asked
    documented_ids = {("movie", MOVIE["id"]), ("tv", TV["id"])}
    assert result["stats"]["titles"] == len(listed & documented_ids)
    assert result["stats"]["errors"] == 0
    repo.close()


async def test_documented_details_become_titles_characters_and_people(tmp_path):
    log: list[str] = []
    repo = ContentCatalog(tmp_path / "data")
    repo.open("real")
    runner = SyncRunner(repo, client_factory(log), popular_pages=1, trending=False, people_per_title=3)
    client = client_factory(log)()
    stats = {"titles": 0, "skipped": 0, "people": 0, "characters": 0, "errors": 0}
    movie_people = await runner._title(client, "movie", MOVIE["id"], stats)
    tv_people = await runner._title(client, "tv", TV["id"], stats)
    await runner._person(client, PERSON["id"], stats)
    await client.aclose()
    assert log[:2] == [f"movie/{MOVIE['id']}", f"tv/{TV['id']}"]

    movie = repo.store.get_entity(f"movie:{MOVIE['id']}")
    assert (movie["name"], movie["year"]) == (MOVIE["title"], int(MOVIE["release_date"][:4]))
    assert movie["genres"] == [g["name"] for g in MOVIE["genres"]] and movie["runtime"] == MOVIE["runtime"]
    credited = [c for c in MOVIE_CREDITS["cast"] if c["character"]]
    assert len(movie["cast"]) >= len(credited) // 2 > 0
    first = min(MOVIE_CREDITS["cast"], key=lambda c: c["order"])
    assert movie["cast"][0]["person_name"] == first["name"]
    assert movie_people and movie_people[0] == first["id"]

    series = repo.store.get_entity(f"tv:{TV['id']}")
    assert series["name"] == TV["name"] and series["number_of_seasons"] == TV["number_of_seasons"]
    assert (series["is_anime"], series["is_cartoon"]) == (False, False)
    roles = {r["character"] for c in TV_AGGREGATE["cast"] for r in c["roles"] if r["character"]}
    chars = {c["credit"] for c in series["cast"]}
    assert chars and chars <= roles
    assert len(tv_people) == 3

    person = repo.store.get_entity(f"person:{PERSON['id']}")
    assert person["name"] == PERSON["name"] and person["stub"] is False
    assert person["birthday"] == PERSON["birthday"]
    titled = [c for c in PERSON_CREDITS["cast"] if c.get("media_type") in ("movie", "tv")]
    assert len(person["credits"]) >= len(titled) > 0
    assert stats["titles"] == 2 and stats["people"] == 1 and stats["errors"] == 0

    repo.rebuild()
    tyler = next(c for c in MOVIE_CREDITS["cast"] if c["character"] == "Tyler Durden")
    hits = repo.index.search("tyler durden", "auto", 5)
    assert hits and hits[0].name == "Tyler Durden" and hits[0].entity == f"character:{tyler['credit_id']}"
    repo.close()
