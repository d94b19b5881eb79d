"""Search routes: /autocomplete, /search, /popular, /characters.

The engine answers in well under a millisecond for most queries, so it runs inline on the event
loop (a thread hop would cost more than the search). Responses are cached as bytes in an
in-process LRU keyed by the index version, so a rebuilt index never serves stale answers.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from content_service import errors as content_errors
from content_service.engine.normalize import normalize_key
from content_service.settings import Settings
from shared import errors
from shared.errors import APIError, documented

router = APIRouter(tags=["search"])

Mode = Literal["exact", "prefix", "substring", "fuzzy", "auto"]
EntityType = Literal["movie", "tv", "person", "character"]
PopularType = Literal["movie", "tv", "person", "character", "anime", "cartoon"]


class SearchResult(BaseModel):
    id: str
    type: str
    name: str
    kind: Literal["exact", "prefix", "substring", "fuzzy"]
    distance: int
    spans: list[list[int]]
    popularity: float
    tmdb_id: int | str | None = None
    year: int | None = None
    is_anime: bool | None = None
    is_cartoon: bool | None = None
    title: str | None = None
    title_name: str | None = None
    actor: str | None = None
    person: str | None = None
    known_for_department: str | None = None


class SearchResponse(BaseModel):
    query: str
    mode: Mode
    type: EntityType | None = None
    results: list[SearchResult]
    took_ms: float


class ResponseCache:
    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.items: OrderedDict[tuple, bytes] = OrderedDict()

    def get(self, key):
        found = self.items.get(key)
        if found is not None:
            self.items.move_to_end(key)
        return found

    def put(self, key, value: bytes):
        self.items[key] = value
        if len(self.items) > self.maxsize:
            self.items.popitem(last=False)


def _cache(request: Request) -> ResponseCache:
    state = request.app.state
    cache = getattr(state, "search_cache", None)
    if cache is None:
        cache = state.search_cache = ResponseCache(state.settings.search_cache_size)
    return cache


def _context(rec: dict | None) -> dict:
    if not rec:
        return {}
    t = rec["type"]
    out: dict = {"tmdb_id": rec.get("id")}
    if t in ("movie", "tv"):
        out["year"] = rec.get("year")
        if t == "tv":
            out["is_anime"] = bool(rec.get("is_anime"))
            out["is_cartoon"] = bool(rec.get("is_cartoon"))
    elif t == "character":
        out.update(
            title=rec.get("title"), title_name=rec.get("title_name"), actor=rec.get("actor"), person=rec.get("person")
        )
    elif t == "person":
        out["known_for_department"] = rec.get("known_for_department")
    return {k: v for k, v in out.items() if v is not None}


def _search(request: Request, q: str, mode: str, limit: int, type_: str | None) -> Response:
    started = time.perf_counter()
    key, _ = normalize_key(q)
    if not key:
        raise content_errors.INVALID_QUERY()
    catalog = request.app.state.catalog
    ckey = (catalog.index_version, id(catalog.index), key, mode, limit, type_)
    cache = _cache(request)
    body = cache.get(ckey)
    if body is None:
        hits = catalog.index.search(q, mode, limit, (type_,) if type_ else None)
        recs = catalog.briefs([h.entity for h in hits]) if hits else {}
        results = []
        for h in hits:
            d = h.to_dict()
            d["id"] = d.pop("entity")
            d.update(_context(recs.get(h.entity)))
            results.append(d)
        body = orjson.dumps({"query": q, "mode": mode, "type": type_, "results": results})
        cache.put(ckey, body)
    took = (time.perf_counter() - started) * 1000
    # took_ms is appended to the cached body without re-serializing it
    return Response(body[:-1] + b',"took_ms":' + f"{took:.3f}".encode() + b"}", media_type="application/json")


# -- the hot path: /autocomplete and /search without FastAPI's per-request parameter machinery.
# The FastAPI routes below document the same contract in /openapi.json (and answer if the lean
# routes are not installed); these Starlette routes are put first and answer in practice. They
# validate the same way and answer errors in the same envelope.

_MODES = ("exact", "prefix", "substring", "fuzzy", "auto")
_TYPES = ("movie", "tv", "person", "character")


def _invalid(loc: str, msg: str, typ: str) -> APIError:
    return errors.VALIDATION_ERROR(errors=[{"loc": ["query", loc], "msg": msg, "type": typ}])


def _limit(request: Request, limit: int | None, default_setting: str) -> int:
    """`limit` or the default from the settings, within 1..SEARCH_MAX_LIMIT."""
    settings = request.app.state.settings
    if limit is None:
        return getattr(settings, default_setting)
    most = settings.search_max_limit
    if not 1 <= limit <= most:
        raise _invalid(
            "limit",
            f"Input should be between 1 and {most}",
            "less_than_equal" if limit > most else "greater_than_equal",
        )
    return limit


_QUERY_INT = TypeAdapter(int)


def _lean(mode_fixed: str | None, default_setting: str):
    async def endpoint(request: Request) -> Response:
        params = request.query_params
        q = params.get("q")
        if q is None:
            raise _invalid("q", "Field required", "missing")
        if not 1 <= len(q) <= 200:
            raise _invalid(
                "q", "String should have 1 to 200 characters", "string_too_short" if not q else "string_too_long"
            )
        raw_limit = params.get("limit")
        limit = None
        if raw_limit is not None:
            try:  # as pydantic reads an integer (the FastAPI twin's rule): "30.0" is 30, "30.5" is not
                limit = _QUERY_INT.validate_python(raw_limit)
            except ValidationError:
                raise _invalid("limit", "Input should be a valid integer", "int_parsing") from None
        limit = _limit(request, limit, default_setting)
        mode = mode_fixed or params.get("mode", "auto")
        if mode not in _MODES:
            raise _invalid("mode", f"Input should be one of {', '.join(_MODES)}", "literal_error")
        type_ = params.get("type")
        if type_ is not None and type_ not in _TYPES:
            raise _invalid("type", f"Input should be one of {', '.join(_TYPES)}", "literal_error")
        return _search(request, q, mode, limit, type_)

    return endpoint


def lean_routes(prefixes=("",)):
    from starlette.routing import Route

    out = []
    for prefix in prefixes:
        out.append(
            Route(
                prefix + "/autocomplete",
                _lean("auto", "autocomplete_default_limit"),
                methods=["GET"],
                include_in_schema=False,
            )
        )
        out.append(
            Route(prefix + "/search", _lean(None, "search_default_limit"), methods=["GET"], include_in_schema=False)
        )
    return out


# What a query must contain to be searchable, for the document: a character that is a letter or
# digit once folded (Python's str.isalnum, less the few that fold to nothing), or & or + (read
# as "and", "plus"). normalize_key decides at run time; tests/content check the two agree on
# every code point.
QUERY_PATTERN = (
    r"[^\W_\u02bc\u037a\ufc5e-\ufc63\ufe70\ufe72\ufe74\ufe76\ufe78\ufe7a\ufe7c\ufe7e"
    r"\uff9e\uff9f]|[&+]"
)
_QUERY = {
    "min_length": 1,
    "max_length": 200,
    "json_schema_extra": {"pattern": QUERY_PATTERN},
    "description": "What to search for: at least one letter or digit (or & or +).",
}
_SEARCH_ERRORS = documented(content_errors.INVALID_QUERY)


AUTOCOMPLETE_LIMIT = "How many results: 1 to SEARCH_MAX_LIMIT (50); AUTOCOMPLETE_DEFAULT_LIMIT (10) when not given."
SEARCH_LIMIT = "How many results: 1 to SEARCH_MAX_LIMIT (50); SEARCH_DEFAULT_LIMIT (20) when not given."
# The document states the default SEARCH_MAX_LIMIT as the maximum (_limit enforces the setting).
# The bounds sit on the integer itself, inside the document's anyOf [integer, null]: a maximum beside
# the anyOf let a generator send limit=30.0, an integer to JSON Schema that no route accepts.
_Limit = Annotated[int, Field(ge=1, json_schema_extra={"maximum": Settings.model_fields["search_max_limit"].default})]


@router.get(
    "/autocomplete",
    response_model=SearchResponse,
    responses=_SEARCH_ERRORS,
    summary="Ranked suggestions for what is typed so far, typo-tolerant",
)
async def autocomplete(
    request: Request,
    q: str = Query(..., **_QUERY),
    limit: _Limit | None = Query(None, description=AUTOCOMPLETE_LIMIT),
    type: EntityType | None = Query(None),
):
    return _search(request, q, "auto", _limit(request, limit, "autocomplete_default_limit"), type)


@router.get(
    "/search",
    response_model=SearchResponse,
    responses=_SEARCH_ERRORS,
    summary="Search with a mode: exact, prefix, substring, fuzzy or auto",
)
async def search(
    request: Request,
    q: str = Query(..., **_QUERY),
    mode: Mode = Query("auto"),
    type: EntityType | None = Query(None),
    limit: _Limit | None = Query(None, description=SEARCH_LIMIT),
):
    return _search(request, q, mode, _limit(request, limit, "search_default_limit"), type)


@router.get("/popular", summary="Popular titles and characters (or one type)")
async def popular(request: Request, type: PopularType | None = Query(None), limit: int = Query(20, ge=1, le=100)):
    catalog = request.app.state.catalog
    if type is None:
        return {"titles": catalog.popular(["movie", "tv"], limit), "characters": catalog.popular(["character"], limit)}
    if type in ("anime", "cartoon"):
        return {"type": type, "results": catalog.popular(["tv", "movie"], limit, flags=type)}
    return {"type": type, "results": catalog.popular([type], limit)}


# Not in the document: "exactly one of series_id and movie_id" cannot be said in OpenAPI, so a
# client generated from it (or the schema fuzzer) would send requests that are valid for the
# document and refused here. Kept for existing clients; documented clients use
# /resources/series/{id}/characters and /resources/movies/{id}/characters (routers/resources.py).
@router.get("/characters", include_in_schema=False)
async def characters(
    request: Request,
    series_id: int | None = Query(None, ge=1),
    movie_id: int | None = Query(None, ge=1),
    limit: int = Query(50, ge=1, le=200),
):
    if (series_id is None) == (movie_id is None):
        raise content_errors.INVALID_PARAMETERS()
    if series_id is not None:
        return characters_of(request, "tv", series_id, limit)
    return characters_of(request, "movie", movie_id, limit)


def characters_of(request: Request, kind: str, title_id: int, limit: int) -> dict:
    key = f"{kind}:{title_id}"
    found = request.app.state.catalog.characters_of(key)
    if found is None:
        raise errors.NOT_FOUND(f"No {'series' if kind == 'tv' else 'movie'} with that id.")
    return {"title": key, "characters": found[:limit]}
