"""Wikipedia REST page summary (``GET /wikipedia/api/rest_v1/page/summary/{title}``).

The real shape: ``type`` ("standard" / "disambiguation"), ``title``, ``displaytitle``,
``namespace``, ``wikibase_item``, ``titles``, ``pageid``, ``lang``, ``dir``, ``revision``, ``tid``,
``timestamp``, ``description``, ``description_source``, ``content_urls`` (desktop and mobile
``page``/``revisions``/``edit``/``talk``), ``extract``, ``extract_html``; content type
``application/json; charset=utf-8; profile="https://www.mediawiki.org/wiki/Specs/Summary/1.4.2"``.

Titles: every TMDB sandbox title (extract built from the dataset) and a few characters (Batman,
Joker (character), Harry Potter (character), Luke Skywalker, Darth Vader, Naruto Uzumaki, Walter
White (Breaking Bad), Sherlock Holmes, ...). Spaces or underscores, first letter in any case.
Redirect titles answer ``302`` with a relative ``Location`` as the real API does (``Bruce_Wayne`` ->
``Batman``; httpx does not follow redirects unless told to); ``?redirect=false`` returns the
summary of the redirect target directly. Unknown titles: 404 with the HyperSwitch problem JSON
``{"type": "https://mediawiki.org/wiki/HyperSwitch/errors/not_found", "title": "Not found.",
"method": "get", "detail": "Page or revision not found.", "uri": ...}``.
"""

from __future__ import annotations

import hashlib
import html
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from . import tmdb_api
from .core import JSON, SandboxState, register_error_renderer

PROFILE = 'application/json; charset=utf-8; profile="https://www.mediawiki.org/wiki/Specs/Summary/1.4.2"'

CHARACTERS = [
    (
        "Batman",
        "Fictional superhero from DC Comics",
        "Batman is a superhero who appears in American comic books published by DC Comics. His secret identity is "
        "Bruce Wayne, a wealthy industrialist who fights crime in Gotham City after witnessing his parents' murder.",
    ),
    (
        "Joker (character)",
        "Fictional supervillain from DC Comics",
        "The Joker is a supervillain who appears in American comic books published by DC Comics. A criminal "
        "mastermind with a clown-like appearance, he is the archenemy of Batman.",
    ),
    (
        "Harry Potter (character)",
        "Fictional character created by J. K. Rowling",
        "Harry Potter is the title character of J. K. Rowling's Harry Potter novels: an orphaned wizard who attends "
        "Hogwarts School of Witchcraft and Wizardry and confronts the dark wizard Lord Voldemort.",
    ),
    (
        "Hermione Granger",
        "Fictional character in the Harry Potter series",
        "Hermione Granger is one of the three main characters of the Harry Potter series, a brilliant and "
        "rule-abiding witch who is Harry's and Ron's closest friend.",
    ),
    (
        "Luke Skywalker",
        "Fictional character in Star Wars",
        "Luke Skywalker is a character in the Star Wars franchise: a farm boy from Tatooine who becomes a Jedi Knight "
        "and helps the Rebel Alliance defeat the Galactic Empire.",
    ),
    (
        "Darth Vader",
        "Fictional character in Star Wars",
        "Darth Vader is the main antagonist of the original Star Wars trilogy, a Sith Lord and enforcer of the "
        "Galactic Empire who was once the Jedi Anakin Skywalker.",
    ),
    (
        "Naruto Uzumaki",
        "Fictional character in Naruto",
        "Naruto Uzumaki is the title character of Masashi Kishimoto's manga Naruto: a mischievous ninja of the "
        "Hidden Leaf Village who carries the Nine-Tailed Fox and dreams of becoming Hokage.",
    ),
    (
        "Walter White (Breaking Bad)",
        "Fictional character in Breaking Bad",
        "Walter White is the protagonist of Breaking Bad: a high-school chemistry teacher who becomes a "
        "methamphetamine manufacturer under the alias Heisenberg.",
    ),
    (
        "Jesse Pinkman",
        "Fictional character in Breaking Bad",
        "Jesse Pinkman is a main character of Breaking Bad, a former student of Walter White who becomes his "
        "partner in the methamphetamine trade.",
    ),
    (
        "Sherlock Holmes",
        "Fictional detective created by Arthur Conan Doyle",
        "Sherlock Holmes is a fictional detective created by Arthur Conan Doyle, known for his powers of "
        "observation and deduction, and his friendship with Dr. John Watson.",
    ),
    (
        "Daenerys Targaryen",
        "Fictional character in A Song of Ice and Fire",
        "Daenerys Targaryen is a character in A Song of Ice and Fire and its television adaptation Game of Thrones, "
        "the exiled heir of the Targaryen dynasty and the Mother of Dragons.",
    ),
    (
        "Tyrion Lannister",
        "Fictional character in A Song of Ice and Fire",
        "Tyrion Lannister is a character in A Song of Ice and Fire and Game of Thrones, the sharp-witted youngest "
        "child of Tywin Lannister.",
    ),
    (
        "Michael Scott (The Office)",
        "Fictional character in The Office",
        "Michael Scott is the regional manager of the Dunder Mifflin Scranton branch in the American sitcom The "
        "Office, played by Steve Carell.",
    ),
    (
        "Eleven (Stranger Things)",
        "Fictional character in Stranger Things",
        "Eleven is a main character of Stranger Things, a girl with psychokinetic abilities who escapes from the "
        "Hawkins National Laboratory.",
    ),
    (
        "Gandalf",
        "Fictional character in The Lord of the Rings",
        "Gandalf is a wizard in J. R. R. Tolkien's The Hobbit and The Lord of the Rings who guides Frodo and the "
        "Fellowship of the Ring.",
    ),
    (
        "Frodo Baggins",
        "Fictional character in The Lord of the Rings",
        "Frodo Baggins is the hobbit protagonist of The Lord of the Rings who carries the One Ring to Mount Doom.",
    ),
    (
        "Aang",
        "Fictional character in Avatar: The Last Airbender",
        "Aang is the protagonist of Avatar: The Last Airbender, the last surviving Airbender and the Avatar, who "
        "must master the four elements to end the Hundred Year War.",
    ),
    (
        "Monkey D. Luffy",
        "Fictional character in One Piece",
        "Monkey D. Luffy is the protagonist of Eiichiro Oda's One Piece, a rubber-bodied pirate captain who wants "
        "to become King of the Pirates.",
    ),
    (
        "Light Yagami",
        "Fictional character in Death Note",
        "Light Yagami is the protagonist of Death Note, a student who uses a supernatural notebook to kill "
        "criminals under the name Kira.",
    ),
    (
        "Homer Simpson",
        "Fictional character in The Simpsons",
        "Homer Simpson is the father of the Simpson family in the animated sitcom The Simpsons, voiced by Dan "
        "Castellaneta.",
    ),
    (
        "Rick Sanchez",
        "Fictional character in Rick and Morty",
        "Rick Sanchez is one of the title characters of Rick and Morty, an eccentric and alcoholic mad scientist.",
    ),
    (
        "Tony Stark (Marvel Cinematic Universe)",
        "Fictional character in the Marvel Cinematic Universe",
        "Tony Stark is a billionaire industrialist and inventor in the Marvel Cinematic Universe who becomes Iron "
        "Man and a founding member of the Avengers.",
    ),
    (
        "Forrest Gump (character)",
        "Fictional character",
        "Forrest Gump is the title character of Winston Groom's novel and the 1994 film, a slow-witted but "
        "kind-hearted man from Alabama.",
    ),
]
REDIRECTS = {
    "Bruce Wayne": "Batman",
    "The Joker": "Joker (character)",
    "Anakin Skywalker": "Darth Vader",
    "Heisenberg (Breaking Bad)": "Walter White (Breaking Bad)",
    "Iron Man (MCU)": "Tony Stark (Marvel Cinematic Universe)",
}
DISAMBIGUATION = {
    "Avatar": "Avatar may refer to: Avatar (2009 film), Avatar: The Last Airbender (2005 television series), or "
    "an avatar in computing, a graphical representation of a user.",
    "Sherlock": "Sherlock may refer to: Sherlock Holmes, the fictional detective, or Sherlock (TV series), a "
    "British crime drama.",
}


def _normalize(title: str) -> str:
    t = " ".join(title.replace("_", " ").split())
    return t[:1].upper() + t[1:]


@lru_cache(maxsize=1)
def pages() -> dict[str, dict[str, Any]]:
    ds = tmdb_api.dataset()
    out: dict[str, dict[str, Any]] = {}
    for t in ds.titles.values():
        if t["media_type"] == "movie":
            year = t["release_date"][:4]
            directors = [ds.people[c["id"]]["name"] for c in t["crew"] if c["job"] == "Director"]
            by = " and ".join(directors) or "unknown"
            nat = "Japanese animated" if t["original_language"] == "ja" else "American"
            title = t["title"]
            desc = f"{year} film by {by}"
            extract = f"{title} is a {year} {nat} film directed by {by}. {t['overview']}"
        else:
            year = t["first_air_date"][:4]
            anime = t["original_language"] == "ja"
            title = t["name"]
            country = {"GB": "British"}.get(t["origin_country"][0], "American")
            desc = "Japanese anime television series" if anime else f"{country} television series"
            extract = (
                f"{title} is a {'Japanese anime' if anime else country} television series that premiered in "
                f"{year}. {t['overview']}"
            )
        out[title] = {"title": title, "description": desc, "extract": extract, "type": "standard"}
    for title, desc, extract in CHARACTERS:
        out[title] = {"title": title, "description": desc, "extract": extract, "type": "standard"}
    for title, extract in DISAMBIGUATION.items():
        out[title] = {
            "title": title,
            "description": "Topics referred to by the same term",
            "extract": extract,
            "type": "disambiguation",
        }
    return out


def summary(page: dict[str, Any]) -> dict[str, Any]:
    title = page["title"]
    canonical = title.replace(" ", "_")
    h = int(hashlib.sha256(title.encode()).hexdigest(), 16)
    enc = quote(canonical, safe="()_,!'")
    desktop, mobile = "https://en.wikipedia.org/wiki/", "https://en.m.wikipedia.org/wiki/"
    return {
        "type": page["type"],
        "title": canonical,
        "displaytitle": f'<span class="mw-page-title-main">{html.escape(title)}</span>',
        "namespace": {"id": 0, "text": ""},
        "wikibase_item": f"Q{h % 9_000_000 + 1000}",
        "titles": {
            "canonical": canonical,
            "normalized": title,
            "display": f'<span class="mw-page-title-main">{html.escape(title)}</span>',
        },
        "pageid": h % 70_000_000 + 1000,
        "lang": "en",
        "dir": "ltr",
        "revision": str(h % 900_000_000 + 1_000_000_000),
        "tid": f"{h % 2**32:08x}-0000-11f0-8000-{h % 2**48:012x}",
        "timestamp": "2025-06-01T12:00:00Z",
        "description": page["description"],
        "description_source": "local",
        "content_urls": {
            "desktop": {
                "page": desktop + enc,
                "revisions": desktop + enc + "?action=history",
                "edit": desktop + enc + "?action=edit",
                "talk": desktop + "Talk:" + enc,
            },
            "mobile": {
                "page": mobile + enc,
                "revisions": mobile + "Special:History/" + enc,
                "edit": mobile + enc + "?action=edit",
                "talk": mobile + "Talk:" + enc,
            },
        },
        "extract": page["extract"],
        "extract_html": f"<p>{html.escape(page['extract'])}</p>",
    }


def _not_found(uri: str) -> Response:
    return JSON(
        {
            "type": "https://mediawiki.org/wiki/HyperSwitch/errors/not_found",
            "title": "Not found.",
            "method": "get",
            "detail": "Page or revision not found.",
            "uri": uri,
        },
        status_code=404,
        media_type="application/problem+json",
    )


@register_error_renderer("wikipedia")
def render_error(status: int, message: str | None = None, error_type: str | None = None, **_: Any) -> Response:
    kind = {404: "not_found", 429: "request_rate_exceeded"}.get(status, "internal_http_error")
    return JSON(
        {
            "type": f"https://mediawiki.org/wiki/HyperSwitch/errors/{kind}",
            "title": message or kind,
            "method": "get",
            "detail": message or kind,
        },
        status_code=status,
        media_type="application/problem+json",
    )


def build(state: SandboxState) -> Router:
    async def page_summary(request: Request) -> Response:
        raw = request.path_params["title"]
        title = _normalize(raw)
        uri = f"/en.wikipedia.org/v1/page/summary/{quote(raw)}"
        if title in REDIRECTS:
            target = REDIRECTS[title]
            if request.query_params.get("redirect") == "false":
                return JSON(summary(pages()[target]), media_type=PROFILE)
            return Response(
                status_code=302,
                headers={"location": quote(target.replace(" ", "_"), safe="()_,!'"), "content-type": PROFILE},
            )
        page = pages().get(title)
        if page is None:
            return _not_found(uri)
        return JSON(summary(page), media_type=PROFILE, headers={"cache-control": "s-maxage=1209600, max-age=300"})

    return Router(routes=[Route("/page/summary/{title:path}", page_summary, methods=["GET"])])
