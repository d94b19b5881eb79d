"""TMDB answers -> entity records (the shapes content_service/corpus produces too)."""

from __future__ import annotations

import time

from content_service.corpus.generator import split_character

ANIMATION = 16
ANIME_COUNTRIES = {"JP"}


def _year(date: str | None) -> int | None:
    if date and len(date) >= 4 and date[:4].isdigit():
        return int(date[:4])
    return None


def _genres(body: dict) -> list[str]:
    return [g["name"] for g in body.get("genres") or [] if g.get("name")]


def _genre_ids(body: dict) -> set[int]:
    ids = set(body.get("genre_ids") or [])
    ids.update(g["id"] for g in body.get("genres") or [] if "id" in g)
    return ids


def anime_or_cartoon(body: dict) -> tuple[bool, bool]:
    """(is_anime, is_cartoon): animation from Japan (or in Japanese) is anime, other animation
    is a cartoon."""
    if ANIMATION not in _genre_ids(body):
        return False, False
    countries = set(body.get("origin_country") or []) | {
        c.get("iso_3166_1") for c in body.get("production_countries") or []
    }
    anime = bool(countries & ANIME_COUNTRIES) or body.get("original_language") == "ja"
    return anime, not anime


def character_popularity(title_pop: float, order: int, person_pop: float) -> float:
    return round(title_pop * 0.6 / (1 + order) + person_pop * 0.1, 4)


def title_records(kind: str, body: dict, now: float | None = None) -> list[dict]:
    """A movie or series detail (with credits or aggregate_credits appended) -> the title,
    its characters and stubs of its people."""
    now = now or time.time()
    tid = int(body["id"])
    key = f"{kind}:{tid}"
    name = body.get("title") or body.get("name") or ""
    original = body.get("original_title") or body.get("original_name") or name
    pop = float(body.get("popularity") or 0.0)
    rec = {
        "key": key,
        "type": kind,
        "id": tid,
        "name": name,
        "original_name": original,
        "year": _year(body.get("release_date") or body.get("first_air_date")),
        "popularity": pop,
        "genres": _genres(body),
        "overview": body.get("overview") or "",
        "poster_path": body.get("poster_path"),
        "backdrop_path": body.get("backdrop_path"),
        "original_language": body.get("original_language"),
        "vote_average": body.get("vote_average"),
        "source": "tmdb",
        "fetched_at": now,
        "cast": [],
    }
    if kind == "tv":
        rec["is_anime"], rec["is_cartoon"] = anime_or_cartoon(body)
        rec["number_of_seasons"] = body.get("number_of_seasons")
        rec["number_of_episodes"] = body.get("number_of_episodes")
    else:
        rec["runtime"] = body.get("runtime")
    out = [rec]
    credits = body.get("aggregate_credits") or body.get("credits") or {}
    for c in credits.get("cast") or []:
        roles = c.get("roles") or [{"credit_id": c.get("credit_id"), "character": c.get("character")}]
        order = int(c.get("order") or 0)
        person_key = f"person:{c['id']}" if c.get("id") is not None else None
        person_pop = float(c.get("popularity") or 0.0)
        for role in roles:
            credit = (role.get("character") or "").strip()
            if not credit or not role.get("credit_id"):
                continue
            display, names = split_character(credit)
            if not names:
                continue
            ckey = f"character:{role['credit_id']}"
            rec["cast"].append(
                {
                    "person": person_key,
                    "person_name": c.get("name"),
                    "character": ckey,
                    "credit": credit,
                    "order": order,
                }
            )
            out.append(
                {
                    "key": ckey,
                    "type": "character",
                    "id": role["credit_id"],
                    "name": display,
                    "aliases": names,
                    "credit": credit,
                    "title": key,
                    "title_name": name,
                    "title_type": kind,
                    "person": person_key,
                    "actor": c.get("name"),
                    "popularity": character_popularity(pop, order, person_pop),
                    "source": "tmdb",
                    "fetched_at": now,
                }
            )
        if person_key:
            out.append(
                {
                    "key": person_key,
                    "type": "person",
                    "id": int(c["id"]),
                    "name": c.get("name") or "",
                    "popularity": person_pop,
                    "profile_path": c.get("profile_path"),
                    "known_for_department": c.get("known_for_department"),
                    "stub": True,
                    "credits": [
                        {
                            "title": key,
                            "title_name": name,
                            "year": rec["year"],
                            "character": f"character:{r['credit_id']}",
                            "credit": r.get("character"),
                        }
                        for r in roles
                        if r.get("credit_id") and r.get("character")
                    ],
                }
            )
    return out


def person_record(body: dict, credits: dict | None, now: float | None = None) -> dict:
    """/person/{id} + /person/{id}/combined_credits -> the person with a filmography."""
    now = now or time.time()
    pid = int(body["id"])
    rows = []
    for c in (credits or {}).get("cast") or []:
        kind = c.get("media_type") or ("tv" if c.get("first_air_date") else "movie")
        if kind not in ("movie", "tv") or c.get("id") is None:
            continue
        rows.append(
            {
                "title": f"{kind}:{c['id']}",
                "title_name": c.get("title") or c.get("name"),
                "year": _year(c.get("release_date") or c.get("first_air_date")),
                "character": f"character:{c['credit_id']}" if c.get("credit_id") else None,
                "credit": c.get("character"),
                "title_popularity": c.get("popularity"),
            }
        )
    return {
        "key": f"person:{pid}",
        "type": "person",
        "id": pid,
        "name": body.get("name") or "",
        "also_known_as": [a for a in body.get("also_known_as") or [] if a][:10],
        "popularity": float(body.get("popularity") or 0.0),
        "known_for_department": body.get("known_for_department"),
        "profile_path": body.get("profile_path"),
        "biography": body.get("biography") or "",
        "birthday": body.get("birthday"),
        "source": "tmdb",
        "fetched_at": now,
        "stub": False,
        "credits": rows,
    }


def merge_person(old: dict | None, new: dict) -> dict:
    """A stub from a cast list never overwrites a fetched person; credits accumulate."""
    if old is None:
        return new
    if new.get("stub") and not old.get("stub"):
        base = dict(old)  # keep what /person/{id} said
    else:
        base = {**old, **new}  # a fetched person, or a fresher stub
    seen = {(c.get("title"), c.get("character")) for c in old.get("credits") or []}
    credits = list(old.get("credits") or [])
    for c in new.get("credits") or []:
        if (c.get("title"), c.get("character")) not in seen:
            credits.append(c)
            seen.add((c.get("title"), c.get("character")))
    base["credits"] = credits
    return base
