"""Contract: what the sandbox's TMDB answers for every endpoint the content sync (and the sandbox's
README) uses validates against TMDB's own OpenAPI document (tests/fixtures/providers/tmdb).

TMDB's schemas are generated from one example each: they declare no `required`, no nullability, an
`integer` wherever the example's number happened to be whole, and one item shape for lists that mix
movies, series and people. So, adjusted: any field may be null (TMDB sends null for a missing poster
or date), `integer` is any number, and an object may carry only the fields TMDB declares (a field
the fake invents is drift) - except where TMDB's own example carries more (the schema is opened
there, and only there, by validating the example first). `append_to_response` adds the named
sub-response's schema.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import jsonschema_rs
import pytest

from sandbox.testing import DUMMY_KEYS

SPEC = json.loads((Path(__file__).parents[1] / "fixtures/providers/tmdb/tmdb-api.trimmed.json").read_text())
KEY = DUMMY_KEYS["TMDB_API_KEY"]


def response_schema(path: str) -> dict:
    return SPEC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


def example(path: str):
    value = SPEC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["examples"]["Result"]["value"]
    return json.loads(value) if isinstance(value, str) else value


def _adjusted(schema: dict) -> dict:
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            for child in node.get("properties", {}).values():
                walk(child)
            if isinstance(node.get("items"), dict):
                walk(node["items"])
            if node.get("properties"):
                node["additionalProperties"] = False
            if isinstance(node.get("type"), str):
                kind = "number" if node["type"] == "integer" else node["type"]
                node["type"] = [kind, "null"]
        return node

    return walk(schema)


def _node_at(schema: dict, instance_path) -> dict:
    node = schema
    for step in instance_path:
        node = node["items"] if isinstance(step, int) else node["properties"][step]
    return node


# Lists TMDB documents with one kind of item but fills with several: a person's `known_for` holds
# movies and series (the example shows movies only).
POLYMORPHIC = {"/3/search/person": [["results", 0, "known_for", 0]]}


def strict(path: str) -> dict:
    """The adjusted schema of an endpoint, opened where TMDB's own example needs it."""
    schema = _adjusted(response_schema(path))
    for where in POLYMORPHIC.get(path, []):
        _node_at(schema, where)["additionalProperties"] = True
    for _ in range(100):
        found = [
            e
            for e in jsonschema_rs.validator_for(schema).iter_errors(example(path))
            if type(e.kind).__name__ == "AdditionalProperties"
        ]
        if not found:
            return schema
        for e in found:
            _node_at(schema, e.instance_path)["additionalProperties"] = True
    raise AssertionError(f"{path}: cannot fit TMDB's example")


def with_appended(path: str, **parts: str) -> dict:
    schema = strict(path)
    for name, sub in parts.items():
        schema["properties"][name] = strict(sub)
    return schema


# The endpoints, the sandbox URL to ask (ids filled in from the sandbox's own lists) and the schema.
ENDPOINTS = {
    "/3/configuration": ("configuration", {}),
    "/3/genre/movie/list": ("genre/movie/list", {}),
    "/3/genre/tv/list": ("genre/tv/list", {}),
    "/3/movie/popular": ("movie/popular", {}),
    "/3/tv/popular": ("tv/popular", {}),
    "/3/trending/all/{time_window}": ("trending/all/week", {}),
    "/3/trending/movie/{time_window}": ("trending/movie/week", {}),
    "/3/trending/tv/{time_window}": ("trending/tv/week", {}),
    "/3/search/multi": ("search/multi", {"query": "the"}),
    "/3/search/movie": ("search/movie", {"query": "the"}),
    "/3/search/tv": ("search/tv", {"query": "the"}),
    "/3/search/person": ("search/person", {"query": "a"}),
    "/3/discover/movie": ("discover/movie", {}),
    "/3/discover/tv": ("discover/tv", {}),
    "/3/movie/{movie_id}": ("movie/{movie}", {}),
    "/3/movie/{movie_id}/credits": ("movie/{movie}/credits", {}),
    "/3/tv/{series_id}": ("tv/{tv}", {}),
    "/3/tv/{series_id}/credits": ("tv/{tv}/credits", {}),
    "/3/tv/{series_id}/aggregate_credits": ("tv/{tv}/aggregate_credits", {}),
    "/3/person/{person_id}": ("person/{person}", {}),
    "/3/person/{person_id}/combined_credits": ("person/{person}/combined_credits", {}),
    "/3/person/{person_id}/movie_credits": ("person/{person}/movie_credits", {}),
    "/3/person/{person_id}/tv_credits": ("person/{person}/tv_credits", {}),
}


def errors(schema: dict, body) -> list[str]:
    return [
        f"{'/'.join(map(str, e.instance_path)) or '(top)'}: {e.message[:200]}"
        for e in jsonschema_rs.validator_for(schema).iter_errors(body)
    ]


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
def test_tmdbs_own_example_fits_the_adjusted_schema(path):
    assert errors(strict(path), example(path)) == []


@pytest.fixture
def tmdb(sandbox):
    with httpx.Client(base_url=sandbox.env()["TMDB_BASE_URL"] + "/", params={"api_key": KEY}, timeout=10) as http:
        yield http


def ids(tmdb) -> dict[str, int]:
    movie = tmdb.get("movie/popular").json()["results"][0]["id"]
    tv = tmdb.get("tv/popular").json()["results"][0]["id"]
    credits = tmdb.get(f"movie/{movie}/credits").json()["cast"]
    return {"movie": movie, "tv": tv, "person": credits[0]["id"]}


def test_every_sandbox_answer_fits_tmdbs_schema(tmdb):
    known = ids(tmdb)
    drift = []
    for path, (url, params) in ENDPOINTS.items():
        r = tmdb.get(url.format(**known), params=params)
        assert r.status_code == 200, (url, r.text)
        drift += [f"{url}: {e}" for e in errors(strict(path), r.json())]
    # What the sync asks for: details with credits appended.
    movie = tmdb.get(f"movie/{known['movie']}", params={"append_to_response": "credits"}).json()
    drift += [
        f"movie+credits: {e}"
        for e in errors(with_appended("/3/movie/{movie_id}", credits="/3/movie/{movie_id}/credits"), movie)
    ]
    tv = tmdb.get(f"tv/{known['tv']}", params={"append_to_response": "aggregate_credits"}).json()
    drift += [
        f"tv+aggregate_credits: {e}"
        for e in errors(with_appended("/3/tv/{series_id}", aggregate_credits="/3/tv/{series_id}/aggregate_credits"), tv)
    ]
    assert drift == [], "the sandbox's TMDB drifts from TMDB's document:\n" + "\n".join(drift)


def test_errors_have_tmdbs_shape(tmdb):
    r = tmdb.get("movie/999999999")
    assert r.status_code == 404
    body = r.json()
    assert body["success"] is False and body["status_code"] == 34 and isinstance(body["status_message"], str)
    # The sandbox takes any key (it cannot know TMDB's); no key at all is TMDB's 401, status_code 7.
    bad = httpx.get(str(tmdb.base_url) + "movie/popular")
    assert bad.status_code == 401 and bad.json()["status_code"] == 7


def test_the_schemas_refuse_what_tmdb_would_not_send():
    movie = example("/3/movie/{movie_id}")
    assert errors(strict("/3/movie/{movie_id}"), {**movie, "imdb_rating": 8.8})  # an invented field
    assert errors(strict("/3/movie/{movie_id}"), {**movie, "genres": "Drama"})  # a wrong type
    page = example("/3/movie/popular")
    page["results"][0] = {**page["results"][0], "media_type": "movie"}  # not on a popular list
    assert errors(strict("/3/movie/popular"), page)
    credits = example("/3/tv/{series_id}/aggregate_credits")
    credits["cast"][0] = {**credits["cast"][0], "character": "Jon Snow"}  # a series' cast has `roles`
    assert errors(strict("/3/tv/{series_id}/aggregate_credits"), credits)
