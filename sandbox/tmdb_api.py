"""TMDB v3 subset (``/tmdb/3``) over a small, fixed dataset (``sandbox/data/tmdb.json``).

Dataset (ids are stable; tests may rely on them - see ``sandbox/data/build_tmdb.py``):

* 27 movies, real TMDB ids: The Dark Knight (155; Christian Bale 3894 as "Bruce Wayne / Batman",
  Heath Ledger 1810 as "Joker"), Batman Begins (272), The Dark Knight Rises (49026), Spirited Away
  (129, ``ja``), Harry Potter 1/2/3 and Deathly Hallows 2 (671, 672, 673, 12445; Daniel Radcliffe
  10980 as "Harry Potter"), Star Wars (11; Mark Hamill 2 as "Luke Skywalker"), The Empire Strikes
  Back (1891), Return of the Jedi (1892), Inception (27205), The Matrix (603), Fight Club (550),
  Pulp Fiction (680), The Godfather (238), Forrest Gump (13), Titanic (597), The Avengers (24428),
  Avengers: Endgame (299534), Interstellar (157336), The Fellowship of the Ring (120), The Return of
  the King (122), Toy Story (862), Your Name. (372058, ``ja``), My Neighbor Totoro (8392, ``ja``),
  Iron Man (1726).
* 15 TV series, real TMDB ids: Breaking Bad (1396; Bryan Cranston 17419 as "Walter White"),
  Naruto (46260; anime: genre 16, ``origin_country ["JP"]``, ``original_language "ja"``), The Office
  (2316), Game of Thrones (1399), Avatar: The Last Airbender (246), Stranger Things (66732), Friends
  (1668), The Simpsons (456), Attack on Titan (1429), Death Note (13916), One Piece (37854), Rick
  and Morty (60625), Sherlock (19885), The Mandalorian (82856), Fullmetal Alchemist: Brotherhood
  (31911).
* ~210 people: real TMDB ids where certain, ``91000xx`` sandbox ids otherwise.
* Synthetic filler for sync tests: ``POST /_sandbox/tmdb {"synthetic_movies": N, "synthetic_tv": M}``
  appends N movies (ids ``9000001``...) and M series (ids ``9500001``...) below the real titles in
  the popular and discover lists (``/movie/{id}`` and ``/tv/{id}`` answer for them too), so
  a sync can page through many pages. TMDB's limit of 500 pages applies.

Wire details: ``api_key`` query parameter or ``Authorization: Bearer <read access token>``
(401 ``status_code`` 7 otherwise); 20 results a page with ``page``, ``total_pages``,
``total_results``; errors ``{"success": false, "status_code", "status_message"}`` (404 -> 34,
429 -> 25 with ``Retry-After`` through a fault).

Routes: ``/configuration``, ``/genre/{movie|tv}/list``, ``/movie/popular``, ``/tv/popular``,
``/trending/{all|movie|tv|person}/{day|week}``, ``/search/{multi|movie|tv|person}``,
``/discover/{movie|tv}``, ``/movie/{id}`` (``append_to_response=credits``), ``/movie/{id}/credits``,
``/tv/{id}``, ``/tv/{id}/credits``, ``/tv/{id}/aggregate_credits``, ``/person/{id}``,
``/person/{id}/combined_credits``, ``/person/{id}/movie_credits``, ``/person/{id}/tv_credits``.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from .core import JSON, SandboxState, bearer_token, register_error_renderer

DATA_FILE = Path(__file__).parent / "data" / "tmdb.json"
PAGE_SIZE = 20
MAX_PAGE = 500
SYNTHETIC_MOVIE_BASE = 9_000_000
SYNTHETIC_TV_BASE = 9_500_000
TMDB_ERRORS = {
    401: (7, "Invalid API key: You must be granted a valid key."),
    404: (34, "The resource you requested could not be found."),
    429: (25, "Your request count (#) is over the allowed limit of (40)."),
    500: (11, "Internal error: Something went wrong, contact TMDB."),
    503: (9, "Service offline: This service is temporarily offline, try again later."),
    504: (24, "Your request to the backend server timed out. Try again."),
}
MOVIE_LIST_FIELDS = (
    "adult",
    "backdrop_path",
    "genre_ids",
    "id",
    "original_language",
    "original_title",
    "overview",
    "popularity",
    "poster_path",
    "release_date",
    "title",
    "video",
    "vote_average",
    "vote_count",
)
# As TMDB's OpenAPI document shows them (tests/sandbox/test_contract_tmdb.py): no `adult` on series.
TV_LIST_FIELDS = (
    "backdrop_path",
    "genre_ids",
    "id",
    "origin_country",
    "original_language",
    "original_name",
    "overview",
    "popularity",
    "poster_path",
    "first_air_date",
    "name",
    "vote_average",
    "vote_count",
)
LANGUAGES = {"en": "English", "ja": "Japanese"}


@register_error_renderer("tmdb")
def render_error(status: int, message: str | None = None, error_type: str | None = None, **_: Any) -> Response:
    code, text = TMDB_ERRORS.get(status, (11, "Internal error: Something went wrong, contact TMDB."))
    return JSON({"success": False, "status_code": code, "status_message": message or text}, status_code=status)


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


class Dataset:
    def __init__(self, data: dict[str, Any]):
        self.genres = data["genres"]
        self.genre_names = {
            "movie": {g["id"]: g["name"] for g in self.genres["movie"]},
            "tv": {g["id"]: g["name"] for g in self.genres["tv"]},
        }
        self.titles = {(t["media_type"], t["id"]): t for t in data["titles"]}
        self.people = {p["id"]: p for p in data["people"]}
        self.credits: dict[int, list[tuple[dict, dict, str]]] = {}  # person -> [(title, credit, "cast"|"crew")]
        for t in data["titles"]:
            for c in t["cast"]:
                self.credits.setdefault(c["id"], []).append((t, c, "cast"))
            for c in t["crew"]:
                self.credits.setdefault(c["id"], []).append((t, c, "crew"))
        for pid, p in self.people.items():
            pops = sorted((t["popularity"] for t, _, _ in self.credits.get(pid, [])), reverse=True)
            p["popularity"] = round(sum(pops[:3]) * 0.1, 3)

    def movies(self) -> list[dict]:
        return [t for (kind, _), t in self.titles.items() if kind == "movie"]

    def shows(self) -> list[dict]:
        return [t for (kind, _), t in self.titles.items() if kind == "tv"]


@lru_cache(maxsize=1)
def dataset() -> Dataset:
    return Dataset(json.loads(DATA_FILE.read_text(encoding="utf-8")))


def _synthetic(kind: str, n: int) -> dict[str, Any]:
    pop = round(30.0 * (0.9995**n), 3)
    if kind == "movie":
        tid = SYNTHETIC_MOVIE_BASE + n
        return {
            "media_type": "movie",
            "id": tid,
            "title": f"Sandbox Movie {n:05d}",
            "original_title": f"Sandbox Movie {n:05d}",
            "original_language": "en",
            "release_date": f"{2000 + n % 25}-{1 + n % 12:02d}-{1 + n % 28:02d}",
            "genre_ids": [18],
            "popularity": pop,
            "vote_average": round(5 + (n % 40) / 10, 1),
            "vote_count": 100 + n % 900,
            "runtime": 90 + n % 60,
            "overview": f"Synthetic sandbox movie number {n}.",
            "poster_path": None,
            "backdrop_path": None,
            "adult": False,
            "video": False,
            "origin_country": ["US"],
            "belongs_to_collection": None,
            "cast": [],
            "crew": [],
        }
    tid = SYNTHETIC_TV_BASE + n
    return {
        "media_type": "tv",
        "id": tid,
        "name": f"Sandbox Series {n:05d}",
        "original_name": f"Sandbox Series {n:05d}",
        "original_language": "en",
        "first_air_date": f"{2000 + n % 25}-{1 + n % 12:02d}-{1 + n % 28:02d}",
        "genre_ids": [18],
        "popularity": pop,
        "vote_average": round(5 + (n % 40) / 10, 1),
        "vote_count": 50 + n % 500,
        "origin_country": ["US"],
        "number_of_seasons": 1 + n % 5,
        "number_of_episodes": 10 * (1 + n % 5),
        "overview": f"Synthetic sandbox series number {n}.",
        "poster_path": None,
        "backdrop_path": None,
        "adult": False,
        "cast": [],
        "crew": [],
    }


def list_item(t: dict[str, Any], with_media_type: bool = False) -> dict[str, Any]:
    fields = MOVIE_LIST_FIELDS if t["media_type"] == "movie" else TV_LIST_FIELDS
    out = {k: t.get(k) for k in fields}
    if with_media_type:
        out = {"media_type": t["media_type"], **out}
    return out


def person_item(p: dict[str, Any], with_media_type: bool = False) -> dict[str, Any]:
    ds = dataset()
    known = sorted({id(t): t for t, _, _ in ds.credits.get(p["id"], [])}.values(), key=lambda t: -t["popularity"])[:3]
    out = {
        "adult": False,
        "gender": p["gender"],
        "id": p["id"],
        "known_for_department": p["known_for_department"],
        "name": p["name"],
        "original_name": p["original_name"],
        "popularity": p["popularity"],
        "profile_path": p["profile_path"],
        "known_for": [list_item(t, True) for t in known],
    }
    if with_media_type:
        out = {"media_type": "person", **out}
    return out


def _person_fields(pid: int) -> dict[str, Any]:
    p = dataset().people[pid]
    return {
        "adult": False,
        "gender": p["gender"],
        "id": pid,
        "known_for_department": p["known_for_department"],
        "name": p["name"],
        "original_name": p["original_name"],
        "popularity": p["popularity"],
        "profile_path": p["profile_path"],
    }


def _page(items: list[Any], page: int) -> dict[str, Any]:
    total = len(items)
    pages = max(1, math.ceil(total / PAGE_SIZE)) if total else 1
    start = (page - 1) * PAGE_SIZE
    return {
        "page": page,
        "results": items[start : start + PAGE_SIZE],
        "total_pages": min(pages, MAX_PAGE),
        "total_results": total,
    }


class TmdbError(Exception):
    def __init__(self, status: int, code: int | None = None, message: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _page_param(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    try:
        page = int(raw)
    except ValueError:
        page = -1
    if not 1 <= page <= MAX_PAGE:
        raise TmdbError(400, 22, "Invalid page: Pages start at 1 and max at 500. They are expected to be an integer.")
    return page


def _matches(query: str, *names: str | None) -> bool:
    q = _fold(query).split()
    if not q:
        return False
    for name in names:
        if not name:
            continue
        folded = _fold(name)
        words = [w.strip(".,:;!?'\"()") for w in folded.split()]
        if _fold(query).strip() in folded or all(any(w.startswith(x.strip(".,:;!?'\"()")) for w in words) for x in q):
            return True
    return False


def _day_score(t: dict[str, Any]) -> float:
    h = int(hashlib.md5(f"{t.get('media_type', 'person')}-{t['id']}".encode()).hexdigest()[:8], 16)
    return t["popularity"] * (0.5 + (h % 1000) / 1000)


def build(state: SandboxState) -> Router:
    state.on_reset(lambda s: s.stores.__setitem__("tmdb", {"synthetic_movies": 0, "synthetic_tv": 0}))

    def all_of(kind: str) -> list[dict]:
        ds = dataset()
        real = sorted(ds.movies() if kind == "movie" else ds.shows(), key=lambda t: -t["popularity"])
        n = state.stores["tmdb"]["synthetic_movies" if kind == "movie" else "synthetic_tv"]
        return real + [_synthetic(kind, i) for i in range(1, n + 1)]

    def find(kind: str, tid: int) -> dict:
        ds = dataset()
        t = ds.titles.get((kind, tid))
        base = SYNTHETIC_MOVIE_BASE if kind == "movie" else SYNTHETIC_TV_BASE
        n = state.stores["tmdb"]["synthetic_movies" if kind == "movie" else "synthetic_tv"]
        if t is None and base < tid <= base + n:
            t = _synthetic(kind, tid - base)
        if t is None:
            raise TmdbError(404)
        return t

    def endpoint(fn: Callable) -> Callable:
        async def wrapped(request: Request) -> Response:
            if not request.query_params.get("api_key") and bearer_token(request) is None:
                return render_error(401)
            try:
                return JSON(await fn(request), headers={"x-sandbox-provider": "tmdb"})
            except TmdbError as e:
                resp = render_error(e.status, e.message)
                if e.code is not None:
                    resp = JSON(
                        {
                            "success": False,
                            "status_code": e.code,
                            "status_message": e.message or TMDB_ERRORS.get(e.status, (0, ""))[1],
                        },
                        status_code=e.status,
                    )
                return resp

        return wrapped

    def _id(request: Request) -> int:
        try:
            return int(request.path_params["id"].split("-")[0])
        except ValueError:
            raise TmdbError(404) from None

    async def configuration(request: Request) -> Any:
        return {
            "change_keys": [
                "adult",
                "air_date",
                "also_known_as",
                "biography",
                "birthday",
                "cast",
                "crew",
                "genres",
                "images",
                "name",
                "overview",
                "poster_path",
                "release_dates",
                "title",
            ],
            "images": {
                "base_url": "http://image.tmdb.org/t/p/",
                "secure_base_url": "https://image.tmdb.org/t/p/",
                "backdrop_sizes": ["w300", "w780", "w1280", "original"],
                "logo_sizes": ["w45", "w92", "w154", "w185", "w300", "w500", "original"],
                "poster_sizes": ["w92", "w154", "w185", "w342", "w500", "w780", "original"],
                "profile_sizes": ["w45", "w185", "h632", "original"],
                "still_sizes": ["w92", "w185", "w300", "original"],
            },
        }

    async def genres(request: Request) -> Any:
        kind = request.path_params["kind"]
        if kind not in ("movie", "tv"):
            raise TmdbError(404)
        return {"genres": dataset().genres[kind]}

    async def popular(request: Request) -> Any:
        kind = "movie" if request.url.path.endswith("/movie/popular") else "tv"
        page = _page_param(request)
        ds = dataset()
        real = sorted(ds.movies() if kind == "movie" else ds.shows(), key=lambda t: -t["popularity"])
        n = state.stores["tmdb"]["synthetic_movies" if kind == "movie" else "synthetic_tv"]
        total = len(real) + n
        start = (page - 1) * PAGE_SIZE
        items = [
            real[i] if i < len(real) else _synthetic(kind, i - len(real) + 1)
            for i in range(start, min(start + PAGE_SIZE, total))
        ]
        return {
            "page": page,
            "results": [list_item(t) for t in items],
            "total_pages": min(max(1, math.ceil(total / PAGE_SIZE)), MAX_PAGE),
            "total_results": total,
        }

    async def trending(request: Request) -> Any:
        kind, window = request.path_params["kind"], request.path_params["window"]
        if kind not in ("all", "movie", "tv", "person") or window not in ("day", "week"):
            raise TmdbError(404)
        page = _page_param(request)
        items: list[tuple[float, dict]] = []
        if kind in ("all", "movie"):
            items += [(t["popularity"], list_item(t, True)) for t in dataset().movies()]
        if kind in ("all", "tv"):
            items += [(t["popularity"], list_item(t, True)) for t in dataset().shows()]
        if kind in ("all", "person"):
            items += [(p["popularity"], person_item(p, True)) for p in dataset().people.values()]
        if window == "day":
            items.sort(key=lambda x: -_day_score(x[1]))
        else:
            items.sort(key=lambda x: -x[0])
        return _page([i for _, i in items], page)

    async def search(request: Request) -> Any:
        kind = request.path_params["kind"]
        if kind not in ("multi", "movie", "tv", "person"):
            raise TmdbError(404)
        page = _page_param(request)
        q = request.query_params.get("query", "")
        ds = dataset()
        year = request.query_params.get("year") or request.query_params.get("primary_release_year")
        tv_year = request.query_params.get("first_air_date_year")
        results: list[tuple[float, dict]] = []
        if kind in ("multi", "movie"):
            for t in ds.movies():
                if _matches(q, t["title"], t["original_title"]) and (not year or t["release_date"].startswith(year)):
                    results.append((t["popularity"], list_item(t, kind == "multi")))
        if kind in ("multi", "tv"):
            for t in ds.shows():
                if _matches(q, t["name"], t["original_name"]) and (
                    not tv_year or t["first_air_date"].startswith(tv_year)
                ):
                    results.append((t["popularity"], list_item(t, kind == "multi")))
        if kind in ("multi", "person"):
            for p in ds.people.values():
                if _matches(q, p["name"], p["original_name"]):
                    results.append((p["popularity"], person_item(p, kind == "multi")))
        results.sort(key=lambda x: -x[0])
        return _page([r for _, r in results], page)

    async def discover(request: Request) -> Any:
        kind = request.path_params["kind"]
        if kind not in ("movie", "tv"):
            raise TmdbError(404)
        page = _page_param(request)
        q = request.query_params
        items = all_of(kind)
        if q.get("with_genres"):
            raw = q["with_genres"]
            if "|" in raw:
                wanted = {int(g) for g in raw.split("|") if g.strip().isdigit()}
                items = [t for t in items if wanted & set(t["genre_ids"])]
            else:
                wanted = {int(g) for g in raw.split(",") if g.strip().isdigit()}
                items = [t for t in items if wanted <= set(t["genre_ids"])]
        if q.get("with_original_language"):
            items = [t for t in items if t["original_language"] in q["with_original_language"].split("|")]
        if q.get("with_origin_country"):
            items = [t for t in items if set(q["with_origin_country"].split("|")) & set(t.get("origin_country", []))]
        sort = q.get("sort_by", "popularity.desc")
        field, _, order = sort.partition(".")
        field = {"primary_release_date": "release_date"}.get(field, field)
        if field in ("popularity", "vote_average", "vote_count", "release_date", "first_air_date", "title", "name"):
            items = sorted(items, key=lambda t: (t.get(field) is None, t.get(field) or 0), reverse=order != "asc")
        return _page([list_item(t) for t in items], page)

    def movie_credits_of(t: dict) -> dict:
        cast = [
            {
                **_person_fields(c["id"]),
                "cast_id": c["cast_id"],
                "character": c["character"],
                "credit_id": c["credit_id"],
                "order": c["order"],
            }
            for c in t["cast"]
        ]
        crew = [
            {**_person_fields(c["id"]), "credit_id": c["credit_id"], "department": c["department"], "job": c["job"]}
            for c in t["crew"]
        ]
        return {"id": t["id"], "cast": cast, "crew": crew}

    def tv_credits_of(t: dict) -> dict:
        cast = [
            {**_person_fields(c["id"]), "character": c["character"], "credit_id": c["credit_id"], "order": c["order"]}
            for c in t["cast"]
        ]
        crew = [
            {**_person_fields(c["id"]), "credit_id": c["credit_id"], "department": c["department"], "job": c["job"]}
            for c in t["crew"]
        ]
        return {"id": t["id"], "cast": cast, "crew": crew}

    def genres_of(t: dict) -> list[dict]:
        names = dataset().genre_names[t["media_type"]]
        return [{"id": g, "name": names.get(g, "")} for g in t["genre_ids"]]

    def spoken(t: dict) -> list[dict]:
        lang = t["original_language"]
        return [
            {
                "english_name": LANGUAGES.get(lang, lang),
                "iso_639_1": lang,
                "name": {"ja": "日本語"}.get(lang, LANGUAGES.get(lang, lang)),
            }
        ]

    def appended(request: Request, t: dict, out: dict, credits_fn: Callable[[dict], dict]) -> dict:
        for extra in (request.query_params.get("append_to_response") or "").split(","):
            extra = extra.strip()
            if extra == "credits":
                c = credits_fn(t)
                out["credits"] = {"cast": c["cast"], "crew": c["crew"]}
            elif extra == "aggregate_credits" and t["media_type"] == "tv":
                c = aggregate_of(t)
                out["aggregate_credits"] = {"cast": c["cast"], "crew": c["crew"]}
        return out

    async def movie(request: Request) -> Any:
        t = find("movie", _id(request))
        out = list_item(t)
        out.pop("genre_ids")
        out.update(
            belongs_to_collection=t.get("belongs_to_collection"),
            budget=0,
            genres=genres_of(t),
            homepage="",
            imdb_id=None,
            production_companies=[],
            production_countries=[],
            revenue=0,
            runtime=t.get("runtime"),
            spoken_languages=spoken(t),
            status="Released",
            tagline="",
        )
        return appended(request, t, out, movie_credits_of)

    async def movie_credits(request: Request) -> Any:
        return movie_credits_of(find("movie", _id(request)))

    async def tv(request: Request) -> Any:
        t = find("tv", _id(request))
        out = list_item(t)
        out.pop("genre_ids")
        seasons_n, episodes_n = t["number_of_seasons"], t["number_of_episodes"]
        per, extra = divmod(episodes_n, seasons_n)
        seasons = [
            {
                "air_date": None,
                "episode_count": per + (1 if i <= extra else 0),
                "id": t["id"] * 100 + i,
                "name": f"Season {i}",
                "overview": "",
                "poster_path": None,
                "season_number": i,
                "vote_average": 0.0,
            }
            for i in range(1, seasons_n + 1)
        ]
        ds = dataset()
        out.update(
            created_by=[
                {
                    "id": c["id"],
                    "credit_id": c["credit_id"],
                    "name": ds.people[c["id"]]["name"],
                    "gender": ds.people[c["id"]]["gender"],
                    "profile_path": ds.people[c["id"]]["profile_path"],
                }
                for c in t["crew"]
                if c["job"] == "Creator"
            ],
            episode_run_time=[],
            genres=genres_of(t),
            homepage="",
            in_production=False,
            languages=[t["original_language"]],
            last_air_date=None,
            last_episode_to_air=None,
            next_episode_to_air=None,
            networks=[],
            number_of_episodes=episodes_n,
            number_of_seasons=seasons_n,
            production_companies=[],
            production_countries=[],
            seasons=seasons,
            spoken_languages=spoken(t),
            status="Ended",
            tagline="",
            type="Scripted",
        )
        return appended(request, t, out, tv_credits_of)

    async def tv_credits(request: Request) -> Any:
        return tv_credits_of(find("tv", _id(request)))

    def aggregate_of(t: dict) -> dict:
        by_person: dict[int, dict] = {}
        for c in t["cast"]:
            entry = by_person.setdefault(
                c["id"], {**_person_fields(c["id"]), "roles": [], "total_episode_count": 0, "order": c["order"]}
            )
            entry["roles"].append(
                {"credit_id": c["credit_id"], "character": c["character"], "episode_count": c["episode_count"]}
            )
            entry["total_episode_count"] += c["episode_count"]
        crew = [
            {
                **_person_fields(c["id"]),
                "jobs": [{"credit_id": c["credit_id"], "job": c["job"], "episode_count": t["number_of_episodes"]}],
                "department": c["department"],
                "total_episode_count": t["number_of_episodes"],
            }
            for c in t["crew"]
        ]
        return {"id": t["id"], "cast": list(by_person.values()), "crew": crew}

    async def tv_aggregate(request: Request) -> Any:
        return aggregate_of(find("tv", _id(request)))

    def person_of(request: Request) -> dict:
        p = dataset().people.get(_id(request))
        if p is None:
            raise TmdbError(404)
        return p

    async def person(request: Request) -> Any:
        p = person_of(request)
        ds = dataset()
        credits = sorted(ds.credits.get(p["id"], []), key=lambda x: -x[0]["popularity"])
        parts = []
        for t, c, side in credits[:3]:
            title = t.get("title") or t.get("name")
            parts.append(f"{c['character']} in {title}" if side == "cast" else f"{c['job'].lower()} of {title}")
        bio = f"{p['name']} is known for " + ", ".join(parts) + ". (Sandbox biography.)"
        return {
            "adult": False,
            "also_known_as": [p["original_name"]] if p["original_name"] != p["name"] else [],
            "biography": bio,
            "birthday": None,
            "deathday": None,
            "gender": p["gender"],
            "homepage": None,
            "id": p["id"],
            "imdb_id": None,
            "known_for_department": p["known_for_department"],
            "name": p["name"],
            "place_of_birth": None,
            "popularity": p["popularity"],
            "profile_path": p["profile_path"],
        }

    def person_credits(p: dict, only: str | None = None) -> dict:
        cast, crew = [], []
        for t, c, side in dataset().credits.get(p["id"], []):
            if only and t["media_type"] != only:
                continue
            item = list_item(t, with_media_type=only is None)
            if side == "cast":
                item.update(character=c["character"], credit_id=c["credit_id"])
                if t["media_type"] == "movie":
                    item["order"] = c["order"]
                else:
                    item.update(episode_count=c["episode_count"], first_credit_air_date=t.get("first_air_date"))
                cast.append(item)
            else:
                item.update(credit_id=c["credit_id"], department=c["department"], job=c["job"])
                if t["media_type"] == "tv":
                    item["episode_count"] = t["number_of_episodes"]
                crew.append(item)
        return {"cast": cast, "crew": crew, "id": p["id"]}

    async def combined_credits(request: Request) -> Any:
        return person_credits(person_of(request))

    async def movie_credits_p(request: Request) -> Any:
        return person_credits(person_of(request), "movie")

    async def tv_credits_p(request: Request) -> Any:
        return person_credits(person_of(request), "tv")

    E = endpoint
    router = Router(
        routes=[
            Route("/configuration", E(configuration), methods=["GET"]),
            Route("/genre/{kind}/list", E(genres), methods=["GET"]),
            Route("/movie/popular", E(popular), methods=["GET"]),
            Route("/tv/popular", E(popular), methods=["GET"]),
            Route("/trending/{kind}/{window}", E(trending), methods=["GET"]),
            Route("/search/{kind}", E(search), methods=["GET"]),
            Route("/discover/{kind}", E(discover), methods=["GET"]),
            Route("/movie/{id}", E(movie), methods=["GET"]),
            Route("/movie/{id}/credits", E(movie_credits), methods=["GET"]),
            Route("/tv/{id}", E(tv), methods=["GET"]),
            Route("/tv/{id}/credits", E(tv_credits), methods=["GET"]),
            Route("/tv/{id}/aggregate_credits", E(tv_aggregate), methods=["GET"]),
            Route("/person/{id}", E(person), methods=["GET"]),
            Route("/person/{id}/combined_credits", E(combined_credits), methods=["GET"]),
            Route("/person/{id}/movie_credits", E(movie_credits_p), methods=["GET"]),
            Route("/person/{id}/tv_credits", E(tv_credits_p), methods=["GET"]),
        ]
    )
    return router


def control_routes(state: SandboxState) -> list[Route]:
    async def configure(request: Request) -> Response:
        raw = await request.body()
        spec = json.loads(raw) if raw else {}
        cfg = state.stores["tmdb"]
        for key in ("synthetic_movies", "synthetic_tv"):
            if key in spec:
                n = int(spec[key])
                if not 0 <= n <= 100_000:
                    return JSON({"error": f"{key} must be between 0 and 100000"}, status_code=400)
                cfg[key] = n
        return JSON(cfg)

    return [Route("/_sandbox/tmdb", configure, methods=["POST", "GET"])]
