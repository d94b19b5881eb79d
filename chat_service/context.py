"""Character context from TMDB and Wikipedia, cached in Redis, with a plain fallback.

- TMDB (v3, `TMDB_BASE_URL`): the series is looked up with /search/multi, then its credits name the
  actor who plays the character. Raw TMDB answers are cached 7 days.
- Wikipedia REST (`WIKIPEDIA_BASE_URL`): /page/summary/{title} gives a short biography.
- The built context is cached 24 hours per (character, series). When a source times out or
  fails, the character still gets a plain context (name and series) and that result is cached
  only briefly, so the next request tries the sources again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import quote

import httpx
import orjson
from redis.exceptions import RedisError

log = logging.getLogger("chat_service.context")

MAX_BIO_CHARS = 1200
# Words too common to say what a message is about (for group chat relevance).
STOPWORDS = frozenset(
    "about above after again against also because been before being below between both could "
    "does doing down during each "
    "from further have having here into just know like more most much must only other over same should some such than "
    "that their them then there these they this those through under until very want what when where which while whom "
    "will with would your yours anyone anybody someone something everyone think tell said says make made really".split()
)
MAX_OVERVIEW_CHARS = 600


@dataclass
class CharacterContext:
    character: str
    series: str | None = None
    media_type: str | None = None  # movie | tv
    title: str | None = None
    year: str | None = None
    overview: str | None = None
    actor: str | None = None
    bio: str | None = None
    sources: list[str] = field(default_factory=list)
    degraded: bool = False  # a source failed: the plain fallback (partly) stands in
    # A Community custom character (custom_characters.py): its id and the rest of its definition
    # (its description is `bio`).
    personality: str | None = None
    greeting: str | None = None
    example_dialogue: str | None = None
    character_id: str | None = None

    def keywords(self) -> set[str]:
        text = " ".join(
            filter(None, [self.character, self.series, self.title, self.overview, self.bio, self.personality])
        )
        return {w for w in re.findall(r"[a-z]{4,}", text.lower())} - STOPWORDS


def clip(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "..."


def system_prompt(ctx: CharacterContext, *, group_names: list[str] | None = None) -> str:
    parts = []
    origin = ctx.title or ctx.series
    line = f"You are {ctx.character}"
    if origin:
        line += f", the character from {origin}"
        if ctx.year:
            line += f" ({ctx.year})"
    line += "."
    parts.append(line)
    if ctx.actor:
        parts.append(f"On screen you are played by {ctx.actor}.")
    if ctx.overview:
        parts.append(f"The story: {ctx.overview}")
    if ctx.bio:
        parts.append(f"About you: {ctx.bio}")
    if ctx.personality:
        parts.append(f"Your personality: {ctx.personality}")
    if ctx.greeting:
        parts.append(f"You greet people like this: {ctx.greeting}")
    if ctx.example_dialogue:
        parts.append(f"An example of how you talk:\n{ctx.example_dialogue}")
    if group_names:
        others = [n for n in group_names if n != ctx.character]
        parts.append(
            "This is a group scene with "
            + ", ".join(others)
            + " and a fan. Lines from others are prefixed with their name "
            "in brackets. Answer only as yourself, in one short turn, without prefixing your own name; "
            "react to the others when it is natural."
        )
    parts.append(
        "Stay in character at all times: speak as this character would, with their voice, knowledge and "
        "personality. Never say you are an AI or a language model. Keep replies conversational and concise."
    )
    return "\n".join(parts)


class ContextBuilder:
    def __init__(self, settings, redis, keys):
        self.settings = settings
        self.redis = redis
        self.keys = keys
        timeout = httpx.Timeout(settings.context_timeout_seconds, connect=min(2.0, settings.context_timeout_seconds))
        self.http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=True,
            headers={"User-Agent": "SceneXtras-chat/1.0 (https://scenextras.com)"},
        )
        self._inflight: dict[str, asyncio.Future] = {}
        # A small in-process layer over Redis: hot characters cost no round trip at all.
        self._local: dict[str, tuple[float, CharacterContext]] = {}
        self.local_ttl = settings.context_local_cache_seconds
        self.local_max = 2048

    async def close(self) -> None:
        await self.http.aclose()

    # -- cache helpers ------------------------------------------------------------------------
    async def _cache_get(self, key: str):
        try:
            raw = await self.redis.get(key)
        except (RedisError, OSError):
            return None
        return orjson.loads(raw) if raw else None

    async def _cache_set(self, key: str, value, ttl: int) -> None:
        try:
            await self.redis.set(key, orjson.dumps(value), ex=ttl)
        except (RedisError, OSError):
            pass

    def context_key(self, character: str, series: str | None) -> str:
        ident = f"{character.strip().lower()}|{(series or '').strip().lower()}"
        return self.keys("chat", "ctx", hashlib.sha1(ident.encode()).hexdigest())

    # -- public ---------------------------------------------------------------------------------
    async def get(self, character: str, series: str | None) -> CharacterContext:
        key = self.context_key(character, series)
        now = time.monotonic()
        local = self._local.get(key)
        if local is not None and local[0] > now:
            return local[1]
        cached = await self._cache_get(key)
        if cached is not None:
            ctx = CharacterContext(**cached)
            self._remember(key, ctx, now)
            return ctx
        if key in self._inflight:  # one build per character at a time in this process
            return await asyncio.shield(self._inflight[key])
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            ctx = await self._build(character, series)
            ttl = self.settings.context_failure_cache_seconds if ctx.degraded else self.settings.context_cache_seconds
            await self._cache_set(key, asdict(ctx), ttl)
            if not ctx.degraded:
                self._remember(key, ctx, time.monotonic())
            fut.set_result(ctx)
            return ctx
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved
            raise
        finally:
            self._inflight.pop(key, None)

    def _remember(self, key: str, ctx: CharacterContext, now: float) -> None:
        if self.local_ttl <= 0 or ctx.degraded:
            return
        if len(self._local) >= self.local_max:
            for k in [k for k, (exp, _) in self._local.items() if exp <= now] or list(self._local)[
                : self.local_max // 4
            ]:
                self._local.pop(k, None)
        self._local[key] = (now + self.local_ttl, ctx)

    async def _build(self, character: str, series: str | None) -> CharacterContext:
        ctx = CharacterContext(character=character.strip(), series=(series or "").strip() or None)
        results = await asyncio.gather(self._tmdb(ctx), self._wikipedia(ctx), return_exceptions=True)
        for source, res in zip(("tmdb", "wikipedia"), results, strict=True):
            if isinstance(res, BaseException):
                ctx.degraded = True
                log.warning("character context source failed", extra={"source": source, "error": repr(res)[:200]})
        return ctx

    # -- TMDB -------------------------------------------------------------------------------------
    async def _tmdb_get(self, path: str, params: dict) -> dict:
        key = self.keys("chat", "tmdb", hashlib.sha1((path + "?" + repr(sorted(params.items()))).encode()).hexdigest())
        cached = await self._cache_get(key)
        if cached is not None:
            return cached
        headers = {}
        params = dict(params)
        api_key = self.settings.tmdb_api_key or ""
        if len(api_key) > 40:  # a v4 read access token
            headers["Authorization"] = f"Bearer {api_key}"
        else:
            params["api_key"] = api_key
        resp = await self.http.get(self.settings.tmdb_base_url.rstrip("/") + path, params=params, headers=headers)
        if resp.status_code == 404:
            data: dict = {}
        else:
            resp.raise_for_status()
            data = resp.json()
        await self._cache_set(key, data, self.settings.tmdb_cache_seconds)
        return data

    async def _tmdb(self, ctx: CharacterContext) -> None:
        if not self.settings.tmdb_api_key or not ctx.series:
            return
        found = await self._tmdb_get(
            "/search/multi", {"query": ctx.series, "include_adult": "false", "language": "en-US"}
        )
        hit = next((r for r in found.get("results") or [] if r.get("media_type") in ("movie", "tv")), None)
        if hit is None:
            return
        ctx.media_type = hit["media_type"]
        ctx.title = hit.get("title") or hit.get("name")
        date = hit.get("release_date") or hit.get("first_air_date") or ""
        ctx.year = date[:4] or None
        ctx.overview = clip(hit.get("overview"), MAX_OVERVIEW_CHARS)
        ctx.sources.append("tmdb")
        credits_path = (
            f"/movie/{hit['id']}/credits" if ctx.media_type == "movie" else f"/tv/{hit['id']}/aggregate_credits"
        )
        credits = await self._tmdb_get(credits_path, {"language": "en-US"})
        wanted = ctx.character.lower()
        for member in credits.get("cast") or []:
            names = [member.get("character") or ""] + [r.get("character") or "" for r in member.get("roles") or []]
            if any(wanted in n.lower() or (n and n.lower() in wanted) for n in names if n):
                ctx.actor = member.get("name")
                break

    # -- Wikipedia --------------------------------------------------------------------------------
    async def _wikipedia(self, ctx: CharacterContext) -> None:
        titles = [f"{ctx.character} (character)", ctx.character]
        if ctx.series:
            titles.insert(0, f"{ctx.character} ({ctx.series})")
        base = self.settings.wikipedia_base_url.rstrip("/")
        for title in titles:
            resp = await self.http.get(f"{base}/page/summary/{quote(title.replace(' ', '_'), safe='')}")
            if resp.status_code == 404:
                continue
            resp.raise_for_status()
            data = resp.json()
            if data.get("type") == "disambiguation" or not data.get("extract"):
                continue
            ctx.bio = clip(data["extract"], MAX_BIO_CHARS)
            ctx.sources.append("wikipedia")
            return
